from __future__ import annotations

import pytest

from reelay.recording import layout
from reelay.recording.layout import ManifestKey, SegmentKey


def test_segment_key_round_trip() -> None:
    seg = layout.segment_key(
        "s1", "sess", "w-1", "720p", 42, duration_ms=2002, pdt_ms=1_780_000_000_123, discontinuity=True
    )
    assert seg.key() == "recordings/s1/sess/w-1/720p/0000000042_2002_1780000000123_d.ts"
    assert layout.parse_key(seg.key()) == seg
    assert seg.duration == 2.002
    assert seg.metadata() == {"duration-ms": "2002", "pdt-ms": "1780000000123", "discontinuity": "1"}


def test_plain_contract_key_parses_without_duration() -> None:
    parsed = layout.parse_key("recordings/s1/sess/w1/source/7.ts")
    assert parsed == SegmentKey("s1", "sess", "w1", "source", 7)
    assert parsed.duration is None


def test_keys_sort_by_sequence() -> None:
    keys = [
        layout.segment_key("s", "x", "w", "src", n, duration_ms=d, pdt_ms=p).key()
        for n, d, p in [(10, 1999, 5), (9, 2000000, 999999), (100, 1, 0)]
    ]
    assert [layout.parse_key(k).seq for k in sorted(keys)] == [9, 10, 100]


def test_manifest_key_round_trip() -> None:
    key = layout.manifest_key("s1", "sess", "w1", "360p", 3)
    assert key == "recordings/_manifests/s1/sess/w1/360p/000003.json"
    assert layout.parse_key(key) == ManifestKey("s1", "sess", "w1", "360p", 3)


@pytest.mark.parametrize(
    "key",
    [
        "uploads/x.ts",
        "recordings/s1/sess/w1/360p/abc.ts",
        "recordings/s1/sess/w1/360p/0001_0_5.ts",  # zero duration
        "recordings/s1/sess/w1/360p/0001_20_5_x.ts",
        "recordings/s1/sess/w1/360p/0001_20.ts",
        "recordings/s1/sess/w1/0001.ts",
        "recordings/_manifests/s1/sess/w1/360p/x.json",
        "recordings/_manifests/s1/sess/w1/000001.json",
        "recordings/s1/../w1/360p/0001.ts",
        "recordings/s1/sess/w1/360p/99999999999_20_5.ts",  # beyond 10 digits
    ],
)
def test_malformed_keys_parse_to_none(key: str) -> None:
    assert layout.parse_key(key) is None


@pytest.mark.parametrize("bad", ["", "a/b", "..", "x" * 65, "sp ace"])
def test_bad_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        layout.segment_key(bad, "s", "w", "r", 1, duration_ms=1, pdt_ms=1)


def test_out_of_range_values_are_refused() -> None:
    with pytest.raises(ValueError):
        layout.segment_name(-1, 1, 1)
    with pytest.raises(ValueError):
        layout.segment_name(1, 0, 1)
    with pytest.raises(ValueError):
        layout.segment_name(1, None, None, discontinuity=True)
