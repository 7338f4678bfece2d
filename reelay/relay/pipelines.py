"""The relay's GStreamer pipeline: one source (HLS, RTSP or SRT), one video branch, one sink.

    source ─ parsebin ─┬─ H.264, passthrough: h264parse ─ h264timestamper ───────────┐
                       ├─ other codec / transcode: decodebin ─ x264enc ─ h264parse ──┼─ avc/au ─ queue ─ sink
                       └─ audio and anything else: fakesink

RTP depayloaders give H.264 a PTS but no DTS, and kvssink then invents DTS values far from the PTS
and sends nothing: h264timestamper computes the DTS from the stream itself.
The sink is whatever ``make_sink`` builds: kvssink in production, a recorder or a fakesink in tests.
kvssink takes its codec data once per element instance, so every rebuild builds a new sink too.
Audio is not relayed: the KVS stream carries one H.264 track.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from reelay.media._gst import Gst
from reelay.media.runner import FlowMeter

log = logging.getLogger(__name__)

VIDEO_MODES = ("auto", "passthrough", "transcode")
RELAY_CAPS = "video/x-h264,stream-format=avc,alignment=au"


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


def _make(factory: str, name: str | None = None, **props: object) -> Gst.Element:
    element = Gst.ElementFactory.make(factory, name)
    if element is None:
        raise RuntimeError(f"the GStreamer element {factory!r} is not installed")
    for key, value in props.items():
        element.set_property(key.rstrip("_").replace("_", "-"), value)
    return element


class RelayPipeline:
    """Builds the pipeline for ``source`` into ``make_sink()``. ``meter`` counts what reaches the sink."""

    def __init__(
        self,
        source: SourceSpec,
        make_sink: Callable[[], Gst.Element],
        *,
        on_problem: Callable[[str], None] = lambda _reason: None,
    ) -> None:
        self.source = source
        self.meter = FlowMeter()
        self.on_problem = on_problem  # a permanent configuration problem, found once caps are known
        self.pipeline = Gst.Pipeline.new("relay")
        self.video_linked = False
        self.codec: str | None = None

        self.queue = _make(
            "queue", "to-sink", max_size_buffers=0, max_size_bytes=0, max_size_time=4 * Gst.SECOND
        )
        self.sink = make_sink()
        self.pipeline.add(self.queue)
        self.pipeline.add(self.sink)
        # kvssink has request pads for audio and video: ask for the video one by name.
        sink_pad = self.sink.get_static_pad("sink") or self.sink.request_pad_simple("video_%u")
        if sink_pad is None or self.queue.get_static_pad("src").link(sink_pad) != Gst.PadLinkReturn.OK:
            raise RuntimeError("the sink does not accept H.264 (avc, au)")
        self.meter.attach(self.queue.get_static_pad("sink"))

        self.parse = _make("parsebin", "parse")
        self.pipeline.add(self.parse)
        self.parse.connect("pad-added", self._on_parsed_pad)
        self._add_source()

    # --- sources ------------------------------------------------------------------------------
    def _add_source(self) -> None:
        timeout_us = int(self.source.connect_timeout_seconds * 1_000_000)
        protocol = self.source.protocol
        if protocol == "rtsp":
            # TCP interleaved: one connection, no UDP ports to open, and a broken link shows as EOF.
            src = _make("rtspsrc", "source", location=self.source.url, protocols=4, latency=200,
                        tcp_timeout=timeout_us, do_retransmission=False)  # fmt: skip
            src.connect("pad-added", lambda _s, pad: self._link_to(pad, self.parse))
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
            demux.connect("pad-added", lambda _d, pad: self._link_to(pad, self.parse))

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
        if not name.startswith("video/") or self.video_linked:
            self._discard(pad)
            return
        self.video_linked = True
        self.codec = name
        mode = self.source.video
        if name == "video/x-h264" and mode != "transcode":
            log.info("relaying %s without re-encoding", name)
            chain = [_make("h264parse", config_interval=-1), _make("h264timestamper")]
        elif mode == "passthrough":
            self.on_problem(
                f"the source's video is {name.removeprefix('video/x-')}, which cannot be relayed without "
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

    def _append_chain(self, pad: Gst.Pad, chain: list[Gst.Element]) -> None:
        for element in chain:
            self.pipeline.add(element)
        previous: Gst.Element | None = None
        for element in chain:
            if previous is not None:
                if previous.get_factory().get_name() == "decodebin":
                    previous.connect("pad-added", _link_dynamic(element))
                else:
                    previous.link(element)
            previous = element
        assert previous is not None
        previous.link(self.queue)
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
