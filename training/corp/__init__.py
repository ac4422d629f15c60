"""CORP_f and CORP_m (contrast and order representation) pretraining with decoupling
attention. See :mod:`.train`."""
