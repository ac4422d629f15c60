"""The model zoo: names -> architecture, preprocessing, weights location, provenance.

A zoo entry is data (STYLE.md, practice 1). Names are ``{method}-{backbone}-{data}``.
This module imports no torch, so ``vsslzoo list`` stays instant.

Preprocessing per entry (``PreprocessConfig``) is the paper's clip length and
resolution; where a paper is silent vsslzoo chooses, and the choice is written here:

* **Frame stride 2** for UCF/K400-style features: the retrieval/fine-tune evaluation
  protocol of CtP (VCOP) and the papers that follow it (16 frames at stride 2, resize
  171x128, centre crop 112). CtP *pretrains* with a random stride 1..5; ParamCrop's
  views span 32..64 of 64 input frames (stride 2..4) and CA's local-clip stride is
  unstated. CORP states stride 2 on K400 and 1 on SSv2.
* **Mean/std**: CtP's reference code uses ImageNet statistics; ParamCrop's codebase
  (Alibaba) 0.45/0.225. CA and CORP state none and have no public code: vsslzoo's own
  training recipes use ImageNet statistics, so their entries do too.
* **CORP resolution**: 224^2 (CVRL's R3D-50 setting; the CORP text does not state it),
  resized from a 256 short side.

No entry has published weights yet: each says how to obtain them (train with
``vsslzoo.training``, convert a checkpoint, or pass a folder).
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._paper_facts import METHODS, RESULTS
from .config import (
    CONFIG_FILENAME,
    IMAGENET_MEAN,
    IMAGENET_STD,
    WEIGHTS_FILENAME,
    ModelConfig,
    PreprocessConfig,
    Provenance,
)
from .errors import UnknownModelError

HUB_ORG = "vsslzoo"

# method key -> paper key in _paper_facts.METHODS
METHOD_PAPER = {"ctp": "ctp", "paramcrop": "paramcrop", "ca": "ca", "corpf": "corp",
                "corpm": "corp"}
METHOD_TITLE = {
    "ctp": "CtP (Catch-the-Patch)",
    "paramcrop": "ParamCrop",
    "ca": "Controllable Augmentations",
    "corpf": "CORP_f",
    "corpm": "CORP_m",
}
DATASETS = {
    "ucf101": "UCF101",
    "k400": "Kinetics-400",
    "ssv2": "Something-Something V2",
    "synthetic": "vsslzoo synthetic motion videos",
    "corpus": "the vsslzoo corpus (camera footage, photographs in motion and synthetic "
              "videos from PyPI and Debian packages)",
}


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model.

    Attributes:
        name: ``{method}-{backbone}-{data}``.
        method: key of :data:`METHOD_PAPER` (``ctp``, ``paramcrop``, ``ca``, ``corpf``,
            ``corpm``).
        architecture, model_args, embed_dim: what :func:`vsslzoo.models.build` takes and
            the embedding size it gives.
        preprocess: the input the weights expect.
        data: pretraining data key of :data:`DATASETS`.
        hub_repo: Hugging Face repository holding config.json + model.safetensors.
        revision: pinned commit id (None: the default branch).
        sha256: sha256 of model.safetensors; verified after every download.
        config_sha256: sha256 of config.json; verified after every download (None: not
            pinned). A published entry pins every file loading uses: see
            :meth:`pinned_files` and :func:`pinning_problems`.
        provenance: where the weights come from.
        obtain: how to produce the weights while they are not published (commands).
        license: license of the weights.
        onnx_sha256: sha256 of the repository's model.onnx (the ``vsslzoo export`` graph
            of these weights); verified after every download. None: no graph is published,
            and ``load(name, backend="onnxruntime")`` says how to export one.
        embedded: folder inside the installed ``vsslzoo`` package that holds
            config.json + model.safetensors (the embedded default model): loads offline,
            sha256-checked like a download.
        measured: numbers vsslzoo measured on these weights, each a dict with ``task``,
            ``dataset``, ``metric``, ``value`` and ``source`` (the command).
    """

    name: str
    method: str
    architecture: str
    model_args: dict[str, Any]
    embed_dim: int
    preprocess: PreprocessConfig
    data: str
    hub_repo: str
    revision: str | None = None
    sha256: str | None = None
    config_sha256: str | None = None
    provenance: Provenance = field(default_factory=Provenance)
    obtain: str = ""
    license: str = "mit"
    onnx_sha256: str | None = None
    embedded: str | None = None
    measured: tuple[dict[str, Any], ...] = ()

    @property
    def available(self) -> bool:
        """True when weights can be had (downloaded from ``hub_repo``, or embedded in the
        package) and checked against ``sha256``."""
        return self.provenance.kind in ("converted", "trained") and self.sha256 is not None

    @property
    def offline(self) -> bool:
        """True when the weights ship inside the package (no download ever)."""
        return self.embedded is not None

    def embedded_folder(self) -> Path:
        """The package folder holding the embedded weights (``embedded`` must be set)."""
        if self.embedded is None:
            raise ValueError(f"{self.name} is not embedded in the package")
        return Path(__file__).resolve().parent / self.embedded

    @property
    def paper(self) -> dict[str, Any]:
        return METHODS[METHOD_PAPER[self.method]]

    @property
    def reported_results(self) -> list[dict[str, Any]]:
        return list(RESULTS.get(self.name, []))

    @property
    def backbone(self) -> str:
        return self.name.split("-")[1]

    def model_config(self) -> ModelConfig:
        return ModelConfig(
            architecture=self.architecture,
            model_args=dict(self.model_args),
            embed_dim=self.embed_dim,
            preprocess=self.preprocess,
            provenance=self.provenance,
            name=self.name,
        )

    def pinned_files(self) -> dict[str, str]:
        """Files of ``hub_repo`` at ``revision`` whose sha256 this entry records (file
        name -> sha256): config.json, model.safetensors, model.onnx, each when recorded.
        ``vsslzoo.load`` checks each file it uses against its pin."""
        pins = {CONFIG_FILENAME: self.config_sha256, WEIGHTS_FILENAME: self.sha256,
                "model.onnx": self.onnx_sha256}
        return {name: digest for name, digest in pins.items() if digest is not None}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (``vsslzoo info --json``)."""
        return {
            "name": self.name,
            "method": self.method,
            "paper": {k: self.paper[k] for k in ("title", "authors", "venue", "year", "arxiv")},
            "architecture": self.architecture,
            "model_args": dict(self.model_args),
            "embed_dim": self.embed_dim,
            "preprocess": self.preprocess.to_dict(),
            "data": self.data,
            "hub_repo": self.hub_repo,
            "revision": self.revision,
            "sha256": self.sha256,
            "config_sha256": self.config_sha256,
            "onnx_sha256": self.onnx_sha256,
            "available": self.available,
            "offline": self.offline,
            "default": self.name == DEFAULT_MODEL,
            "provenance": self.provenance.to_dict(),
            "obtain": self.obtain,
            "license": self.license,
            "reported_results": self.reported_results,
            "measured": list(self.measured),
        }


# ------------------------------------------------------------------------------------
# Preprocessing shared by families of entries
# ------------------------------------------------------------------------------------
_CTP_INPUT = PreprocessConfig(
    num_frames=16, frame_stride=2, resize=128, crop=(112, 112),
    mean=IMAGENET_MEAN, std=IMAGENET_STD,
)
_ALIBABA_INPUT = PreprocessConfig(
    num_frames=16, frame_stride=2, resize=128, crop=(112, 112),
    mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225),
)
_CA_INPUT = PreprocessConfig(
    num_frames=16, frame_stride=2, resize=128, crop=(112, 112),
    mean=IMAGENET_MEAN, std=IMAGENET_STD,
)
_CORP_K400_INPUT = PreprocessConfig(
    num_frames=16, frame_stride=2, resize=256, crop=(224, 224),
    mean=IMAGENET_MEAN, std=IMAGENET_STD,
)
_CORP_SSV2_INPUT = dataclasses.replace(_CORP_K400_INPUT, frame_stride=1)

# CtP's released code (microsoft/CtP) uses BatchNorm eps 1e-3 throughout.
_CTP_R3D = ("r3d_18", {"bn_eps": 1e-3}, 512)
_CTP_R2PLUS1D = ("r2plus1d_18", {"midplanes": "ctp", "bn_eps": 1e-3}, 512)

def _entry(
    name: str,
    arch: tuple[str, dict[str, Any], int],
    preprocess: PreprocessConfig,
    train_args: str,
    **extra: Any,
) -> ZooEntry:
    method, backbone, data = name.split("-")
    architecture, model_args, embed_dim = arch
    # UCF101 pretraining fits one GPU; Kinetics / SSv2 recipes are meant for 8 (torchrun)
    launcher = ("python -m" if data == "ucf101"
                else "torchrun --nproc-per-node 8 -m")
    obtain = (
        f"{launcher} vsslzoo.training {METHOD_PAPER[method]} --data /path/to/{data}/train "
        f"--arch {architecture} {train_args + ' ' if train_args else ''}--preset {data} "
        f"--bf16 --out runs/{name}"
        f"  # then vsslzoo.load('runs/{name}/model')"
    )
    if "obtain" in extra:
        obtain = extra.pop("obtain") + "\nor train it: " + obtain
    return ZooEntry(
        name=name,
        method=method,
        architecture=architecture,
        model_args=dict(model_args),
        embed_dim=embed_dim,
        preprocess=preprocess,
        data=data,
        hub_repo=f"{HUB_ORG}/{name}",
        provenance=Provenance(
            kind="unpublished", method=method, data=DATASETS[data],
            notes="No official weights were published by the authors; vsslzoo has not "
                  "published weights for this entry yet.",
        ),
        obtain=obtain,
        **extra,
    )


_BUILTIN: tuple[ZooEntry, ...] = (
    _entry("ctp-r3d18-ucf101", _CTP_R3D, _CTP_INPUT, ""),
    _entry("ctp-r3d18-k400", _CTP_R3D, _CTP_INPUT, ""),
    _entry("ctp-r2plus1d-ucf101", _CTP_R2PLUS1D, _CTP_INPUT, ""),
    _entry(
        "ctp-r2plus1d-k400", _CTP_R2PLUS1D, _CTP_INPUT, "",
        obtain="convert the third-party (SEVERE benchmark) CtP R(2+1)D-18 K400 checkpoint: "
               "python -m vsslzoo.training convert ctp CHECKPOINT.pth -o ctp-r2plus1d-k400/",
    ),
    _entry("paramcrop-s3dg-k400", ("s3dg", {}, 1024), _ALIBABA_INPUT, "--framework simclr"),
    _entry("paramcrop-r2d3d-k400", ("r2d3d_18", {}, 256), _ALIBABA_INPUT, "--framework simclr"),
    _entry("ca-r3d18-ucf101", ("r3d_18", {}, 512), _CA_INPUT, ""),
    _entry("ca-r3d18-k400", ("r3d_18", {}, 512), _CA_INPUT, ""),
    _entry("corpf-r3d50-k400", ("r3d_50", {}, 2048), _CORP_K400_INPUT, "--variant f"),
    _entry("corpm-r3d50-ssv2", ("r3d_50", {}, 2048), _CORP_SSV2_INPUT, "--variant m --clips 4"),
)

# -- the embedded default model ---------------------------------------------------------
# Trained on this project's CPU by the ParamCrop recipe's default-cpu preset, on the corpus
# that `python -m vsslzoo.training.data.corpus` rebuilds; shipped in the wheel (package
# folder vsslzoo/default_model/) so the main job runs offline on a fresh machine.
DEFAULT_MODEL = "paramcrop-s3dg025-corpus"
_DEFAULT_INPUT = PreprocessConfig(
    num_frames=8, frame_stride=2, resize=128, crop=(112, 112),
    mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225), normalize="frame",
)
_DEFAULT_TRAIN = (
    "python -m vsslzoo.training.data.corpus corpus/\n"
    "python -m vsslzoo.training paramcrop --data corpus/train.csv --arch s3dg "
    "--preset default-cpu --workers 1 --out runs/default"
    "  # then vsslzoo.load('runs/default/model')"
)
_DEFAULT_ENTRY = ZooEntry(
    name=DEFAULT_MODEL,
    method="paramcrop",
    architecture="s3dg",
    model_args={"width": 0.25, "flip_invariant": True},
    embed_dim=256,
    preprocess=_DEFAULT_INPUT,
    data="corpus",
    hub_repo=f"{HUB_ORG}/{DEFAULT_MODEL}",
    sha256="c9de346914c6d32c3ff392fa32148b512cb0276e0070e10706208d369bda2f82",  # DEFAULT_SHA256
    # model.onnx: `vsslzoo export paramcrop-s3dg025-corpus --format onnx` of these weights
    # (byte-identical when repeated); what the CLI runs on the CPU (loading.auto_backend)
    onnx_sha256="1130fef9505c2fddbfdd2b86431350bac7cc389828dacb6a44b5a3c1fb445e64",
    provenance=Provenance(
        kind="trained", method="paramcrop", data=DATASETS["corpus"],
        source="python -m vsslzoo.training paramcrop --preset default-cpu (this repository)",
        notes="ParamCrop (SimCLR) at CPU scale: S3D-G x1/4, 8x112^2 clips; see the "
              "default-cpu preset's docstring for every deviation from the paper.",
    ),
    obtain=_DEFAULT_TRAIN,
    embedded="default_model",
    measured=(
        {'task': 'near-duplicate retrieval', 'dataset': 'held-out real footage (16 segments)', 'metric': 'R@1 reencode', 'value': 1.0, 'source': 'python bench/retrieval.py --footage <dev footage> (bench/RESULTS.md)'},
        {'task': 'near-duplicate retrieval', 'dataset': 'held-out real footage (16 segments)', 'metric': 'R@1 flip', 'value': 1.0, 'source': 'python bench/retrieval.py --footage <dev footage> (bench/RESULTS.md)'},
        {'task': 'near-duplicate retrieval', 'dataset': 'held-out real footage (16 segments)', 'metric': 'R@1 brightness', 'value': 1.0, 'source': 'python bench/retrieval.py --footage <dev footage> (bench/RESULTS.md)'},
        {'task': 'near-duplicate retrieval', 'dataset': 'held-out real footage (16 segments)', 'metric': 'R@1 crop80', 'value': 0.812, 'source': 'python bench/retrieval.py --footage <dev footage> (bench/RESULTS.md)'},
        {'task': 'near-duplicate retrieval', 'dataset': 'held-out real footage (16 segments)', 'metric': 'R@1 mean', 'value': 0.953, 'source': 'python bench/retrieval.py --footage <dev footage> (bench/RESULTS.md)'},
        {'task': 'motion retrieval', 'dataset': 'synthetic motion (8 classes)', 'metric': 'R@1', 'value': 0.167, 'source': 'vsslzoo eval retrieval (bench/RESULTS.md)'},
        {'task': 'pretraining', 'dataset': 'vsslzoo corpus', 'metric': 'NT-Xent loss at step 10', 'value': 3.833, 'source': 'training/RESULTS.md'},
        {'task': 'pretraining', 'dataset': 'vsslzoo corpus', 'metric': 'NT-Xent loss at step 600', 'value': 1.357, 'source': 'training/RESULTS.md'},
        {'task': 'speed (2-core CPU)', 'dataset': '360p h264', 'metric': 'vsslzoo index time / plain decode time', 'value': 1.61, 'source': 'python bench/extract.py --default-model (median of 3 rounds; 1.31 in another run)'},
    ),
)

_REGISTRY: dict[str, ZooEntry] = {entry.name: entry for entry in (*_BUILTIN, _DEFAULT_ENTRY)}


def list_models(pattern: str | None = None) -> list[str]:
    """Zoo names, sorted; ``pattern`` is a shell-style filter (``"ctp-*"``, ``"*k400"``)."""
    names = sorted(_REGISTRY)
    if pattern:
        if not any(ch in pattern for ch in "*?["):
            pattern = f"*{pattern}*"
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return names


def is_model(name: str) -> bool:
    return name in _REGISTRY


def get_entry(name: str) -> ZooEntry:
    """The zoo entry called ``name``; an unknown name suggests close matches."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(unknown_model_message(name)) from None


def unknown_model_message(name: str) -> str:
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
    if not close:  # a prefix like 'ctp-r2plus1d' is closer to a family than a name
        close = [n for n in sorted(_REGISTRY) if n.startswith(name) or name in n][:3]
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else "."
    return (
        f"unknown model {name!r}{hint} See `vsslzoo list` for the zoo; a local model "
        "folder or hf-hub:ORG/NAME also works."
    )


def pinning_problems(entry: ZooEntry) -> list[str]:
    """What is wrong with ``entry``'s pins (empty: nothing). A revision must be a 40-hex
    commit id (a branch or tag can move under the sha256), every sha256 64 lowercase hex,
    and an entry whose weights are downloaded (available, not embedded) must pin the
    commit, config.json and model.safetensors. ``vsslzoo registry-entry`` prints entries
    that pass; a test runs it on every registered entry."""
    problems = []
    if entry.revision is not None and not re.fullmatch(r"[0-9a-f]{40}", entry.revision):
        problems.append(f"revision {entry.revision!r} is not a 40-hex commit id")
    for file_name, digest in entry.pinned_files().items():
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            problems.append(f"sha256 of {file_name} {digest!r} is not 64 lowercase hex digits")
    # embedded weights (inside the package) are never downloaded: nothing to pin
    if entry.available and getattr(entry, "embedded", None) is None:
        if entry.revision is None:
            problems.append("published weights without a pinned revision (commit id)")
        if entry.config_sha256 is None:
            problems.append(f"published weights without the sha256 of {CONFIG_FILENAME}")
    return problems


def register(entry: ZooEntry, *, overwrite: bool = False) -> None:
    """Add ``entry`` to the zoo (plugins, tests). Replacing a name needs ``overwrite``."""
    if entry.name in _REGISTRY and not overwrite:
        raise ValueError(f"model {entry.name!r} is already registered; pass overwrite=True")
    _REGISTRY[entry.name] = entry


def unregister(name: str) -> None:
    """Remove ``name`` from the zoo (no error if absent)."""
    _REGISTRY.pop(name, None)
