"""Domain exceptions. Adapters translate driver errors into these; the API maps them to 4xx."""

from __future__ import annotations


class ReelayError(Exception):
    """Base of every domain error. ``code`` is the stable machine-readable error code."""

    code = "error"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ReelayError):
    code = "not_found"
    status = 404


class Forbidden(ReelayError):
    code = "forbidden"
    status = 403


class Unauthorized(ReelayError):
    code = "unauthorized"
    status = 401


class Conflict(ReelayError):
    code = "conflict"
    status = 409


class PreconditionFailed(ReelayError):
    """A conditional write found its condition false (an upload URL used again once its object exists)."""

    code = "precondition_failed"
    status = 412


class QuotaExceeded(ReelayError):
    """A per-user upload quota would be exceeded. ``code`` names the quota (see reelay.quotas)."""

    status = 429

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class InvalidInput(ReelayError):
    code = "invalid_input"
    status = 400


class AuthError(ReelayError):
    """Identity errors; ``code`` is set per instance (weak_password, email_taken, ...)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class StorageError(ReelayError):
    code = "storage_error"
    status = 502


class MediaError(ReelayError):
    """A media file that cannot be transcoded. Permanent: never retried.

    ``message`` is a sentence for the uploader (it becomes the video's ``failureReason``); ``detail``
    is the technical text (a GStreamer error, a store key) that goes to the logs only.
    """

    code = "bad_media"
    status = 422

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


def describe(exc: BaseException, limit: int = 300) -> str:
    """A short, log-safe line for an exception: a ReelayError's message, else its text, else its type
    name, cut to ``limit`` characters."""
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
