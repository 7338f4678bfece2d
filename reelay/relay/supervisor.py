"""The relay supervisor: keeps one feed flowing into its sink, whatever the source or the sink does.

One GLib main loop on its own context owns the pipeline. Every way a feed drops ends in one place,
``_on_drop``: the pipeline is torn down and rebuilt, kvssink included, after a capped exponential
backoff with jitter. The process never exits because a source failed; ``stop()`` drains (EOS, so
kvssink sends its last fragment) and returns.

kvssink says nothing on the bus when KVS itself is unreachable: it retries on its own and buffers.
So KVS-side health comes from the fragment acks. Media flowing with no ack for ``ack_timeout``
seconds is an outage of its own ("KVS unreachable"), which the supervisor reports but does not
rebuild for: kvssink reconnects within milliseconds of KVS coming back, and a rebuild would throw
its buffer away.

In transcode mode the supervisor can keep KVS's side up through a source outage (``slate``): the
encoder and kvssink then run in a pipeline of their own that outlives the source pipeline, and show a
"camera offline" slate while the source is rebuilt (``reelay.relay.slate``). Only the source side is
rebuilt on a source drop; a KVS-side failure (kvssink's stream-error, an error, a start that never
comes) rebuilds both. The outage is accounted exactly as without the slate: it lasts until KVS
acknowledges a fragment of the camera again, and acks of slate fragments never end it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

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
from reelay.relay.kvssink import Ack
from reelay.relay.pipelines import RecordingSpec, RelayPipeline, SourceSpec
from reelay.relay.probe import probe_for
from reelay.relay.slate import FIRST_SOURCE_CAPS, EncoderBranch, FrameFormat, SlateSpec

log = logging.getLogger(__name__)

STARTING, RUNNING, RECONNECTING, STOPPING, STOPPED = (
    "starting",
    "running",
    "reconnecting",
    "stopping",
    "stopped",
)
KVS_UNREACHABLE = "KVS unreachable"


@dataclass(frozen=True)
class RelayPolicy:
    stall_seconds: float = 2.0  # no media for this long is a drop (HLS adapts: see _stall_seconds)
    start_seconds: float = 10.0  # a pipeline that is not PLAYING by then is a drop
    backoff_initial: float = 0.25
    backoff_cap: float = 2.0  # while an outage is young: recover within a couple of seconds
    backoff_cap_long: float = 30.0  # once the outage is older than long_outage_seconds
    long_outage_seconds: float = 60.0
    jitter: float = 0.2  # +-20 %
    stable_seconds: float = 20.0  # running this long resets the backoff
    # While waiting out a backoff, check this often whether an RTSP or HLS source answers again, and
    # rebuild at once when it comes back (reelay.relay.probe). 0: off. Slower once the outage is long.
    probe_seconds: float = 0.2
    probe_seconds_long: float = 2.0
    ack_timeout: float = 6.0  # media flowing, no ack from KVS for this long: KVS is unreachable
    stop_seconds: float = 10.0  # EOS drain on stop
    tick_seconds: float = 0.1


@dataclass(frozen=True)
class Outage:
    cause: str
    started_at: float  # wall clock (epoch seconds)
    duration_seconds: float


@dataclass(frozen=True)
class RelayHealth:
    state: str
    state_since: float
    outage_cause: str | None = None
    outage_since: float | None = None
    reconnects: int = 0
    recoveries: int = 0
    input_bitrate_bps: int = 0
    fragments_persisted: int = 0
    fragment_errors: int = 0
    last_ack_at: float | None = None
    last_ack_timecode_ms: int | None = None
    last_fragment_number: str | None = None
    media_flowing: bool = False
    pipelines_built: int = 0
    recent_outages: tuple[Outage, ...] = field(default_factory=tuple)
    outage_seconds_closed: float = 0.0  # all outages of this task that have ended
    slate_since: float | None = None  # wall clock: KVS is fed the slate since then (None: it is not)
    slate_fragments_persisted: int = 0  # of fragments_persisted, those that were the slate

    @property
    def slate(self) -> bool:
        """KVS is being fed the slate now (transcode mode, the camera quiet or down)."""
        return self.slate_since is not None


# Sinks are built with the supervisor's two callbacks; both may run on any thread.
SinkFactory = Callable[[Callable[[Ack], None], Callable[[str], None]], Gst.Element]


class Supervisor:
    def __init__(
        self,
        source: SourceSpec,
        make_sink: SinkFactory | None,
        *,
        recording: RecordingSpec | None = None,
        policy: RelayPolicy | None = None,
        expects_acks: bool = True,
        on_change: Callable[[RelayHealth], None] | None = None,
        check_source: Callable[[str], None] | None = None,
        slate: SlateSpec | None = None,
        rng: Callable[[], float] = random.random,
        wall: Callable[[], float] = time.time,
    ) -> None:
        ensure_init()
        self.source = source
        self.make_sink = make_sink
        self.recording = recording  # the recording branch, rebuilt with every pipeline
        self.policy = policy or RelayPolicy()
        self.expects_acks = expects_acks and make_sink is not None  # no KVS, no acks
        self.on_change = on_change
        # Run before every connect: a name can start resolving to a forbidden address at any time.
        self.check_source = check_source
        self.slate = slate  # feed KVS a slate during source outages (transcode mode only)
        self._rng = rng
        self._wall = wall
        self._lock = threading.Lock()
        self._health = RelayHealth(state=STARTING, state_since=wall())
        self._outages: deque[Outage] = deque(maxlen=20)
        self._context = GLib.MainContext.new()
        self._loop = GLib.MainLoop.new(self._context, False)
        self._relay: RelayPipeline | None = None
        self._runner: PipelineRunner | None = None
        self._generation = 0
        self._wait = 0  # counts backoff waits; a wait ends once (timer or probe), see _wait_over
        self._attempt_started = 0.0  # monotonic start of the last build
        self._attempt = 0
        self._stopping = False
        self._outage_started_mono: float | None = None
        self._running_since: float | None = None
        self._last_ack_mono: float | None = None
        self._rate_window: deque[tuple[float, int]] = deque()
        self._rate_meter: FlowMeter | None = None
        self._gaps: deque[float] = deque(maxlen=50)
        self._last_buffers = 0
        self._last_flow_mono: float | None = None
        self._permanent_problem: str | None = None
        self._last_camera_ack_mono: float | None = None  # an ack of a camera fragment (not the slate)
        self._codec: str | None = None  # the source's video codec, once a pipeline has seen it
        self._format: FrameFormat | None = None  # the encoder's input in the slate layout, once known
        self._branch: EncoderBranch | None = None
        self._branch_runner: PipelineRunner | None = None
        self._branch_generation = 0
        self._branch_pending = False
        self.stopped = threading.Event()

    # --- public -------------------------------------------------------------------------------
    def run(self) -> None:
        """Relay until ``stop()``. Blocks; call it from the thread that should own the loop."""
        self._context.push_thread_default()
        try:
            self._call_soon(self._build)
            self._loop.run()
        finally:
            self._context.pop_thread_default()
            self._set(state=STOPPED, media_flowing=False)
            self.stopped.set()

    def stop(self) -> None:
        """Drain the current pipeline (kvssink flushes its last fragment) and end ``run()``. Thread-safe."""
        self._call_soon(self._stop_on_loop)

    def health(self) -> RelayHealth:
        with self._lock:
            return self._health

    # --- sink callbacks (SDK threads) ---------------------------------------------------------
    def _on_ack(self, ack: Ack) -> None:
        now = time.monotonic()
        with self._lock:
            h = self._health
            if ack.kind == "error":
                self._health = replace(h, fragment_errors=h.fragment_errors + 1)
                return
            self._last_ack_mono = now  # any ack shows KVS is there
            branch = self._branch
            slate = branch is not None and branch.is_slate(ack.timecode_ms)
            if branch is None or branch.is_current_camera(ack.timecode_ms):
                self._last_camera_ack_mono = now  # the camera's media reaches KVS (again)
            if ack.kind != "persisted":
                return
            # "The last fragment KVS acknowledged" is the last one it persisted.
            self._health = replace(
                h,
                fragments_persisted=h.fragments_persisted + 1,
                slate_fragments_persisted=h.slate_fragments_persisted + int(slate),
                last_ack_at=self._wall(),
                last_ack_timecode_ms=ack.timecode_ms or h.last_ack_timecode_ms,
                last_fragment_number=ack.fragment_number or h.last_fragment_number,
            )

    def _on_sink_fatal(self, reason: str) -> None:
        generation = self._generation
        self._call_soon(lambda: self._drop(generation, Drop(DROP_ERROR, reason, "sink")))

    # --- the loop -----------------------------------------------------------------------------
    def _call_soon(self, fn: Callable[[], object]) -> None:
        source = GLib.idle_source_new()
        source.set_callback(lambda *_: bool(fn()) and False)
        source.attach(self._context)

    def _call_later(self, seconds: float, fn: Callable[[], object]) -> None:
        source = GLib.timeout_source_new(max(1, int(seconds * 1000)))
        source.set_callback(lambda *_: bool(fn()) and False)
        source.attach(self._context)

    def _build(self) -> None:
        if self._stopping:
            return
        self._generation += 1
        generation = self._generation
        self._attempt_started = time.monotonic()
        self._permanent_problem = None
        if self.check_source is not None:
            try:
                self.check_source(self.source.url)
            except Exception as exc:  # forbidden host, or a name that does not resolve (yet)
                self._schedule_rebuild(f"source refused before connecting: {getattr(exc, 'message', exc)}")
                return
        make_sink = self.make_sink
        slate_layout = self._uses_slate()
        sink: Callable[[], Gst.Element] | None
        if slate_layout:
            sink = lambda: self._frames_sink(generation)  # noqa: E731
        elif make_sink is not None:
            sink = lambda: make_sink(self._on_ack, self._on_sink_fatal)  # noqa: E731
        else:
            sink = None
        try:
            relay = RelayPipeline(
                self.source,
                sink,
                on_problem=lambda reason: self._call_soon(
                    lambda: self._drop(generation, Drop(DROP_ERROR, reason, "config"))
                ),
                recording=None if slate_layout else self.recording,
                raw_caps=(self._format.source_caps() if self._format else FIRST_SOURCE_CAPS)
                if slate_layout
                else None,
            )
        except Exception as exc:  # a missing element, a sink that will not link: retry like a drop
            log.exception("could not build the relay pipeline")
            self._schedule_rebuild(f"could not build the pipeline: {exc}")
            return
        self._relay = relay
        self._last_buffers = 0
        self._last_flow_mono = None
        self._gaps.clear()
        self._rate_window.clear()
        runner = PipelineRunner(
            relay.pipeline,
            stall_seconds=self._stall_seconds(),
            tick_seconds=self.policy.tick_seconds,
            last_activity=relay.meter.last_activity,
            on_tick=lambda: self._tick(generation),
            teardown_seconds=self.policy.stop_seconds + 5,
        )
        self._runner = runner
        with self._lock:
            self._health = replace(self._health, pipelines_built=self._health.pipelines_built + 1)
        runner.start_live(
            on_drop=lambda drop: self._drop(generation, drop),
            context=self._context,
            start_seconds=self.policy.start_seconds,
        )

    # --- the slate layout ---------------------------------------------------------------------------
    def _uses_slate(self) -> bool:
        """Transcode mode (asked for, or a source that is not H.264 in auto mode), relaying to KVS, with
        the slate on. A recording stream keeps the one-pipeline layout (its branch needs the H.264)."""
        if self.slate is None or self.make_sink is None or self.recording is not None:
            return False
        mode = self.source.video
        return mode == "transcode" or (mode == "auto" and self._codec not in (None, "video/x-h264"))

    def _frames_sink(self, generation: int) -> Gst.Element:
        """The source pipeline's end in the slate layout: an appsink handing each frame to the branch."""
        sink = Gst.ElementFactory.make("appsink", "frames")
        if sink is None:
            raise RuntimeError("the GStreamer element 'appsink' is not installed")
        # sync: frames leave at their time (an HLS segment arrives in a burst); a slow encoder branch
        # costs this pipeline the oldest frames, never its pace.
        for key, value in (("sync", True), ("emit-signals", True), ("max-buffers", 2), ("drop", True)):
            sink.set_property(key, value)
        sink.connect("new-sample", self._on_frame, generation)
        return sink

    def _on_frame(self, appsink: Gst.Element, generation: int) -> Gst.FlowReturn:
        """A camera frame (the source pipeline's streaming thread)."""
        sample = appsink.emit("pull-sample")
        if sample is None or generation != self._generation:
            return Gst.FlowReturn.OK
        branch = self._branch
        if branch is not None:
            branch.camera(sample.get_buffer())
        elif not self._branch_pending and not self._stopping:
            self._branch_pending = True  # the first frame fixes the encoder's input for good
            fmt = self._format or FrameFormat.from_caps(sample.get_caps())
            self._call_soon(lambda: self._start_branch(fmt))
        return Gst.FlowReturn.OK

    def _start_branch(self, fmt: FrameFormat) -> None:
        """On the loop: the encoder pipeline (x264enc and a new kvssink), fed from now on."""
        self._branch_pending = False
        if self._stopping or self._branch is not None or self.make_sink is None or self.slate is None:
            return
        self._format = fmt
        self._branch_generation += 1
        bgen = self._branch_generation
        make_sink = self.make_sink

        def on_fatal(reason: str) -> None:
            self._call_soon(lambda: self._drop_branch(bgen, Drop(DROP_ERROR, reason, "sink")))

        try:
            branch = EncoderBranch(
                fmt,
                lambda: make_sink(self._on_ack, on_fatal),
                slate=self.slate,
                keyframe_seconds=self.source.keyframe_seconds,
                bitrate_kbps=self.source.transcode_bitrate_kbps,
                on_switch=self._on_switch,
            )
        except Exception as exc:
            log.exception("could not build the encoder pipeline")
            self._drop_branch(bgen, Drop(DROP_ERROR, f"could not build the encoder pipeline: {exc}", "sink"))
            return
        log.info(
            "encoder pipeline built: %dx%d at %d/%d fps, slate on",
            fmt.width, fmt.height, fmt.fps_n, fmt.fps_d,
        )  # fmt: skip
        runner = PipelineRunner(
            branch.pipeline,
            # the slate keeps media flowing while the camera is away: no media is the encoder stuck
            stall_seconds=max(self.policy.stall_seconds, 2 * self.slate.after_seconds) + 1,
            tick_seconds=self.policy.tick_seconds,
            last_activity=branch.meter.last_activity,
            teardown_seconds=self.policy.stop_seconds + 5,
        )
        self._branch, self._branch_runner = branch, runner
        runner.start_live(
            on_drop=lambda drop: self._drop_branch(bgen, drop),
            context=self._context,
            start_seconds=self.policy.start_seconds,
        )
        branch.start_slate_clock()

    def _on_switch(self, slate: bool) -> None:
        """The branch started or ended the slate (any thread): no camera input while it shows."""
        if slate:
            self._set(slate_since=self._wall(), input_bitrate_bps=0, media_flowing=False)
        else:
            self._set(slate_since=None)

    def _drop_branch(self, bgen: int, drop: Drop) -> None:
        """The encoder pipeline failed (KVS's side): rebuild everything, as without the slate."""
        if bgen != self._branch_generation or self._stopping:
            return
        self._branch_generation += 1
        if drop.debug:
            log.info("drop detail from %s: %s", drop.element, drop.debug)
        if drop.cause == DROP_START:
            cause = f"{KVS_UNREACHABLE}: the sink did not start within {self.policy.start_seconds:g} s"
        elif drop.cause == DROP_STALL:
            cause = f"KVS error: the encoder pipeline stalled ({drop.message})"
        else:
            cause = f"KVS error: {drop.message}"
        self._generation += 1  # the source pipeline's pending drops and frames are stale now
        runner, relay, self._runner, self._relay = self._runner, self._relay, None, None
        self._running_since = None
        self._teardown(runner, relay, drain=False)
        self._teardown_branch(drain=False)
        self._schedule_rebuild(cause)

    def _teardown_branch(self, *, drain: bool) -> None:
        branch, runner = self._branch, self._branch_runner
        self._branch, self._branch_runner = None, None
        if branch is not None:
            branch.stop_slate_clock()
        if runner is not None:
            runner.stop(drain=drain, eos_seconds=self.policy.stop_seconds)
        if branch is not None:
            branch.release()
        self._set(slate_since=None)

    def _relayout(self) -> None:
        """The first pipeline found a source that is not H.264 in auto mode: rebuild at once in the slate
        layout (no outage: nothing was relayed yet)."""
        log.info("the source is %s: rebuilding with the encoder in its own pipeline (slate)", self._codec)
        self._generation += 1
        runner, relay, self._runner, self._relay = self._runner, self._relay, None, None
        self._running_since = None
        self._teardown(runner, relay, drain=False)
        self._build()

    def _stall_seconds(self) -> float:
        # HLS arrives a segment at a time: the gap between bursts is normal, so the threshold follows
        # the gaps seen on this feed (twice the longest), never below the policy's.
        if self.source.protocol == "hls" and self._gaps:
            return max(self.policy.stall_seconds, min(20.0, 2 * max(self._gaps)))
        return (
            self.policy.stall_seconds
            if self.source.protocol != "hls"
            else max(self.policy.stall_seconds, 4.0)
        )

    def _tick(self, generation: int) -> None:
        if generation != self._generation or self._relay is None or self._runner is None:
            return
        if self._codec is None and self._relay.codec is not None:
            self._codec = self._relay.codec
            if self._relay.raw_caps is None and self._uses_slate():
                self._relayout()
                return
        now = time.monotonic()
        branch = self._branch
        buffers, _ = self._relay.meter.snapshot()
        # The input bitrate: the H.264 into the sink (the encoder's own in the slate layout; none while
        # the slate is on).
        meter = self._relay.meter if self._relay.raw_caps is None else branch.meter if branch else None
        if meter is not self._rate_meter:  # counted from another meter: start the window afresh
            self._rate_meter = meter
            self._rate_window.clear()
        total = meter.snapshot()[1] if meter is not None else 0
        if buffers != self._last_buffers:
            if self._last_flow_mono is not None and self._running_since is not None:
                self._gaps.append(now - self._last_flow_mono)
                self._runner.stall_seconds = self._stall_seconds()
            self._last_buffers = buffers
            self._last_flow_mono = now
        self._rate_window.append((now, total))
        while self._rate_window and now - self._rate_window[0][0] > 5.0:
            self._rate_window.popleft()
        bitrate = 0
        if len(self._rate_window) >= 2 and not (branch is not None and branch.showing_slate):
            (t0, b0), (t1, b1) = self._rate_window[0], self._rate_window[-1]
            bitrate = max(0, int((b1 - b0) * 8 / (t1 - t0))) if t1 > t0 else 0
        flowing = self._last_flow_mono is not None and now - self._last_flow_mono < self._runner.stall_seconds
        playing = self._runner.playing_since is not None

        if flowing and playing and self._running_since is None:
            self._running_since = now
            first = self._relay.meter.first_buffer or now
            # When media first reached the sink's queue: what the source and the pipeline take to recover,
            # before kvssink's part (a fragment starts at a keyframe and is acknowledged once complete).
            log.info(
                "relay media flowing: first buffer %.2f s after the pipeline was built",
                first - self._relay.meter.started,
                extra={"firstBufferAt": round(self._wall() - (now - first), 3)},
            )
            if not self.expects_acks:
                self._recovered()
        if self._running_since is not None and now - self._running_since > self.policy.stable_seconds:
            self._attempt = 0
        if self.expects_acks and self._running_since is not None:
            last_ack = self._last_ack_mono
            if self._health.state != RUNNING:
                # Acks of the slate show KVS is there, not that the camera is back.
                last_ack = self._last_camera_ack_mono
                # Recovered once KVS acknowledges something sent since the outage began.
                since = max(self._running_since, self._outage_started_mono or 0.0)
                if last_ack is not None and last_ack >= since:
                    self._recovered()
                elif flowing and now - since > self.policy.ack_timeout:
                    self._open_outage(KVS_UNREACHABLE)
            elif flowing and now - max(last_ack or 0.0, self._running_since) > self.policy.ack_timeout:
                self._open_outage(KVS_UNREACHABLE)
        self._set(input_bitrate_bps=bitrate, media_flowing=flowing)

    def _drop(self, generation: int, drop: Drop) -> None:
        if generation != self._generation or self._stopping:
            return
        cause = self._describe(drop)
        if drop.debug:
            log.info("drop detail from %s: %s", drop.element, drop.debug)
        runner, relay, self._runner, self._relay = self._runner, self._relay, None, None
        self._running_since = None
        if self._branch is not None:
            self._branch.camera_lost()  # the slate at once, while the source is rebuilt
        self._teardown(runner, relay, drain=False)
        self._schedule_rebuild(cause)

    def _schedule_rebuild(self, cause: str) -> None:
        log.warning("relay dropped: %s", cause)
        self._open_outage(cause)
        # The backoff spaces the starts of attempts: an attempt that already lasted longer (a feed that
        # ran, then stalled; an SRT caller that waited for its listener) is followed at once.
        delay = max(0.0, self._backoff() - (time.monotonic() - self._attempt_started))
        self._attempt += 1
        with self._lock:
            self._health = replace(self._health, reconnects=self._health.reconnects + 1)
        self._wait += 1
        wait = self._wait
        self._call_later(delay, lambda: self._wait_over(wait))
        probe = probe_for(self.source.protocol)
        if probe is not None and self.policy.probe_seconds > 0:
            threading.Thread(
                target=self._probe_during_wait, args=(wait, probe), name="relay-probe", daemon=True
            ).start()

    def _wait_over(self, wait: int, *, early: bool = False) -> None:
        """Build the next pipeline, once per wait: at the backoff's end or when the probe saw the source
        come back, whichever is first."""
        if wait != self._wait or self._stopping:
            return
        self._wait += 1
        if early:
            log.info("the source answers again: rebuilding before the backoff ends")
        self._build()

    def _probe_during_wait(self, wait: int, probe: Callable[[str, float], bool]) -> None:
        """On its own thread while ``wait`` lasts: rebuild early once the source goes from not answering
        to answering. A source that answers the probe all along (but fails in the pipeline) never
        shows that change, so it only ever gets the plain backoff: no tight rebuild loop."""
        seen_down = False
        while wait == self._wait and not self._stopping:
            started = time.monotonic()
            young = self._outage_started_mono is None or (
                started - self._outage_started_mono < self.policy.long_outage_seconds
            )
            interval = self.policy.probe_seconds if young else self.policy.probe_seconds_long
            try:
                if self.check_source is not None:
                    self.check_source(self.source.url)  # never knock on a host the relay may not use
                up = probe(self.source.url, max(0.5, interval))
            except Exception:
                up = False
            if not up:
                seen_down = True
            elif seen_down:
                self._call_soon(lambda: self._wait_over(wait, early=True))
                return
            time.sleep(max(0.0, interval - (time.monotonic() - started)))

    def _backoff(self) -> float:
        p = self.policy
        young = self._outage_started_mono is None or (
            time.monotonic() - self._outage_started_mono < p.long_outage_seconds
        )
        cap = p.backoff_cap if young else p.backoff_cap_long
        base = min(cap, p.backoff_initial * (2**self._attempt))
        return max(0.05, base * (1 + p.jitter * (2 * self._rng() - 1)))

    def _describe(self, drop: Drop) -> str:
        relay = self._relay
        if drop.cause == DROP_STALL:
            return f"source stalled: {drop.message}"
        if drop.cause == DROP_EOS:
            return "source ended the stream"
        if drop.cause == DROP_START:
            if relay is not None and relay.meter.snapshot()[0] > 0:
                return f"{KVS_UNREACHABLE}: the sink did not start within {self.policy.start_seconds:g} s"
            return f"source did not start within {self.policy.start_seconds:g} s"
        if drop.element == "sink":
            return f"KVS error: {drop.message}"
        if drop.element == "config":
            return drop.message
        return f"source error: {drop.message}"

    def _open_outage(self, cause: str) -> None:
        if self._outage_started_mono is None:
            self._outage_started_mono = time.monotonic()
            self._set(state=RECONNECTING, outage_cause=cause, outage_since=self._wall(), media_flowing=False)
        elif self._health.outage_cause != cause:
            self._set(outage_cause=cause)

    def _recovered(self) -> None:
        started = self._outage_started_mono
        self._outage_started_mono = None
        if started is not None:
            h = self._health
            outage = Outage(
                h.outage_cause or "unknown", h.outage_since or self._wall(), time.monotonic() - started
            )
            self._outages.append(outage)
            log.info("relay recovered after %.1f s (%s)", outage.duration_seconds, outage.cause)
            with self._lock:
                self._health = replace(
                    self._health,
                    recoveries=self._health.recoveries + 1,
                    outage_seconds_closed=self._health.outage_seconds_closed + outage.duration_seconds,
                )
        self._set(state=RUNNING, outage_cause=None, outage_since=None, recent_outages=tuple(self._outages))

    def _stop_on_loop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._set(state=STOPPING)
        runner, relay, self._runner, self._relay = self._runner, self._relay, None, None
        # In the slate layout the source side has nothing to flush: the encoder pipeline drains.
        self._teardown(runner, relay, drain=self._branch is None)
        self._teardown_branch(drain=True)
        self._loop.quit()

    def _teardown(self, runner: PipelineRunner | None, relay: RelayPipeline | None, *, drain: bool) -> None:
        """Stop the pipeline, then undo its handlers: dropping the last reference then frees it, kvssink
        and its SDK client included (see RelayPipeline.release)."""
        if runner is not None:
            runner.stop(drain=drain, eos_seconds=self.policy.stop_seconds)
        if relay is not None:
            relay.release()

    def _set(self, **changes: object) -> None:
        with self._lock:
            before = self._health
            if "state" in changes and changes["state"] != before.state:
                changes["state_since"] = self._wall()
            self._health = replace(before, **changes)  # type: ignore[arg-type]
            after = self._health
        if self.on_change is not None and (after.state, after.outage_cause) != (
            before.state,
            before.outage_cause,
        ):
            try:
                self.on_change(after)
            except Exception:
                log.exception("health listener failed")
