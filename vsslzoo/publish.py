"""Publishing: a model folder -> one Hub commit anyone loads by name; checks of what was published.

Three calls, all through the real ``huggingface_hub`` client (``HF_ENDPOINT``,
``HF_TOKEN`` / ``hf auth login``, the cache and ``HF_HUB_OFFLINE`` apply as usual):

* :func:`push_folder` (``vsslzoo push``): strict-loads the folder, then sends
  ``POST /api/repos/create`` (``HfApi.create_repo(exist_ok=True)``) and one commit
  (``HfApi.create_commit``: ``preupload``, the LFS or Xet upload of the large files,
  ``POST .../commit/main``) holding config.json, model.safetensors, a generated
  README.md, ``vsslzoo.json`` and, when the folder has them, model.onnx + export.json.
* :func:`verify` (``vsslzoo verify``): downloads the files (or takes them from the
  cache), checks their sha256 against the zoo entry's pins or the Hub's LFS metadata
  (``GET /api/models/{repo}/revision/{rev}?blobs=true``) and ``vsslzoo.json``,
  strict-loads the model and compares the embedding of the reference clip with the
  one recorded at push time.
* :func:`registry_entry` (``vsslzoo registry-entry``): the pinned :class:`ZooEntry`
  of a published repository (one metadata request and a config.json download), as
  Python source a maintainer pastes into ``vsslzoo/registry.py``.

``vsslzoo.json`` is written at push time: the sha256 of every model file, and the raw
embedding of :func:`reference_clip` (integer arithmetic from a seed: the same bytes on
every machine), so that a broken upload, a changed config or a change of the network
code is caught by ``verify``.
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .config import CARD_FILENAME, CONFIG_FILENAME, WEIGHTS_FILENAME, ModelConfig
from .errors import (
    ChecksumError,
    ConfigError,
    HubError,
    ModelFolderError,
    VerificationError,
    VsslzooError,
)
from .hub import HUB_PREFIX, HubRef

if TYPE_CHECKING:
    import numpy as np

    from .config import PreprocessConfig
    from .registry import ZooEntry

PUBLISH_INFO = "vsslzoo.json"
ONNX_FILENAME = "model.onnx"  # backends.onnxruntime.ONNX_FILENAME (that module imports numpy)
EXPORT_INFO = "export.json"  # written beside model.onnx by `vsslzoo export`
RUN_INFO, RUN_METRICS = "run.json", "metrics.jsonl"  # a training run: RUN/model + these
REFERENCE_SEED = 0
# fp32 on another CPU, or TF32 convolutions on a GPU, move the embedding by ~1e-6..1e-4;
# a changed mean/std, resize or layer moves it by far more than 1e-4 in cosine.
COSINE_MIN = 0.9999
NORM_RTOL = 1e-3
# run.json args that describe one invocation, not the training
_NOT_COMMAND_ARGS = ("resume", "export_only", "given", "max_steps")


# ------------------------------------------------------------------------------------
# The reference clip and what push records
# ------------------------------------------------------------------------------------
def reference_clip(preprocess: PreprocessConfig, seed: int = REFERENCE_SEED) -> np.ndarray:
    """``(1, 3, T, H, W)`` uint8: hashed noise (0..127) with a bright square moving one
    pixel per frame down and right; T, H, W from ``preprocess``.

    Made with integer arithmetic only (a splitmix64 hash of each pixel's index), so the
    bytes are the same on every machine and numpy version.
    """
    import numpy as np

    frames, (height, width) = preprocess.num_frames, preprocess.crop
    channel, time, row, col = np.ogrid[:3, :frames, :height, :width]
    index = (((channel * frames + time) * height + row) * width + col).astype(np.uint64)
    z = index + np.uint64(seed + 1) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    clip = (z >> np.uint64(57)).astype(np.uint8)  # 0..127
    side = max(1, min(height, width) // 4)
    for t in range(frames):
        top, left = t % max(1, height - side), t % max(1, width - side)
        for c in range(3):
            clip[c, t, top:top + side, left:left + side] = 192 + 24 * c
    return clip[None]


def _reference_embedding(encoder, seed: int = REFERENCE_SEED) -> list[float]:
    """Raw (un-normalised) float32 embedding of the reference clip, as JSON floats."""
    return [float(v) for v in encoder.embed_raw(reference_clip(encoder.preprocess, seed))[0]]


def compare_embeddings(recorded: list[float], measured: list[float]) -> tuple[float, float]:
    """``(cosine, norm ratio measured/recorded)`` of two raw embeddings."""
    import numpy as np

    a, b = np.asarray(recorded, np.float64), np.asarray(measured, np.float64)
    if a.shape != b.shape:
        return float("nan"), float("nan")
    norm_a, norm_b = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if norm_a == 0.0 or norm_b == 0.0:
        return (1.0 if norm_a == norm_b else 0.0), (1.0 if norm_a == norm_b else float("inf"))
    return float(a @ b / (norm_a * norm_b)), norm_b / norm_a


# ------------------------------------------------------------------------------------
# Training run -> card sections
# ------------------------------------------------------------------------------------
def read_training_run(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What the card says about the run that made ``folder`` (``RUN/model`` beside
    ``RUN/run.json``): the training command, git commit, world size, and the first and
    last ``metrics.jsonl`` records. None when ``folder`` is not in a training run."""
    run_dir = Path(folder).resolve().parent
    if not (run_dir / RUN_INFO).is_file():
        return None
    try:
        run = json.loads((run_dir / RUN_INFO).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelFolderError(f"{run_dir / RUN_INFO} is not valid JSON ({exc}); fix it or "
                               "push a copy of the model folder outside the run") from None
    records = []
    metrics = run_dir / RUN_METRICS
    if metrics.is_file():
        for line in metrics.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a crash: the others still count
                continue
    config = ModelConfig.from_file(Path(folder) / CONFIG_FILENAME)
    return {
        "command": training_command(run, config.provenance.method),
        "git": run.get("git"),
        "world_size": run.get("world_size", 1),
        "videos": run.get("videos"),
        "first": records[0] if records else None,
        "last": records[-1] if records else None,
    }


def training_command(run: dict[str, Any], method: str) -> str:
    """The ``python -m vsslzoo.training`` (or ``torchrun``) command of a run.json:
    the flags given on the command line when run.json records them (``args.given``),
    else every flag that is set."""
    from .registry import METHOD_PAPER

    args = dict(run.get("args") or {})
    given = set(args.get("given") or ())
    world = int(run.get("world_size") or 1)
    launcher = (f"torchrun --nproc-per-node {world} -m" if world > 1 else "python -m")
    words = [*launcher.split(), "vsslzoo.training", METHOD_PAPER.get(method, method or "RECIPE")]
    for key, value in args.items():
        if key in _NOT_COMMAND_ARGS or value is None or value is False:
            continue
        if given and key not in given and key not in ("data", "out"):
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            words.append(flag)
        elif isinstance(value, (list, tuple)):
            words += [flag, *(str(v) for v in value)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def _metrics_table(first: dict[str, Any] | None, last: dict[str, Any] | None) -> str:
    if not last:
        return "The run logged no metrics."
    keys = [k for k in last if isinstance(last[k], (int, float)) and k != "step"]
    head = f"| metric | step {first.get('step', '?')} | step {last.get('step', '?')} |" \
        if first is not last else f"| metric | step {last.get('step', '?')} |"
    lines = [head, "|---|---|---|" if first is not last else "|---|---|"]
    for key in keys:
        cells = [last[key]] if first is last else [first.get(key, ""), last[key]]
        lines.append(f"| {key} | " + " | ".join(
            f"{v:.4g}" if isinstance(v, float) else str(v) for v in cells) + " |")
    return "\n".join(lines)


def render_push_card(config: ModelConfig, repo_id: str, files: dict[str, str],
                     run: dict[str, Any] | None) -> str:
    """README.md of a pushed model: the folder card (:func:`zoo_docs.render_card`) with
    ``hf-hub:`` usage, the training run (command, git commit, first and last logged
    metrics) and the sha256 of every file."""
    from .zoo_docs import render_card

    hub_name = f"{HUB_PREFIX}{repo_id}"
    card = render_card(config.replace(name=hub_name))  # usage: vsslzoo.load('hf-hub:...')
    card = card.replace(f"# {hub_name}\n", f"# {repo_id}\n", 1)  # the title: the repo
    out = [card.rstrip("\n") + "\n"]
    if run is not None:
        out.append("## Training run\n")
        out.append("Reconstructed from the run's `run.json`:\n\n```\n" + run["command"] + "\n```\n")
        facts = [f"- git commit of vsslzoo: `{run['git']}`" if run.get("git") else None,
                 f"- processes: {run['world_size']}",
                 f"- training videos: {run['videos']}" if run.get("videos") else None]
        out.append("\n".join(f for f in facts if f) + "\n")
        out.append("Training log (`metrics.jsonl`, first and last records):\n")
        out.append(_metrics_table(run.get("first"), run.get("last")) + "\n")
    out.append("## Files\n")
    out.append("| file | sha256 |\n|---|---|\n" + "\n".join(
        f"| {name} | `{digest}` |" for name, digest in files.items()) + "\n")
    out.append(f"`{PUBLISH_INFO}` records these and the embedding of a fixed synthetic clip; "
               f"check the upload end to end with `vsslzoo verify {hub_name}`, and print the "
               f"pinned zoo entry with `vsslzoo registry-entry {hub_name}@COMMIT`.\n")
    return "\n".join(out)


# ------------------------------------------------------------------------------------
# push
# ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PushResult:
    """What one push made: ``commit`` is the 40-hex commit id (the branch head when no
    file changed, as ``create_commit`` answers then)."""

    repo_id: str
    commit: str
    commit_url: str
    files: dict[str, str]  # path in the repo -> sha256
    notes: tuple[str, ...] = ()

    @property
    def reference(self) -> str:
        """The pinned ``hf-hub:ORG/NAME@COMMIT`` reference."""
        return f"{HUB_PREFIX}{self.repo_id}@{self.commit}"


@dataclass
class UploadPlan:
    """What :func:`push_folder` will commit (made without any network)."""

    folder: Path
    config: ModelConfig
    uploads: dict[str, Path | bytes]  # path in the repo -> local file or content
    sha256: dict[str, str] = field(default_factory=dict)  # model files -> sha256
    notes: list[str] = field(default_factory=list)


def _repo_id(text: str) -> str:
    ref = HubRef.parse(text)
    if ref.revision is not None:
        raise ConfigError(f"repository {text!r}: give ORG/NAME without @REVISION; a push always "
                          "makes a new commit on the main branch")
    return ref.repo_id


def prepare_upload(folder: str | os.PathLike[str], repo_id: str) -> UploadPlan:
    """Check ``folder`` and build the files of the commit. Refuses a folder that does not
    load strictly, and a model.onnx not exported from these weights."""
    from .artefacts import load_model_folder, sha256_of
    from .encoder import VideoEncoder

    folder = Path(folder)
    try:
        config, network = load_model_folder(folder)  # strict: names wrong keys and shapes
    except VsslzooError as exc:
        raise type(exc)(f"refusing to push {folder}: {exc}") from None
    plan = UploadPlan(folder=folder, config=config, uploads={})
    for name in (CONFIG_FILENAME, WEIGHTS_FILENAME):
        plan.uploads[name] = folder / name
        plan.sha256[name] = sha256_of(folder / name)
    if (folder / ONNX_FILENAME).is_file():
        export_path = folder / EXPORT_INFO
        try:
            exported_from = (json.loads(export_path.read_text()).get("weights_sha256")
                             if export_path.is_file() else None)
        except (json.JSONDecodeError, AttributeError):
            exported_from = None
        if exported_from != plan.sha256[WEIGHTS_FILENAME]:
            why = (f"its {EXPORT_INFO} records weights sha256 {exported_from}, "
                   f"{WEIGHTS_FILENAME} is {plan.sha256[WEIGHTS_FILENAME]}"
                   if exported_from else f"there is no {EXPORT_INFO} saying which weights "
                   "it was exported from")
            raise ModelFolderError(
                f"refusing to push {folder}: {ONNX_FILENAME} may not be these weights ({why}). "
                f"Fix: export it again (`vsslzoo export {folder} --format onnx -o {folder}`) "
                f"or remove {ONNX_FILENAME}")
        plan.uploads[ONNX_FILENAME] = folder / ONNX_FILENAME
        plan.uploads[EXPORT_INFO] = export_path
        plan.sha256[ONNX_FILENAME] = sha256_of(folder / ONNX_FILENAME)
    encoder = VideoEncoder(config, network, device="cpu", source=str(folder))
    run = read_training_run(folder)
    info: dict[str, Any] = {
        "format": 1,
        "vsslzoo_version": __version__,
        "files": dict(plan.sha256),
        "reference_clip": {"seed": REFERENCE_SEED, "shape": [1, *config.preprocess.input_shape],
                           "embedding": _reference_embedding(encoder)},
    }
    if run is not None:
        info["training"] = {"command": run["command"], "git": run["git"],
                            "world_size": run["world_size"], "last": run["last"]}
    card_path = folder / CARD_FILENAME
    from .zoo_docs import render_folder_card

    if card_path.is_file() and card_path.read_text(encoding="utf-8") != render_folder_card(config):
        plan.uploads[CARD_FILENAME] = card_path  # an edited card is the author's word
        plan.notes.append(
            f"{CARD_FILENAME} differs from the card vsslzoo generates, so it is uploaded as "
            "is; delete it before pushing to get the generated card (training run, sha256)")
    else:
        card = render_push_card(config, repo_id, plan.sha256, run)
        plan.uploads[CARD_FILENAME] = card.encode("utf-8")
    plan.uploads[PUBLISH_INFO] = (json.dumps(info, indent=1) + "\n").encode("utf-8")
    return plan


def _token(token: str | None) -> str:
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise HubError(
            "no Hugging Face token: pushing needs one with write access. Fix: run "
            "`hf auth login` (or `huggingface-cli login`), or set HF_TOKEN=hf_..., then push again")
    return token


def _client_errors() -> tuple[type[BaseException], ...]:
    """What the client raises besides HfHubHTTPError when a request fails: its HTTP
    library's transport errors (httpx2 in huggingface_hub 2.x, httpx in 1.x; not
    OSError subclasses), OSError, and ValueError / RuntimeError (a bad card, an LFS
    batch or upload error)."""
    import importlib

    errors: list[type[BaseException]] = [OSError, ValueError, RuntimeError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module).HTTPError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def _http_error_message(exc: Exception, repo_id: str, endpoint: str) -> str:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if status == 401:
        return (f"the Hub at {endpoint} refused the token (401 Unauthorized: it is invalid or "
                "expired). Fix: `hf auth login` with a token that has write access, or set "
                "HF_TOKEN to one")
    if status == 403:
        org = repo_id.split("/")[0]
        return (f"the token may not write to {repo_id} (403 Forbidden). Fix: use a token with "
                f"write access to the namespace {org!r} (a fine-grained token needs 'write' on "
                "its repos; `hf auth whoami` shows who you are), or push to your own namespace")
    return f"pushing to {repo_id} on {endpoint} failed: {first_line}"


def push_folder(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool | None = None,
    commit_message: str | None = None,
    token: str | None = None,
) -> PushResult:
    """Upload a model folder to the Hub as one commit on ``main``.

    Sends (huggingface_hub): ``POST /api/repos/create`` (the repo is created when
    missing; ``private`` applies only then), ``POST /api/validate-yaml`` (the card),
    ``POST /api/models/{repo}/preupload/main``, the upload of model.safetensors (and
    model.onnx) by LFS or Xet, and ``POST /api/models/{repo}/commit/main``. Files that
    did not change are not uploaded again; when none did, no commit is made.

    Args:
        folder: a model folder (config.json + model.safetensors; ``RUN/model`` of a
            training run adds the run's command and metrics to the card).
        repo_id: ``ORG/NAME`` (or ``hf-hub:ORG/NAME``).
        private: make a new repository private (None: the namespace's default).
        commit_message: summary of the commit (default: "Upload <name> with vsslzoo").
        token: Hub token (default: ``HF_TOKEN`` or the one ``hf auth login`` saved).

    Returns:
        :class:`PushResult`; ``result.reference`` is ``hf-hub:ORG/NAME@COMMIT``.

    Raises:
        ModelFolderError / WeightsMismatchError: the folder does not load strictly (no
            request is sent).
        HubError: no token, the Hub unreachable, or the upload refused (what to do).
    """
    from .hub import _endpoint, endpoint_reachable

    repo_id = _repo_id(repo_id)
    plan = prepare_upload(folder, repo_id)
    token = _token(token)
    endpoint = _endpoint()
    if not endpoint_reachable(endpoint):
        raise HubError(f"cannot reach the Hub at {endpoint}; nothing was pushed. Fix: connect "
                       "to the internet (or set HF_ENDPOINT), then push again")
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(endpoint=endpoint, token=token, library_name="vsslzoo",
                library_version=__version__)
    name = plan.config.name or Path(folder).resolve().name
    operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=content)
                  for path, content in plan.uploads.items()]
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.create_commit(
            repo_id, operations,
            commit_message=commit_message or f"Upload {name} with vsslzoo",
            commit_description=f"Pushed with vsslzoo {__version__} from {Path(folder).name}; "
                               f"sha256 of every model file in {PUBLISH_INFO}.",
        )
    except HfHubHTTPError as exc:
        raise HubError(_http_error_message(exc, repo_id, endpoint)) from None
    except _client_errors() as exc:  # connection lost, bad card, LFS errors
        raise HubError(f"pushing to {repo_id} on {endpoint} failed: {exc}; the commit was not "
                       "made. Fix the cause and push again (finished uploads are reused)") from None
    files = {path: plan.sha256[path] for path in plan.sha256}
    return PushResult(repo_id=repo_id, commit=info.oid, commit_url=str(info.commit_url),
                      files=files, notes=tuple(plan.notes))


def push_encoder(encoder, repo_id: str, **kwargs: Any) -> PushResult:
    """:meth:`VideoEncoder.push_to_hub`: save to a temporary folder, then
    :func:`push_folder` it."""
    with tempfile.TemporaryDirectory(prefix="vsslzoo-push-") as tmp:
        folder = Path(tmp) / (encoder.config.name or "model")
        encoder.save_pretrained(folder)
        return push_folder(folder, repo_id, **kwargs)


# ------------------------------------------------------------------------------------
# Hub metadata
# ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HubFile:
    """A file of a commit as the Hub describes it: LFS sha256, or git blob sha1."""

    path: str
    size: int | None
    blob_id: str | None
    lfs_sha256: str | None


def hub_files(ref: HubRef) -> tuple[str, dict[str, HubFile]]:
    """``(commit, files)`` of ``ref`` from one ``GET /api/models/{repo}/revision/{rev}
    ?blobs=true`` (``HfApi.model_info(files_metadata=True)``)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from .hub import _endpoint

    endpoint = _endpoint()
    try:
        info = HfApi(endpoint=endpoint, library_name="vsslzoo",
                     library_version=__version__).model_info(
            ref.repo_id, revision=ref.revision, files_metadata=True)
    except RepositoryNotFoundError:
        raise HubError(f"{ref}: repository {ref.repo_id!r} not found on {endpoint} (or it is "
                       "private: log in with `hf auth login`)") from None
    except RevisionNotFoundError:
        raise HubError(f"{ref}: revision {ref.revision!r} does not exist in "
                       f"{ref.repo_id!r}") from None
    except (HfHubHTTPError, *_client_errors()) as exc:
        raise HubError(f"{ref}: asking {endpoint} for the repository's files failed: {exc}. "
                       "Fix: retry, or verify offline with HF_HUB_OFFLINE=1") from None
    files = {
        s.rfilename: HubFile(s.rfilename, s.size, s.blob_id,
                             s.lfs.sha256 if s.lfs is not None else None)
        for s in info.siblings or ()
    }
    return info.sha, files


def _check_against_hub(path: Path, hub_file: HubFile, sha256: str, what: str) -> str:
    """Compare a downloaded file with the Hub's metadata; returns how it was checked."""
    if hub_file.lfs_sha256 is not None:
        if sha256 != hub_file.lfs_sha256:
            raise ChecksumError(
                f"{what}: {hub_file.path} in the local cache ({path}) has sha256 {sha256}, but "
                f"the Hub's LFS metadata says {hub_file.lfs_sha256}: the downloaded copy is "
                "corrupt. Fix: run again with --force-download (or delete it from the cache)")
        return "sha256 = the Hub's LFS sha256"
    if hub_file.blob_id is not None:
        from huggingface_hub.utils.sha import git_hash

        actual = git_hash(path.read_bytes())
        if actual != hub_file.blob_id:
            raise ChecksumError(
                f"{what}: {hub_file.path} in the local cache ({path}) has git blob id {actual}, "
                f"but the Hub says {hub_file.blob_id}: the downloaded copy is corrupt. Fix: "
                "run again with --force-download (or delete it from the cache)")
        return "git blob sha1 = the Hub's"
    return "no Hub metadata for this file"


def _fetch_optional(ref: HubRef, filename: str, *, cache_dir, local_files_only: bool,
                    force_download: bool = False) -> Path | None:
    """A file that a repo may lack (vsslzoo.json, model.onnx): its local path, or None."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(ref.repo_id, filename, revision=ref.revision,
                                    cache_dir=None if cache_dir is None else str(cache_dir),
                                    local_files_only=local_files_only,
                                    force_download=force_download, library_name="vsslzoo"))
    except (EntryNotFoundError, LocalEntryNotFoundError):
        return None


# ------------------------------------------------------------------------------------
# verify
# ------------------------------------------------------------------------------------
@dataclass
class VerifyReport:
    """What :func:`verify` checked: ``reference`` is the model pinned to what was checked
    (``hf-hub:ORG/NAME@COMMIT`` for Hub models); ``checks`` one line per check."""

    model: str
    reference: str
    checks: list[str] = field(default_factory=list)
    cosine: float | None = None  # reference-clip embedding vs the recorded one


def _offline(local_files_only: bool | None) -> tuple[bool, str]:
    from .hub import _endpoint, _offline_flag, endpoint_reachable

    if local_files_only is not None:
        return local_files_only, "local_files_only=True was passed" if local_files_only else ""
    if _offline_flag():
        return True, "HF_HUB_OFFLINE is set"
    if not endpoint_reachable(_endpoint()):
        return True, f"the Hub endpoint {_endpoint()} cannot be reached"
    return False, ""


def verify(
    model: str | os.PathLike[str] | None = None,
    *,
    device: str | None = "cpu",
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
    force_download: bool = False,
) -> VerifyReport:
    """Check a published model end to end; raise on the first failure.

    1. files: download (or take from the cache) config.json, model.safetensors and,
       when published, model.onnx and vsslzoo.json, at one commit;
    2. sha256 of each against the zoo entry's pins (a zoo name), the Hub's metadata
       (``hf-hub:`` refs, online: ``model_info(files_metadata=True)``), and the sha256
       vsslzoo.json recorded at push time;
    3. strict load, and the raw embedding of :func:`reference_clip` on ``device``:
       finite, and within cosine :data:`COSINE_MIN` and norm :data:`NORM_RTOL` of the
       recorded one (and the same for model.onnx when onnxruntime is installed).

    Args:
        model: a zoo name, ``hf-hub:ORG/NAME[@REV]`` or a model folder (default: the
            default model).
        local_files_only: True: cache only; None: decide as :func:`vsslzoo.load` does.
        force_download: download again even when cached.

    Raises:
        ChecksumError: a file differs from its pin, the Hub's metadata or vsslzoo.json.
        VerificationError: the reference embedding differs from the recorded one.
        ModelFolderError, HubError: files missing, not loadable, or not downloadable.
    """
    import math

    from .artefacts import load_model_files, sha256_of, verify_sha256
    from .encoder import VideoEncoder
    from .loading import Source, _check_against_entry, fetch_files, resolve_source

    source = resolve_source(model)
    embedded = source.kind == "zoo" and getattr(source.entry, "embedded", None)
    # a folder or the package's own weights: no Hub to ask (no reachability probe)
    offline, why = ((True, "") if source.kind == "folder" or embedded
                    else _offline(local_files_only))
    report = VerifyReport(model=source.text, reference=source.text)
    hub_meta: dict[str, HubFile] | None = None
    names = [CONFIG_FILENAME, WEIGHTS_FILENAME]
    if source.entry is not None and source.entry.onnx_sha256:  # pinned: must be there
        names.append(ONNX_FILENAME)
    if source.kind == "hub":
        assert source.hub is not None
        if offline:
            report.checks.append(f"Hub metadata: not asked ({why}); files from the cache")
        else:
            commit, hub_meta = hub_files(source.hub)
            source = Source("hub", source.text, hub=HubRef(source.hub.repo_id, commit))
            report.reference = str(source.hub)
            missing = [n for n in names if n not in hub_meta]
            if missing:
                raise ModelFolderError(f"{report.reference}: the repository has no "
                                       f"{', '.join(missing)}, so it is not a vsslzoo model")
    elif source.kind == "zoo" and source.entry is not None and source.entry.revision:
        report.reference = f"{source.text} ({source.entry.hub_repo}@{source.entry.revision})"
    # offline and not forced: None lets download_files say why (HF_HUB_OFFLINE, unreachable)
    paths = fetch_files(source, cache_dir=cache_dir,
                        local_files_only=local_files_only if offline else False,
                        force_download=force_download, filenames=tuple(names))
    optional: dict[str, Path | None] = {}
    for name in (PUBLISH_INFO, ONNX_FILENAME):
        if name in names:
            continue
        if source.kind == "folder":
            assert source.folder is not None
            optional[name] = source.folder / name if (source.folder / name).is_file() else None
        elif embedded:
            folder = source.entry.embedded_folder()
            optional[name] = folder / name if (folder / name).is_file() else None
        elif hub_meta is not None and name not in hub_meta:
            optional[name] = None
        else:
            assert source.hub is not None
            optional[name] = _fetch_optional(source.hub, name, cache_dir=cache_dir,
                                             local_files_only=offline,
                                             force_download=force_download)
    paths.update({name: path for name, path in optional.items() if path is not None})
    recorded: dict[str, Any] = {}
    if paths.get(PUBLISH_INFO) is not None:
        try:
            recorded = json.loads(Path(paths[PUBLISH_INFO]).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise VerificationError(f"{report.reference}: {PUBLISH_INFO} is not valid JSON "
                                    f"({exc}); push the model again") from None
    # -- sha256 of every file ----------------------------------------------------------
    entry = source.entry
    pins = entry.pinned_files() if entry is not None else {}
    digests: dict[str, str] = {}
    for name in (CONFIG_FILENAME, WEIGHTS_FILENAME, ONNX_FILENAME):
        if name not in paths:
            continue
        path = Path(paths[name])
        digests[name] = sha256_of(path)
        how = []
        if name in pins:
            verify_sha256(path, pins[name], what=source.text, actual=digests[name])
            how.append("= the zoo entry's pin")
        if hub_meta is not None and name in hub_meta:
            how.append(_check_against_hub(path, hub_meta[name], digests[name], report.reference))
        pushed = (recorded.get("files") or {}).get(name)
        if pushed is not None:
            if digests[name] != pushed:
                cause = ("the repository's file was changed after the push, or the upload broke"
                         if hub_meta is not None else
                         "the file was changed after the push, or this copy is corrupt")
                raise ChecksumError(
                    f"{report.reference}: {name} has sha256 {digests[name]}, but {PUBLISH_INFO} "
                    f"recorded {pushed} when the model was pushed: {cause}. Fix: push the model "
                    "folder again with `vsslzoo push`, or use a commit that verifies")
            how.append(f"= {PUBLISH_INFO}")
        report.checks.append(f"{name}: sha256 {digests[name][:16]}… "
                             + ("; ".join(how) if how else "(nothing recorded to compare)"))
    # -- strict load and the reference embedding ---------------------------------------
    config, network = load_model_files(paths[CONFIG_FILENAME], paths[WEIGHTS_FILENAME],
                                       what=source.text, weights_sha256=digests[WEIGHTS_FILENAME])
    if entry is not None:
        config = _check_against_entry(config, entry)
    report.checks.append(f"strict load: {config.architecture} {config.model_args}, "
                         f"{config.embed_dim}-d")
    encoder = VideoEncoder(config, network, device=device, source=source.text)
    reference = recorded.get("reference_clip") or {}
    seed = int(reference.get("seed", REFERENCE_SEED))
    measured = _reference_embedding(encoder, seed)
    if not all(math.isfinite(v) for v in measured):
        raise VerificationError(f"{report.reference}: the embedding of the reference clip is "
                                "not finite (NaN or inf): the weights are broken")
    shape = list(reference.get("shape") or [])
    if reference and shape != [1, *config.preprocess.input_shape]:
        raise VerificationError(
            f"{report.reference}: {PUBLISH_INFO} recorded the reference clip for input "
            f"{shape}, config.json now says {[1, *config.preprocess.input_shape]}: the "
            "preprocessing changed after the push. Fix: push the model folder again")
    version = recorded.get("vsslzoo_version")
    if "embedding" in reference:
        report.cosine = _compare(report.reference, "PyTorch", reference["embedding"], measured,
                                 version)
        report.checks.append(f"reference clip (seed {seed}): cosine {report.cosine:.7f} to the "
                             f"embedding recorded at push time (>= {COSINE_MIN})")
    else:
        report.checks.append(f"reference clip (seed {seed}): embeds to a finite "
                             f"{len(measured)}-d vector (no embedding recorded to compare)")
    if ONNX_FILENAME in paths:
        # the graph must embed like the recorded embedding, or like these weights
        report.checks.append(_check_onnx(report.reference, config, Path(paths[ONNX_FILENAME]),
                                         seed, reference.get("embedding", measured), version))
    return report


def _compare(what: str, runtime: str, recorded: list[float], measured: list[float],
             version: str | None) -> float:
    cosine, ratio = compare_embeddings(recorded, measured)
    if not (cosine >= COSINE_MIN and abs(ratio - 1.0) <= NORM_RTOL):
        version = version or "an unknown version"
        raise VerificationError(
            f"{what}: {runtime}'s embedding of the reference clip differs from the one recorded "
            f"at push time (cosine {cosine:.6f}, needs >= {COSINE_MIN}; norm ratio {ratio:.4f}) "
            "although the files hash as recorded: the preprocessing in config.json or the network "
            f"code of this vsslzoo ({__version__}; pushed with {version}) changed. Fix: compare "
            f"config.json with the pushed model folder, or install the vsslzoo that pushed it")
    return cosine


def _check_onnx(what: str, config: ModelConfig, onnx_path: Path, seed: int,
                recorded: list[float], version: str | None) -> str:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return f"{ONNX_FILENAME}: not run (onnxruntime is not installed)"
    from .backends.onnxruntime import OnnxRuntimeEncoder

    graph = OnnxRuntimeEncoder(config, onnx_path, device="cpu", source=what)
    measured = [float(v) for v in graph.embed_raw(reference_clip(config.preprocess, seed))[0]]
    cosine = _compare(what, "ONNX Runtime", recorded, measured, version)
    return f"{ONNX_FILENAME}: ONNX Runtime embeds the reference clip with cosine {cosine:.7f}"


# ------------------------------------------------------------------------------------
# registry-entry
# ------------------------------------------------------------------------------------
def registry_entry(
    ref_text: str,
    *,
    name: str | None = None,
    method: str | None = None,
    data: str | None = None,
) -> ZooEntry:
    """The pinned zoo entry of a published repository.

    Sends ``GET /api/models/{repo}/revision/{rev}?blobs=true`` (commit and the Hub's
    sha256 of every LFS file) and downloads config.json (and vsslzoo.json, README.md
    when present) at that commit. Large files are not downloaded: their sha256 is the
    Hub's LFS metadata, checked against vsslzoo.json when it records them.

    Args:
        ref_text: ``hf-hub:ORG/NAME[@REV]``; without a revision the branch ``main`` is
            pinned at its current commit.
        name: zoo name (default: NAME); an existing entry's architecture and
            preprocessing must match.
        method, data: keys of ``registry.METHOD_PAPER`` and ``registry.DATASETS``
            (default: from config.json's provenance, else from the name
            ``{method}-{backbone}-{data}``).
    """
    from . import registry
    from .config import Provenance
    from .hub import download_files
    from .zoo_docs import parse_front_matter

    ref = HubRef.parse(ref_text)
    commit, hub_meta = hub_files(ref)
    pinned = HubRef(ref.repo_id, commit)
    missing = [n for n in (CONFIG_FILENAME, WEIGHTS_FILENAME) if n not in hub_meta]
    if missing:
        raise ModelFolderError(f"{pinned}: the repository has no {', '.join(missing)}, so it "
                               "is not a vsslzoo model; push one with `vsslzoo push`")
    config_path = download_files(pinned, (CONFIG_FILENAME,), local_files_only=False)[
        CONFIG_FILENAME]
    from .artefacts import sha256_of

    sha: dict[str, str] = {CONFIG_FILENAME: sha256_of(config_path)}
    _check_against_hub(config_path, hub_meta[CONFIG_FILENAME], sha[CONFIG_FILENAME], str(pinned))
    config = ModelConfig.from_file(config_path)
    extras = {n: _fetch_optional(pinned, n, cache_dir=None, local_files_only=False)
              for n in (PUBLISH_INFO, CARD_FILENAME) if n in hub_meta}
    recorded = (json.loads(extras[PUBLISH_INFO].read_text(encoding="utf-8"))
                if extras.get(PUBLISH_INFO) else {})
    for file_name in (WEIGHTS_FILENAME, ONNX_FILENAME):
        if file_name not in hub_meta:
            continue
        digest = hub_meta[file_name].lfs_sha256
        if digest is None:  # stored as a regular git file: hash a download
            digest = sha256_of(download_files(pinned, (file_name,), local_files_only=False)[
                file_name])
        sha[file_name] = digest
    for file_name, digest in sha.items():
        pushed = (recorded.get("files") or {}).get(file_name)
        if pushed is not None and pushed != digest:
            raise ChecksumError(
                f"{pinned}: the Hub's {file_name} has sha256 {digest}, but {PUBLISH_INFO} "
                f"recorded {pushed} at push time; run `vsslzoo verify {pinned}` and push again")
    if config.provenance.kind not in ("trained", "converted"):
        raise ConfigError(
            f"{pinned}: config.json's provenance.kind is {config.provenance.kind!r}; a zoo "
            "entry serves trained or converted weights. Fix the provenance in config.json "
            "and push again")
    name = name or ref.repo_id.split("/")[1]
    parts = name.split("-")
    method = method or (config.provenance.method if config.provenance.method in
                        registry.METHOD_PAPER else parts[0])
    if method not in registry.METHOD_PAPER:
        raise ConfigError(f"cannot tell the method of {pinned} (config says "
                          f"{config.provenance.method!r}); pass --method, one of "
                          f"{', '.join(registry.METHOD_PAPER)}")
    data = data or parts[-1]
    if data not in registry.DATASETS:
        raise ConfigError(f"cannot tell the pretraining data of {pinned} from the name "
                          f"{name!r}; pass --data, one of {', '.join(registry.DATASETS)}")
    license_ = (parse_front_matter(extras[CARD_FILENAME].read_text(encoding="utf-8"))
                .get("license") if extras.get(CARD_FILENAME) else None)
    training = recorded.get("training") or {}
    provenance = config.provenance
    if not provenance.source:
        provenance = Provenance(**{**provenance.to_dict(), "source": str(pinned)})
    entry_fields: dict[str, Any] = dict(
        name=name, method=method, architecture=config.architecture,
        model_args=dict(config.model_args), embed_dim=config.embed_dim,
        preprocess=config.preprocess, data=data, hub_repo=ref.repo_id, revision=commit,
        sha256=sha[WEIGHTS_FILENAME], config_sha256=sha[CONFIG_FILENAME],
        onnx_sha256=sha.get(ONNX_FILENAME), provenance=provenance,
        obtain=training.get("command") or "",
    )
    if license_:
        entry_fields["license"] = str(license_)
    if registry.is_model(name):
        existing = registry.get_entry(name)
        for key in ("architecture", "model_args", "embed_dim", "preprocess"):
            if getattr(existing, key) != entry_fields[key]:
                raise ConfigError(
                    f"{pinned} holds another model than the zoo entry {name!r}: {key} is "
                    f"{entry_fields[key]!r} there, {getattr(existing, key)!r} in the zoo. "
                    "Pass another --name, or fix and push the model again")
        entry_fields["obtain"] = existing.obtain  # the recipe's command; the run's is in the card
    entry = registry.ZooEntry(**entry_fields)
    problems = registry.pinning_problems(entry)
    if problems:  # the Hub answered something that is not a commit or a sha256
        raise HubError(f"{pinned}: cannot pin this repository: {'; '.join(problems)}")
    return entry


def entry_source(entry: ZooEntry) -> str:
    """Python source of ``entry`` (fields left at their defaults are omitted), to paste
    into ``_BUILTIN`` in ``vsslzoo/registry.py``; it evaluates in that module to an
    equal entry."""
    lines = ["ZooEntry("]
    for f in fields(entry):
        value = getattr(entry, f.name)
        if f.default is not MISSING and value == f.default:
            continue
        if f.default_factory is not MISSING and value == f.default_factory():
            continue
        lines.append(f"    {f.name}={value!r},")
    lines.append(")")
    return "\n".join(lines)


def entry_dict(entry: ZooEntry) -> dict[str, Any]:
    """The pinned fields of ``entry`` as JSON-ready data (``registry-entry --json``)."""
    return {**entry.to_dict(), "files": entry.pinned_files()}


__all__ = [
    "COSINE_MIN", "PUBLISH_INFO", "PushResult", "VerifyReport", "entry_dict", "entry_source",
    "hub_files", "prepare_upload", "push_encoder", "push_folder", "reference_clip",
    "registry_entry", "verify",
]
