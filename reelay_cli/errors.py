"""Exit codes and the errors that carry them. Every failure ends as words and one of these codes."""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the operation ran and failed: a video that failed to transcode, a refused request
    USAGE = 2  # bad command line (click's own code for usage errors)
    AUTH = 3  # not logged in, wrong credentials, a session that can no longer be refreshed
    NOT_FOUND = 4  # no such video or stream
    UNAVAILABLE = 5  # the network or the server failed (after retries), or a timeout
    FORBIDDEN = 6  # logged in, but not allowed (another user's video, streams without the operator role)
    INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


class CliError(Exception):
    """A failure to report in words, with the exit code it deserves."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILED, *, error: str = "failed") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.error = error

    def as_json(self) -> dict[str, Any]:
        return {"error": self.error, "message": self.message, "exitCode": int(self.code)}


class ApiError(CliError):
    """The API answered with an error status and (usually) ``{"error", "message"}``."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message, exit_code_for(status, error), error=error)
        self.status = status

    def as_json(self) -> dict[str, Any]:
        return {**super().as_json(), "status": self.status}


AUTH_ERRORS = frozenset({"unauthorized", "invalid_credentials", "user_not_confirmed"})


def exit_code_for(status: int, error: str = "") -> ExitCode:
    if status == 401 or error in AUTH_ERRORS:
        return ExitCode.AUTH
    if status == 403:
        return ExitCode.FORBIDDEN
    if status == 404:
        return ExitCode.NOT_FOUND
    if status >= 500 or status in (408, 429):
        return ExitCode.UNAVAILABLE
    return ExitCode.FAILED
