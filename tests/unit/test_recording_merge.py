from __future__ import annotations

from reelay.media.hls import parse_media_playlist
from reelay.recording.merge import SegmentRow, merge_segments, program_date_time, render_playlist


def rows(writer: str, seqs: range, *, dur: int = 2000, t0: int = 1_000_000, disc: tuple[int, ...] = ()):
    return [SegmentRow(writer, n, dur, t0 + n * dur, n in disc, 100) for n in seqs]


def test_two_overlapping_writers_give_no_duplicates() -> None:
    m = merge_segments(rows("w2", range(5, 15)) + rows("w1", range(0, 10)))
    assert [e[0] for e in m.entries] == list(range(15))
    assert len(m.duplicates) == 5
    # The kept copy follows the previous writer: one switch, w1 -> w2, marked as a discontinuity.
    assert [m.writers[e[4]] for e in m.entries] == ["w1"] * 10 + ["w2"] * 5
    assert [e[3] for e in m.entries].count(1) == 1 and m.entries[10][3] == 1


def test_gaps_and_marked_reconnects_are_discontinuities() -> None:
    m = merge_segments(rows("w1", range(0, 3)) + rows("w1", range(5, 8), disc=(6,)))
    assert m.gaps == 2
    assert [e[0] for e in m.entries if e[3]] == [5, 6]
    assert m.discontinuities == 2


def test_wall_clock_jump_is_a_discontinuity() -> None:
    a = rows("w1", range(0, 3))
    b = [SegmentRow("w1", 3, 2000, 1_000_000 + 60_000, False, 100)]
    m = merge_segments(a + b)
    assert m.entries[3][3] == 1 and m.gaps == 0


def test_rendered_playlist_has_discontinuity_pdt_and_target() -> None:
    m = merge_segments(rows("w1", range(0, 3)) + rows("w1", range(4, 6), dur=2499))
    text = render_playlist(m.entries, lambda e: f"{e[0]}.ts", target=2)
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1
    assert text.count("#EXT-X-PROGRAM-DATE-TIME:") == 2
    assert "#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:16:40.000Z" in text
    pl = parse_media_playlist(text)
    assert pl.ended and pl.playlist_type == "VOD"
    assert all(round(d) <= pl.target_duration for _, d in pl.segments)
    long = merge_segments(rows("w1", range(0, 2), dur=3600))
    assert parse_media_playlist(render_playlist(long.entries, str, target=2)).target_duration == 4


def test_program_date_time_has_milliseconds() -> None:
    assert program_date_time(1_780_000_000_123) == "2026-05-28T20:26:40.123Z"


def test_a_writer_killed_early_in_a_slot_and_its_replacement_later_in_it_are_both_kept() -> None:
    # Given w1 killed 0.9 s into slot 4 (a short last segment) and w2, its replacement, starting 1.2 s
    # later in the same 2 s slot: both number their segment 4 (numbers come from the wall clock)
    w1 = [*rows("w1", range(0, 4)), SegmentRow("w1", 4, 900, 1_000_000 + 4 * 2000, False, 100)]
    w2 = [SegmentRow("w2", 4, 2000, 1_000_000 + 4 * 2000 + 1200, True, 100)]
    w2 += [SegmentRow("w2", n, 2000, 1_000_000 + n * 2000 + 1200, False, 100) for n in (5, 6)]
    # When they are merged
    m = merge_segments(w2 + w1)
    # Then no media is dropped: both 4s are kept, w1's first, with a discontinuity at the switch
    assert [(m.writers[e[4]], e[0]) for e in m.entries] == [
        *[("w1", n) for n in range(5)],
        ("w2", 4),
        ("w2", 5),
        ("w2", 6),
    ]
    assert m.duplicates == [] and m.gaps == 0
    assert [e[3] for e in m.entries] == [0, 0, 0, 0, 0, 1, 0, 0]


def test_copies_of_one_segment_overlap_and_only_one_is_kept() -> None:
    # Given two writers' copies of segment 4 whose spans overlap by more than half of the shorter
    a = [SegmentRow("w1", 4, 2000, 1_008_000, False, 100)]
    b = [SegmentRow("w2", 4, 1800, 1_008_300, False, 100)]
    m = merge_segments(a + b)
    # Then they are one segment (the writer sorting first wins)
    assert [(m.writers[e[4]], e[0]) for e in m.entries] == [("w1", 4)]
    assert m.duplicates == [(1, 4)]
