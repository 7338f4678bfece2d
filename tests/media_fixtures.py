"""Tiny generated media clips for tests. Nothing is downloaded: ffmpeg's lavfi sources make everything.

Every helper writes ``path`` and returns it. Clips are small (a few seconds, 640x360 by default) so the
media tests stay fast on two shared cores.
"""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
FFPROBE = shutil.which("ffprobe") or "ffprobe"

_CONTAINER_ARGS = {
    "mp4": ["-f", "mp4"],
    "mov": ["-f", "mov"],
    "mkv": ["-f", "matroska"],
    "ts": ["-f", "mpegts"],
    "webm": ["-f", "webm"],
}
# A rotation tag means "turn the stored picture this many degrees clockwise to display it"; the stored
# pixels are turned the other way so a player that honours the tag shows the clip upright.
_UNROTATE = {90: "transpose=cclock", 180: "hflip,vflip", 270: "transpose=clock"}


def _run(args: list[str]) -> None:
    proc = subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {proc.stderr.strip()}")


def make_clip(
    path: Path,
    *,
    seconds: float = 3,
    width: int = 640,
    height: int = 360,
    fps: int | str = 25,
    audio: bool = True,
    video: bool = True,
    rotate: int | None = None,
    container: str = "mp4",
    pattern: str = "testsrc",
    pix_fmt: str = "yuv420p",
) -> Path:
    """A clip of moving test pattern plus a 440 Hz tone.

    ``width``/``height`` are the DISPLAY size: with ``rotate`` (90/180/270) the stored frames are turned
    the other way and the container carries the rotation tag, as phones do for portrait video.
    ``pattern="split"`` paints the top half red and the bottom half blue (to check orientation).
    ``fps`` may be a fraction as text, e.g. ``"30000/1001"`` for NTSC's 29.97.
    Odd sizes are encoded 4:4:4 because 4:2:0 H.264 needs even dimensions.
    """
    if not video and not audio:
        raise ValueError("a clip needs video or audio")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if container not in _CONTAINER_ARGS:
        raise ValueError(f"unknown container {container!r}")
    if rotate not in (None, 0, 90, 180, 270):
        raise ValueError("rotate must be 0, 90, 180 or 270")
    args: list[str] = []
    if video:
        size = f"{width}x{height}"
        if pattern == "split":
            src = f"color=c=red:s={size}:r={fps}:d={seconds}"
            vf = ["drawbox=x=0:y=ih/2:w=iw:h=ih/2:color=blue:t=fill"]
        elif pattern == "testsrc":
            src = f"testsrc2=s={size}:r={fps}:d={seconds}"
            vf = []
            if width % 2 or height % 2:  # testsrc2 rounds odd sizes down to even
                vf.append(f"scale={width}:{height}")
        else:
            raise ValueError(f"unknown pattern {pattern!r}")
        args += ["-f", "lavfi", "-i", src]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    if video:
        if rotate in _UNROTATE:
            vf.append(_UNROTATE[rotate])
        if width % 2 or height % 2:
            pix_fmt = "yuv444p"
        if vf:
            args += ["-vf", ",".join(vf)]
        codec = "libvpx" if container == "webm" else "libx264"
        args += ["-c:v", codec, "-pix_fmt", pix_fmt, "-g", str(round(Fraction(fps)))]
        if codec == "libx264":
            args += ["-preset", "ultrafast"]
    if audio:
        args += ["-c:a", "libopus" if container == "webm" else "aac", "-b:a", "96k"]
    if not rotate:
        _run([*args, *_CONTAINER_ARGS[container], str(path)])
        return path
    # ffmpeg 5.1 writes the rotation tag only when remuxing, so encode first, then remux with the tag.
    # Its remuxer stores "rotate=N" as N degrees counter-clockwise (players, ffmpeg and GStreamer alike,
    # read that back), so the clockwise turn is written as 360 - N.
    tmp = path.with_name(path.stem + ".unrotated" + path.suffix)
    _run([*args, *_CONTAINER_ARGS[container], str(tmp)])
    try:
        _run(
            [
                "-i",
                str(tmp),
                "-c",
                "copy",
                "-metadata:s:v:0",
                f"rotate={(360 - rotate) % 360}",
                *_CONTAINER_ARGS[container],
                str(path),
            ]
        )
    finally:
        tmp.unlink(missing_ok=True)
    return path


def make_audio_only(path: Path, *, seconds: float = 3) -> Path:
    """An AAC-in-MP4 file with no video stream (e.g. a voice memo renamed .mp4)."""
    return make_clip(path, seconds=seconds, video=False, audio=True)


def make_video_only(path: Path, *, seconds: float = 3, width: int = 640, height: int = 360) -> Path:
    return make_clip(path, seconds=seconds, width=width, height=height, audio=False)


def make_vfr(
    path: Path, *, seconds: float = 4, width: int = 640, height: int = 360, audio: bool = True
) -> Path:
    """Variable frame rate: 25 fps for the first second, then only every third frame (about 8 fps)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = ["-f", "lavfi", "-i", f"testsrc2=s={width}x{height}:r=25:d={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    args += [
        "-vf",
        r"select='lt(t\,1)+not(mod(n\,3))'",
        "-fps_mode",
        "vfr",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
    ]
    if audio:
        args += ["-c:a", "aac", "-b:a", "96k"]
    _run([*args, "-f", "mp4", str(path)])
    return path


def make_text_file_named_mp4(path: Path) -> Path:
    """A plain text file with a video extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("This is not a video. It is a shopping list: eggs, milk, bread.\n" * 40)
    return path


def make_zero_byte(path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def make_truncated(
    path: Path, *, keep_fraction: float = 0.5, seconds: float = 3, faststart: bool = False
) -> Path:
    """An MP4 cut off part way, as an interrupted upload leaves it.

    By default the index (moov) sits at the end and is lost; with ``faststart`` the index is intact at the
    front and the media data simply stops part way.
    """
    path = Path(path)
    full = path.with_name(path.stem + ".full" + path.suffix)
    make_clip(full, seconds=seconds)
    if faststart:
        moved = path.with_name(path.stem + ".faststart" + path.suffix)
        _run(["-i", str(full), "-c", "copy", "-movflags", "+faststart", str(moved)])
        moved.replace(full)
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: max(1, int(len(data) * keep_fraction))])
    return path


def ffprobe_json(path: Path, *extra: str) -> dict:
    """ffprobe's JSON for ``path`` (streams and format unless ``extra`` says otherwise)."""
    import json

    args = list(extra) or ["-show_streams", "-show_format"]
    proc = subprocess.run(
        [FFPROBE, "-v", "error", "-of", "json", *args, str(path)], capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ffprobe failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)
