"""One authorization matrix: every route of reelay.api.routes.ROUTES against every kind of caller.

Callers:
- ``anonymous``: no token;
- ``owner``: Alice, a plain user who owns the target video (and a multipart upload in flight);
- ``other``: Bob, a plain user who owns nothing here;
- ``operator``: Olga, in the ``operators`` group, who owns the target stream;
- ``other operator``: Oscar, an operator who does not own it (another operator's stream is 404);
- ``moderator``: Mo, in the ``moderators`` group: may see, unpublish and delete any video (with a
  reason, audited) and read the moderation audit log; elsewhere a plain user (``other``).

Each cell runs in a fresh world (fakes behind the real resolver), so a DELETE in one cell cannot
change another. A route added to ROUTES without a row here fails ``test_every_route_has_a_row``.
tests/e2e/test_authorization_matrix_gateway.py runs the same table against the local gateway.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import pytest

from lambdas.api.handler import lambda_handler
from reelay.api.routes import ROUTES
from reelay.settings import Settings
from reelay.wiring import Services
from tests import recording_api_helpers as recording_helpers
from tests.fakes import FakeIdentity, FakeLambdaContext, api_event
from tests.unit.test_api import ALICE, BOB, MiB, call, make_ready, services, settings  # noqa: F401

pytestmark = [
    pytest.mark.filterwarnings("ignore:No application metrics:UserWarning"),
    pytest.mark.filterwarnings("ignore:Received multipart:UserWarning"),
]

OLGA = {"sub": "op-olga", "email": "olga@example.com", "cognito:groups": "operators"}
OSCAR = {"sub": "op-oscar", "email": "oscar@example.com", "cognito:groups": "operators"}
MO = {"sub": "mod-mo", "email": "mo@example.com", "cognito:groups": "moderators"}
CALLERS: dict[str, dict[str, str] | None] = {
    "anonymous": None,
    "owner": ALICE,
    "other": BOB,
    "operator": OLGA,
    "other operator": OSCAR,
    "moderator": MO,
}
PASSWORD = "Matrix-Pa55word"


@dataclass
class World:
    """What exists before the request: Alice's ready video and pending multipart upload, Olga's
    stream, a confirmed user (Carol, with a refresh token) and an unconfirmed one (Dave)."""

    video_id: str
    pending_id: str
    upload_id: str
    stream_id: str
    refresh_token: str
    dave_code: str
    # Olga's stream's recording sessions: one finalized (with an MP4 export), one recording now.
    session_id: str = ""
    live_session_id: str = ""
    export_id: str = ""
    live_token: str = ""
    # Who the auth routes act on, and the parts completing the upload: the e2e test
    # (tests/e2e/test_authorization_matrix_gateway.py) brings its own users and real parts.
    dave_email: str = "dave@example.com"
    carol_email: str = "carol@example.com"
    parts: tuple[dict[str, Any], ...] = tuple({"partNumber": n, "etag": f"e{n}"} for n in (1, 2, 3))


def build_world(svc: Services) -> World:
    video = make_ready(svc, ALICE)
    status, pending, _ = call(
        api_event(
            "POST",
            "/videos/upload",
            body={"displayName": "big", "contentType": "video/mp4", "sizeBytes": 12 * MiB},
            claims=ALICE,
        )
    )
    assert status == 201, pending
    status, stream, _ = call(
        api_event("POST", "/streams", body={"name": "Gate", "sourceUrl": "rtsp://10.0.0.5/x"}, claims=OLGA)
    )
    assert status == 201, stream
    identity: FakeIdentity = svc.identity  # type: ignore[assignment]
    identity.register("carol@example.com", PASSWORD)
    identity.confirm("carol@example.com", identity.users["carol@example.com"]["code"])
    refresh = identity.login("carol@example.com", PASSWORD).refresh_token
    identity.register("dave@example.com", PASSWORD)
    assert refresh is not None
    recording_helpers.install(svc)
    session_id, _ = recording_helpers.ready_session(svc, stream["streamId"])
    live_id = recording_helpers.live_session(svc, stream["streamId"], segments=1)
    export = svc.recordings.create_export(OLGA["sub"], stream["streamId"], session_id, 0, 2)
    return World(
        session_id=session_id,
        live_session_id=live_id,
        export_id=export["exportId"],
        live_token=svc.recordings.live_token(live_id, int(time.time()) + 600),
        video_id=video.video_id,
        pending_id=pending["videoId"],
        upload_id=pending["multipart"]["uploadId"],
        stream_id=stream["streamId"],
        refresh_token=refresh,
        dave_code=identity.users["dave@example.com"]["code"],
    )


Request = Callable[[World], tuple[str, Any]]  # the concrete path and body of a route's request


def statuses(
    anonymous: int, owner: int, other: int, operator: int, other_operator: int, moderator: int | None = None
) -> dict[str, int]:
    """A row; the moderator's cell is the plain user's (``other``) unless given."""
    return {
        "anonymous": anonymous,
        "owner": owner,
        "other": other,
        "operator": operator,
        "other operator": other_operator,
        "moderator": other if moderator is None else moderator,
    }


_new_emails = (f"new-{n}@example.com" for n in itertools.count())
PUBLIC = statuses(200, 200, 200, 200, 200)
OWNER_ONLY = statuses(401, 200, 403, 403, 403)
ANY_USER = statuses(401, 200, 200, 200, 200)
OPERATORS = statuses(401, 403, 403, 200, 200)
MODERATORS = statuses(401, 403, 403, 403, 403, moderator=200)
STREAM_OWNER = statuses(401, 403, 403, 200, 404)
UPLOAD = {"displayName": "clip", "contentType": "video/mp4", "sizeBytes": 1000}

MATRIX: dict[tuple[str, str], tuple[Request, dict[str, int]]] = {
    ("POST", "/auth/register"): (
        lambda w: ("/auth/register", {"email": next(_new_emails), "password": PASSWORD}),
        statuses(201, 201, 201, 201, 201),
    ),
    ("POST", "/auth/confirm-register"): (
        lambda w: ("/auth/confirm-register", {"email": w.dave_email, "code": w.dave_code}),
        PUBLIC,
    ),
    ("POST", "/auth/resend-code"): (lambda w: ("/auth/resend-code", {"email": w.dave_email}), PUBLIC),
    ("POST", "/auth/login"): (
        lambda w: ("/auth/login", {"email": w.carol_email, "password": PASSWORD}),
        PUBLIC,
    ),
    ("POST", "/auth/refresh"): (lambda w: ("/auth/refresh", {"refreshToken": w.refresh_token}), PUBLIC),
    ("GET", "/videos"): (lambda w: ("/videos", None), PUBLIC),
    ("GET", "/videos/{videoId}"): (lambda w: (f"/videos/{w.video_id}", None), PUBLIC),
    ("POST", "/videos/upload"): (lambda w: ("/videos/upload", UPLOAD), statuses(401, 201, 201, 201, 201)),
    ("POST", "/videos/{videoId}/upload/complete"): (
        lambda w: (
            f"/videos/{w.pending_id}/upload/complete",
            {"uploadId": w.upload_id, "parts": list(w.parts)},
        ),
        OWNER_ONLY,
    ),
    ("POST", "/videos/metadata"): (
        lambda w: ("/videos/metadata", {"videoId": w.video_id, "displayName": "renamed"}),
        OWNER_ONLY,
    ),
    ("PATCH", "/videos/{videoId}"): (
        lambda w: (f"/videos/{w.video_id}", {"displayName": "renamed"}),
        OWNER_ONLY,
    ),
    ("DELETE", "/videos/{videoId}"): (
        lambda w: (f"/videos/{w.video_id}", None),
        statuses(401, 204, 403, 403, 403),
    ),
    ("GET", "/me/videos"): (lambda w: ("/me/videos", None), ANY_USER),
    ("GET", "/me/videos/{videoId}"): (
        lambda w: (f"/me/videos/{w.video_id}", None),
        statuses(401, 200, 404, 404, 404, moderator=200),
    ),
    ("POST", "/moderation/videos/{videoId}/unpublish"): (
        lambda w: (f"/moderation/videos/{w.video_id}/unpublish", {"reason": "spam"}),
        MODERATORS,
    ),
    ("POST", "/moderation/videos/{videoId}/republish"): (
        lambda w: (f"/moderation/videos/{w.video_id}/republish", {"reason": "appeal granted"}),
        MODERATORS,
    ),
    ("POST", "/moderation/videos/{videoId}/delete"): (
        lambda w: (f"/moderation/videos/{w.video_id}/delete", {"reason": "illegal content"}),
        statuses(401, 403, 403, 403, 403, moderator=204),
    ),
    ("GET", "/moderation/audit"): (lambda w: ("/moderation/audit", None), MODERATORS),
    ("POST", "/streams"): (
        lambda w: ("/streams", {"name": "Door", "sourceUrl": "rtsp://10.0.0.6/y"}),
        statuses(401, 403, 403, 201, 201),
    ),
    ("GET", "/streams"): (lambda w: ("/streams", None), OPERATORS),
    ("GET", "/streams/{streamId}"): (lambda w: (f"/streams/{w.stream_id}", None), STREAM_OWNER),
    ("PATCH", "/streams/{streamId}"): (
        lambda w: (f"/streams/{w.stream_id}", {"name": "Renamed"}),
        STREAM_OWNER,
    ),
    ("DELETE", "/streams/{streamId}"): (
        lambda w: (f"/streams/{w.stream_id}", None),
        statuses(401, 403, 403, 204, 404),
    ),
    ("POST", "/streams/{streamId}/start"): (
        lambda w: (f"/streams/{w.stream_id}/start", None),
        statuses(401, 403, 403, 202, 404),
    ),
    ("POST", "/streams/{streamId}/stop"): (
        lambda w: (f"/streams/{w.stream_id}/stop", None),
        statuses(401, 403, 403, 202, 404),
    ),
    ("GET", "/streams/{streamId}/sessions"): (
        lambda w: (f"/streams/{w.stream_id}/sessions", None),
        STREAM_OWNER,
    ),
    ("GET", "/streams/{streamId}/sessions/{sessionId}"): (
        lambda w: (f"/streams/{w.stream_id}/sessions/{w.live_session_id}", None),
        STREAM_OWNER,
    ),
    ("POST", "/streams/{streamId}/sessions/{sessionId}/finalize"): (
        lambda w: (f"/streams/{w.stream_id}/sessions/{w.session_id}/finalize", None),
        STREAM_OWNER,  # 200: it is finalized already
    ),
    ("POST", "/streams/{streamId}/sessions/{sessionId}/exports"): (
        lambda w: (f"/streams/{w.stream_id}/sessions/{w.session_id}/exports", {"start": 0, "end": 2}),
        statuses(401, 403, 403, 202, 404),
    ),
    ("GET", "/streams/{streamId}/sessions/{sessionId}/exports/{exportId}"): (
        lambda w: (f"/streams/{w.stream_id}/sessions/{w.session_id}/exports/{w.export_id}", None),
        STREAM_OWNER,
    ),
    # No bearer: the token in the URL is the authorization, whoever presents it.
    ("GET", "/streams/{streamId}/sessions/{sessionId}/live.m3u8"): (
        lambda w: (
            f"/streams/{w.stream_id}/sessions/{w.live_session_id}/live.m3u8?token={w.live_token}",
            None,
        ),
        PUBLIC,
    ),
    ("GET", "/openapi.json"): (lambda w: ("/openapi.json", None), PUBLIC),
}

CELLS = [(route, who) for route in MATRIX for who in CALLERS]


def test_every_route_has_a_row_and_every_row_a_route() -> None:
    assert set(MATRIX) == {(r.method, r.path) for r in ROUTES}
    for route, (_, row) in MATRIX.items():
        assert set(row) == set(CALLERS), route


def test_a_moderator_differs_from_a_plain_user_only_on_videos_and_moderation() -> None:
    # The group is a setting, like the operators'
    assert Settings().moderators_group == "moderators"
    differs = {route for route, (_, row) in MATRIX.items() if row["moderator"] != row["other"]}
    assert differs == {
        ("GET", "/me/videos/{videoId}"),
        ("POST", "/moderation/videos/{videoId}/delete"),
        ("POST", "/moderation/videos/{videoId}/unpublish"),
        ("POST", "/moderation/videos/{videoId}/republish"),
        ("GET", "/moderation/audit"),
    }


@pytest.mark.parametrize(("route", "who"), CELLS, ids=[f"{m} {p} as {who}" for (m, p), who in CELLS])
def test_the_resolver_answers_each_caller_as_the_matrix_says(
    services: Services,  # noqa: F811
    route: tuple[str, str],
    who: str,
) -> None:
    world = build_world(services)
    request, row = MATRIX[route]
    path, body = request(world)
    path, _, query = path.partition("?")
    event = api_event(route[0], path, body=body, claims=CALLERS[who], query=dict(parse_qsl(query)) or None)
    if path.endswith(".m3u8"):  # a playlist, not JSON
        response = lambda_handler(event, FakeLambdaContext())
        status, out = response["statusCode"], response.get("body")
        if status >= 400:
            out = json.loads(out)
    else:
        status, out, _ = call(event)
    assert status == row[who], out
    if status >= 400:
        assert set(out) == {"error", "message"}
