"""``vsslzoo.load``: a zoo name, ``hf-hub:org/repo[@rev]`` or a folder -> VideoEncoder.

Resolution order for a string:
1. ``hf-hub:`` prefix -> that Hub repository;
2. an existing folder holding config.json -> that folder (explicit files win, even when
   the folder is named like a zoo entry);
3. a zoo name -> the entry's Hub repository at its pinned revision, sha256-checked;
   an entry without published weights says how to obtain them;
4. anything else -> an error: "no such folder" for paths, close matches for names.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import registry
from .backends import BACKENDS
from .config import CONFIG_FILENAME, WEIGHTS_FILENAME, ModelConfig
from .encoder import Encoder
from .errors import ConfigError, ModelFolderError, ModelNotAvailableError, UnknownModelError
from .hub import HUB_PREFIX, HubRef, download_files

# The model used whenever none is named: shipped inside the package, loads offline.
DEFAULT_MODEL: str | None = registry.DEFAULT_MODEL
# what `backend=` takes: "auto" picks one of BACKENDS (auto_backend)
BACKENDS_AUTO = ("auto", *BACKENDS)


@dataclass(frozen=True)
class Source:
    """Where a model comes from: ``kind`` is "zoo", "hub" or "folder"."""

    kind: str
    text: str
    entry: registry.ZooEntry | None = None
    hub: HubRef | None = None
    folder: Path | None = None


def _looks_like_path(text: str) -> bool:
    return (
        os.sep in text
        or (os.altsep is not None and os.altsep in text)
        or text.startswith((".", "~"))
    )


def resolve_source(name_or_path: str | os.PathLike[str] | None, revision: str | None = None
                   ) -> Source:
    """Decide what ``name_or_path`` refers to (no download, no torch)."""
    if name_or_path is None:
        if DEFAULT_MODEL is None:
            raise UnknownModelError(
                "no model given, and this version of vsslzoo ships no embedded default model "
                "yet; pass a zoo name (see `vsslzoo list`), hf-hub:ORG/NAME or a model folder"
            )
        name_or_path = DEFAULT_MODEL
    text = os.fspath(name_or_path)
    if text.startswith(HUB_PREFIX):
        ref = HubRef.parse(text)
        if revision is not None:
            if ref.revision not in (None, revision):
                raise ConfigError(
                    f"{text!r} pins revision {ref.revision!r} but revision={revision!r} was "
                    "also passed; give one"
                )
            ref = HubRef(ref.repo_id, revision)
        return Source("hub", text, hub=ref)
    path = Path(text).expanduser()
    if path.is_dir() and ((path / CONFIG_FILENAME).is_file() or not registry.is_model(text)):
        return Source("folder", text, folder=path)
    if registry.is_model(text):
        entry = registry.get_entry(text)
        return Source("zoo", text, entry=entry,
                      hub=HubRef(entry.hub_repo, revision or entry.revision))
    if path.exists():
        raise ModelFolderError(
            f"{text} is a file, not a model folder; pass the folder that holds "
            f"{CONFIG_FILENAME} and {WEIGHTS_FILENAME}"
        )
    if _looks_like_path(text):
        raise ModelFolderError(
            f"no such model folder: {text}. Pass an existing folder holding {CONFIG_FILENAME} "
            f"+ {WEIGHTS_FILENAME}, a zoo name (`vsslzoo list`) or hf-hub:ORG/NAME"
        )
    raise UnknownModelError(registry.unknown_model_message(text))


def _training_available(method: str) -> bool:
    try:
        # a recipe is its package's `train` module (training/<method>/train.py)
        spec = importlib.util.find_spec(
            f"vsslzoo.training.{registry.METHOD_PAPER[method]}.train")
    except ModuleNotFoundError:  # vsslzoo.training itself missing (source checkout on PYTHONPATH)
        return False
    return spec is not None


def not_available_message(entry: registry.ZooEntry) -> str:
    recipe_note = (
        "" if _training_available(entry.method)
        else " (the vsslzoo.training recipe for this method is not part of this release yet)"
    )
    return (
        f"model {entry.name!r} has no published weights yet ({entry.provenance.notes}). "
        f"To obtain them{recipe_note}:\n  {entry.obtain}\n"
        "Then load the resulting folder: vsslzoo.load('path/to/folder'). "
        "If you have the weights on the Hub, load hf-hub:ORG/NAME."
    )


def fetch_files(
    source: Source,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
    filenames: tuple[str, ...] = (CONFIG_FILENAME, WEIGHTS_FILENAME),
    force_download: bool = False,
) -> dict[str, Path]:
    """Local paths of the model files of ``source`` (downloading when needed;
    ``force_download``: again, even when cached)."""
    if source.kind == "folder":
        assert source.folder is not None
        from .artefacts import read_config

        read_config(source.folder)  # explanatory error when config.json is missing
        return {name: source.folder / name for name in filenames}
    if source.kind == "zoo":
        assert source.entry is not None
        if not source.entry.available:
            raise ModelNotAvailableError(not_available_message(source.entry))
        if source.entry.embedded is not None:  # inside the package: never downloaded
            folder = source.entry.embedded_folder()
            missing = [name for name in filenames if not (folder / name).is_file()]
            if missing:
                raise ModelFolderError(
                    f"the embedded model {source.entry.name!r} lacks {missing} in {folder}: "
                    "the installation is incomplete; reinstall vsslzoo")
            return {name: folder / name for name in filenames}
    assert source.hub is not None
    return download_files(
        source.hub, filenames, cache_dir=cache_dir, local_files_only=local_files_only,
        force_download=force_download,
    )


def _check_against_entry(config: ModelConfig, entry: registry.ZooEntry) -> ModelConfig:
    expected = entry.model_config()
    for field_name in ("architecture", "model_args", "embed_dim"):
        if getattr(config, field_name) != getattr(expected, field_name):
            raise ModelFolderError(
                f"{entry.hub_repo}: config.json says {field_name}="
                f"{getattr(config, field_name)!r} but the zoo entry {entry.name!r} says "
                f"{getattr(expected, field_name)!r}; the repository does not hold this model"
            )
    return config.replace(name=entry.name)


def load(
    name_or_path: str | os.PathLike[str] | None = None,
    *,
    backend: str = "torch",
    device: str | Any | None = None,
    precision: str | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
    compile: bool = False,
    force_download: bool = False,
):
    """Load a model for inference.

    Args:
        name_or_path: a zoo name (``vsslzoo.list_models()``), ``hf-hub:ORG/NAME[@REV]``,
            or a local folder with config.json + model.safetensors.
        backend: "torch" (default), "onnxruntime" (runs the folder's ``model.onnx``
            written by ``vsslzoo export``; imports no torch), "tensorrt" (runs the
            folder's ``model.engine``) or "auto" (:func:`auto_backend`).
        device: "cpu", "cuda", "cuda:N"; default: CUDA when available, else CPU.
        precision: "fp32" (default), "bf16" or "fp16" (GPU only), used as autocast.
        revision: Hub branch, tag or commit (overrides a zoo entry's pinned revision).
        cache_dir: Hugging Face cache folder (default: the client's, from ``HF_HOME``).
        local_files_only: True: never touch the network; None: decide automatically
            (``HF_HUB_OFFLINE``, or an unreachable endpoint -> cache only).
        compile: run the network through ``torch.compile``.
        force_download: download the Hub files again even when cached (a cached file
            that fails its sha256 check is replaced this way).

    Returns:
        An :class:`~vsslzoo.encoder.Encoder`: a :class:`~vsslzoo.encoder.VideoEncoder`
        for the torch backend.
    """
    if backend not in BACKENDS_AUTO:
        raise ConfigError(f"unknown backend {backend!r}; choose one of "
                          f"{', '.join(BACKENDS_AUTO)}")
    if backend == "auto":
        backend = auto_backend(name_or_path, device=device, precision=precision,
                               compile=compile)
    source = resolve_source(name_or_path, revision)
    if backend != "torch":
        return _load_exported(source, backend, device=device, precision=precision,
                              cache_dir=cache_dir, local_files_only=local_files_only,
                              force_download=force_download)

    from .encoder import resolve_device, resolve_precision

    # Validate device and precision before any download.
    resolve_precision(precision, resolve_device(device))
    files = _checked_files(source, cache_dir=cache_dir, local_files_only=local_files_only,
                           force_download=force_download)
    return _build_encoder(files, device=device, precision=precision, compile=compile)


@dataclass(frozen=True)
class _CheckedFiles:
    """A torch model's files, fetched and checked (no torch needed to get here)."""

    source: Source
    config_path: Path
    weights_path: Path
    weights_sha256: str | None
    embedded: bool


def _checked_files(source: Source, *, cache_dir=None, local_files_only=None,
                   force_download: bool = False) -> _CheckedFiles:
    """Fetch config.json + model.safetensors and check what the registry records."""
    from .artefacts import sha256_of, verify_sha256

    paths = fetch_files(source, cache_dir=cache_dir, local_files_only=local_files_only,
                        force_download=force_download)
    entry = source.entry
    embedded = entry is not None and entry.embedded is not None
    if entry is not None and entry.config_sha256 is not None:
        verify_sha256(paths[CONFIG_FILENAME], entry.config_sha256, what=source.text,
                      embedded=embedded)
    weights = Path(paths[WEIGHTS_FILENAME])
    # hashed once: checked against the registry and recorded (indices compare it)
    weights_sha256 = sha256_of(weights) if weights.is_file() else None
    return _CheckedFiles(source, Path(paths[CONFIG_FILENAME]), weights, weights_sha256,
                         embedded)


def _build_encoder(files: _CheckedFiles, *, device, precision, compile: bool = False):
    """Rebuild the network from checked files (strict load) -> VideoEncoder."""
    from .artefacts import load_model_files
    from .encoder import VideoEncoder

    entry = files.source.entry
    config, network = load_model_files(
        files.config_path,
        files.weights_path,
        expected_sha256=entry.sha256 if entry is not None else None,
        what=files.source.text,
        weights_sha256=files.weights_sha256,
        embedded=files.embedded,
    )
    if entry is not None:
        config = _check_against_entry(config, entry)
    encoder = VideoEncoder(config, network, device=device, precision=precision,
                           source=files.source.text, compile=compile)
    encoder.weights_sha256 = files.weights_sha256
    return encoder


def auto_backend(name_or_path: str | os.PathLike[str] | None = None, *,
                 device: str | None = None, precision: str | None = None,
                 compile: bool = False) -> str:
    """The backend that runs ``name_or_path`` fastest here: "onnxruntime" for a model
    that ships a checked ONNX graph in the package (the embedded default model; the
    registry records its sha256) when onnxruntime is installed, on the CPU in fp32;
    "torch" otherwise.

    On a 2-core CPU, ONNX Runtime starts in 0.5 s where importing torch takes 2.5 s,
    and runs the default model nearly as fast (20 ms a clip against 16 ms on torch, batch
    16, 2 threads), so ``vsslzoo index`` of 90 s of video takes 1.3-1.6x a plain decode
    instead of 1.9x (``bench/extract.py --default-model``). Its embeddings equal torch's
    up to float rounding (a test compares them).
    """
    if compile or (device is not None and str(device) != "cpu") or (
            precision is not None and str(precision).lower() not in ("fp32", "float32")):
        return "torch"
    try:
        source = resolve_source(name_or_path)
    except Exception:  # noqa: BLE001 - the load that follows says what is wrong
        return "torch"
    entry = source.entry
    if (entry is None or entry.embedded is None or entry.onnx_sha256 is None
            or importlib.util.find_spec("onnxruntime") is None):
        return "torch"
    from .backends.onnxruntime import ONNX_FILENAME

    return "onnxruntime" if (entry.embedded_folder() / ONNX_FILENAME).is_file() else "torch"


def load_auto(name_or_path: str | os.PathLike[str] | None = None, *, backend: str = "auto",
              device: str | None = None, precision: str | None = None,
              compile: bool = False):
    """What the command-line jobs load: :func:`load` (``backend`` "auto" picks
    :func:`auto_backend`), except that torch loads in the background
    (:func:`load_in_background`) unless ``compile``."""
    if backend == "auto":
        backend = auto_backend(name_or_path, device=device, precision=precision,
                               compile=compile)
    if backend == "torch":
        if compile:
            return load(name_or_path, device=device, precision=precision, compile=True)
        return load_in_background(name_or_path, device=device, precision=precision)
    # an exported graph's precision is fixed when it is made: fp32 means "as exported"
    return load(name_or_path, backend=backend, device=device,
                precision=None if precision in (None, "fp32") else precision)


def load_in_background(
    name_or_path: str | os.PathLike[str] | None = None,
    *,
    device: str | None = None,
    precision: str | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
):
    """:func:`load` (torch backend), with the slow part in a background thread.

    Importing torch and building the network take ~3 s on a 2-core machine, as long as
    decoding a minute and a half of 360p video. The command-line jobs start their decode
    workers meanwhile (:func:`vsslzoo.extract.extract_videos` decodes ahead while the
    model loads). Everything that can fail without torch is done here, before this
    returns: the model is resolved, its files fetched, their sha256 checked against the
    registry, config.json read and the weights file's header parsed. What is left (the
    strict load of the weights into the network) raises from the first call that needs
    the network.

    Returns:
        A :class:`LoadingEncoder` (an :class:`~vsslzoo.encoder.Encoder`: ``config``,
        ``preprocess``, ``source`` and ``weights_sha256`` at once; ``embed_raw`` and every
        other attribute wait for the network). On a device other than the CPU, or with
        fp16, the model is loaded at once (errors about the GPU come first) and a
        :class:`~vsslzoo.encoder.VideoEncoder` is returned.
    """
    from .artefacts import check_weights_file, verify_sha256
    from .encoder import _PRECISION_ALIASES

    deferrable = (device is None or str(device) == "cpu") and (
        precision is None or _PRECISION_ALIASES.get(str(precision).lower()) in ("fp32", "bf16"))
    if not deferrable:
        return load(name_or_path, device=device, precision=precision, revision=revision,
                    cache_dir=cache_dir, local_files_only=local_files_only)
    source = resolve_source(name_or_path, revision)
    files = _checked_files(source, cache_dir=cache_dir, local_files_only=local_files_only)
    check_weights_file(files.weights_path)  # a missing/corrupt file is named before hashing
    if source.entry is not None and source.entry.sha256 is not None:
        verify_sha256(files.weights_path, source.entry.sha256, what=source.text,
                      actual=files.weights_sha256, embedded=files.embedded)
    config = ModelConfig.from_file(files.config_path)
    if source.entry is not None:
        config = _check_against_entry(config, source.entry)
    return LoadingEncoder(config, files, device=device, precision=precision)


class LoadingEncoder(Encoder):
    """A torch model whose network is being built in a background thread
    (:func:`load_in_background`); the rest of the program goes on meanwhile.

    ``config``, ``preprocess``, ``name``, ``embed_dim``, ``source`` and
    ``weights_sha256`` are known at once. :meth:`ready` says whether the network is
    there; :meth:`result` waits for the loaded :class:`~vsslzoo.encoder.VideoEncoder`
    (raising what loading raised), and ``embed_raw``, ``device``, ``network`` and any
    other attribute of a ``VideoEncoder`` go through it.
    """

    backend = "torch"

    def __init__(self, config: ModelConfig, files: _CheckedFiles, *, device, precision):
        import threading

        self.config = config
        self.source = files.source.text
        self.weights_sha256 = files.weights_sha256
        self._encoder = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._load, args=(files, device, precision), daemon=True,
            name="vsslzoo-load-model")
        self._thread.start()

    def _load(self, files: _CheckedFiles, device, precision) -> None:
        try:
            self._encoder = _build_encoder(files, device=device, precision=precision)
        except BaseException as exc:  # handed to the thread that needs the model
            self._error = exc

    def ready(self) -> bool:
        """True once loading has finished (successfully or not): nothing would wait."""
        return not self._thread.is_alive()

    def wait(self) -> None:
        """Wait for loading to finish, without raising its error (before exiting)."""
        self._thread.join()

    def result(self):
        """The loaded :class:`~vsslzoo.encoder.VideoEncoder` (waits for it)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._encoder

    def embed_raw(self, clips: Any, *, pooling: str = "avg"):
        return self.result().embed_raw(clips, pooling=pooling)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.result(), name)

    def __repr__(self) -> str:
        state = "loaded" if self.ready() and self._error is None else (
            "failed" if self.ready() else "loading")
        return (f"LoadingEncoder({self.source!r}, architecture="
                f"{self.config.architecture!r}, embed_dim={self.embed_dim}, {state})")


def _load_exported(source: Source, backend: str, *, device, precision, cache_dir,
                   local_files_only, force_download=False):
    """The onnxruntime / tensorrt backends (no torch import for onnxruntime)."""
    if backend == "onnxruntime":
        from .artefacts import verify_sha256
        from .backends.onnxruntime import ONNX_FILENAME, OnnxRuntimeEncoder

        entry = source.entry
        if entry is not None and entry.available and entry.onnx_sha256 is None:
            raise ModelNotAvailableError(
                f"the zoo entry {entry.name!r} records no sha256 of {ONNX_FILENAME}, so a "
                "downloaded graph could not be checked. Export one from the checked weights "
                f"and load that folder: `vsslzoo export {entry.name} --format onnx -o DIR`, "
                "then vsslzoo.load('DIR', backend='onnxruntime')")
        paths = fetch_files(source, cache_dir=cache_dir, local_files_only=local_files_only,
                            filenames=(CONFIG_FILENAME, ONNX_FILENAME),
                            force_download=force_download)
        if entry is not None and entry.config_sha256 is not None:
            verify_sha256(paths[CONFIG_FILENAME], entry.config_sha256, what=source.text)
        config = ModelConfig.from_file(paths[CONFIG_FILENAME])
        if entry is not None:
            config = _check_against_entry(config, entry)
            verify_sha256(paths[ONNX_FILENAME], entry.onnx_sha256, what=source.text,
                          embedded=entry.embedded is not None)
        encoder = OnnxRuntimeEncoder(config, paths[ONNX_FILENAME], device=device,
                                     precision=precision, source=source.text)
        if entry is not None and entry.sha256 is not None:
            # the registry vouches that this graph is the entry's weights (its sha256 is
            # recorded with theirs): the same identity as the torch load, so an index
            # built on one backend takes queries from the other
            encoder.weights_sha256 = entry.sha256
        return encoder
    from .backends.tensorrt import ENGINE_FILENAME, TensorRTEncoder

    if source.kind != "folder":
        raise ConfigError(
            "TensorRT engines are built for one GPU and TensorRT version: build one with "
            "`vsslzoo export FOLDER --format tensorrt` and load that folder")
    config = ModelConfig.from_file(fetch_files(source, filenames=(CONFIG_FILENAME,))[
        CONFIG_FILENAME])
    if precision is not None:
        raise ConfigError("the engine's precision is fixed when it is built "
                          "(vsslzoo export --format tensorrt --precision ...)")
    return TensorRTEncoder(config, source.folder / ENGINE_FILENAME, device=device,
                           source=source.text)


def describe(
    name_or_path: str | os.PathLike[str] | None = None,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
) -> dict[str, Any]:
    """What ``vsslzoo info`` shows: config, preprocessing, provenance, weights location
    (of :data:`DEFAULT_MODEL` when ``name_or_path`` is None).

    Needs no torch; for a Hub repository only config.json is fetched.
    """
    source = resolve_source(name_or_path, revision)
    if source.kind == "zoo":
        assert source.entry is not None
        info = source.entry.to_dict()
        info["source"] = "zoo"
        entry = source.entry
        if entry.available and entry.embedded is not None:
            info["weights"] = f"embedded in the package (offline): {entry.embedded_folder()}"
        elif entry.available:
            info["weights"] = f"https://huggingface.co/{entry.hub_repo}"
        else:
            info["weights"] = "not published: " + entry.obtain
        return info
    paths = fetch_files(
        source, cache_dir=cache_dir, local_files_only=local_files_only,
        filenames=(CONFIG_FILENAME,),
    )
    config = ModelConfig.from_file(paths[CONFIG_FILENAME])
    info = config.to_dict()
    info["source"] = source.kind
    if source.kind == "folder":
        weights = Path(paths[CONFIG_FILENAME]).parent / WEIGHTS_FILENAME
        info["weights"] = str(weights) if weights.is_file() else f"missing: {weights}"
    else:
        info["weights"] = f"{source.hub} (config.json cached at {paths[CONFIG_FILENAME]})"
    return info
