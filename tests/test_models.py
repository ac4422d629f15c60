"""Backbones: reference parameter counts and shapes, input module, width, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vsslzoo.config import PreprocessConfig
from vsslzoo.errors import ConfigError, UnknownArchitectureError
from vsslzoo.models import build, get_architecture, list_architectures

# (architecture, model_args, parameters, feature shape at the reference input), counted by
# building the reference implementations: torchvision ``torchvision/models/video/resnet.py``
# (r3d_18, r2plus1d_18), microsoft/CtP ``pyvrl/models/backbones/r3d.py`` (CtP R(2+1)D),
# TengdaHan/CoCLR ``backbone/s3dg.py``, TengdaHan/MemDPC ``backbone/resnet_2d3d.py``; R3D-50
# is CVRL's (tensorflow/models ``official/projects/video_ssl``), 31.7M in CORP Table 1.
REFERENCE = [
    ("r3d_18", {}, 33_166_272, (512, 2, 7, 7)),
    ("r2plus1d_18", {}, 31_300_125, (512, 2, 7, 7)),
    ("r2plus1d_18", {"midplanes": "ctp", "bn_eps": 1e-3}, 33_165_639, (512, 2, 7, 7)),
    ("s3dg", {}, 9_098_000, (1024, 2, 3, 3)),
    ("r2d3d_18", {}, 14_057_536, (256, 4, 4, 4)),
    ("r3d_50", {}, 31_672_128, (2048, 8, 7, 7)),  # CORP Table 1: 31.7M
]


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("arch,args,params,_shape", REFERENCE)
def test_parameter_counts_match_reference(arch, args, params, _shape):
    assert _params(build(arch, **args)) == params


@pytest.mark.parametrize("arch,args,_params,shape", REFERENCE)
def test_feature_shapes_at_reference_input(arch, args, _params, shape):
    model = build(arch, **args).eval()
    clip = torch.randint(0, 256, (1, *get_architecture(arch).reference_input), dtype=torch.uint8)
    with torch.inference_mode():
        features = model.forward_features(clip)
        embedding = model(clip)
    assert tuple(features.shape) == (1, *shape)
    assert tuple(embedding.shape) == (1, shape[0]) and model.embed_dim == shape[0]
    torch.testing.assert_close(embedding, features.mean(dim=(2, 3, 4)))


def test_ctp_midplanes_differ_from_torchvision_only_in_first_blocks():
    tv = build("r2plus1d_18").state_dict()
    ctp = build("r2plus1d_18", midplanes="ctp").state_dict()
    assert tv.keys() == ctp.keys()
    differing = {k for k in tv if tv[k].shape != ctp[k].shape}
    # conv2 mid-planes of each stage's first block: 230/460/921 (torchvision) vs 288/576/1152
    assert tv["layer2.0.conv2.0.0.weight"].shape[0] == 230
    assert ctp["layer2.0.conv2.0.0.weight"].shape[0] == 288
    assert ctp["layer4.0.conv2.0.0.weight"].shape[0] == 1152
    assert all(k.startswith(("layer2.0.conv2", "layer3.0.conv2", "layer4.0.conv2"))
               for k in differing)


def test_torchvision_state_dict_layout():
    keys = set(build("r2plus1d_18").state_dict())
    for key in ("stem.0.weight", "stem.1.running_mean", "stem.3.weight", "stem.4.weight",
                "layer1.0.conv1.0.0.weight", "layer1.0.conv1.0.1.weight",
                "layer1.0.conv1.0.3.weight", "layer1.0.conv1.1.weight",
                "layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight"):
        assert key in keys
    assert not any("normalize" in k for k in keys)  # mean/std are config, not weights


def test_ctp_bn_eps_applies_everywhere():
    model = build("r2plus1d_18", midplanes="ctp", bn_eps=1e-3)
    eps = {m.eps for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)}
    assert eps == {1e-3}


@pytest.mark.parametrize("arch", ["r3d_18", "r2plus1d_18"])
def test_output_stride_8_keeps_weights_and_doubles_resolution(arch):
    torch.manual_seed(0)
    s16 = build(arch, width=0.125).eval()
    s8 = build(arch, width=0.125, output_stride=8).eval()
    s8.load_state_dict(s16.state_dict())  # same weights fit both settings
    clip = torch.randint(0, 256, (1, 3, 16, 112, 112), dtype=torch.uint8)
    with torch.inference_mode():
        assert tuple(s16.forward_features(clip).shape[2:]) == (2, 7, 7)
        assert tuple(s8.forward_features(clip).shape[2:]) == (2, 14, 14)


def test_input_module_normalises_uint8_like_the_formula():
    pre = PreprocessConfig(mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 0.125))
    model = build("r3d_18", width=0.125, preprocess=pre)
    pixels = torch.randint(0, 256, (2, 3, 4, 8, 8), dtype=torch.uint8)
    mean = torch.tensor(pre.mean).view(1, 3, 1, 1, 1)
    std = torch.tensor(pre.std).view(1, 3, 1, 1, 1)
    expected = (pixels.float() / 255 - mean) / std
    torch.testing.assert_close(model.normalize(pixels), expected, rtol=1e-6, atol=1e-5)
    # float input on the same 0..255 scale gives the same result
    torch.testing.assert_close(model.normalize(pixels.float()), expected, rtol=1e-6, atol=1e-5)


def test_input_module_reorders_channels_for_bgr_models():
    pre = PreprocessConfig(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), channel_order="bgr")
    model = build("r3d_18", width=0.125, preprocess=pre)
    pixels = torch.zeros(1, 3, 1, 2, 2, dtype=torch.uint8)
    pixels[:, 0] = 255  # pure red in RGB
    out = model.normalize(pixels)
    assert out[0, 2].eq(1).all() and out[0, :2].eq(0).all()


def test_input_module_rejects_wrong_layout():
    model = build("r3d_18", width=0.125)
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        model(torch.zeros(1, 4, 3, 32, 32, dtype=torch.uint8))


@pytest.mark.parametrize("arch", list_architectures())
def test_small_width_runs_and_gradients_reach_every_parameter(arch):
    torch.manual_seed(0)
    model = build(arch, width=0.125).train()
    clip = torch.randint(0, 256, (2, 3, 8, 48, 48), dtype=torch.uint8)
    model(clip).pow(2).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"
    assert _params(model) < 2_500_000


@pytest.mark.parametrize("arch", list_architectures())
def test_width_scales_embedding(arch):
    assert build(arch, width=0.5).embed_dim == build(arch).embed_dim // 2


def test_unknown_architecture_suggests_close_names():
    with pytest.raises(UnknownArchitectureError, match="did you mean 'r3d_18'"):
        build("r3d18")


def test_unknown_model_args_are_named():
    with pytest.raises(ConfigError, match=r"does not take model_args \['depth'\]"):
        build("r3d_18", depth=34)
    with pytest.raises(ConfigError, match="output_stride must be 8 or 16"):
        build("r3d_18", output_stride=4)
    with pytest.raises(ConfigError, match="width multiplier"):
        build("s3dg", width=0)


@pytest.mark.parametrize("arch", ["s3dg", "r3d_18"])
def test_flip_invariant_embeds_a_mirror_image_like_the_original(arch):
    torch.manual_seed(0)
    plain = build(arch, width=0.25).eval()
    torch.manual_seed(0)
    symmetric = build(arch, width=0.25, flip_invariant=True).eval()
    assert symmetric.state_dict().keys() == plain.state_dict().keys()  # no new weights
    clips = torch.randint(0, 256, (2, 3, 8, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        mirrored = clips.flip(-1)
        torch.testing.assert_close(symmetric(clips), symmetric(mirrored))
        assert not torch.allclose(plain(clips), plain(mirrored), atol=1e-4)
        expected = 0.5 * (plain(clips) + plain(mirrored))  # average pooling is linear
        torch.testing.assert_close(symmetric(clips), expected, rtol=1e-4, atol=1e-5)
        features = symmetric.forward_features(clips)  # the map itself is mirrored
        torch.testing.assert_close(symmetric.forward_features(mirrored), features.flip(-1))
    with pytest.raises(ConfigError, match="flip_invariant must be"):
        build(arch, flip_invariant="yes")


def test_per_clip_normalisation_ignores_brightness_and_contrast_of_the_whole_clip():
    from vsslzoo.models.common import InputNormalization

    clip_norm = InputNormalization.from_config(PreprocessConfig(normalize="clip"))
    x = torch.randint(30, 180, (2, 3, 4, 16, 16)).float()
    out = clip_norm(x)
    naive = torch.stack([(c - c.mean()) / (c.var(unbiased=False) + 1.0).sqrt() for c in x])
    torch.testing.assert_close(out, naive)
    torch.testing.assert_close(clip_norm(x + 35), out)  # a brightness offset: no change
    assert (clip_norm(x * 1.3) - out).abs().max() < 0.02  # a gain: the +1 guard only
    dataset_norm = InputNormalization.from_config(PreprocessConfig())
    assert (dataset_norm(x + 35) - dataset_norm(x)).abs().min() > 0.1
    flat = torch.zeros(1, 3, 2, 4, 4, requires_grad=True)  # a flat clip: finite gradient
    clip_norm(flat).sum().backward()
    assert torch.isfinite(flat.grad).all()
    with pytest.raises(ConfigError, match="normalize must be"):
        PreprocessConfig(normalize="pixel")


def test_per_frame_normalisation_ignores_flicker():
    from vsslzoo.models.common import InputNormalization

    frame_norm = InputNormalization.from_config(PreprocessConfig(normalize="frame"))
    x = torch.randint(30, 180, (2, 3, 4, 16, 16)).float()
    out = frame_norm(x)
    naive = torch.stack([torch.stack([(x[b, :, t] - x[b, :, t].mean())
                                      / (x[b, :, t].var(unbiased=False) + 1.0).sqrt()
                                      for t in range(x.shape[2])], dim=1)
                         for b in range(x.shape[0])])
    torch.testing.assert_close(out, naive)
    flicker = torch.tensor([0.0, 40.0, -20.0, 10.0]).view(1, 1, 4, 1, 1)  # per frame
    torch.testing.assert_close(frame_norm(x + flicker), out, rtol=1e-5, atol=1e-5)
    clip_norm = InputNormalization.from_config(PreprocessConfig(normalize="clip"))
    assert (clip_norm(x + flicker) - clip_norm(x)).abs().max() > 0.1  # per clip: it moves
    flat = torch.zeros(1, 3, 2, 4, 4, requires_grad=True)
    frame_norm(flat).sum().backward()
    assert torch.isfinite(flat.grad).all()


@pytest.mark.parametrize("arch, args", [
    *[(name, {}) for name in list_architectures()],
    ("r2plus1d_18", {"midplanes": "ctp"}),
    ("s3dg", {"flip_invariant": True}),
])
def test_folded_batch_norms_give_the_same_features(arch, args):
    """Every BatchNorm of every backbone folds into its convolution (the naming rules of
    vsslzoo.models.fusion hold), the features stay the same, the network is untouched."""
    from vsslzoo.models.fusion import fold_batch_norms

    torch.manual_seed(0)
    network = build(arch, width=0.25, **args)
    for module in network.modules():  # trained-like statistics, not the identity ones
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    network.eval()
    before = {k: v.clone() for k, v in network.state_dict().items()}
    folded = fold_batch_norms(network)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                   for m in folded.modules())
    size = 64 if arch == "r3d_50" else 32
    clips = torch.randint(0, 256, (2, 3, 8, size, size), dtype=torch.uint8)
    with torch.no_grad():
        want = network.forward_features(clips)
        got = folded.forward_features(clips)
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3)  # float rounding only
    assert all(torch.equal(v, before[k]) for k, v in network.state_dict().items())
    network.train()
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(network)


def test_encoder_refolds_when_the_weights_change():
    from vsslzoo.config import ModelConfig
    from vsslzoo.encoder import VideoEncoder

    torch.manual_seed(0)
    network = build("r3d_18", width=0.125).eval()
    config = ModelConfig(architecture="r3d_18", model_args={"width": 0.125},
                         embed_dim=network.embed_dim,
                         preprocess=PreprocessConfig(num_frames=4, crop=(32, 32), resize=36))
    encoder = VideoEncoder(config, network, device="cpu")
    clips = torch.randint(0, 256, (2, 3, 4, 32, 32), dtype=torch.uint8)

    def plain():
        with torch.no_grad():
            return network(clips).numpy()

    np.testing.assert_allclose(encoder.embed_raw(clips), plain(), rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # in place, as an optimiser step or load_state_dict does
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.add_(0.3)
    np.testing.assert_allclose(encoder.embed_raw(clips), plain(), rtol=1e-4, atol=1e-5)
    network.train()  # training mode: batch statistics, run as it is
    train_out = encoder.embed_raw(clips)
    with torch.no_grad():
        np.testing.assert_allclose(train_out, network(clips).numpy(), rtol=1e-4, atol=1e-5)
