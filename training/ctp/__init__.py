"""CtP (Catch-the-Patch, Wang et al. 2021) pieces for ``vsslzoo.training``.

* :mod:`.convert`: CtP checkpoints (mmcv or torchvision layout) -> model folders.
* :mod:`.trajectories`: synthetic patch trajectories with the paper's constraints.
* :mod:`.roi_align`, :mod:`.head`: the prediction head (temporal squeeze, RoIAlign, MLP).
* :mod:`.targets`: regression targets, their decoding, the smooth-L1 loss, IoU.
* :mod:`.paste`: patch cut-and-paste along trajectories, with masks, alpha and MRM.
* :mod:`.data`, :mod:`.model`, :mod:`.train`: the training sample, the network with its
  loss, and the recipe (``python -m vsslzoo.training ctp``).
"""
