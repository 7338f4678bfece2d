"""The real relay task (``python -m transcoder.relay``, the real kvssink, the KVS stand-in, MariaDB)
recording a real RTSP camera to a ``file://`` store: a SIGKILL mid-session, and a store outage that
must not touch the KVS branch."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from local.cameras import RtspCamera
from local.kvs import KvsStandIn
from local.relays import LocalRelays
from reelay.catalogue import ConnectionProvider
from reelay.catalogue.mysql import MySQLCatalogue
from reelay.models import RecordingState, Stream
from reelay.recording import layout, steps
from reelay.relay.secrets import SourceSecrets
from reelay.relay.streams import StreamService
from reelay.settings import Settings
from reelay.storage.file import FileStore
from tests.camera_fixtures import rtsp_camera
from tests.picture_check import check_picture
from tests.relay_fixtures import OWNER, RelayRig, child_environment, relay_database, wait_until

__all__ = ["relay_database", "rtsp_camera"]  # fixtures used by name

pytestmark = [pytest.mark.media, pytest.mark.mysql]


class RecordingRig(RelayRig):
    store_root: Path

    def record(self, url: str, *, relay: bool = True) -> Stream:
        stream = self.streams.create(OWNER, f"recorded {secrets.token_hex(3)}", url, record=True, relay=relay)
        self.streams.start(OWNER, stream.stream_id)
        return self.catalogue.get_stream(stream.stream_id)

    def store(self) -> FileStore:
        return FileStore(self.store_root, public_url=None, signing_key=None)

    def segment_keys_in(self, moved: Path) -> list[Path]:
        return list(moved.rglob("*.ts"))

    def segment_keys(self, stream: Stream) -> set[str]:
        found = [layout.parse_key(i.key) for i in self.store().list(layout.stream_prefix(stream.stream_id))]
        return {s.key() for s in found if isinstance(s, layout.SegmentKey)}

    def wait_segments(self, stream: Stream, more_than: int, timeout: float = 40) -> set[str]:
        return wait_until(
            lambda: len(k := self.segment_keys(stream)) > more_than and k,
            timeout,
            f"more than {more_than} segments of {stream.stream_id}; log:\n{self.log(stream)}",
        )


@contextmanager
def recording_rig(tmp_path: Path, database: str, **env: str) -> Iterator[RecordingRig]:
    kvs = KvsStandIn(tmp_path / "kvs").start()
    key = secrets.token_urlsafe(32)
    store_root = tmp_path / "store"
    store_root.mkdir()
    settings = Settings(database_url=database, stream_secret_keys=key, allow_loopback_sources=True)  # type: ignore[arg-type]
    catalogue = MySQLCatalogue(ConnectionProvider.from_url(database))
    child_env = child_environment(
        database,
        kvs,
        tmp_path / "work",
        key,
        REELAY_MEDIA_STORE_URL=f"file://{store_root}",
        REELAY_RECORDING_STORE_URL=f"file://{store_root}",
        REELAY_RECORDING_SEGMENT_SECONDS="1",
        REELAY_RECORDING_CHUNK_SIZE="4",
        **env,
    )
    relays = LocalRelays(catalogue, log_dir=tmp_path / "relays", env=child_env)
    streams = StreamService(catalogue, relays, SourceSecrets([key]), settings)
    r = RecordingRig(catalogue, streams, relays, kvs, tmp_path / "relays", settings)
    r.store_root = store_root
    stop = threading.Event()
    loop = threading.Thread(target=relays, args=(stop,), name="relay-tasks", daemon=True)
    loop.start()
    try:
        yield r
    finally:
        stop.set()
        loop.join(30)
        relays.stop_all()
        kvs.stop()


@pytest.fixture
def rig(tmp_path: Path, relay_database: str) -> Iterator[RecordingRig]:
    with recording_rig(tmp_path, relay_database) as r:
        yield r


def test_a_relay_killed_mid_session_leaves_segments_fixup_recovers_in_full(
    rig: RecordingRig, rtsp_camera: RtspCamera
) -> None:
    stream = rig.record(rtsp_camera.url)
    rig.wait_segments(stream, 3)
    pid = rig.relays.pid(stream.stream_id)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    at_kill = rig.segment_keys(stream)
    # The launcher starts another task; it continues the same session (inside the window).
    wait_until(lambda: rig.relays.pid(stream.stream_id) not in (None, pid), 15, "a new relay task")
    rig.wait_segments(stream, len(at_kill) + 2)
    rig.streams.stop(OWNER, stream.stream_id)
    wait_until(lambda: rig.relays.pid(stream.stream_id) is None, 30, "the task to end")
    sessions = rig.catalogue.list_recording_sessions(stream.stream_id)
    assert len(sessions) == 1, sessions
    session = sessions[0]
    assert session.state == RecordingState.ENDED and session.discontinuities >= 1
    assert len(session.writers) == 2  # the killed task's writer and its replacement
    # Fixup's listing: every segment that reached the store is in the merged recording.
    listing = steps.list_session(rig.store(), stream.stream_id, session.session_id)
    merged = listing.merged("source")
    kept = {(listing.writers[e[4]], e[0]) for e in merged.entries}
    stored = [layout.parse_key(k) for k in rig.segment_keys(stream)]
    assert at_kill and {(s.writer_id, s.seq) for s in stored if isinstance(s, layout.SegmentKey)} == kept
    assert (listing.skipped, listing.plain, len(merged.duplicates)) == (0, 0, 0)
    assert merged.discontinuities >= 1  # the restart


def test_a_store_outage_never_stops_kvs_and_segments_arrive_after_it(
    rig: RecordingRig, rtsp_camera: RtspCamera
) -> None:
    stream = rig.record(rtsp_camera.url)
    rig.wait_segments(stream, 1)
    rig.wait_persisted(stream, 1)
    # The store breaks: its recordings directory becomes a file (refused even to root).
    recordings = rig.store_root / "recordings"
    shutil.move(recordings, rig.store_root / "away")
    recordings.write_bytes(b"")
    at_outage = len(rig.segment_keys_in(rig.store_root / "away"))
    try:
        before_kvs = rig.persisted(stream)
        rig.wait_persisted(stream, before_kvs + 3, timeout=30)  # KVS keeps flowing meanwhile
        assert "recording upload failed" in wait_until(
            lambda: "recording upload failed" in (log := rig.log(stream)) and log, 20, "an upload failure"
        )
        # Nothing reached the store meanwhile: the segments wait in the relay's spool.
        assert len(rig.segment_keys_in(rig.store_root / "away")) == at_outage
    finally:
        recordings.unlink()
        shutil.move(rig.store_root / "away", recordings)
    during = len(rig.segment_keys(stream))
    rig.streams.stop(OWNER, stream.stream_id)
    wait_until(lambda: rig.relays.pid(stream.stream_id) is None, 40, "the task to end")
    keys = [layout.parse_key(k) for k in rig.segment_keys(stream)]
    seqs = sorted(s.seq for s in keys if isinstance(s, layout.SegmentKey))
    # Delayed, not lost: the segments recorded during the outage arrived after it, without gaps
    # beyond what keyframe splits leave (sequence numbers come from the wall clock).
    assert len(seqs) > max(during, at_outage) + 3
    assert rig.stream(stream.stream_id).state == "stopped"
    assert "segmentsDropped" not in rig.log(stream)
    session = rig.catalogue.list_recording_sessions(stream.stream_id)[0]
    assert session.state == RecordingState.ENDED


def test_a_stream_that_only_records_runs_without_kvs(rig: RecordingRig, rtsp_camera: RtspCamera) -> None:
    stream = rig.record(rtsp_camera.url, relay=False)
    assert stream.kvs_stream_name is None
    rig.wait_segments(stream, 2)
    # No acks to wait for: media flowing through the recording branch is the relay running.
    assert rig.wait_state(stream, "running", timeout=20).last_fragment_number is None
    assert [r.path for r in rig.kvs.requests if r.stream is not None] == []  # KVS never called
    rig.streams.stop(OWNER, stream.stream_id)
    wait_until(lambda: rig.relays.pid(stream.stream_id) is None, 30, "the task to end")
    assert rig.catalogue.list_recording_sessions(stream.stream_id)[0].state == RecordingState.ENDED


def test_the_recorded_source_rendition_is_intact(
    rig: RecordingRig, rtsp_camera: RtspCamera, tmp_path: Path
) -> None:
    """The recording's source segments decode to the camera's pattern, frame after frame (the RTSP
    camera's key frames come in two slices with SPS/PPS repeated before each: see RTP_DEPAYLOADERS)."""
    stream = rig.record(rtsp_camera.url, relay=False)
    keys = sorted(rig.wait_segments(stream, 4))  # one writer, one rendition: in sequence order
    assert all("/source/" in key for key in keys), keys
    segments = [rig.store_root / key for key in keys]
    joined = tmp_path / "recorded.ts"
    joined.write_bytes(b"".join(p.read_bytes() for p in segments[1:4]))
    picture = check_picture(joined, tmp_path)
    assert picture.damaged == 0, picture
    assert picture.frames >= 20, picture


def test_a_source_down_longer_than_the_window_ends_the_session_and_its_return_starts_another(
    tmp_path: Path, relay_database: str, rtsp_camera: RtspCamera
) -> None:
    with recording_rig(tmp_path, relay_database, REELAY_RECORDING_RECONNECT_WINDOW_SECONDS="2") as r:
        stream = r.record(rtsp_camera.url)
        r.wait_segments(stream, 1)
        rtsp_camera.kill()

        def sessions() -> list[RecordingState]:
            return [s.state for s in r.catalogue.list_recording_sessions(stream.stream_id)]

        # The lease beat (every 1.5 s here) sees the source down past the window and ends the session.
        wait_until(
            lambda: sessions() == [RecordingState.ENDED], 20, f"the session to end; log:\n{r.log(stream)}"
        )
        (ended,) = r.catalogue.list_recording_sessions(stream.stream_id)
        assert ended.end_reason and "reconnect window" in ended.end_reason
        rtsp_camera.start()
        wait_until(lambda: len(sessions()) == 2, 40, f"a second session; log:\n{r.log(stream)}")
        r.streams.stop(OWNER, stream.stream_id)
        wait_until(lambda: r.relays.pid(stream.stream_id) is None, 30, "the task to end")
        assert sessions() == [RecordingState.ENDED, RecordingState.ENDED]
