"""HLS playlists: the master we write ourselves (hlssink2 writes none), VOD and growing EVENT media
playlists, and small parsers used to read hlssink2's output and by tests.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from reelay.models import Rendition

HLS_VERSION = 3  # decimal EXTINF durations need version 3; nothing here needs more


def _round_half_up(seconds: float) -> int:
    # Millisecond first, so float noise (2.4999999 for 2.5) does not decide the rounding.
    return math.floor(round(seconds, 3) + 0.5)


def _target_duration(durations: Sequence[float], floor: int | None) -> int:
    # RFC 8216 4.3.3.1: every EXTINF, rounded to the nearest integer, must be <= the target. So 2.002 s
    # segments (60 frames at 29.97 fps) keep a 2 s target, where a ceiling would announce 3.
    longest = max((_round_half_up(d) for d in durations), default=0)
    return max(longest, floor or 0, 1)


def peak_bit_rate(segments: Sequence[tuple[int, float]], target: int) -> int:
    """RFC 8216 4.3.4.2's peak segment bit rate of (size in bits, duration) segments, in bits/s.

    The peak is the highest rate of any run of contiguous segments lasting 0.5 to 1.5 times the
    target duration. A short final segment (a keyframe and headers in a sliver of time) so never counts
    alone, where its rate would inflate the peak, but it does count together with its neighbour.
    A run that no window fits (one segment shorter than half the target, or segments longer than
    1.5 times it) falls back to the highest single-segment rate, which is never below the true need.
    """
    if not segments:
        raise ValueError("a peak bit rate needs at least one segment")
    if target <= 0:
        raise ValueError("the target duration must be positive")
    if any(bits < 0 or not seconds > 0 for bits, seconds in segments):
        raise ValueError("segments need a size >= 0 and a positive duration")
    low, high = 0.5 * target, 1.5 * target
    peak = 0.0
    for start in range(len(segments)):
        bits = seconds = 0.0
        for size, duration in segments[start:]:
            bits, seconds = bits + size, seconds + duration
            if seconds > high + 1e-9:
                break
            if seconds >= low - 1e-9:
                peak = max(peak, bits / seconds)
    if peak == 0.0:
        peak = max(bits / seconds for bits, seconds in segments)
    return math.ceil(peak)


def _media_playlist(
    segments: Sequence[tuple[str, float]], target: int | None, playlist_type: str, ended: bool
) -> str:
    for uri, duration in segments:
        if not uri or "\n" in uri:
            raise ValueError(f"invalid segment URI {uri!r}")
        if not duration > 0:
            raise ValueError(f"segment {uri!r} has a non-positive duration {duration!r}")
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{HLS_VERSION}",
        f"#EXT-X-TARGETDURATION:{_target_duration([d for _, d in segments], target)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        f"#EXT-X-PLAYLIST-TYPE:{playlist_type}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    for uri, duration in segments:
        lines += [f"#EXTINF:{duration:.3f},", uri]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def vod_playlist(segments: Sequence[tuple[str, float]], target: int | None = None) -> str:
    """A finished rendition: PLAYLIST-TYPE:VOD and ENDLIST. ``target`` is a lower bound for TARGETDURATION."""
    if not segments:
        raise ValueError("a VOD playlist needs at least one segment")
    return _media_playlist(segments, target, "VOD", ended=True)


def event_playlist(segments: Sequence[tuple[str, float]], target: int, *, ended: bool = False) -> str:
    """The growing playlist published while a job runs: segments are only ever appended.

    ``target`` must be the same on every reload (the configured segment length); players may start
    playback from it before the job finishes. ``ended=True`` closes it with ENDLIST.
    """
    return _media_playlist(segments, target, "EVENT", ended=ended)


def _quoted(value: str) -> str:
    if '"' in value or "\n" in value:
        raise ValueError(f"attribute value {value!r} cannot be quoted")
    return f'"{value}"'


# Players start on the first variant a master lists (Safari and AVPlayer always; hls.js when no
# bandwidth estimate exists yet, its `firstLevel`). Listing 1080p first makes every viewer begin by
# fetching the largest segments, so the first variant is the best one whose peak fits this budget,
# about what a typical connection sustains; ABR climbs from there after a segment or two.
START_BANDWIDTH = 2_500_000  # bits/s


def start_order(renditions: Sequence[Rendition], start_bandwidth: int = START_BANDWIDTH) -> list[Rendition]:
    """The renditions highest first, with the start variant moved to the front.

    The start variant is the highest whose BANDWIDTH fits ``start_bandwidth``, or the lowest of all
    when none does.
    """
    ranked = sorted(renditions, key=lambda r: r.bandwidth, reverse=True)
    if not ranked:
        return []
    start = next((r for r in ranked if r.bandwidth <= start_bandwidth), ranked[-1])
    return [start, *(r for r in ranked if r is not start)]


def write_master(renditions: Sequence[Rendition], *, frame_rate: float | None = None) -> str:
    """The master playlist listing every rendition, the start variant first (see ``start_order``)."""
    if not renditions:
        raise ValueError("a master playlist needs at least one rendition")
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{HLS_VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for r in start_order(renditions):
        if r.bandwidth <= 0:
            raise ValueError(f"rendition {r.name!r} has no bandwidth")
        attrs = [f"BANDWIDTH={r.bandwidth}"]
        if r.average_bandwidth:
            attrs.append(f"AVERAGE-BANDWIDTH={r.average_bandwidth}")
        if r.width and r.height:
            attrs.append(f"RESOLUTION={r.width}x{r.height}")
        attrs.append(f"CODECS={_quoted(r.codecs)}")
        if frame_rate and r.width:
            attrs.append(f"FRAME-RATE={frame_rate:.3f}")
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), r.playlist]
    return "\n".join(lines) + "\n"


# --- parsing --------------------------------------------------------------------------------------
_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def parse_attributes(text: str) -> dict[str, str]:
    """An HLS attribute list -> {name: value}, quotes removed."""
    return {k: v[1:-1] if v.startswith('"') else v for k, v in _ATTR.findall(text)}


@dataclass
class MediaPlaylist:
    version: int | None = None
    target_duration: int | None = None
    media_sequence: int = 0
    playlist_type: str | None = None
    ended: bool = False
    segments: list[tuple[str, float]] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return sum(d for _, d in self.segments)


@dataclass(frozen=True)
class VariantStream:
    uri: str
    attributes: dict[str, str]

    @property
    def bandwidth(self) -> int:
        return int(self.attributes["BANDWIDTH"])

    @property
    def resolution(self) -> tuple[int, int] | None:
        res = self.attributes.get("RESOLUTION")
        if not res:
            return None
        w, h = res.lower().split("x")
        return int(w), int(h)


def _lines(text: str) -> list[str]:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise ValueError("not an HLS playlist: it does not start with #EXTM3U")
    return lines


def parse_media_playlist(text: str) -> MediaPlaylist:
    pl = MediaPlaylist()
    pending: float | None = None
    for line in _lines(text)[1:]:
        if line.startswith("#EXT-X-VERSION:"):
            pl.version = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            pl.target_duration = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            pl.media_sequence = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-PLAYLIST-TYPE:"):
            pl.playlist_type = line.split(":", 1)[1]
        elif line == "#EXT-X-ENDLIST":
            pl.ended = True
        elif line.startswith("#EXTINF:"):
            pending = float(line.split(":", 1)[1].split(",", 1)[0])
        elif not line.startswith("#"):
            if pending is None:
                raise ValueError(f"segment {line!r} has no #EXTINF")
            pl.segments.append((line, pending))
            pending = None
    return pl


def parse_master_playlist(text: str) -> list[VariantStream]:
    variants: list[VariantStream] = []
    pending: dict[str, str] | None = None
    for line in _lines(text)[1:]:
        if line.startswith("#EXT-X-STREAM-INF:"):
            pending = parse_attributes(line.split(":", 1)[1])
        elif not line.startswith("#"):
            if pending is None:
                raise ValueError(f"variant {line!r} has no #EXT-X-STREAM-INF")
            variants.append(VariantStream(uri=line, attributes=pending))
            pending = None
    if not variants:
        raise ValueError("the master playlist lists no variant streams")
    return variants
