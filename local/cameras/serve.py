"""What runs inside a camera's own process: the GStreamer pipeline and, for HLS, the HTTP server.

The parent (``local.cameras.Camera``) starts ``python -m local.cameras <kind> --control`` and talks to
it over stdin/stdout: the child prints ``READY <port>`` once it really serves, then answers each
command line (``freeze``, ``fail 404``, ``stall``, ``heal``, ``ping``) with ``ok`` or ``error <why>``.
Without ``--control`` the same code runs in the foreground as the demo camera of ``make up``.
"""

from __future__ import annotations

import ctypes
import http.server
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GLib", "2.0")
from gi.repository import GLib, Gst  # noqa: E402

from local.cameras.picture import Picture  # noqa: E402

DEFAULT_PICTURE = Picture()
WIDTH, HEIGHT, FPS = DEFAULT_PICTURE.width, DEFAULT_PICTURE.height, DEFAULT_PICTURE.fps
KEYFRAME_SECONDS, BITRATE_KBPS = DEFAULT_PICTURE.keyframe_seconds, DEFAULT_PICTURE.bitrate_kbps


def video_source(width: int = WIDTH, height: int = HEIGHT, fps: int = FPS) -> str:
    """A live test picture with the wall clock and the running time burnt in, so that every frame
    differs (a client that receives frames can tell new ones from repeats). I420, as browsers and KVS
    want."""
    return (
        "videotestsrc is-live=true pattern=smpte"
        f" ! video/x-raw,width={width},height={height},framerate={fps}/1"
        ' ! clockoverlay time-format="%H:%M:%S" halignment=right valignment=top font-desc="Sans 14"'
        ' ! timeoverlay halignment=left valignment=bottom font-desc="Sans 12"'
        " ! videoconvert ! video/x-raw,format=I420"
    )


def h264(fps: int = FPS, keyframe_seconds: int = KEYFRAME_SECONDS, bitrate_kbps: int = BITRATE_KBPS) -> str:
    """No B-frames (zerolatency), main profile, a keyframe every ``keyframe_seconds``."""
    return (
        f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps * keyframe_seconds}"
        f" bitrate={bitrate_kbps} ! video/x-h264,profile=main ! h264parse config-interval=-1"
    )


VIDEO = video_source()
H264 = h264()


def _picture_chain(picture: Picture) -> str:
    return (
        f"{video_source(picture.width, picture.height, picture.fps)}"
        f" ! {h264(picture.fps, picture.keyframe_seconds, picture.bitrate_kbps)}"
    )


AUDIO_AAC = "audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! avenc_aac bitrate=64000 ! aacparse"


def rtsp_video(codec: str, fps: int = FPS, keyframe_seconds: int = KEYFRAME_SECONDS,
               bitrate_kbps: int = BITRATE_KBPS) -> str:  # fmt: skip
    if codec == "h264":
        # Kept on purpose, as real GStreamer-based cameras send it: x264's sliced threads give two
        # slices a picture, and rtph264pay config-interval=-1 (1.22) repeats SPS/PPS before *each*
        # slice of a key frame, which a byte-stream parser takes for two access units. The relay must
        # cope (reelay.relay.pipelines.RTP_DEPAYLOADERS; tests/picture_check.py checks the picture).
        return f"{h264(fps, keyframe_seconds, bitrate_kbps)} ! rtph264pay name=pay0 pt=96 config-interval=-1"
    # H.265 and MJPEG: codecs the relay cannot pass through to KVS, so it must transcode. (MPEG-4
    # part 2 from avenc_mpeg4 was tried: gst-rtsp-server 1.22 sends only the preroll packets of any
    # avenc_* encoder, then nothing.)
    if codec == "h265":
        return (
            f"x265enc tune=zerolatency speed-preset=ultrafast key-int-max={fps * keyframe_seconds}"
            f" bitrate={bitrate_kbps} ! video/x-h265,profile=main ! h265parse config-interval=-1"
            " ! rtph265pay name=pay0 pt=96 config-interval=-1"
        )
    if codec == "mjpeg":
        return "jpegenc quality=70 ! rtpjpegpay name=pay0 pt=26"
    raise ValueError(f"unknown codec {codec!r}: one of h264, h265, mjpeg")


RTSP_VIDEO = {codec: rtsp_video(codec) for codec in ("h264", "h265", "mjpeg")}
RTSP_AUDIO = (
    "audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! alawenc ! rtppcmapay name=pay1 pt=8"
)


def hls_pipeline(
    root: Path, *, segment_seconds: int, window: int, audio: bool, picture: Picture = DEFAULT_PICTURE
) -> str:
    # Keep segments on disk well beyond the playlist window, so a frozen playlist still points at
    # files that exist (the freeze fault is about the playlist, not about missing segments).
    keep = window * 4
    desc = (
        f"{_picture_chain(picture)} ! hlssink2 name=sink location={root}/segment%05d.ts"
        f" playlist-location={root}/live.m3u8 target-duration={segment_seconds}"
        f" playlist-length={window} max-files={keep}"
    )
    if audio:
        desc += f" {AUDIO_AAC} ! sink.audio"
    return desc


def srt_pipeline(host: str, port: int, *, audio: bool, picture: Picture = DEFAULT_PICTURE) -> str:
    desc = (
        f"{_picture_chain(picture)} ! mpegtsmux name=mux alignment=7"
        f" ! srtsink mode=listener localaddress={host} localport={port} wait-for-connection=false"
        " latency=125 sync=true"
    )
    if audio:
        desc += f" {AUDIO_AAC} ! mux."
    return desc


def rtsp_launch(codec: str, *, audio: bool, picture: Picture = DEFAULT_PICTURE) -> str:
    if codec not in RTSP_VIDEO:
        raise ValueError(f"unknown codec {codec!r}: one of {', '.join(RTSP_VIDEO)}")
    p = picture
    video = rtsp_video(codec, p.fps, p.keyframe_seconds, p.bitrate_kbps)
    desc = f"{video_source(p.width, p.height, p.fps)} ! {video}"
    if audio:
        desc += f" {RTSP_AUDIO}"
    return f"( {desc} )"


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def udp_port_bound(port: int) -> bool:
    """Whether some socket on this machine is bound to UDP ``port`` (SRT listens on UDP)."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local = line.split()[1]
            if int(local.rsplit(":", 1)[1], 16) == port:
                return True
    return False


# ---------------------------------------------------------------------------------------------- HLS


class HlsFaults:
    """The HTTP server's fault switches. Set from the control thread, read by request threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.frozen_playlist: bytes | None = None
        self.segment_status: int | None = None
        self.flowing = threading.Event()
        self.flowing.set()
        self.closing = threading.Event()

    def heal(self) -> None:
        with self.lock:
            self.frozen_playlist = None
            self.segment_status = None
        self.flowing.set()


_SEGMENT = re.compile(r"^/(segment\d+\.ts)$")


def make_hls_handler(root: Path, faults: HlsFaults) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real HLS origins and souphttpsrc use it
        server_version = "ReelayCamera/1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            # Stall: the connection is open and the request read, but nothing comes back until heal.
            while not faults.flowing.wait(0.2):
                if faults.closing.is_set():
                    self.close_connection = True
                    return
            path = self.path.split("?", 1)[0]
            if path == "/live.m3u8":
                with faults.lock:
                    body = faults.frozen_playlist
                if body is None:
                    try:
                        body = (root / "live.m3u8").read_bytes()
                    except FileNotFoundError:
                        self.send_error(404)
                        return
                self._send(body, "application/vnd.apple.mpegurl")
                return
            m = _SEGMENT.match(path)
            if not m:
                self.send_error(404)
                return
            with faults.lock:
                status = faults.segment_status
            if status is not None:
                self.send_error(status)
                return
            try:
                body = (root / m.group(1)).read_bytes()
            except FileNotFoundError:
                self.send_error(404)
                return
            self._send(body, "video/mp2t")

        def _send(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.wfile.write(body)

    return Handler


class HlsHttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # a restarted camera binds the same port at once
    request_queue_size = 64


def playlist_has_segment(root: Path) -> bool:
    try:
        return "#EXTINF" in (root / "live.m3u8").read_text()
    except (FileNotFoundError, UnicodeDecodeError):
        return False


# ------------------------------------------------------------------------------------------- running


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies, so no camera outlives its test."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Runner:
    """One camera process: a GLib loop, a pipeline, optional HTTP server and a control channel."""

    def __init__(
        self, kind: str, *, host: str, port: int, control: bool, picture: Picture = DEFAULT_PICTURE
    ) -> None:
        self.kind = kind
        self.picture = picture
        self.host = host
        self.port = port
        self.control = control
        self.loop = GLib.MainLoop()
        self.pipeline: Gst.Element | None = None
        self.http: HlsHttpServer | None = None
        self.faults = HlsFaults()
        self.rtsp_server: object | None = None
        self.failed: str | None = None
        self.root: Path | None = None
        self.path = "/cam"

    # The pipeline's bus: any ERROR ends the camera (the parent sees it die and can restart it).
    def _watch(self, pipeline: Gst.Element) -> None:
        bus = pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self._on_error)

    def _on_error(self, _bus: Gst.Bus, msg: Gst.Message) -> None:
        err, debug = msg.parse_error()
        self.failed = f"{msg.src.get_name()}: {err.message} ({debug})"
        print(f"camera: pipeline error: {self.failed}", file=sys.stderr, flush=True)
        self.loop.quit()

    def start_hls(self, root: Path, *, segment_seconds: int, window: int, audio: bool) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        for old in [*root.glob("segment*.ts"), root / "live.m3u8"]:
            old.unlink(missing_ok=True)  # a restart must not serve the previous run's playlist
        self.pipeline = Gst.parse_launch(
            hls_pipeline(
                root, segment_seconds=segment_seconds, window=window, audio=audio, picture=self.picture
            )
        )
        self._watch(self.pipeline)
        self.http = HlsHttpServer((self.host, self.port), make_hls_handler(root, self.faults))
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        self.pipeline.set_state(Gst.State.PLAYING)
        self._ready_when(lambda: playlist_has_segment(root), what="the first HLS segment")

    def start_rtsp(self, *, path: str, codec: str, audio: bool) -> None:
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GstRtspServer

        server = GstRtspServer.RTSPServer()
        server.set_address(self.host)
        server.set_service(str(self.port))
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(rtsp_launch(codec, audio=audio, picture=self.picture))
        factory.set_shared(True)  # one encoder however many clients (tests open several)
        server.get_mount_points().add_factory(path, factory)
        self.path = path
        if server.attach(None) == 0:
            raise RuntimeError(f"RTSP server could not listen on {self.host}:{self.port}")
        self.port = server.get_bound_port()
        self.rtsp_server = server
        self._ready_when(lambda: True, what="the RTSP listener")

    def start_srt(self, *, audio: bool) -> None:
        if self.port == 0:
            self.port = free_port(socket.SOCK_DGRAM, self.host)
        self.pipeline = Gst.parse_launch(
            srt_pipeline(self.host, self.port, audio=audio, picture=self.picture)
        )
        self._watch(self.pipeline)
        self.pipeline.set_state(Gst.State.PLAYING)
        port = self.port
        self._ready_when(lambda: udp_port_bound(port), what="the SRT listener")

    def _ready_when(self, check: Callable[[], bool], *, what: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout

        def poll() -> bool:
            if check():
                self._announce()
                return False
            if time.monotonic() > deadline:
                self.failed = f"timed out waiting for {what}"
                print(f"camera: {self.failed}", file=sys.stderr, flush=True)
                self.loop.quit()
                return False
            return True

        GLib.timeout_add(20, poll)

    def _announce(self) -> None:
        if self.control:
            print(f"READY {self.port}", flush=True)
            threading.Thread(target=self._control_loop, daemon=True).start()
        else:
            print(f"camera: serving {self.url} (pid {os.getpid()})", file=sys.stderr, flush=True)

    @property
    def url(self) -> str:
        where = f"{self.host}:{self.port}"
        return {
            "hls": f"http://{where}/live.m3u8",
            "rtsp": f"rtsp://{where}{self.path}",
            "srt": f"srt://{where}",
        }[self.kind]

    def _control_loop(self) -> None:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            try:
                reply = self._command(words)
            except Exception as e:  # a bad command must not kill the camera
                reply = f"error {e}"
            print(reply, flush=True)
        # stdin closed: the parent has gone (or stopped us). Leave.
        GLib.idle_add(self.loop.quit)

    def _command(self, words: list[str]) -> str:
        cmd = words[0]
        if cmd == "ping":
            return "ok"
        if self.kind != "hls":
            return f"error {cmd!r} is an HLS fault; use local.faults for {self.kind}"
        if cmd == "freeze":
            assert self.root is not None
            body = (self.root / "live.m3u8").read_bytes()
            with self.faults.lock:
                self.faults.frozen_playlist = body
            return "ok"
        if cmd == "fail":
            status = int(words[1]) if len(words) > 1 else 404
            if not 400 <= status <= 599:
                return "error status must be 4xx or 5xx"
            with self.faults.lock:
                self.faults.segment_status = status
            return "ok"
        if cmd == "stall":
            self.faults.flowing.clear()
            return "ok"
        if cmd == "heal":
            self.faults.heal()
            return "ok"
        return f"error unknown command {cmd!r}"

    def run(self) -> int:
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, self._quit)
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, self._quit)
        try:
            self.loop.run()
        finally:
            self.faults.closing.set()
            if self.pipeline is not None:
                self.pipeline.set_state(Gst.State.NULL)
            if self.http is not None:
                self.http.shutdown()
                self.http.server_close()
        return 1 if self.failed else 0

    def _quit(self) -> bool:
        self.loop.quit()
        return False


def serve(
    kind: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    control: bool = False,
    die_with_parent: bool = False,
    root: Path | None = None,
    segment_seconds: int = 1,
    window: int = 6,
    path: str = "/cam",
    codec: str = "h264",
    audio: bool = False,
    picture: Picture = DEFAULT_PICTURE,
) -> int:
    """Run one camera until SIGTERM/SIGINT (or, under ``control``, until stdin closes)."""
    if die_with_parent:
        _die_with_parent()
    Gst.init(None)
    runner = Runner(kind, host=host, port=port, control=control, picture=picture)
    if kind == "hls":
        if root is None:
            raise ValueError("an HLS camera needs a root directory")
        runner.start_hls(root, segment_seconds=segment_seconds, window=window, audio=audio)
    elif kind == "rtsp":
        runner.start_rtsp(path=path, codec=codec, audio=audio)
    elif kind == "srt":
        runner.start_srt(audio=audio)
    else:
        raise ValueError(f"unknown camera kind {kind!r}")
    return runner.run()
