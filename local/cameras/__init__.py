"""Live test cameras served on this machine: HLS, RTSP and SRT, each in its own child process.

Tests use them as real sources for the relay (and kill them with SIGKILL to make real outages);
``make up`` runs one as the demo camera (``python -m local.cameras hls|rtsp|srt --port N``).

Every camera is tiny by default (320x240, 15 fps, a keyframe a second, a clock burnt into the picture;
``picture=Picture(1920, 1080, 30, keyframe_seconds=2)`` for more) and
keeps its port across restarts, so a client can reconnect to the same URL::

    with RtspCamera() as cam:          # start() returns once the server really serves
        relay(cam.url)                 # rtsp://127.0.0.1:P/cam
        cam.kill()                     # SIGKILL: the client sees the drop
        cam.start()                    # same port again

Only the child imports GStreamer; importing this module is cheap. No camera outlives the process
that started it: the child leaves when its stdin (a pipe from the parent) closes, and a camera started
from the main thread is also SIGKILLed by the kernel when the parent dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar, Self

from local.cameras.picture import Picture

_REPO = Path(__file__).resolve().parents[2]
_LIVE: weakref.WeakSet[Camera] = weakref.WeakSet()


CODECS = ("h264", "h265", "mjpeg")  # what RtspCamera can send


class CameraError(RuntimeError):
    """A camera did not start, or did not answer a fault command."""


class Camera(ABC):
    """One live source in a child process. Subclasses say which kind and how to reach it."""

    kind: ClassVar[str]
    host = "127.0.0.1"

    def __init__(
        self,
        *,
        port: int = 0,
        audio: bool = False,
        start_timeout: float = 20.0,
        picture: Picture | None = None,
    ) -> None:
        self.picture = picture or Picture()  # the default: tiny, as every test wants
        self.port = port  # 0 until the first start picks one; then fixed for every restart
        self.audio = audio
        self.start_timeout = start_timeout
        self.startup_seconds: float | None = None  # how long the last start() took
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._buf = b""
        self._lock = threading.Lock()
        _LIVE.add(self)

    # ------------------------------------------------------------------ what subclasses provide
    @property
    @abstractmethod
    def url(self) -> str:
        """Where a client reads this camera (the port is known once started)."""

    def _args(self) -> list[str]:
        return []

    # ------------------------------------------------------------------------------- lifecycle
    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.alive and self._proc else None

    def start(self) -> Self:
        """Start the child and return once it serves (HLS: a playlist with a segment)."""
        with self._lock:
            if self.alive:
                return self
            began = time.monotonic()
            if self._log is None or self._log.closed:
                # One log across restarts, closed in __exit__, so log() can still read a dead child's.
                self._log = tempfile.TemporaryFile(prefix=f"reelay-camera-{self.kind}-")  # noqa: SIM115
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH")) if p)
            cmd = [sys.executable, "-m", "local.cameras", self.kind, "--control", "--port", str(self.port)]
            if self.audio:
                cmd.append("--audio")
            if threading.current_thread() is threading.main_thread():
                # Linux kills the child when the *thread* that forked it ends: safe only from the
                # main thread. From other threads the child still leaves when its stdin closes.
                cmd.append("--die-with-parent")
            if self.picture != Picture():
                cmd += self.picture.args()
            self._proc = subprocess.Popen(
                [*cmd, *self._args()],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log,
                env=env,
                cwd=_REPO,
            )
            self._buf = b""
            line = self._readline(self.start_timeout)
            if not line.startswith("READY "):
                self._terminate(signal.SIGKILL)
                raise CameraError(
                    f"{self.kind} camera did not start ({line or 'no answer'}): {self.log()[-2000:]}"
                )
            self.port = int(line.split()[1])
            self.startup_seconds = time.monotonic() - began
            return self

    def kill(self) -> None:
        """SIGKILL the child, as a crash would: no goodbye to clients."""
        with self._lock:
            self._terminate(signal.SIGKILL)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if the child has not left within ``timeout``."""
        with self._lock:
            self._terminate(signal.SIGTERM, timeout)

    def restart(self) -> Self:
        """Stop (if running) and start again on the same port."""
        self.stop()
        return self.start()

    def log(self) -> str:
        """What the child wrote to stderr (GStreamer warnings, errors)."""
        if self._log is None or self._log.closed:
            return ""
        # pread: the child shares this file's offset, so never move it.
        fd = self._log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")

    def _terminate(self, sig: int, timeout: float = 5.0) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if self._log is not None:
            self._log.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url if self.port else '(not started)'} alive={self.alive}>"

    # ----------------------------------------------------------------------------- the channel
    def _readline(self, timeout: float) -> str:
        """One line from the child's stdout, or "" on EOF or timeout (bounded, never blocks)."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return ""
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                return ""
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode().strip()

    def _command(self, line: str, timeout: float = 5.0) -> None:
        with self._lock:
            if not self.alive or self._proc is None or self._proc.stdin is None:
                raise CameraError(f"{self.kind} camera is not running")
            self._proc.stdin.write(line.encode() + b"\n")
            self._proc.stdin.flush()
            reply = self._readline(timeout)
        if reply != "ok":
            raise CameraError(f"{line!r}: {reply or 'no answer'}")

    def ping(self) -> None:
        self._command("ping")


class HlsCamera(Camera):
    """hlssink2 from a live test source, served over HTTP by the same child, with fault switches.

    ``segment_seconds`` is the target duration; ``window`` the number of segments in the playlist.
    A restart clears every fault and starts a fresh playlist (media sequence from 0)."""

    kind = "hls"

    def __init__(
        self,
        root: Path,
        *,
        port: int = 0,
        segment_seconds: int = 1,
        window: int = 6,
        audio: bool = False,
        start_timeout: float = 20.0,
        picture: Picture | None = None,
    ) -> None:
        super().__init__(port=port, audio=audio, start_timeout=start_timeout, picture=picture)
        self.root = Path(root)
        self.segment_seconds = segment_seconds
        self.window = window

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/live.m3u8"

    def _args(self) -> list[str]:
        return [
            "--root",
            str(self.root),
            "--segment-seconds",
            str(self.segment_seconds),
            "--window",
            str(self.window),
        ]

    def freeze_playlist(self) -> None:
        """Serve the playlist as it is now, forever: its media sequence stops advancing."""
        self._command("freeze")

    def fail_segments(self, status: int = 404) -> None:
        """Answer every segment request with ``status``; the playlist still updates."""
        self._command(f"fail {status}")

    def stall(self) -> None:
        """Accept connections and read requests, but send nothing back until heal()."""
        self._command("stall")

    def heal(self) -> None:
        """Undo every fault: live playlist, segments served, requests answered."""
        self._command("heal")


class RtspCamera(Camera):
    """gst-rtsp-server with one shared media at ``path``.

    ``codec``: "h264" (what the relay passes through), or "h265" or "mjpeg" (both need the relay's
    transcode path). Stalls and cuts come from ``local.faults.TcpFaultProxy``."""

    kind = "rtsp"

    def __init__(
        self,
        *,
        port: int = 0,
        path: str = "/cam",
        codec: str = "h264",
        audio: bool = False,
        start_timeout: float = 20.0,
        picture: Picture | None = None,
    ) -> None:
        if codec not in CODECS:
            raise ValueError(f"unknown codec {codec!r}: one of {', '.join(CODECS)}")
        if not path.startswith("/"):
            raise ValueError("path must start with /")
        super().__init__(port=port, audio=audio, start_timeout=start_timeout, picture=picture)
        self.path = path
        self.codec = codec

    @property
    def url(self) -> str:
        return f"rtsp://{self.host}:{self.port}{self.path}"

    def _args(self) -> list[str]:
        return ["--path", self.path, "--codec", self.codec]


class SrtCamera(Camera):
    """srtsink in listener mode sending MPEG-TS with H.264. Stalls come from ``UdpFaultProxy``."""

    kind = "srt"

    @property
    def url(self) -> str:
        return f"srt://{self.host}:{self.port}"


def _kill_all() -> None:
    # Last resort at interpreter exit (fixtures stop their cameras; this catches the rest).
    for cam in list(_LIVE):
        with contextlib.suppress(Exception):
            cam.kill()


atexit.register(_kill_all)

__all__ = ["Camera", "CameraError", "HlsCamera", "Picture", "RtspCamera", "SrtCamera"]
