"""The relay's GStreamer pipeline: one source (HLS, RTSP or SRT), one video branch, one sink.

    source ─ parsebin ─┬─ H.264, passthrough: h264parse ─ h264timestamper ───────────┐
                       ├─ other codec / transcode: decodebin ─ x264enc ─ h264parse ──┼─ avc/au ─ queue ─ sink
                       └─ audio and anything else: fakesink

In the slate layout (transcode mode, ``reelay.relay.slate``) the video branch only decodes: any codec,
``decodebin ─ videoconvert ─ videoscale ─ raw caps``, into an appsink; the encoder and kvssink run in a
pipeline of their own that outlives this one.

When the stream records, a tee follows the avc/au capsfilter: one branch to the KVS queue and sink
(none when the stream does not relay to KVS), one recording branch,

    tee ─ queue (leaky, bounded) ─ h264parse ─ splitmuxsink (mpegtsmux, keyframe-aligned splits)

writing segment files into a local spool directory. A stream that also records encoded renditions
(ladder rungs, e.g. 720p and 360p) decodes the passthrough stream once inside the branch:

    h264parse ─ tee ─ queue ─ splitmuxsink                                    (source, passthrough)
                    └ queue (leaky) ─ avdec_h264 ─ videoconvert ─ queue (leaky, raw frames) ─ tee
                        ─ queue ─ videoscale ─ WxH ─ x264enc ─ h264parse ─ splitmuxsink   (each rung)

Segment boundaries are decided once, upstream of both, on the source's keyframes (the first keyframe
at least a segment after the last boundary): every splitmuxsink is told to split at that running time
and every encoder to key on it, so all renditions cut on the same PTS and a master playlist switches
cleanly. Encoders that cannot keep up lose raw frames in the leaky raw queue (the same frames for every
rung, so they stay aligned), counted; the passthrough segments and the KVS branch never wait for them.
Encoding costs nothing when no rung is asked for: the branch is then the passthrough one alone.

The recording branch's queue drops its oldest
buffers rather than ever holding up the tee, so a slow disk never stalls KVS; uploads happen on the
recorder's own thread (``reelay.recording.recorder``). Closed segments are seen in the branch's bin
(``handle_message``) rather than on the bus: the bus is read by the runner's drain at stop, which
would swallow the last segment's message.

Every signal handler and probe the pipeline adds is undone by ``release()``, which the supervisor calls
once a pipeline is torn down. The handlers refer back to this object, and through it to the pipeline:
a reference cycle through C that Python's collector cannot see, so without ``release()`` every rebuilt
pipeline (kvssink, its SDK client and its buffers included) would stay in memory for good.

RTP depayloaders give H.264 a PTS but no DTS, and kvssink then invents DTS values far from the PTS
and sends nothing: h264timestamper computes the DTS from the stream itself.
The sink is whatever ``make_sink`` builds: kvssink in production, a recorder or a fakesink in tests.
kvssink takes its codec data once per element instance, so every rebuild builds a new sink too.
Audio is not relayed: the KVS stream carries one H.264 track.

RTSP H.264 and H.265 skip parsebin: ``rtspsrc ─ rtph26Xdepay ─ avc|hvc1/au`` feeds the video branch
directly (see ``RTP_DEPAYLOADERS`` for why); other RTSP codecs still go through parsebin. MJPEG comes
out of parsebin as ``image/jpeg`` and takes the "other codec" branch (``MJPEG_CAPS``).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from reelay.media._gst import Gst, GstVideo, ensure_init
from reelay.media.ladder import RenditionSpec, fit_rung
from reelay.media.pipeline import avc1_from_sps, encoder_threads, x264_encoder
from reelay.media.runner import FlowMeter

log = logging.getLogger(__name__)

VIDEO_MODES = ("auto", "passthrough", "transcode")
RELAY_CAPS = "video/x-h264,stream-format=avc,alignment=au"


# RTSP video that the relay depayloads itself: RTP encoding-name -> (depayloader, what it must put out).
# Out of band parameter sets (avc/hvc1) and whole access units: a depayloader that puts out byte-stream
# passes on the SPS/PPS that a sender repeats in band, and rtph264pay config-interval=-1 (GStreamer
# 1.22, as in many GStreamer-based cameras) repeats them before *every* slice of a key frame. In a
# multi-slice picture (x264's sliced threads, most hardware encoders) an SPS after a slice starts a
# new access unit (H.264 7.4.1.2.3), so h264parse (parsebin's, or ours) cut each key frame in two
# half-pictures: the decoder conceals the missing rows and every frame predicted from them is damaged
# until the next key frame. Asked for avc/hvc1, the depayloader keeps them in the caps' codec data and
# h264parse puts them back once, at the start of the key frame's access unit.
RTP_DEPAYLOADERS = {
    "H264": ("rtph264depay", "video/x-h264,stream-format=avc,alignment=au"),
    "H265": ("rtph265depay", "video/x-h265,stream-format=hvc1,alignment=au"),
}


# Motion JPEG (RTSP cameras send it as RTP/JPEG): parsebin puts it out as image/jpeg, not video/*. It is
# relayed like any other codec KVS cannot take: decoded and encoded to H.264 (never passed through).
MJPEG_CAPS = "image/jpeg"
# What parsebin and decodebin pick for MJPEG over RTSP (RTP/JPEG -> image/jpeg -> raw video). No make()
# call names them, so the image check (tests/unit/test_transcode_image.py) reads them here.
AUTOPLUGGED = ("rtpjpegdepay", "jpegdec")


def codec_label(caps_name: str) -> str:
    """A codec as an operator reads it: ``video/x-h265`` -> ``h265``, ``image/jpeg`` -> ``MJPEG``."""
    return "MJPEG" if caps_name == MJPEG_CAPS else caps_name.removeprefix("video/x-").removeprefix("video/")


def is_video(caps_name: str) -> bool:
    return caps_name.startswith("video/") or caps_name == MJPEG_CAPS


class UnrelayableSource(Exception):
    """The source's video cannot be relayed as configured (e.g. passthrough of a non-H.264 codec)."""


@dataclass(frozen=True)
class SourceSpec:
    """A source as the relay opens it: the URL here carries the camera's credentials, so never log it."""

    url: str
    video: str = "auto"  # auto | passthrough | transcode
    keyframe_seconds: float = 2.0
    transcode_bitrate_kbps: int = 2500
    connect_timeout_seconds: float = 5.0

    @property
    def protocol(self) -> str:
        scheme = urlsplit(self.url).scheme.lower()
        if scheme in ("rtsp", "rtsps"):
            return "rtsp"
        if scheme == "srt":
            return "srt"
        if scheme in ("http", "https"):
            return "hls"
        raise ValueError(f"unsupported source scheme {scheme!r}")


class SegmentSink(Protocol):
    """What the recording branch tells (the recorder); called from streaming threads, must not block."""

    def media_started(self) -> None: ...

    def segment_closed(self, path: str | Path, duration_ms: int) -> None: ...


SOURCE_RENDITION = "source"


@dataclass(frozen=True)
class RecordingSpec:
    """The recording branch: segments of about ``segment_seconds`` (split at the next keyframe) into
    ``spool_dir``, told to ``segments``. ``queue_seconds``/``queue_bytes`` bound the leaky queue.

    ``renditions``: encoded rungs recorded beside the passthrough source (sized to the source's
    picture when it is known, see ``fit_rung``). ``raw_queue_frames`` bounds the leaky queue of decoded
    frames in front of their encoders. With renditions, ``segments`` is also told (when it has these
    methods) ``describe_rendition(name, width, height, codecs)`` once each rendition's first keyframe is
    out, ``frames_dropped(count)`` when frames are lost to slow encoders, and ``segment_closed`` gets
    ``rendition=`` and ``pdt_ms=`` (the same wall-clock time for the same boundary in every rendition).
    """

    segments: SegmentSink
    spool_dir: Path
    segment_seconds: float = 2.0
    queue_seconds: float = 4.0
    queue_bytes: int = 32 * 1024 * 1024
    renditions: tuple[RenditionSpec, ...] = ()
    x264_preset: str = "veryfast"
    raw_queue_frames: int = 4


def _make(factory: str, name: str | None = None, **props: object) -> Gst.Element:
    element = Gst.ElementFactory.make(factory, name)
    if element is None:
        raise RuntimeError(f"the GStreamer element {factory!r} is not installed")
    for key, value in props.items():
        element.set_property(key.rstrip("_").replace("_", "-"), value)
    return element


def link_sink(queue: Gst.Element, sink: Gst.Element) -> None:
    """Link ``queue`` to the sink's video input (kvssink has request pads for audio and video: the
    video one is asked for by name)."""
    sink_pad = sink.get_static_pad("sink") or sink.request_pad_simple("video_%u")
    if sink_pad is None or queue.get_static_pad("src").link(sink_pad) != Gst.PadLinkReturn.OK:
        raise RuntimeError("the sink does not accept H.264 (avc, au)")


class RelayPipeline:
    """Builds the pipeline for ``source`` into ``make_sink()``. ``meter`` counts what reaches the sink."""

    def __init__(
        self,
        source: SourceSpec,
        make_sink: Callable[[], Gst.Element] | None,
        *,
        on_problem: Callable[[str], None] = lambda _reason: None,
        recording: RecordingSpec | None = None,
        raw_caps: str | None = None,
    ) -> None:
        if make_sink is None and recording is None:
            raise ValueError("a relay pipeline needs a sink, a recording, or both")
        if raw_caps is not None and recording is not None:
            raise ValueError("a pipeline of raw frames has no recording branch")
        self.source = source
        # Raw frames (decoded, any codec) to the sink instead of H.264: the source side of the slate
        # layout (reelay.relay.slate), whose encoder lives in a pipeline of its own.
        self.raw_caps = raw_caps
        self.meter = FlowMeter()
        self.on_problem = on_problem  # a permanent configuration problem, found once caps are known
        self.pipeline = Gst.Pipeline.new("relay")
        self._handlers: list[tuple[Gst.Element, int]] = []  # (element, handler id), undone by release()
        self._probes: list[tuple[Gst.Pad, int]] = []  # (pad, probe id), undone by release()
        self._keyed = False  # raw frames: a key frame reached the decoder
        self.video_linked = False
        self.codec: str | None = None

        self.queue: Gst.Element | None = None
        self.sink: Gst.Element | None = None
        if make_sink is not None:
            # Raw frames are big (3 MB each at 1080p): a few of them, never seconds' worth.
            self.queue = _make(
                "queue", "to-sink", max_size_buffers=8 if raw_caps else 0, max_size_bytes=0,
                max_size_time=0 if raw_caps else 4 * Gst.SECOND,
            )  # fmt: skip
            self.sink = make_sink()
            self.pipeline.add(self.queue)
            self.pipeline.add(self.sink)
            link_sink(self.queue, self.sink)
        self.recording: Gst.Bin | None = None
        self.entry: Gst.Element
        if recording is not None:
            # allow-not-linked: the tee keeps going whichever branch is missing or unlinked.
            self.entry = _make("tee", "split", allow_not_linked=True)
            self.pipeline.add(self.entry)
            if self.queue is not None:
                self.entry.link(self.queue)
            self.recording = RecordingBranch(recording)
            self.pipeline.add(self.recording)
            if not self.entry.link(self.recording):
                raise RuntimeError("could not link the recording branch")
        else:
            assert self.queue is not None
            self.entry = self.queue
        # What reaches the tee (or the KVS queue) is the media flow the supervisor watches for drops.
        self.meter.attach(self.entry.get_static_pad("sink"))

        self.parse = _make("parsebin", "parse")
        self.pipeline.add(self.parse)
        self._connect(self.parse, "pad-added", self._on_parsed_pad)
        try:
            self._add_source()
        except Exception:
            self.release()  # a half-built pipeline must not stay alive through its handlers either
            raise

    def _connect(self, element: Gst.Element, signal: str, handler: Callable[..., object]) -> None:
        self._handlers.append((element, element.connect(signal, handler)))

    def release(self) -> None:
        """Undo every handler and probe this object added, so that the pipeline (sink included) is freed
        once the caller drops it. Call it after the pipeline is stopped; safe to call twice."""
        handlers, self._handlers = self._handlers, []
        for element, handler_id in handlers:
            if element.handler_is_connected(handler_id):
                element.disconnect(handler_id)
        self.meter.detach()
        probes, self._probes = self._probes, []
        for pad, probe_id in probes:
            pad.remove_probe(probe_id)

    # --- sources ------------------------------------------------------------------------------
    def _add_source(self) -> None:
        timeout_us = int(self.source.connect_timeout_seconds * 1_000_000)
        protocol = self.source.protocol
        if protocol == "rtsp":
            # TCP interleaved: one connection, no UDP ports to open, and a broken link shows as EOF.
            src = _make("rtspsrc", "source", location=self.source.url, protocols=4, latency=200,
                        tcp_timeout=timeout_us, do_retransmission=False)  # fmt: skip
            self._connect(src, "pad-added", self._on_rtsp_pad)
            self.pipeline.add(src)
        elif protocol == "srt":
            # No auto-reconnect: srtsrc then warns forever and never errors; the supervisor reconnects.
            src = _make("srtsrc", "source", uri=self.source.url, latency=125)
            src.set_property("auto-reconnect", False)
            self.pipeline.add(src)
            src.link(self.parse)
        else:
            src = _make(
                "souphttpsrc",
                "source",
                location=self.source.url,
                timeout=max(1, int(self.source.connect_timeout_seconds)),
                retries=1,
            )
            demux = _make("hlsdemux", "hls")
            self.pipeline.add(src)
            self.pipeline.add(demux)
            src.link(demux)
            self._connect(demux, "pad-added", lambda _d, pad: self._link_to(pad, self.parse))

    def _on_rtsp_pad(self, _src: Gst.Element, pad: Gst.Pad) -> None:
        """H.264 and H.265 get a depayloader of our own that puts out whole access units with the
        parameter sets in the caps (avc/hvc1), not parsebin's byte-stream: see ``RTP_DEPAYLOADERS``.
        Other video (MJPEG, ...) goes through parsebin; audio is not relayed."""
        caps = pad.get_current_caps() or pad.query_caps(None)
        rtp = caps.get_structure(0) if caps and caps.get_size() else None
        media = rtp.get_string("media") if rtp is not None else None
        if media != "video" or self.video_linked:
            self._discard(pad)
            return
        encoding = (rtp.get_string("encoding-name") or "").upper() if rtp is not None else ""
        if encoding not in RTP_DEPAYLOADERS:
            self._link_to(pad, self.parse)
            return
        factory, out_caps = RTP_DEPAYLOADERS[encoding]
        depay = _make(factory)
        aligned = _make("capsfilter", caps=Gst.Caps.from_string(out_caps))
        self.pipeline.add(depay)
        self.pipeline.add(aligned)
        depay.link(aligned)
        self._on_parsed_pad(self.parse, aligned.get_static_pad("src"))
        aligned.sync_state_with_parent()
        depay.sync_state_with_parent()
        pad.link(depay.get_static_pad("sink"))

    def _link_to(self, pad: Gst.Pad, element: Gst.Element) -> None:
        sink = element.get_static_pad("sink")
        if sink is not None and not sink.is_linked():
            pad.link(sink)
        else:
            self._discard(pad)

    # --- the video branch ---------------------------------------------------------------------
    def _on_parsed_pad(self, _parsebin: Gst.Element, pad: Gst.Pad) -> None:
        caps = pad.get_current_caps() or pad.query_caps(None)
        name = caps.get_structure(0).get_name() if caps and caps.get_size() else ""
        if not is_video(name) or self.video_linked:
            self._discard(pad)
            return
        self.video_linked = True
        self.codec = name
        mode = self.source.video
        if self.raw_caps is not None:
            log.info("decoding %s for the encoder branch", name)
            # A source joined mid-GOP would be decoded to garbage until its next key frame: skip to it.
            self._probes.append((pad, pad.add_probe(Gst.PadProbeType.BUFFER, self._until_keyframe)))
            self._append_chain(pad, self._decoder(self.raw_caps))
            return
        if name == "video/x-h264" and mode != "transcode":
            log.info("relaying %s without re-encoding", name)
            chain = [_make("h264parse", config_interval=-1), _make("h264timestamper")]
        elif mode == "passthrough":
            self.on_problem(
                f"the source's video is {codec_label(name)}, which cannot be relayed without "
                "re-encoding; set video to auto or transcode"
            )
            self._discard(pad)
            return
        else:
            log.info("transcoding %s to H.264", name)
            chain = self._encoder()
        chain.append(_make("capsfilter", caps=Gst.Caps.from_string(RELAY_CAPS)))
        self._append_chain(pad, chain)

    def _encoder(self) -> list[Gst.Element]:
        fps_keyint = max(1, round(30 * self.source.keyframe_seconds))
        return [
            _make("decodebin"),
            _make("videoconvert"),
            _make("capsfilter", caps=Gst.Caps.from_string("video/x-raw,format=I420")),
            _make(
                "x264enc",
                tune="zerolatency",
                speed_preset="veryfast",
                bitrate=self.source.transcode_bitrate_kbps,
                key_int_max=fps_keyint,
            ),
            _make("capsfilter", caps=Gst.Caps.from_string("video/x-h264,profile=main")),
            _make("h264parse", config_interval=-1),
        ]

    def _until_keyframe(self, _pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        if self._keyed:
            return Gst.PadProbeReturn.OK
        if info.get_buffer().has_flags(Gst.BufferFlags.DELTA_UNIT):
            return Gst.PadProbeReturn.DROP
        self._keyed = True
        return Gst.PadProbeReturn.OK

    def _decoder(self, caps: str) -> list[Gst.Element]:
        return [
            _make("decodebin"),
            _make("videoconvert"),
            _make("videoscale", add_borders=True),
            _make("capsfilter", caps=Gst.Caps.from_string(caps)),
        ]

    def _append_chain(self, pad: Gst.Pad, chain: list[Gst.Element]) -> None:
        for element in chain:
            self.pipeline.add(element)
        previous: Gst.Element | None = None
        for element in chain:
            if previous is not None:
                if previous.get_factory().get_name() == "decodebin":
                    self._connect(previous, "pad-added", _link_dynamic(element))
                else:
                    previous.link(element)
            previous = element
        assert previous is not None
        previous.link(self.entry)
        for element in chain:
            element.sync_state_with_parent()
        pad.link(chain[0].get_static_pad("sink"))

    def _discard(self, pad: Gst.Pad) -> None:
        sink = _make("fakesink", sync=False, async_=False)
        self.pipeline.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))


def _link_dynamic(target: Gst.Element) -> Callable[[Gst.Element, Gst.Pad], None]:
    def link(_element: Gst.Element, pad: Gst.Pad) -> None:
        caps = pad.get_current_caps() or pad.query_caps(None)
        if caps and caps.get_size() and caps.get_structure(0).get_name().startswith("video/"):
            sink = target.get_static_pad("sink")
            if not sink.is_linked():
                pad.link(sink)

    return link


_branch_class: type | None = None


def RecordingBranch(spec: RecordingSpec) -> Gst.Bin:
    """The recording branch as a bin (its class is defined once Gst is initialised: registering a
    GstBin subclass before ``Gst.init`` aborts it)."""
    global _branch_class
    if _branch_class is None:
        ensure_init()
        _branch_class = _define_branch()
    return _branch_class(spec)


def _tell(sink: object, method: str, *args: object, **kwargs: object) -> None:
    """An optional SegmentSink method (tests' sinks may have only the two required ones)."""
    call = getattr(sink, method, None)
    if call is not None:
        call(*args, **kwargs)


def _define_branch() -> type:
    class _RecordingBranch(Gst.Bin):
        """queue (leaky) ─ h264parse ─ splitmuxsink(mpegtsmux), behind a ghost sink pad, plus the
        encoded rungs when asked for (see the module's docstring).

        Each pipeline build writes files of its own name (a random prefix): a dropped pipeline leaves its
        unfinished last file behind, never one a later build would reuse."""

        def __init__(self, spec: RecordingSpec) -> None:
            super().__init__(name="record")
            self.spec = spec
            spec.spool_dir.mkdir(parents=True, exist_ok=True)
            self.prefix = uuid.uuid4().hex[:12]
            self._opened: dict[str, int] = {}  # location -> running time it opened at (ns)
            self._started = False
            self._lock = threading.Lock()
            self._muxes: dict[str, str] = {}  # splitmuxsink name -> rendition
            self._encoders: list[Gst.Element] = []
            self._sizers: dict[str, Gst.Element] = {}  # rendition -> its size capsfilter
            self._heads: dict[str, Gst.Element] = {}  # rendition -> the first element of its branch
            self._boundary: int | None = None  # running time (ns) of the last segment boundary
            self._anchor: tuple[int, int] | None = None  # (running time ns, wall ms) of the first one
            self._keyed = False
            self._resync = False  # H.264 was lost before the decoder: wait for a keyframe
            self.frames_dropped = 0
            self._described: set[str] = set()
            encoded = bool(spec.renditions)
            queue = _make(
                "queue",
                "record-queue",
                leaky=2,  # downstream: drop the oldest buffers, never block the tee
                max_size_buffers=0,
                max_size_bytes=spec.queue_bytes,
                max_size_time=int(spec.queue_seconds * Gst.SECOND),
            )
            parse = _make("h264parse", "record-parse", config_interval=-1)
            # With encoded renditions every split is asked for (split-at-running-time) on the source's
            # keyframes; without, splitmuxsink splits by time alone, as it always did.
            mux = self._mux(SOURCE_RENDITION, "record-segments", f"{self.prefix}-%06d.ts", timed=not encoded)
            for element in (queue, parse):
                self.add(element)
            queue.link(parse)
            if encoded:
                split = _make("tee", "record-split")
                source_queue = _make("queue", "record-source-queue")
                for element in (split, source_queue):
                    self.add(element)
                parse.link(split)
                split.link(source_queue)
                source_queue.link(mux)
                self._add_encoded(split)
                parse.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self._on_source_buffer)
            else:
                parse.link(mux)
            parse.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self._describe, SOURCE_RENDITION)
            self.add_pad(Gst.GhostPad.new("sink", queue.get_static_pad("sink")))

        def _mux(self, rendition: str, name: str, pattern: str, *, timed: bool) -> Gst.Element:
            mux = _make(
                "splitmuxsink",
                name,
                muxer_factory="mpegtsmux",
                max_size_time=int(self.spec.segment_seconds * Gst.SECOND) if timed else 0,
                location=str(self.spec.spool_dir / pattern),
            )
            self.add(mux)
            self._muxes[name] = rendition
            return mux

        def _add_encoded(self, split: Gst.Element) -> None:
            spec = self.spec
            # H.264 lost here (the decoder too slow) breaks decoding until the next keyframe: counted,
            # and what follows is held back until one comes.
            decode_queue = _make(
                "queue", "record-decode-queue", leaky=2, max_size_buffers=0, max_size_bytes=spec.queue_bytes,
                max_size_time=int(spec.queue_seconds * Gst.SECOND),
            )  # fmt: skip
            decode_queue.connect("overrun", self._on_h264_overrun)
            decode_queue.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self._on_decode_input)
            # Raw frames the encoders have not taken yet: the oldest go first when they fall behind.
            raw_queue = _make(
                "queue", "record-raw-queue", leaky=2, max_size_buffers=spec.raw_queue_frames,
                max_size_bytes=0, max_size_time=0,
            )  # fmt: skip
            raw_queue.connect("overrun", self._on_raw_overrun)
            raw = _make("tee", "record-raw")
            chain = [
                decode_queue, _make("avdec_h264", "record-decode"), _make("videoconvert"),
                _make("capsfilter", caps=Gst.Caps.from_string("video/x-raw,format=I420")), raw_queue, raw,
            ]  # fmt: skip
            for element in chain:
                self.add(element)
            for a, b in itertools.pairwise(chain):
                if not a.link(b):
                    raise RuntimeError(f"could not link {a.get_name()} to {b.get_name()}")
            if not split.link(decode_queue):
                raise RuntimeError("could not link the recording decoder")
            raw.get_static_pad("sink").add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, self._on_raw_event)
            for rung in spec.renditions:
                sizer = _make("capsfilter", f"record-size-{rung.name}")
                encoder = x264_encoder(
                    rung, name=f"record-x264-{rung.name}", preset=spec.x264_preset,
                    segment_seconds=spec.segment_seconds, threads=encoder_threads(rung, spec.renditions),
                    # No look-ahead: the encoder outputs each frame before the next comes in, so its output
                    # segment (which GstVideoEncoder times forced key units against) is set from the
                    # first frame on, and no raw frames wait inside it.
                    gop=None, tune="zerolatency",
                )  # fmt: skip
                parse = _make("h264parse", f"record-parse-{rung.name}", config_interval=-1)
                chain = [
                    # never leaky: a slow encoder holds the raw tee, and the raw queue drops for all
                    _make("queue", max_size_buffers=2, max_size_bytes=0, max_size_time=0),
                    _make("videoscale", add_borders=False), sizer, encoder,
                    _make("capsfilter", caps=Gst.Caps.from_string(f"video/x-h264,profile={rung.profile}")),
                    parse,
                ]  # fmt: skip
                for element in chain:
                    self.add(element)
                for a, b in itertools.pairwise(chain):
                    if not a.link(b):
                        raise RuntimeError(f"could not link rendition {rung.name}")
                pattern = f"{self.prefix}-{rung.name}-%06d.ts"
                mux = self._mux(rung.name, f"record-segments-{rung.name}", pattern, timed=False)
                if not parse.link(mux) or not raw.link(chain[0]):
                    raise RuntimeError(f"could not link rendition {rung.name}")
                parse.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self._describe, rung.name)
                self._sizers[rung.name] = sizer
                self._heads[rung.name] = chain[0]
                self._encoders.append(encoder)

        # --- streaming threads ------------------------------------------------------------------------
        def _on_source_buffer(self, pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
            """Segment boundaries: the first keyframe a segment or more after the last boundary."""
            buf = info.get_buffer()
            if buf.has_flags(Gst.BufferFlags.DELTA_UNIT):
                return Gst.PadProbeReturn.OK if self._keyed else Gst.PadProbeReturn.DROP
            self._keyed = True
            event = pad.get_sticky_event(Gst.EventType.SEGMENT, 0)
            if buf.pts == Gst.CLOCK_TIME_NONE or event is None:
                return Gst.PadProbeReturn.OK
            at = event.parse_segment().to_running_time(Gst.Format.TIME, buf.pts)
            if at == Gst.CLOCK_TIME_NONE:
                return Gst.PadProbeReturn.OK
            # A little slack: a camera's 2 s GOP may stamp its keyframe a hair before the 2 s mark.
            step = int(self.spec.segment_seconds * Gst.SECOND * 0.95)
            with self._lock:
                first = self._boundary is None
                if not first and at - self._boundary < step:  # type: ignore[operator]
                    return Gst.PadProbeReturn.OK
                self._boundary = at
                if first:
                    self._anchor = (at, int(time.time() * 1000))
            if not first:  # the first frame an encoder sees is a keyframe anyway
                for encoder in self._encoders:
                    encoder.get_static_pad("src").send_event(
                        GstVideo.video_event_new_upstream_force_key_unit(at, True, 0)
                    )
                for name in self._muxes:
                    mux = self.get_by_name(name)
                    if mux is not None:
                        mux.emit("split-at-running-time", at)
            return Gst.PadProbeReturn.OK

        def _on_h264_overrun(self, _queue: Gst.Element) -> None:
            self._resync = True
            self._count_dropped(1)

        def _on_raw_overrun(self, _queue: Gst.Element) -> None:
            self._count_dropped(1)

        def _count_dropped(self, count: int) -> None:
            with self._lock:
                self.frames_dropped += count
            _tell(self.spec.segments, "frames_dropped", count)

        def _on_decode_input(self, _pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
            if not self._resync:
                return Gst.PadProbeReturn.OK
            if info.get_buffer().has_flags(Gst.BufferFlags.DELTA_UNIT):
                self._count_dropped(1)
                return Gst.PadProbeReturn.DROP
            self._resync = False
            return Gst.PadProbeReturn.OK

        def _on_raw_event(self, _pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
            """The decoded picture's size is known: fit every rung to it, once, before it negotiates."""
            event = info.get_event()
            if event.type != Gst.EventType.CAPS:
                return Gst.PadProbeReturn.OK
            s = event.parse_caps().get_structure(0)
            ok_w, width = s.get_int("width")
            ok_h, height = s.get_int("height")
            ok_par, par_n, par_d = s.get_fraction("pixel-aspect-ratio")
            if not (ok_w and ok_h) or width <= 0 or height <= 0:
                return Gst.PadProbeReturn.OK
            square = not ok_par or par_n == par_d
            if ok_par and par_n > 0 and par_d > 0:
                width = round(width * par_n / par_d)  # the display size
            # A rung that comes out the size of the source (rungs are never upscaled: a 720p rung on a
            # 720p camera) or of a better rung would record the same picture again: not encoded.
            sizes = {(width, height)} if square else set()
            for rung in sorted(self.spec.renditions, key=lambda r: -r.max_kbps):
                sizer = self._sizers.pop(rung.name, None)
                if sizer is None:
                    continue  # sized already: a later change of picture is scaled to the same size
                fitted = fit_rung(rung, width, height)
                sizer.set_property(
                    "caps",
                    Gst.Caps.from_string(
                        f"video/x-raw,width={fitted.width},height={fitted.height},pixel-aspect-ratio=1/1,"
                        "format=I420"
                    ),
                )
                if (fitted.width, fitted.height) in sizes:
                    self._skip(rung.name, fitted.width, fitted.height)
                sizes.add((fitted.width, fitted.height))
            return Gst.PadProbeReturn.OK

        def _skip(self, rendition: str, width: int, height: int) -> None:
            """No frame goes to ``rendition``'s encoder, and its segment sink goes (a splitmuxsink that
            never gets data would hold the pipeline out of PLAYING, waiting to preroll); the recorder
            neither waits for the rendition nor lists it."""
            head = self._heads[rendition].get_static_pad("sink")
            head.add_probe(Gst.PadProbeType.BUFFER, lambda *_: Gst.PadProbeReturn.DROP)
            mux = self.get_by_name(f"record-segments-{rendition}")
            if mux is not None:
                mux.set_locked_state(True)
                mux.set_state(Gst.State.NULL)
                self.remove(mux)
            log.info("recording branch: rendition %s would repeat a %dx%d picture; not encoded",
                     rendition, width, height)  # fmt: skip
            try:
                _tell(self.spec.segments, "drop_rendition", rendition)
            except Exception:  # never let the recorder's trouble into the streaming thread
                log.exception("recording branch: could not drop rendition %s", rendition)

        def _describe(self, pad: Gst.Pad, info: Gst.PadProbeInfo, rendition: str) -> Gst.PadProbeReturn:
            """A rendition's size and RFC 6381 codec, from its first keyframe's SPS, told once."""
            buf = info.get_buffer()
            if buf.has_flags(Gst.BufferFlags.DELTA_UNIT):
                return Gst.PadProbeReturn.OK
            codecs = avc1_from_sps(buf.extract_dup(0, min(buf.get_size(), 4096)))
            caps = pad.get_current_caps()
            if codecs is None or caps is None or not caps.get_size():
                return Gst.PadProbeReturn.OK
            s = caps.get_structure(0)
            width, height = s.get_int("width")[1], s.get_int("height")[1]
            try:
                _tell(self.spec.segments, "describe_rendition", rendition, width, height, codecs)
            except Exception:  # never let the recorder's trouble into the streaming thread
                log.exception("recording branch: could not describe rendition %s", rendition)
            return Gst.PadProbeReturn.REMOVE

        def do_handle_message(self, message: Gst.Message) -> None:
            if message.type == Gst.MessageType.ELEMENT:
                s = message.get_structure()
                name = s.get_name() if s is not None else ""
                if name in ("splitmuxsink-fragment-opened", "splitmuxsink-fragment-closed"):
                    src = message.src.get_name() if message.src else ""
                    rendition = self._muxes.get(src, SOURCE_RENDITION)
                    try:
                        self._on_fragment(
                            name, s.get_string("location"), s.get_uint64("running-time")[1], rendition
                        )
                    except Exception:  # never let the recorder's trouble into the streaming thread
                        log.exception("recording branch: could not hand over a segment")
            Gst.Bin.do_handle_message(self, message)

        def _on_fragment(self, name: str, location: str, running_time: int, rendition: str) -> None:
            with self._lock:
                if name.endswith("opened"):
                    self._opened[location] = running_time
                    # The recording starts with the source's first segment (its renditions follow).
                    first = rendition == SOURCE_RENDITION and not self._started
                    self._started = self._started or first
                    opened_at = None
                else:
                    first = False
                    opened_at = self._opened.pop(location, None)
                anchor = self._anchor
            if first:
                self.spec.segments.media_started()
            if opened_at is None:
                return
            duration_ms = max(1, round((running_time - opened_at) / 1_000_000))
            if not self.spec.renditions:
                self.spec.segments.segment_closed(location, duration_ms)
                return
            # Every rendition's segment that starts on the same boundary gets the same wall-clock time
            # (hence the same sequence number and program date-time), from one anchor per pipeline.
            pdt_ms = None
            if anchor is not None:
                pdt_ms = anchor[1] + round((opened_at - anchor[0]) / 1_000_000)
            self.spec.segments.segment_closed(  # type: ignore[call-arg]
                location, duration_ms, rendition=rendition, pdt_ms=pdt_ms
            )

    return _RecordingBranch
