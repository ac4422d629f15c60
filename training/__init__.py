"""vsslzoo.training: pretraining recipes, installed as ``vsslzoo.training``.

* :mod:`.trainer`: the loop every recipe shares (DDP, bf16, schedules, checkpoints, logs).
* :mod:`.optim`: SGD / Adam / LARS and per-iteration learning-rate schedules.
* :mod:`.data`: datasets over folders, class trees and CSVs; synthetic motion videos;
  batched clip augmentations (:mod:`.data.augment`, every recipe's colour jitter among
  them); the decode-and-crop steps the samplers share (:mod:`.data.frames`: decoding a
  probed video's clip plans at a short side, crop-and-resize, ``VideoTooShortError``).
* :mod:`.recipe`: the command-line flags, resume, the run's config and trainer, and the
  export every recipe shares.
* :mod:`.distributed`: differentiable cross-process gathers (contrastive negatives),
  BatchNorm over the global batch, the launch's rank and world size.
* :mod:`.layers`: gradient reversal (ParamCrop's crops, CA's MINE estimator) and the
  projection head (ParamCrop, CORP).
* :mod:`.losses`: InfoNCE against gathered candidates (ParamCrop's NT-Xent, CORP_f's
  Eq. 5).
* :mod:`.ctp`: CtP (the recipe, its pieces, and checkpoint conversion).
* :mod:`.paramcrop`: ParamCrop (learned adversarial 3D crops; SimCLR or MoCo).
* :mod:`.ca`: Controllable Augmentations (region contrast, shortcut elimination,
  temporal dependency).
* :mod:`.corp`: CORP_f / CORP_m (contrast and order, decoupling attention).
* :mod:`.evaluate`: downstream linear probe (retrieval lives in :mod:`vsslzoo.evaluate`).
"""
