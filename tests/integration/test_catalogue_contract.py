"""One contract, two catalogues: every test runs against MemoryCatalogue and MySQLCatalogue.

The MySQL side runs on the real server (a fresh database per session, migrated by ``migrate``),
so the fake other suites rely on cannot drift from the adapter that ships.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import pymysql
import pytest

from reelay.catalogue import ConnectionProvider, MemoryCatalogue, MySQLCatalogue, migrate
from reelay.errors import Conflict, InvalidInput, NotFound, QuotaExceeded
from reelay.models import OutboxEvent, Rendition, Video, VideoSource, VideoStatus
from reelay.ports import VideoCatalogue
from reelay.quotas import STORED_BYTES, UPLOAD_BYTES_PER_DAY, VIDEOS_IN_FLIGHT, UploadQuota
from tests.conftest import scratch_database

T0 = datetime(2026, 1, 2, 3, 4, 5, 678000)
R720 = Rendition(
    name="720p",
    width=1280,
    height=720,
    bandwidth=3_000_000,
    codecs="avc1.64001f,mp4a.40.2",
    playlist="720p/index.m3u8",
)
R360 = Rendition(
    name="360p",
    width=640,
    height=360,
    bandwidth=800_000,
    average_bandwidth=700_000,
    codecs="avc1.4d401e,mp4a.40.2",
    playlist="360p/index.m3u8",
)


def _root(url: str) -> pymysql.connections.Connection:
    u = urlparse(url)
    return pymysql.connect(
        host=u.hostname,
        port=u.port or 3306,
        user=u.username or "root",
        password=u.password or "",
        database=u.path.lstrip("/") or None,
        autocommit=True,
    )


@pytest.fixture(scope="module")
def migrated_url(database_url: str) -> str:
    provider = ConnectionProvider.from_url(database_url)
    migrate(provider)
    provider.close()
    return database_url


@dataclass
class World:
    """Two handles on one catalogue: for MySQL, two processes' worth of separate connections."""

    catalogue: VideoCatalogue
    other: VideoCatalogue


@pytest.fixture(params=["memory", pytest.param("mysql", marks=pytest.mark.mysql)])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    if request.param == "memory":
        memory = MemoryCatalogue()
        yield World(memory, memory)
        return
    url = request.getfixturevalue("migrated_url")
    conn = _root(url)
    with conn.cursor() as cur:
        cur.execute("DELETE FROM videos")
        cur.execute("DELETE FROM moderation_audit")
        cur.execute("DELETE FROM event_outbox")
        cur.execute("DELETE FROM streams")
        cur.execute("DELETE FROM media_moves")
    providers = [ConnectionProvider.from_url(url), ConnectionProvider.from_url(url)]
    try:
        yield World(MySQLCatalogue(providers[0]), MySQLCatalogue(providers[1]))
    finally:
        for p in providers:
            p.close()
        conn.close()


@pytest.fixture
def catalogue(world: World) -> VideoCatalogue:
    return world.catalogue


def new_video(**overrides: Any) -> Video:
    fields: dict[str, Any] = {
        "video_id": uuid.uuid4().hex,
        "video_key": "uploads/x/source.mp4",
        "display_name": "Holiday",
        "owner_id": "owner-1",
        "email": "owner@example.com",
    }
    fields.update(overrides)
    return Video(**fields)


def ready(cat: VideoCatalogue, **overrides: Any) -> Video:
    video = cat.create(new_video(**overrides))
    assert cat.mark_uploaded(video.video_id, size_bytes=10, content_type="video/mp4")
    assert cat.claim(video.video_id, "setup", 60) is not None
    assert cat.complete(video.video_id, "setup", duration_seconds=1.0, renditions=[R360])
    return cat.get(video.video_id)


def queued(cat: VideoCatalogue, **overrides: Any) -> Video:
    video = cat.create(new_video(**overrides))
    assert cat.mark_uploaded(video.video_id, size_bytes=1234, content_type="video/mp4")
    return cat.get(video.video_id)


def all_pages(fetch: Callable[[str | None], Any], limit: int) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = fetch(cursor)
        assert len(page.items) <= limit
        pages.append([v.video_id for v in page.items])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


# --- create / get ---------------------------------------------------------------------------
def test_create_then_get_returns_every_field(catalogue: VideoCatalogue) -> None:
    # Given a video with every optional field set
    video = new_video(
        description="a long walk",
        status=VideoStatus.READY,
        failure_reason=None,
        progress=100,
        playable=True,
        is_transcoded=True,
        duration_seconds=12.5,
        renditions=[R720, R360],
        source=VideoSource.RECORDING,
        content_type="video/mp4",
        size_bytes=5_000_000_000,
        attempts=2,
        upload_time=T0,
        created_at=T0,
        updated_at=T0,
    )
    # When it is created and read back
    created = catalogue.create(video)
    got = catalogue.get(video.video_id)
    # Then both equal what went in
    assert created == video
    assert got == video


def test_create_truncates_times_to_milliseconds(catalogue: VideoCatalogue) -> None:
    # Given an upload time with microseconds (DATETIME(3) keeps milliseconds)
    video = new_video(upload_time=T0.replace(microsecond=123987))
    # When it is created
    catalogue.create(video)
    # Then the stored time is truncated, the same way in both catalogues
    assert catalogue.get(video.video_id).upload_time == T0.replace(microsecond=123000)


def test_get_unknown_raises_not_found(catalogue: VideoCatalogue) -> None:
    # Given an empty catalogue, When unknown or impossible ids are read, Then NotFound
    for bad in (uuid.uuid4().hex, "x" * 300, "vidéo", "", "a' OR '1'='1"):
        with pytest.raises(NotFound):
            catalogue.get(bad)


def test_create_twice_is_a_conflict(catalogue: VideoCatalogue) -> None:
    # Given a stored video
    video = catalogue.create(new_video(display_name="first"))
    # When the same id is created again, Then Conflict, and the first row is untouched
    with pytest.raises(Conflict):
        catalogue.create(new_video(video_id=video.video_id, display_name="second"))
    assert catalogue.get(video.video_id).display_name == "first"


@pytest.mark.parametrize(
    "overrides",
    [
        {"display_name": ""},
        {"display_name": "   "},
        {"display_name": "n" * 256},
        {"description": "d" * 5001},
        {"video_id": "vidéo"},
        {"video_id": "has space"},
        {"video_id": "v" * 65},
        {"video_key": "k" * 1025},
        {"owner_id": ""},
        {"email": "e" * 321},
        {"size_bytes": -1},
        {"content_type": "t" * 256},
    ],
    ids=lambda o: next(iter(o)) + "=" + repr(next(iter(o.values())))[:12],
)
def test_create_rejects_bad_values_and_stores_nothing(catalogue: VideoCatalogue, overrides: dict) -> None:
    # Given a video with one bad field
    video = new_video(**overrides)
    # When it is created, Then InvalidInput and nothing is stored
    with pytest.raises(InvalidInput):
        catalogue.create(video)
    assert catalogue.list_by_owner(video.owner_id or "owner-1", limit=10).items == []


# --- listing --------------------------------------------------------------------------------
def test_list_ready_is_newest_first_and_skips_other_statuses(catalogue: VideoCatalogue) -> None:
    # Given ready videos at three times, plus a queued and an awaiting one
    old = ready(catalogue, upload_time=T0)
    new = ready(catalogue, upload_time=T0 + timedelta(hours=2))
    mid = ready(catalogue, upload_time=T0 + timedelta(hours=1))
    queued(catalogue, upload_time=T0 + timedelta(hours=3))
    catalogue.create(new_video(upload_time=T0 + timedelta(hours=4)))
    # When the ready list is read
    page = catalogue.list_ready(limit=10)
    # Then only ready videos come back, newest first, with no further page
    assert [v.video_id for v in page.items] == [new.video_id, mid.video_id, old.video_id]
    assert page.next_cursor is None
    assert all(v.status == VideoStatus.READY for v in page.items)


def test_list_ready_pages_are_stable_across_equal_upload_times(catalogue: VideoCatalogue) -> None:
    # Given 9 ready videos, 5 of them uploaded in the same millisecond
    times = [T0] * 5 + [T0 - timedelta(seconds=1), T0 + timedelta(seconds=1), T0 + timedelta(days=1), T0]
    videos = [ready(catalogue, upload_time=t) for t in times]
    expected = [v.video_id for v in sorted(videos, key=lambda v: (v.upload_time, v.video_id), reverse=True)]
    # When they are read two at a time, following next_cursor
    pages = all_pages(lambda c: catalogue.list_ready(limit=2, cursor=c), 2)
    # Then every video appears exactly once, in (uploadTime DESC, videoId DESC) order
    assert [len(p) for p in pages] == [2, 2, 2, 2, 1]
    assert [vid for page in pages for vid in page] == expected


def test_a_page_that_ends_exactly_at_the_last_item_has_no_cursor(catalogue: VideoCatalogue) -> None:
    # Given exactly two ready videos, When a page of two is read, Then there is no next page
    ready(catalogue)
    ready(catalogue)
    assert catalogue.list_ready(limit=2).next_cursor is None


def test_a_cursor_survives_the_deletion_of_its_anchor(catalogue: VideoCatalogue) -> None:
    # Given three ready videos and the cursor after the first
    a, b, c = (ready(catalogue, upload_time=T0 - timedelta(minutes=i)) for i in range(3))
    first = catalogue.list_ready(limit=1)
    assert [v.video_id for v in first.items] == [a.video_id]
    # When the anchor video is deleted before the next page is read
    catalogue.delete(a.video_id)
    page = catalogue.list_ready(limit=5, cursor=first.next_cursor)
    # Then the listing carries on where it was
    assert [v.video_id for v in page.items] == [b.video_id, c.video_id]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64 !!!",
        "%%%",
        _b64(b"not json"),
        _b64(b"{}"),
        _b64(b'["2026-01-01T00:00:00"]'),
        _b64(b'["yesterday", "abc"]'),
        _b64(b'[1, "abc"]'),
        _b64(b'["2026-01-01T00:00:00", ""]'),
        _b64(b'["2026-01-01T00:00:00", "vid\\u00e9o"]'),
        _b64(b"\xff\xfe\xfd"),
        "A" * 5000,
    ],
)
def test_a_bad_cursor_is_invalid_input(catalogue: VideoCatalogue, cursor: str) -> None:
    # Given a ready video, When a malformed cursor is passed to either listing, Then InvalidInput
    ready(catalogue)
    with pytest.raises(InvalidInput):
        catalogue.list_ready(limit=5, cursor=cursor)
    with pytest.raises(InvalidInput):
        catalogue.list_by_owner("owner-1", limit=5, cursor=cursor)


@pytest.mark.parametrize("limit", [0, -1, 1001, True])
def test_a_bad_limit_is_invalid_input(catalogue: VideoCatalogue, limit: int) -> None:
    with pytest.raises(InvalidInput):
        catalogue.list_ready(limit=limit)
    with pytest.raises(InvalidInput):
        catalogue.list_by_owner("owner-1", limit=limit)


def test_list_by_owner_shows_every_status_of_that_owner_only(catalogue: VideoCatalogue) -> None:
    # Given alice has a ready, a queued and an awaiting video, and bob has one
    mine = [
        ready(catalogue, owner_id="alice", upload_time=T0),
        queued(catalogue, owner_id="alice", upload_time=T0 + timedelta(seconds=1)),
        catalogue.create(new_video(owner_id="alice", upload_time=T0 + timedelta(seconds=1))),
    ]
    catalogue.create(new_video(owner_id="bob"))
    # When alice's videos are paged one at a time
    pages = all_pages(lambda c: catalogue.list_by_owner("alice", limit=1, cursor=c), 1)
    # Then all three come back once, newest first, and no one else's
    expected = [v.video_id for v in sorted(mine, key=lambda v: (v.upload_time, v.video_id), reverse=True)]
    assert [vid for page in pages for vid in page] == expected
    assert catalogue.list_by_owner("nobody", limit=5).items == []
    # Owner ids match exactly, not case-insensitively
    assert catalogue.list_by_owner("ALICE", limit=5).items == []


# --- metadata and delete --------------------------------------------------------------------
def test_update_metadata_changes_only_what_is_given(catalogue: VideoCatalogue) -> None:
    # Given a video
    video = catalogue.create(new_video(display_name="old", description="keep me", updated_at=T0))
    # When only the name changes
    renamed = catalogue.update_metadata(video.video_id, display_name="new name ✓")
    # Then the description stays, and the row says it was updated
    assert (renamed.display_name, renamed.description) == ("new name ✓", "keep me")
    assert renamed.updated_at > T0
    # And when only the description changes, the new name stays
    described = catalogue.update_metadata(video.video_id, description="")
    assert (described.display_name, described.description) == ("new name ✓", "")
    assert catalogue.get(video.video_id) == described
    # And with nothing to change, the video comes back as it is
    assert catalogue.update_metadata(video.video_id) == described


def test_update_metadata_rejects_bad_values_and_unknown_ids(catalogue: VideoCatalogue) -> None:
    video = catalogue.create(new_video(display_name="keep"))
    for kwargs in ({"display_name": ""}, {"display_name": "x" * 256}, {"description": "y" * 5001}):
        with pytest.raises(InvalidInput):
            catalogue.update_metadata(video.video_id, **kwargs)
    assert catalogue.get(video.video_id).display_name == "keep"
    for missing in (uuid.uuid4().hex, "vidéo"):
        with pytest.raises(NotFound):
            catalogue.update_metadata(missing, display_name="x")
        with pytest.raises(NotFound):
            catalogue.update_metadata(missing)


def test_delete_removes_the_video_once(catalogue: VideoCatalogue) -> None:
    # Given a ready video
    video = ready(catalogue)
    # When it is deleted
    catalogue.delete(video.video_id)
    # Then it is gone from get and listings, and a second delete is NotFound
    with pytest.raises(NotFound):
        catalogue.get(video.video_id)
    assert catalogue.list_ready(limit=5).items == []
    with pytest.raises(NotFound):
        catalogue.delete(video.video_id)
    with pytest.raises(NotFound):
        catalogue.delete("vidéo")


# --- upload -> queue ------------------------------------------------------------------------
def test_mark_uploaded_queues_an_awaiting_video_once(catalogue: VideoCatalogue) -> None:
    # Given a video awaiting its upload
    video = catalogue.create(new_video())
    # When the upload lands, twice (S3 notifications can repeat)
    first = catalogue.mark_uploaded(video.video_id, size_bytes=42, content_type="video/webm")
    second = catalogue.mark_uploaded(video.video_id, size_bytes=42, content_type="video/webm")
    # Then only the first queues it, and size and type are recorded
    assert (first, second) == (True, False)
    got = catalogue.get(video.video_id)
    assert (got.status, got.size_bytes, got.content_type) == (VideoStatus.QUEUED, 42, "video/webm")


def test_mark_uploaded_leaves_a_failed_video_failed(catalogue: VideoCatalogue) -> None:
    # Given a video that failed after a transcode attempt
    video = queued(catalogue)
    catalogue.claim(video.video_id, "w1", 60)
    assert catalogue.fail(video.video_id, "bad media", worker_id="w1")
    # When a new upload lands, Then it is not queued again: reason and attempts stay
    assert not catalogue.mark_uploaded(video.video_id, size_bytes=7, content_type=None)
    got = catalogue.get(video.video_id)
    assert (got.status, got.failure_reason, got.attempts) == (VideoStatus.FAILED, "bad media", 1)


def test_reopen_upload_undoes_a_mark_uploaded_whose_job_was_never_sent(catalogue: VideoCatalogue) -> None:
    # Given a video marked uploaded (its job not sent yet)
    video = queued(catalogue)
    # When it is reopened, Then it awaits its upload again and can be marked uploaded once more
    assert catalogue.reopen_upload(video.video_id)
    assert catalogue.get(video.video_id).status == VideoStatus.AWAITING_UPLOAD
    assert not catalogue.reopen_upload(video.video_id)
    assert catalogue.mark_uploaded(video.video_id, size_bytes=7, content_type=None)
    # And a video a worker has claimed, a ready one or an unknown id is never reopened
    catalogue.claim(video.video_id, "w1", 60)
    assert not catalogue.reopen_upload(video.video_id)
    assert catalogue.get(video.video_id).status == VideoStatus.PROCESSING
    assert not catalogue.reopen_upload(ready(catalogue).video_id)
    assert not catalogue.reopen_upload(uuid.uuid4().hex)


def test_mark_uploaded_leaves_processing_and_ready_videos_alone(catalogue: VideoCatalogue) -> None:
    done = ready(catalogue)
    busy = queued(catalogue)
    catalogue.claim(busy.video_id, "w1", 60)
    assert not catalogue.mark_uploaded(done.video_id, size_bytes=1, content_type=None)
    assert not catalogue.mark_uploaded(busy.video_id, size_bytes=1, content_type=None)
    assert catalogue.get(done.video_id).status == VideoStatus.READY
    assert catalogue.get(busy.video_id).status == VideoStatus.PROCESSING


def test_mark_uploaded_rejects_unknown_ids_and_bad_sizes(catalogue: VideoCatalogue) -> None:
    video = catalogue.create(new_video())
    with pytest.raises(NotFound):
        catalogue.mark_uploaded(uuid.uuid4().hex, size_bytes=1, content_type=None)
    with pytest.raises(InvalidInput):
        catalogue.mark_uploaded(video.video_id, size_bytes=-5, content_type=None)
    with pytest.raises(InvalidInput):
        catalogue.mark_uploaded(video.video_id, size_bytes=1, content_type="x" * 300)
    assert catalogue.get(video.video_id).status == VideoStatus.AWAITING_UPLOAD


# --- claim and leases -----------------------------------------------------------------------
def test_claim_takes_a_queued_video_for_one_worker(world: World) -> None:
    # Given a queued video
    video = queued(world.catalogue)
    # When worker 1 claims it
    claimed = world.catalogue.claim(video.video_id, "w1", 60)
    # Then it is processing, one attempt in, and worker 2 cannot take it while the lease lives
    assert claimed is not None
    assert (claimed.status, claimed.attempts) == (VideoStatus.PROCESSING, 1)
    assert world.other.claim(video.video_id, "w2", 60) is None


def test_a_worker_reclaims_its_own_lease_at_once(catalogue: VideoCatalogue) -> None:
    # Given worker w1 holds a long lease (and then restarts with the same id)
    video = queued(catalogue)
    catalogue.claim(video.video_id, "w1", 3600)
    # When w1 claims again, Then it gets the job back straight away, as a new attempt
    again = catalogue.claim(video.video_id, "w1", 3600)
    assert again is not None and again.attempts == 2


def test_an_expired_lease_passes_to_another_worker_and_the_first_loses_it(world: World) -> None:
    # Given w1 claimed with a one-second lease and went quiet
    video = queued(world.catalogue)
    assert world.catalogue.claim(video.video_id, "w1", 1) is not None
    time.sleep(1.3)
    # When w2 claims
    taken = world.other.claim(video.video_id, "w2", 60)
    # Then w2 has it, and w1's heartbeat, completion, failure and release are all refused
    assert taken is not None and taken.attempts == 2
    assert not world.catalogue.heartbeat(video.video_id, "w1", lease_seconds=60, progress=50, playable=True)
    assert not world.catalogue.complete(video.video_id, "w1", duration_seconds=1, renditions=[R360])
    assert not world.catalogue.fail(video.video_id, "late", worker_id="w1")
    assert not world.catalogue.release(video.video_id, "w1")
    got = world.other.get(video.video_id)
    assert (got.status, got.failure_reason) == (VideoStatus.PROCESSING, None)


def test_one_media_mover_at_a_time_fenced_by_its_id(world: World) -> None:
    # Given mover A holds video v1's media-move lease (any video id: a deleted video's too)
    assert world.catalogue.claim_media_move("v1", "mover-a", 60)
    # Then mover B, on other connections, cannot take it, nor renew or release it
    assert not world.other.claim_media_move("v1", "mover-b", 60)
    assert not world.other.renew_media_move("v1", "mover-b", 60)
    world.other.release_media_move("v1", "mover-b")
    assert not world.other.claim_media_move("v1", "mover-b", 60)
    # Other videos are free; A renews its own
    assert world.other.claim_media_move("v2", "mover-b", 60)
    assert world.catalogue.renew_media_move("v1", "mover-a", 60)
    # When A lets go, Then B takes it, and A's late renewal is refused
    world.catalogue.release_media_move("v1", "mover-a")
    assert world.other.claim_media_move("v1", "mover-b", 60)
    assert not world.catalogue.renew_media_move("v1", "mover-a", 60)


def test_an_expired_media_move_lease_passes_on_and_its_holder_cannot_renew_it(world: World) -> None:
    # Given mover A's one-second lease ran out
    assert world.catalogue.claim_media_move("v1", "mover-a", 1)
    time.sleep(1.3)
    # Then A cannot renew it (it must delete nothing), and B takes it
    assert not world.catalogue.renew_media_move("v1", "mover-a", 60)
    assert world.other.claim_media_move("v1", "mover-b", 60)
    # And A's release does not free B's lease
    world.catalogue.release_media_move("v1", "mover-a")
    assert not world.catalogue.claim_media_move("v1", "mover-c", 60)


def test_concurrent_media_move_claims_give_it_to_one(world: World) -> None:
    barrier = threading.Barrier(2)
    won: list[bool] = []

    def claim(catalogue: VideoCatalogue, mover: str) -> None:
        barrier.wait()
        won.append(catalogue.claim_media_move("v9", mover, 60))

    threads = [
        threading.Thread(target=claim, args=(world.catalogue, "mover-a")),
        threading.Thread(target=claim, args=(world.other, "mover-b")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(won) == [False, True]


def test_a_heartbeat_keeps_the_lease_alive(world: World) -> None:
    # Given w1 holds a one-second lease
    video = queued(world.catalogue)
    world.catalogue.claim(video.video_id, "w1", 1)
    # When it heartbeats with a longer lease before expiry, and the old lease time passes
    assert world.catalogue.heartbeat(video.video_id, "w1", lease_seconds=60, progress=40, playable=True)
    time.sleep(1.3)
    # Then no one else can claim, and progress is recorded
    assert world.other.claim(video.video_id, "w2", 60) is None
    got = world.other.get(video.video_id)
    assert (got.progress, got.playable) == (40, True)


def test_heartbeat_clamps_progress_and_refuses_strangers(catalogue: VideoCatalogue) -> None:
    video = queued(catalogue)
    catalogue.claim(video.video_id, "w1", 60)
    assert catalogue.heartbeat(video.video_id, "w1", lease_seconds=60, progress=250, playable=False)
    assert catalogue.get(video.video_id).progress == 100
    assert catalogue.heartbeat(video.video_id, "w1", lease_seconds=60, progress=-3, playable=False)
    assert catalogue.get(video.video_id).progress == 0
    # Same values twice in a row still count as a live lease
    assert catalogue.heartbeat(video.video_id, "w1", lease_seconds=60, progress=0, playable=False)
    assert not catalogue.heartbeat(video.video_id, "w2", lease_seconds=60, progress=1, playable=False)
    assert not catalogue.heartbeat(uuid.uuid4().hex, "w1", lease_seconds=60, progress=1, playable=False)
    with pytest.raises(InvalidInput):
        catalogue.heartbeat(video.video_id, "w1", lease_seconds=0, progress=1, playable=False)


def test_claim_refuses_ready_failed_awaiting_and_unknown_videos(catalogue: VideoCatalogue) -> None:
    done = ready(catalogue)
    broken = queued(catalogue)
    catalogue.fail(broken.video_id, "corrupt")
    awaiting = catalogue.create(new_video())
    for vid in (done.video_id, broken.video_id, awaiting.video_id, uuid.uuid4().hex, "vidéo"):
        assert catalogue.claim(vid, "w1", 60) is None
    assert catalogue.get(done.video_id).attempts == 1


@pytest.mark.parametrize(("worker", "lease"), [("", 60), ("w" * 129, 60), ("w1", 0), ("w1", -1)])
def test_claim_rejects_bad_worker_ids_and_leases(catalogue: VideoCatalogue, worker: str, lease: int) -> None:
    video = queued(catalogue)
    with pytest.raises(InvalidInput):
        catalogue.claim(video.video_id, worker, lease)
    assert catalogue.get(video.video_id).status == VideoStatus.QUEUED


# --- complete, fail, release ----------------------------------------------------------------
def test_complete_makes_the_video_ready_with_its_renditions(catalogue: VideoCatalogue) -> None:
    video = queued(catalogue)
    catalogue.claim(video.video_id, "w1", 60)
    assert catalogue.complete(video.video_id, "w1", duration_seconds=61.25, renditions=[R720, R360])
    got = catalogue.get(video.video_id)
    assert (got.status, got.is_transcoded, got.progress, got.playable) == (VideoStatus.READY, True, 100, True)
    assert (got.duration_seconds, got.renditions) == (61.25, [R720, R360])
    # Ready videos cannot be claimed again
    assert catalogue.claim(video.video_id, "w1", 60) is None


@pytest.mark.parametrize("duration", [float("nan"), float("inf"), -1.0])
def test_complete_rejects_impossible_durations(catalogue: VideoCatalogue, duration: float) -> None:
    video = queued(catalogue)
    catalogue.claim(video.video_id, "w1", 60)
    with pytest.raises(InvalidInput):
        catalogue.complete(video.video_id, "w1", duration_seconds=duration, renditions=[])
    assert catalogue.get(video.video_id).status == VideoStatus.PROCESSING


def test_complete_succeeds_once_when_two_calls_race(world: World) -> None:
    # Given a job held by w1 whose duplicate delivery also reached a second process as w1
    video = queued(world.catalogue)
    world.catalogue.claim(video.video_id, "w1", 60)
    barrier = threading.Barrier(2)
    results: list[bool] = []

    def finish(cat: VideoCatalogue) -> None:
        barrier.wait()
        results.append(cat.complete(video.video_id, "w1", duration_seconds=3, renditions=[R360]))

    # When both complete at the same moment
    threads = [threading.Thread(target=finish, args=(c,)) for c in (world.catalogue, world.other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # Then exactly one of them made the transition (so the video is published once)
    assert sorted(results) == [False, True]


def test_claim_races_have_one_winner(world: World) -> None:
    # Given one queued video and eight claim attempts from two processes at once
    video = queued(world.catalogue)
    barrier = threading.Barrier(8)
    winners: list[str] = []

    def grab(cat: VideoCatalogue, worker: str) -> None:
        barrier.wait()
        if cat.claim(video.video_id, worker, 60) is not None:
            winners.append(worker)

    threads = [
        threading.Thread(target=grab, args=(world.catalogue if i % 2 else world.other, f"w{i}"))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # Then exactly one worker holds it, after one attempt
    assert len(winners) == 1
    assert world.catalogue.get(video.video_id).attempts == 1


def test_fail_by_the_lease_holder_records_the_reason(catalogue: VideoCatalogue) -> None:
    video = queued(catalogue)
    catalogue.claim(video.video_id, "w1", 60)
    assert not catalogue.fail(video.video_id, "not mine", worker_id="w2")
    assert catalogue.fail(video.video_id, "no video stream in the file", worker_id="w1")
    got = catalogue.get(video.video_id)
    assert (got.status, got.failure_reason) == (VideoStatus.FAILED, "no video stream in the file")
    # A failed video is not failed twice, and its lease is gone
    assert not catalogue.fail(video.video_id, "again", worker_id="w1")
    assert catalogue.claim(video.video_id, "w1", 60) is None


def test_fail_without_a_worker_applies_before_the_video_is_ready(catalogue: VideoCatalogue) -> None:
    awaiting = catalogue.create(new_video())
    waiting = queued(catalogue)
    done = ready(catalogue)
    assert catalogue.fail(awaiting.video_id, "the uploaded file is empty")
    assert catalogue.fail(waiting.video_id, "r" * 5000)
    assert not catalogue.fail(done.video_id, "too late")
    assert not catalogue.fail(uuid.uuid4().hex, "nobody")
    assert catalogue.get(done.video_id).status == VideoStatus.READY
    assert len(catalogue.get(waiting.video_id).failure_reason or "") == 2000  # clipped, not rejected


def test_release_hands_the_job_back_for_anyone(world: World) -> None:
    # Given w1 holds a long lease
    video = queued(world.catalogue)
    world.catalogue.claim(video.video_id, "w1", 3600)
    world.catalogue.heartbeat(video.video_id, "w1", lease_seconds=3600, progress=30, playable=True)
    # When a stranger releases it nothing happens; when w1 releases it (SIGTERM) it is queued again
    assert not world.other.release(video.video_id, "w2")
    assert world.catalogue.release(video.video_id, "w1")
    got = world.other.get(video.video_id)
    assert (got.status, got.progress, got.playable) == (VideoStatus.QUEUED, 0, False)
    # Then another worker claims it at once, and a second release by w1 is refused
    assert world.other.claim(video.video_id, "w2", 60) is not None
    assert not world.catalogue.release(video.video_id, "w1")


def test_in_flight_lists_queued_and_processing_videos(catalogue: VideoCatalogue) -> None:
    a = queued(catalogue)
    b = queued(catalogue)
    catalogue.claim(b.video_id, "w1", 60)
    ready(catalogue)
    catalogue.create(new_video())
    failed = queued(catalogue)
    catalogue.fail(failed.video_id, "x")
    found = catalogue.in_flight()
    assert {v.video_id for v in found} == {a.video_id, b.video_id}
    assert {v.status for v in found} == {VideoStatus.QUEUED, VideoStatus.PROCESSING}


def test_returned_videos_are_copies(catalogue: VideoCatalogue) -> None:
    # Given a video read from the catalogue, When the caller mutates it, Then the catalogue is unchanged
    video = ready(catalogue)
    video.renditions.append(R720)
    video.display_name = "mutated"
    assert catalogue.get(video.video_id).renditions == [R360]
    assert catalogue.get(video.video_id).display_name == "Holiday"


# --- event outbox ---------------------------------------------------------------------------
def ready_event(video: Video, **detail: Any) -> OutboxEvent:
    return OutboxEvent(
        event_type="video.ready", video_id=video.video_id, detail={"videoId": video.video_id, **detail}
    )


def processing(cat: VideoCatalogue, worker: str = "w1") -> Video:
    video = queued(cat)
    assert cat.claim(video.video_id, worker, 60) is not None
    return video


def test_complete_records_its_event_in_the_outbox(world: World) -> None:
    # Given a video being transcoded by w1
    video = processing(world.catalogue)
    event = ready_event(video, renditions=["360p"], durationSeconds=1.5, note="é ✓")
    # When w1 completes it with its video.ready event
    assert world.catalogue.complete(
        video.video_id, "w1", duration_seconds=1.5, renditions=[R360], event=event
    )
    # Then the event is due at once, detail intact, with an id and one attempt counted by this claim
    (claimed,) = world.other.claim_events(limit=10, lease_seconds=60)
    assert (claimed.event_type, claimed.video_id, claimed.detail) == (
        "video.ready",
        video.video_id,
        event.detail,
    )
    assert isinstance(claimed.event_id, int) and claimed.attempts == 1
    assert world.other.pending_events()[0] == 1
    # And it keeps its key (what subscribers see as eventId) and the time it was recorded
    assert claimed.event_key == event.event_key
    updated = world.other.get(video.video_id).updated_at
    assert claimed.created_at is not None and abs(claimed.created_at - updated) < timedelta(seconds=5)


def test_a_transition_that_does_not_take_records_no_event(catalogue: VideoCatalogue) -> None:
    # Given a video leased by w1, and a ready one
    video = processing(catalogue)
    done = ready(catalogue)
    # When a stranger completes or fails it, or anyone fails the ready one
    assert not catalogue.complete(
        video.video_id, "w2", duration_seconds=1, renditions=[R360], event=ready_event(video)
    )
    failed = OutboxEvent(event_type="video.failed", video_id=video.video_id, detail={"reason": "x"})
    assert not catalogue.fail(video.video_id, "x", worker_id="w2", event=failed)
    late = OutboxEvent(event_type="video.failed", video_id=done.video_id, detail={"reason": "late"})
    assert not catalogue.fail(done.video_id, "late", event=late)
    # Then nothing waits in the outbox
    assert catalogue.claim_events(limit=10, lease_seconds=60) == []
    assert catalogue.pending_events() == (0, 0.0)


def test_fail_records_its_event_with_and_without_a_lease(catalogue: VideoCatalogue) -> None:
    # Given one video leased by w1 and one still queued
    held, waiting = processing(catalogue), queued(catalogue)
    # When each is failed with its video.failed event
    for video, worker in ((held, "w1"), (waiting, None)):
        event = OutboxEvent(event_type="video.failed", video_id=video.video_id, detail={"reason": "bad"})
        assert catalogue.fail(video.video_id, "bad", worker_id=worker, event=event)
    # Then both are in the outbox, oldest first
    claimed = catalogue.claim_events(limit=10, lease_seconds=60)
    assert [(e.event_type, e.video_id) for e in claimed] == [
        ("video.failed", held.video_id),
        ("video.failed", waiting.video_id),
    ]


def test_a_claimed_event_is_not_due_again_until_its_lease_runs_out(world: World) -> None:
    # Given an event claimed with a two-second lease (its publisher then died)
    video = processing(world.catalogue)
    assert world.catalogue.complete(
        video.video_id, "w1", duration_seconds=1, renditions=[R360], event=ready_event(video)
    )
    world.other.pending_events()  # the other relay's connection is open before the lease starts
    (first,) = world.catalogue.claim_events(limit=10, lease_seconds=2)
    # When another relay looks at once, Then it finds nothing due
    assert world.other.claim_events(limit=10, lease_seconds=60) == []
    # When the lease has run out, Then the other relay gets it, as a second attempt
    time.sleep(2.3)
    (again,) = world.other.claim_events(limit=10, lease_seconds=60)
    assert again.event_id == first.event_id and again.attempts == 2
    # And once it is deleted it is gone for everyone, and deleting twice is harmless
    assert again.event_id is not None
    world.other.delete_event(again.event_id)
    world.catalogue.delete_event(again.event_id)
    time.sleep(1.3)
    assert world.catalogue.claim_events(limit=10, lease_seconds=60) == []
    assert world.catalogue.pending_events() == (0, 0.0)


def test_claims_filter_by_video_and_respect_the_limit(catalogue: VideoCatalogue) -> None:
    # Given three videos completed with their events
    videos = [processing(catalogue) for _ in range(3)]
    for v in videos:
        assert catalogue.complete(
            v.video_id, "w1", duration_seconds=1, renditions=[R360], event=ready_event(v)
        )
    # When one video's events are claimed, Then only its event comes back
    assert [
        e.video_id for e in catalogue.claim_events(limit=10, lease_seconds=60, video_id=videos[1].video_id)
    ] == [videos[1].video_id]
    assert catalogue.claim_events(limit=10, lease_seconds=60, video_id="not a video id!") == []
    # When the rest are claimed two at a time, Then oldest first, no repeats
    first = catalogue.claim_events(limit=2, lease_seconds=60)
    rest = catalogue.claim_events(limit=2, lease_seconds=60)
    assert [e.video_id for e in first + rest] == [videos[0].video_id, videos[2].video_id]
    count, oldest = catalogue.pending_events()
    assert count == 3 and oldest >= 0.0


def test_concurrent_relays_never_claim_the_same_event(world: World) -> None:
    # Given many events waiting
    videos = [processing(world.catalogue) for _ in range(12)]
    for v in videos:
        assert world.catalogue.complete(
            v.video_id, "w1", duration_seconds=1, renditions=[R360], event=ready_event(v)
        )
    # When two relays claim at the same moment, a few at a time, until nothing is due
    barrier = threading.Barrier(2)
    got: dict[str, list[int]] = {"a": [], "b": []}

    def relay(name: str, cat: VideoCatalogue) -> None:
        barrier.wait()
        while batch := cat.claim_events(limit=3, lease_seconds=60):
            got[name] += [e.event_id for e in batch if e.event_id is not None]

    threads = [
        threading.Thread(target=relay, args=(n, c)) for n, c in (("a", world.catalogue), ("b", world.other))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # Then every event was claimed exactly once
    assert sorted(got["a"] + got["b"]) == sorted(set(got["a"]) | set(got["b"]))
    assert len(got["a"] + got["b"]) == 12


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (OutboxEvent(event_type="Video Ready", video_id="{id}", detail={}), "lower-case, dotted"),
        (OutboxEvent(event_type="video.ready", video_id="someone-else", detail={}), "not"),
        (OutboxEvent(event_type="video.ready", video_id="{id}", detail={"x": float("nan")}), "not JSON"),
        (OutboxEvent(event_type="video.ready", video_id="{id}", detail={"x": object()}), "not JSON"),
        (OutboxEvent(event_type="video.ready", video_id="{id}", detail={"x": "y" * 200_001}), "larger than"),
        (
            OutboxEvent(event_type="video.ready", video_id="{id}", detail={}, event_key="no spaces"),
            "event key",
        ),
    ],
)
def test_a_bad_event_is_refused_and_the_transition_does_not_happen(
    catalogue: VideoCatalogue, event: OutboxEvent, message: str
) -> None:
    # Given a video leased by w1
    video = processing(catalogue)
    if event.video_id == "{id}":
        event = event.model_copy(update={"video_id": video.video_id})
    # When it is completed with an event that cannot be stored, Then the call is refused as a whole
    with pytest.raises(InvalidInput, match=message):
        catalogue.complete(video.video_id, "w1", duration_seconds=1, renditions=[R360], event=event)
    assert catalogue.get(video.video_id).status == VideoStatus.PROCESSING
    assert catalogue.pending_events()[0] == 0


def test_an_event_key_already_in_the_outbox_is_a_conflict_and_nothing_changes(
    catalogue: VideoCatalogue,
) -> None:
    # Given one video completed with its event, and another being transcoded
    done, video = processing(catalogue), processing(catalogue)
    event = ready_event(done)
    assert catalogue.complete(done.video_id, "w1", duration_seconds=1, renditions=[R360], event=event)
    # When the other is completed with an event reusing that key
    again = ready_event(video).model_copy(update={"event_key": event.event_key})
    with pytest.raises(Conflict):
        catalogue.complete(video.video_id, "w1", duration_seconds=1, renditions=[R360], event=again)
    # Then the transition did not happen either, and only the first event waits
    assert catalogue.get(video.video_id).status == VideoStatus.PROCESSING
    assert [e.video_id for e in catalogue.claim_events(limit=10, lease_seconds=60)] == [done.video_id]


@pytest.mark.mysql
@pytest.mark.parametrize("world", ["mysql"], indirect=True)  # a row only SQL by hand can write
def test_an_unreadable_outbox_row_does_not_block_the_others(world: World, migrated_url: str) -> None:
    # Given a hand-written row whose detail is JSON but not an object, recorded before a good event
    conn = _root(migrated_url)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO event_outbox (eventKey, eventType, videoId, detail, createdAt, nextAttemptAt)"
            " VALUES ('hand-written', 'video.ready', 'v0', '[1, 2]', UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))"
        )
    conn.close()
    video = processing(world.catalogue)
    assert world.catalogue.complete(
        video.video_id, "w1", duration_seconds=1, renditions=[R360], event=ready_event(video)
    )
    # When a relay claims, Then it still gets the good event; the bad row stays (the age alarm shows it)
    assert [e.video_id for e in world.other.claim_events(limit=10, lease_seconds=60)] == [video.video_id]
    assert world.other.pending_events()[0] == 2


def test_outbox_arguments_are_checked(catalogue: VideoCatalogue) -> None:
    with pytest.raises(InvalidInput):
        catalogue.claim_events(limit=0, lease_seconds=60)
    with pytest.raises(InvalidInput):
        catalogue.claim_events(limit=10, lease_seconds=0)


# --- MySQL only: schema and migrations ------------------------------------------------------
@pytest.fixture
def fresh_url() -> Iterator[str]:
    with scratch_database(prefix="reelay_mig") as url:
        yield url


@pytest.mark.mysql
def test_migrations_apply_once_in_order(fresh_url: str) -> None:
    # Given an empty database
    provider = ConnectionProvider.from_url(fresh_url)
    # When migrate runs twice
    first = migrate(provider)
    second = migrate(provider)
    provider.close()
    # Then the first run applies every migration in order and the second applies nothing
    assert first == ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0009", "0010", "0011", "0012"]
    assert second == []
    with _root(fresh_url).cursor() as cur:
        cur.execute("SELECT version, name, appliedAt FROM schema_migrations ORDER BY version")
        rows = cur.fetchall()
    assert [(v, n) for v, n, _ in rows] == [
        ("0001", "videos"),
        ("0002", "streams_and_recordings"),
        ("0003", "event_outbox"),
        ("0004", "outbox_subjects"),
        ("0005", "stream_relay"),
        ("0006", "recording_sessions"),
        ("0007", "recording_api"),
        ("0009", "visibility_moderation"),
        ("0010", "upload_quota"),
        ("0011", "media_moves"),
        ("0012", "stream_slate"),
    ]
    assert all(isinstance(at, datetime) for _, _, at in rows)


@pytest.mark.mysql
def test_concurrent_migrations_do_not_race(fresh_url: str) -> None:
    # Given two starters on one empty database
    barrier = threading.Barrier(2)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def start() -> None:
        provider = ConnectionProvider.from_url(fresh_url)
        barrier.wait()
        try:
            results.append(migrate(provider))
        except BaseException as exc:
            errors.append(exc)
        finally:
            provider.close()

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # Then neither fails, and between them every migration was applied exactly once
    assert errors == []
    assert sorted(v for r in results for v in r) == [
        "0001",
        "0002",
        "0003",
        "0004",
        "0005",
        "0006",
        "0007",
        "0009",
        "0010",
        "0011",
        "0012",
    ]


@pytest.mark.mysql
def test_schema_keeps_the_seed_columns_and_adds_the_product_tables(migrated_url: str) -> None:
    with _root(migrated_url).cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
        )
        columns: dict[str, set[str]] = {}
        for table, column in cur.fetchall():
            columns.setdefault(table, set()).add(column)
    # Column names are compared case-sensitively: the seed's exact spelling
    assert {"videoKey", "displayName", "uploadTime", "isTranscoded", "email"} <= columns["videos"]
    assert {
        "videoId",
        "ownerId",
        "status",
        "failureReason",
        "description",
        "progress",
        "playable",
        "durationSeconds",
        "renditions",
        "source",
        "contentType",
        "sizeBytes",
        "attempts",
        "leaseOwner",
        "leaseExpiresAt",
        "createdAt",
        "updatedAt",
        # 0009: who may watch, and the moderators' unpublish flag
        "visibility",
        "unpublished",
    } <= columns["videos"]
    assert columns["moderation_audit"] == {
        "auditId",
        "moderatorId",
        "moderatorEmail",
        "action",
        "videoId",
        "ownerId",
        "reason",
        "createdAt",
    }
    assert columns["streams"] == {
        "streamId",
        "ownerId",
        "name",
        "sourceUrl",
        "sourceProtocol",
        "kvsStreamName",
        "recordEnabled",
        "objectStoreUrl",
        "recordObjectStoreUrl",
        "webhookUrl",
        "desiredState",
        "state",
        "lastError",
        "createdAt",
        "updatedAt",
        # 0005: the live relay's source secret, video mode, health and task lease
        "sourceSecret",
        "videoMode",
        "stateSince",
        "outageCause",
        "outageSince",
        "reconnects",
        "inputBitrateBps",
        "lastFragmentNumber",
        "lastFragmentTimecode",
        "lastFragmentAckAt",
        "credentialsExpireAt",
        "leaseOwner",
        "leaseExpiresAt",
        "leaseToken",
        "taskStartedAt",
        "heartbeatAt",
        "deletedAt",
        # 0006: how long a stream's recordings are kept
        "retentionDays",
        # 0007: the stream's own store sealed, its reconnect window and encoded renditions
        "recordStoreSecret",
        "reconnectWindowSeconds",
        "recordRenditions",
        # 0012: since when the relay feeds KVS the slate, and the slate's fragments persisted
        "slateSince",
        "slateFragmentsPersisted",
    }
    assert columns["recording_sessions"] == {
        "sessionId",
        "streamId",
        "state",
        "startedAt",
        "endedAt",
        "lastSegmentAt",
        "videoId",
        "failureReason",
        "createdAt",
        "updatedAt",
        # 0006: writers, store, reconnect window, heartbeat, renditions, workflow
        "writers",
        "storeUrl",
        "storeRef",
        "reconnectWindowSeconds",
        "endReason",
        "heartbeatAt",
        "renditions",
        "discontinuities",
        "durationSeconds",
        "workflowState",
        "executionId",
        # 0007: the session's store sealed, where it came from, why an earlier one fell back
        "storeSecret",
        "storeSource",
        "storeFallback",
    }


@pytest.mark.mysql
def test_the_database_refuses_rows_the_domain_cannot_read(migrated_url: str) -> None:
    # Given the migrated schema, When a row with an unknown status or broken renditions is written
    # behind the catalogue's back, Then the CHECK constraints refuse it
    conn = _root(migrated_url)
    insert = (
        "INSERT INTO videos (videoId, videoKey, displayName, description, ownerId, email, status,"
        " renditions, uploadTime, createdAt, updatedAt) VALUES (%s, 'k', 'n', '', 'o', 'e', %s, %s,"
        " UTC_TIMESTAMP(3), UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))"
    )
    with conn.cursor() as cur:
        for status, renditions in (("bogus", "[]"), ("ready", "not json")):
            with pytest.raises(pymysql.err.MySQLError):
                cur.execute(insert, (uuid.uuid4().hex, status, renditions))
        # nor a visibility the domain does not know (0009)
        with pytest.raises(pymysql.err.MySQLError):
            cur.execute(
                "INSERT INTO videos (videoId, videoKey, displayName, description, ownerId, email,"
                " renditions, visibility, uploadTime, createdAt, updatedAt) VALUES (%s, 'k', 'n', '', 'o',"
                " 'e', '[]', 'secret', UTC_TIMESTAMP(3), UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))",
                (uuid.uuid4().hex,),
            )
    conn.close()


# --- MySQL only: the deploy-time migration custom resource ----------------------------------
@dataclass
class FakeContext:
    function_name: str = "reelay-migrate"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:reelay-migrate"
    aws_request_id: str = "req-1"


@pytest.fixture
def handler_db(fresh_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from reelay.settings import get_settings

    monkeypatch.setenv("REELAY_DATABASE_URL", fresh_url)
    monkeypatch.delenv("REELAY_DB_SECRET_ARN", raising=False)
    get_settings.cache_clear()
    yield fresh_url
    get_settings.cache_clear()


def _event(request: str, **extra: Any) -> dict[str, Any]:
    return {
        "RequestType": request,
        "ServiceToken": "arn:aws:lambda:us-east-1:1:function:provider",
        "ResponseURL": "https://example.invalid/",
        "StackId": "stack",
        "RequestId": "r1",
        "LogicalResourceId": "CatalogueSchema",
        "ResourceType": "Custom::CatalogueSchema",
        "ResourceProperties": {"ServiceToken": "x"},
        **extra,
    }


@pytest.mark.mysql
def test_migrate_handler_create_update_delete(handler_db: str) -> None:
    from lambdas.migrate.handler import PHYSICAL_ID, lambda_handler

    # Given an empty database, When the stack is created, Then every migration is applied
    created = lambda_handler(_event("Create"), FakeContext())
    assert created == {
        "PhysicalResourceId": PHYSICAL_ID,
        "Data": {
            "applied": "0001,0002,0003,0004,0005,0006,0007,0009,0010,0011,0012",
            "schemaVersion": "0012",
        },
    }
    # When the stack is updated, Then nothing is pending and the physical id stays the same
    updated = lambda_handler(_event("Update", PhysicalResourceId=PHYSICAL_ID), FakeContext())
    assert updated == {"PhysicalResourceId": PHYSICAL_ID, "Data": {"applied": "", "schemaVersion": "0012"}}
    # When the stack is deleted, Then the data stays
    conn = _root(handler_db)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO schema_migrations VALUES ('9999', 'marker', UTC_TIMESTAMP(3))")
    deleted = lambda_handler(_event("Delete", PhysicalResourceId=PHYSICAL_ID), FakeContext())
    assert deleted == {"PhysicalResourceId": PHYSICAL_ID}
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM videos")
        assert cur.fetchone() == (0,)
        cur.execute("SELECT COUNT(*) FROM schema_migrations")
        assert cur.fetchone() == (12,)  # eleven migrations and the marker
    conn.close()


@pytest.mark.mysql
def test_migrate_handler_raises_on_unknown_requests_and_unreachable_databases(
    handler_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambdas.migrate.handler import lambda_handler
    from reelay.catalogue import DatabaseUnavailable
    from reelay.settings import get_settings

    with pytest.raises(ValueError, match="RequestType"):
        lambda_handler(_event("Frobnicate"), FakeContext())
    # Given a database URL with a wrong password, When the stack is created, Then the handler raises
    # (the framework reports FAILED) and the password is not in the message
    u = urlparse(handler_db)
    monkeypatch.setenv(
        "REELAY_DATABASE_URL", f"mysql://nobody:Sup3rS3cret@{u.hostname}:{u.port or 3306}{u.path}"
    )
    get_settings.cache_clear()
    with pytest.raises(DatabaseUnavailable) as caught:
        lambda_handler(_event("Create"), FakeContext())
    assert "Sup3rS3cret" not in str(caught.value)
    assert "Access denied" in str(caught.value)


@pytest.mark.mysql
def test_migrate_refuses_to_run_without_migration_files(fresh_url: str, tmp_path: Any) -> None:
    # Given a package that lost its .sql files, When migrate runs, Then it says so instead of succeeding
    provider = ConnectionProvider.from_url(fresh_url)
    with pytest.raises(RuntimeError, match="no migrations"):
        migrate(provider, directory=tmp_path)
    provider.close()


def test_misnamed_migration_files_are_rejected(tmp_path: Any) -> None:
    from reelay.catalogue.migrations import load_migrations

    (tmp_path / "1_first.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match=r"NNNN_name\.sql"):
        load_migrations(tmp_path)


def test_statements_split_on_line_ending_semicolons_and_skip_comments() -> None:
    from reelay.catalogue.migrations import split_statements

    sql = (
        "-- a comment; not a statement\nCREATE TABLE a (x INT);\n\nINSERT INTO a VALUES (1) ;  \nSELECT 'x;y'"
    )
    assert split_statements(sql) == ("CREATE TABLE a (x INT)", "INSERT INTO a VALUES (1)", "SELECT 'x;y'")


# --- upload quotas (reelay.quotas): enforced as a video is created, the same in both catalogues -------
def quota(**limits: int) -> UploadQuota:
    return UploadQuota(
        videos_in_flight=limits.get("in_flight", 0),
        upload_bytes_per_day=limits.get("per_day", 0),
        stored_bytes=limits.get("stored", 0),
        pending_upload_seconds=limits.get("pending", 3600),
    )


def quota_code(catalogue: VideoCatalogue, video: Video, limits: UploadQuota) -> str | None:
    """The quota code a create is refused with, or None when it was created."""
    try:
        catalogue.create(video, quota=limits)
    except QuotaExceeded as refused:
        assert refused.status == 429
        return refused.code
    return None


def test_the_videos_in_flight_quota(catalogue: VideoCatalogue) -> None:
    owner, limits = f"owner-{uuid.uuid4().hex}", quota(in_flight=2)
    # Given two videos in flight: one awaiting its upload, one queued
    first = catalogue.create(new_video(owner_id=owner), quota=limits)
    second = catalogue.create(new_video(owner_id=owner), quota=limits)
    assert catalogue.mark_uploaded(second.video_id, size_bytes=5, content_type=None)
    # When a third is created, Then it is refused naming the quota, and no row was written
    third = new_video(owner_id=owner)
    assert quota_code(catalogue, third, limits) == VIDEOS_IN_FLIGHT
    with pytest.raises(NotFound):
        catalogue.get(third.video_id)
    # And another owner is not held back by it
    assert quota_code(catalogue, new_video(owner_id=f"{owner}-b"), limits) is None
    # When one finishes (ready) and one fails, Then there is room again
    assert catalogue.claim(second.video_id, "w1", 60)
    assert catalogue.complete(second.video_id, "w1", duration_seconds=1.0, renditions=[R360])
    assert quota_code(catalogue, third, limits) is None
    assert catalogue.fail(first.video_id, "the upload was empty")
    assert quota_code(catalogue, new_video(owner_id=owner), limits) is None
    assert quota_code(catalogue, new_video(owner_id=owner), limits) == VIDEOS_IN_FLIGHT


def test_an_upload_that_can_no_longer_be_made_is_not_in_flight(catalogue: VideoCatalogue) -> None:
    owner, limits = f"owner-{uuid.uuid4().hex}", quota(in_flight=1, pending=3600)
    # Given a video created two hours ago whose upload never came (its URLs expired after an hour)
    stale = datetime.utcnow() - timedelta(hours=2)
    catalogue.create(new_video(owner_id=owner, created_at=stale, upload_time=stale))
    # Then it does not hold the owner's one slot
    assert quota_code(catalogue, new_video(owner_id=owner), limits) is None
    # But a fresh one does
    assert quota_code(catalogue, new_video(owner_id=owner), limits) == VIDEOS_IN_FLIGHT


def test_the_bytes_uploaded_per_day_quota(catalogue: VideoCatalogue) -> None:
    owner, limits = f"owner-{uuid.uuid4().hex}", quota(per_day=100)
    a = new_video(owner_id=owner, size_bytes=60)
    assert quota_code(catalogue, a, limits) is None
    # When an upload would take the day past 100 bytes, Then it is refused naming the quota
    assert quota_code(catalogue, new_video(owner_id=owner, size_bytes=41), limits) == UPLOAD_BYTES_PER_DAY
    assert quota_code(catalogue, new_video(owner_id=owner, size_bytes=40), limits) is None
    # And deleting a video does not give the day's bytes back (or delete-and-retry is unlimited)
    catalogue.delete(a.video_id)
    assert quota_code(catalogue, new_video(owner_id=owner, size_bytes=1), limits) == UPLOAD_BYTES_PER_DAY
    # And creates without a quota (recordings, imports) are not counted against anyone
    catalogue.create(new_video(owner_id=owner, size_bytes=10**9))


def test_the_stored_bytes_quota(catalogue: VideoCatalogue) -> None:
    owner, limits = f"owner-{uuid.uuid4().hex}", quota(stored=100)
    a = new_video(owner_id=owner, size_bytes=60)
    assert quota_code(catalogue, a, limits) is None
    # When the owner's videos would pass 100 bytes, Then refused naming the quota
    assert quota_code(catalogue, new_video(owner_id=owner, size_bytes=50), limits) == STORED_BYTES
    # When the stored one fails (its upload expires) or is deleted, Then the room comes back
    assert catalogue.fail(a.video_id, "bad media")
    b = new_video(owner_id=owner, size_bytes=50)
    assert quota_code(catalogue, b, limits) is None
    assert quota_code(catalogue, new_video(owner_id=owner, size_bytes=51), limits) == STORED_BYTES
    catalogue.delete(b.video_id)
    assert quota_code(catalogue, new_video(owner_id=owner, size_bytes=100), limits) is None


@pytest.mark.mysql
def test_concurrent_creates_of_one_owner_cannot_both_squeeze_under_a_quota(migrated_url: str) -> None:
    # Given eight processes' worth of connections, and an owner with room for three videos in flight
    owner, limits = f"owner-{uuid.uuid4().hex}", quota(in_flight=3)
    providers = [ConnectionProvider.from_url(migrated_url) for _ in range(8)]
    catalogues = [MySQLCatalogue(p) for p in providers]
    start = threading.Barrier(len(catalogues))
    codes: list[str | None] = []

    def create(cat: MySQLCatalogue) -> None:
        start.wait()
        codes.append(quota_code(cat, new_video(owner_id=owner), limits))

    try:
        threads = [threading.Thread(target=create, args=(cat,)) for cat in catalogues]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        # When all eight create at once, Then exactly three get in and five are refused by the quota
        assert sorted(codes, key=str) == [None] * 3 + [VIDEOS_IN_FLIGHT] * 5
        assert len(catalogues[0].list_by_owner(owner, limit=100).items) == 3
    finally:
        for p in providers:
            p.close()


def test_an_event_recorded_on_its_own_is_claimed_by_its_subject(world: World) -> None:
    from reelay.events import CDN_INVALIDATE, cdn_invalidation, cdn_subject

    # Given a CDN invalidation recorded on its own, about a video whose row is already gone
    world.catalogue.record_event(cdn_invalidation("gone-video", ["/outputs/gone-video/*"]))
    world.catalogue.record_event(cdn_invalidation("other-video", ["/outputs/other-video/*"]))
    # When a sweep claims that video's subject
    (claimed,) = world.other.claim_events(limit=10, lease_seconds=60, subject=cdn_subject("gone-video"))
    # Then it gets that event only, with its paths, and no video id
    assert (claimed.event_type, claimed.video_id, claimed.subject) == (
        CDN_INVALIDATE,
        None,
        "cdn:gone-video",
    )
    assert claimed.detail == {"videoId": "gone-video", "paths": ["/outputs/gone-video/*"]}
    assert world.other.pending_events()[0] == 2


def test_an_event_recorded_on_its_own_needs_a_subject(catalogue: VideoCatalogue) -> None:
    from reelay.models import OutboxEvent

    with pytest.raises(InvalidInput):
        catalogue.record_event(OutboxEvent(event_type="cdn.invalidate", detail={}))
    assert catalogue.pending_events()[0] == 0
