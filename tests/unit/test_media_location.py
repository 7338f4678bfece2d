"""A private video's media leaves the public prefix, whatever races it (reelay.media_location).

Fakes behind the real relocator, outbox sweep and transcode service: a switch while the video is
transcoding, a switch back, an unlisted video, a deleted one, a move that fails half-way, a visibility
that changes during a move, and the transcoder writing by visibility and squaring a switch at the end.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from reelay.catalogue.memory import MemoryCatalogue
from reelay.events import DEFAULT_LEASE_SECONDS, MEDIA_RELOCATE, OutboxSweep, media_relocation
from reelay.media_location import MediaMoved, MediaRelocator, MoveLeaseLost
from reelay.models import Video, VideoStatus, VideoVisibility
from reelay.settings import Settings
from reelay.transcode import Outcome
from tests.fakes import FakeCdn, FakeEvents, FakeStore
from tests.unit.test_transcode import VIDEO_ID, FakeEncoder, make_service, new_catalogue, new_store, run

NAMES = ("master.m3u8", "360p/index.m3u8", "360p/a1/seg_00000.ts", "360p/a1/seg_00001.ts", "poster.jpg")


def _ready(catalogue: MemoryCatalogue, video_id: str = "v1", **fields: object) -> Video:
    catalogue.create(
        Video(
            video_id=video_id, video_key=f"uploads/{video_id}", display_name="v", owner_id="o", email="o@x.io"
        )
    )
    catalogue.mark_uploaded(video_id, size_bytes=10, content_type="video/mp4")
    catalogue.claim(video_id, "w", 60)
    catalogue.complete(video_id, "w", duration_seconds=1.0, renditions=[])
    return catalogue.get(video_id)


def _publish(store: FakeStore, prefix: str, video_id: str = "v1", names: tuple[str, ...] = NAMES) -> None:
    for name in names:
        store.put_bytes(f"{prefix}{video_id}/{name}", name.encode(), content_type="x/y")


def _where(store: FakeStore, video_id: str = "v1") -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for key in store.objects:
        if key.count("/") < 2:  # an upload
            continue
        top, vid, rest = key.split("/", 2)
        if vid == video_id:
            found.setdefault(top, set()).add(rest)
    return found


def test_an_unlisted_video_stays_on_the_public_prefix() -> None:
    catalogue, store, cdn = MemoryCatalogue(), FakeStore(), FakeCdn()
    _ready(catalogue)
    _publish(store, "outputs/")
    catalogue.set_visibility("v1", VideoVisibility.UNLISTED)
    assert MediaRelocator(catalogue, store, Settings(), cdn).reconcile("v1") == 0
    assert _where(store) == {"outputs": set(NAMES)} and cdn.invalidated == []


def test_a_switch_while_transcoding_moves_segments_now_and_playlists_once_the_worker_is_done() -> None:
    # Given a processing video whose worker has published some of it under the public prefix
    catalogue, store, cdn = MemoryCatalogue(), FakeStore(), FakeCdn()
    catalogue.create(
        Video(video_id="v1", video_key="uploads/v1", display_name="v", owner_id="o", email="o@x")
    )
    catalogue.mark_uploaded("v1", size_bytes=10, content_type="video/mp4")
    catalogue.claim("v1", "w", 60)
    _publish(store, "outputs/")
    relocator = MediaRelocator(catalogue, store, Settings(), cdn)
    # When the owner makes it private
    catalogue.set_visibility("v1", VideoVisibility.PRIVATE)
    assert relocator.reconcile("v1") == 3
    # Then its segments and poster leave the public prefix at once (and its cached copies go), while
    # the playlists its worker still rewrites stay: public playlists whose segments are gone
    assert _where(store) == {
        "outputs": {"master.m3u8", "360p/index.m3u8"},
        "private-outputs": {"360p/a1/seg_00000.ts", "360p/a1/seg_00001.ts", "poster.jpg"},
    }
    assert cdn.invalidated == [["/outputs/v1/*"]]
    # And the worker goes on writing where it started; once it completed, the move takes everything
    store.put_bytes("outputs/v1/360p/a1/seg_00002.ts", b"late")
    catalogue.complete("v1", "w", duration_seconds=1.0, renditions=[])
    assert relocator.reconcile("v1") == 3
    assert _where(store) == {"private-outputs": {*NAMES, "360p/a1/seg_00002.ts"}}


def test_a_switch_back_to_public_before_the_move_ran_leaves_the_media_where_it_is() -> None:
    # Two switches, one move acted on after both: it reconciles to the visibility now (public)
    catalogue, store = MemoryCatalogue(), FakeStore()
    _ready(catalogue)
    _publish(store, "outputs/")
    catalogue.set_visibility("v1", VideoVisibility.PRIVATE, event=media_relocation("v1"))
    catalogue.set_visibility("v1", VideoVisibility.PUBLIC, event=media_relocation("v1"))
    sweep = OutboxSweep(catalogue, None, relocate=MediaRelocator(catalogue, store, Settings()).reconcile)
    assert sweep.flush().published == 2
    assert _where(store) == {"outputs": set(NAMES)}


def test_a_deleted_videos_media_is_deleted_under_both_prefixes() -> None:
    catalogue, store = MemoryCatalogue(), FakeStore()
    _publish(store, "outputs/", names=NAMES[:2])
    _publish(store, "private-outputs/", names=NAMES[2:])
    _publish(store, "outputs/", video_id="v10")  # another video whose id starts the same
    assert MediaRelocator(catalogue, store, Settings()).reconcile("v1") == 0
    assert _where(store) == {} and _where(store, "v10") == {"outputs": set(NAMES)}


def test_a_move_that_fails_half_way_is_retried_by_the_outbox_sweep_and_loses_nothing() -> None:
    class FlakyStore(FakeStore):
        fail = True
        copies = 0

        def copy(self, src_key: str, dst_key: str) -> None:
            self.copies += 1
            if self.fail and self.copies == 3:
                raise ConnectionError("store down")
            super().copy(src_key, dst_key)

    now = [datetime(2026, 12, 1, 12, tzinfo=UTC)]
    catalogue, store = MemoryCatalogue(clock=lambda: now[0]), FlakyStore()
    _ready(catalogue)
    _publish(store, "outputs/")
    relocator = MediaRelocator(catalogue, store, Settings(), workers=1)
    catalogue.set_visibility("v1", VideoVisibility.PRIVATE, event=media_relocation("v1"))
    sweep = OutboxSweep(catalogue, None, relocate=relocator.reconcile)
    # When the store fails on the third copy: nothing is deleted, the event stays
    assert sweep.flush().failed == 1
    assert _where(store)["outputs"] == set(NAMES) and catalogue.pending_events()[0] == 1
    # Then the sweep after the lease moves all of it
    store.fail = False
    now[0] += timedelta(seconds=DEFAULT_LEASE_SECONDS + 1)
    assert sweep.flush().published == 1
    assert _where(store) == {"private-outputs": set(NAMES)} and catalogue.pending_events()[0] == 0


def test_a_sweep_that_cannot_move_media_leaves_the_event_for_one_that_can() -> None:
    now = [datetime(2026, 12, 1, 12, tzinfo=UTC)]
    catalogue, store = MemoryCatalogue(clock=lambda: now[0]), FakeStore()
    _ready(catalogue)
    _publish(store, "outputs/")
    catalogue.set_visibility("v1", VideoVisibility.PRIVATE, event=media_relocation("v1"))
    # A sweep for events only (as the upload-events function's) claims it but cannot act on it
    assert OutboxSweep(catalogue, FakeEvents()).flush().failed == 1
    assert catalogue.pending_events()[0] == 1 and _where(store) == {"outputs": set(NAMES)}
    # Nor is it one a flush of the video's own events claims (it is about its subject only)
    now[0] += timedelta(seconds=DEFAULT_LEASE_SECONDS + 1)
    assert OutboxSweep(catalogue, FakeEvents()).flush(video_id="v1").published == 0
    # The outbox sweep, which can, does it
    (event,) = catalogue.claim_events(limit=10, lease_seconds=1)
    assert event.event_type == MEDIA_RELOCATE and event.video_id is None
    now[0] += timedelta(seconds=2)
    relocate = MediaRelocator(catalogue, store, Settings()).reconcile
    assert OutboxSweep(catalogue, FakeEvents(), relocate=relocate).flush().published == 1
    assert _where(store) == {"private-outputs": set(NAMES)}


class SwitchingStore(FakeStore):
    """Each copy switches the video's visibility: to public, or (``flip``) to the other one."""

    def __init__(self, catalogue: MemoryCatalogue, *, flip: bool) -> None:
        super().__init__()
        self.catalogue, self.flip = catalogue, flip

    def copy(self, src_key: str, dst_key: str) -> None:
        super().copy(src_key, dst_key)
        private = self.flip and self.catalogue.get("v1").visibility == VideoVisibility.PUBLIC
        self.catalogue.set_visibility("v1", VideoVisibility.PRIVATE if private else VideoVisibility.PUBLIC)


@pytest.mark.parametrize("flip", [False, True])
def test_a_visibility_change_during_a_move_loses_nothing(flip: bool) -> None:
    # Given a move to private whose copies are under way when the owner switches back to public
    # (or keeps switching)
    catalogue = MemoryCatalogue()
    _ready(catalogue)
    store = SwitchingStore(catalogue, flip=flip)
    _publish(store, "outputs/")
    catalogue.set_visibility("v1", VideoVisibility.PRIVATE)
    if not flip:
        # Then the move deletes none of the sources it copied, and goes round again toward public:
        # the copies come back where the video now belongs, nothing lost
        MediaRelocator(catalogue, store, Settings()).reconcile("v1")
        assert _where(store) == {"outputs": set(NAMES)}
        return
    # Then a visibility that keeps changing leaves the move to a retry, with nothing lost
    with pytest.raises(MediaMoved):
        MediaRelocator(catalogue, store, Settings()).reconcile("v1")
    where = _where(store)
    assert where.get("outputs", set()) | where.get("private-outputs", set()) == set(NAMES)
    # The lease was let go: a retry can take it
    assert catalogue.claim_media_move("v1", "probe", 60)


class GatedStore(FakeStore):
    """One mover's view of a shared store whose deletes wait at a gate: the test decides when the
    mover's first step deletes, so another mover can run in between (a forced interleaving)."""

    def __init__(self, shared: FakeStore) -> None:
        self.shared = shared
        self.deleting = threading.Event()  # the mover reached its deletes
        self.gate = threading.Event()  # the test lets them through

    def __getattr__(self, name: str) -> object:
        return getattr(self.shared, name)

    def delete(self, key: str) -> None:
        self.deleting.set()
        assert self.gate.wait(10), "the test never opened the gate"
        self.shared.delete(key)


def test_two_opposite_moves_at_once_lose_no_object() -> None:
    # Given a public video's media, switched to private: mover A (one process) copies it all to the
    # private prefix and stops right before its deletes
    catalogue = MemoryCatalogue()
    _ready(catalogue)
    shared = FakeStore()
    _publish(shared, "outputs/")
    catalogue.set_visibility("v1", VideoVisibility.PRIVATE)
    gated = GatedStore(shared)
    mover_a = MediaRelocator(catalogue, gated, Settings())  # type: ignore[arg-type]
    errors: list[BaseException] = []

    def run_a() -> None:
        try:
            mover_a.reconcile("v1")
        except BaseException as exc:
            errors.append(exc)

    a = threading.Thread(target=run_a)
    a.start()
    assert gated.deleting.wait(10)
    # When the owner switches back to public and mover B (another process) acts on that at once
    catalogue.set_visibility("v1", VideoVisibility.PUBLIC)
    sweep_b = OutboxSweep(catalogue, None, relocate=MediaRelocator(catalogue, shared, Settings()).reconcile)
    catalogue.record_event(media_relocation("v1"))
    sweep_b.flush(subject="media:v1")
    # And A's deletes go through afterwards
    gated.gate.set()
    a.join(10)
    assert not a.is_alive() and not errors
    # Then every object is still somewhere (today: B deleted the private copies, A the public ones)
    where = _where(shared)
    kept = where.get("outputs", set()) | where.get("private-outputs", set())
    assert kept == set(NAMES)
    # B could not move while A held the video: its event stays for a retry, which settles it
    # under the visibility the video has now
    assert catalogue.pending_events()[0] == 1
    later = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=DEFAULT_LEASE_SECONDS + 1)
    catalogue._clock = lambda: later  # type: ignore[method-assign]
    OutboxSweep(catalogue, None, relocate=MediaRelocator(catalogue, shared, Settings()).reconcile).flush(
        subject="media:v1"
    )
    assert _where(shared) == {"outputs": set(NAMES)}
    assert catalogue.pending_events()[0] == 0


def test_a_mover_whose_lease_ran_out_deletes_nothing() -> None:
    # Given a mover that copied a step and stalled until its lease passed to another mover
    now = [datetime(2026, 1, 1)]
    catalogue = MemoryCatalogue(clock=lambda: now[0])
    _ready(catalogue)
    store = FakeStore()
    _publish(store, "outputs/")
    catalogue.set_visibility("v1", VideoVisibility.PRIVATE)

    class StallingStore(FakeStore):
        def __getattr__(self, name: str) -> object:
            return getattr(store, name)

        def copy(self, src_key: str, dst_key: str) -> None:
            store.copy(src_key, dst_key)
            now[0] = datetime(2026, 1, 1, 1)  # an hour later: the lease ran out
            assert catalogue.claim_media_move("v1", "another", 600)

    stalled = MediaRelocator(catalogue, StallingStore.__new__(StallingStore), Settings())
    with pytest.raises(MoveLeaseLost):
        stalled.reconcile("v1")
    # Then it deleted none of its sources, and left the other mover's lease alone
    assert _where(store)["outputs"] == set(NAMES)
    assert not catalogue.claim_media_move("v1", "a third", 60)


@pytest.mark.parametrize("visibility", [VideoVisibility.PRIVATE, VideoVisibility.UNLISTED])
def test_the_transcoder_writes_where_the_visibility_says(tmp_path, visibility) -> None:
    settings = Settings(work_dir=str(tmp_path / "w"), ladder="360p,240p", max_attempts=3, lease_seconds=60)
    catalogue, store = new_catalogue(), new_store()
    catalogue.set_visibility(VIDEO_ID, visibility)
    assert run(make_service(catalogue, store, FakeEvents(), settings, FakeEncoder())) is Outcome.DONE
    expected = "private-outputs" if visibility == VideoVisibility.PRIVATE else "outputs"
    assert set(_where(store, VIDEO_ID)) == {expected}
    assert catalogue.pending_events() == (0, 0.0)  # video.ready and the move check both done


def test_a_switch_to_private_while_transcoding_ends_with_all_of_it_private(tmp_path) -> None:
    # Given a job under way, publishing progressively under the public prefix
    settings = Settings(work_dir=str(tmp_path / "w"), ladder="360p,240p", max_attempts=3, lease_seconds=60)
    catalogue, store, cdn = new_catalogue(), new_store(), FakeCdn()
    switched = threading.Event()

    def switch(_out_dir: object) -> None:
        # When the owner makes it private mid-job and the API's move runs at once
        from reelay.videos import VideoService

        VideoService(catalogue, store, settings, cdn).set_visibility("u1", VIDEO_ID, VideoVisibility.PRIVATE)
        switched.set()

    service = make_service(catalogue, store, FakeEvents(), settings, FakeEncoder(segments=4, during=switch))
    service.cdn = cdn  # type: ignore[assignment]
    assert run(service) is Outcome.DONE and switched.is_set()
    # Then once the job is done nothing of it is left on the public prefix, and the public path's
    # cached copies were dropped
    outputs = {k for k in store.objects if f"/{VIDEO_ID}/" in k and not k.startswith("uploads/")}
    assert outputs and all(k.startswith(f"private-outputs/{VIDEO_ID}/") for k in outputs), sorted(outputs)
    assert f"private-outputs/{VIDEO_ID}/master.m3u8" in outputs
    assert [f"/outputs/{VIDEO_ID}/*"] in cdn.invalidated
    assert catalogue.get(VIDEO_ID).status == VideoStatus.READY
    assert catalogue.pending_events() == (0, 0.0)


@pytest.mark.parametrize(
    "prefixes",
    [
        {"private_output_prefix": "outputs/private/"},  # the public path would serve it
        {"output_prefix": "private-outputs/public/"},
        {"output_prefix": "outputs"},
        {"private_output_prefix": "private-outputs"},
    ],
)
def test_output_prefixes_that_overlap_are_a_configuration_error(prefixes: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="neither may contain the other"):
        Settings(**prefixes)


def test_the_signed_base_url_defaults_to_the_public_ones_at_the_private_prefix() -> None:
    from reelay.wiring import Services

    signer = Services(Settings(playback_base_url="https://cdn.example/outputs")).playback_signer
    assert signer.base_url == "https://cdn.example/private-outputs"
    other = Services(Settings(playback_base_url="https://cdn.example/media/hls")).playback_signer
    assert other.base_url == "https://cdn.example/media/private-outputs"


def test_a_move_out_of_time_keeps_its_progress_and_the_next_run_finishes_it(monkeypatch) -> None:
    import reelay.media_location as media_location
    from reelay.media_location import MoveUnfinished

    # Given a private video with more objects than one step of a move, and no time to spare
    monkeypatch.setattr(media_location, "CHUNK", 2)
    catalogue, store, cdn = MemoryCatalogue(), FakeStore(), FakeCdn()
    _ready(catalogue)
    _publish(store, "outputs/")
    catalogue.set_visibility("v1", VideoVisibility.PRIVATE)
    relocator = MediaRelocator(catalogue, store, Settings(), cdn)
    # When a run has no budget left after its first step
    with pytest.raises(MoveUnfinished, match=r"moved 2 .* 3 left"):
        relocator.reconcile("v1", budget_seconds=0)
    # Then what it moved stays moved (and the public path's cached copies are already being dropped)
    assert len(_where(store)["private-outputs"]) == 2 and len(_where(store)["outputs"]) == 3
    assert cdn.invalidated == [["/outputs/v1/*"]]
    # And the next run moves the rest
    assert relocator.reconcile("v1") == 3
    assert _where(store) == {"private-outputs": set(NAMES)}


def test_a_worker_that_dies_right_after_completing_a_video_made_private_leaves_no_public_playlist(
    tmp_path, monkeypatch
) -> None:
    # Given a job under way, publishing under the public prefix, whose video turns private mid-job
    settings = Settings(work_dir=str(tmp_path / "w"), ladder="360p,240p", max_attempts=3, lease_seconds=60)
    catalogue, store = new_catalogue(), new_store()

    def switch(_out_dir: object) -> None:
        from reelay.videos import VideoService

        VideoService(catalogue, store, settings).set_visibility("u1", VIDEO_ID, VideoVisibility.PRIVATE)

    service = make_service(catalogue, store, FakeEvents(), settings, FakeEncoder(segments=4, during=switch))

    class Died(BaseException):
        pass

    def die(*_args: object) -> None:
        raise Died  # the worker's process ends between its completion and its own move

    monkeypatch.setattr(service, "_settle_media", die)
    with pytest.raises(Died):
        run(service)
    assert catalogue.get(VIDEO_ID).status == VideoStatus.READY
    assert any(k.startswith(f"outputs/{VIDEO_ID}/") and k.endswith(".m3u8") for k in store.objects)
    # When the outbox sweep runs
    sweep = OutboxSweep(catalogue, None, relocate=MediaRelocator(catalogue, store, settings).reconcile)
    sweep.flush()
    # Then the playlists the worker left public went private with the rest
    outputs = {k for k in store.objects if f"/{VIDEO_ID}/" in k and not k.startswith("uploads/")}
    assert outputs and all(k.startswith(f"private-outputs/{VIDEO_ID}/") for k in outputs), sorted(outputs)
