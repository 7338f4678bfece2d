"""H.264 levels (ITU-T H.264 Annex A, Table A-1) and RFC 6381 codec strings.

The master playlist published before a job finishes must name a level the stream will not exceed,
so it is computed from the rendition's size, frame rate and peak bitrate the way x264 picks it:
the lowest level whose frame size (MaxFS), macroblock rate (MaxMBPS) and bitrate (MaxBR) all fit.
"""

from __future__ import annotations

import math

# level_idc: (MaxMBPS macroblocks/s, MaxFS macroblocks, MaxBR in 1000 x cpbBrVclFactor bits/s)
LEVELS: tuple[tuple[int, int, int, int], ...] = (
    (10, 1_485, 99, 64),
    (11, 3_000, 396, 192),
    (12, 6_000, 396, 384),
    (13, 11_880, 396, 768),
    (20, 11_880, 396, 2_000),
    (21, 19_800, 792, 4_000),
    (22, 20_250, 1_620, 4_000),
    (30, 40_500, 1_620, 10_000),
    (31, 108_000, 3_600, 14_000),
    (32, 216_000, 5_120, 20_000),
    (40, 245_760, 8_192, 20_000),
    (41, 245_760, 8_192, 50_000),
    (42, 522_240, 8_704, 50_000),
    (50, 589_824, 22_080, 135_000),
    (51, 983_040, 36_864, 240_000),
    (52, 2_073_600, 36_864, 240_000),
)
# profile_idc and the constraint flags x264 writes (constraint_set1 for Main, none for High).
PROFILE_IDC = {"main": "4d40", "high": "6400"}
# Table A-1's MaxBR is in units of cpbBrVclFactor bits/s: 1200 for Main, 1500 for High (Table A-2).
_BR_FACTOR = {"main": 1.2, "high": 1.5}


def level_idc(width: int, height: int, fps: float, kbps: int = 0, profile: str = "high") -> int:
    """The lowest level_idc (e.g. 40 for 4.0) that holds width x height at fps and kbps."""
    if width <= 0 or height <= 0 or fps <= 0:
        raise ValueError("a level needs a positive size and frame rate")
    if profile not in PROFILE_IDC:
        raise ValueError(f"unknown H.264 profile {profile!r}")
    mbs_w, mbs_h = math.ceil(width / 16), math.ceil(height / 16)
    frame_mbs = mbs_w * mbs_h
    mb_rate = frame_mbs * fps
    for idc, max_mbps, max_fs, max_br in LEVELS:
        # A.3.1: neither side may exceed sqrt(8 * MaxFS) macroblocks.
        side_limit = math.sqrt(8 * max_fs)
        if frame_mbs > max_fs or mbs_w > side_limit or mbs_h > side_limit:
            continue
        if mb_rate > max_mbps + 1e-6 or kbps > max_br * _BR_FACTOR[profile]:
            continue
        return idc
    return LEVELS[-1][0]


def avc1(profile: str, level: int) -> str:
    """RFC 6381 'avc1.PPCCLL' as x264 signals it, e.g. avc1('high', 40) -> 'avc1.640028'."""
    if profile not in PROFILE_IDC:
        raise ValueError(f"unknown H.264 profile {profile!r}")
    return f"avc1.{PROFILE_IDC[profile]}{level:02x}"
