"""Run one GStreamer pipeline to the end: the single place that owns a pipeline's bus and lifetime.

The loop pops bus messages on the calling thread instead of running a GLib main loop: the transcode
worker calls this from its own threads, and a bus poll needs no shared default main context. Every way
out (EOS, error, cancel, stall, exception in a callback) sets the pipeline to NULL.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from reelay.media._gst import Gst

log = logging.getLogger(__name__)


class TranscodeCancelled(Exception):
    """The job was cancelled (e.g. SIGTERM or the video was deleted). Nothing was published."""


class PipelineStalled(RuntimeError):
    """No media flowed for too long. Transient: the job is retried."""


class PipelineFailed(RuntimeError):
    """GStreamer reported an error outside the decoder (disk full, element failure). Transient."""

    def __init__(self, message: str, *, source: Gst.Object | None = None, debug: str | None = None):
        super().__init__(message)
        self.source = source
        self.debug = debug


class PipelineRunner:
    """Play ``pipeline`` until EOS. ``on_tick`` runs about every ``tick_seconds`` on the calling thread.

    ``on_message`` sees element messages (e.g. segment closed). ``last_activity`` returns a monotonic
    timestamp of the last media progress; if it is older than ``stall_seconds`` the run fails.
    """

    def __init__(
        self,
        pipeline: Gst.Pipeline,
        *,
        cancel: threading.Event | None = None,
        stall_seconds: float = 60,
        tick_seconds: float = 0.25,
        last_activity: Callable[[], float] | None = None,
        on_tick: Callable[[], None] | None = None,
        on_message: Callable[[Gst.Message], None] | None = None,
        teardown_seconds: float = 15,
    ) -> None:
        self.pipeline = pipeline
        self.teardown_seconds = teardown_seconds
        self.abandoned = False
        self.cancel = cancel
        self.stall_seconds = stall_seconds
        self.tick_seconds = tick_seconds
        self.last_activity = last_activity
        self.on_tick = on_tick
        self.on_message = on_message

    def run(self) -> None:
        bus = self.pipeline.get_bus()
        started = time.monotonic()
        try:
            if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
                # The reason, if any, is on the bus as an ERROR; fall through to read it.
                msg = bus.timed_pop_filtered(Gst.SECOND, Gst.MessageType.ERROR)
                if msg is not None:
                    self._raise_error(msg)
                raise PipelineFailed("the pipeline could not start")
            types = Gst.MessageType.EOS | Gst.MessageType.ERROR | Gst.MessageType.ELEMENT
            while True:
                msg = bus.timed_pop_filtered(int(self.tick_seconds * Gst.SECOND), types)
                if msg is not None:
                    if msg.type == Gst.MessageType.EOS:
                        return
                    if msg.type == Gst.MessageType.ERROR:
                        self._raise_error(msg)
                    if self.on_message is not None:
                        self.on_message(msg)
                if self.cancel is not None and self.cancel.is_set():
                    raise TranscodeCancelled("transcode cancelled")
                if self.on_tick is not None:
                    self.on_tick()
                last = self.last_activity() if self.last_activity else started
                if time.monotonic() - max(last, started) > self.stall_seconds:
                    raise PipelineStalled(
                        f"no media flowed for {self.stall_seconds:g} s; the pipeline is stuck"
                    )
        finally:
            if self._to_null():
                bus.set_flushing(True)  # drop queued messages: they hold references to the elements

    def _to_null(self) -> bool:
        """Set NULL, but never hang the caller on it.

        GStreamer 1.22's splitmuxsink can deadlock a NULL state change against a streaming thread it
        holds waiting for another stream (seen when an audio track yields no audio). The worker must
        go on: after ``teardown_seconds`` the pipeline is abandoned to its stuck thread and logged.
        """
        done = threading.Event()

        def stop() -> None:
            self.pipeline.set_state(Gst.State.NULL)
            done.set()

        threading.Thread(target=stop, name="gst-teardown", daemon=True).start()
        if done.wait(self.teardown_seconds):
            return True
        self.abandoned = True
        log.error("pipeline did not reach NULL within %.0f s; abandoning it", self.teardown_seconds)
        return False

    def _raise_error(self, msg: Gst.Message) -> None:
        err, debug = msg.parse_error()
        raise PipelineFailed(err.message, source=msg.src, debug=debug)
