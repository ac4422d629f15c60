"""Fetching model folders from the Hugging Face Hub with the real ``huggingface_hub`` client.

Files come through ``hf_hub_download`` so the usual cache (``HF_HOME``,
``HF_HUB_CACHE``), ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``, tokens and revisions all apply.

Offline-ness is decided *before* downloading: with no network and no offline flag the
client retries with back-off for ~20 s before failing. So unless a proxy is configured,
a 3-second TCP probe of the endpoint runs first; when it fails, the files are looked up
in the cache only, and a miss is one clear error saying what to do.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .config import CONFIG_FILENAME, WEIGHTS_FILENAME
from .errors import HubError, ModelFolderError

HUB_PREFIX = "hf-hub:"
_PROBE_TIMEOUT_S = 3.0
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@dataclass(frozen=True)
class HubRef:
    """A model repository on the Hub: ``hf-hub:org/name[@revision]``."""

    repo_id: str
    revision: str | None = None

    @classmethod
    def parse(cls, text: str) -> HubRef:
        spec = text[len(HUB_PREFIX):] if text.startswith(HUB_PREFIX) else text
        repo_id, _, revision = spec.partition("@")
        parts = repo_id.split("/")
        if len(parts) != 2 or not all(parts):
            raise HubError(
                f"{text!r} is not a Hub reference; write hf-hub:ORG/NAME or "
                "hf-hub:ORG/NAME@REVISION (a branch, tag or commit id)"
            )
        return cls(repo_id, revision or None)

    def __str__(self) -> str:
        return f"{HUB_PREFIX}{self.repo_id}" + (f"@{self.revision}" if self.revision else "")


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _offline_flag() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def endpoint_reachable(endpoint: str, timeout_s: float = _PROBE_TIMEOUT_S) -> bool:
    """True if a TCP connection to the endpoint's host opens within ``timeout_s``.

    With a proxy configured the probe proves nothing, so it answers True and leaves the
    decision to the client.
    """
    if any(os.environ.get(var) for var in _PROXY_VARS):
        return True
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def download_files(
    ref: HubRef,
    filenames: tuple[str, ...] = (CONFIG_FILENAME, WEIGHTS_FILENAME),
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
    force_download: bool = False,
) -> dict[str, Path]:
    """Download (or find in the cache) ``filenames`` of ``ref``; returns local paths.

    Args:
        ref: repository and revision (None: the default branch).
        cache_dir: Hub cache folder (default: the client's, i.e. ``HF_HUB_CACHE``).
        local_files_only: True: cache only. False: always ask the Hub. None: ask the
            Hub unless ``HF_HUB_OFFLINE`` is set or the endpoint cannot be reached.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    endpoint = _endpoint()
    if local_files_only is None:
        if _offline_flag():
            local_files_only, why = True, "HF_HUB_OFFLINE is set"
        elif not endpoint_reachable(endpoint):
            local_files_only, why = True, f"the Hub endpoint {endpoint} cannot be reached"
        else:
            local_files_only, why = False, ""
    else:
        why = "local_files_only=True was passed" if local_files_only else ""

    paths: dict[str, Path] = {}
    for filename in filenames:
        try:
            path = hf_hub_download(
                ref.repo_id,
                filename,
                revision=ref.revision,
                cache_dir=None if cache_dir is None else str(cache_dir),
                local_files_only=local_files_only,
                force_download=force_download,
                library_name="vsslzoo",
            )
        except LocalEntryNotFoundError as exc:
            reason = why or f"the download failed ({exc.__class__.__name__})"
            raise HubError(
                f"{ref}: {filename} is not in the local Hugging Face cache and {reason}. "
                "Fix: connect to the internet (and unset HF_HUB_OFFLINE), or load a local "
                "model folder instead (vsslzoo.load('path/to/folder'))."
            ) from None
        except RepositoryNotFoundError:
            raise HubError(
                f"{ref}: repository {ref.repo_id!r} not found on {endpoint} (or it is private "
                "or gated: log in with `hf auth login`). Check the name with `vsslzoo list`."
            ) from None
        except RevisionNotFoundError:
            raise HubError(
                f"{ref}: revision {ref.revision!r} does not exist in {ref.repo_id!r}; "
                "pass a branch, tag or commit id that exists"
            ) from None
        except EntryNotFoundError:
            raise ModelFolderError(
                f"{ref}: the repository has no {filename}, so it is not a vsslzoo model "
                f"(a vsslzoo model repo holds {CONFIG_FILENAME} + {WEIGHTS_FILENAME})"
            ) from None
        except (HfHubHTTPError, OSError) as exc:
            raise HubError(
                f"{ref}: downloading {filename} from {endpoint} failed: {exc}. Fix: retry, or "
                "load a cached copy with HF_HUB_OFFLINE=1, or a local model folder."
            ) from None
        paths[filename] = Path(path)
    return paths
