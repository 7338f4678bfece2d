"""The pipeline runner in live mode: every way a live feed drops is reported once, and stop() drains."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reelay.media._gst import GLib, Gst, ensure_init
from reelay.media.runner import (
    DROP_EOS,
    DROP_ERROR,
    DROP_STALL,
    DROP_START,
    Drop,
    FlowMeter,
    PipelineRunner,
)
from tests.media_fixtures import ffprobe_json

pytestmark = pytest.mark.media


class Loop:
    """A GLib main loop on its own context and thread, as the relay supervisor runs one."""

    def __init__(self) -> None:
        self.context = GLib.MainContext.new()
        self.loop = GLib.MainLoop.new(self.context, False)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.context.push_thread_default()
        self.loop.run()

    def call(self, fn) -> None:  # type: ignore[no-untyped-def]
        source = GLib.idle_source_new()
        source.set_callback(lambda *_: fn() and False)
        source.attach(self.context)


@pytest.fixture
def loop() -> Iterator[Loop]:
    ensure_init()
    loop = Loop()
    loop.thread.start()
    yield loop
    loop.loop.quit()
    loop.thread.join(5)


def start(
    pipeline: Gst.Pipeline, loop: Loop, **kwargs: float
) -> tuple[PipelineRunner, list[Drop], threading.Event]:
    drops: list[Drop] = []
    dropped = threading.Event()
    meter = FlowMeter()
    sink = pipeline.get_by_name("sink")
    meter.attach(sink.get_static_pad("sink"))

    def on_drop(drop: Drop) -> None:
        drops.append(drop)
        dropped.set()

    runner = PipelineRunner(pipeline, last_activity=meter.last_activity, tick_seconds=0.1, **kwargs)
    runner.start_live(on_drop=on_drop, context=loop.context, start_seconds=2.0)
    runner.meter = meter  # type: ignore[attr-defined]
    return runner, drops, dropped


def test_eos_from_a_live_source_is_a_drop_not_success(loop: Loop) -> None:
    # Given a live source that ends after a few frames
    pipeline = Gst.parse_launch("videotestsrc is-live=true num-buffers=5 ! fakesink name=sink")
    runner, drops, dropped = start(pipeline, loop, stall_seconds=30)
    # Then the end is reported once as a drop, with its cause
    assert dropped.wait(5)
    time.sleep(0.3)
    assert [d.cause for d in drops] == [DROP_EOS]
    assert runner.stop() is True


def test_no_media_for_a_while_is_a_stall(loop: Loop) -> None:
    # Given a live feed that flows, then stops flowing (a valve closes) while nothing errors
    pipeline = Gst.parse_launch(
        "videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=15/1 "
        "! valve name=valve ! fakesink name=sink async=false"
    )
    runner, drops, dropped = start(pipeline, loop, stall_seconds=0.8)
    deadline = time.monotonic() + 5
    while runner.meter.snapshot()[0] < 5 and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.05)
    assert runner.meter.snapshot()[0] >= 5, "media never flowed"  # type: ignore[attr-defined]
    assert not dropped.is_set()
    closed_at = time.monotonic()
    pipeline.get_by_name("valve").set_property("drop", True)
    # Then the stall is reported within about stall_seconds, and only once
    assert dropped.wait(5)
    assert drops[0].cause == DROP_STALL
    assert 0.7 < time.monotonic() - closed_at < 2.5
    runner.stop(drain=False)


def test_a_feed_that_never_starts_hits_the_start_deadline(loop: Loop) -> None:
    # Given a live pipeline whose sink never gets a buffer, so it never reaches PLAYING
    pipeline = Gst.parse_launch("videotestsrc is-live=true ! valve drop=true ! fakesink name=sink")
    runner, drops, dropped = start(pipeline, loop, stall_seconds=30)
    assert dropped.wait(6)
    assert drops[0].cause == DROP_START
    assert runner.playing_since is None
    runner.stop()


def test_an_element_error_is_a_drop_with_its_element(loop: Loop, tmp_path: Path) -> None:
    # Given a pipeline whose source cannot open its input
    missing = tmp_path / "missing.ts"
    pipeline = Gst.parse_launch(f"filesrc name=src location={missing} ! fakesink name=sink")
    runner, drops, dropped = start(pipeline, loop, stall_seconds=30)
    assert dropped.wait(5)
    assert drops[0].cause == DROP_ERROR
    runner.stop()


def test_stop_sends_eos_first_so_muxers_finish_their_files(loop: Loop, tmp_path: Path) -> None:
    # Given a live feed muxed to MP4, which is only readable once the muxer has written its index
    out = tmp_path / "live.mp4"
    pipeline = Gst.parse_launch(
        "videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=15/1 "
        "! x264enc tune=zerolatency speed-preset=ultrafast ! h264parse ! tee name=t "
        f"t. ! queue ! mp4mux ! filesink location={out} t. ! queue ! fakesink name=sink"
    )
    runner, drops, _dropped = start(pipeline, loop, stall_seconds=30)
    time.sleep(1.5)
    # When it is stopped (the context manager's clean exit does the same)
    with runner:
        pass
    # Then the file is complete: ffprobe reads a duration from its index
    info = ffprobe_json(out)
    assert float(info["format"]["duration"]) > 0.5
    assert drops == []


def test_leaving_the_context_with_an_error_tears_down_without_draining(loop: Loop) -> None:
    pipeline = Gst.parse_launch("videotestsrc is-live=true ! fakesink name=sink")
    runner, _drops, _dropped = start(pipeline, loop, stall_seconds=30)
    started = time.monotonic()
    with pytest.raises(RuntimeError), runner:
        raise RuntimeError("the supervisor gave up")
    assert time.monotonic() - started < 3
    assert pipeline.get_state(0)[1] == Gst.State.NULL


def test_a_stopped_live_pipeline_is_referenced_by_nobody_but_its_owner(loop: Loop) -> None:
    # Given a live feed that posted plenty of bus messages (state changes, stream start, EOS)
    pipeline = Gst.parse_launch("videotestsrc is-live=true num-buffers=5 ! fakesink name=sink")
    runner, _drops, dropped = start(pipeline, loop, stall_seconds=30)
    assert dropped.wait(5)
    time.sleep(0.3)  # let the loop handle what is queued
    # When it is stopped
    assert runner.stop() is True
    # Then no message, watch or handler keeps it alive: dropping our reference frees it, its
    # elements (a kvssink and its SDK client, in the relay) included
    assert pipeline.__grefcount__ == 1
