"""Merging a session's segments from every writer into one ordered, de-duplicated list per rendition.

Rows are compact (plain tuples of ints, writer ids interned) so a 48 h x 5 renditions session
(432,000 segments) merges in a few tens of MB. The same merge serves finalize, fixup and the live
EVENT playlist, so they agree.

Rules:
- the same (rendition, seq) written by two writers is one segment when their wall-clock spans
  overlap (by half the shorter one): the copy of the writer kept for the previous segment wins (fewer
  switches), else the writer whose id sorts first. Copies that do not overlap (a writer killed early
  in a slot, its replacement later in it) are distinct media: both are kept, in wall-clock order.
  The choice is stable under deleting the losing copies, so cleanup can recompute it;
- segments are ordered by sequence number;
- ``EXT-X-DISCONTINUITY`` (with ``EXT-X-PROGRAM-DATE-TIME``) goes before a segment the writer marked
  (a reconnect), after a gap in the sequence numbers, where the writer changes (another muxer's
  timestamps), and where the wall clock jumps by more than ``GAP_TOLERANCE_MS``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from reelay.media.hls import HLS_VERSION

GAP_TOLERANCE_MS = 1000
# A listed row: (seq, durationMs, pdtMs, discontinuity flag of its key 0/1, writer index, size in bytes).
Row = tuple[int, int, int, int, int, int]
# A merged entry: the same, where [3] says whether a discontinuity precedes it in the merged list,
# plus [6]: the key's own flag (to rebuild its key name).
Entry = tuple[int, int, int, int, int, int, int]


class SegmentRow(NamedTuple):
    writer_id: str
    seq: int
    duration_ms: int
    pdt_ms: int
    discontinuity: bool
    size: int


@dataclass
class Merged:
    entries: list[Entry]  # kept segments in order; entry[3] is 1 where a discontinuity precedes it
    writers: list[str]  # entry[4] indexes this
    duplicates: list[tuple[int, int]] = field(default_factory=list)  # (writer index, seq) dropped
    gaps: int = 0  # sequence numbers missing between kept segments

    @property
    def duration_ms(self) -> int:
        return sum(e[1] for e in self.entries)

    @property
    def discontinuities(self) -> int:
        return sum(e[3] for e in self.entries[1:])


def merge_segments(rows: Iterable[SegmentRow]) -> Merged:
    """One rendition's rows (any order, any writers) -> the merged list."""
    writer_index: dict[str, int] = {}
    raw: list[Row] = []
    for r in rows:
        w = writer_index.setdefault(r.writer_id, len(writer_index))
        raw.append((r.seq, r.duration_ms, r.pdt_ms, 1 if r.discontinuity else 0, w, r.size))
    writers = list(writer_index)
    return merge_entries(raw, writers)


def merge_entries(raw: list[Row], writers: list[str]) -> Merged:
    """``merge_segments`` on rows already compact. Sorts ``raw`` in place."""
    raw.sort(key=lambda e: (e[0], writers[e[4]]))
    kept: list[Entry] = []
    duplicates: list[tuple[int, int]] = []
    gaps = 0
    i, n = 0, len(raw)
    prev: Row | None = None
    while i < n:
        j = i
        while j < n and raw[j][0] == raw[i][0]:
            j += 1
        group = raw[i:j]
        for run in _same_media_runs(group, writers) if len(group) > 1 else [group]:
            chosen = run[0]
            if prev is not None and len(run) > 1:
                chosen = next((e for e in run if e[4] == prev[4]), chosen)
            duplicates.extend((e[4], e[0]) for e in run if e is not chosen)
            disc = chosen[3]
            if prev is not None:
                missing = max(0, chosen[0] - prev[0] - 1)
                gaps += missing
                jump = chosen[2] - (prev[2] + prev[1])
                if (
                    missing
                    or chosen[4] != prev[4]
                    or (chosen[2] and prev[2] and abs(jump) > GAP_TOLERANCE_MS)
                ):
                    disc = 1
            kept.append((chosen[0], chosen[1], chosen[2], disc, chosen[4], chosen[5], chosen[3]))
            prev = chosen
        i = j
    return Merged(kept, writers, duplicates, gaps)


def _same_media(a: Row, b: Row) -> bool:
    """Two writers' copies of one segment: their wall-clock spans overlap by at least half the shorter
    one. Without a wall clock on either, the number alone decides, as it always did."""
    if not a[2] or not b[2]:
        return True
    overlap = min(a[2] + a[1], b[2] + b[1]) - max(a[2], b[2])
    return 2 * overlap >= min(a[1], b[1])


def _same_media_runs(group: list[Row], writers: list[str]) -> list[list[Row]]:
    """One sequence number's rows split into distinct media, in wall-clock order, each run's rows in
    writer-id order. Numbers come from the wall clock, so a writer killed early in a slot and its
    replacement starting later in the same slot can share a number without sharing any media: both
    segments are kept (a discontinuity between them), never one dropped as the other's duplicate."""
    runs: list[list[Row]] = []
    for e in sorted(group, key=lambda e: (e[2], writers[e[4]])):
        run = next((r for r in runs if _same_media(r[0], e)), None)
        if run is None:
            runs.append([e])
        else:
            run.append(e)
    return [sorted(r, key=lambda e: writers[e[4]]) for r in runs]


def _round_half_up(seconds: float) -> int:
    return math.floor(round(seconds, 3) + 0.5)


def target_duration(entries: Sequence[Entry], floor: int = 1) -> int:
    """RFC 8216: every EXTINF, rounded, must not exceed the target."""
    return max(floor, max((_round_half_up(e[1] / 1000) for e in entries), default=1))


def peak_bit_rate(entries: Sequence[Entry], target: int) -> int:
    """``reelay.media.hls.peak_bit_rate`` (RFC 8216's peak segment bit rate over runs lasting 0.5 to
    1.5 targets) on merged entries, walking indices instead of slicing: hls's version copies the tail
    of the list for every start, quadratic on a 48 h rendition (86,400 segments)."""
    if not entries:
        raise ValueError("a peak bit rate needs at least one segment")
    low, high = 0.5 * target, 1.5 * target
    peak = 0.0
    n = len(entries)
    for start in range(n):
        bits = seconds = 0.0
        for k in range(start, n):
            bits += entries[k][5] * 8
            seconds += entries[k][1] / 1000
            if seconds > high + 1e-9:
                break
            if seconds >= low - 1e-9:
                peak = max(peak, bits / seconds)
    if peak == 0.0:
        peak = max(e[5] * 8 / (e[1] / 1000) for e in entries)
    return math.ceil(peak)


def program_date_time(epoch_ms: int) -> str:
    """``EXT-X-PROGRAM-DATE-TIME`` value with milliseconds, in UTC."""
    at = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def render_playlist(
    entries: Sequence[Entry],
    uri: Callable[[Entry], str],
    *,
    target: int,
    playlist_type: str = "VOD",
    ended: bool = True,
) -> str:
    """A media playlist of merged entries: the same header as ``reelay.media.hls`` writes, plus
    PROGRAM-DATE-TIME at the start and at every discontinuity."""
    if not entries:
        raise ValueError("a playlist needs at least one segment")
    target = target_duration(entries, target)
    parts = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{HLS_VERSION}",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        f"#EXT-X-PLAYLIST-TYPE:{playlist_type}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    first = True
    for e in entries:
        if e[3] and not first:
            parts.append("#EXT-X-DISCONTINUITY")
        if (first or e[3]) and e[2]:
            parts.append(f"#EXT-X-PROGRAM-DATE-TIME:{program_date_time(e[2])}")
        first = False
        parts.append(f"#EXTINF:{e[1] / 1000:.3f},")
        parts.append(uri(e))
    if ended:
        parts.append("#EXT-X-ENDLIST")
    return "\n".join(parts) + "\n"


__all__ = [
    "Entry",
    "Merged",
    "SegmentRow",
    "merge_entries",
    "merge_segments",
    "peak_bit_rate",
    "program_date_time",
    "render_playlist",
    "target_duration",
]
