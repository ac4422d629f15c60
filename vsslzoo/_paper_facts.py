"""Facts transcribed from the four method papers (pure data, no logic).

Sources, the four papers: Wang et al., "Unsupervised Visual Representation Learning by
Tracking Patches in Video" (CtP, CVPR 2021); Qing et al., "ParamCrop: Parametric Cubic
Cropping for Video Contrastive Learning" (arXiv 2021); Qian et al., "Controllable
Augmentations for Video Representation Learning" (arXiv 2022); Hu et al., "Contrast and
Order Representations for Video Self-supervised Learning" (CORP, ICCV 2021). Every
number in RESULTS was copied from them; "source" names the table (or section) it appears
in. Nothing here is measured by this project.
"""

# =============================================================================
# PRETRAINING INPUT AND EVALUATION PROTOCOL, PER ZOO ENTRY (as the papers state)
# "not stated" = the paper text is silent. Normalisation mean/std is stated by
# NONE of the four papers; the conventions quoted below come from public reference
# code (named by repository and path), not from the papers.
# -----------------------------------------------------------------------------
# ctp-r3d18-ucf101, ctp-r3d18-k400, ctp-r2plus1d-ucf101, ctp-r2plus1d-k400
#   clip length      : 16 frames (Sec. 5.1)
#   temporal stride  : "frame interval ranging from 1 to 5" (random per clip, Sec. 5.1)
#   input resolution : 112x112 (Sec. 5.1); how frames are resized/cropped to 112
#                      is not stated
#   normalisation    : not stated (the reference code, microsoft/CtP
#                      configs/ctp/pretraining_runtime_ucf.py, GroupToTensor: ImageNet
#                      mean (0.485,0.456,0.406) / std (0.229,0.224,0.225) on RGB/255)
#   UCF pretraining  : train split 1 of UCF-101 (Sec. 5.1 footnote)
#   backbone change  : last stage spatial stride 1 during pretraining only
#                      (total stride 8), reset to standard downstream (App. D)
#   fine-tune eval   : 16 frames, stride 2 (UCF/HMDB); 32 consecutive frames
#                      (Something-Something); test: resize 171x128, centre crop
#                      112, 10 uniformly spaced clips, predictions averaged;
#                      150 epochs SGD lr 0.01 (x0.1 at 60, 120), wd 5e-4 (App. A)
#   retrieval        : "same implementation as VCOP"; frozen encoder; feature map
#                      adaptive-pooled to 2x3x3x512 (T,H,W,C); 10 uniformly sampled
#                      clips per video, features averaged; cosine similarity; a
#                      test video is correct if one of its k nearest TRAINING
#                      videos shares its class (Sec. 5.1, App. A). Clip length /
#                      stride / crop used for retrieval clips: not stated.
#                      Reported as "Top-1"/"Top-5" (= R@1/R@5), R3D-18 only.
# -----------------------------------------------------------------------------
# paramcrop-s3dg-k400, paramcrop-r2d3d-k400
#   clip length      : the cropping module takes 64 frames at 128^2 and outputs
#                      two views of 16x112^2 (Sec. 4 "Pre-training settings")
#   temporal stride  : not stated for the 64-frame input. Within it, the temporal
#                      scale s_t in [0.5, 1.0] means a view spans 32..64 of the 64
#                      input frames resampled to 16 (effective stride 2..4 input
#                      frames, by interpolation)
#   input resolution : 16x112^2 views from 128^2 input; spatial scale s_p in
#                      [0.5, 1.0]; rotation fixed to 0; no aspect-ratio change
#   normalisation    : not stated (Alibaba's video codebase, alibaba-mmai-research/
#                      TAdaConv configs/pool/base.yaml, uses mean 0.45, std 0.225 per
#                      channel; not from the paper)
#   fine-tune eval   : 32x224^2 (Sec. 4), although Table 9 also has a 112 row and
#                      a 64-frame ('*') row; Adam, batch 128, wd 1e-3, lr 2e-4
#                      (full) / 2e-3 (linear)
#   retrieval        : "mainly follow the settings in previous works [VCOP, VCP,
#                      MemDPC]"; SimCLR K400 models used as frozen feature
#                      extractors; R@1/5/10/20 on HMDB51 (Table 11) and UCF101
#                      (Table 12). Clips, pooling, similarity: not stated.
# -----------------------------------------------------------------------------
# ca-r3d18-ucf101, ca-r3d18-k400
#   clip length      : 16 frames, both for the global view and for each of the
#                      K=4 local clips (Sec. 4.2)
#   temporal stride  : global view: 16 frames "sparsely" sampled over the whole
#                      video; local clips: centres constrained to the K equal
#                      temporal segments; local-clip frame stride not stated
#   input resolution : 16x112x112 (Sec. 4.2); feature maps stated as 2x4x4
#                      (local) and 8x4x4 (global, some temporal strides set to 1)
#   normalisation    : not stated
#   UCF pretraining  : training set of UCF-101 (split 1 used downstream)
#   action eval      : 10 uniformly sampled clips, centre-cropped and resized to
#                      112x112, softmax averaged; fine-tune and linear probe
#   retrieval        : frozen encoder; test-set videos are queries, nearest
#                      neighbours retrieved from the training set; features of
#                      ten uniformly sampled clips averaged; R@k, k=1,5,10,20
#                      (Sec. 4.2, Table 3). Similarity measure and crop for
#                      retrieval: not stated ("similar to action recognition").
#                      Retrieval reported only for the UCF-101-pretrained model.
# -----------------------------------------------------------------------------
# corpf-r3d50-k400, corpm-r3d50-ssv2
#   clip length      : 16 frames (Sec. 4.1)
#   temporal stride  : 2 on K400 ("covers 32 continues frames"); 1 on SSv2
#                      ("due to the short average video length") (Sec. 4.1)
#   input resolution : not stated in the CORP paper (CVRL, whose setting CORP follows,
#                      pretrains at 16x224^2, stride 2: tensorflow/models
#                      official/projects/video_ssl/configs/experiments/
#                      cvrl_pretrain_k600_200ep.yaml; that is not in the CORP paper)
#   normalisation    : not stated
#   linear eval      : frozen backbone incl. BN statistics, z-scored features,
#                      32 frames at the pretraining stride, SGD momentum 0.9,
#                      no wd, batch 1024, lr 0.16, half-cosine, 100 epochs;
#                      test: 10 clips x 3 crops = 30 views, softmax averaged
#   retrieval        : not evaluated in the paper
# =============================================================================

from __future__ import annotations

METHODS: dict[str, dict] = {
    "ctp": {
        "title": "Unsupervised Visual Representation Learning by Tracking Patches in Video",
        "authors": "Guangting Wang, Yizhou Zhou, Chong Luo, Wenxuan Xie, Wenjun Zeng, Zhiwei Xiong",
        # The text names no venue and no arXiv id, and prints no year. (Outside
        # the text: CVPR 2021, arXiv 2105.02545, submitted May 2021.)
        "venue": "CVPR 2021",  # not in the text; the paper appeared at CVPR 2021
        "year": 2021,
        "arxiv": None,
        "summary": (
            "Catch-the-Patch (CtP) turns tracking into a self-supervised pretext task for 3D CNNs. "
            "Image patches cut from the clip itself are pasted back onto every frame along random, "
            "smooth synthetic trajectories (moving and rescaling over time), so the ground-truth box "
            "in every frame is known exactly. Given only each patch's box in the first frame, a light "
            "head (temporal-squeeze convolution, RoIAlign, MLP) must regress the box in all frames; "
            "three patches per clip and randomly hiding patches in some frames (masked region model) "
            "make the task harder. Because the answer depends on where each region moves from frame to "
            "frame, the encoder is forced to learn region-level temporal correspondence, i.e. motion, "
            "rather than static appearance."
        ),
        "recipe": (
            "Pretraining on UCF-101 (train split 1) or Kinetics-400. Backbones R3D-18 or R(2+1)D-18; the "
            "last residual stage uses spatial stride 1 during pretraining (total stride 8) and is reset to "
            "the standard stride downstream. Input clips of 16 frames with a frame interval ranging from 1 "
            "to 5, spatial resolution 112x112. Three independent synthetic trajectories per clip; patch size "
            "uniformly sampled from 16x16 to 64x64 (App. G: aspect ratio in [1/2, 2], 3 to 5 key frames with "
            "linear interpolation in between); maximum speed 3 pixels per frame and scale ratio between "
            "successive frames in [e^-0.025, e^0.025]; patches masked out in a frame with probability 0.2 "
            "(MRM). Head: 3D conv squeezing time, RoIAlign to 5x5, two-layer MLP with 512 channels "
            "predicting T x 4 offsets; smooth-L1 loss with scaling factors (0.8, 0.8, 0.04, 0.04). Other "
            "augmentations are not described in the paper. Optimiser SGD, momentum 0.9, weight decay 1e-4, "
            "initial lr 0.01, total batch size 32; 300 epochs on UCF with lr x0.1 at epochs 100 and 200; "
            "90 epochs on K400 with lr x0.1 at epochs 30 and 60 (8 V100 GPUs: about 4 hours on UCF, 2 days "
            "on K400)."
        ),
    },
    "paramcrop": {
        "title": "ParamCrop: Parametric Cubic Cropping for Video Contrastive Learning",
        "authors": (
            "Zhiwu Qing, Ziyuan Huang, Shiwei Zhang, Mingqian Tang, Changxin Gao, "
            "Marcelo H. Ang Jr, Rong Jin, Nong Sang"
        ),
        # The text names no venue and no arXiv id, and prints no year (it cites
        # ICCV 2021 papers, so 2021 or later). (Outside the text: arXiv 2108.10501,
        # v1 August 2021.)
        "venue": "arXiv",
        "year": 2021,
        "arxiv": None,
        "summary": (
            "ParamCrop replaces random cropping in a contrastive framework (SimCLR or MoCo) with a "
            "learnable, differentiable 3D affine crop: a small MLP maps random noise to spatial scale, "
            "temporal scale and spatio-temporal offsets, and the two views are resampled from a larger "
            "input cube by trilinear grid sampling. The cropping MLPs are trained adversarially to the "
            "backbone through gradient reversal, so they try to raise the contrastive loss; starting from "
            "almost identical views, they gradually move the two cubes apart in space and time, and an "
            "early-stopping (detach) bound keeps them from reaching non-overlapping extremes. It is a "
            "curriculum on view disparity rather than a motion pretext task: the representation is pushed "
            "to be invariant to growing spatial and temporal shifts, and the learned temporal cropping is "
            "what exposes the model to different moments and speeds of the same video."
        ),
        "recipe": (
            "Pretraining on the Kinetics-400 training set (about 240k videos). Backbones S3D-G and R-2D3D; "
            "SimCLR for the main comparison results (MoCo also tested). The cropping module takes 64 frames "
            "at 128^2 resolution and outputs two views of 16x112^2; colour jittering and random horizontal "
            "flip are applied before it, and (by default) standard random cropping is inserted before "
            "ParamCrop. Spatial and temporal scales limited to [0.5, 1.0], rotation fixed to 0, no aspect-"
            "ratio learning, offsets constrained to stay inside the input; early-stopping detach bound 0.2. "
            "Optimiser LARS, batch size 1024, learning rate 0.3, weight decay 1e-6; 100 epochs for the "
            "comparison models, 20 epochs for ablations (S3D-G + SimCLR). Learning-rate schedule, warm-up, "
            "temperature and projection head are not stated (the text refers to an appendix that is not "
            "included)."
        ),
    },
    "ca": {
        "title": "Controllable Augmentations for Video Representation Learning",
        "authors": "Rui Qian, Weiyao Lin, John See, Dian Li",
        # The text names no venue and no arXiv id, and prints no year (its newest
        # references are from 2021). (Outside the text: arXiv 2203.16632, March
        # 2022; later in Visual Intelligence, 2024.)
        "venue": "arXiv",
        "year": 2022,
        "arxiv": None,
        "summary": (
            "The method contrasts several short local clips of a video against a long, sparsely sampled "
            "global view of the same video. Because the crop and flip parameters are known, the overlap "
            "between every local feature cell and every global feature cell is computed exactly and used as "
            "a soft target distribution in a region-level InfoNCE loss, so only content from the same place "
            "and the same moment is pulled together and clips showing different phases of an action are not "
            "forced to match. Colour-jitter and blur are applied at controlled intensity levels and an "
            "adversarial mutual-information estimator removes low-level colour shortcuts, and a temporal-order "
            "head must tell correctly ordered local clips from shuffled ones given the global feature. The "
            "correspondence target and the ordering objective both depend on when things happen, which pushes "
            "the encoder toward motion and long-range temporal structure instead of static background."
        ),
        "recipe": (
            "Pretraining on the training set of UCF-101 or Kinetics-400 with an R3D-18 encoder. Global view: "
            "16 frames sparsely sampled over the video with weak spatial cropping, encoded with some temporal "
            "strides set to 1 (8x4x4 feature map); local views: K=4 clips of 16 frames whose centres are "
            "constrained to the K temporal segments, spatially cropped inside the global view (2x4x4 feature "
            "map); input resized to 16x112x112. Augmentations: crop, horizontal flip, colour jitter with "
            "(B,C,S,H)=(0.4,0.4,0.4,0.1) and Gaussian blur, applied at discrete intensity levels (32 levels "
            "sampled per iteration). Losses: soft spatio-temporal region contrast, MINE-style mutual "
            "information minimisation with gradient reversal, and a GRU temporal-order dependency head. "
            "Optimiser Adam, initial lr 1e-3, weight decay 1e-5, batch size 128; 200 epochs on UCF-101 "
            "(lr /10 at epoch 150) and 100 epochs on Kinetics-400 (lr /10 at epoch 70); ablations use 150 "
            "epochs on UCF-101."
        ),
    },
    "corp": {
        "title": "Contrast and Order Representations for Video Self-supervised Learning",
        "authors": "Kai Hu, Jie Shao, Yuan Liu, Bhiksha Raj, Marios Savvides, Zhiqiang Shen",
        # The paper is the CVF Open Access version ("This ICCV paper is the Open
        # Access version"); it prints no year, but the ParamCrop paper's ref. [23]
        # cites it as ICCV 2021, pages 7939-7949. No arXiv id in the text.
        "venue": "ICCV 2021",
        "year": 2021,
        "arxiv": None,
        "summary": (
            "CORP adds temporal ordering to clip-level contrastive learning. For a pair of clips the model "
            "must decide whether they come from the same video and, if they do, which one happens first; a "
            "'decoupling attention' relation head splits the pairwise score into a symmetric part (for "
            "similarity) and an anti-symmetric part (for order). CORP_f is SimCLR-like (two clips per video, "
            "many videos, a (4B-2)-way contrast-and-order classification) and stays appearance-oriented, while "
            "CORP_m samples four well-separated clips from each of two videos and solves a 3-way "
            "(different video / earlier / later) classification, so most of its signal is temporal order. "
            "Telling earlier from later requires features that encode the direction of change over time "
            "(push vs. pull, up vs. down), which is why CORP_m does much better on Something-Something V2."
        ),
        "recipe": (
            "Backbone: ResNet-50 I3D with CVRL's down-sampling (tables call it R3D-50, 31.7M parameters), "
            "2048-d output; 3-layer MLP projection head with 2048-d hidden layers; relation head with h=128 "
            "heads (decoupling attention) and a 2-layer perceptron; temperature 0.1. Data: Kinetics-400 "
            "(original-size videos) or Something-Something V2; 16-frame clips with temporal stride 2 on K400 "
            "and stride 1 on SSv2; clips of a video are kept at least min(max((L-DT)/K, 1), DT) frames apart. "
            "Augmentations following CVRL, identical for all frames of a clip: random resized crop, horizontal "
            "flip (p=0.5), colour jitter (p=0.8), grayscale (p=0.2), Gaussian blur. Spatial resolution is not "
            "stated. Optimiser LARS, momentum 0.9, weight decay 1e-6, lr = batch_size/256, linear warm-up for "
            "the first 5% of epochs then half-cosine decay, synchronized BN. Batch size 512 for CORP_f (one run "
            "with 1024) and 64 for CORP_m (K=4 clips per video); 800 epochs on K400 for both models; on SSv2 "
            "the default is 200 epochs (Sec. 4.3 ablations)."
        ),
    },
}


RESULTS: dict[str, list[dict]] = {
    # -------------------------------------------------------------------------
    # CtP, R3D-18, pretrained on UCF-101 (default setting: 3 pre-set trajectories,
    # MRM, stride-8 backbone, temporal squeeze, sigma 0.8/0.04, speed 3, scale 0.025).
    # Not listed: ablation variants in Tables 1, 7-10 that change the recipe, and
    # Table 1 rows pretrained on GOT-10k (R3D-18 "Pre-set x3" on GOT-10k: 85.9 UCF / 55.7 H51).
    "ctp-r3d18-ucf101": [
        {"task": "action recognition (fine-tune)", "dataset": "UCF101", "metric": "top-1 acc (%)", "value": 83.9,
         "source": "Table 4 (same default-setting row in Tables 1, 7, 8, 9, 10)"},
        {"task": "action recognition (fine-tune)", "dataset": "HMDB51", "metric": "top-1 acc (%)", "value": 53.6,
         "source": "Table 4 (same default-setting row in Tables 1, 7, 8, 9, 10)"},
        {"task": "video retrieval", "dataset": "UCF101", "metric": "R@1", "value": 23.4, "source": "Table 5"},
        {"task": "video retrieval", "dataset": "UCF101", "metric": "R@5", "value": 40.9, "source": "Table 5"},
        {"task": "video retrieval", "dataset": "HMDB51", "metric": "R@1", "value": 11.4, "source": "Table 5"},
        {"task": "video retrieval", "dataset": "HMDB51", "metric": "R@5", "value": 30.2, "source": "Table 5"},
    ],
    # CtP, R3D-18, pretrained on Kinetics-400.
    # Not listed (pretraining data differs or is not stated):
    #  * Table 2 ablations are pretrained on a ~25% subset of K400 (R3D with MRM:
    #    84.0 UCF / 55.3 H51; without MRM: 82.8 / 53.2).
    #  * Table 6 (App. C): R3D-18 "CtP" fine-tuned on K400 val, top-1 65.0, top-5
    #    85.7 (random init 64.1 / 85.3). The CtP pretraining dataset is NOT stated
    #    for this table.
    #  * Fig. 4 (data efficiency, K400 pretraining) and Fig. 3 (GOT-10k tracking
    #    mIoU, "17-layer R3D") give no printed numbers.
    #  * Sec. 5.4 text: "absolute gain of 20.4% over the random baseline and 5.9%
    #    over the ImageNet baseline" for R3D-18 on UCF-101 -- does not match Table 3
    #    (86.2 - 65.0 = 21.2, 86.2 - 79.5 = 6.7; the text implies 85.4).
    "ctp-r3d18-k400": [
        {"task": "action recognition (fine-tune)", "dataset": "UCF101", "metric": "top-1 acc (%)", "value": 86.2,
         "source": "Table 3, Table 4 (also Sec. 1 text)"},
        {"task": "action recognition (fine-tune)", "dataset": "HMDB51", "metric": "top-1 acc (%)", "value": 57.0,
         "source": "Table 3, Table 4"},
        {"task": "action recognition (fine-tune, 32 consecutive frames)", "dataset": "SSv1", "metric": "top-1 acc (%)",
         "value": 44.2, "source": "Table 3 (Something-Something-V1)"},
        {"task": "video retrieval", "dataset": "UCF101", "metric": "R@1", "value": 29.0, "source": "Table 5"},
        {"task": "video retrieval", "dataset": "UCF101", "metric": "R@5", "value": 47.3, "source": "Table 5"},
        {"task": "video retrieval", "dataset": "HMDB51", "metric": "R@1", "value": 11.8, "source": "Table 5"},
        {"task": "video retrieval", "dataset": "HMDB51", "metric": "R@5", "value": 30.1, "source": "Table 5"},
    ],
    # CtP, R(2+1)D-18, pretrained on UCF-101. No retrieval numbers: Table 5 is R3D-18 only.
    "ctp-r2plus1d-ucf101": [
        {"task": "action recognition (fine-tune)", "dataset": "UCF101", "metric": "top-1 acc (%)", "value": 86.2,
         "source": "Table 4"},
        {"task": "action recognition (fine-tune)", "dataset": "HMDB51", "metric": "top-1 acc (%)", "value": 57.1,
         "source": "Table 4"},
    ],
    # CtP, R(2+1)D-18, pretrained on Kinetics-400. No retrieval numbers (Table 5 is
    # R3D-18 only). Not listed: Table 2(b) R(2+1)D rows, pretrained on a ~25% K400
    # subset (with MRM 87.2 UCF / 57.8 H51; without 85.1 / 55.9).
    "ctp-r2plus1d-k400": [
        {"task": "action recognition (fine-tune)", "dataset": "UCF101", "metric": "top-1 acc (%)", "value": 88.4,
         "source": "Table 3, Table 4 (also Sec. 5.5 text)"},
        {"task": "action recognition (fine-tune)", "dataset": "HMDB51", "metric": "top-1 acc (%)", "value": 61.7,
         "source": "Table 3, Table 4 (also Sec. 5.5 text)"},
        {"task": "action recognition (fine-tune, 32 consecutive frames)", "dataset": "SSv1", "metric": "top-1 acc (%)",
         "value": 48.3, "source": "Table 3 (Something-Something-V1; also Sec. 1 text)"},
    ],
    # -------------------------------------------------------------------------
    # ParamCrop, S3D-G ("S3D-G-23"), SimCLR, pretrained on K400. Main rows: 100-epoch
    # comparison models (Tables 9-12). Rows marked "ablation" come from the 20-epoch
    # ablation setting (S3D-G + SimCLR; Sec. 4). Not listed: ablation variants that
    # change the method (Tables 1-5 other rows), MoCo + S3D-G + ParamCrop (Table 6:
    # 54.3 HMDB51 / 85.1 UCF101 fine-tune), Table 8 (randomly initialised Mean
    # Teacher, not pretrained). Sec. 4.3 text "surpass MLRep by 4.8% on HMDB" does
    # not match Table 9 (51.4 - 47.6 = 3.8).
    "paramcrop-s3dg-k400": [
        {"task": "action recognition (fine-tune, 112^2)", "dataset": "HMDB51", "metric": "top-1 acc (%)",
         "value": 51.4, "source": "Table 9"},
        {"task": "action recognition (fine-tune, 112^2)", "dataset": "UCF101", "metric": "top-1 acc (%)",
         "value": 80.2, "source": "Table 9"},
        {"task": "action recognition (fine-tune, 224^2)", "dataset": "HMDB51", "metric": "top-1 acc (%)",
         "value": 62.3, "source": "Table 9"},
        {"task": "action recognition (fine-tune, 224^2)", "dataset": "UCF101", "metric": "top-1 acc (%)",
         "value": 88.9, "source": "Table 9"},
        {"task": "action recognition (fine-tune, 64 frames, 224^2)", "dataset": "HMDB51", "metric": "top-1 acc (%)",
         "value": 63.4, "source": "Table 9 (ParamCrop*)"},
        {"task": "action recognition (fine-tune, 64 frames, 224^2)", "dataset": "UCF101", "metric": "top-1 acc (%)",
         "value": 91.3, "source": "Table 9 (ParamCrop*)"},
        {"task": "linear probe", "dataset": "HMDB51", "metric": "top-1 acc (%)", "value": 39.4, "source": "Table 10"},
        {"task": "linear probe", "dataset": "UCF101", "metric": "top-1 acc (%)", "value": 68.5, "source": "Table 10"},
        {"task": "video retrieval", "dataset": "HMDB51", "metric": "R@1", "value": 23.3, "source": "Table 11"},
        {"task": "video retrieval", "dataset": "HMDB51", "metric": "R@5", "value": 46.8, "source": "Table 11"},
        {"task": "video retrieval", "dataset": "HMDB51", "metric": "R@10", "value": 59.4, "source": "Table 11"},
        {"task": "video retrieval", "dataset": "HMDB51", "metric": "R@20", "value": 72.8, "source": "Table 11"},
        {"task": "video retrieval", "dataset": "UCF101", "metric": "R@1", "value": 46.3, "source": "Table 12"},
        {"task": "video retrieval", "dataset": "UCF101", "metric": "R@5", "value": 62.3, "source": "Table 12"},
        {"task": "video retrieval", "dataset": "UCF101", "metric": "R@10", "value": 71.3, "source": "Table 12"},
        {"task": "video retrieval", "dataset": "UCF101", "metric": "R@20", "value": 79.1, "source": "Table 12"},
        {"task": "action recognition (fine-tune; ablation, 20-epoch pretraining)", "dataset": "HMDB51",
         "metric": "top-1 acc (%)", "value": 59.9, "source": "Tables 1-5 ParamCrop row, Table 6 (SimCLR, S3D-G)"},
        {"task": "action recognition (fine-tune; ablation, 20-epoch pretraining)", "dataset": "UCF101",
         "metric": "top-1 acc (%)", "value": 86.9, "source": "Tables 1-5 ParamCrop row, Table 6 (SimCLR, S3D-G)"},
        {"task": "linear probe (ablation, 20-epoch pretraining)", "dataset": "HMDB51", "metric": "top-1 acc (%)",
         "value": 37.3, "source": "Tables 1-5 ParamCrop row"},
        {"task": "linear probe (ablation, 20-epoch pretraining)", "dataset": "UCF101", "metric": "top-1 acc (%)",
         "value": 59.3, "source": "Tables 1-5 ParamCrop row"},
        {"task": "action recognition (fine-tune, 50% labels; ablation setting)", "dataset": "HMDB51",
         "metric": "top-1 acc (%)", "value": 52.8, "source": "Table 7"},
        {"task": "action recognition (fine-tune, 30% labels; ablation setting)", "dataset": "HMDB51",
         "metric": "top-1 acc (%)", "value": 46.0, "source": "Table 7"},
        {"task": "action recognition (fine-tune, 10% labels; ablation setting)", "dataset": "HMDB51",
         "metric": "top-1 acc (%)", "value": 34.6, "source": "Table 7"},
        {"task": "action recognition (fine-tune, 50% labels; ablation setting)", "dataset": "UCF101",
         "metric": "top-1 acc (%)", "value": 83.3, "source": "Table 7"},
        {"task": "action recognition (fine-tune, 30% labels; ablation setting)", "dataset": "UCF101",
         "metric": "top-1 acc (%)", "value": 78.5, "source": "Table 7"},
        {"task": "action recognition (fine-tune, 10% labels; ablation setting)", "dataset": "UCF101",
         "metric": "top-1 acc (%)", "value": 60.1, "source": "Table 7"},
    ],
    # ParamCrop, R-2D3D-18, SimCLR, pretrained on K400 (100-epoch comparison model in
    # Tables 9-12; Table 6 row is the ablation setting). Not listed: MoCo + R-2D3D +
    # ParamCrop (Table 6: 48.2 HMDB51 / 73.8 UCF101 fine-tune). Sec. 4.3 text says
    # retrieval exceeds MemDPC "by 6.4%" on HMDB51; Table 11 gives 21.9 - 15.6 = 6.3.
    "paramcrop-r2d3d-k400": [
        {"task": "action recognition (fine-tune, 224^2)", "dataset": "HMDB51", "metric": "top-1 acc (%)",
         "value": 53.7, "source": "Table 9"},
        {"task": "action recognition (fine-tune, 224^2)", "dataset": "UCF101", "metric": "top-1 acc (%)",
         "value": 82.8, "source": "Table 9"},
        {"task": "linear probe", "dataset": "HMDB51", "metric": "top-1 acc (%)", "value": 39.7, "source": "Table 10"},
        {"task": "linear probe", "dataset": "UCF101", "metric": "top-1 acc (%)", "value": 66.8, "source": "Table 10"},
        {"task": "video retrieval", "dataset": "HMDB51", "metric": "R@1", "value": 21.9, "source": "Table 11"},
        {"task": "video retrieval", "dataset": "HMDB51", "metric": "R@5", "value": 46.9, "source": "Table 11"},
        {"task": "video retrieval", "dataset": "HMDB51", "metric": "R@10", "value": 59.0, "source": "Table 11"},
        {"task": "video retrieval", "dataset": "HMDB51", "metric": "R@20", "value": 71.5, "source": "Table 11"},
        {"task": "video retrieval", "dataset": "UCF101", "metric": "R@1", "value": 43.0, "source": "Table 12"},
        {"task": "video retrieval", "dataset": "UCF101", "metric": "R@5", "value": 59.9, "source": "Table 12"},
        {"task": "video retrieval", "dataset": "UCF101", "metric": "R@10", "value": 69.2, "source": "Table 12"},
        {"task": "video retrieval", "dataset": "UCF101", "metric": "R@20", "value": 78.3, "source": "Table 12"},
        {"task": "action recognition (fine-tune; ablation setting, SimCLR)", "dataset": "HMDB51",
         "metric": "top-1 acc (%)", "value": 53.0, "source": "Table 6"},
        {"task": "action recognition (fine-tune; ablation setting, SimCLR)", "dataset": "UCF101",
         "metric": "top-1 acc (%)", "value": 79.4, "source": "Table 6"},
    ],
    # -------------------------------------------------------------------------
    # Controllable Augmentations, R3D-18, pretrained on UCF-101 (200 epochs).
    # The paper gives no linear-probe number for the 200-epoch UCF model; the
    # "ablation" rows are the default configuration of the 150-epoch UCF ablations
    # (Tables 4-6: K=4, T_v=8, levels 4/2/4, GRU head).
    # Not listed:
    #  * Table 2 (Diving-48 V1, "Ours R3D-18" top-1 25.4): the pretraining dataset
    #    (and whether it is fine-tuned) is not stated, so it is not attributed to
    #    either CA entry.
    #  * Table 7 (all objectives, "ablation setting"): full model 71.2 UCF / 44.1
    #    HMDB -- identical to the K400 linear-probe row of Table 1 and inconsistent
    #    with the 60.1 / 31.3 of Tables 4-6, which claim the same setting.
    "ca-r3d18-ucf101": [
        {"task": "action recognition (fine-tune, 16x112^2)", "dataset": "UCF101", "metric": "top-1 acc (%)",
         "value": 83.3, "source": "Table 1"},
        {"task": "action recognition (fine-tune, 16x112^2)", "dataset": "HMDB51", "metric": "top-1 acc (%)",
         "value": 53.2, "source": "Table 1"},
        {"task": "video retrieval", "dataset": "UCF101", "metric": "R@1", "value": 52.7, "source": "Table 3"},
        {"task": "video retrieval", "dataset": "UCF101", "metric": "R@5", "value": 70.3, "source": "Table 3"},
        {"task": "video retrieval", "dataset": "UCF101", "metric": "R@10", "value": 76.2, "source": "Table 3"},
        {"task": "video retrieval", "dataset": "UCF101", "metric": "R@20", "value": 81.1, "source": "Table 3"},
        {"task": "video retrieval", "dataset": "HMDB51", "metric": "R@1", "value": 22.9, "source": "Table 3"},
        {"task": "video retrieval", "dataset": "HMDB51", "metric": "R@5", "value": 45.8, "source": "Table 3"},
        {"task": "video retrieval", "dataset": "HMDB51", "metric": "R@10", "value": 56.1, "source": "Table 3"},
        {"task": "video retrieval", "dataset": "HMDB51", "metric": "R@20", "value": 64.2, "source": "Table 3"},
        {"task": "linear probe (ablation, 150-epoch UCF-101 pretraining)", "dataset": "UCF101",
         "metric": "top-1 acc (%)", "value": 60.1, "source": "Tables 4, 5, 6 (default rows)"},
        {"task": "linear probe (ablation, 150-epoch UCF-101 pretraining)", "dataset": "HMDB51",
         "metric": "top-1 acc (%)", "value": 31.3, "source": "Tables 4, 5, 6 (default rows)"},
    ],
    # Controllable Augmentations, R3D-18, pretrained on K400 (100 epochs unless noted).
    # No retrieval numbers for K400 pretraining (Table 3 is UCF-101-pretrained).
    # Not listed: "Ours R3D-34 Kinetics-400" (Table 1: 87.1 UCF / 58.4 HMDB fine-tune),
    # different backbone; Diving-48 25.4 (Table 2, pretraining data not stated).
    # The linear-probe row's "Freeze" tick is lost in the text extraction; it sits
    # in the linear-probe block of Table 1 and the text treats it as linear probe.
    "ca-r3d18-k400": [
        {"task": "linear probe (16x112^2)", "dataset": "UCF101", "metric": "top-1 acc (%)", "value": 71.2,
         "source": "Table 1"},
        {"task": "linear probe (16x112^2)", "dataset": "HMDB51", "metric": "top-1 acc (%)", "value": 44.1,
         "source": "Table 1"},
        {"task": "action recognition (fine-tune, 16x112^2)", "dataset": "UCF101", "metric": "top-1 acc (%)",
         "value": 85.5, "source": "Table 1"},
        {"task": "action recognition (fine-tune, 16x112^2)", "dataset": "HMDB51", "metric": "top-1 acc (%)",
         "value": 55.1, "source": "Table 1"},
        {"task": "action recognition (fine-tune, 16x112^2; 200-epoch pretraining)", "dataset": "UCF101",
         "metric": "top-1 acc (%)", "value": 88.1, "source": "Table 1 (Ours*)"},
        {"task": "action recognition (fine-tune, 16x112^2; 200-epoch pretraining)", "dataset": "HMDB51",
         "metric": "top-1 acc (%)", "value": 56.4, "source": "Table 1 (Ours*)"},
        {"task": "action recognition (fine-tune, 16x224^2; Res. 224 in Table 1, whether pretraining or only "
                 "fine-tuning is not stated)", "dataset": "UCF101", "metric": "top-1 acc (%)", "value": 88.3,
         "source": "Table 1"},
        {"task": "action recognition (fine-tune, 16x224^2; Res. 224 in Table 1, whether pretraining or only "
                 "fine-tuning is not stated)", "dataset": "HMDB51", "metric": "top-1 acc (%)", "value": 59.3,
         "source": "Table 1"},
    ],
    # -------------------------------------------------------------------------
    # CORP_f, R3D-50, pretrained on K400 (default: 800 epochs, batch 512).
    # Not listed: CORP_f pretrained on SSv2 (Table 5: 41.1 SSv2 linear; Table 6(e):
    # 38.8 at 100 epochs, 41.7 at 200 epochs; Sec. 1 text: 41.7; Table 7 per-class
    # column) -- a different pretraining dataset, and 41.1 vs 41.7 disagree.
    "corpf-r3d50-k400": [
        {"task": "linear probe", "dataset": "K400", "metric": "top-1 acc (%)", "value": 66.3,
         "source": "Table 1"},
        {"task": "linear probe (pretraining batch size 1024)", "dataset": "K400", "metric": "top-1 acc (%)",
         "value": 66.6, "source": "Sec. 4.2 text"},
        {"task": "linear probe (Table 5; pretraining setting not stated, differs from Table 1's 66.3)",
         "dataset": "K400", "metric": "top-1 acc (%)", "value": 63.4, "source": "Table 5"},
        {"task": "linear probe (ablation: batch 256, 200 epochs)", "dataset": "K400", "metric": "top-1 acc (%)",
         "value": 60.9, "source": "Table 2"},
        {"task": "linear probe (ablation: batch 256, 500 epochs)", "dataset": "K400", "metric": "top-1 acc (%)",
         "value": 63.0, "source": "Table 2"},
        {"task": "linear probe (ablation: batch 512, 200 epochs)", "dataset": "K400", "metric": "top-1 acc (%)",
         "value": 64.1, "source": "Table 2"},
        {"task": "linear probe (ablation: batch 512, 500 epochs)", "dataset": "K400", "metric": "top-1 acc (%)",
         "value": 65.6, "source": "Table 2"},
        {"task": "semi-supervised fine-tune (1% labels)", "dataset": "K400", "metric": "top-1 acc (%)",
         "value": 34.8, "source": "Table 3"},
        {"task": "semi-supervised fine-tune (10% labels)", "dataset": "K400", "metric": "top-1 acc (%)",
         "value": 58.6, "source": "Table 3"},
        {"task": "linear probe", "dataset": "UCF101", "metric": "top-1 acc (%)", "value": 90.2, "source": "Table 4"},
        {"task": "linear probe", "dataset": "HMDB51", "metric": "top-1 acc (%)", "value": 58.7, "source": "Table 4"},
        {"task": "action recognition (fine-tune)", "dataset": "UCF101", "metric": "top-1 acc (%)", "value": 93.5,
         "source": "Table 4"},
        {"task": "action recognition (fine-tune)", "dataset": "HMDB51", "metric": "top-1 acc (%)", "value": 68.0,
         "source": "Table 4"},
    ],
    # CORP_m, R3D-50, pretrained on SSv2 (default: K=4, batch 64, 200 epochs,
    # decoupling attention, 2-layer perceptron). Not listed: CORP_m pretrained on K400
    # (Table 1: 59.1; Table 5: 56.1 -- they disagree) and the method variants of
    # Table 6(a)-(d) (order only 42.4, contrast only 29.7, K=2 45.4, K=3 47.0,
    # mixed attention 48.0, 1 perceptron layer 48.4). The paper's text calls
    # Table 6 "Table 5a-5e".
    "corpm-r3d50-ssv2": [
        {"task": "linear probe", "dataset": "SSv2", "metric": "top-1 acc (%)", "value": 48.8,
         "source": "Table 5; Table 6(a)-(e) default rows (also Sec. 1 text)"},
        {"task": "linear probe (100-epoch pretraining)", "dataset": "SSv2", "metric": "top-1 acc (%)",
         "value": 46.3, "source": "Table 6(e)"},
        {"task": "action recognition (fine-tune)", "dataset": "SSv2", "metric": "top-1 acc (%)", "value": 61.0,
         "source": "Sec. 4.3 text (printed as '61%')"},
        {"task": "linear probe, per-category: Tear something into 2 pieces", "dataset": "SSv2",
         "metric": "per-class top-1 acc (%)", "value": 87.4, "source": "Table 7"},
        {"task": "linear probe, per-category: Approach sth with camera", "dataset": "SSv2",
         "metric": "per-class top-1 acc (%)", "value": 93.1, "source": "Table 7"},
        {"task": "linear probe, per-category: Show something behind sth", "dataset": "SSv2",
         "metric": "per-class top-1 acc (%)", "value": 65.1, "source": "Table 7"},
        {"task": "linear probe, per-category: Plug something into sth", "dataset": "SSv2",
         "metric": "per-class top-1 acc (%)", "value": 70.8, "source": "Table 7"},
        {"task": "linear probe, per-category: Hold something", "dataset": "SSv2",
         "metric": "per-class top-1 acc (%)", "value": 30.5, "source": "Table 7"},
        {"task": "linear probe, per-category: Move sth and sth closer", "dataset": "SSv2",
         "metric": "per-class top-1 acc (%)", "value": 78.3, "source": "Table 7"},
        {"task": "linear probe, per-category: Move sth and sth away", "dataset": "SSv2",
         "metric": "per-class top-1 acc (%)", "value": 80.2, "source": "Table 7"},
        {"task": "linear probe, per-category: Move something up", "dataset": "SSv2",
         "metric": "per-class top-1 acc (%)", "value": 58.9, "source": "Table 7"},
        {"task": "linear probe, per-category: Move something down", "dataset": "SSv2",
         "metric": "per-class top-1 acc (%)", "value": 67.2, "source": "Table 7"},
    ],
}
