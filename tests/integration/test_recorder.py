"""The recorder on real GStreamer and a real RTSP camera: the relay's supervisor with its recording
branch (no KVS here), a ``file://`` store, the in-memory catalogue's recording sessions."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from local.cameras import RtspCamera
from reelay.catalogue.memory import MemoryCatalogue
from reelay.models import RecordingState, Rendition
from reelay.recording import layout
from reelay.recording.manifests import Retry
from reelay.recording.recorder import Recorder
from reelay.recording.writer import SessionWriter
from reelay.relay.pipelines import RecordingSpec, SourceSpec
from reelay.relay.supervisor import RelayPolicy, Supervisor
from reelay.storage.file import FileStore
from tests.camera_fixtures import rtsp_camera
from tests.relay_fixtures import wait_until
from tests.unit.test_recorder import FlakyStore

__all__ = ["rtsp_camera"]  # fixtures used by name

pytestmark = pytest.mark.media

SOURCE = Rendition(name="source", bandwidth=1, codecs="avc1.640028", playlist="source/index.m3u8")
FAST = Retry(attempts=2, base_seconds=0.05, cap_seconds=0.1)


@dataclass
class Rig:
    catalogue: MemoryCatalogue
    store: FlakyStore
    writer: SessionWriter
    recorder: Recorder
    supervisor: Supervisor
    spool: Path

    def segments(self) -> list[layout.SegmentKey]:
        found = [layout.parse_key(i.key) for i in self.store.list(layout.ROOT)]
        return sorted((s for s in found if isinstance(s, layout.SegmentKey)), key=lambda s: s.seq)

    def wait_segments(self, more_than: int, timeout: float = 30) -> list[layout.SegmentKey]:
        return wait_until(
            lambda: len(s := self.segments()) > more_than and s, timeout, f"more than {more_than} segments"
        )


def recording_rig(tmp_path: Path, camera_url: str, *, max_spool_bytes: int = 64 * 1024 * 1024) -> Rig:
    catalogue = MemoryCatalogue()
    store = FlakyStore(FileStore(tmp_path / "store", public_url=None, signing_key=None))
    writer = SessionWriter(
        store, catalogue, "cam-1", "task-1", [SOURCE], segment_ms=2000, chunk_size=3,
        reconnect_window_seconds=30, retry=FAST,
    )  # fmt: skip
    spool = tmp_path / "spool"
    recorder = Recorder(writer, spool, max_spool_bytes=max_spool_bytes, retry_seconds=0.2)
    supervisor = Supervisor(
        SourceSpec(camera_url),
        None,
        recording=RecordingSpec(recorder, spool, segment_seconds=1.0),
        policy=RelayPolicy(stall_seconds=1.5, backoff_cap=0.5),
    )
    return Rig(catalogue, store, writer, recorder, supervisor, spool)


@pytest.fixture
def rig(tmp_path: Path, rtsp_camera: RtspCamera) -> Iterator[Rig]:
    r = recording_rig(tmp_path, rtsp_camera.url)
    loop = threading.Thread(target=r.supervisor.run, daemon=True)
    loop.start()
    yield r
    r.supervisor.stop()
    loop.join(20)
    r.recorder.close(5)


def test_recording_a_camera_writes_segments_and_rolling_manifests_and_stop_ends_the_session(
    rig: Rig,
) -> None:
    segments = rig.wait_segments(4, timeout=30)
    # Stop the stream: the pipeline drains (the last segment closes), then the session ends.
    rig.supervisor.stop()
    assert rig.supervisor.stopped.wait(20)
    rig.recorder.end("stopped")
    assert rig.recorder.close(20)
    segments = rig.segments()
    session = rig.catalogue.list_recording_sessions("cam-1")
    assert len(session) == 1 and session[0].state == RecordingState.ENDED
    assert session[0].end_reason == "stopped"
    sid = session[0].session_id
    for seg in segments:
        assert (seg.stream_id, seg.session_id, seg.writer_id, seg.rendition) == (
            "cam-1",
            sid,
            "task-1",
            "source",
        )
        # about the 1 s asked for, split at keyframes (the last one closes early, at the stop)
        assert seg.duration_ms is not None and 0 < seg.duration_ms < 4000
        info = rig.store.store.head(seg.key())  # type: ignore[attr-defined]
        assert info.metadata["duration-ms"] == str(seg.duration_ms)
        assert rig.store.get_bytes(seg.key())[:1] == b"\x47"  # an MPEG-TS sync byte
    assert sum(s.duration_ms or 0 for s in segments) >= 4000  # five segments or more of ~1 s
    seqs = [s.seq for s in segments]
    assert seqs == sorted(set(seqs))
    # Rolling manifests: chunks of 3 entries, together listing every segment once.
    chunks = [i.key for i in rig.store.list(layout.manifest_session_prefix("cam-1", sid))]
    assert len(chunks) == -(-len(segments) // 3) and len(chunks) >= 2
    listed = [e for k in chunks for e in json.loads(rig.store.get_bytes(k))["segments"]]
    assert listed == [s.name() for s in segments]
    health = rig.recorder.health()
    assert (health.segments_written, health.segments_dropped, health.pending) == (len(segments), 0, 0)
    assert not list(rig.spool.glob("*.ts")) or all(p.stat().st_size == 0 for p in rig.spool.glob("*.ts"))


def test_a_camera_killed_and_back_within_the_window_continues_one_session(
    rig: Rig, rtsp_camera: RtspCamera
) -> None:
    before = rig.wait_segments(2)
    rtsp_camera.kill()
    wait_until(lambda: rig.supervisor.health().state == "reconnecting", 15, "the drop")
    rtsp_camera.start()
    after = rig.wait_segments(len(before) + 2, timeout=40)
    sessions = rig.catalogue.list_recording_sessions("cam-1")
    assert len(sessions) == 1 and sessions[0].discontinuities >= 1
    assert {s.session_id for s in after} == {sessions[0].session_id}
    # The first segment after the reconnect is marked as following a discontinuity.
    assert any(s.discontinuity for s in after[len(before) :])
    assert rig.recorder.health().discontinuities >= 1


def test_a_store_outage_delays_segments_without_losing_them(rig: Rig) -> None:
    rig.wait_segments(1)
    rig.store.down.set()
    wait_until(lambda: rig.recorder.health().pending >= 3, 20, "segments waiting in the spool")
    health = rig.recorder.health()
    assert health.store_failing and health.spool_bytes > 0 and "unreachable" in (health.last_error or "")
    rig.store.down.clear()
    wait_until(lambda: rig.recorder.health().pending == 0, 20, "the spool to drain")
    segments = rig.segments()
    seqs = [s.seq for s in segments]
    assert rig.recorder.health().segments_dropped == 0
    assert len(seqs) == rig.recorder.health().segments_written == len(set(seqs))
    assert seqs == sorted(seqs)


def test_a_full_spool_drops_the_oldest_segments_and_counts_them(
    tmp_path: Path, rtsp_camera: RtspCamera
) -> None:
    r = recording_rig(tmp_path, rtsp_camera.url, max_spool_bytes=1)  # room for the newest segment only
    r.store.down.set()
    loop = threading.Thread(target=r.supervisor.run, daemon=True)
    loop.start()
    try:
        wait_until(lambda: r.recorder.health().segments_dropped >= 2, 30, "dropped segments")
        r.store.down.clear()
        wait_until(lambda: r.recorder.health().pending == 0, 20, "the spool to drain")
        h = r.recorder.health()
        assert h.segments_dropped >= 2 and h.segments_written >= 1
        assert len(r.segments()) == h.segments_written
    finally:
        r.supervisor.stop()
        loop.join(20)
        r.recorder.close(5)
