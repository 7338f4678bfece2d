"""The thin recording Lambdas: steps dispatch by name, errors keep their class name (what the state
machine's Retry and Catch match), and the sweep uses the local runner when no state machine is set."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from lambdas.recording_steps.handler import lambda_handler as steps_handler
from lambdas.recording_sweep.handler import lambda_handler as sweep_handler
from reelay.catalogue.memory import MemoryCatalogue
from reelay.models import RecordingState
from reelay.recording.export import PlaylistSegment, runs, select_range
from reelay.recording.steps import PermanentStepError
from reelay.settings import Settings
from reelay.wiring import Services, set_services
from tests.fakes import FakeEvents, FakeLambdaContext, FakeStore
from tests.unit.recording_helpers import record, stream

T0 = datetime(2026, 5, 28, 20, 0, 0)


@pytest.fixture
def world() -> Iterator[tuple[MemoryCatalogue, FakeStore]]:
    cat, store = MemoryCatalogue(), FakeStore()
    cat.create_stream(stream("cam1"))
    set_services(Services(Settings(), catalogue=cat, store=store, events=FakeEvents()))
    yield cat, store
    set_services(None)


def test_steps_run_one_at_a_time_by_name(world) -> None:
    cat, store = world
    s, _ = cat.start_recording_session("cam1", "w1", now=T0)
    record(store, "cam1", s.session_id, "w1", ("source",), range(0, 3))
    cat.end_recording_session(s.session_id)
    state = {"sessionId": s.session_id, "mode": "finalize", "mp4": False, "executionId": "arn-exec-1"}
    for step in ("begin", "merge", "register", "cleanup", "ready"):
        state = steps_handler({"step": step, "state": state}, FakeLambdaContext())
    assert state["status"] == "ready"
    assert cat.get_recording_session(s.session_id).execution_id == "arn-exec-1"


def test_a_step_error_keeps_its_class_name(world) -> None:
    cat, _ = world
    s, _ = cat.start_recording_session("cam1", "w1", now=T0)
    cat.end_recording_session(s.session_id)
    state = {"sessionId": s.session_id, "executionId": "e"}
    state = steps_handler({"step": "begin", "state": state}, FakeLambdaContext())
    with pytest.raises(PermanentStepError):
        steps_handler({"step": "merge", "state": state}, FakeLambdaContext())
    failed = steps_handler(
        {
            "step": "failed",
            "state": {**state, "error": {"Error": "PermanentStepError", "Cause": "no segments"}},
        },
        FakeLambdaContext(),
    )
    assert failed["status"] == "failed"
    assert cat.get_recording_session(s.session_id).state == RecordingState.FAILED


def test_sweep_handler_without_a_state_machine_runs_locally(world) -> None:
    cat, store = world
    s, _ = cat.start_recording_session("cam1", "w1", now=T0)
    record(store, "cam1", s.session_id, "w1", ("source",), range(0, 3))
    cat.end_recording_session(s.session_id)
    assert sweep_handler({}, FakeLambdaContext()) == {"fixup": [], "finalize": [s.session_id], "expired": []}
    assert cat.get_recording_session(s.session_id).state == RecordingState.READY


def test_export_range_selection_and_runs() -> None:
    segs = [PlaylistSegment(f"k{n}", 2.0, n == 3) for n in range(6)]
    assert [s.key for s in select_range(segs, 3.0, 7.0)] == ["k1", "k2", "k3"]
    assert [[s.key for s in r] for r in runs(segs)] == [["k0", "k1", "k2"], ["k3", "k4", "k5"]]
    assert [[s.key for s in r] for r in runs(select_range(segs, 6.0, None))] == [["k3", "k4", "k5"]]
    with pytest.raises(ValueError):
        select_range(segs, 20.0, 30.0)
    with pytest.raises(ValueError):
        select_range(segs, 5.0, 5.0)
