from __future__ import annotations

from datetime import datetime, timedelta

from reelay.catalogue.memory import MemoryCatalogue
from reelay.models import RecordingState
from reelay.recording.steps import StepContext
from reelay.recording.sweep import LocalStarter, execution_name, sweep
from tests.fakes import FakeStore
from tests.unit.recording_helpers import record, stream

T0 = datetime(2026, 5, 28, 20, 0, 0)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def start(self, session_id: str, *, mode: str, mp4: bool, execution_name: str) -> str:
        if session_id == "broken":
            raise RuntimeError("throttled")
        self.calls.append((session_id, mode, execution_name))
        return execution_name


def test_sweep_starts_fixup_for_stale_and_finalize_for_ended() -> None:
    cat = MemoryCatalogue()
    stale, _ = cat.start_recording_session("a", "w1", now=T0)
    ended, _ = cat.start_recording_session("b", "w1", now=T0)
    cat.end_recording_session(ended.session_id)
    live, _ = cat.start_recording_session("c", "w1", now=T0 + timedelta(minutes=4, seconds=30))
    starter = Recorder()
    started = sweep(cat, starter, now=T0 + timedelta(minutes=5))
    assert started == {"fixup": [stale.session_id], "finalize": [ended.session_id]}
    assert (stale.session_id, "fixup", f"fixup-{stale.session_id}") in starter.calls
    assert live.session_id not in str(starter.calls)


def test_a_failed_start_is_left_for_the_next_sweep() -> None:
    cat = MemoryCatalogue()
    cat.start_recording_session("a", "w1", session_id="broken", now=T0)
    cat.end_recording_session("broken")
    assert sweep(cat, Recorder()) == {"fixup": [], "finalize": []}
    assert cat.get_recording_session("broken").state == RecordingState.ENDED


def test_execution_names_fit_step_functions() -> None:
    name = execution_name("finalize", "x" * 64, "retry-1")
    assert len(name) <= 80 and name.startswith("finalize-x")
    assert execution_name("fixup", "a.b/c") == "fixup-a-b-c"


def test_local_starter_runs_the_workflow_in_process() -> None:
    cat, store = MemoryCatalogue(), FakeStore()
    cat.create_stream(stream("cam1"))
    s, _ = cat.start_recording_session("cam1", "w1", now=T0)
    record(store, "cam1", s.session_id, "w1", ("source",), range(0, 4))
    cat.end_recording_session(s.session_id)
    starter = LocalStarter(StepContext(catalogue=cat, media_store=store))
    assert sweep(cat, starter)["finalize"] == [s.session_id]
    assert starter.last is not None and starter.last["status"] == "ready"
    assert sweep(cat, starter) == {"fixup": [], "finalize": []}  # nothing due any more


def test_the_local_platform_row_finalizes_ended_sessions() -> None:
    import threading
    import time
    from types import SimpleNamespace

    from local.platform import BACKGROUND_WORKERS
    from reelay.settings import Settings
    from reelay.wiring import Services
    from tests.fakes import FakeEvents

    cat, store, events = MemoryCatalogue(), FakeStore(), FakeEvents()
    cat.create_stream(stream("cam1"))
    s, _ = cat.start_recording_session("cam1", "w1", now=T0)
    record(store, "cam1", s.session_id, "w1", ("source",), range(0, 4))
    cat.end_recording_session(s.session_id)
    services = Services(Settings(), catalogue=cat, store=store, events=events)
    (spec,) = [w for w in BACKGROUND_WORKERS if w.name == "recording-sweep"]
    stop = threading.Event()
    thread = threading.Thread(target=spec.build(SimpleNamespace(services=services)), args=(stop,))  # type: ignore[arg-type]
    thread.start()
    deadline = time.monotonic() + 20
    while (
        cat.get_recording_session(s.session_id).state != RecordingState.READY and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    stop.set()
    thread.join(10)
    assert cat.get_recording_session(s.session_id).state == RecordingState.READY
    assert "recording.ready" in [kind for kind, _ in events.published]  # flushed through the outbox


def test_trigger_by_hand_is_idempotent() -> None:
    import pytest

    from reelay.errors import Conflict
    from reelay.recording.sweep import trigger

    cat, store = MemoryCatalogue(), FakeStore()
    cat.create_stream(stream("cam1"))
    live, _ = cat.start_recording_session("cam1", "w1")
    with pytest.raises(Conflict):
        trigger(cat, Recorder(), live.session_id)
    cat.end_recording_session(live.session_id)
    record(store, "cam1", live.session_id, "w1", ("source",), range(0, 3))
    starter = LocalStarter(StepContext(catalogue=cat, media_store=store))
    first = trigger(cat, starter, live.session_id)
    again = trigger(cat, starter, live.session_id)
    assert first["started"] and first["mode"] == "finalize"
    assert not again["started"] and again["videoId"] == cat.get_recording_session(live.session_id).video_id
    stale, _ = cat.start_recording_session("cam2", "w1", now=T0)
    recorder = Recorder()
    assert trigger(cat, recorder, stale.session_id)["mode"] == "fixup"
    assert recorder.calls == [(stale.session_id, "fixup", f"fixup-{stale.session_id}")]
