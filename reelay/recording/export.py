"""The MP4 of a finished recording (or a time range of it), from its VOD playlist.

Runs where the media tools are: an ECS task of the media image in AWS (``transcoder/export.py``, the
``ExportMp4`` step), a subprocess of the same entry point locally. It reads one rendition's VOD
playlist (``source`` when there is one: passthrough, the best quality), downloads the segments the
range covers (whole segments: cuts fall on segment boundaries, which are keyframes), joins each run
of segments between discontinuities into one MPEG-TS file (a byte join is a valid stream while the
timestamps continue), and remuxes the runs into one MP4 with GStreamer (``concat`` re-bases each
run's timestamps after the previous one's, so reconnects do not break the file).
"""

from __future__ import annotations

import posixpath
import tempfile
from dataclasses import dataclass
from pathlib import Path

from reelay.media._gst import Gst, ensure_init
from reelay.media.probe import probe
from reelay.media.runner import PipelineRunner
from reelay.ports import ObjectStore
from reelay.recording.layout import EXPORT_METADATA
from reelay.settings import Settings
from reelay.videos import output_prefixes

MP4_TYPE = "video/mp4"


@dataclass(frozen=True)
class PlaylistSegment:
    key: str  # store key, resolved against the playlist's key
    duration: float
    discontinuity: bool  # a discontinuity precedes it


def recording_playlist(store: ObjectStore, settings: Settings, video_id: str, rendition: str) -> str:
    """The key of a recording's rendition playlist where its media is now: under the public output
    prefix, or under the private one once the video went private (reelay.media_location moves it,
    rewriting the playlist's segment URIs, so what it names is read from there too)."""
    name = f"{rendition}/index.m3u8"
    for prefix in output_prefixes(settings, video_id):
        if store.head(prefix + name) is not None:
            return prefix + name
    raise ValueError(f"video {video_id} has no {name} under either output prefix")


def read_vod(store: ObjectStore, playlist_key: str) -> list[PlaylistSegment]:
    """The segments of a media playlist, with its discontinuities (``hls.parse_media_playlist`` drops
    those), URIs resolved to store keys."""
    base = posixpath.dirname(playlist_key)
    out: list[PlaylistSegment] = []
    duration: float | None = None
    disc = False
    for raw in store.get_bytes(playlist_key).decode().splitlines():
        line = raw.strip()
        if line == "#EXT-X-DISCONTINUITY":
            disc = True
        elif line.startswith("#EXTINF:"):
            duration = float(line.split(":", 1)[1].split(",", 1)[0])
        elif line and not line.startswith("#"):
            if duration is None:
                raise ValueError(f"segment {line!r} has no #EXTINF")
            key = posixpath.normpath(posixpath.join(base, line))
            if key.startswith("../"):
                raise ValueError(f"segment {line!r} points outside the store")
            out.append(PlaylistSegment(key, duration, disc))
            duration, disc = None, False
    return out


def select_range(
    segments: list[PlaylistSegment], start: float | None, end: float | None
) -> list[PlaylistSegment]:
    """The segments that overlap [start, end) seconds from the recording's start."""
    if start is None and end is None:
        return list(segments)
    lo, hi = start or 0.0, end if end is not None else float("inf")
    if hi <= lo:
        raise ValueError("the range must end after it starts")
    out, t = [], 0.0
    for s in segments:
        if t < hi and t + s.duration > lo:
            out.append(s)
        t += s.duration
    if not out:
        raise ValueError("the range is outside the recording")
    return out


def runs(segments: list[PlaylistSegment]) -> list[list[PlaylistSegment]]:
    """Split at discontinuities (the first selected segment always opens a run)."""
    out: list[list[PlaylistSegment]] = []
    for i, s in enumerate(segments):
        if i == 0 or s.discontinuity:
            out.append([])
        out[-1].append(s)
    return out


def export_mp4(
    store: ObjectStore,
    playlist_key: str,
    out_key: str,
    *,
    start: float | None = None,
    end: float | None = None,
    work_dir: Path | None = None,
) -> dict[str, object]:
    """Write the MP4 to ``out_key``; returns {key, segments, durationSeconds, sizeBytes}."""
    chosen = select_range(read_vod(store, playlist_key), start, end)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        files: list[Path] = []
        for n, run in enumerate(runs(chosen)):
            path = Path(tmp) / f"run{n:05d}.ts"
            with path.open("wb") as joined:
                for s in run:
                    joined.write(store.get_bytes(s.key))
            files.append(path)
        out = Path(tmp) / "out.mp4"
        remux(files, out)
        seconds = round(sum(s.duration for s in chosen), 3)
        # What the export workflow's next step records, from one HEAD (an ECS task's output is not
        # its stdout): the duration and segment count in the MP4's metadata, its size in its length.
        meta = dict(zip(EXPORT_METADATA, (str(round(seconds * 1000)), str(len(chosen))), strict=True))
        store.put_file(out_key, out, content_type=MP4_TYPE, metadata=meta)
        return {
            "key": out_key,
            "segments": len(chosen),
            "durationSeconds": seconds,
            "sizeBytes": out.stat().st_size,
        }


def remux(files: list[Path], out: Path) -> None:
    """MPEG-TS runs -> one MP4 (H.264, and AAC when the recording has audio), no re-encoding."""
    ensure_init()
    info = probe(files[0])
    has_audio = info.has_audio and info.audio_codec in ("aac", None)
    # Named muxer pads: "queue ! mp4mux" with ANY caps could take the audio pad for video.
    parts = [
        f"mp4mux name=mux faststart=true ! filesink location={_q(out)}",
        "concat name=cv ! queue ! mux.video_0",
    ]
    if has_audio:
        parts.append("concat name=ca ! queue ! mux.audio_0")
    # h264timestamper: a camera whose parameter sets arrive as PES packets of their own leaves the
    # parsed access units without a PTS, which mp4mux refuses ("Buffer has no PTS"); and a live
    # source's RTP clock jitters, so a DTS can land a few microseconds past its PTS.
    stamp = " ! h264timestamper" if Gst.ElementFactory.find("h264timestamper") else ""
    for n, path in enumerate(files):
        parts.append(
            f"filesrc location={_q(path)} ! tsdemux name=d{n} d{n}. ! queue ! h264parse{stamp} ! cv."
        )
        if has_audio:
            parts.append(f"d{n}. ! queue ! aacparse ! ca.")
    pipeline = Gst.parse_launch(" ".join(parts))
    with PipelineRunner(pipeline, stall_seconds=60) as runner:
        runner.run()


def _q(path: Path) -> str:
    text = str(path)
    if '"' in text:
        raise ValueError(f"unsupported path {text!r}")
    return f'"{text}"'
