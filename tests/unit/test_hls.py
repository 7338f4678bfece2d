"""Playlist writing and parsing. No GStreamer."""

from __future__ import annotations

import pytest

from reelay.media.h264 import avc1, level_idc
from reelay.media.hls import (
    event_playlist,
    parse_attributes,
    parse_master_playlist,
    parse_media_playlist,
    peak_bit_rate,
    start_order,
    vod_playlist,
    write_master,
)
from reelay.models import Rendition

SEGMENTS = [("seg_00000.ts", 2.0), ("seg_00001.ts", 2.0), ("seg_00002.ts", 1.04)]


def renditions() -> list[Rendition]:
    return [
        Rendition(name="720p", width=1280, height=720, bandwidth=3_100_000, average_bandwidth=2_900_000,
                  codecs="avc1.64001f,mp4a.40.2", playlist="720p/index.m3u8"),
        Rendition(name="360p", width=640, height=360, bandwidth=950_000, average_bandwidth=890_000,
                  codecs="avc1.4d401e,mp4a.40.2", playlist="360p/index.m3u8"),
    ]  # fmt: skip


def test_vod_playlist_is_complete_and_declares_vod():
    # Given three closed segments
    # When the VOD playlist is written
    text = vod_playlist(SEGMENTS, target=2)
    # Then it has the VOD type, ENDLIST, a version, and every segment with its duration, in order
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in lines
    assert "#EXT-X-VERSION:3" in lines
    assert lines[-1] == "#EXT-X-ENDLIST"
    parsed = parse_media_playlist(text)
    assert parsed.segments == SEGMENTS
    assert parsed.ended and parsed.playlist_type == "VOD"
    assert parsed.target_duration == 2
    assert parsed.duration == pytest.approx(5.04)


def test_ntsc_rate_segments_keep_a_two_second_target():
    # Given 29.97 fps segments of 60 frames (2.002 s) and a short last one
    text = vod_playlist([("a.ts", 2.002), ("b.ts", 2.002), ("c.ts", 0.5)], target=2)
    # Then TARGETDURATION is 2: RFC 8216 compares each EXTINF rounded to the nearest integer
    assert parse_media_playlist(text).target_duration == 2
    assert parse_media_playlist(event_playlist([("a.ts", 2.002)], 2)).target_duration == 2


@pytest.mark.parametrize(
    ("longest", "expected"),
    # 2.4996 is written as EXTINF 2.500, which a player rounds to 3
    [(2.0, 2), (2.49, 2), (2.4994, 2), (2.4996, 3), (2.5, 3), (2.9, 3), (3.0, 3), (0.4, 1)],
)
def test_target_duration_is_the_longest_segment_rounded_half_up(longest, expected):
    # Given a segment of the given length and no configured lower bound
    text = vod_playlist([("a.ts", 1.0), ("b.ts", longest)])
    # Then the target is that length rounded half up (never below 1), and every EXTINF rounds to <= it
    parsed = parse_media_playlist(text)
    assert parsed.target_duration == expected
    assert all(int(d + 0.5) <= parsed.target_duration for _, d in parsed.segments)


def test_target_duration_never_drops_below_the_configured_target():
    assert parse_media_playlist(vod_playlist([("a.ts", 1.2)], target=4)).target_duration == 4
    assert parse_media_playlist(vod_playlist([("a.ts", 6.6)], target=4)).target_duration == 7


def test_target_duration_ignores_float_noise():
    # Given durations that are 2 s up to float error
    text = vod_playlist([("a.ts", 2.0000001), ("b.ts", 1.9999999)])
    # Then the target is 2, not 3
    assert parse_media_playlist(text).target_duration == 2


def test_event_playlist_grows_without_endlist_until_ended():
    # Given the first two segments of a running job
    growing = parse_media_playlist(event_playlist(SEGMENTS[:2], 2))
    # Then it is an EVENT playlist without ENDLIST and with the fixed target
    assert growing.playlist_type == "EVENT"
    assert not growing.ended
    assert growing.target_duration == 2
    assert growing.segments == SEGMENTS[:2]
    # And when the job ends, the same playlist closes with ENDLIST
    done = parse_media_playlist(event_playlist(SEGMENTS, 2, ended=True))
    assert done.ended and done.segments == SEGMENTS


def test_event_playlist_may_be_empty_while_nothing_is_closed_yet():
    assert parse_media_playlist(event_playlist([], 2)).segments == []


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        ([], "at least one segment"),
        ([("a.ts", 0.0)], "non-positive"),
        ([("a.ts", -1.0)], "non-positive"),
        ([("", 2.0)], "invalid segment URI"),
        ([("a.ts\n#EXT-X-ENDLIST", 2.0)], "invalid segment URI"),
    ],
)
def test_vod_playlist_rejects_bad_segments(segments, message):
    with pytest.raises(ValueError, match=message):
        vod_playlist(segments)


def test_master_lists_every_rendition_with_its_attributes():
    # Given two renditions
    # When the master playlist is written
    text = write_master(renditions(), frame_rate=25.0)
    # Then it parses back to the same variants with bandwidth, resolution, codecs and frame rate
    assert text.startswith("#EXTM3U\n")
    variants = {v.uri: v for v in parse_master_playlist(text)}
    assert set(variants) == {"720p/index.m3u8", "360p/index.m3u8"}
    hd = variants["720p/index.m3u8"]
    assert hd.bandwidth == 3_100_000
    assert hd.attributes["AVERAGE-BANDWIDTH"] == "2900000"
    assert hd.resolution == (1280, 720)
    assert hd.attributes["CODECS"] == "avc1.64001f,mp4a.40.2"
    assert hd.attributes["FRAME-RATE"] == "25.000"


def _variant(name: str, bandwidth: int) -> Rendition:
    return Rendition(name=name, bandwidth=bandwidth, codecs="avc1.4d401e", playlist=f"{name}/index.m3u8")


def test_master_lists_the_start_variant_first_then_the_rest_highest_first():
    # Given a full ladder in any order (peaks as the encoder measured them)
    ladder = [_variant("360p", 1_250_000), _variant("1080p", 7_600_000), _variant("480p", 2_200_000),
              _variant("720p", 4_300_000), _variant("240p", 640_000)]  # fmt: skip
    # When the master is written
    uris = [v.uri for v in parse_master_playlist(write_master(ladder))]
    # Then players start on 480p, the best that fits the start budget, not on 1080p
    assert uris == ["480p/index.m3u8", "1080p/index.m3u8", "720p/index.m3u8", "360p/index.m3u8",
                    "240p/index.m3u8"]  # fmt: skip


def test_start_variant_is_the_lowest_when_nothing_fits_the_budget():
    ladder = [_variant("720p", 4_300_000), _variant("1080p", 7_600_000)]
    assert [r.name for r in start_order(ladder)] == ["720p", "1080p"]
    assert [r.name for r in start_order(ladder, start_bandwidth=5_000_000)] == ["720p", "1080p"]
    assert [r.name for r in start_order(ladder, start_bandwidth=8_000_000)] == ["1080p", "720p"]
    assert start_order([]) == []


def test_master_for_video_without_audio_names_only_the_video_codec():
    only = Rendition(name="360p", width=640, height=360, bandwidth=900_000, codecs="avc1.4d401e",
                     playlist="360p/index.m3u8")  # fmt: skip
    variant = parse_master_playlist(write_master([only]))[0]
    assert variant.attributes["CODECS"] == "avc1.4d401e"
    assert "AVERAGE-BANDWIDTH" not in variant.attributes
    assert "FRAME-RATE" not in variant.attributes


def test_master_rejects_empty_and_bandwidthless_input():
    with pytest.raises(ValueError, match="at least one"):
        write_master([])
    broken = Rendition(name="x", bandwidth=0, codecs="avc1.4d401e", playlist="x/index.m3u8")
    with pytest.raises(ValueError, match="no bandwidth"):
        write_master([broken])


def test_attribute_lists_keep_commas_inside_quotes():
    attrs = parse_attributes('BANDWIDTH=1,CODECS="avc1.4d401e,mp4a.40.2",RESOLUTION=640x360')
    assert attrs == {"BANDWIDTH": "1", "CODECS": "avc1.4d401e,mp4a.40.2", "RESOLUTION": "640x360"}


@pytest.mark.parametrize(
    "text",
    ["", "hello\nworld", "#EXTM3U\nseg.ts\n"],
)
def test_parsers_reject_what_is_not_a_valid_media_playlist(text):
    with pytest.raises(ValueError):
        parse_media_playlist(text)


@pytest.mark.parametrize("text", ["#EXTM3U\n", "#EXTM3U\n720p/index.m3u8\n", "not a playlist"])
def test_master_parser_rejects_invalid_masters(text):
    with pytest.raises(ValueError):
        parse_master_playlist(text)


# --- BANDWIDTH: RFC 8216 4.3.4.2 peak segment bit rate ------------------------------------------------
def test_peak_is_the_fastest_single_segment_when_all_are_full_length():
    # Given three 2 s segments of 2, 3 and 1 Mbit
    segments = [(2_000_000, 2.0), (3_000_000, 2.0), (1_000_000, 2.0)]
    # Then the peak is the 1.5 Mbit/s of the middle one (a pair lasts 4 s, over 1.5 x target)
    assert peak_bit_rate(segments, 2) == 1_500_000


def test_a_short_dense_last_segment_counts_with_its_neighbour_not_alone():
    # Given two 1 Mbit/s segments and a 0.5 s last segment holding a keyframe (0.75 Mbit: 1.5 Mbit/s alone)
    segments = [(2_000_000, 2.0), (2_000_000, 2.0), (750_000, 0.5)]
    # Then it is not rated alone (0.5 s is under half the target) but with its neighbour: 2.75 Mbit / 2.5 s
    assert peak_bit_rate(segments, 2) == 1_100_000


def test_a_short_sparse_last_segment_does_not_lower_the_peak():
    segments = [(2_000_000, 2.0), (4_000_000, 2.0), (10_000, 0.5)]
    assert peak_bit_rate(segments, 2) == 2_000_000


def test_short_segments_are_rated_in_runs_that_last_about_one_target():
    # Given 1 s segments against a 2 s target, one dense pair in the middle
    segments = [(1_000_000, 1.0), (3_000_000, 1.0), (3_000_000, 1.0), (1_000_000, 1.0)]
    # Then the densest run of 1 to 3 s sets the peak: the pair, 6 Mbit over 2 s
    assert peak_bit_rate(segments, 2) == 3_000_000


def test_when_no_run_fits_the_window_the_fastest_segment_is_the_peak():
    # A clip shorter than half a target, and segments longer than 1.5 targets
    assert peak_bit_rate([(300_000, 0.3)], 2) == 1_000_000
    assert peak_bit_rate([(8_000_000, 4.0), (2_000_000, 4.0)], 2) == 2_000_000


@pytest.mark.parametrize(
    ("segments", "target"),
    [([], 2), ([(100, 0.0)], 2), ([(-1, 2.0)], 2), ([(100, 2.0)], 0)],
)
def test_peak_rejects_what_is_not_a_segment_list(segments, target):
    with pytest.raises(ValueError):
        peak_bit_rate(segments, target)


# --- nominal CODECS level (H.264 Annex A) ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("width", "height", "fps", "kbps", "profile", "expected"),
    [
        (1920, 1080, 30, 7500, "high", 40),
        (1920, 1080, 30000 / 1001, 7500, "high", 40),
        (1920, 1080, 50, 7500, "high", 42),
        (1920, 1080, 60, 7500, "high", 42),
        (1920, 1080, 30, 30000, "high", 40),  # level 4.0 holds 20000 x 1500 bit/s in High profile
        (1920, 1080, 30, 30001, "high", 41),
        (1920, 1080, 30, 24001, "main", 41),  # and 20000 x 1200 in Main
        (1280, 720, 30, 4200, "high", 31),
        (1280, 720, 60, 4200, "high", 32),
        (854, 480, 25, 2100, "main", 30),
        (854, 480, 30, 2100, "main", 31),  # 1620 MBs x 30 > level 3.0's 40500 MB/s
        (640, 360, 25, 1200, "main", 30),
        (320, 180, 15, 200, "main", 12),
        (3840, 2160, 30, 20000, "high", 51),
    ],
)
def test_level_is_the_lowest_that_holds_size_rate_and_bitrate(width, height, fps, kbps, profile, expected):
    assert level_idc(width, height, fps, kbps, profile) == expected


def test_codec_strings_are_what_x264_signals():
    assert avc1("high", 42) == "avc1.64002a"
    assert avc1("main", 30) == "avc1.4d401e"
    with pytest.raises(ValueError):
        avc1("baseline", 30)
    with pytest.raises(ValueError):
        level_idc(0, 1080, 30)
