"""Model folders: ``config.json`` + ``model.safetensors`` + ``README.md``.

``save_pretrained`` writes a folder atomically (each file to a temp name, then renamed);
``load_model_folder`` rebuilds the network from config.json and loads the weights
*strictly*: a missing, unexpected or wrongly shaped tensor is an error naming the keys.
Weights are never pickles.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .config import CARD_FILENAME, CONFIG_FILENAME, WEIGHTS_FILENAME, ModelConfig
from .errors import ChecksumError, ConfigError, ModelFolderError, WeightsMismatchError
from .fileio import atomic_write_bytes

if TYPE_CHECKING:
    import torch
    from torch import nn

_LISTED_KEYS = 8  # how many offending keys an error message shows


def sha256_of(path: str | os.PathLike[str], chunk_bytes: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike[str], expected: str, what: str,
                  actual: str | None = None, *, embedded: bool = False) -> str:
    """Raise :class:`ChecksumError` unless ``path`` hashes to ``expected`` (hex); returns
    the hash. ``actual``: the file's sha256 when the caller has computed it already.
    ``embedded``: the file ships inside the installed package (nothing to download
    again: the error says to reinstall)."""
    actual = actual or sha256_of(path)
    if actual != expected.lower():
        if embedded:
            fix = ("This file ships inside the installed vsslzoo package, which is damaged "
                   "or was modified. Fix: reinstall it (pip install --force-reinstall "
                   "--no-deps vsslzoo, or from a checkout: git checkout -- "
                   f"vsslzoo/{Path(path).parent.name}), and report it if it persists.")
        else:
            fix = ("The download is corrupt or the repository changed. Fix: download it "
                   f"again with vsslzoo.load({what!r}, force_download=True) (or delete that "
                   "file from the Hugging Face cache), and report it if it persists.")
        raise ChecksumError(
            f"{what}: sha256 of {path} is {actual}, but the registry records {expected}. "
            + fix)
    return actual


def save_pretrained(
    network: nn.Module,
    config: ModelConfig,
    folder: str | os.PathLike[str],
    *,
    card: str | None = None,
) -> Path:
    """Write ``network``'s weights, ``config`` and a model card into ``folder``.

    Args:
        network: the backbone (its ``state_dict`` is saved in float32 as safetensors).
        config: the config that rebuilds ``network`` (its ``embed_dim`` must match).
        folder: created if missing; existing files of the same names are replaced.
        card: README.md text; generated from ``config`` (and the registry) if None.

    Returns:
        The folder path.
    """
    import torch
    from safetensors.torch import save as save_safetensors

    embed_dim = getattr(network, "embed_dim", config.embed_dim)
    if embed_dim != config.embed_dim:
        raise ConfigError(
            f"config.embed_dim is {config.embed_dim} but the network produces {embed_dim}"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        key: (value.detach().to("cpu", torch.float32) if value.is_floating_point()
              else value.detach().cpu()).contiguous()
        for key, value in network.state_dict().items()
    }
    metadata = {"format": "pt", "architecture": config.architecture}
    atomic_write_bytes(folder / WEIGHTS_FILENAME, save_safetensors(tensors, metadata=metadata))
    atomic_write_bytes(folder / CONFIG_FILENAME, config.to_json().encode("utf-8"))
    if card is None:
        from .zoo_docs import render_folder_card

        card = render_folder_card(config)
    atomic_write_bytes(folder / CARD_FILENAME, card.encode("utf-8"))
    return folder


def read_config(folder: str | os.PathLike[str]) -> ModelConfig:
    """config.json of a model folder, with errors that say what a model folder is."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"{folder} is not a folder")
    config_path = folder / CONFIG_FILENAME
    if not config_path.is_file():
        present = sorted(p.name for p in folder.iterdir())[:10]
        raise ModelFolderError(
            f"{folder} has no {CONFIG_FILENAME} (it holds {present or 'nothing'}). A vsslzoo "
            f"model folder holds {CONFIG_FILENAME} + {WEIGHTS_FILENAME}; make one with "
            "save_pretrained(), `python -m vsslzoo.training convert`, or a training run's "
            "model/ folder."
        )
    return ModelConfig.from_file(config_path)


def read_weights(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file; a missing, empty, corrupt or truncated file is an error."""
    from safetensors.torch import load_file

    return _read_safetensors(Path(path), load_file)


def check_weights_file(path: str | os.PathLike[str]) -> None:
    """What :func:`read_weights` says of a missing, empty, corrupt or truncated file, found
    without torch: the header and the data's extent are read, not the tensors."""
    from safetensors import safe_open

    def header(name: str):
        with safe_open(name, framework="numpy") as handle:
            return handle.keys()

    _read_safetensors(Path(path), header)


def _read_safetensors(path: Path, read):
    from safetensors import SafetensorError

    if not path.is_file():
        raise ModelFolderError(
            f"{path} does not exist: the model folder has a config but no weights. "
            f"Fix: put the {WEIGHTS_FILENAME} that belongs to this config beside it."
        )
    if path.stat().st_size == 0:
        raise ModelFolderError(f"{path} is empty (0 bytes). Fix: re-download or re-export it.")
    try:
        return read(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFolderError(
            f"{path} is corrupt or truncated ({exc}). Fix: re-download or re-export it."
        ) from exc


def load_state_dict_strict(
    network: nn.Module, tensors: dict[str, torch.Tensor], *, where: str, config: ModelConfig
) -> None:
    """Copy ``tensors`` into ``network``; any key or shape mismatch is an error naming them."""
    expected = network.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong_shape = sorted(
        f"{key} {tuple(tensors[key].shape)} vs {tuple(expected[key].shape)}"
        for key in set(expected) & set(tensors)
        if tuple(tensors[key].shape) != tuple(expected[key].shape)
    )
    if missing or unexpected or wrong_shape:

        def listed(keys: list[str]) -> str:
            more = f" (+{len(keys) - _LISTED_KEYS} more)" if len(keys) > _LISTED_KEYS else ""
            return ", ".join(keys[:_LISTED_KEYS]) + more

        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {listed(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {listed(unexpected)}")
        if wrong_shape:
            parts.append(f"{len(wrong_shape)} shape mismatch(es) (file vs model): "
                         f"{listed(wrong_shape)}")
        raise WeightsMismatchError(
            f"{where} does not fit architecture {config.architecture!r} with model_args "
            f"{config.model_args}: " + "; ".join(parts) + ". These are weights for another "
            "architecture or variant: fix config.json, or convert the checkpoint with "
            "`python -m vsslzoo.training convert`."
        )
    network.load_state_dict(tensors, strict=True)


def build_network(config: ModelConfig) -> nn.Module:
    """A randomly initialised backbone for ``config``, checked against its ``embed_dim``."""
    from .models import build

    network = build(config.architecture, preprocess=config.preprocess, **config.model_args)
    if network.embed_dim != config.embed_dim:
        raise ConfigError(
            f"config says embed_dim={config.embed_dim} but {config.architecture} with "
            f"{config.model_args} produces {network.embed_dim}; fix config.json"
        )
    return network


def load_model_files(
    config_path: str | os.PathLike[str],
    weights_path: str | os.PathLike[str],
    *,
    expected_sha256: str | None = None,
    what: str | None = None,
    weights_sha256: str | None = None,
    embedded: bool = False,
) -> tuple[ModelConfig, nn.Module]:
    """Rebuild the network described by ``config_path`` and load ``weights_path`` strictly.

    ``expected_sha256`` (from the registry) is checked before the tensors are used;
    ``weights_sha256`` is the file's hash when the caller has computed it (hashed once).
    """
    config = ModelConfig.from_file(config_path)
    weights_path = Path(weights_path)
    tensors = read_weights(weights_path)  # a missing/corrupt file is named before hashing
    if expected_sha256:
        verify_sha256(weights_path, expected_sha256, what=what or str(weights_path),
                      actual=weights_sha256, embedded=embedded)
    network = build_network(config)
    load_state_dict_strict(network, tensors, where=str(weights_path), config=config)
    network.eval()
    return config, network


def load_model_folder(folder: str | os.PathLike[str]) -> tuple[ModelConfig, nn.Module]:
    """Rebuild the network of a model folder and load its weights strictly."""
    folder = Path(folder)
    read_config(folder)  # a folder without config.json gets the explanatory error
    return load_model_files(folder / CONFIG_FILENAME, folder / WEIGHTS_FILENAME)
