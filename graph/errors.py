"""One exception family for everything a user can act on.

Every message says what went wrong and what to do about it; the CLI prints it without a traceback and the
HTTP layer maps each class to a status code (``http_status``).
"""

from __future__ import annotations


class DubError(Exception):
    """Base of every error dubgraph raises on purpose."""

    http_status = 500


class BadInput(DubError):
    """A parameter or option the user gave is not acceptable."""

    http_status = 422


class BadAudio(DubError):
    """The input cannot be decoded as audio, or holds nothing to dub."""

    http_status = 415


class AudioTooLarge(DubError):
    """The input is longer or larger than the configured limit."""

    http_status = 413


class UnsupportedLanguage(BadInput):
    """A source or target language the selected models cannot handle."""

    def __init__(self, language: str, supported: list[str] | tuple[str, ...], what: str = "target"):
        self.language = language
        self.supported = tuple(sorted(supported))
        super().__init__(
            f"unsupported {what} language {language!r}; supported: {', '.join(self.supported) or '(none)'}"
        )


class ModelNotFound(DubError):
    """A model of the selected profile is not on this machine."""

    http_status = 503

    def __init__(self, model: str, profile: str, fix: str, tried: list[str] | tuple[str, ...] = ()):
        self.model = model
        self.profile = profile
        self.fix = fix
        self.tried = tuple(tried)
        looked = f" (looked in: {'; '.join(self.tried)})" if self.tried else ""
        super().__init__(f"model {model!r} of profile {profile!r} not found{looked}. To fix: {fix}")


class JobNotFound(DubError):
    """No job with this id (or it was deleted)."""

    http_status = 404


class LineNotFound(DubError):
    """No line with this id in the job."""

    http_status = 404


class VoiceNotFound(DubError):
    """No voice of this name in the voice library."""

    http_status = 404


class EditConflict(DubError):
    """An edit or render that would clash with the job's state: a stale revision (``If-Match``), a locked line,
    a render already running, or a job that is not done."""

    http_status = 409


class VoiceExists(DubError):
    """A voice of this name is already in the library (replace it explicitly)."""

    http_status = 409


class OutputNotWritable(DubError):
    """The output directory cannot be created or written."""

    http_status = 500


class Unauthorized(DubError):
    """A missing or wrong API key."""

    http_status = 401


class UnsupportedMediaType(DubError):
    """An upload whose content type is not audio or video."""

    http_status = 415


class RequestTooLarge(DubError):
    """A request body over the configured size limit."""

    http_status = 413


class QueueFull(DubError):
    """Too much work is queued; try again later (``retry_after_s``)."""

    http_status = 503
    retry_after_s: int | None = None


class StoreUnavailable(QueueFull):
    """The job store cannot be read or written right now (the database is locked or failing); try again later."""

    retry_after_s = 5


class InsufficientStorage(DubError):
    """The server's disk is full: nothing new can be stored until space is freed."""

    http_status = 507


class RequestTimeout(DubError):
    """A request body that stalls or trickles in too slowly to be an honest upload."""

    http_status = 408


def user_error(exc: BaseException) -> DubError | None:
    """The DubError behind ``exc``, also when a replica raised it (Ray wraps it, with the remote traceback)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, DubError):
        return cause
    return exc if isinstance(exc, DubError) else None
