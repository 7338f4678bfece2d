"""VideoService rules that the API tests do not reach directly."""

from __future__ import annotations

import pytest

from reelay.catalogue.memory import MemoryCatalogue
from reelay.errors import Forbidden, InvalidInput, NotFound
from reelay.models import Video
from reelay.quotas import UploadQuota
from reelay.settings import Settings
from reelay.videos import (
    MAX_PARTS,
    MIN_PART_BYTES,
    MultipartUpload,
    SingleUpload,
    VideoService,
    part_lengths,
)
from tests.fakes import FakeStore

GiB = 1024**3
MiB = 1024**2


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def service(store: FakeStore) -> VideoService:
    settings = Settings(
        max_upload_bytes=100 * GiB,
        multipart_threshold_bytes=100 * MiB,
        multipart_part_bytes=64 * MiB,
        playback_base_url="https://cdn.example/outputs/",
    )
    return VideoService(MemoryCatalogue(), store, settings)


def create(service: VideoService, size: int = 1000, content_type: str = "video/mp4", **kw):
    return service.create_upload(
        kw.get("owner", "alice"),
        "alice@example.com",
        kw.get("name", "clip"),
        "",
        content_type,
        size,
        kw.get("file_name"),
    )


def test_content_type_is_normalised_before_the_allow_list_check(service: VideoService) -> None:
    # Given a browser-style content type with parameters and capitals
    video, upload = create(service, content_type="Video/MP4; codecs=avc1")
    # Then it is accepted and the presigned PUT pins the normalised type
    assert isinstance(upload, SingleUpload)
    assert video.content_type == "video/mp4" and upload.headers["Content-Type"] == "video/mp4"


def test_threshold_decides_single_or_multipart(service: VideoService) -> None:
    _, below = create(service, size=100 * MiB - 1)
    _, at = create(service, size=100 * MiB)
    assert isinstance(below, SingleUpload)
    assert isinstance(at, MultipartUpload) and len(at.parts) == 2 and at.part_size_bytes == 64 * MiB


def test_every_part_url_binds_that_parts_exact_size(service: VideoService, store: FakeStore) -> None:
    # Given a multipart upload of 2.5 parts
    size = 128 * MiB + 17
    _, upload = create(service, size=size)
    assert isinstance(upload, MultipartUpload)
    # Then every part URL was signed for its exact length: full parts, and a short last one
    lengths = [int(part.url.rsplit("&len=", 1)[1]) for part in upload.parts]
    assert lengths == [64 * MiB, 64 * MiB, 17] and sum(lengths) == size
    # And the split is the one the clients use (part n starts at (n-1) * partSizeBytes)
    assert part_lengths(size, 64 * MiB) == [(1, 64 * MiB), (2, 64 * MiB), (3, 17)]
    assert part_lengths(128 * MiB, 64 * MiB) == [(1, 64 * MiB), (2, 64 * MiB)]


def test_huge_files_get_bigger_parts_to_stay_within_s3s_part_count(service: VideoService) -> None:
    # Given a 1 TB file, which at 64 MiB parts would need 15,000 parts
    size = 1000 * GiB
    service.settings.max_upload_bytes = 2000 * GiB
    part = service.part_size(size)
    # Then parts grow so there are at most 10,000, never below S3's 5 MiB minimum
    assert part * MAX_PARTS >= size and -(-size // part) <= MAX_PARTS
    assert service.part_size(1) == 64 * MiB >= MIN_PART_BYTES


def test_file_name_stands_in_for_an_empty_display_name(service: VideoService) -> None:
    video, _ = create(service, name="", file_name="beach.mp4")
    assert video.display_name == "beach.mp4"
    with pytest.raises(InvalidInput, match="displayName"):
        create(service, name="  ", file_name=None)


def test_multipart_is_aborted_when_the_catalogue_refuses_the_row(store: FakeStore) -> None:
    class FullCatalogue(MemoryCatalogue):
        def create(self, video: Video, *, quota: UploadQuota | None = None) -> Video:
            raise ConnectionError("database down")

    service = VideoService(FullCatalogue(), store, Settings(multipart_threshold_bytes=10 * MiB))
    # When the row cannot be written after the multipart upload was started
    with pytest.raises(ConnectionError):
        create(service, size=20 * MiB)
    # Then the multipart upload is aborted, so no parts are left billed and unreachable
    assert store.multipart == {} and len(store.aborted) == 1


def test_playback_base_url_trailing_slash_is_tolerated(service: VideoService) -> None:
    video, _ = create(service)
    ready = video.model_copy(update={"status": "ready"})
    assert service.playback_url(ready) == f"https://cdn.example/outputs/{video.video_id}/master.m3u8"


def test_ownership_checks(service: VideoService) -> None:
    video, _ = create(service)
    with pytest.raises(NotFound):
        service.owned("alice", "missing")
    with pytest.raises(Forbidden):
        service.owned("bob", video.video_id)
    with pytest.raises(Forbidden):
        service.delete("bob", video.video_id)
    assert service.get(video.video_id).video_id == video.video_id


def test_update_with_nothing_to_change_is_invalid(service: VideoService) -> None:
    video, _ = create(service)
    with pytest.raises(InvalidInput, match="displayName, description"):
        service.update_metadata("alice", video.video_id)


def test_delete_when_the_store_says_the_upload_is_already_gone(
    store: FakeStore, service: VideoService
) -> None:
    class StrictStore(FakeStore):
        def delete(self, key: str) -> None:
            if key not in self.objects:
                raise NotFound(f"object {key} not found")
            super().delete(key)

    strict = StrictStore()
    svc = VideoService(service.catalogue, strict, service.settings)
    video, _ = create(svc)
    strict.put_bytes(f"outputs/{video.video_id}/master.m3u8", b"x")
    # When the upload object never existed
    svc.delete("alice", video.video_id)
    # Then the outputs and the row are still removed
    assert strict.objects == {}
    with pytest.raises(NotFound):
        svc.get(video.video_id)


def test_delete_stops_before_the_row_when_media_deletion_fails(service: VideoService) -> None:
    class BrokenStore(FakeStore):
        def delete_prefix(self, prefix: str) -> int:
            raise ConnectionError("store down")

    svc = VideoService(service.catalogue, BrokenStore(), service.settings)
    video, _ = create(svc)
    with pytest.raises(ConnectionError):
        svc.delete("alice", video.video_id)
    # Then the row is still there, so the owner can retry and nothing is orphaned silently
    assert svc.get(video.video_id).video_id == video.video_id


def test_a_single_upload_url_is_signed_for_the_declared_size(service: VideoService) -> None:
    # When a 1234-byte file is declared
    _, upload = create(service, size=1234)
    # Then the store was asked for a URL bound to exactly that length
    assert isinstance(upload, SingleUpload) and "&len=1234&" in upload.url


class NotifyingStore(FakeStore):
    """Calls back when a multipart upload completes, as the file store's on_created (and S3's event) do."""

    def __init__(self) -> None:
        super().__init__()
        self.on_created = None

    def complete_multipart(self, key, upload_id, parts) -> None:
        super().complete_multipart(key, upload_id, parts)
        if self.on_created:
            self.on_created(key, len(self.objects[key][0]))


def _multipart_services(declared_extra: int = 0):
    from reelay.uploads import UploadEventService
    from tests.fakes import FakeEvents, FakeQueue

    store = NotifyingStore()
    settings = Settings(multipart_threshold_bytes=1, max_upload_bytes=10 * MiB)
    catalogue = MemoryCatalogue()
    videos = VideoService(catalogue, store, settings)
    uploads = UploadEventService(catalogue, store, FakeQueue(), FakeEvents(), settings)
    store.on_created = uploads.handle_object_created
    parts = [(2, "b"), (1, "a")]
    assembled = len(b"1:a;2:b;")  # what FakeStore joins these parts into
    video, upload = create(videos, size=assembled + declared_extra)
    assert isinstance(upload, MultipartUpload)
    return videos, video, upload, parts


def test_completing_a_multipart_upload_answers_with_the_video_as_it_is_now() -> None:
    # Given a multipart upload whose completion is notified at once (as the local file store does)
    videos, video, upload, parts = _multipart_services()
    # When the owner completes it
    done = videos.complete_multipart("alice", video.video_id, upload.upload_id, parts)
    # Then the answer is the queued video, not the awaiting_upload row from before completion
    assert done.status == "queued"


def test_a_multipart_total_other_than_the_declared_size_fails_the_video() -> None:
    # Given a multipart upload declared one byte larger than the parts add up to
    videos, video, upload, parts = _multipart_services(declared_extra=1)
    # When it is completed
    done = videos.complete_multipart("alice", video.video_id, upload.upload_id, parts)
    # Then the video fails naming both sizes, and the assembled object is removed
    assert done.status == "failed" and "declared" in (done.failure_reason or "")
    assert str(video.size_bytes) in (done.failure_reason or "") and done.size_bytes == video.size_bytes
    assert videos.store.head(video.video_key) is None


@pytest.mark.parametrize("output_prefix", ["outputs/", "media/hls/"])
def test_delete_invalidates_the_videos_outputs_on_the_cdn(output_prefix: str) -> None:
    from tests.fakes import FakeCdn

    cdn = FakeCdn()
    svc = VideoService(MemoryCatalogue(), FakeStore(), Settings(output_prefix=output_prefix), cdn)
    video, _ = create(svc)
    other, _ = create(svc)
    # When the owner deletes a video
    svc.delete("alice", video.video_id)
    # Then the CDN is asked to drop everything under that video's outputs, and nothing else
    # (under either prefix: it may have been private, or on its way)
    assert cdn.invalidated == [
        [f"/{output_prefix}{video.video_id}/*", f"/private-outputs/{video.video_id}/*"]
    ]
    # And a refused delete (not the owner) invalidates nothing
    with pytest.raises(Forbidden):
        svc.delete("bob", other.video_id)
    assert len(cdn.invalidated) == 1


def test_delete_does_not_invalidate_when_the_media_could_not_be_deleted() -> None:
    from tests.fakes import FakeCdn

    class BrokenStore(FakeStore):
        def delete_prefix(self, prefix: str) -> int:
            raise ConnectionError("store down")

    cdn = FakeCdn()
    svc = VideoService(MemoryCatalogue(), BrokenStore(), Settings(), cdn)
    video, _ = create(svc)
    with pytest.raises(ConnectionError):
        svc.delete("alice", video.video_id)
    assert cdn.invalidated == []


def test_an_invalidation_the_cdn_refused_is_retried_by_the_outbox_sweep() -> None:
    from datetime import UTC, datetime, timedelta

    from reelay.events import DEFAULT_LEASE_SECONDS, OutboxSweep
    from tests.fakes import FakeCdn

    class DownCdn(FakeCdn):
        def invalidate(self, paths: list[str]) -> None:
            raise ConnectionError("CloudFront unreachable")

    now = [datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)]
    catalogue = MemoryCatalogue(clock=lambda: now[0])
    svc = VideoService(catalogue, FakeStore(), Settings(), DownCdn())
    video, _ = create(svc)
    # When the owner deletes a video while the CDN refuses invalidations
    svc.delete("alice", video.video_id)
    # Then the delete succeeded and the invalidation waits in the outbox
    with pytest.raises(NotFound):
        catalogue.get(video.video_id)
    assert catalogue.pending_events()[0] == 1
    # And the outbox sweep, once its lease is out and the CDN answers, drops the video's outputs
    cdn = FakeCdn()
    sweep = OutboxSweep(catalogue, None, cdn=cdn)
    assert sweep.flush().published == 0  # still leased by the failed first try
    now[0] += timedelta(seconds=DEFAULT_LEASE_SECONDS + 1)
    assert sweep.flush().published == 1
    assert cdn.invalidated == [[f"/outputs/{video.video_id}/*", f"/private-outputs/{video.video_id}/*"]]
    assert catalogue.pending_events()[0] == 0
