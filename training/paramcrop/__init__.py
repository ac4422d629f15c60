"""ParamCrop (Qing, Huang et al. 2021): learned adversarial 3D cropping for contrastive
video pretraining, with SimCLR or MoCo. See :mod:`.train`."""
