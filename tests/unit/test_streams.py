"""StreamService with the in-memory catalogue, a fake launcher and fake events."""

from __future__ import annotations

from typing import Any

import pytest

from reelay.catalogue.memory import MemoryCatalogue
from reelay.errors import Conflict, InvalidInput, NotFound
from reelay.models import DesiredState, SourceProtocol, StreamHealth, StreamState, VideoMode
from reelay.relay.secrets import SecretsUnavailable, SourceSecrets, derive_key, parse_keys
from reelay.relay.streams import LeaveToReconciler, StreamService
from reelay.settings import Settings
from tests.fakes import FakeEvents, FakeLauncher, event_body

KEY = "k" * 40
PASSWORD = "Sup3r-s3cret-camera-pw"
CAMERA = f"rtsp://admin:{PASSWORD}@10.0.0.5:554/Streaming/101"


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every log record with every field, as the JSON log line would carry them."""
    return "\n".join(str(vars(r)) for r in caplog.records)


@pytest.fixture
def catalogue() -> MemoryCatalogue:
    return MemoryCatalogue()


@pytest.fixture
def launcher() -> FakeLauncher:
    return FakeLauncher()


@pytest.fixture
def events() -> FakeEvents:
    return FakeEvents()


@pytest.fixture
def service(catalogue: MemoryCatalogue, launcher: FakeLauncher, events: FakeEvents) -> StreamService:
    return StreamService(
        catalogue, launcher, SourceSecrets([KEY]), Settings(), outbox=catalogue, events=events
    )


def test_create_stores_the_source_without_its_secret_and_encrypts_the_secret(
    service: StreamService, catalogue: MemoryCatalogue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    # When an operator registers a camera with a password in its URL
    stream = service.create("op-1", "  Gate  ", CAMERA)
    # Then the stored URL has no credentials, the secret column holds ciphertext, not the password
    stored = catalogue.get_stream(stream.stream_id)
    assert stored.source_url == "rtsp://10.0.0.5:554/Streaming/101"
    assert stored.source_protocol == SourceProtocol.RTSP
    assert stored.source_secret is not None and PASSWORD not in stored.source_secret
    assert "admin" not in stored.source_secret
    assert (stored.name, stored.kvs_stream_name, stored.video_mode) == (
        "Gate",
        f"reelay-{stream.stream_id}",
        VideoMode.AUTO,
    )
    # And only the relay gets the full URL back; the API shows which secrets exist, never their values
    assert service.source_url_for_relay(stored) == CAMERA
    assert service.secret_names(stored) == ["password", "username"]
    # And nothing logged carries the password
    assert "stream created" in caplog.messages
    assert PASSWORD not in logged(caplog) and "sourceUrl" in logged(caplog)


def test_secrets_need_a_key_and_a_wrong_key_cannot_open_them(catalogue: MemoryCatalogue) -> None:
    keyless = StreamService(catalogue, FakeLauncher(), SourceSecrets([]), Settings())
    # A source without secrets needs no key
    plain = keyless.create("op-1", "HLS", "https://cdn.example/live.m3u8")
    assert plain.source_secret is None and keyless.secret_names(plain) == []
    with pytest.raises(SecretsUnavailable, match="REELAY_STREAM_SECRET_KEYS"):
        keyless.create("op-1", "Gate", CAMERA)
    sealed = SourceSecrets([KEY]).seal({"password": PASSWORD})
    with pytest.raises(SecretsUnavailable, match="no configured key"):
        SourceSecrets(["x" * 40]).open(sealed)
    # Rotation: a new key first still opens what the old key sealed
    assert SourceSecrets(["n" * 40, KEY]).open(sealed) == {"password": PASSWORD}
    with pytest.raises(SecretsUnavailable, match="at least 32"):
        parse_keys("short, " + KEY)
    assert parse_keys(f" {KEY} ,, ") == [KEY] and len(derive_key(KEY)) == 44


def test_bad_input_is_refused_before_anything_is_stored(
    service: StreamService, catalogue: MemoryCatalogue
) -> None:
    with pytest.raises(InvalidInput, match="link-local"):
        service.create("op-1", "Creds", "http://169.254.170.2/v2/credentials.m3u8")
    with pytest.raises(InvalidInput, match="loopback"):
        service.create("op-1", "Local", "rtsp://127.0.0.1:8554/cam")
    with pytest.raises(InvalidInput, match="reelay-"):
        service.create("op-1", "Gate", CAMERA, kvs_stream_name="someone-elses-stream")
    with pytest.raises(InvalidInput, match="name"):
        service.create("op-1", "   ", CAMERA)
    assert catalogue.list_streams_by_owner("op-1", limit=10).items == []


def test_the_local_platform_allows_loopback_cameras(catalogue: MemoryCatalogue) -> None:
    local = StreamService(catalogue, FakeLauncher(), SourceSecrets([]), Settings(allow_loopback_sources=True))
    assert (
        local.create("op-1", "Demo", "rtsp://127.0.0.1:8554/demo").source_url == "rtsp://127.0.0.1:8554/demo"
    )


def test_another_operators_stream_is_not_found(service: StreamService) -> None:
    stream = service.create("op-1", "Gate", CAMERA)
    for call in (
        lambda: service.get("op-2", stream.stream_id),
        lambda: service.start("op-2", stream.stream_id),
        lambda: service.stop("op-2", stream.stream_id),
        lambda: service.update("op-2", stream.stream_id, name="mine now"),
        lambda: service.delete("op-2", stream.stream_id),
    ):
        with pytest.raises(NotFound):
            call()
    assert service.get("op-1", stream.stream_id).name == "Gate"
    assert service.list_mine("op-2", 10).items == []


def test_start_and_stop_are_idempotent_and_publish_their_events_once(
    service: StreamService, catalogue: MemoryCatalogue, launcher: FakeLauncher, events: FakeEvents
) -> None:
    stream = service.create("op-1", "Gate", CAMERA)
    # When it is started twice
    first = service.start("op-1", stream.stream_id)
    token = catalogue.claim_stream_lease(stream.stream_id, "task-1", 30)
    second = service.start("op-1", stream.stream_id)
    # Then it is desired running, one task was launched (the second call found the task alive)
    assert first.desired_state == second.desired_state == DesiredState.RUNNING
    assert launcher.launched == [stream.stream_id]
    # And stream.started went out once, at once, without a video
    assert [(kind, event_body(d)) for kind, d in events.published] == [
        (
            "stream.started",
            {"streamId": stream.stream_id, "ownerId": "op-1", "kvsStreamName": stream.kvs_stream_name},
        )
    ]
    # When it is stopped twice, Then the task holding the lease is asked to stop each time
    assert service.stop("op-1", stream.stream_id).desired_state == DesiredState.STOPPED
    service.stop("op-1", stream.stream_id)
    assert launcher.stopped == [(stream.stream_id, "task-1")] * 2
    assert [kind for kind, _ in events.published] == ["stream.started", "stream.stopped"]
    assert token is not None and catalogue.release_stream_lease(stream.stream_id, "task-1", token)


def test_start_launches_again_when_the_task_died(service: StreamService, launcher: FakeLauncher) -> None:
    stream = service.create("op-1", "Gate", CAMERA)
    service.start("op-1", stream.stream_id)
    # No task ever claimed the lease (it died at start): starting again launches another
    service.start("op-1", stream.stream_id)
    assert launcher.launched == [stream.stream_id] * 2


def test_a_launcher_failure_leaves_the_desired_state_for_the_reconciler(
    service: StreamService,
    catalogue: MemoryCatalogue,
    launcher: FakeLauncher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = service.create("op-1", "Gate", CAMERA)
    launcher.fail = True
    assert service.start("op-1", stream.stream_id).desired_state == DesiredState.RUNNING
    assert [s.stream_id for s in catalogue.streams_to_reconcile()] == [stream.stream_id]
    assert "relay task not launched: the reconciler will" in caplog.messages


def test_update_renames_any_time_but_changes_the_source_only_while_stopped(
    service: StreamService, catalogue: MemoryCatalogue
) -> None:
    stream = service.create("op-1", "Gate", CAMERA)
    moved = service.update(
        "op-1",
        stream.stream_id,
        source_url="srt://10.0.0.9:9000?passphrase=0123456789abc",
        video=VideoMode.TRANSCODE,
    )
    assert (moved.source_url, moved.source_protocol, moved.video_mode) == (
        "srt://10.0.0.9:9000",
        SourceProtocol.SRT,
        VideoMode.TRANSCODE,
    )
    assert service.source_url_for_relay(moved) == "srt://10.0.0.9:9000?passphrase=0123456789abc"
    service.start("op-1", stream.stream_id)
    assert service.update("op-1", stream.stream_id, name="Front gate").name == "Front gate"
    with pytest.raises(Conflict, match="stop it"):
        service.update("op-1", stream.stream_id, source_url="https://cdn.example/x.m3u8")
    with pytest.raises(InvalidInput, match="give name"):
        service.update("op-1", stream.stream_id)
    renamed = service.update("op-1", stream.stream_id, name="Front gate")
    assert renamed.kvs_stream_name == stream.kvs_stream_name


def test_delete_stops_the_task_first_and_the_stream_goes_once_the_task_lets_go(
    service: StreamService, catalogue: MemoryCatalogue, launcher: FakeLauncher, events: FakeEvents
) -> None:
    stream = service.create("op-1", "Gate", CAMERA)
    service.start("op-1", stream.stream_id)
    token = catalogue.claim_stream_lease(stream.stream_id, "task-1", 30)
    assert token is not None
    assert catalogue.report_stream_health(stream.stream_id, token, StreamHealth(state=StreamState.RUNNING))
    # When it is deleted while its task relays
    service.delete("op-1", stream.stream_id)
    # Then the task was asked to stop, stream.stopped went out, and the stream is gone for the operator
    assert launcher.stopped == [(stream.stream_id, "task-1")]
    assert [kind for kind, _ in events.published] == ["stream.started", "stream.stopped"]
    with pytest.raises(NotFound):
        service.get("op-1", stream.stream_id)
    # And once the task releases its lease, nothing is left to reconcile
    assert [s.stream_id for s in catalogue.streams_to_reconcile()] == [stream.stream_id]
    assert catalogue.release_stream_lease(stream.stream_id, "task-1", token)
    assert catalogue.streams_to_reconcile() == []


def test_leaving_launches_to_the_reconciler_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    launcher: Any = LeaveToReconciler()
    launcher.launch("s1")
    launcher.stop("s1", "task-1")
    assert caplog.messages == ["relay task left to the reconciler"] * 2
    assert [(r.streamId, r.action) for r in caplog.records] == [("s1", "launch"), ("s1", "stop")]
