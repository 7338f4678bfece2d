"""The pipeline runner never hangs its caller on a NULL state change that deadlocks."""

from __future__ import annotations

import threading
import time

from reelay.media._gst import Gst
from reelay.media.runner import PipelineRunner


class StuckPipeline:
    """Stands in for a pipeline whose NULL state change never returns (a splitmuxsink deadlock)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def set_state(self, state: Gst.State) -> Gst.StateChangeReturn:
        self.release.wait(30)
        return Gst.StateChangeReturn.SUCCESS


class GoodPipeline:
    def __init__(self) -> None:
        self.states: list[Gst.State] = []

    def set_state(self, state: Gst.State) -> Gst.StateChangeReturn:
        self.states.append(state)
        return Gst.StateChangeReturn.SUCCESS


def test_a_stuck_teardown_is_abandoned_after_its_deadline() -> None:
    # Given a pipeline whose NULL state change hangs
    pipeline = StuckPipeline()
    runner = PipelineRunner(pipeline, teardown_seconds=0.3)  # type: ignore[arg-type]

    # When the runner tears it down
    started = time.monotonic()
    stopped = runner._to_null()

    # Then the caller is back within the deadline and the pipeline is marked abandoned
    assert stopped is False and runner.abandoned
    assert time.monotonic() - started < 2
    pipeline.release.set()


def test_a_normal_teardown_reaches_null() -> None:
    pipeline = GoodPipeline()
    runner = PipelineRunner(pipeline)  # type: ignore[arg-type]
    assert runner._to_null() is True and not runner.abandoned
    assert pipeline.states == [Gst.State.NULL]
