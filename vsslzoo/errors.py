"""Exceptions raised by vsslzoo.

Every message names the input that was wrong, what was wrong with it, and the fix.
All of them derive from :class:`VsslzooError`, so ``except vsslzoo.VsslzooError``
catches every user-facing failure; the CLI prints them without a traceback.
"""

from __future__ import annotations


class VsslzooError(Exception):
    """Base class of every error vsslzoo raises on purpose."""


class UnknownModelError(VsslzooError, KeyError):
    """A model name that is neither in the zoo, nor a folder, nor ``hf-hub:org/repo``."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownArchitectureError(VsslzooError, KeyError):
    """An architecture name that no backbone builder is registered under."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ModelNotAvailableError(VsslzooError):
    """A zoo entry whose weights are not published anywhere vsslzoo can download them."""


class ModelFolderError(VsslzooError):
    """A model folder (local or downloaded) that is missing files or holds bad ones."""


class WeightsMismatchError(ModelFolderError):
    """Weights whose keys or shapes do not fit the architecture in config.json."""


class ChecksumError(VsslzooError):
    """A downloaded file whose sha256 differs from the one recorded in the registry."""


class HubError(VsslzooError):
    """A download from, or an upload to, the Hugging Face Hub that could not be done."""


class VerificationError(VsslzooError):
    """A published model that loads, but whose reference-clip embedding differs from the
    one recorded when it was pushed (``vsslzoo verify``)."""


class ConfigError(VsslzooError, ValueError):
    """A config.json or argument with a value vsslzoo cannot use."""


class VideoDecodeError(VsslzooError):
    """A file that cannot be decoded as video: missing, empty, corrupt, truncated, no video.

    Attributes:
        path: the file.
        reason: a short reason ("zero-byte file", "no video stream (audio only)", ...).
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
