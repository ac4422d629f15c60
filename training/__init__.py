"""vsslzoo.training: pretraining recipes, installed as ``vsslzoo.training``.

* :mod:`.trainer`: the loop every recipe shares (DDP, bf16, schedules, checkpoints, logs).
* :mod:`.optim`: SGD / Adam / LARS and per-iteration learning-rate schedules.
* :mod:`.data`: datasets over folders, class trees and CSVs; synthetic motion videos.
* :mod:`.ctp`: CtP (the recipe, its pieces, and checkpoint conversion).
* :mod:`.evaluate`: downstream linear probe (retrieval lives in :mod:`vsslzoo.evaluate`).

ParamCrop, Controllable Augmentations and CORP land with their own issues.
"""
