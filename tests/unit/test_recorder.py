"""The recorder's queue, spool and session rules, with a real SessionWriter, the in-memory catalogue
and a real file store (no GStreamer: segment files are written by the test)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from reelay.catalogue.memory import MemoryCatalogue
from reelay.models import RecordingState, Rendition
from reelay.ports import ObjectStore
from reelay.recording import layout
from reelay.recording.manifests import Retry
from reelay.recording.recorder import Recorder
from reelay.recording.writer import SessionWriter
from reelay.storage.file import FileStore

SOURCE = Rendition(name="source", bandwidth=1, codecs="avc1.640028", playlist="source/index.m3u8")
FAST = Retry(attempts=2, base_seconds=0.01, cap_seconds=0.02)


class FlakyStore:
    """A real store that refuses writes while ``down`` is set, or writes whose key contains ``refuse``."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.down = threading.Event()
        self.refuse: str | None = None
        self.puts: list[str] = []

    def put_bytes(self, key: str, data: bytes, **kwargs: object) -> None:
        if self.down.is_set() or (self.refuse is not None and self.refuse in key):
            raise ConnectionError("store unreachable")
        self.puts.append(key)
        self.store.put_bytes(key, data, **kwargs)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


def segments(store: ObjectStore) -> list[layout.SegmentKey]:
    found = [layout.parse_key(i.key) for i in store.list(layout.ROOT)]
    return sorted((s for s in found if isinstance(s, layout.SegmentKey)), key=lambda s: s.seq)


def consecutive(found: list[layout.SegmentKey], n: int) -> bool:
    """n segments numbered one after the other (numbers come from the wall clock, 1 s apart here)."""
    seqs = [s.seq for s in found]
    return len(seqs) == n and seqs == list(range(seqs[0], seqs[0] + n))


def wait(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def parts(tmp_path: Path):  # type: ignore[no-untyped-def]
    catalogue = MemoryCatalogue()
    store = FlakyStore(FileStore(tmp_path / "store", public_url=None, signing_key=None))
    writer = SessionWriter(
        store, catalogue, "cam", "w1", [SOURCE], segment_ms=1000, chunk_size=2, reconnect_window_seconds=5,
        retry=FAST, sleep=lambda _s: None,
    )  # fmt: skip
    clock = {"ms": int(time.time() * 1000)}  # sessions start on the real clock
    recorder = Recorder(
        writer, tmp_path / "spool", max_spool_bytes=10_000, retry_seconds=0.02, wall_ms=lambda: clock["ms"]
    )
    yield catalogue, store, writer, recorder, clock
    # The store answers again, so the worker empties its queue and stops: a worker left retrying
    # would go on logging and spending CPU for the rest of the test session.
    store.down.clear()
    store.refuse = None
    assert recorder.close(5), "the recorder's worker did not finish"


def closed(recorder: Recorder, clock: dict[str, int], name: str, size: int = 1000) -> Path:
    """A segment file as splitmuxsink leaves it, one second of media, handed over."""
    clock["ms"] += 1000
    path = recorder.spool_dir / name
    path.write_bytes(b"\x47" * size)
    recorder.segment_closed(path, 1000)
    return path


def test_segments_go_to_the_store_in_order_then_the_spool_is_empty(parts) -> None:  # type: ignore[no-untyped-def]
    catalogue, store, _writer, recorder, clock = parts
    recorder.media_started()
    files = [closed(recorder, clock, f"a-{i}.ts") for i in range(5)]
    wait(lambda: recorder.health().segments_written == 5)
    assert consecutive(segments(store), 5)
    assert not any(f.exists() for f in files)
    h = recorder.health()
    assert (h.pending, h.spool_bytes, h.segments_dropped, h.sessions_started) == (0, 0, 0, 1)
    assert catalogue.list_recording_sessions("cam")[0].state == RecordingState.RECORDING


def test_an_outage_keeps_segments_in_the_spool_then_delivers_every_one(parts) -> None:  # type: ignore[no-untyped-def]
    _catalogue, store, _writer, recorder, clock = parts
    recorder.media_started()
    closed(recorder, clock, "a-0.ts")
    wait(lambda: recorder.health().segments_written == 1)
    store.down.set()
    for i in range(1, 6):
        closed(recorder, clock, f"a-{i}.ts")
    wait(lambda: recorder.health().store_failing)
    assert recorder.health().pending >= 4 and recorder.health().spool_bytes >= 4000
    store.down.clear()
    wait(lambda: recorder.health().pending == 0)
    assert consecutive(segments(store), 6)
    assert recorder.health().segments_dropped == 0


def test_a_full_spool_drops_the_oldest_and_counts_them(parts) -> None:  # type: ignore[no-untyped-def]
    _catalogue, store, _writer, recorder, clock = parts
    start = clock["ms"]
    dropped: list[int] = []
    recorder.on_dropped = dropped.append
    store.down.set()
    recorder.media_started()
    files = [closed(recorder, clock, f"a-{i}.ts", size=3000) for i in range(6)]  # 18 kB > 10 kB
    h = recorder.health()
    assert h.segments_dropped == 3 and sum(dropped) == 3 and h.spool_bytes <= 10_000
    # The oldest go, except the one the worker holds at that moment: between two tries it holds none,
    # so the first may go and the next become the one it holds.
    assert sum(not f.exists() for f in files) == 3 and files[-1].exists()
    store.down.clear()
    wait(lambda: recorder.health().pending == 0)
    kept = [s.pdt_ms for s in segments(store)]
    assert len(kept) == 3 and kept == sorted(kept)
    assert max(kept) == start + 6000 - 1000  # the newest survived


def test_a_failed_manifest_update_never_writes_its_segment_twice(parts) -> None:  # type: ignore[no-untyped-def]
    _catalogue, store, _writer, recorder, clock = parts
    recorder.media_started()
    store.refuse = "_manifests"
    closed(recorder, clock, "a-0.ts")
    wait(lambda: recorder.health().segments_written == 1)
    store.refuse = None
    closed(recorder, clock, "a-1.ts")
    wait(lambda: recorder.health().segments_written == 2)
    assert consecutive(segments(store), 2)
    # the manifest, written with the next segment, lists both
    chunk = store.get_bytes(layout.manifest_key("cam", segments(store)[0].session_id, "w1", "source", 0))
    assert all(s.name() in chunk.decode() for s in segments(store))


def test_a_source_down_past_the_window_ends_the_session_and_media_starts_another(parts) -> None:  # type: ignore[no-untyped-def]
    catalogue, _store, _writer, recorder, clock = parts
    recorder.media_started()
    closed(recorder, clock, "a-0.ts")
    assert not recorder.source_down(4.0)  # inside the 5 s window: the session stays open
    assert recorder.source_down(6.0)
    assert not recorder.source_down(7.0)  # once
    wait(lambda: [s.state for s in catalogue.list_recording_sessions("cam")] == [RecordingState.ENDED])
    ended = catalogue.list_recording_sessions("cam")[0]
    assert ended.end_reason and "window" in ended.end_reason
    closed(recorder, clock, "b-0.ts")  # media again, with no media_started: a new session anyway
    wait(lambda: len(catalogue.list_recording_sessions("cam")) == 2)
    wait(lambda: recorder.health().segments_written == 2)
    assert recorder.health().sessions_started == 2


def test_a_reconnect_inside_the_window_continues_the_session(parts) -> None:  # type: ignore[no-untyped-def]
    catalogue, store, _writer, recorder, clock = parts
    recorder.media_started()
    closed(recorder, clock, "a-0.ts")
    recorder.media_started()  # a rebuilt pipeline
    closed(recorder, clock, "b-0.ts")
    wait(lambda: recorder.health().segments_written == 2)
    assert len(catalogue.list_recording_sessions("cam")) == 1
    assert [s.discontinuity for s in segments(store)] == [False, True]
    assert recorder.health().discontinuities == 1
    recorder.end("stopped")
    wait(lambda: catalogue.list_recording_sessions("cam")[0].state == RecordingState.ENDED)


def test_leftover_files_are_swept_and_an_unknown_file_is_not_fatal(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "old-000001.ts").write_bytes(b"x")
    writer = SessionWriter(
        FileStore(tmp_path / "s", public_url=None, signing_key=None), MemoryCatalogue(), "cam", "w", [SOURCE]
    )
    recorder = Recorder(writer, spool)
    assert not (spool / "old-000001.ts").exists()
    recorder.segment_closed(spool / "missing.ts", 1000)  # logged, ignored
    assert recorder.health().pending == 0
    assert recorder.close(2)


# --- encoded renditions --------------------------------------------------------------------------------
def _with_rungs(tmp_path: Path, describe_seconds: float = 5.0, names=("360p", "240p")):  # type: ignore[no-untyped-def]
    from reelay.media.ladder import rungs
    from reelay.recording.recorder import planned_renditions

    catalogue = MemoryCatalogue()
    store = FileStore(tmp_path / "store", public_url=None, signing_key=None)
    encoded = rungs(list(names))
    writer = SessionWriter(
        store, catalogue, "cam", "w1", [SOURCE, *planned_renditions(encoded)], segment_ms=1000,
        retry=FAST, sleep=lambda _s: None,
    )  # fmt: skip
    recorder = Recorder(writer, tmp_path / "spool", renditions=encoded, describe_seconds=describe_seconds)
    return catalogue, store, recorder


def test_described_renditions_are_what_the_session_records(tmp_path: Path) -> None:
    catalogue, _store, recorder = _with_rungs(tmp_path)
    try:
        recorder.media_started()  # the worker waits for the renditions to describe themselves
        time.sleep(0.1)
        assert catalogue.list_recording_sessions("cam") == []
        recorder.describe_rendition("source", 1920, 1080, "avc1.640028")
        recorder.describe_rendition("360p", 640, 360, "avc1.4d401e")
        recorder.describe_rendition("240p", 426, 240, "avc1.4d4015")
        wait(lambda: recorder.health().sessions_started == 1)
        got = {
            r.name: (r.width, r.height, r.codecs)
            for r in catalogue.list_recording_sessions("cam")[0].renditions
        }
        assert got == {
            "source": (1920, 1080, "avc1.640028"),
            "360p": (640, 360, "avc1.4d401e"),
            "240p": (426, 240, "avc1.4d4015"),
        }
    finally:
        recorder.close(2)


def test_a_rendition_that_never_describes_itself_does_not_hold_the_recording_up(tmp_path: Path) -> None:
    catalogue, _store, recorder = _with_rungs(tmp_path, describe_seconds=0.2)
    try:
        recorder.describe_rendition("source", 640, 360, "avc1.42c01e")
        recorder.media_started()
        wait(lambda: recorder.health().sessions_started == 1)
        got = {r.name: (r.width, r.height) for r in catalogue.list_recording_sessions("cam")[0].renditions}
        assert got == {"source": (640, 360), "360p": (640, 360), "240p": (426, 240)}  # the rungs' boxes
    finally:
        recorder.close(2)


def test_a_rung_the_same_size_as_the_source_or_a_better_rung_is_not_recorded(tmp_path: Path) -> None:
    # Given a 640x360 camera recorded with 720p, 360p and 240p rungs (never upscaled: 720p and 360p
    # both come out 640x360, the source's size)
    catalogue, store, recorder = _with_rungs(tmp_path, names=("720p", "360p", "240p"))
    try:
        t0 = int(time.time() * 1000)

        def hand_over(i: int) -> None:
            for name in ("source", "720p", "360p", "240p"):
                path = recorder.spool_dir / f"{name}-{i}.ts"
                path.write_bytes(b"\x47" * 188)
                recorder.segment_closed(path, 1000, rendition=name, pdt_ms=t0 + i * 1000)

        hand_over(0)  # segments the pipeline closed before the session started
        recorder.describe_rendition("source", 640, 360, "avc1.42c01e")
        recorder.describe_rendition("720p", 640, 360, "avc1.64001e")
        recorder.describe_rendition("360p", 640, 360, "avc1.4d401e")
        recorder.describe_rendition("240p", 426, 240, "avc1.4d4015")
        wait(lambda: recorder.health().sessions_started == 1)
        hand_over(1)
        wait(lambda: recorder.health().segments_written == 4 and recorder.health().pending == 0)
        # Then the session lists the source and 240p only, and only their segments are stored
        (session,) = catalogue.list_recording_sessions("cam")
        assert [(r.name, r.width, r.height) for r in session.renditions] == [
            ("source", 640, 360), ("240p", 426, 240)
        ]  # fmt: skip
        assert sorted({s.rendition for s in segments(store)}) == ["240p", "source"]
        assert len(segments(store)) == 4 and recorder.health().spool_bytes == 0
        assert sorted(p.name for p in recorder.spool_dir.iterdir()) == []  # dropped files are deleted
    finally:
        recorder.close(2)


def test_redundant_renditions_keep_the_source_then_the_highest_bandwidth() -> None:
    from reelay.recording.recorder import redundant_renditions

    def r(name: str, w: int, h: int, bw: int) -> Rendition:
        return Rendition(name=name, width=w, height=h, bandwidth=bw, codecs="avc1.640028", playlist="x.m3u8")

    assert redundant_renditions([r("source", 1280, 720, 1), r("720p", 1280, 720, 5000)]) == {"720p"}
    # two rungs of one size: the better one stays; unknown sizes are never duplicates
    ladder = [r("source", 1920, 1080, 1), r("a", 1280, 720, 2000), r("b", 1280, 720, 4000), r("c", 0, 0, 9)]
    assert redundant_renditions(ladder) == {"a"}
    assert redundant_renditions([r("source", 0, 0, 1), r("x", 0, 0, 2), r("y", 0, 0, 3)]) == set()
    assert redundant_renditions([r("source", 640, 360, 1), r("360p", 640, 360, 1)]) == {"360p"}


def test_renditions_segments_given_one_start_time_share_sequence_numbers(tmp_path: Path) -> None:
    _catalogue, store, recorder = _with_rungs(tmp_path, describe_seconds=0)
    try:
        recorder.media_started()
        t0 = int(time.time() * 1000) + 500
        for i in range(3):
            for name in ("source", "360p", "240p"):
                path = recorder.spool_dir / f"{name}-{i}.ts"
                path.write_bytes(b"\x47" * 188)
                # the encoded ones close later than the source: the start time given decides, not "now"
                recorder.segment_closed(path, 1000, rendition=name, pdt_ms=t0 + i * 1000)
        wait(lambda: recorder.health().segments_written == 9)
        found: dict[str, list[tuple[int, int]]] = {}
        for s in segments(store):
            found.setdefault(s.rendition, []).append((s.seq, s.pdt_ms or 0))
        assert found["source"] == found["360p"] == found["240p"]
        assert [p for _, p in found["source"]] == [t0, t0 + 1000, t0 + 2000]
    finally:
        recorder.close(2)


def test_frames_dropped_by_slow_encoders_are_counted(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    _catalogue, _store, recorder = _with_rungs(tmp_path)
    try:
        recorder.frames_dropped(3)
        recorder.frames_dropped(2)
        assert recorder.health().frames_dropped == 5
        assert "cannot keep up" in caplog.text
    finally:
        recorder.close(2)
