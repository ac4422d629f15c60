"""Inference copies of backbones with each BatchNorm folded into the convolution before it.

In eval mode a BatchNorm after a convolution is an affine map per output channel,
``y = (conv(x) - mu) * gamma / sqrt(var + eps) + beta``, so it can be folded into the
convolution's weight and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``): one pass over
the activations instead of two. On the CPU the BatchNorms were 13 % of the default
model's time (``bench/extract.py --default-model``). The folded copy gives the same
embeddings up to float rounding (tests compare every architecture); the network itself,
its state dict and its exports are left as they are.

Which BatchNorm follows which convolution is read from the module tree, by two rules
that every backbone of :mod:`vsslzoo.models` follows (and a test checks for each):

* in an ``nn.Sequential``, a ``BatchNormNd`` directly after a ``ConvNd``, or after an
  ``nn.Sequential`` that ends with one (R(2+1)D's spatial-then-temporal convolution);
* in any other module, children named ``conv{s}`` and ``bn{s}`` (the same suffix ``s``:
  ``conv``/``bn``, ``conv1``/``bn1``...), used as ``bn{s}(conv{s}(x))`` in ``forward``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _foldable(conv: nn.Module, norm: nn.Module) -> bool:
    return (isinstance(conv, _CONV) and isinstance(norm, _NORM)
            and conv.out_channels == norm.num_features and norm.track_running_stats
            and norm.running_mean is not None)


def _last_conv(parent: nn.Module, name: str) -> tuple[nn.Module, str] | None:
    """``(parent, name)`` of the convolution that ``parent.name`` ends with: itself, or
    the last module of a (nested) ``nn.Sequential``."""
    module = getattr(parent, name)
    while isinstance(module, nn.Sequential) and len(module):
        parent, name = module, list(module._modules)[-1]
        module = getattr(parent, name)
    return (parent, name) if isinstance(module, _CONV) else None


def conv_bn_pairs(network: nn.Module) -> list[tuple[nn.Module, str, nn.Module, str]]:
    """``(conv's parent, conv name, bn's parent, bn name)`` of every BatchNorm the rules
    above fold."""
    pairs = []
    for parent in network.modules():
        children = dict(parent.named_children())
        if isinstance(parent, nn.Sequential):
            names = list(children)
            for before, name in zip(names, names[1:]):
                conv = _last_conv(parent, before)
                if conv is not None and _foldable(getattr(*conv), children[name]):
                    pairs.append((*conv, parent, name))
            continue
        for name, child in children.items():
            if name.startswith("conv") and isinstance(child, _CONV):
                norm_name = "bn" + name[len("conv"):]
                if norm_name in children and _foldable(child, children[norm_name]):
                    pairs.append((parent, name, parent, norm_name))
    return pairs


def fold_batch_norms(network: nn.Module) -> nn.Module:
    """An eval-mode deep copy of ``network`` with its BatchNorms folded (see the module
    docstring); ``network`` is not changed. Float32 weights; call on a network in eval
    mode (a training-mode BatchNorm uses batch statistics and cannot be folded)."""
    if network.training:
        raise ValueError("fold_batch_norms needs a network in eval mode (call .eval())")
    folded = copy.deepcopy(network).eval()
    with torch.no_grad():
        for conv_parent, conv_name, norm_parent, norm_name in conv_bn_pairs(folded):
            conv, norm = getattr(conv_parent, conv_name), getattr(norm_parent, norm_name)
            setattr(conv_parent, conv_name, fuse_conv_bn_eval(conv, norm))
            setattr(norm_parent, norm_name, nn.Identity())
    for parameter in folded.parameters():
        parameter.requires_grad_(False)
    return folded
