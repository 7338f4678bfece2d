"""The one route table. The CDK API stack and the local gateway both build from it.

The /streams routes are for operators, members of the Cognito group ``operators``: the resolver
checks the ``cognito:groups`` claim and answers 403 to everyone else.

``auth=True`` routes sit behind the Cognito authorizer in API Gateway and behind JWT validation
(against the user pool's JWKS) in the local gateway. Both deliver the verified claims to the
resolver in ``requestContext.authorizer.claims``, the API Gateway REST shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # API Gateway style: /videos/{videoId}
    auth: bool
    summary: str


ROUTES: tuple[Route, ...] = (
    Route("POST", "/auth/register", False, "Sign up with email and password; a code is emailed"),
    Route("POST", "/auth/confirm-register", False, "Confirm a sign-up with the emailed code"),
    Route("POST", "/auth/resend-code", False, "Send the sign-up code again"),
    Route("POST", "/auth/login", False, "Log in; returns Cognito tokens"),
    Route("POST", "/auth/refresh", False, "Exchange a refresh token for new tokens"),
    Route("GET", "/videos", False, "List ready videos, newest first, paginated"),
    Route("GET", "/videos/{videoId}", False, "One video: metadata, status and playback URL"),
    Route("POST", "/videos/upload", True, "Create a video and get a presigned (multipart) upload"),
    Route("POST", "/videos/{videoId}/upload/complete", True, "Complete a multipart upload"),
    Route("POST", "/videos/metadata", True, "Set a video's name and description (owner only)"),
    Route("PATCH", "/videos/{videoId}", True, "Rename or describe a video (owner only)"),
    Route("DELETE", "/videos/{videoId}", True, "Delete a video and its media (owner only)"),
    Route("GET", "/me/videos", True, "The caller's own videos, any status"),
    Route("POST", "/streams", True, "Register a camera feed to relay to Kinesis Video Streams (operators)"),
    Route("GET", "/streams", True, "The caller's streams, newest first, paginated (operators)"),
    Route("GET", "/streams/{streamId}", True, "One stream: desired and actual state, health, relay task"),
    Route(
        "PATCH",
        "/streams/{streamId}",
        True,
        "Rename a stream; change its source, KVS stream or video while stopped",
    ),
    Route("DELETE", "/streams/{streamId}", True, "Stop a stream and delete it (operators)"),
    Route("POST", "/streams/{streamId}/start", True, "Start relaying: sets the desired state (idempotent)"),
    Route("POST", "/streams/{streamId}/stop", True, "Stop relaying: sets the desired state (idempotent)"),
    Route(
        "GET", "/streams/{streamId}/sessions", True, "A stream's recording sessions, newest first (operators)"
    ),
    Route(
        "GET",
        "/streams/{streamId}/sessions/{sessionId}",
        True,
        "One recording session: state, duration, store, video once ready, live playlist while recording",
    ),
    Route(
        "POST",
        "/streams/{streamId}/sessions/{sessionId}/finalize",
        True,
        "Finalize a recording session now (idempotent; fixup for a writer that died)",
    ),
    Route(
        "POST",
        "/streams/{streamId}/sessions/{sessionId}/exports",
        True,
        "Export a time range of a finished recording as MP4",
    ),
    Route(
        "GET",
        "/streams/{streamId}/sessions/{sessionId}/exports/{exportId}",
        True,
        "An MP4 export: its state, and its download URL once ready",
    ),
    Route(
        "GET",
        "/streams/{streamId}/sessions/{sessionId}/live.m3u8",
        False,
        "The live EVENT playlist of a session while it records (a signed token in the URL, no bearer)",
    ),
    Route("GET", "/openapi.json", False, "This API's OpenAPI document"),
)


def allowed_methods(path: str, routes: tuple[Route, ...] = ROUTES) -> list[str]:
    """The methods the table serves on a concrete path (for a 405's ``Allow``), OPTIONS included.

    Empty when no route matches the path at all (a 404). OPTIONS is there because both the
    resolver and the local gateway answer CORS preflights on every route.
    """
    methods = sorted({r.method for r in routes if _template(r.path).fullmatch(path)})
    return [*methods, "OPTIONS"] if methods else []


def _template(path: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(path)))
