"""The one way to run a GStreamer pipeline: it owns the pipeline's bus and its lifetime.

A ``PipelineRunner`` is a context manager. Whatever happens inside (EOS, error, cancel, stall, an
exception in a callback), leaving it sets the pipeline to NULL, and ``stop()`` sends EOS first so
muxers close their files and kvssink sends its last fragment. Three ways to run:

- ``run()``: a batch job (transcode) to EOS, popping bus messages on the calling thread. Workers call
  it from their own threads, and a bus poll needs no shared default main context.
- ``preroll()``: to PAUSED and back (the prober).
- ``start_live()``: a live feed (the relay). A bus watch and a flow check run on the caller's GLib main
  context, and every way the feed can drop (ERROR, EOS from a live source, no media for a while, a
  pipeline that never starts) is reported once as a ``Drop``, never treated as success.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from reelay.media._gst import GLib, Gst

log = logging.getLogger(__name__)


class TranscodeCancelled(Exception):
    """The job was cancelled (e.g. SIGTERM or the video was deleted). Nothing was published."""


class PipelineStalled(RuntimeError):
    """No media flowed for too long. Transient: the job is retried."""


class PipelineFailed(RuntimeError):
    """GStreamer reported an error outside the decoder (disk full, element failure). Transient."""

    def __init__(
        self,
        message: str,
        *,
        source: Gst.Object | None = None,
        debug: str | None = None,
        error: GLib.Error | None = None,
    ):
        super().__init__(message)
        self.source = source
        self.debug = debug
        self.error = error


@dataclass(frozen=True)
class Drop:
    """Why a live pipeline stopped carrying media. ``cause`` is one of the DROP_* names."""

    cause: str
    message: str
    element: str | None = None
    debug: str | None = None  # GStreamer's debug detail, for the logs only


DROP_ERROR = "error"
DROP_EOS = "eos"
DROP_STALL = "stall"
DROP_START = "start-timeout"


class FlowMeter:
    """Counts the buffers and bytes passing a pad (a buffer probe), for stall checks and bitrate."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.started = clock()
        self.last_buffer: float | None = None
        self.first_buffer: float | None = None
        self.buffers = 0
        self.bytes = 0
        self._probe: tuple[Gst.Pad, int] | None = None

    def attach(self, pad: Gst.Pad) -> None:
        self.detach()
        probe = pad.add_probe(Gst.PadProbeType.BUFFER | Gst.PadProbeType.BUFFER_LIST, self._on_buffer)
        self._probe = (pad, probe)

    def detach(self) -> None:
        """Remove the probe (it holds this meter; the pad holds the probe)."""
        probe, self._probe = self._probe, None
        if probe is not None:
            probe[0].remove_probe(probe[1])

    def _on_buffer(self, _pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        buffer = info.get_buffer()
        if buffer is not None:
            size = buffer.get_size()
        else:
            blist = info.get_buffer_list()
            size = blist.calculate_size() if blist is not None else 0
        with self._lock:
            self.buffers += 1
            self.bytes += size
            self.last_buffer = self._clock()
            if self.first_buffer is None:
                self.first_buffer = self.last_buffer
        return Gst.PadProbeReturn.OK

    def last_activity(self) -> float:
        with self._lock:
            return self.last_buffer if self.last_buffer is not None else self.started

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.buffers, self.bytes


class PipelineRunner:
    """Runs ``pipeline``; see the module docstring for the three modes.

    ``on_tick`` runs about every ``tick_seconds`` on the calling thread (batch) or the loop (live).
    ``on_message`` sees ELEMENT messages (batch) or everything not otherwise handled (live).
    ``last_activity`` returns a monotonic timestamp of the last media progress; older than
    ``stall_seconds`` is a stall.
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
        self._eos_seen = False
        self._closed = False
        # live mode
        self._watch_lock = threading.Lock()
        self._watch: int | None = None  # the bus's "message" handler id while watched
        self._tick_source: GLib.Source | None = None
        self._context: GLib.MainContext | None = None
        self._on_drop: Callable[[Drop], None] | None = None
        self.drop: Drop | None = None
        self.playing_since: float | None = None

    # --- context manager ----------------------------------------------------------------------
    def __enter__(self) -> PipelineRunner:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # A clean exit drains (EOS first); an exception or a drop tears down at once.
        self.stop(drain=exc_type is None and self.drop is None)

    # --- batch --------------------------------------------------------------------------------
    def run(self) -> None:
        """Play until EOS. Raises PipelineFailed, PipelineStalled or TranscodeCancelled."""
        bus = self.pipeline.get_bus()
        started = time.monotonic()
        try:
            self._play()
            types = Gst.MessageType.EOS | Gst.MessageType.ERROR | Gst.MessageType.ELEMENT
            while True:
                msg = bus.timed_pop_filtered(int(self.tick_seconds * Gst.SECOND), types)
                if msg is not None:
                    if msg.type == Gst.MessageType.EOS:
                        self._eos_seen = True
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
            self.stop(drain=False)

    def preroll(self, timeout_seconds: float, *, still_hopeful: Callable[[], bool] = lambda: True) -> bool:
        """Bring the pipeline to PAUSED. True once prerolled, False on EOS before preroll.

        Raises PipelineFailed on an ERROR and TimeoutError after ``timeout_seconds`` or as soon as
        ``still_hopeful()`` says there is nothing left to wait for. The pipeline stays PAUSED for
        queries; leave the context (or call ``stop``) to tear it down.
        """
        bus = self.pipeline.get_bus()
        self.pipeline.set_state(Gst.State.PAUSED)
        deadline = time.monotonic() + timeout_seconds
        types = Gst.MessageType.ASYNC_DONE | Gst.MessageType.ERROR | Gst.MessageType.EOS
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the pipeline did not preroll within {timeout_seconds:g} s")
            msg = bus.timed_pop_filtered(int(min(left, 0.1) * Gst.SECOND), types)
            if msg is None:
                if not still_hopeful():
                    raise TimeoutError("the pipeline gave up before prerolling")
                continue
            if msg.type == Gst.MessageType.ERROR:
                self._raise_error(msg)
            if msg.type == Gst.MessageType.EOS:
                self._eos_seen = True
                return False
            return True

    # --- live ---------------------------------------------------------------------------------
    def start_live(
        self,
        *,
        on_drop: Callable[[Drop], None],
        context: GLib.MainContext | None = None,
        start_seconds: float = 15,
    ) -> None:
        """Set PLAYING and watch the feed on ``context`` (the default main context if None).

        ``on_drop`` runs once, on the loop, with the first reason the feed stopped; the pipeline
        keeps its state until ``stop()``. ``start_seconds`` bounds the time to reach PLAYING (a sink
        retrying a dead service forever keeps the pipeline in PAUSED); ``stall_seconds`` with
        ``last_activity`` bounds the time without media once playing.
        """
        self._on_drop = on_drop
        ctx = context or GLib.MainContext.default()
        self._context = ctx
        # A bus watch on the loop's context. add_signal_watch attaches to the calling thread's default
        # context, so it is added on the loop's thread; messages posted before then wait on the bus.
        # (Not a Python sync handler: with PyGObject 3.42 every message handed to one leaks, and each
        # message holds its source element, so every pipeline leaked whole.)
        if ctx.is_owner():
            self._add_watch()
        else:
            watch = GLib.idle_source_new()
            watch.set_callback(lambda *_: self._add_watch())
            watch.attach(ctx)
        started = time.monotonic()

        def tick() -> bool:
            if self.drop is not None or self._closed:
                self._tick_source = None
                return False
            now = time.monotonic()
            if self.playing_since is None:
                if now - started > start_seconds:
                    self._report(Drop(DROP_START, f"the feed did not start within {start_seconds:g} s"))
            elif self.last_activity is not None:
                idle = now - max(self.last_activity(), self.playing_since)
                if idle > self.stall_seconds:
                    self._report(Drop(DROP_STALL, f"no media for {idle:.1f} s"))
            if self.on_tick is not None and self.drop is None:
                self.on_tick()
            return self.drop is None

        source = GLib.timeout_source_new(int(self.tick_seconds * 1000))
        source.set_callback(lambda *_: tick())
        source.attach(ctx)
        self._tick_source = source
        # Off the loop: a sink can block the state change for long (kvssink with no KVS to talk to
        # holds set_state(PLAYING) for about 36 s), and the start deadline must still fire.
        threading.Thread(target=self._play_live, name="gst-play", daemon=True).start()

    def _play_live(self) -> None:
        if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            # The ERROR on the bus names the reason and is reported first; make sure something is.
            def report(*_: object) -> bool:
                self._report(Drop(DROP_ERROR, "the pipeline could not start"))
                return False

            source = GLib.idle_source_new()
            source.set_callback(report)
            source.attach(self._context)

    def _add_watch(self) -> bool:
        """On the loop's thread: watch the bus there, unless the runner stopped meanwhile."""
        assert self._context is not None
        with self._watch_lock:
            if self._closed or self._watch is not None:
                return False
            bus = self.pipeline.get_bus()
            self._context.push_thread_default()
            try:
                bus.add_signal_watch()
            finally:
                self._context.pop_thread_default()
            self._watch = bus.connect("message", lambda _bus, msg: self._on_bus(msg))
        return False  # one-shot idle source

    def _on_bus(self, msg: Gst.Message) -> bool:
        if self._closed:
            return False
        t = msg.type
        if t == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            element = msg.src.get_name() if msg.src is not None else None
            log.debug("pipeline error from %s: %s (%s)", element, err.message, debug)
            self._report(Drop(DROP_ERROR, err.message, element, debug))
        elif t == Gst.MessageType.EOS:
            self._eos_seen = True
            self._report(Drop(DROP_EOS, "the source ended the stream"))
        elif t == Gst.MessageType.STATE_CHANGED and msg.src == self.pipeline:
            _old, new, _pending = msg.parse_state_changed()
            if new == Gst.State.PLAYING and self.playing_since is None:
                self.playing_since = time.monotonic()
        elif self.on_message is not None:
            self.on_message(msg)
        return False  # one-shot idle source

    def _report(self, drop: Drop) -> None:
        if self.drop is not None:
            return
        self.drop = drop
        if self._on_drop is not None:
            self._on_drop(drop)

    # --- stop ---------------------------------------------------------------------------------
    def stop(self, *, drain: bool = True, eos_seconds: float = 10) -> bool:
        """Tear down: with ``drain``, send EOS and wait (up to ``eos_seconds``) for it to reach the
        sinks, so files close and kvssink flushes; then NULL. True when the pipeline reached NULL.

        Safe to call twice and from the loop thread itself: the bus is read directly here.
        """
        bus = self.pipeline.get_bus()
        with self._watch_lock:
            if self._closed:
                return not self.abandoned
            self._closed = True
            watch, self._watch = self._watch, None
        if watch is not None:
            bus.disconnect(watch)  # the handler holds this runner, and through it the pipeline
            bus.remove_signal_watch()  # from here on, messages queue on the bus for _drain to read
        if self._tick_source is not None:
            self._tick_source.destroy()
            self._tick_source = None
        if drain and not self._eos_seen:
            self._drain(bus, eos_seconds)
        stopped = self._to_null()
        if stopped:
            bus.set_flushing(True)  # drop queued messages: they hold references to the elements
        return stopped

    def _drain(self, bus: Gst.Bus, eos_seconds: float) -> None:
        _ret, state, _pending = self.pipeline.get_state(0)
        if state != Gst.State.PLAYING:
            return  # nothing flows: EOS would never arrive
        self.pipeline.send_event(Gst.Event.new_eos())
        types = Gst.MessageType.EOS | Gst.MessageType.ERROR
        msg = bus.timed_pop_filtered(int(eos_seconds * Gst.SECOND), types)
        if msg is None:
            log.warning("EOS did not reach the sinks within %.0f s; stopping anyway", eos_seconds)
        elif msg.type == Gst.MessageType.ERROR:
            err, _debug = msg.parse_error()
            log.warning("error while draining: %s", err.message)
        else:
            self._eos_seen = True

    def _play(self) -> None:
        if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            # The reason, if any, is on the bus as an ERROR; read it.
            msg = self.pipeline.get_bus().timed_pop_filtered(Gst.SECOND, Gst.MessageType.ERROR)
            if msg is not None:
                self._raise_error(msg)
            raise PipelineFailed("the pipeline could not start")

    def _to_null(self) -> bool:
        """Set NULL, but never hang the caller on it.

        GStreamer 1.22's splitmuxsink can deadlock a NULL state change against a streaming thread it
        holds waiting for another stream (seen when an audio track yields no audio). The caller must
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
        raise PipelineFailed(err.message, source=msg.src, debug=debug, error=err)
