"""The one route table. The CDK API stack and the local gateway both build from it.

The /streams routes are for operators, members of the Cognito group ``operators``, and the
/moderation routes for moderators (group ``moderators``): the resolver checks the ``cognito:groups``
claim and answers 403 to everyone else.

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
    Route(
        "GET",
        "/me/videos/{videoId}",
        True,
        "One of the caller's videos, any status or visibility, with signed playback (moderators: any video)",
    ),
    Route(
        "POST",
        "/moderation/videos/{videoId}/unpublish",
        True,
        "Unpublish any video: only its owner sees it until republished (moderators)",
    ),
    Route("POST", "/moderation/videos/{videoId}/republish", True, "Lift an unpublish (moderators)"),
    Route(
        "POST",
        "/moderation/videos/{videoId}/delete",
        True,
        "Delete any video and its media, with a reason for the audit log (moderators)",
    ),
    Route("GET", "/moderation/audit", True, "The moderation audit log, newest first (moderators)"),
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


# --- throttles -------------------------------------------------------------------------------------
# The unauthenticated /auth/* routes (sign-up, login, codes) are the cheapest to abuse: each costs a
# Cognito call and may send an email. They get tighter throttles than the rest: per stage in API Gateway
# (infra: api_auth_throttle_*; WAF's rate rules are the per-client part there), and per client IP in the
# local gateway.
AUTH_ROUTE_PREFIX = "/auth/"


@dataclass(frozen=True)
class Throttle:
    """A token bucket: ``rate_per_second`` tokens refill it, up to ``burst`` at once."""

    rate_per_second: float
    burst: int


# The local gateway's bucket per client IP on /auth/*: generous for a person (and the e2e suite, whose
# clients all share 127.0.0.1), tight for a script hammering sign-up.
LOCAL_AUTH_THROTTLE = Throttle(rate_per_second=2.0, burst=60)


def is_throttled_auth_route(route: Route) -> bool:
    return not route.auth and route.path.startswith(AUTH_ROUTE_PREFIX)


def auth_routes(routes: tuple[Route, ...] = ROUTES) -> list[Route]:
    """The routes the tighter auth throttle covers."""
    return [r for r in routes if is_throttled_auth_route(r)]
