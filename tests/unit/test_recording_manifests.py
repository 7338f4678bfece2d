from __future__ import annotations

import itertools
import json

import pytest

from reelay.media.hls import parse_media_playlist
from reelay.recording import layout
from reelay.recording.manifests import (
    ManifestWriter,
    Retry,
    UploadFailed,
    live_playlist,
    naive_manifest_bytes,
    read_manifests,
)
from tests.fakes import FakeStore
from tests.unit.recording_helpers import record


def seg(seq: int, writer: str = "w1") -> layout.SegmentKey:
    return layout.segment_key(
        "s", "sess", writer, "src", seq, duration_ms=2000, pdt_ms=1_000_000 + seq * 2000
    )


def test_chunks_roll_every_n_segments() -> None:
    store = FakeStore()
    w = ManifestWriter(store, "s", "sess", "w1", "src", chunk_size=3)
    for n in range(7):
        w.append(seg(n))
    keys = sorted(k for k in store.objects if "/_manifests/" in k)
    assert [k.rsplit("/", 1)[1] for k in keys] == ["000000.json", "000001.json", "000002.json"]
    assert [int(e[:10]) for e in json.loads(store.objects[keys[1]][0])["segments"]] == [3, 4, 5]
    assert [s.seq for s in read_manifests(store, "s", "sess", "src")] == list(range(7))


def test_bytes_per_segment_do_not_grow_with_the_session() -> None:
    store = FakeStore()
    w = ManifestWriter(store, "s", "sess", "w1", "src", chunk_size=10)
    per_chunk = []
    for n in range(200):
        w.append(seg(n))
        if n % 10 == 9:
            per_chunk.append(w.bytes_written)
    # Each run of 10 segments costs the same (within a few bytes of digits), early or late.
    costs = [b - a for a, b in itertools.pairwise(per_chunk)]
    assert max(costs) - min(costs) <= 10 * 10
    assert max(costs) < naive_manifest_bytes(200) * 10 / 2


def test_failed_upload_is_retried_then_surfaces_and_is_not_lost() -> None:
    store = FakeStore()
    real = store.put_bytes
    fails = {"n": 0}

    def flaky(key, data, **kw):
        if fails["n"] > 0:
            fails["n"] -= 1
            raise OSError("store down")
        real(key, data, **kw)

    store.put_bytes = flaky  # type: ignore[method-assign]
    sleeps: list[float] = []
    w = ManifestWriter(
        store,
        "s",
        "sess",
        "w1",
        "src",
        chunk_size=5,
        retry=Retry(attempts=3, base_seconds=0.5, cap_seconds=1),
        sleep=sleeps.append,
    )
    fails["n"] = 2
    w.append(seg(0))
    assert sleeps == [0.5, 1]
    fails["n"] = 10
    with pytest.raises(UploadFailed):
        w.append(seg(1))
    fails["n"] = 0
    w.append(seg(2))
    assert [s.seq for s in read_manifests(store, "s", "sess", "src")] == [0, 1, 2]


def test_segment_of_another_writer_is_refused() -> None:
    w = ManifestWriter(FakeStore(), "s", "sess", "w1", "src")
    with pytest.raises(ValueError):
        w.append(seg(0, writer="w2"))


def test_live_playlist_merges_writers_and_only_grows() -> None:
    store = FakeStore()
    record(store, "s", "sess", "w1", ("src",), range(0, 6))
    uri = lambda s: s.name()  # noqa: E731
    first = live_playlist(store, "s", "sess", "src", target=2, segment_uri=uri)
    record(store, "s", "sess", "w2", ("src",), range(4, 9))  # a second writer overlaps 4 and 5
    second = live_playlist(store, "s", "sess", "src", target=2, segment_uri=uri)
    assert first is not None and second is not None
    a, b = parse_media_playlist(first), parse_media_playlist(second)
    assert a.playlist_type == "EVENT" and not a.ended
    assert b.segments[: len(a.segments)] == a.segments  # append-only
    assert len(b.segments) == 9
    assert live_playlist(store, "s", "other", "src", target=2, segment_uri=uri) is None
