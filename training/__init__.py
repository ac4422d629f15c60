"""vsslzoo.training: pretraining recipes (CtP, ParamCrop, Controllable Augmentations, CORP).

Installed as ``vsslzoo.training`` from the repository's top-level ``training/`` folder.
The recipes land with their own issues; this release ships none of them yet.
"""
