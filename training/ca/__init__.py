"""Controllable Augmentations (local-global region contrast, shortcut elimination,
temporal dependency) pretraining. See :mod:`.train`."""
