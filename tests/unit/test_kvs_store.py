"""The stand-in's fragment store: persisted across restarts, numbered in order, and watchable as MKV."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.kvs.store import FragmentStore, NoSuchStream, StreamExists


def test_fragments_survive_a_restart_and_numbers_keep_growing(tmp_path: Path):
    # Given a stream with two fragments
    store = FragmentStore(tmp_path)
    store.create_stream("cam")
    a = store.add_fragment("cam", header=b"H1", timecode=1000, data=b"C1")
    b = store.add_fragment("cam", header=b"H1", timecode=2000, data=b"C2")

    # When the stand-in restarts (a new store on the same directory) and gets another fragment
    again = FragmentStore(tmp_path)
    c = again.add_fragment("cam", header=b"H1", timecode=3000, data=b"C3")

    # Then all three are listed in order, with 47-digit numbers that sort as they grow
    listed = again.fragments("cam")
    assert [f.timecode for f in listed] == [1000, 2000, 3000]
    numbers = [a.fragmentNumber, b.fragmentNumber, c.fragmentNumber]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3 and all(len(n) == 47 for n in numbers)
    assert again.describe("cam")["Status"] == "ACTIVE"
    assert [s["FragmentCount"] for s in again.streams()] == [3]


def test_live_mkv_is_the_latest_header_and_the_last_clusters_under_it(tmp_path: Path):
    store = FragmentStore(tmp_path)
    store.create_stream("cam")
    store.add_fragment("cam", header=b"OLD", timecode=1, data=b"c1")
    store.add_fragment("cam", header=b"NEW", timecode=2, data=b"c2")
    store.add_fragment("cam", header=b"NEW", timecode=3, data=b"c3")
    store.add_fragment("cam", header=b"NEW", timecode=4, data=b"c4")

    assert store.live_mkv("cam", 2) == b"NEWc3c4"
    # clusters written under another header (before a reconnect with new codec data) are left out
    assert store.live_mkv("cam", 10) == b"NEWc2c3c4"


def test_names_are_checked_and_streams_are_unique(tmp_path: Path):
    store = FragmentStore(tmp_path)
    store.create_stream("cam-1.a_b")
    with pytest.raises(StreamExists):
        store.create_stream("cam-1.a_b")
    with pytest.raises(ValueError):
        store.create_stream("../escape")
    with pytest.raises(NoSuchStream):
        store.describe("../escape")
    with pytest.raises(NoSuchStream):
        store.fragments("unknown")
