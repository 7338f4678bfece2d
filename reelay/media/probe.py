"""Probe an uploaded file: what it holds and whether it can be transcoded at all.

Everything a user can get wrong about the file (empty, not media, cut off, no picture) becomes a
``MediaError`` whose message is shown to them as the failure reason, so it says what is wrong in plain words.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from reelay.errors import MediaError
from reelay.media._gst import GLib, Gst, GstBase, ensure_init
from reelay.media.runner import PipelineFailed, PipelineRunner


@dataclass(frozen=True)
class MediaInfo:
    duration_seconds: float | None
    has_video: bool
    has_audio: bool
    width: int  # display size, after pixel aspect ratio and rotation are applied
    height: int
    rotation: int  # 0/90/180/270 clockwise, from the orientation tag
    fps: float | None
    variable_frame_rate: bool
    video_codec: str | None
    audio_codec: str | None
    container: str | None
    # The orientation tag also mirrors the picture ("flip-rotate-N"): the transcode must turn it even at 0.
    mirrored: bool = False


_CONTAINERS = {
    "video/quicktime": "mp4",
    "video/x-matroska": "mkv",
    "video/webm": "webm",
    "video/mpegts": "ts",
    "video/x-msvideo": "avi",
    "video/x-flv": "flv",
    "application/ogg": "ogg",
    "video/mpeg": "mpeg",
    "video/x-ms-asf": "asf",
    "audio/x-m4a": "m4a",
    "image/jpeg": "jpeg",
    "image/png": "png",
}
_VIDEO_CODECS = {
    "video/x-h264": "h264",
    "video/x-h265": "hevc",
    "video/x-vp8": "vp8",
    "video/x-vp9": "vp9",
    "video/x-av1": "av1",
    "video/x-theora": "theora",
    "video/x-prores": "prores",
    "video/x-divx": "mpeg4",
    "video/x-xvid": "mpeg4",
    "image/jpeg": "mjpeg",
    "video/x-raw": "rawvideo",
}
_AUDIO_CODECS = {
    "audio/x-opus": "opus",
    "audio/x-vorbis": "vorbis",
    "audio/x-ac3": "ac3",
    "audio/x-eac3": "eac3",
    "audio/x-flac": "flac",
    "audio/x-raw": "pcm",
    "audio/x-alaw": "pcm_alaw",
    "audio/x-mulaw": "pcm_mulaw",
}


def _codec_name(caps: Gst.Caps | None, table: dict[str, str]) -> str | None:
    if caps is None or caps.get_size() == 0:
        return None
    s = caps.get_structure(0)
    name = s.get_name()
    if name == "video/mpeg":
        ok, version = s.get_int("mpegversion")
        return {1: "mpeg1video", 2: "mpeg2video", 4: "mpeg4"}.get(version if ok else 0, "mpegvideo")
    if name == "audio/mpeg":
        ok, version = s.get_int("mpegversion")
        if ok and version in (2, 4):
            return "aac"
        ok, layer = s.get_int("layer")
        return f"mp{layer}" if ok else "mpegaudio"
    return table.get(name, name.split("/", 1)[-1].removeprefix("x-"))


def _container_name(caps: Gst.Caps | None) -> str | None:
    if caps is None or caps.get_size() == 0:
        return None
    s = caps.get_structure(0)
    name = s.get_name()
    if name == "video/quicktime" and s.get_string("variant") == "apple":
        return "mov"
    return _CONTAINERS.get(name, name.split("/", 1)[-1].removeprefix("x-"))


def _orientation(tags: Gst.TagList | None) -> str:
    if tags is None:
        return ""
    ok, orientation = tags.get_string(Gst.TAG_IMAGE_ORIENTATION)
    return orientation if ok and orientation else ""


def _rotation(tags: Gst.TagList | None) -> int:
    m = re.search(r"rotate-(90|180|270)", _orientation(tags))
    return int(m.group(1)) if m else 0


def _reason_for(err: GLib.Error) -> str:
    """Turn a GStreamer error into a sentence for the uploader (GStreamer's own text goes to the logs)."""
    if err.matches(Gst.StreamError.quark(), Gst.StreamError.WRONG_TYPE) or err.matches(
        Gst.StreamError.quark(), Gst.StreamError.TYPE_NOT_FOUND
    ):
        return "not a recognised video file"
    if err.matches(Gst.StreamError.quark(), Gst.StreamError.CODEC_NOT_FOUND):
        return "the file uses a codec Reelay cannot decode"
    if err.domain == GLib.quark_to_string(Gst.ResourceError.quark()):
        return "the file could not be read"
    return "the file is truncated or corrupt"


def _container_caps(path: Path) -> Gst.Caps | None:
    with path.open("rb") as f:
        head = f.read(64 * 1024)
    caps, _probability = GstBase.type_find_helper_for_data(None, head)
    return caps


@dataclass
class _Stream:
    caps: Gst.Caps
    tags: Gst.TagList | None = None


class _Prober:
    """filesrc ! parsebin, each parsed stream into a fakesink, prerolled to PAUSED.

    Parsed (not decoded) caps name the codecs and sizes; tag events carry the orientation. This replaces
    GstDiscoverer, whose synchronous mode on 1.22 sometimes hangs until its timeout after an error.
    """

    def __init__(self, path: Path) -> None:
        self.container: Gst.Caps | None = None
        self.streams: list[_Stream] = []
        self.lock = threading.Lock()
        self.pipeline = Gst.Pipeline.new("probe")
        src = Gst.ElementFactory.make("filesrc")
        src.set_property("location", str(path))
        parse = Gst.ElementFactory.make("parsebin")
        for el in (src, parse):
            self.pipeline.add(el)
        src.link(parse)
        self.container = _container_caps(path)
        self.demuxers: list[Gst.Element] = []
        self.pipeline.connect("deep-element-added", self._on_element)
        parse.connect("pad-added", self._on_pad)

    def _on_element(self, _bin: Gst.Bin, _sub: Gst.Bin, element: Gst.Element) -> None:
        factory = element.get_factory()
        if factory is not None and "Demux" in (factory.get_klass() or ""):
            with self.lock:
                self.demuxers.append(element)

    def _demuxer_gave_up(self) -> bool:
        # parsebin drops errors that its new demuxer posts while parsebin is still starting it, so a
        # file that fails at once (no index) can leave the pipeline waiting forever. A demuxer whose
        # streaming task has paused without exposing any stream has given up.
        with self.lock:
            if self.streams:
                return False
            demuxers = list(self.demuxers)
        for demux in demuxers:
            pad = demux.get_static_pad("sink")
            if pad is not None and pad.get_task_state() == Gst.TaskState.PAUSED:
                return True
        return False

    def _on_pad(self, _parse: Gst.Element, pad: Gst.Pad) -> None:
        stream = _Stream(caps=pad.get_current_caps() or pad.query_caps(None))
        with self.lock:
            self.streams.append(stream)
        sink = Gst.ElementFactory.make("fakesink")
        sink.set_property("sync", False)
        sink_pad = sink.get_static_pad("sink")

        def on_event(_pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
            event = info.get_event()
            if event.type == Gst.EventType.CAPS:
                stream.caps = event.parse_caps()
            elif event.type == Gst.EventType.TAG:
                tags = event.parse_tag()
                stream.tags = (
                    tags if stream.tags is None else stream.tags.merge(tags, Gst.TagMergeMode.REPLACE)
                )
            return Gst.PadProbeReturn.OK

        sink_pad.add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, on_event)
        # A queue per stream: the demuxer's one thread would otherwise block on the first prerolled sink.
        queue = Gst.ElementFactory.make("queue")
        self.pipeline.add(queue)
        self.pipeline.add(sink)
        queue.link(sink)
        sink.sync_state_with_parent()
        queue.sync_state_with_parent()
        pad.link(queue.get_static_pad("sink"))

    def run(self, timeout_seconds: float) -> float | None:
        """Preroll; returns the duration in seconds (None if unknown). Raises MediaError."""
        with PipelineRunner(self.pipeline) as runner:
            try:
                # EOS before preroll: a stream too short to preroll is still described.
                runner.preroll(timeout_seconds, still_hopeful=lambda: not self._demuxer_gave_up())
            except PipelineFailed as exc:
                raise MediaError(
                    _reason_for(exc.error)
                    if exc.error
                    else "the file could not be analysed; it may be corrupt",
                    detail=exc.error.message if exc.error else str(exc),
                ) from None
            except TimeoutError:
                if self._demuxer_gave_up():
                    raise MediaError("the file is truncated or corrupt (no playable streams found)") from None
                raise MediaError(
                    f"the file could not be analysed within {timeout_seconds:g} s; it may be corrupt"
                ) from None
            ok, duration = self.pipeline.query_duration(Gst.Format.TIME)
            return duration / Gst.SECOND if ok and duration > 0 else None


def _decodable(caps: Gst.Caps) -> bool:
    factories = Gst.ElementFactory.list_get_elements(Gst.ELEMENT_FACTORY_TYPE_DECODER, Gst.Rank.MARGINAL)
    return bool(Gst.ElementFactory.list_filter(factories, caps, Gst.PadDirection.SINK, False))


def _int_field(s: Gst.Structure, name: str) -> int:
    ok, value = s.get_int(name)
    return value if ok else 0


def _fraction_field(s: Gst.Structure, name: str) -> tuple[int, int] | None:
    ok, num, den = s.get_fraction(name)
    return (num, den) if ok else None


def probe(path: Path, *, timeout_seconds: float = 30) -> MediaInfo:
    """Describe ``path``. Raises MediaError with a human-readable reason when it cannot be transcoded.

    A missing file is not the uploader's fault, so it raises FileNotFoundError (retried) instead.
    """
    path = Path(path)
    size = path.stat().st_size  # FileNotFoundError propagates
    if size == 0:
        raise MediaError("the file is empty (0 bytes): the upload may not have completed")
    ensure_init()
    prober = _Prober(path)
    duration = prober.run(timeout_seconds)
    with prober.lock:
        streams = list(prober.streams)

    def kind(stream: _Stream) -> str:
        return stream.caps.get_structure(0).get_name() if stream.caps and stream.caps.get_size() else ""

    videos = [st for st in streams if kind(st).startswith(("video/", "image/"))]
    audios = [st for st in streams if kind(st).startswith("audio/")]
    container = _container_name(prober.container)
    if not videos:
        if audios:
            raise MediaError("the file has no video stream (audio-only files are not supported)")
        raise MediaError("the file has no video stream")
    video = videos[0]
    vs = video.caps.get_structure(0)
    if vs.get_name().startswith("image/") and (container is None or container in ("jpeg", "png")):
        raise MediaError("the file is a still image, not a video")
    if not _decodable(video.caps):
        raise MediaError(f"the video codec ({vs.get_name()}) cannot be decoded by Reelay")

    width, height = _int_field(vs, "width"), _int_field(vs, "height")
    if width <= 0 or height <= 0:
        raise MediaError("the video stream has no picture size; the file is probably corrupt")
    par = _fraction_field(vs, "pixel-aspect-ratio")
    if par and par[0] > 0 and par[1] > 0 and par[0] != par[1]:  # anamorphic: display width follows the PAR
        width = round(width * par[0] / par[1])
    rotation = _rotation(video.tags)
    if rotation in (90, 270):
        width, height = height, width

    rate = _fraction_field(vs, "framerate")
    fps = rate[0] / rate[1] if rate and rate[0] > 0 and rate[1] > 0 else None
    audio = audios[0] if audios and _decodable(audios[0].caps) else None

    return MediaInfo(
        duration_seconds=duration,
        has_video=True,
        has_audio=audio is not None,
        width=width,
        height=height,
        rotation=rotation,
        mirrored=_orientation(video.tags).startswith("flip-"),
        fps=fps,
        # A 0/1 frame rate is how demuxers say "variable"; the pipeline makes the output constant anyway.
        variable_frame_rate=fps is None,
        video_codec=_codec_name(video.caps, _VIDEO_CODECS),
        audio_codec=_codec_name(audio.caps, _AUDIO_CODECS) if audio else None,
        container=container,
    )
