"""The slate: in transcode mode, KVS's side of the relay outlives the camera, so the KVS timeline has
no hole. While the camera is down, the same encoder is fed a "camera offline" picture.

    source pipeline (rebuilt on every drop, as in passthrough):
        source ─ parsebin* ─ decodebin ─ videoconvert ─ videoscale ─ I420 WxH ─ queue ─ appsink ─┐
                                                                                   frames (no copy)
    encoder pipeline (one per kvssink, kept through source drops):                              │
        appsrc (live) ─ queue ─ x264enc ─ h264parse ─ avc/au ─ queue ─ kvssink  ◀───────────────┘
          ▲ the slate picture, at the camera's frame rate, once no camera frame came for ``after_seconds``
    (* RTSP H.264/H.265: the relay's own depayloader instead, see ``pipelines.RTP_DEPAYLOADERS``)

Why two pipelines joined by appsink/appsrc, and not an input-selector or a compositor in one pipeline:
the source side keeps being what it was (its own bus, its own runner, every drop rule and the probe
unchanged) and is rebuilt whole, with no pad surgery in a playing pipeline; an error from a dying
source can never reach kvssink's pipeline. The encoder pipeline sees one live source whose caps never
change (the size is fixed by the first camera frames, and later builds scale to it), so x264 never
renegotiates and kvssink's codec data, taken once per element, stays true. Every frame is stamped here
with the encoder pipeline's running time, whichever producer it comes from: timestamps are monotonic
by construction, whatever the camera's own clock did across its restart. Frames pass by reference.

At each switch (camera to slate, slate to camera) the encoder is told to start a key frame on the
first frame of the new period, so each KVS fragment (one per key frame) is all camera or all slate.
The switch points are kept by presentation time and mapped to kvssink's fragment timecodes (it adds
the epoch time of its first frame to each frame's PTS), so an ack says which it was: ``is_slate``.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from reelay.media._gst import Gst, GstVideo
from reelay.media.runner import FlowMeter
from reelay.relay.pipelines import RELAY_CAPS, _make, link_sink

log = logging.getLogger(__name__)

DEFAULT_FPS = (30, 1)  # a camera that announces no frame rate (variable): the slate's rate


@dataclass(frozen=True)
class SlateSpec:
    """``text`` on a dark picture once no camera frame came for ``after_seconds``."""

    text: str = "camera offline"
    after_seconds: float = 1.0


@dataclass(frozen=True)
class FrameFormat:
    """The encoder's input, fixed for the life of a kvssink: raw I420 of one size and rate."""

    width: int
    height: int
    fps_n: int
    fps_d: int
    par_n: int = 1
    par_d: int = 1

    @classmethod
    def from_caps(cls, caps: Gst.Caps) -> FrameFormat:
        s = caps.get_structure(0)
        ok_rate, fps_n, fps_d = s.get_fraction("framerate")
        if not ok_rate or fps_n <= 0 or fps_d <= 0:
            fps_n, fps_d = DEFAULT_FPS
        ok_par, par_n, par_d = s.get_fraction("pixel-aspect-ratio")
        if not ok_par or par_n <= 0 or par_d <= 0:
            par_n, par_d = 1, 1
        return cls(s.get_int("width")[1], s.get_int("height")[1], fps_n, fps_d, par_n, par_d)

    @property
    def fps(self) -> float:
        return self.fps_n / self.fps_d

    def source_caps(self) -> str:
        """What a rebuilt source pipeline must deliver (any rate: frames are stamped on arrival)."""
        return (
            f"video/x-raw,format=I420,width={self.width},height={self.height},"
            f"pixel-aspect-ratio={self.par_n}/{self.par_d}"
        )

    def caps(self) -> str:
        return f"{self.source_caps()},framerate={self.fps_n}/{self.fps_d}"


FIRST_SOURCE_CAPS = "video/x-raw,format=I420"  # the first build takes the camera's size and rate


def render_slate(fmt: FrameFormat, text: str, timeout_seconds: float = 10.0) -> Gst.Buffer:
    """One frame of ``fmt`` saying ``text``, white on dark grey, rendered once."""
    pipeline = Gst.Pipeline.new("slate")
    src = _make("videotestsrc", num_buffers=1)
    Gst.util_set_object_arg(src, "pattern", "solid-color")
    src.set_property("foreground-color", 0xFF202428)
    chain = [
        src,
        _make(
            "capsfilter",
            caps=Gst.Caps.from_string(
                f"video/x-raw,width={fmt.width},height={fmt.height},framerate={fmt.fps_n}/{fmt.fps_d}"
            ),
        ),
        _make("textoverlay", "text", text=text, font_desc="Sans Bold 20", shaded_background=False),
        _make("videoconvert"),
        _make("capsfilter", caps=Gst.Caps.from_string(fmt.caps())),
        _make("appsink", "out", sync=False),
    ]
    for element in chain:
        pipeline.add(element)
    overlay = pipeline.get_by_name("text")
    Gst.util_set_object_arg(overlay, "valignment", "center")
    Gst.util_set_object_arg(overlay, "halignment", "center")
    for a, b in itertools.pairwise(chain):
        if not a.link(b):
            raise RuntimeError(f"could not link {a.get_name()} to {b.get_name()} for the slate")
    try:
        pipeline.set_state(Gst.State.PLAYING)
        sample = chain[-1].emit("try-pull-sample", int(timeout_seconds * Gst.SECOND))
        if sample is None:
            raise RuntimeError("the slate picture was not rendered")
        return sample.get_buffer()
    finally:
        pipeline.set_state(Gst.State.NULL)


# What a frame pushed into the encoder takes from the frame it comes from: flags, metas (the video meta's
# strides), and the memory, by reference (no pixel is copied). Its timestamps are set afterwards.
_COPY = Gst.BufferCopyFlags
_FRAME_COPY = _COPY.FLAGS | _COPY.TIMESTAMPS | _COPY.META | _COPY.MEMORY


def new_frame(buffer: Gst.Buffer) -> Gst.Buffer:
    """A new buffer sharing ``buffer``'s memory, whose timestamps are its own.

    Not ``buffer.copy()``: in PyGObject that is ``GBoxed.copy``, which for a GstBuffer only takes a
    reference to the same buffer. Stamping that "copy" re-stamped the one slate buffer every slate frame
    is, while earlier pushes of it still waited in the appsrc or the queue: the encoder then got frames
    with the same PTS, and h264parse (which keeps an upstream PTS only when it differs from the last
    one) put the second one out with no PTS at all.
    """
    return buffer.copy_region(_FRAME_COPY, 0, buffer.get_size())


class EncoderBranch:
    """appsrc ─ x264enc ─ kvssink, fed camera frames (``camera``) or the slate, in one pipeline run by
    the supervisor like any other. ``make_sink()`` builds the sink (a new kvssink)."""

    def __init__(
        self,
        fmt: FrameFormat,
        make_sink: Callable[[], Gst.Element],
        *,
        slate: SlateSpec,
        keyframe_seconds: float = 2.0,
        bitrate_kbps: int = 2500,
        on_switch: Callable[[bool], None] = lambda _slate: None,
    ) -> None:
        self.fmt = fmt
        self.spec = slate
        self.on_switch = on_switch  # (off the loop) True when the slate starts, False when it ends
        self.slate_frame = render_slate(fmt, slate.text)
        self.frame_ns = int(Gst.SECOND * fmt.fps_d / fmt.fps_n)
        self.meter = FlowMeter()  # what reaches the sink: camera and slate alike
        self.pipeline = Gst.Pipeline.new("relay-kvs")
        self.appsrc = _make(
            "appsrc", "frames", is_live=True, format=Gst.Format.TIME, do_timestamp=False, block=False,
            caps=Gst.Caps.from_string(fmt.caps()), max_buffers=8, max_bytes=0,
        )  # fmt: skip  # raw frames (3 MB each at 1080p): a few, dropped once the encoder falls behind
        self.appsrc.set_property("leaky-type", 1)  # upstream: a full queue drops the newest frame
        self.encoder = _make(
            "x264enc", "encoder", tune="zerolatency", speed_preset="veryfast", bitrate=bitrate_kbps,
            key_int_max=max(1, round(fmt.fps * keyframe_seconds)),
        )  # fmt: skip
        self.queue = _make(
            "queue", "to-sink", max_size_buffers=0, max_size_bytes=0, max_size_time=4 * Gst.SECOND
        )
        self.sink = make_sink()
        chain = [
            self.appsrc,
            _make("queue", max_size_buffers=2, max_size_bytes=0, max_size_time=0),
            self.encoder,
            _make("capsfilter", caps=Gst.Caps.from_string("video/x-h264,profile=main")),
            _make("h264parse", config_interval=-1),
            _make("capsfilter", caps=Gst.Caps.from_string(RELAY_CAPS)),
            self.queue,
        ]
        for element in [*chain, self.sink]:
            self.pipeline.add(element)
        for a, b in itertools.pairwise(chain):
            if not a.link(b):
                raise RuntimeError(f"could not link {a.get_name()} to {b.get_name()}")
        link_sink(self.queue, self.sink)
        self.meter.attach(self.queue.get_static_pad("sink"))
        out = self.queue.get_static_pad("src")
        self._first_probe: tuple[Gst.Pad, int] | None = (
            out,
            out.add_probe(Gst.PadProbeType.BUFFER, self._on_first_out),
        )
        self._lock = threading.Lock()
        self._last_pts = -1
        self._showing: bool | None = None  # None until the first frame: then False (camera) or True
        self._last_camera = time.monotonic()  # the branch is built on a camera frame
        self._switches: deque[tuple[int, bool]] = deque(maxlen=256)  # (first PTS, slate?) of each period
        self._origin: tuple[int, int] | None = None  # (first PTS the sink saw, epoch ns then)
        self.slate_frames = 0
        self.camera_frames = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifetime -----------------------------------------------------------------------------------
    def start_slate_clock(self) -> None:
        """Start the thread that feeds the slate whenever the camera is quiet (once the branch plays)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._slate_loop, name="relay-slate", daemon=True)
            self._thread.start()

    def stop_slate_clock(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(2)

    def release(self) -> None:
        """Undo the probes (they hold this object); call once the pipeline is stopped."""
        self.stop_slate_clock()
        self.meter.detach()
        probe, self._first_probe = self._first_probe, None
        if probe is not None:
            probe[0].remove_probe(probe[1])

    # --- producers (any thread) ---------------------------------------------------------------------
    def camera(self, buffer: Gst.Buffer) -> None:
        """A camera frame from the source pipeline's appsink."""
        self._last_camera = time.monotonic()
        self._push(buffer, slate=False)

    def camera_lost(self) -> None:
        """The source pipeline dropped: show the slate from the next tick, not after ``after_seconds``."""
        self._last_camera = float("-inf")

    @property
    def showing_slate(self) -> bool:
        return bool(self._showing)

    def _slate_loop(self) -> None:
        interval = self.frame_ns / Gst.SECOND
        next_at = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - self._last_camera > self.spec.after_seconds:
                self._push(self.slate_frame, slate=True)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay < -interval:  # fell behind (a loaded machine): do not burst to catch up
                next_at, delay = time.monotonic(), 0.0
            self._stop.wait(max(0.0, delay))

    def _push(self, buffer: Gst.Buffer, *, slate: bool) -> None:
        # Not playing yet (kvssink still connecting): no running time to stamp the frame with. The
        # appsrc is the last element set to PLAYING, after the pipeline gave it its clock and base time
        # (the pipeline itself may stay PAUSED until a sink that prerolls gets a first frame).
        clock = self.appsrc.get_clock()
        if clock is None or self.appsrc.current_state != Gst.State.PLAYING:
            return
        switched = False
        with self._lock:
            now = clock.get_time() - self.appsrc.get_base_time()
            if now < 0:
                return
            pts = max(now, self._last_pts + 1)
            frame = new_frame(buffer)
            frame.pts = pts
            frame.dts = Gst.CLOCK_TIME_NONE
            frame.duration = self.frame_ns
            if slate != self._showing:
                switched = self._showing is not None or slate
                self._showing = slate
                self._switches.append((pts, slate))
                # A key frame (a new KVS fragment) on the first frame of the new period.
                self.encoder.get_static_pad("src").send_event(
                    GstVideo.video_event_new_upstream_force_key_unit(pts, True, 0)
                )
            self._last_pts = pts
            if slate:
                self.slate_frames += 1
            else:
                self.camera_frames += 1
            self.appsrc.emit("push-buffer", frame)
        if switched:
            log.info(
                "relay %s", "showing the slate" if slate else "back to the camera", extra={"slate": slate}
            )
            try:
                self.on_switch(slate)
            except Exception:
                log.exception("slate listener failed")

    # --- acks (SDK threads) -------------------------------------------------------------------------
    def _on_first_out(self, _pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        buffer = info.get_buffer()
        if buffer is None or buffer.pts == Gst.CLOCK_TIME_NONE:
            return Gst.PadProbeReturn.OK
        # kvssink's timecodes are PTS - (its first PTS) + (the epoch time of its first frame).
        self._origin = (buffer.pts, time.time_ns())
        self._first_probe = None
        return Gst.PadProbeReturn.REMOVE

    def _classify(self, timecode_ms: int) -> tuple[bool, bool] | None:
        """(slate?, of the period going on now?) for the fragment acknowledged at ``timecode_ms``."""
        origin = self._origin
        if origin is None:
            return None
        pts = timecode_ms * 1_000_000 - origin[1] + origin[0]
        with self._lock:
            starts = [p for p, _ in self._switches]
            # A fragment starts on its period's first frame: the timecode is in ms, and the origin is
            # read a moment apart from kvssink's own. Half a frame either way is still that frame.
            index = bisect.bisect_right(starts, pts + self.frame_ns // 2) - 1
            if index < 0:
                return None
            return self._switches[index][1], index == len(starts) - 1

    def is_slate(self, timecode_ms: int) -> bool:
        """Whether the fragment KVS acknowledged at ``timecode_ms`` was the slate."""
        found = self._classify(timecode_ms)
        return found is not None and found[0]

    def is_current_camera(self, timecode_ms: int) -> bool:
        """Whether that fragment is from the camera period going on now (not one before the outage)."""
        found = self._classify(timecode_ms)
        return found is not None and found == (False, True)
