"""MemoryCatalogue specifics the shared contract suite cannot show: an injected clock, copies, threads.

The full behaviour is checked against MySQL in tests/integration/test_catalogue_contract.py.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from reelay.catalogue import MemoryCatalogue
from reelay.models import Video, VideoStatus


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, 12, 0, 0)

    def __call__(self) -> datetime:
        return self.now


def queued(cat: MemoryCatalogue, video_id: str = "v1") -> Video:
    cat.create(Video(video_id=video_id, video_key="k", display_name="n", owner_id="o", email="e@x"))
    assert cat.mark_uploaded(video_id, size_bytes=1, content_type=None)
    return cat.get(video_id)


def test_leases_follow_the_injected_clock() -> None:
    # Given w1 holds a 60 s lease on a catalogue with a hand-driven clock
    clock = Clock()
    cat = MemoryCatalogue(clock=clock)
    queued(cat)
    assert cat.claim("v1", "w1", 60) is not None
    # When 59 s pass, Then the lease still holds
    clock.now += timedelta(seconds=59)
    assert cat.claim("v1", "w2", 60) is None
    # When a heartbeat extends it and another 59 s pass, Then it still holds
    assert cat.heartbeat("v1", "w1", lease_seconds=60, progress=10, playable=False)
    clock.now += timedelta(seconds=59)
    assert cat.claim("v1", "w2", 60) is None
    # When it finally runs out, Then w2 takes over and w1 has lost it
    clock.now += timedelta(seconds=2)
    assert cat.claim("v1", "w2", 60) is not None
    assert not cat.heartbeat("v1", "w1", lease_seconds=60, progress=20, playable=False)
    assert cat.get("v1").updated_at == clock.now


def test_complete_has_one_winner_among_many_threads() -> None:
    cat = MemoryCatalogue()
    queued(cat)
    cat.claim("v1", "w1", 60)
    barrier = threading.Barrier(16)
    wins: list[bool] = []

    def finish() -> None:
        barrier.wait()
        wins.append(cat.complete("v1", "w1", duration_seconds=1, renditions=[]))

    threads = [threading.Thread(target=finish) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert wins.count(True) == 1 and len(wins) == 16
    assert cat.get("v1").status == VideoStatus.READY


def test_the_stored_video_is_not_the_callers_object() -> None:
    # Given a video object the caller keeps using after create
    cat = MemoryCatalogue()
    original = Video(video_id="v1", video_key="k", display_name="n", owner_id="o", email="e@x")
    cat.create(original)
    # When the caller changes it, Then the catalogue does not
    original.display_name = "changed behind our back"
    assert cat.get("v1").display_name == "n"
