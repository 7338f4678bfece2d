from __future__ import annotations

from datetime import datetime, timedelta

from reelay.catalogue.memory import MemoryCatalogue
from reelay.models import Rendition
from reelay.recording.manifests import read_manifests
from reelay.recording.runner import WorkflowRunner
from reelay.recording.steps import StepContext
from reelay.recording.writer import SessionWriter, sequence_for
from tests.fakes import FakeStore
from tests.unit.recording_helpers import stream

T0 = datetime(2026, 5, 28, 20, 0, 0)
T0_MS = int((T0 - datetime(1970, 1, 1)).total_seconds() * 1000)
SRC = Rendition(name="source", bandwidth=0, codecs="avc1.64001f", playlist="source/index.m3u8")


def test_sequence_numbers_come_from_the_wall_clock() -> None:
    assert sequence_for(T0_MS, T0, 2000) == 0
    assert sequence_for(T0_MS + 10_030, T0, 2000) == 5
    assert sequence_for(T0_MS - 5000, T0, 2000) == 0


def test_two_writers_and_a_reconnect_end_in_one_video_without_duplicates() -> None:
    cat, store = MemoryCatalogue(), FakeStore()
    cat.create_stream(stream("cam1"))
    a = SessionWriter(store, cat, "cam1", "task-a", [SRC], chunk_size=3)
    b = SessionWriter(store, cat, "cam1", "task-b", [SRC], chunk_size=3)
    session, continued = a.start(now=T0)
    assert not continued
    for n in range(6):
        a.segment("source", b"a", duration_ms=2000, pdt_ms=T0_MS + n * 2000)
    a.heartbeat(media_at=T0 + timedelta(seconds=12))
    # A second task takes over within the window (its relay reconnected), overlapping 4 and 5.
    again, continued = b.start(now=T0 + timedelta(seconds=20))
    assert continued and again.session_id == session.session_id
    for n in range(4, 10):
        b.segment("source", b"b", duration_ms=2000, pdt_ms=T0_MS + n * 2000)
    assert b.end()
    assert [s.seq for s in read_manifests(store, "cam1", session.session_id, "source")].count(4) == 2
    out = WorkflowRunner(StepContext(catalogue=cat, media_store=store)).start(session.session_id)
    assert (out["status"], out["segments"], out["duplicates"]) == ("ready", 10, 2)
    assert out["discontinuities"] == 1  # the writer change
