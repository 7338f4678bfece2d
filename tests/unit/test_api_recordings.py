"""The recording half of the API (docs/recordings-api.md): a stream's recording settings, its
sessions, finalize, MP4 exports and the live playlist; through the real resolver on fakes."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from reelay.models import RecordingState, Video, VideoSource, VideoStatus, VideoVisibility
from reelay.playback import check_signed_access
from reelay.wiring import Services
from tests.fakes import api_event
from tests.recording_api_helpers import InstantExports, install, live_session, ready_session
from tests.unit.test_api import ALICE, assert_error, call, services, settings  # noqa: F401
from tests.unit.test_api_streams import CAMERA, OPERATOR, OPERATOR_2, create, send

pytestmark = [pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")]

STORE_SECRET = "wJalrXUtnFEMI-K7MDENG"
STORE = f"s3://AKIAEXAMPLE:{STORE_SECRET}@eu-west-1/cams-bucket/gate"


def everything_said(*answers: Any) -> str:
    return json.dumps(answers)


# --- the stream's recording settings ---------------------------------------------------------------
def test_store_is_sealed_and_answered_redacted(services: Services) -> None:  # noqa: F811
    out = create(record=True, recordObjectStore=STORE, retentionDays=30, recordRenditions=["360p", "720p"])
    assert out["recordObjectStore"] == "s3://AKIAEXAMPLE:***@eu-west-1/cams-bucket/gate"
    assert (out["retentionDays"], out["recordRenditions"]) == (30, ["720p", "360p"])
    assert out["reconnectWindowSeconds"] is None and out["recordWebhookSecret"] is None
    listed = send("GET", "/streams")[1]
    got = send("GET", f"/streams/{out['streamId']}")[1]
    assert STORE_SECRET not in everything_said(out, listed, got)
    stream = services.catalogue.get_stream(out["streamId"])  # type: ignore[attr-defined]
    assert STORE_SECRET not in (stream.record_object_store_url or "")
    assert STORE_SECRET not in (stream.record_store_secret or "")  # sealed
    assert services.streams.record_store_url(stream) == STORE  # the recorder and workflow open it


def test_webhook_secret_is_shown_once_and_verifies(services: Services) -> None:  # noqa: F811
    from reelay.recording.stores import sign, verify_signature

    out = create(record=True, recordWebhookUrl="https://hooks.example.com/reelay")
    secret = out["recordWebhookSecret"]
    assert secret.startswith("whsec_") and len(secret) == 6 + 64
    assert send("GET", f"/streams/{out['streamId']}")[1]["recordWebhookSecret"] is None
    other = create(record=True, recordWebhookUrl="https://hooks.example.com/reelay")["recordWebhookSecret"]
    assert other != secret  # per stream
    body = b'{"streamId":"x"}'
    header = sign(secret, body, timestamp=int(time.time()))
    assert verify_signature(secret, header, body) and not verify_signature(other, header, body)
    # PATCHing the URL shows the same (derived) secret again
    status, patched = send(
        "PATCH", f"/streams/{out['streamId']}", body={"recordWebhookUrl": "https://h.example/x"}
    )
    assert status == 200 and patched["recordWebhookSecret"] == secret


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("recordObjectStore", "s3+http://k:s@169.254.169.254:80/bucket", "refused"),
        ("recordObjectStore", "s3+http://k:s@127.0.0.1:9000/bucket", "refused"),
        ("recordObjectStore", "file:///var/media", "disk"),
        ("recordObjectStore", "ftp://host/x", "scheme"),
        ("recordWebhookUrl", "http://169.254.169.254/latest", "refused"),
        ("recordWebhookUrl", "http://127.0.0.1:9000/hook", "refused"),
        ("recordWebhookUrl", "gopher://h/x", "http"),
        ("recordWebhookUrl", "https://user:pw@h.example/x", "credentials"),
        ("retentionDays", 0, "retentionDays"),
        ("retentionDays", 3651, "retentionDays"),
        ("retentionDays", "30", "retentionDays"),
        ("reconnectWindowSeconds", 1801, "reconnectWindowSeconds"),
        ("recordRenditions", ["4k"], "4k"),
        ("recordRenditions", ["720p", "720p"], "twice"),
        ("recordRenditions", "720p", "recordRenditions"),
    ],
)
def test_bad_recording_settings_answer_400(services: Services, field: str, value: Any, words: str) -> None:  # noqa: F811
    status, out = send(
        "POST", "/streams", body={"name": "Gate", "sourceUrl": CAMERA, "record": True, field: value}
    )
    assert_error(status, out, 400, "invalid_input", words)
    assert send("GET", "/streams")[1]["items"] == []
    stream_id = create(record=True)["streamId"]
    status, out = send("PATCH", f"/streams/{stream_id}", body={field: value})
    assert_error(status, out, 400, "invalid_input", words)


def test_patch_clears_and_running_streams_keep_their_store(services: Services) -> None:  # noqa: F811
    stream_id = create(record=True, recordObjectStore=STORE, retentionDays=7)["streamId"]
    assert send("POST", f"/streams/{stream_id}/start")[0] == 202
    assert_error(
        *send("PATCH", f"/streams/{stream_id}", body={"recordObjectStore": None}), 409, "conflict", "stop"
    )
    status, out = send("PATCH", f"/streams/{stream_id}", body={"retentionDays": 90})  # any time
    assert status == 200 and out["retentionDays"] == 90
    assert send("POST", f"/streams/{stream_id}/stop")[0] == 202
    status, out = send(
        "PATCH", f"/streams/{stream_id}", body={"recordObjectStore": "", "retentionDays": None}
    )
    assert status == 200, out
    assert (out["recordObjectStore"], out["retentionDays"]) == (None, None)


# --- sessions ----------------------------------------------------------------------------------------
def test_sessions_list_get_and_ownership(services: Services) -> None:  # noqa: F811
    stream_id = create(record=True)["streamId"]
    ready_id, video_id = ready_session(services, stream_id, duration=12.5)
    live_id = live_session(services, stream_id)
    status, page = send("GET", f"/streams/{stream_id}/sessions", query={"limit": "1"})
    assert status == 200 and [s["sessionId"] for s in page["items"]] == [live_id] and page["nextCursor"]
    status, rest = send("GET", f"/streams/{stream_id}/sessions", query={"cursor": page["nextCursor"]})
    assert [s["sessionId"] for s in rest["items"]] == [ready_id] and rest["nextCursor"] is None
    ready = rest["items"][0]
    assert (ready["state"], ready["videoId"], ready["durationSeconds"]) == ("ready", video_id, 12.5)
    assert (
        ready["livePlaylistUrl"] is None and ready["writerCount"] == 1 and ready["storeSource"] == "default"
    )
    status, live = send("GET", f"/streams/{stream_id}/sessions/{live_id}")
    assert status == 200 and live["state"] == "recording"
    assert live["livePlaylistUrl"].startswith("http://localhost:8080/")  # this event names no host
    assert f"/streams/{stream_id}/sessions/{live_id}/live.m3u8?token=" in live["livePlaylistUrl"]

    other_stream = create(OPERATOR_2)["streamId"]
    for path in (f"/streams/{stream_id}/sessions", f"/streams/{stream_id}/sessions/{live_id}"):
        assert_error(*send("GET", path, OPERATOR_2), 404, "not_found")
        assert_error(*send("GET", path, ALICE), 403, "forbidden", "operators")
        assert_error(*send("GET", path, None), 401, "unauthorized")
    # a session of another stream, and unknown ids, are unknown
    assert_error(*send("GET", f"/streams/{other_stream}/sessions/{live_id}", OPERATOR_2), 404, "not_found")
    assert_error(*send("GET", f"/streams/{stream_id}/sessions/nope"), 404, "not_found", "nope")
    assert_error(*send("GET", "/streams/nope/sessions"), 404, "not_found")
    assert_error(
        *send("GET", f"/streams/{stream_id}/sessions", query={"cursor": "junk"}), 400, "invalid_input"
    )
    assert_error(*send("GET", f"/streams/{stream_id}/sessions", query={"limit": "0"}), 400, "invalid_input")


def test_finalize_is_idempotent_and_refuses_a_live_recording(services: Services) -> None:  # noqa: F811
    _, starter = install(services)
    stream_id = create(record=True)["streamId"]
    live_id = live_session(services, stream_id)
    assert_error(
        *send("POST", f"/streams/{stream_id}/sessions/{live_id}/finalize"), 409, "conflict", "recording"
    )
    services.catalogue.end_recording_session(live_id)  # type: ignore[attr-defined]
    status, out = send("POST", f"/streams/{stream_id}/sessions/{live_id}/finalize")
    assert status == 202 and out == {
        "sessionId": live_id, "state": "finalizing", "started": True, "mode": "finalize", "videoId": None
    }  # fmt: skip
    assert starter.starts == [(live_id, "finalize")]
    # the workflow took it (Begin): a second finalize starts nothing
    services.catalogue.begin_recording_workflow(live_id, "exec-x")  # type: ignore[attr-defined]
    status, out = send("POST", f"/streams/{stream_id}/sessions/{live_id}/finalize")
    assert status == 202 and out["started"] is False and len(starter.starts) == 1
    ready_id, video_id = ready_session(services, stream_id)
    status, out = send("POST", f"/streams/{stream_id}/sessions/{ready_id}/finalize")
    assert status == 200 and (out["state"], out["videoId"], out["started"]) == ("ready", video_id, False)
    assert_error(*send("POST", f"/streams/{stream_id}/sessions/nope/finalize"), 404, "not_found")
    assert_error(
        *send("POST", f"/streams/{stream_id}/sessions/{ready_id}/finalize", OPERATOR_2), 404, "not_found"
    )


def test_a_stale_recording_is_fixed_up(services: Services) -> None:  # noqa: F811
    from datetime import timedelta

    from reelay.models import utcnow

    _, starter = install(services)
    stream_id = create(record=True)["streamId"]
    session, _ = services.catalogue.start_recording_session(  # type: ignore[attr-defined]
        stream_id, "w", now=utcnow() - timedelta(hours=1)
    )
    status, out = send("POST", f"/streams/{stream_id}/sessions/{session.session_id}/finalize")
    assert status == 202 and out["mode"] == "fixup" and starter.starts == [(session.session_id, "fixup")]


# --- exports -------------------------------------------------------------------------------------------
def test_exports_of_a_ready_recording(services: Services) -> None:  # noqa: F811
    exports, _ = install(services)
    stream_id = create(record=True)["streamId"]
    session_id, video_id = ready_session(services, stream_id, duration=10.0)
    path = f"/streams/{stream_id}/sessions/{session_id}/exports"
    status, out = send("POST", path, body={"start": 2, "end": 4.5})
    assert status == 202 and out["state"] == "running" and (out["start"], out["end"]) == (2.0, 4.5)
    launched = exports.launched[0]
    keys = ("videoId", "exportRendition", "exportStart", "exportEnd", "exportId")
    assert {k: launched[k] for k in keys} == {
        "videoId": video_id, "exportRendition": "source", "exportStart": 2.0, "exportEnd": 4.5,
        "exportId": out["exportId"],
    }  # fmt: skip
    assert launched["mp4Key"] == f"outputs/exports/{session_id}/{out['exportId']}.mp4"
    status, got = send("GET", f"{path}/{out['exportId']}")
    assert status == 200 and got["state"] == "ready" and got["sizeBytes"] == 1234
    assert got["durationSeconds"] == 2.5 and got["createdAt"] <= got["updatedAt"]
    assert got["downloadUrl"] == f"https://cdn.example/outputs/exports/{session_id}/{out['exportId']}.mp4"
    assert_error(*send("GET", f"{path}/{out['exportId']}", OPERATOR_2), 404, "not_found")
    assert_error(*send("GET", f"{path}/0123abcd"), 404, "not_found")
    assert_error(*send("GET", f"{path}/..%2F..%2Fx"), 404, "not_found")


def test_a_private_recordings_export_is_written_private_and_downloads_signed_only(
    services: Services,  # noqa: F811
) -> None:
    # Given a ready recording whose video its operator made private
    exports, _ = install(services)
    stream_id = create(record=True)["streamId"]
    session_id, video_id = ready_session(services, stream_id, duration=10.0)
    services.catalogue.create(  # type: ignore[attr-defined]
        Video(
            video_id=video_id,
            video_key=f"recordings/{stream_id}/{session_id}/",
            display_name="Gate recording",
            owner_id=OPERATOR["sub"],
            email="olga@example.com",
            status=VideoStatus.READY,
            source=VideoSource.RECORDING,
            visibility=VideoVisibility.PRIVATE,
        )
    )
    path = f"/streams/{stream_id}/sessions/{session_id}/exports"
    # When it exports a range
    status, out = send("POST", path, body={"start": 0, "end": 4})
    assert status == 202, out
    # Then the MP4 is written under the private prefix, out of the public path's reach
    name = f"exports/{session_id}/{out['exportId']}.mp4"
    assert exports.launched[0]["mp4Key"] == f"private-outputs/{name}"
    assert services.store.head(f"private-outputs/{name}") is not None
    assert services.store.head(f"outputs/{name}") is None
    # And its download link is signed for that export's prefix, for its owner only
    status, got = send("GET", f"{path}/{out['exportId']}")
    assert status == 200 and got["state"] == "ready"
    url = urlsplit(got["downloadUrl"])
    assert url.path == f"/private-outputs/{name}"
    query = dict(parse_qsl(url.query))
    key = services.settings.file_store_signing_key
    prefix = f"private-outputs/exports/{session_id}/"
    assert check_signed_access(key, prefix, f"private-outputs/{name}", query) is None
    assert check_signed_access(key, f"private-outputs/{video_id}/", f"private-outputs/{name}", query)
    assert_error(*send("GET", f"{path}/{out['exportId']}", OPERATOR_2), 404, "not_found")
    # When it turns public again (the export moves with it), the link is the public path's
    services.catalogue.set_visibility(video_id, VideoVisibility.PUBLIC)  # type: ignore[attr-defined]
    got = send("GET", f"{path}/{out['exportId']}")[1]
    assert got["downloadUrl"] == f"https://cdn.example/outputs/{name}"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"start": 4, "end": 2}, "start < end"),
        ({"start": 3, "end": 3}, "start < end"),
        ({"start": -1, "end": 2}, "start"),
        ({"start": 0, "end": 10.5}, "past the recording"),
        ({"start": "0", "end": 2}, "start"),
        ({"start": 0}, "end is required"),
        ({"start": 0, "end": 2, "format": "mkv"}, "format"),
    ],
)
def test_bad_export_ranges_answer_400(services: Services, body: dict[str, Any], words: str) -> None:  # noqa: F811
    exports, _ = install(services)
    stream_id = create(record=True)["streamId"]
    session_id, _ = ready_session(services, stream_id, duration=10.0)
    status, out = send("POST", f"/streams/{stream_id}/sessions/{session_id}/exports", body=body)
    assert_error(status, out, 400, "invalid_input", words)
    assert exports.launched == []


def test_exporting_a_recording_still_going_is_409_and_a_failed_export_says_why(services: Services) -> None:  # noqa: F811
    install(services, exports=InstantExports(services, reason="export failed: no segment in the range"))
    stream_id = create(record=True)["streamId"]
    live_id = live_session(services, stream_id)
    status, out = send(
        "POST", f"/streams/{stream_id}/sessions/{live_id}/exports", body={"start": 0, "end": 2}
    )
    assert_error(status, out, 409, "conflict", "recording")
    session_id, _ = ready_session(services, stream_id)
    status, out = send(
        "POST", f"/streams/{stream_id}/sessions/{session_id}/exports", body={"start": 0, "end": 2}
    )
    got = send("GET", f"/streams/{stream_id}/sessions/{session_id}/exports/{out['exportId']}")[1]
    assert got["state"] == "failed" and "no segment" in got["failureReason"] and got["downloadUrl"] is None


def test_exports_unavailable_answer_503(services: Services) -> None:  # noqa: F811
    install(services)
    services.__dict__["export_launcher"] = None
    services.__dict__.pop("recordings", None)
    stream_id = create(record=True)["streamId"]
    session_id, _ = ready_session(services, stream_id)
    status, out = send(
        "POST", f"/streams/{stream_id}/sessions/{session_id}/exports", body={"start": 0, "end": 2}
    )
    assert_error(status, out, 503, "exports_unavailable")


# --- the live playlist ------------------------------------------------------------------------------------
def test_live_playlist_plays_with_its_token_only(services: Services) -> None:  # noqa: F811
    stream_id = create(record=True)["streamId"]
    live_id = live_session(services, stream_id, segments=3)
    url = send("GET", f"/streams/{stream_id}/sessions/{live_id}")[1]["livePlaylistUrl"]
    token = url.split("token=", 1)[1]
    path = f"/streams/{stream_id}/sessions/{live_id}/live.m3u8"
    status, _, headers = _raw(path, {"token": token})
    assert status == 200 and headers["Content-Type"] == "application/vnd.apple.mpegurl"
    body = _raw(path, {"token": token}, text=True)
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in body and body.count("#EXTINF:") == 3
    assert "#EXT-X-ENDLIST" not in body
    assert f"https://cdn.example/recordings/{stream_id}/{live_id}/" in body  # the playback path
    for bad in (
        None,
        "",
        "123",
        f"{int(time.time()) + 60}.{'0' * 64}",
        token.replace(token[-1], "0" if token[-1] != "0" else "1"),
    ):
        status, out, _ = _raw(path, {"token": bad} if bad is not None else None)
        assert status in (400, 403), out
    expired = services.recordings.live_token(live_id, int(time.time()) - 1)
    status, out, _ = _raw(path, {"token": expired})
    assert_error(status, out, 403, "forbidden", "expired")
    # a token of one session does not open another
    other = live_session(services, create(record=True)["streamId"])
    status, out, _ = _raw(f"/streams/{stream_id}/sessions/{other}/live.m3u8", {"token": token})
    assert_error(status, out, 403, "forbidden")
    # once ended, the same playlist closes with ENDLIST
    services.catalogue.end_recording_session(live_id)  # type: ignore[attr-defined]
    assert "#EXT-X-ENDLIST" in _raw(path, {"token": token}, text=True)
    assert services.catalogue.get_recording_session(live_id).state == RecordingState.ENDED  # type: ignore[attr-defined]


def _raw(path: str, query: dict[str, str] | None, *, text: bool = False) -> Any:
    from lambdas.api.handler import lambda_handler
    from tests.fakes import FakeLambdaContext

    response = lambda_handler(api_event("GET", path, query=query), FakeLambdaContext())
    if text:
        assert response["statusCode"] == 200, response
        return response["body"]
    body = response.get("body") or ""
    try:
        out = json.loads(body)
    except ValueError:
        out = body
    headers = dict(response.get("headers") or {})
    headers |= {k: ",".join(v) for k, v in (response.get("multiValueHeaders") or {}).items()}
    return response["statusCode"], out, headers


def test_live_playlist_of_a_per_stream_store_or_before_any_segment(services: Services) -> None:  # noqa: F811
    stream_id = create(record=True)["streamId"]
    cat: Any = services.catalogue
    own, _ = cat.start_recording_session(
        stream_id,
        "w",
        store_url="s3://eu-west-1/own-bucket",
        store_ref=f"stream:{stream_id}",
        store_source="stream",
    )
    token = services.recordings.live_token(own.session_id, int(time.time()) + 60)
    status, out, _ = _raw(f"/streams/{stream_id}/sessions/{own.session_id}/live.m3u8", {"token": token})
    assert_error(status, out, 409, "not_live", "finalized")
    cat.end_recording_session(own.session_id)
    empty, _ = cat.start_recording_session(stream_id, "w2")  # the default store, nothing written yet
    token = services.recordings.live_token(empty.session_id, int(time.time()) + 60)
    status, out, _ = _raw(f"/streams/{stream_id}/sessions/{empty.session_id}/live.m3u8", {"token": token})
    assert_error(status, out, 404, "not_found", "no segment")
    # a valid token for a session of another stream's path is unknown
    status, out, _ = _raw(f"/streams/nope/sessions/{empty.session_id}/live.m3u8", {"token": token})
    assert_error(status, out, 404, "not_found")
