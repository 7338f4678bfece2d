"""The /streams routes through the API Lambda handler: operators only, secrets never shown."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from reelay.models import StreamHealth, StreamState, utcnow
from reelay.wiring import Services
from tests.fakes import FakeEvents, FakeLauncher, api_event
from tests.unit.test_api import ALICE, BOB, assert_error, call, services, settings  # noqa: F401

pytestmark = [pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")]

# As API Gateway's Cognito authorizer delivers the claim (strings), and as the ID token holds it.
OPERATOR = {"sub": "op-olga", "email": "olga@example.com", "cognito:groups": "operators"}
OPERATOR_2 = {"sub": "op-oscar", "email": "oscar@example.com", "cognito:groups": "[admins, operators]"}
PASSWORD = "Cam3ra-Pa55word"
CAMERA = f"rtsp://admin:{PASSWORD}@10.0.0.5:554/Streaming/101"


def send(method: str, path: str, claims: dict[str, Any] | None = OPERATOR, body: Any = None, **kw: Any):
    status, out, _ = call(api_event(method, path, body=body, claims=claims, **kw))
    return status, out


def create(claims: dict[str, Any] = OPERATOR, **overrides: Any) -> dict[str, Any]:
    status, out = send("POST", "/streams", claims, {"name": "Gate", "sourceUrl": CAMERA} | overrides)
    assert status == 201, out
    return out


@pytest.mark.parametrize(
    "groups",
    [None, "", "viewers", "[viewers admins]", '["viewers"]', "operatorsx", "[operator]"],
)
def test_only_operators_manage_streams(services: Services, groups: str | None) -> None:  # noqa: F811
    # Given a signed-in user who is not in the operators group
    claims = dict(ALICE) | ({"cognito:groups": groups} if groups is not None else {})
    stream_id = create()["streamId"]
    # When they call any streams route, Then 403, and nothing changes
    for method, path, body in (
        ("POST", "/streams", {"name": "x", "sourceUrl": CAMERA}),
        ("GET", "/streams", None),
        ("GET", f"/streams/{stream_id}", None),
        ("PATCH", f"/streams/{stream_id}", {"name": "x"}),
        ("DELETE", f"/streams/{stream_id}", None),
        ("POST", f"/streams/{stream_id}/start", None),
        ("POST", f"/streams/{stream_id}/stop", None),
    ):
        status, out = send(method, path, claims, body)
        assert_error(status, out, 403, "forbidden", "operators")
    assert send("GET", f"/streams/{stream_id}")[1]["desiredState"] == "stopped"
    # And without a token it is 401
    assert_error(*send("GET", "/streams", None), 401, "unauthorized")


@pytest.mark.parametrize(
    "groups",
    ["operators", "[operators]", "[admins operators]", "admins,operators", '["admins", "operators"]'],
)
def test_the_group_claim_is_read_in_every_shape_it_arrives_in(services: Services, groups: str) -> None:  # noqa: F811
    status, out = send("GET", "/streams", OPERATOR | {"cognito:groups": groups})
    assert status == 200 and out == {"items": [], "nextCursor": None}


def test_create_get_and_list_show_the_stream_without_its_secret(services: Services) -> None:  # noqa: F811
    # When an operator registers a camera with a password
    status, out = send(
        "POST", "/streams", body={"name": " Gate ", "sourceUrl": CAMERA, "video": "passthrough"}
    )
    # Then 201 with the stream, whose URL has no credentials, and which says a password is set
    assert status == 201, out
    stream_id = out["streamId"]
    assert out["sourceUrl"] == "rtsp://10.0.0.5:554/Streaming/101"
    assert out["sourceSecrets"] == ["password", "username"]
    assert (out["name"], out["sourceProtocol"], out["video"], out["kvsStreamName"]) == (
        "Gate",
        "rtsp",
        "passthrough",
        f"reelay-{stream_id}",
    )
    assert (out["desiredState"], out["state"], out["reconnects"], out["task"]) == (
        "stopped",
        "stopped",
        0,
        None,
    )
    # And neither the answer, the one-stream view nor the list carry the password anywhere
    got = send("GET", f"/streams/{stream_id}")[1]
    listed = send("GET", "/streams")[1]
    for answer in (out, got, listed):
        assert PASSWORD not in str(answer) and "admin" not in str(answer)
    assert got == out and listed["items"] == [out]


def test_get_shows_what_the_relay_task_reports(services: Services) -> None:  # noqa: F811
    stream_id = create()["streamId"]
    assert send("POST", f"/streams/{stream_id}/start")[0] == 202
    cat: Any = services.catalogue
    token = cat.claim_stream_lease(stream_id, "arn:aws:ecs:eu-west-1:1:task/relay/abc", 30)
    acked, expires = utcnow(), utcnow()
    cat.report_stream_health(
        stream_id,
        token,
        StreamHealth(
            state=StreamState.RECONNECTING,
            outage_cause="KVS unreachable",
            outage_since=acked,
            reconnects=3,
            input_bitrate_bps=2_500_000,
            last_fragment_number="9134385233318",
            last_fragment_timecode=1_767_000_000_000,
            last_fragment_ack_at=acked,
            credentials_expire_at=expires,
        ),
    )
    status, out = send("GET", f"/streams/{stream_id}")
    assert status == 200
    assert (out["desiredState"], out["state"], out["outageCause"], out["reconnects"]) == (
        "running",
        "reconnecting",
        "KVS unreachable",
        3,
    )
    assert (out["inputBitrateBps"], out["lastFragmentNumber"], out["lastFragmentTimecode"]) == (
        2_500_000,
        "9134385233318",
        1_767_000_000_000,
    )
    for key in ("stateSince", "outageSince", "lastFragmentAckedAt", "credentialsExpireAt"):
        assert out[key].endswith("Z"), key
    assert out["task"]["taskId"] == "arn:aws:ecs:eu-west-1:1:task/relay/abc"
    assert set(out["task"]) == {"taskId", "startedAt", "heartbeatAt", "leaseExpiresAt"}


def test_get_and_the_list_show_whether_the_slate_is_on_and_since_when(services: Services) -> None:  # noqa: F811
    # Given a started stream whose relay task has never reported the slate
    stream_id = create(video="transcode")["streamId"]
    assert send("POST", f"/streams/{stream_id}/start")[0] == 202
    fresh = send("GET", f"/streams/{stream_id}")[1]
    assert (fresh["slateOn"], fresh["slateSince"], fresh["slateFragmentsPersisted"]) == (False, None, 0)
    cat: Any = services.catalogue
    token = cat.claim_stream_lease(stream_id, "task-1", 30)
    since = utcnow() - timedelta(seconds=42)

    # When the task reports that KVS is being fed the slate (the camera is down)
    down = StreamHealth(
        state=StreamState.RECONNECTING,
        outage_cause="source stalled",
        outage_since=since,
        reconnects=1,
        slate_since=since,
        slate_fragments_persisted=5,
    )
    cat.report_stream_health(stream_id, token, down)

    # Then the stream and the list show the slate on, since when, and its fragments
    out = send("GET", f"/streams/{stream_id}")[1]
    assert (out["slateOn"], out["slateFragmentsPersisted"]) == (True, 5)
    assert out["slateSince"].endswith("Z")
    shown = datetime.fromisoformat(out["slateSince"].replace("Z", "+00:00")).replace(tzinfo=None)
    assert abs(shown - since) < timedelta(milliseconds=1)
    assert send("GET", "/streams")[1]["items"] == [out]

    # When the camera is back: the slate is off, and the count of its fragments stays
    cat.report_stream_health(
        stream_id, token, StreamHealth(state=StreamState.RUNNING, reconnects=1, slate_fragments_persisted=6)
    )
    up = send("GET", f"/streams/{stream_id}")[1]
    assert (up["slateOn"], up["slateSince"], up["slateFragmentsPersisted"]) == (False, None, 6)


def test_start_and_stop_answer_202_and_are_idempotent(services: Services) -> None:  # noqa: F811
    stream_id = create()["streamId"]
    launcher: FakeLauncher = services.launcher  # type: ignore[assignment]
    events: FakeEvents = services.events  # type: ignore[assignment]
    for _ in range(2):
        status, out = send("POST", f"/streams/{stream_id}/start")
        assert status == 202 and out["desiredState"] == "running"
    cat: Any = services.catalogue
    cat.claim_stream_lease(stream_id, "task-1", 30)
    for _ in range(2):
        status, out = send("POST", f"/streams/{stream_id}/stop")
        assert status == 202 and out["desiredState"] == "stopped"
    assert launcher.launched == [stream_id, stream_id]  # the second start found no live task yet
    assert launcher.stopped == [(stream_id, "task-1")] * 2
    assert [kind for kind, _ in events.published] == ["stream.started", "stream.stopped"]


def test_patch_renames_and_changes_the_source_only_while_stopped(services: Services) -> None:  # noqa: F811
    stream_id = create()["streamId"]
    status, out = send(
        "PATCH", f"/streams/{stream_id}", body={"sourceUrl": "srt://10.0.0.9:9000?passphrase=0123456789ab"}
    )
    assert status == 200 and (out["sourceUrl"], out["sourceSecrets"]) == (
        "srt://10.0.0.9:9000",
        ["passphrase"],
    )
    send("POST", f"/streams/{stream_id}/start")
    assert send("PATCH", f"/streams/{stream_id}", body={"name": "Front"})[1]["name"] == "Front"
    assert_error(
        *send("PATCH", f"/streams/{stream_id}", body={"video": "transcode"}), 409, "conflict", "stop"
    )
    assert_error(*send("PATCH", f"/streams/{stream_id}", body={}), 400, "invalid_input")


def test_recording_is_off_by_default_and_set_on_create_or_while_stopped(services: Services) -> None:  # noqa: F811
    assert create()["record"] is False
    stream_id = create(record=True)["streamId"]
    assert send("GET", f"/streams/{stream_id}")[1]["record"] is True
    assert send("PATCH", f"/streams/{stream_id}", body={"record": False})[1]["record"] is False
    send("POST", f"/streams/{stream_id}/start")
    # A running task keeps what it started with: recording changes while stopped.
    assert_error(*send("PATCH", f"/streams/{stream_id}", body={"record": True}), 409, "conflict", "stop")
    assert_error(*send("POST", "/streams", body={"name": "G", "sourceUrl": CAMERA, "record": "yes"}), 400,
                 "invalid_input")  # fmt: skip


def test_a_stream_may_record_only_but_must_relay_or_record(services: Services) -> None:  # noqa: F811
    only = create(relay=False, record=True)
    assert (only["kvsStreamName"], only["record"]) == (None, True)
    assert create()["kvsStreamName"].startswith("reelay-")  # relaying is the default
    assert_error(*send("POST", "/streams", body={"name": "G", "sourceUrl": CAMERA, "relay": False}), 400,
                 "invalid_input", "relays to KVS, records, or both")  # fmt: skip
    body = {"name": "G", "sourceUrl": CAMERA, "relay": False, "record": True, "kvsStreamName": "reelay-x"}
    assert_error(*send("POST", "/streams", body=body), 400, "invalid_input", "kvsStreamName")
    # a record-only stream cannot stop recording (it would do nothing)
    assert_error(*send("PATCH", f"/streams/{only['streamId']}", body={"record": False}), 400, "invalid_input")
    # two record-only streams: no KVS name to collide on
    assert create(relay=False, record=True)["kvsStreamName"] is None


def test_delete_stops_first_then_answers_204_and_the_stream_is_gone(services: Services) -> None:  # noqa: F811
    stream_id = create()["streamId"]
    send("POST", f"/streams/{stream_id}/start")
    cat: Any = services.catalogue
    cat.claim_stream_lease(stream_id, "task-1", 30)
    status, out, _ = call(api_event("DELETE", f"/streams/{stream_id}", claims=OPERATOR))
    assert status == 204 and out is None
    launcher: FakeLauncher = services.launcher  # type: ignore[assignment]
    assert launcher.stopped == [(stream_id, "task-1")]
    assert_error(*send("GET", f"/streams/{stream_id}"), 404, "not_found")
    assert_error(*send("DELETE", f"/streams/{stream_id}"), 404, "not_found")


def test_another_operators_stream_is_404_and_unknown_streams_too(services: Services) -> None:  # noqa: F811
    # Decision: 404, not 403. Stream ids are not shared between operators; a 404 tells nothing about
    # someone else's feeds.
    stream_id = create()["streamId"]
    for method, path, body in (
        ("GET", f"/streams/{stream_id}", None),
        ("PATCH", f"/streams/{stream_id}", {"name": "mine"}),
        ("POST", f"/streams/{stream_id}/start", None),
        ("POST", f"/streams/{stream_id}/stop", None),
        ("DELETE", f"/streams/{stream_id}", None),
        ("GET", "/streams/unknown-stream", None),
    ):
        assert_error(*send(method, path, OPERATOR_2, body), 404, "not_found")
    assert send("GET", "/streams", OPERATOR_2)[1]["items"] == []
    assert send("GET", f"/streams/{stream_id}")[1]["name"] == "Gate"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"name": "x", "sourceUrl": "http://169.254.169.254/latest/meta-data.m3u8"}, ["link-local"]),
        ({"name": "x", "sourceUrl": "rtsp://[fe80::1]/x"}, ["link-local"]),
        ({"name": "x", "sourceUrl": "rtsp://127.0.0.1:8554/demo"}, ["loopback"]),
        ({"name": "x", "sourceUrl": "ftp://cam/x"}, ["scheme"]),
        ({"name": "x", "sourceUrl": "https://cdn.example/live.mp4"}, [".m3u8"]),
        ({"name": "x", "sourceUrl": "srt://cam.example"}, ["port"]),
        ({"name": "x", "sourceUrl": CAMERA, "kvsStreamName": "other-team"}, ["reelay-"]),
        ({"name": "x", "sourceUrl": CAMERA, "kvsStreamName": "has space"}, ["kvsStreamName"]),
        ({"name": "x", "sourceUrl": CAMERA, "video": "h265"}, ["video"]),
        ({"name": "", "sourceUrl": CAMERA}, ["name"]),
        ({"name": "a\x1bb", "sourceUrl": CAMERA}, ["control"]),
        ({"sourceUrl": CAMERA}, ["name is required"]),
        ({"name": "x", "sourceUrl": CAMERA, "password": "x"}, ["password is not an accepted field"]),
    ],
)
def test_bad_streams_are_400_with_a_clear_message_and_never_echo_the_secret(
    services: Services,  # noqa: F811
    body: dict[str, Any],
    words: list[str],
) -> None:
    status, out = send("POST", "/streams", body=body)
    assert_error(status, out, 400, "invalid_input", *words)
    assert PASSWORD not in out["message"]
    assert send("GET", "/streams")[1]["items"] == []


def test_a_kvs_stream_name_in_use_is_409(services: Services) -> None:  # noqa: F811
    create(kvsStreamName="reelay-gate")
    again = {"name": "y", "sourceUrl": CAMERA, "kvsStreamName": "reelay-gate"}
    assert_error(*send("POST", "/streams", body=again), 409, "conflict", "reelay-gate")


def test_list_is_paginated_and_only_the_callers(services: Services) -> None:  # noqa: F811
    mine = [create()["streamId"] for _ in range(5)]
    create(OPERATOR_2)
    seen, cursor = [], None
    while True:
        status, out = send("GET", "/streams", query={"limit": "2"} | ({"cursor": cursor} if cursor else {}))
        assert status == 200 and len(out["items"]) <= 2
        seen += [s["streamId"] for s in out["items"]]
        cursor = out["nextCursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(mine) and len(seen) == 5
    assert_error(*send("GET", "/streams", query={"cursor": "nonsense"}), 400, "invalid_input", "cursor")


def test_the_openapi_document_covers_the_streams_routes(services: Services) -> None:  # noqa: F811
    status, doc, _ = call(api_event("GET", "/openapi.json"))
    assert status == 200
    paths = doc["paths"]
    assert {"post", "get"} <= set(paths["/streams"]) and {"get", "patch", "delete"} <= set(
        paths["/streams/{streamId}"]
    )
    start = paths["/streams/{streamId}/start"]["post"]["responses"]
    assert {"202", "401", "403", "404"} <= set(start)
    assert start["403"]["description"] == "Not an operator"
    assert "409" in paths["/streams"]["post"]["responses"]
    schemas = doc["components"]["schemas"]
    assert set(schemas["StreamIn"]["properties"]) == {
        "name",
        "sourceUrl",
        "kvsStreamName",
        "video",
        "record",
        "relay",
        "recordObjectStore",
        "recordWebhookUrl",
        "retentionDays",
        "reconnectWindowSeconds",
        "recordRenditions",
    }
    assert "sourceSecret" not in schemas["StreamOut"]["properties"]
    shown = set(schemas["StreamOut"]["properties"])
    assert {"desiredState", "state", "stateSince", "outageCause", "reconnects", "inputBitrateBps",
            "lastFragmentNumber", "credentialsExpireAt", "slateOn", "slateSince", "slateFragmentsPersisted",
            "task"} <= shown  # fmt: skip
    slate = schemas["StreamOut"]["properties"]["slateSince"]
    assert "slate" in slate["description"] and "null" in slate["description"]


def test_a_deployment_without_keys_answers_503_and_stores_nothing(services: Services) -> None:  # noqa: F811
    from reelay.relay.secrets import SourceSecrets

    services.streams.secrets = SourceSecrets([])
    status, out = send("POST", "/streams", body={"name": "Gate", "sourceUrl": CAMERA})
    assert_error(status, out, 503, "secrets_unavailable", "REELAY_STREAM_SECRET_KEYS")
    assert PASSWORD not in out["message"]
    # A source with nothing secret needs no key
    assert send("POST", "/streams", body={"name": "HLS", "sourceUrl": "https://cdn.example/l.m3u8"})[0] == 201
    assert [s["name"] for s in send("GET", "/streams")[1]["items"]] == ["HLS"]
