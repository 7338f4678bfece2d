"""``python -m local.cameras hls|rtsp|srt --port N``: run one test camera in the foreground.

``make up`` runs one as the demo camera; tests run it with ``--control`` through ``local.cameras``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from local.cameras.picture import Picture


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.cameras", description=__doc__)
    parser.add_argument("kind", choices=["hls", "rtsp", "srt"])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    parser.add_argument("--audio", action="store_true", help="add a 440 Hz tone")
    parser.add_argument("--root", type=Path, help="hls: directory for the playlist and segments")
    parser.add_argument("--segment-seconds", type=int, default=1, help="hls: target segment duration")
    parser.add_argument("--window", type=int, default=6, help="hls: segments in the playlist")
    parser.add_argument("--path", default="/cam", help="rtsp: mount path")
    parser.add_argument("--codec", default="h264", choices=["h264", "h265", "mjpeg"], help="rtsp: codec")
    parser.add_argument("--size", default="320x240", help="picture size, WIDTHxHEIGHT")
    parser.add_argument("--fps", type=int, default=15, help="frames per second")
    parser.add_argument("--keyframe-seconds", type=int, default=1, help="seconds between keyframes")
    parser.add_argument("--bitrate", type=int, default=300, help="video bitrate, kbit/s")
    parser.add_argument("--control", action="store_true", help="talk to a parent over stdin/stdout")
    parser.add_argument("--die-with-parent", action="store_true", help="die if the parent dies")
    args = parser.parse_args(argv)
    try:
        width, height = Picture.parse_size(args.size)
        picture = Picture(width, height, args.fps, args.keyframe_seconds, args.bitrate)
    except ValueError as exc:
        parser.error(str(exc))

    from local.cameras.serve import serve  # imports GStreamer: only here, in the camera's process

    with tempfile.TemporaryDirectory(prefix="reelay-camera-") as tmp:
        root = args.root or Path(tmp)
        return serve(
            args.kind,
            host=args.host,
            port=args.port,
            control=args.control,
            die_with_parent=args.die_with_parent,
            root=root,
            segment_seconds=args.segment_seconds,
            window=args.window,
            path=args.path,
            codec=args.codec,
            audio=args.audio,
            picture=picture,
        )


if __name__ == "__main__":
    sys.exit(main())
