"""Transcode one source into adaptive-bitrate HLS with a single GStreamer pipeline.

One decode feeds every rendition; a rendition half the size of another is scaled from it::

    filesrc ! decodebin ─ video ─ queue ! videoconvert [! videoflip(auto) ! videoconvert] ! videorate
        ! video/x-raw,format=I420,framerate=F,colorimetry=C ! tee
            ─┬─ queue ! swscale ! 1920x1080 (same size: passed through) ─ x264enc ! h264parse ! hlssink2
             ├─ queue ! swscale ! 1280x720 ! tee ─ queue ─────────────── ! x264enc ! h264parse ! hlssink2
             │                                   └─ queue ! videoscale ! 640x360 ! x264enc ! ...
             ├─ queue ! swscale ! 854x480 ──────────────────────────────── ! x264enc ! h264parse ! hlssink2
             └─ queue ! videoscale ! jpegenc ! multifilesink (poster)
                        ─ audio ─ queue ! audioconvert ! audioresample ! 48 kHz stereo ! tee
                              ─ queue ! avenc_aac(B) ! aacparse ! tee ─ queue ! hlssink2 (each rendition)

Decisions:
- Scaling is most of the work around the encoders. A rendition is scaled from the source's frames with
  libswscale's bilinear (``SWSCALE``, the element in ``reelay.media.swscale``): ffmpeg's own scaler, so
  the pictures are ffmpeg's to the byte, at about 40 % of the CPU of GStreamer 1.22's multi-tap
  videoscale. A rendition exactly half of one that is an exact copy of the picture (360p of 720p) is a
  2x2 average of it on every plane (``HALVING_SCALER``, ``scale_parents``), which GStreamer does in one
  SIMD pass. tests/bench/bench_ladder.py prints both sides' PSNR per rendition.
- The colorimetry is pinned before the tee (``_pin_colorimetry``): with none in the caps, every element
  assumes BT.709 above 576 lines and BT.601 below, so each SD rendition of an HD source went through a
  matrix conversion that cost CPU and shifted its colours (24 dB PSNR against the source).
- Audio is encoded once per distinct audio bitrate in the ladder, then teed to the renditions that share
  it: AAC costs little, but encoding it four times for nothing is waste, and renditions that share one
  encode carry byte-identical audio, so switching variants never glitches the sound.
- Every video branch uses the same GOP (fps x segment seconds), no scene-cut keyframes and no open GOP;
  hlssink2 also requests a keyframe at each segment boundary. All encoders see the same frames
  (videorate makes the rate constant before the tee), so every rendition cuts at the same timestamps.
- videoflip video-direction=auto applies the orientation tag: phone video comes out upright. Only a source
  the probe found oriented gets it: on an upright one it would copy every frame to change nothing.
- Memory: a raw 1080p I420 frame is ~3 MB, and x264enc keeps every input frame until the encoder emits
  it (lookahead plus frame threads), on top of x264's own copy. So the raw-video queues hold only
  ``RAW_QUEUE_FRAMES`` (not queue's 200 buffers / 10 MB / 1 s; the encoders' lookahead already smooths
  their pace), and each encoder gets threads in proportion to its share of the pixels instead of x264's
  1.5 x cores apiece (``ladder_encoder_threads``): the encoders already run in parallel, and every extra
  frame thread holds frames and costs CPU. The decoder runs one thread (``DECODER_THREADS``) and copies
  each frame once into pooled buffers (no direct rendering, see ``_on_decoder_added``).
  The x264 settings are otherwise ffmpeg's: x264's option string in both sides' output (SEI) differs
  only in ``threads`` (ffmpeg: x264's automatic 3 per encoder on 2 cores; here 1).
- Audio-only input is refused by ``probe`` (MediaError "no video stream"): Reelay is a video catalogue
  and its players, posters and thumbnails all assume a picture.

Media problems found while decoding raise MediaError (permanent); a cancel raises TranscodeCancelled;
anything else (disk, stalls) raises a transient error and the job is retried.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import itertools
import math
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from reelay.errors import InvalidInput, MediaError
from reelay.media import h264, hls, swscale
from reelay.media._gst import GObject, Gst, GstVideo, ensure_init
from reelay.media.ladder import RenditionSpec, even
from reelay.media.probe import MediaInfo
from reelay.media.runner import PipelineFailed, PipelineRunner, PipelineStalled, TranscodeCancelled
from reelay.models import Rendition

__all__ = [
    "PipelineFailed",
    "PipelineStalled",
    "TranscodeCancelled",
    "TranscodeResult",
    "output_frame_rate",
    "planned_renditions",
    "transcode",
]

X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
)  # fmt: skip
AUDIO_CODEC = "mp4a.40.2"  # AAC LC, what avenc_aac produces
MAX_FPS = 60
DEFAULT_FPS = Fraction(30)
POSTER_MAX_WIDTH = 1280
DECODER_THREADS = 1  # libav video decoder threads: one decodes 1080p far faster than the ladder encodes it
RAW_QUEUE_FRAMES = 2  # raw frames a video queue may hold: enough to keep the encoders fed, measured
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@dataclass(frozen=True)
class TranscodeResult:
    duration_seconds: float
    renditions: list[Rendition]
    poster: Path | None


def output_frame_rate(info: MediaInfo) -> Fraction:
    """The constant output rate: the source's, halved until it is at most 60; 30 when the source has none."""
    if not info.fps or info.fps <= 0:
        return DEFAULT_FPS
    rate = Fraction(info.fps).limit_denominator(1001)
    while rate > MAX_FPS:
        rate /= 2
    return rate


def nominal_avc1(spec: RenditionSpec, fps: Fraction | float) -> str:
    # Before the encoder has told us its level: the level this size, rate and peak need (1080p60 is 4.2).
    return h264.avc1(
        spec.profile, h264.level_idc(spec.width, spec.height, float(fps), spec.max_kbps, spec.profile)
    )


def planned_renditions(ladder: Sequence[RenditionSpec], info: MediaInfo) -> list[Rendition]:
    """Renditions with nominal bandwidths, for a master playlist published before the job finishes."""
    out = []
    fps = output_frame_rate(info)
    for spec in ladder:
        audio = spec.audio_kbps if info.has_audio else 0
        codecs = nominal_avc1(spec, fps) + (f",{AUDIO_CODEC}" if info.has_audio else "")
        out.append(
            Rendition(
                name=spec.name,
                width=spec.width,
                height=spec.height,
                bandwidth=(spec.max_kbps + audio) * 1000,
                average_bandwidth=(spec.video_kbps + audio) * 1000,
                codecs=codecs,
                playlist=f"{spec.name}/index.m3u8",
            )
        )
    return out


def _make(factory: str, name: str | None = None, **props: object) -> Gst.Element:
    el = Gst.ElementFactory.make(factory, name)
    if el is None:
        raise RuntimeError(f"GStreamer element {factory!r} is not installed")
    for key, value in props.items():
        key = key.replace("_", "-")
        spec = el.find_property(key)
        if spec is None:
            raise RuntimeError(f"{factory} has no property {key!r}")
        if isinstance(value, str) and spec.value_type.fundamental in (GObject.TYPE_ENUM, GObject.TYPE_FLAGS):
            Gst.util_set_object_arg(el, key, value)  # enums and flags by nick
        else:
            el.set_property(key, value)
    return el


def _raw_queue(name: str | None = None, frames: int = RAW_QUEUE_FRAMES) -> Gst.Element:
    # Bounded by frames only (bytes and time unlimited), never leaky: a full queue blocks the tee.
    return _make("queue", name, max_size_buffers=frames, max_size_bytes=0, max_size_time=0, leaky="no")


def encoder_threads(spec: RenditionSpec, ladder: Sequence[RenditionSpec], cores: int | None = None) -> int:
    """x264 threads for one rendition: its share of the ladder's pixels times 1.5 x cores, at least 1."""
    cores = cores or len(os.sched_getaffinity(0)) or 1
    total = sum(r.width * r.height for r in ladder) or 1
    return max(1, math.ceil(1.5 * cores * spec.width * spec.height / total))


def ladder_encoder_threads(
    spec: RenditionSpec, ladder: Sequence[RenditionSpec], cores: int | None = None
) -> int:
    """x264 frame threads for one rendition of a file's ladder: its share of the pixels times the cores,
    rounded, at least 1 (on 2 cores every rung of the default ladder gets one).

    The ladder's encoders already run side by side, so frame threads add no parallelism the machine
    has spare; they cost CPU (x264 at 1080p veryfast: 9 % more with 2 threads than with 1) and a frame
    of memory each (30 MB at 1080p). A live recording keeps ``encoder_threads``: its sliced threads
    bound each frame's latency, which a file's transcode does not need.
    """
    cores = cores or len(os.sched_getaffinity(0)) or 1
    total = sum(r.width * r.height for r in ladder) or 1
    return max(1, int(cores * spec.width * spec.height / total + 0.5))


def x264_encoder(
    spec: RenditionSpec,
    *,
    name: str,
    preset: str,
    segment_seconds: float,
    threads: int,
    gop: int | None,
    tune: str | None = None,
) -> Gst.Element:
    """A rendition's x264enc as the ladder wants it: capped at the rung's rate with a one-segment VBV
    buffer, no B-frames, no scene-cut keyframes and no open GOP. ``gop`` fixes the keyframe interval
    (frames); None leaves keyframes to forced key units (a live recording keys on its source's
    segment boundaries) with x264's long default interval as a fallback. ``tune`` e.g. "zerolatency"."""
    options = "scenecut=0:open-gop=0" + (f":min-keyint={gop}" if gop else "")
    encoder = _make(
        "x264enc", name,
        speed_preset=preset, bitrate=spec.video_kbps,
        vbv_buf_capacity=min(10000, int(segment_seconds * 1000)), key_int_max=gop or 0, bframes=0,
        threads=threads, option_string=options,
    )  # fmt: skip
    if tune:
        Gst.util_set_object_arg(encoder, "tune", tune)
    return encoder


def scale_parents(ladder: Sequence[RenditionSpec], width: int, height: int) -> dict[str, str | None]:
    """Which frames each rendition is scaled from: a larger rendition's, or None for the source's.

    A rendition exactly half the size of another that is an exact copy of the ``width`` x ``height``
    picture (360p of 720p, of a 16:9 source) is scaled from it: a 2x2 average of a quarter of the pixels
    (``HALVING_SCALER``), the cheapest scaling there is. Every other rendition is scaled from the source's
    frames, as ffmpeg's ladder does: scaling one rendition from another stacks two filters' blur
    (480p from 720p with libswscale's bilinear measured -2.3 dB PSNR against 480p from 1080p), and a
    rendition rounded to even sizes (854x480 of 16:9) is slightly stretched, an error a second scaling
    would stack too (-12 dB at 360p from 854x480).
    """
    exact = [r for r in ladder if r.width * height == r.height * width]
    parents: dict[str, str | None] = {}
    for spec in ladder:
        doubles = [r for r in exact if (r.width, r.height) == (2 * spec.width, 2 * spec.height)]
        parents[spec.name] = doubles[0].name if doubles else None
    return parents


@dataclass(frozen=True)
class Scaler:
    """How one rendition is scaled from its parent's frames: ``element`` is "videoscale" (with
    ``properties``) or "swscale" (libswscale, ``reelay.media.swscale``)."""

    element: str
    properties: tuple[tuple[str, str], ...] = ()


# Any other scaling (720p and 480p from 1080p) goes through libswscale's bilinear, ffmpeg's own scaler:
# byte for byte what ``ffmpeg -vf scale=...:flags=bilinear`` makes, at about 40 % of the CPU of GStreamer
# 1.22's multi-tap videoscale (bilinear2 with Lanczos chroma, which gathers its taps one byte at a time).
# A rendition the size of the source's frames passes them through untouched. bench_ladder prints the
# PSNR of both sides per rendition.
SWSCALE = Scaler("swscale")
# An exact halving (360p from 720p, 1080p from 2160p) with a linear filter on every plane takes
# GStreamer's 2x2-average fast path (one SIMD pass per plane, in video-converter's setup_scale), cheaper
# still than libswscale, and a 2x2 average is close to what a linear filter widened to 2x computes:
# 360p measured 43.3 dB against ffmpeg's 42.3 (bench_ladder), its scaling 0.10 CPU seconds per 20 s of
# 1080p25 (perf), about 1 % of the ladder's CPU.
HALVING_SCALER = Scaler("videoscale", (("method", "bilinear2"), ("chroma_resampler", "linear")))


def scaler_for(spec: RenditionSpec, width: int, height: int) -> Scaler:
    """How to scale a ``width`` x ``height`` picture to ``spec``'s size.

    For a rendition scaled from the source the size is the probe's display size; a source with
    non-square pixels whose display size is exactly twice the rendition's gets linear chroma without
    the halving fast path: slightly softer chroma, never a wrong picture."""
    if (2 * spec.width, 2 * spec.height) == (width, height):
        return HALVING_SCALER
    return SWSCALE


def make_scaler(scaler: Scaler, name: str) -> Gst.Element:
    if scaler.element == "swscale":
        return swscale.make(name)
    return _make("videoscale", name, add_borders=False, **dict(scaler.properties))


def _caps(text: str) -> Gst.Element:
    return _make("capsfilter", caps=Gst.Caps.from_string(text))


def _link_chain(bin_: Gst.Bin, *elements: Gst.Element) -> None:
    for el in elements:
        bin_.add(el)
    for a, b in itertools.pairwise(elements):
        if not a.link(b):
            raise RuntimeError(f"could not link {a.get_name()} to {b.get_name()}")


def avc1_from_sps(data: bytes) -> str | None:
    """RFC 6381 'avc1.PPCCLL' from the first SPS NAL unit in an Annex B buffer."""
    i = 0
    while True:
        i = data.find(b"\x00\x00\x01", i)
        if i < 0 or i + 6 >= len(data):
            return None
        if data[i + 3] & 0x1F == 7:
            return "avc1." + data[i + 4 : i + 7].hex()
        i += 3


class _AudioMissing(Exception):
    """Internal: the source's audio track produced no decodable stream."""


class _Job:
    """The pipeline for one transcode and the state its probes collect from streaming threads."""

    decodebin: Gst.Element
    video_in: Gst.Element
    audio_in: Gst.Element | None

    def __init__(
        self, source: Path, out_dir: Path, ladder: Sequence[RenditionSpec], info: MediaInfo,
        segment_seconds: int, x264_preset: str,
    ) -> None:  # fmt: skip
        self.source, self.out_dir, self.ladder, self.info = source, out_dir, list(ladder), info
        self.segment_seconds = segment_seconds
        self.fps = output_frame_rate(info)
        self.gop = max(1, round(self.fps * segment_seconds))
        self.x264_preset = x264_preset
        self.codecs: dict[str, str] = {}
        self.last_activity = time.monotonic()
        self.position_ns = 0  # video decoded so far, from the first frame
        self.audio_end_ns = 0  # end of the audio decoded so far, from the first sample
        self.first_audio_pts: int | None = None
        self.first_pts: int | None = None
        self.poster_taken = 0
        self.poster_pts = self._poster_time_ns()
        self.sinks: dict[str, str] = {}  # hlssink2 element name -> rendition name
        self.linked: set[str] = set()
        self.audio_missing = False
        self.pipeline = Gst.Pipeline.new("transcode")
        self._build()

    def release(self) -> None:
        """Drop our references so the stopped pipeline is freed now (its pads' probes point back here)."""
        self.pipeline = self.decodebin = self.video_in = self.audio_in = None  # type: ignore[assignment]

    def _poster_time_ns(self) -> int:
        duration = self.info.duration_seconds or 0
        return int(duration * 0.1 * Gst.SECOND) if duration >= 2 else 0

    # --- building -----------------------------------------------------------------------------------
    def _build(self) -> None:
        p = self.pipeline
        src = _make("filesrc", "source", location=str(self.source))
        self.decodebin = _make("decodebin", "decode")
        _link_chain(p, src, self.decodebin)
        self.decodebin.connect("pad-added", self._on_pad_added)
        self.decodebin.connect("no-more-pads", self._on_no_more_pads)

        self.decodebin.connect("deep-element-added", self._on_decoder_added)

        self.video_in = _raw_queue("video_in")
        vtee = _make("tee", "video_tee")
        self.video_caps = _caps(self._raw_caps())
        # videoflip copies every frame even when it has nothing to turn: only an oriented source gets it.
        turn = [_make("videoflip", video_direction="auto"), _make("videoconvert")] if self._oriented() else []
        _link_chain(
            p, self.video_in, _make("videoconvert"), *turn, _make("videorate"), self.video_caps, vtee,
        )  # fmt: skip
        vtee.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, self._on_video_buffer)

        self.audio_in = None
        atees: dict[int, Gst.Element] = {}
        if self.info.has_audio:
            self.audio_in = _make("queue", "audio_in", max_size_buffers=0, max_size_bytes=0, max_size_time=0)
            araw = _make("tee", "audio_tee")
            _link_chain(
                p, self.audio_in, _make("audioconvert"), _make("audioresample"),
                _caps("audio/x-raw,rate=48000,channels=2"), araw,
            )  # fmt: skip
            araw.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, self._on_audio_buffer)
            for kbps in sorted({spec.audio_kbps for spec in self.ladder}):
                atee = _make("tee", f"aac_{kbps}_tee")
                head = _make("queue", max_size_buffers=0, max_size_bytes=0, max_size_time=0)
                _link_chain(p, head, _make("avenc_aac", bitrate=kbps * 1000), _make("aacparse"), atee)
                if not araw.link(head):
                    raise RuntimeError("could not link the audio encoder")
                atees[kbps] = atee

        parents = scale_parents(self.ladder, self.info.width, self.info.height)
        feeders = set(parents.values())
        tees: dict[str | None, Gst.Element] = {None: vtee}
        sizes: dict[str | None, tuple[int, int]] = {None: (self.info.width, self.info.height)}
        sizes.update((spec.name, (spec.width, spec.height)) for spec in self.ladder)
        for spec in sorted(self.ladder, key=lambda r: r.width * r.height, reverse=True):
            parent = parents[spec.name]
            tee = self._add_rendition(
                spec, tees[parent], atees.get(spec.audio_kbps), feeds=spec.name in feeders,
                scaler=scaler_for(spec, *sizes[parent]),
            )  # fmt: skip
            if tee is not None:
                tees[spec.name] = tee
        self._add_poster(vtee)

    def _oriented(self) -> bool:
        return self.info.rotation != 0 or self.info.mirrored

    def _on_decoder_added(self, _bin: Gst.Bin, _sub: Gst.Bin, element: Gst.Element) -> None:
        """Set up libav's video decoder (avdec_*) as decodebin makes it; see DECODER_THREADS.

        Direct rendering is off: with it, libav decodes into buffers it keeps as references, so the
        base class copies every frame it pushes into freshly allocated memory (to make it writable),
        and those copies, held downstream by the encoders, cost 40 MB more at peak than copying each
        frame once into pooled buffers, which is what avdec does without it.
        """
        if isinstance(element, GstVideo.VideoDecoder) and element.find_property("max-threads") is not None:
            element.set_property("max-threads", DECODER_THREADS)
            if element.find_property("direct-rendering") is not None:
                element.set_property("direct-rendering", False)

    def _raw_caps(self, colorimetry: str | None = None) -> str:
        rate = f"{self.fps.numerator}/{self.fps.denominator}"
        return f"video/x-raw,format=I420,framerate={rate}" + (
            f",colorimetry={colorimetry}" if colorimetry else ""
        )

    def _pin_colorimetry(self, pad: Gst.Pad) -> None:
        """Carry the decoded video's colorimetry through every rendition.

        A decoder that finds no colour description in the stream leaves it out of its caps, and each
        element then assumes the default for the frame size in front of it: BT.709 above 576 lines,
        BT.601 at or below. Without this, every SD rendition of an HD source went through a full matrix
        conversion (costly, and it changes the pixel values x264 is given) only because its size differs.
        """
        caps = pad.get_current_caps()
        if caps is None or not caps.is_fixed():
            return
        info = GstVideo.VideoInfo.new_from_caps(caps)
        if info is not None:
            self.video_caps.set_property(
                "caps", Gst.Caps.from_string(self._raw_caps(info.colorimetry.to_string()))
            )

    def _add_rendition(
        self,
        spec: RenditionSpec,
        source: Gst.Element,
        atee: Gst.Element | None,
        *,
        feeds: bool,
        scaler: Scaler,
    ) -> Gst.Element | None:
        """One rendition's branch from ``source`` (a tee), scaled with ``scaler``; with ``feeds``, also a
        tee of its scaled frames."""
        p = self.pipeline
        folder = self.out_dir / spec.name
        folder.mkdir(parents=True, exist_ok=True)
        sink = _make(
            "hlssink2", f"hls_{spec.name}",
            location=str(folder / "seg_%05d.ts"), playlist_location=str(folder / "index.m3u8"),
            target_duration=self.segment_seconds, playlist_length=0, max_files=0, send_keyframe_requests=True,
            message_forward=True,  # hlssink2 swallows splitmuxsink's fragment messages otherwise
        )  # fmt: skip
        self.sinks[sink.get_name()] = spec.name
        p.add(sink)
        encoder = x264_encoder(
            spec, name=f"x264_{spec.name}", preset=self.x264_preset, segment_seconds=self.segment_seconds,
            threads=ladder_encoder_threads(spec, self.ladder), gop=self.gop,
        )  # fmt: skip
        parse = _make("h264parse")
        queue = _raw_queue()
        scaled = [
            queue, make_scaler(scaler, f"scale_{spec.name}"),
            _caps(f"video/x-raw,width={spec.width},height={spec.height},pixel-aspect-ratio=1/1,format=I420"),
        ]  # fmt: skip
        tee = _make("tee", f"scaled_{spec.name}_tee") if feeds else None
        if tee is not None:  # the encoder gets its own thread, so the smaller renditions do not wait on it
            scaled += [tee, _raw_queue()]
        _link_chain(p, *scaled, encoder, _caps(f"video/x-h264,profile={spec.profile}"), parse)
        if not source.link(queue) or parse.link_pads("src", sink, "video") is False:
            raise RuntimeError(f"could not link rendition {spec.name}")
        parse.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self._on_encoded, spec.name)
        if atee is not None:
            aqueue = _make("queue", max_size_buffers=0, max_size_bytes=0, max_size_time=0)
            p.add(aqueue)
            if not atee.link(aqueue) or aqueue.link_pads("src", sink, "audio") is False:
                raise RuntimeError(f"could not link audio of rendition {spec.name}")
        return tee

    def _add_poster(self, vtee: Gst.Element) -> None:
        width = even(min(POSTER_MAX_WIDTH, self.info.width))
        height = even(width * self.info.height / self.info.width)
        queue = _raw_queue(frames=1)  # its probe drops all but two frames
        _link_chain(
            self.pipeline, queue, _make("videoscale", add_borders=False),
            _caps(f"video/x-raw,width={width},height={height},pixel-aspect-ratio=1/1"), _make("videoconvert"),
            _make("jpegenc", quality=85),
            _make("multifilesink", location=str(self.out_dir / ".poster_%d.jpg"), post_messages=False),
        )  # fmt: skip
        if not vtee.link(queue):
            raise RuntimeError("could not link the poster branch")
        queue.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, self._on_poster_buffer)

    # --- streaming-thread callbacks -----------------------------------------------------------------
    def _on_pad_added(self, _decodebin: Gst.Element, pad: Gst.Pad) -> None:
        caps = pad.get_current_caps() or pad.query_caps(None)
        kind = caps.get_structure(0).get_name().split("/", 1)[0] if caps and caps.get_size() else ""
        target = {"video": self.video_in, "audio": self.audio_in}.get(kind)
        if target is not None and kind not in self.linked:
            self.linked.add(kind)
            if kind == "video":
                self._pin_colorimetry(pad)
            if pad.link(target.get_static_pad("sink")) == Gst.PadLinkReturn.OK:
                return
        # Extra streams (a second audio track, subtitles) are not used: park them in a fakesink.
        sink = _make("fakesink", sync=False)
        self.pipeline.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))

    def _on_no_more_pads(self, _decodebin: Gst.Element) -> None:
        # The probe saw an audio track but no decodable audio came out: the muxers would wait for it
        # forever, so the transcode starts again without an audio branch (video-only renditions).
        if self.audio_in is not None and "audio" not in self.linked:
            self.audio_missing = True

    def _on_audio_buffer(self, _pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        buf = info.get_buffer()
        if buf.pts != Gst.CLOCK_TIME_NONE:
            if self.first_audio_pts is None:
                self.first_audio_pts = buf.pts
            end = (
                buf.pts - self.first_audio_pts + (buf.duration if buf.duration != Gst.CLOCK_TIME_NONE else 0)
            )
            self.audio_end_ns = max(self.audio_end_ns, end)
        return Gst.PadProbeReturn.OK

    def decoded_seconds(self) -> float:
        video_end = self.position_ns / Gst.SECOND + float(1 / self.fps) if self.first_pts is not None else 0.0
        return max(video_end, self.audio_end_ns / Gst.SECOND)

    def _on_video_buffer(self, _pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        buf = info.get_buffer()
        if buf.pts != Gst.CLOCK_TIME_NONE:
            if self.first_pts is None:
                self.first_pts = buf.pts
            self.position_ns = max(self.position_ns, buf.pts - self.first_pts)
        self.last_activity = time.monotonic()
        return Gst.PadProbeReturn.OK

    def _on_encoded(self, _pad: Gst.Pad, info: Gst.PadProbeInfo, name: str) -> Gst.PadProbeReturn:
        # Only the first keyframe's SPS is wanted; the tee's probe keeps the watchdog fed from then on,
        # so the probe goes away rather than take the GIL for every encoded frame.
        self.last_activity = time.monotonic()
        buf = info.get_buffer()
        codec = avc1_from_sps(buf.extract_dup(0, min(buf.get_size(), 1024)))
        if not codec:
            return Gst.PadProbeReturn.OK
        self.codecs[name] = codec
        return Gst.PadProbeReturn.REMOVE

    def _on_poster_buffer(self, _pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        # Let through the first frame (fallback) and the first frame at or after the poster time.
        buf = info.get_buffer()
        start = self.first_pts or 0
        if self.poster_taken == 0 or (
            self.poster_taken == 1 and self.poster_pts > 0 and buf.pts != Gst.CLOCK_TIME_NONE
            and buf.pts - start >= self.poster_pts
        ):  # fmt: skip
            self.poster_taken += 1
            return Gst.PadProbeReturn.OK
        return Gst.PadProbeReturn.DROP

    def is_decode_error(self, source: Gst.Object | None) -> bool:
        """True when the element that failed is the file reader, the demuxer or a decoder."""
        obj = source
        while obj is not None:
            if obj is self.decodebin or (isinstance(obj, Gst.Element) and obj.get_name() == "source"):
                return True
            obj = obj.get_parent()
        return False


def _validate(
    ladder: Sequence[RenditionSpec], info: MediaInfo, segment_seconds: int, x264_preset: str
) -> None:
    if not ladder:
        raise InvalidInput("the rendition ladder is empty")
    names = [spec.name for spec in ladder]
    if len(set(names)) != len(names) or not all(_NAME.match(n) for n in names):
        raise InvalidInput(f"rendition names must be unique folder-safe words, got {names}")
    for spec in ladder:
        if spec.width <= 0 or spec.height <= 0 or spec.width % 2 or spec.height % 2:
            raise InvalidInput(f"rendition {spec.name} needs positive even dimensions")
        if spec.profile not in ("main", "high"):
            raise InvalidInput(f"rendition {spec.name}: profile must be main or high")
        if spec.video_kbps <= 0 or spec.audio_kbps <= 0:
            raise InvalidInput(f"rendition {spec.name}: bitrates must be positive")
    if not 1 <= segment_seconds <= 30:
        raise InvalidInput("segment_seconds must be between 1 and 30")
    if x264_preset not in X264_PRESETS:
        raise InvalidInput(f"unknown x264 preset {x264_preset!r}; known: {', '.join(X264_PRESETS)}")
    if not info.has_video or info.width <= 0 or info.height <= 0:
        raise MediaError("the file has no video stream")


def _measure(folder: Path, target: int, frame_seconds: float) -> tuple[list[tuple[str, float]], int, int]:
    """Segments from hlssink2's playlist and the (peak, average) bits per second of the files."""
    playlist = hls.parse_media_playlist((folder / "index.m3u8").read_text())
    segments = [(Path(uri).name, duration) for uri, duration in playlist.segments]
    if not segments:
        raise MediaError("no video could be decoded from the file")
    # hlssink2 times the last segment up to its last frame's start; the frame itself lasts one more tick.
    segments[-1] = (segments[-1][0], segments[-1][1] + frame_seconds)
    sizes = [(folder / uri).stat().st_size * 8 for uri, _ in segments]
    total_seconds = sum(d for _, d in segments)
    average = math.ceil(sum(sizes) / total_seconds)
    # RFC 8216 4.3.4.2: the peak over runs of 0.5-1.5 target durations, so a short final segment counts
    # only together with its neighbour (see hls.peak_bit_rate).
    peak = hls.peak_bit_rate([(bits, d) for bits, (_, d) in zip(sizes, segments, strict=True)], target)
    return segments, max(peak, average), average


# Every element a transcode makes (decodebin's usual picks included), for ``warm_up``.
_FACTORIES = (
    "filesrc", "decodebin", "typefind", "qtdemux", "multiqueue", "h264parse", "avdec_h264", "aacparse",
    "avdec_aac", "queue", "videoconvert", "videoflip", "videorate", "capsfilter", "tee", "videoscale",
    "x264enc", "hlssink2", "splitmuxsink", "mpegtsmux", "audioconvert", "audioresample", "avenc_aac",
    "jpegenc", "multifilesink", "fakesink",
)  # fmt: skip


def warm_up() -> None:
    """Initialise GStreamer and load the transcode's plugins now, so the first job does not wait for it.

    A worker calls this before it takes jobs: a task started for a queued job (scale-out) otherwise
    pays the plugin loading (libx264, libav) inside that job's time.
    """
    ensure_init()
    for name in _FACTORIES:
        factory = Gst.ElementFactory.find(name)
        if factory is not None:
            factory.load()
    swscale.register()
    swscale.available()  # loads libswscale


def transcode(
    source: Path,
    out_dir: Path,
    ladder: Sequence[RenditionSpec],
    info: MediaInfo,
    *,
    segment_seconds: int = 2,
    x264_preset: str = "veryfast",
    on_progress: Callable[[float], None] | None = None,
    on_segment: Callable[[str, Path], None] | None = None,
    cancel: threading.Event | None = None,
    stall_seconds: float = 60,
    on_segment_ready: Callable[[str, Path, float], None] | None = None,
) -> TranscodeResult:
    """Write master.m3u8, poster.jpg and {name}/index.m3u8 + {name}/seg_NNNNN.ts under ``out_dir``.

    ``on_segment(name, path)`` and ``on_segment_ready(name, path, duration_seconds)`` run on the calling
    thread as each segment file is closed, in order per rendition; use them to publish while the job
    runs (with ``hls.event_playlist``). ``stall_seconds`` is the watchdog: no media for that long fails.
    """
    _validate(ladder, info, segment_seconds, x264_preset)
    ensure_init()
    source, out_dir = Path(source), Path(out_dir)
    if not source.is_file():
        raise FileNotFoundError(f"source {source} does not exist")
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".poster_*.jpg"):  # from an attempt that died; would be taken as the poster
        stale.unlink()
    job = _Job(source, out_dir, ladder, info, segment_seconds, x264_preset)

    duration_ns = int((info.duration_seconds or 0) * Gst.SECOND)
    last_report = 0.0

    def tick() -> None:
        nonlocal last_report
        if job.audio_missing:
            raise _AudioMissing
        now = time.monotonic()
        if on_progress is None or now - last_report < 1.0 or duration_ns <= 0:
            return
        last_report = now
        on_progress(min(0.99, job.position_ns / duration_ns))

    closed: dict[str, int] = {}  # rendition -> segments closed so far
    opened_at: dict[str, int] = {}  # rendition -> running time the open segment started at

    def on_message(msg: Gst.Message) -> None:
        # hlssink2 writes through GIO streams, so splitmuxsink's messages carry no location: the
        # segment index counts closed fragments, as hlssink2's own seg_%05d numbering does.
        s = msg.get_structure()
        kind = s.get_name() if s is not None else ""
        if kind not in ("splitmuxsink-fragment-opened", "splitmuxsink-fragment-closed"):
            return
        obj = msg.src
        while obj is not None and obj.get_name() not in job.sinks:
            obj = obj.get_parent()
        if obj is None:
            return
        name = job.sinks[obj.get_name()]
        ok, running_time = s.get_uint64("running-time")
        if kind == "splitmuxsink-fragment-opened":
            opened_at[name] = running_time if ok else 0
            return
        index = closed.get(name, 0)
        closed[name] = index + 1
        path = out_dir / name / f"seg_{index:05d}.ts"
        duration = max(0, running_time - opened_at.get(name, 0)) / Gst.SECOND if ok else 0.0
        if on_segment is not None:
            on_segment(name, path)
        if on_segment_ready is not None:
            on_segment_ready(name, path, duration)

    runner = PipelineRunner(
        job.pipeline, cancel=cancel, stall_seconds=stall_seconds,
        last_activity=lambda: job.last_activity, on_tick=tick, on_message=on_message,
    )  # fmt: skip
    try:
        runner.run()
    except _AudioMissing:
        runner.pipeline = None  # type: ignore[assignment]
        job.release()
        # hlssink2 writes each file through g_file_replace, which renames its temp file over the target
        # when the stream is finalised: the dead pipeline must be gone before the next one writes.
        gc.collect()
        return transcode(
            source, out_dir, ladder, dataclasses.replace(info, has_audio=False),
            segment_seconds=segment_seconds, x264_preset=x264_preset, on_progress=on_progress,
            on_segment=on_segment, cancel=cancel, stall_seconds=stall_seconds,
            on_segment_ready=on_segment_ready,
        )  # fmt: skip
    except PipelineFailed as exc:
        if job.is_decode_error(exc.source):
            raise MediaError("the file could not be decoded; it may be corrupt", detail=str(exc)) from None
        raise
    finally:
        runner.pipeline = None  # type: ignore[assignment]
        job.release()

    # A file cut off after its index (an interrupted upload of a "fast start" MP4) decodes cleanly up to
    # the cut and then simply ends: compare what was decoded with what the container promised.
    if info.duration_seconds:
        decoded = job.decoded_seconds()
        if info.duration_seconds - decoded > max(0.5, 0.02 * info.duration_seconds):
            raise MediaError(
                f"the file is truncated: only {decoded:.1f} s of its "
                f"{info.duration_seconds:.1f} s could be decoded"
            )

    renditions: list[Rendition] = []
    duration = 0.0
    for spec in ladder:
        folder = out_dir / spec.name
        segments, peak, average = _measure(folder, segment_seconds, float(1 / job.fps))
        (folder / "index.m3u8").write_text(hls.vod_playlist(segments, segment_seconds))
        duration = max(duration, sum(d for _, d in segments))
        video_codec = job.codecs.get(spec.name) or nominal_avc1(spec, job.fps)
        renditions.append(
            Rendition(
                name=spec.name,
                width=spec.width,
                height=spec.height,
                bandwidth=peak,
                average_bandwidth=average,
                codecs=video_codec + (f",{AUDIO_CODEC}" if info.has_audio else ""),
                playlist=f"{spec.name}/index.m3u8",
            )
        )
    (out_dir / "master.m3u8").write_text(hls.write_master(renditions, frame_rate=float(job.fps)))

    poster = _finish_poster(out_dir)
    if on_progress is not None:
        on_progress(1.0)
    return TranscodeResult(duration_seconds=round(duration, 3), renditions=renditions, poster=poster)


def _finish_poster(out_dir: Path) -> Path | None:
    frames = sorted(out_dir.glob(".poster_*.jpg"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    poster = out_dir / "poster.jpg"
    if not frames:
        return None
    frames[-1].replace(poster)
    for extra in frames[:-1]:
        with contextlib.suppress(FileNotFoundError):
            extra.unlink()
    return poster
