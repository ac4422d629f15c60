"""Controllable Augmentations (local-global region contrast, shortcut elimination,
temporal dependency) pretraining. See :mod:`.train`.

Modules: :mod:`.data` (controllable sampling tau_p), :mod:`.correspondence` (S_k, Eq. 1),
:mod:`.lowlevel` (intensity levels of tau_l), :mod:`.losses` (Eqs. 3-5, gradient
reversal, DDP gathers), :mod:`.heads` (projection, MINE G_theta, temporal heads G_psi),
:mod:`.model` (encoders f / f' and the total loss), :mod:`.train` (presets, CLI,
``benchmark_setup``).
"""
