"""ParamCrop (Qian et al.): learned adversarial 3D cropping for contrastive video
pretraining, with SimCLR or MoCo. See :mod:`.train`."""
