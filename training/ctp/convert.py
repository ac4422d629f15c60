"""Convert CtP checkpoints that exist in the wild into vsslzoo model folders.

Two layouts are recognised, by key names *and* tensor shapes (names as in microsoft/CtP
``pyvrl/models/backbones/r3d.py`` and torchvision ``torchvision/models/video/resnet.py``):

* **mmcv** (microsoft/CtP ``pyvrl``): ``{"state_dict": ...}``, keys ``module.``-prefixed
  or not, backbone under ``backbone.``: ``stem.conv_s|bn_s|conv_t|bn_t`` (R(2+1)D) or
  ``stem.conv|bn`` (R3D); ``layerX.Y.convK.conv_s|bn_s|conv_t`` or ``convK.conv``;
  ``bnK``; ``downsample.conv`` and ``downsample_bn``. The head (``cls_head.*``) and
  anything outside the backbone is dropped.
* **torchvision** (the CtP R(2+1)D-18 K400 checkpoint the SEVERE benchmark distributes):
  ``stem.0/1/3/4``, ``layerX.Y.convK.0.{0,1,3}``, ``convK.1``, ``downsample.0/1``, ``fc``
  (dropped), optionally prefixed (``module.``, ``backbone.``).

The R(2+1)D variant (CtP vs torchvision mid-planes) is read from the shape of
``layer2.0.conv2``'s spatial convolution (288 vs 230 channels). BatchNorm eps is 1e-3,
CtP's training value, whatever the layout (``bn_eps`` changes it). Loading into the
target network is strict: a missing, unexpected or mis-shaped tensor is an error that
names it.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vsslzoo.config import ModelConfig, Provenance
from vsslzoo.errors import ConfigError, ModelFolderError

_CTP_MIDPLANES = {288: "ctp", 230: "torchvision"}

# mmcv name -> torchvision-layout name (the layout of vsslzoo's networks)
_MMCV_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^stem\.conv_s\.(.+)$"), r"stem.0.\1"),
    (re.compile(r"^stem\.bn_s\.(.+)$"), r"stem.1.\1"),
    (re.compile(r"^stem\.conv_t\.(.+)$"), r"stem.3.\1"),
    (re.compile(r"^stem\.bn_t\.(.+)$"), r"stem.4.\1"),
    (re.compile(r"^stem\.conv\.(.+)$"), r"stem.0.\1"),
    (re.compile(r"^stem\.bn\.(.+)$"), r"stem.1.\1"),
    (re.compile(r"^(layer\d\.\d+)\.(conv[12])\.conv_s\.(.+)$"), r"\1.\2.0.0.\3"),
    (re.compile(r"^(layer\d\.\d+)\.(conv[12])\.bn_s\.(.+)$"), r"\1.\2.0.1.\3"),
    (re.compile(r"^(layer\d\.\d+)\.(conv[12])\.conv_t\.(.+)$"), r"\1.\2.0.3.\3"),
    (re.compile(r"^(layer\d\.\d+)\.(conv[12])\.conv\.(.+)$"), r"\1.\2.0.\3"),
    (re.compile(r"^(layer\d\.\d+)\.bn([12])\.(.+)$"), r"\1.conv\2.1.\3"),
    (re.compile(r"^(layer\d\.\d+)\.downsample\.conv\.(.+)$"), r"\1.downsample.0.\2"),
    (re.compile(r"^(layer\d\.\d+)\.downsample_bn\.(.+)$"), r"\1.downsample.1.\2"),
]


@dataclass
class ConversionReport:
    folder: Path
    layout: str
    architecture: str
    model_args: dict[str, Any]
    dropped: list[str]


def load_checkpoint(path: str | os.PathLike[str], *, trust_pickle: bool = False) -> dict:
    """The tensors of a ``.pth`` checkpoint (``weights_only`` unless ``trust_pickle``)."""
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelFolderError(f"no such checkpoint file: {path}")
    with open(path, "rb") as handle:
        pickled = handle.read(1) == b"\x80"  # a legacy torch.save / pickle stream
    if not (zipfile.is_zipfile(path) or pickled):
        raise ModelFolderError(f"{path} is not a readable PyTorch checkpoint (neither the zip "
                               "format of torch.save nor a pickle)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        raise ModelFolderError(
            f"{path} holds Python objects besides tensors, which are not loaded by default "
            f"({str(exc).splitlines()[0]}). If you trust the file, pass --trust-pickle."
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise ModelFolderError(f"{path} is not a readable PyTorch checkpoint ({exc})") from None
    for key in ("state_dict", "model", "module"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
            break
    if not isinstance(data, dict) or not data:
        raise ModelFolderError(f"{path} holds no state dict")
    return {k: v for k, v in data.items() if hasattr(v, "shape")}


def _strip(key: str, prefix: str) -> str:
    while key.startswith(prefix):
        key = key[len(prefix):]
    return key


def to_vsslzoo_layout(state: dict) -> tuple[dict, str, list[str]]:
    """(tensors in vsslzoo's key layout, detected layout name, dropped keys)."""
    state = {_strip(k, "module."): v for k, v in state.items()}
    dropped: list[str] = []
    if any(k.startswith("backbone.") for k in state):
        mmcv_like = any(".conv_s." in k or k.startswith("backbone.stem.conv.") for k in state)
        backbone = {}
        for key, value in state.items():
            if key.startswith("backbone."):
                backbone[key[len("backbone."):]] = value
            else:
                dropped.append(key)
        state = backbone
        if not mmcv_like:  # torchvision layout saved under a 'backbone.' prefix
            return _drop_fc(state, dropped), "torchvision", dropped
        converted = {}
        unknown = []
        for key, value in state.items():
            for pattern, replacement in _MMCV_RULES:
                if pattern.match(key):
                    converted[pattern.sub(replacement, key)] = value
                    break
            else:
                unknown.append(key)
        if unknown:
            raise ModelFolderError(
                f"unrecognised CtP (mmcv) backbone keys: {sorted(unknown)[:8]}; this is not "
                "a CtP R3D / R(2+1)D checkpoint")
        return converted, "mmcv", dropped
    return _drop_fc(state, dropped), "torchvision", dropped


def _drop_fc(state: dict, dropped: list[str]) -> dict:
    kept = {}
    for key, value in state.items():
        if key.startswith("fc."):
            dropped.append(key)
        else:
            kept[key] = value
    return kept


def detect_architecture(state: dict) -> tuple[str, dict[str, Any]]:
    """(architecture, model_args) from tensor shapes."""
    stem = state.get("stem.0.weight")
    if stem is None or stem.dim() != 5:
        raise ModelFolderError("no stem convolution (stem.0.weight) found: not a CtP "
                               "R3D / R(2+1)D backbone")
    if tuple(stem.shape[2:]) == (3, 7, 7):
        return "r3d_18", {}
    if tuple(stem.shape[2:]) != (1, 7, 7) or "stem.3.weight" not in state:
        raise ModelFolderError(f"unexpected stem kernel {tuple(stem.shape)}")
    mid = state.get("layer2.0.conv2.0.0.weight")
    if mid is None or int(mid.shape[0]) not in _CTP_MIDPLANES:
        found = None if mid is None else int(mid.shape[0])
        raise ModelFolderError(
            f"cannot tell the R(2+1)D variant: layer2.0.conv2 has {found} mid-planes "
            f"(CtP: 288, torchvision: 230)")
    return "r2plus1d_18", {"midplanes": _CTP_MIDPLANES[int(mid.shape[0])]}


def convert_ctp(
    checkpoint: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    data: str = "k400",
    bn_eps: float = 1e-3,
    trust_pickle: bool = False,
) -> ConversionReport:
    """Write a vsslzoo model folder for a CtP checkpoint.

    Args:
        checkpoint: ``.pth`` file (mmcv or torchvision layout).
        output: folder to write (config.json, model.safetensors, README.md).
        data: pretraining data of the checkpoint ("k400" or "ucf101"), for the name and card.
        bn_eps: BatchNorm eps of the converted network (CtP trained with 1e-3).
    """
    from vsslzoo import registry
    from vsslzoo.artefacts import build_network, load_state_dict_strict, save_pretrained

    if data not in ("k400", "ucf101"):
        raise ConfigError(f"data must be 'k400' or 'ucf101' (CtP's pretraining sets), got "
                          f"{data!r}")
    state = load_checkpoint(checkpoint, trust_pickle=trust_pickle)
    state, layout, dropped = to_vsslzoo_layout(state)
    architecture, model_args = detect_architecture(state)
    model_args = {**model_args, "bn_eps": bn_eps}
    backbone = "r3d18" if architecture == "r3d_18" else "r2plus1d"
    name = f"ctp-{backbone}-{data}"
    entry = registry.get_entry(name)
    digest = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()
    config = ModelConfig(
        architecture=architecture, model_args=model_args, embed_dim=entry.embed_dim,
        preprocess=entry.preprocess, name=name,
        provenance=Provenance(
            kind="converted", method="ctp", data=registry.DATASETS[data],
            source=f"{Path(checkpoint).name} (sha256 {digest})",
            notes=f"converted from the {layout} layout by `python -m vsslzoo.training "
                  f"convert ctp`; BatchNorm eps {bn_eps}",
        ),
    )
    network = build_network(config)
    load_state_dict_strict(network, state, where=str(checkpoint), config=config)
    save_pretrained(network, config, output)
    return ConversionReport(Path(output), layout, architecture, model_args, sorted(dropped))
