"""Live cameras, fault proxies and a probing GStreamer client, for tests that need a real source.

Import the fixtures you use into a test module (``from tests.camera_fixtures import rtsp_camera``) or a
conftest. Every fixture stops its camera or proxy on the way out, pass or fail, and the camera's own
process dies with the test process (PR_SET_PDEATHSIG), so nothing is left running.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gi
import pytest

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

from local.cameras import HlsCamera, RtspCamera, SrtCamera  # noqa: E402
from local.faults import TcpFaultProxy, UdpFaultProxy  # noqa: E402

Gst.init(None)

# --------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def hls_camera(tmp_path: Path) -> Iterator[HlsCamera]:
    with HlsCamera(tmp_path / "hls") as cam:
        yield cam


@pytest.fixture
def rtsp_camera() -> Iterator[RtspCamera]:
    with RtspCamera() as cam:
        yield cam


@pytest.fixture
def rtsp_h265_camera() -> Iterator[RtspCamera]:
    """An RTSP camera sending H.265, which the relay must transcode."""
    with RtspCamera(codec="h265") as cam:
        yield cam


@pytest.fixture
def rtsp_mjpeg_camera() -> Iterator[RtspCamera]:
    """An RTSP camera sending Motion JPEG (RTP/JPEG), which the relay must transcode."""
    with RtspCamera(codec="mjpeg") as cam:
        yield cam


@pytest.fixture
def srt_camera() -> Iterator[SrtCamera]:
    with SrtCamera() as cam:
        yield cam


@pytest.fixture
def rtsp_proxy(rtsp_camera: RtspCamera) -> Iterator[TcpFaultProxy]:
    """A TCP fault proxy in front of ``rtsp_camera``: ``rtsp_proxy.url("rtsp", "/cam")``."""
    with TcpFaultProxy(rtsp_camera.port) as proxy:
        yield proxy


@pytest.fixture
def hls_proxy(hls_camera: HlsCamera) -> Iterator[TcpFaultProxy]:
    """A TCP fault proxy in front of ``hls_camera``: ``hls_proxy.url("http", "/live.m3u8")``."""
    with TcpFaultProxy(hls_camera.port) as proxy:
        yield proxy


@pytest.fixture
def srt_proxy(srt_camera: SrtCamera) -> Iterator[UdpFaultProxy]:
    """A UDP fault proxy in front of ``srt_camera``: ``srt_proxy.url()``."""
    with UdpFaultProxy(srt_camera.port) as proxy:
        yield proxy


# ------------------------------------------------------------------------------ a probing client


def hls_client(url: str) -> str:
    # The seed's source: souphttpsrc ! hlsdemux ! decodebin.
    return f"souphttpsrc location={url} ! hlsdemux ! decodebin ! fakesink name=sink sync=false"


def rtsp_client(url: str) -> str:
    return f"rtspsrc location={url} protocols=tcp latency=200 ! decodebin ! fakesink name=sink sync=false"


def srt_client(url: str) -> str:
    return f"srtsrc uri={url} latency=125 ! tsdemux ! h264parse ! avdec_h264 ! fakesink name=sink sync=false"


@dataclass(frozen=True)
class BusEvent:
    at: float  # seconds since the client started
    kind: str  # "error", "warning" or "eos"
    source: str
    text: str

    def __str__(self) -> str:
        return f"{self.at:6.2f}s {self.kind.upper()} from {self.source}: {self.text}"


class GstClient:
    """A real client pipeline whose sink is named ``sink``: counts the buffers that reach it and
    records ERROR, WARNING and EOS bus messages with their times. Every wait is bounded."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.pipeline = Gst.parse_launch(description)
        self.bus = self.pipeline.get_bus()
        self.events: list[BusEvent] = []
        self.buffers = 0
        self.last_buffer_at: float | None = None
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        sink = self.pipeline.get_by_name("sink")
        sink.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, self._on_buffer)

    def _on_buffer(self, _pad: Gst.Pad, _info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        with self._lock:
            self.buffers += 1
            self.last_buffer_at = time.monotonic()
        return Gst.PadProbeReturn.OK

    def start(self) -> GstClient:
        self._t0 = time.monotonic()
        self.pipeline.set_state(Gst.State.PLAYING)
        return self

    def stop(self) -> None:
        self.pipeline.set_state(Gst.State.NULL)

    def __enter__(self) -> GstClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def count(self) -> int:
        with self._lock:
            return self.buffers

    def poll(self, timeout: float = 0.0) -> None:
        """Move the bus's ERROR/WARNING/EOS messages into ``events``, waiting up to ``timeout``."""
        mask = Gst.MessageType.ERROR | Gst.MessageType.WARNING | Gst.MessageType.EOS
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.0, deadline - time.monotonic())
            msg = self.bus.timed_pop_filtered(int(left * Gst.SECOND), mask)
            if msg is None:
                return
            at = self.elapsed
            src = msg.src.get_name() if msg.src else "?"
            if msg.type == Gst.MessageType.ERROR:
                err, debug = msg.parse_error()
                self.events.append(BusEvent(at, "error", src, f"{err.message} | {debug}"))
            elif msg.type == Gst.MessageType.WARNING:
                err, debug = msg.parse_warning()
                self.events.append(BusEvent(at, "warning", src, f"{err.message} | {debug}"))
            else:
                self.events.append(BusEvent(at, "eos", src, ""))
            timeout = 0.0  # drain what is queued, without waiting again
            deadline = time.monotonic()

    def wait_buffers(self, n: int, timeout: float) -> bool:
        """Whether ``n`` more buffers reach the sink within ``timeout`` seconds."""
        target = self.count() + n
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll(0.05)
            if self.count() >= target:
                return True
        return False

    def wait_event(self, kinds: set[str], timeout: float, *, since: float = 0.0) -> BusEvent | None:
        """The first recorded event of one of ``kinds`` at or after ``since``, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events:
                if ev.kind in kinds and ev.at >= since:
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.poll(min(left, 0.1))

    def quiet_for(self, seconds: float, timeout: float) -> bool:
        """Whether no buffer reaches the sink for ``seconds`` in a row, within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll(0.05)
            with self._lock:
                last = self.last_buffer_at
            if time.monotonic() - (last or self._t0) >= seconds:
                return True
        return False

    def sink_caps(self) -> Gst.Structure:
        """The caps now on the sink's pad (after the first buffer), as a structure."""
        caps = self.pipeline.get_by_name("sink").get_static_pad("sink").get_current_caps()
        if caps is None:
            raise AssertionError("the sink has no caps yet")
        return caps.get_structure(0)

    def events_since(self, since: float) -> list[BusEvent]:
        self.poll()
        return [ev for ev in self.events if ev.at >= since]


# ------------------------------------------------------------------------------------ HLS helpers


def fetch(url: str, timeout: float = 3.0) -> tuple[int, bytes]:
    """GET ``url``: (status, body). Error statuses come back as values, not exceptions."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def media_sequence(playlist: bytes) -> int:
    m = re.search(rb"#EXT-X-MEDIA-SEQUENCE:(\d+)", playlist)
    if not m:
        raise ValueError("no EXT-X-MEDIA-SEQUENCE in the playlist")
    return int(m.group(1))


def segment_names(playlist: bytes) -> list[str]:
    return [line.decode() for line in playlist.splitlines() if line and not line.startswith(b"#")]
