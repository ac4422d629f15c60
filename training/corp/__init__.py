"""CORP_f and CORP_m (contrast and order representation) pretraining with decoupling
attention. See :mod:`.train`.

* :mod:`.sampling`: K clip starts at the minimal offset of Eq. 3.
* :mod:`.data`: the training sample (decode, random resized crop, augmentation draws) and
  the on-device augmentations (§3.2).
* :mod:`.relation`: mixed (Eq. 1) and decoupling (Eq. 8) attention with the perceptron.
* :mod:`.losses`: CORP_m's 3-way pair loss (§3.2) and CORP_f's InfoNCE + order (Eq. 5-6).
* :mod:`.model`: backbone, projection head (§3.1), relation head, loss.
* :mod:`.train`: presets, the recipe (``python -m vsslzoo.training corp``), and
  ``benchmark_setup`` for GPU timing.
"""
