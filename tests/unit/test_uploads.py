"""Upload notifications: the service and the S3-triggered Lambda, with fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lambdas.upload_events.handler import UploadEventsFailed, lambda_handler
from reelay.catalogue.memory import MemoryCatalogue
from reelay.errors import StorageError
from reelay.models import TranscodeJob, Video, VideoStatus, utcnow
from reelay.settings import Settings
from reelay.uploads import UploadEventService, UploadOutcome
from reelay.wiring import Services, set_services
from tests.fakes import FakeEvents, FakeLambdaContext, FakeQueue, FakeStore, event_body, s3_event

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")


@pytest.fixture
def services() -> Services:
    settings = Settings(max_upload_bytes=1000, multipart_threshold_bytes=500)
    svc = Services(
        settings, catalogue=MemoryCatalogue(), store=FakeStore(), queue=FakeQueue(), events=FakeEvents()
    )
    set_services(svc)
    yield svc
    set_services(None)


def new_video(services: Services, size: int = 100) -> str:
    video, _ = services.videos.create_upload("owner-1", "o@example.com", "clip", "", "video/mp4", size, None)
    return video.video_id


def landed(services: Services, video_id: str, data: bytes = b"x" * 100) -> str:
    key = f"uploads/{video_id}"
    services.store.put_bytes(key, data, content_type="video/mp4")
    return key


def test_an_upload_is_queued_once_even_when_s3_notifies_twice(services: Services) -> None:
    # Given a video whose upload landed
    video_id = new_video(services)
    key = landed(services, video_id)
    uploads: UploadEventService = services.uploads
    # When the notification arrives twice
    first = uploads.handle_object_created(key, 100)
    second = uploads.handle_object_created(key, 100)
    # Then one job is queued, carrying the video and its source key, and the video is queued
    assert (first, second) == (UploadOutcome.QUEUED, UploadOutcome.DUPLICATE)
    sent: list[TranscodeJob] = services.queue.sent  # type: ignore[attr-defined]
    assert len(sent) == 1
    assert sent[0].video_id == video_id and sent[0].source_key == key and len(sent[0].job_id) == 32
    video = services.catalogue.get(video_id)
    assert (
        video.status == VideoStatus.QUEUED and video.size_bytes == 100 and video.content_type == "video/mp4"
    )


def test_zero_byte_upload_fails_the_video_with_a_reason(services: Services) -> None:
    video_id = new_video(services)
    key = landed(services, video_id, b"")
    # When an empty object lands
    outcome = services.uploads.handle_object_created(key, 0)
    # Then the video fails with a reason, video.failed is published and nothing is queued
    assert outcome == UploadOutcome.REJECTED
    video = services.catalogue.get(video_id)
    assert video.status == VideoStatus.FAILED and "empty" in (video.failure_reason or "")
    ((kind, detail),) = services.events.published  # type: ignore[attr-defined]
    assert (kind, event_body(detail)) == (
        "video.failed",
        {"videoId": video_id, "ownerId": "owner-1", "reason": video.failure_reason},
    )
    assert services.catalogue.pending_events() == (0, 0.0)  # recorded with the status, then published
    assert services.queue.sent == []  # type: ignore[attr-defined]


def test_oversize_upload_fails_the_video_naming_the_limit(services: Services) -> None:
    video_id = new_video(services)
    # Given the client lied about the size and PUT more than the limit
    key = landed(services, video_id, b"x" * 1001)
    outcome = services.uploads.handle_object_created(key, 1001)
    assert outcome == UploadOutcome.REJECTED
    reason = services.catalogue.get(video_id).failure_reason or ""
    assert "1001" in reason and "1000" in reason
    assert services.queue.sent == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("data", "words"),
    [(b"", ["empty"]), (b"x" * 1001, ["1001", "1000"]), (b"x" * 99, ["99", "declared", "100"])],
    ids=["empty", "oversize", "not-the-declared-size"],
)
def test_a_rejected_upload_is_deleted_from_the_store(services: Services, data: bytes, words) -> None:
    # Given a video declared at 100 bytes whose upload landed with another size
    video_id = new_video(services, size=100)
    key = landed(services, video_id, data)
    # When its notification arrives
    outcome = services.uploads.handle_object_created(key, len(data))
    # Then the video fails naming the sizes, nothing is queued and the object is gone
    assert outcome == UploadOutcome.REJECTED
    video = services.catalogue.get(video_id)
    assert video.status == VideoStatus.FAILED
    for word in words:
        assert word in (video.failure_reason or "")
    assert services.queue.sent == []  # type: ignore[attr-defined]
    assert services.store.head(key) is None
    # And the row keeps the declared size, not the size that landed
    assert video.size_bytes == 100


def test_an_upload_of_exactly_the_declared_size_is_kept_and_queued(services: Services) -> None:
    video_id = new_video(services, size=77)
    key = landed(services, video_id, b"z" * 77)
    assert services.uploads.handle_object_created(key, 77) == UploadOutcome.QUEUED
    assert services.store.head(key) is not None


def test_a_failed_delete_of_a_rejected_upload_is_logged_not_raised(services: Services) -> None:
    class StickyStore(FakeStore):
        def delete(self, key: str) -> None:
            raise StorageError("store unavailable")

    services.__dict__["store"] = StickyStore()
    services.__dict__.pop("uploads", None)
    video_id = new_video(services)
    key = landed(services, video_id, b"")
    # When the delete of the rejected object fails
    outcome = services.uploads.handle_object_created(key, 0)
    # Then the video is still failed with its reason, and the notification is not retried for it
    assert outcome == UploadOutcome.REJECTED
    assert services.catalogue.get(video_id).status == VideoStatus.FAILED
    assert services.store.head(key) is not None


def test_a_rejected_object_outside_the_upload_prefix_is_left_alone(services: Services) -> None:
    # Given a row whose source lives outside uploads/ (an import), and an empty object there
    services.catalogue.create(
        Video(
            video_id="imp1",
            video_key="imports/imp1",
            display_name="imported",
            owner_id="owner-1",
            email="o@example.com",
            size_bytes=10,
        )
    )
    services.store.put_bytes("imports/imp1", b"")
    # When a notification for uploads/imp1 rejects it
    assert services.uploads.handle_object_created("uploads/imp1", 0) == UploadOutcome.REJECTED
    # Then the object outside the upload prefix is not deleted
    assert services.store.head("imports/imp1") is not None


@pytest.mark.parametrize(
    "key",
    [
        "outputs/abc/master.m3u8",
        "uploads/",
        "uploads/abc/extra",
        "notuploads/abc",
        "recordings/s/1/w/720p/1.ts",
    ],
)
def test_keys_outside_the_upload_prefix_are_ignored(services: Services, key: str) -> None:
    assert services.uploads.handle_object_created(key, 10) == UploadOutcome.IGNORED
    assert services.queue.sent == []  # type: ignore[attr-defined]


def test_upload_for_an_unknown_video_is_deleted_without_error(services: Services) -> None:
    # Given an object under uploads/ for a video id the catalogue does not know (deleted, or never made)
    services.store.put_bytes("uploads/deadbeef", b"x" * 10)
    services.store.put_bytes("uploads/other", b"y")
    # When its notification arrives
    assert services.uploads.handle_object_created("uploads/deadbeef", 10) == UploadOutcome.UNKNOWN
    # Then nothing is queued or published, and that object (only that one) is deleted
    assert services.queue.sent == [] and services.events.published == []  # type: ignore[attr-defined]
    assert services.store.head("uploads/deadbeef") is None
    assert services.store.head("uploads/other") is not None
    # And a notification for an object already gone is still no error
    assert services.uploads.handle_object_created("uploads/deadbeef", 10) == UploadOutcome.UNKNOWN


def test_keys_are_url_decoded_and_may_sit_under_a_bucket_prefix(services: Services) -> None:
    uploads = services.uploads
    assert uploads.video_id_for("uploads/ab%2Dcd") == "ab-cd"
    assert uploads.video_id_for("uploads/a+b") == "a b"
    assert uploads.video_id_for("tenant%2Fone/uploads/abc") == "abc"
    assert uploads.video_id_for("tenant-uploads/abc") is None


def test_a_queue_failure_leaves_the_video_requeueable(services: Services) -> None:
    video_id = new_video(services)
    key = landed(services, video_id)

    class DownQueue(FakeQueue):
        def send(self, job: TranscodeJob) -> None:
            raise ConnectionError("sqs down")

    services.__dict__["queue"] = DownQueue()
    services.__dict__.pop("uploads", None)
    # When sending the job fails
    with pytest.raises(ConnectionError):
        services.uploads.handle_object_created(key, 100)
    # Then the video stays queued (where the stuck sweep looks, should every retry fail too; never
    # awaiting an upload that landed, where nothing would), and the retried notification sends its job
    assert services.catalogue.get(video_id).status == VideoStatus.QUEUED
    queue = FakeQueue()
    in_a_minute = UploadEventService(
        services.catalogue,
        services.store,
        queue,
        services.events,
        services.settings,
        clock=lambda: utcnow() + timedelta(minutes=1),
    )
    assert in_a_minute.handle_object_created(key, 100) == UploadOutcome.QUEUED
    assert [j.video_id for j in queue.sent] == [video_id]
    # And once a worker claimed it, a late notification sends nothing more
    assert services.catalogue.claim(video_id, "w1", 60) is not None
    assert in_a_minute.handle_object_created(key, 100) == UploadOutcome.DUPLICATE
    assert len(queue.sent) == 1


@pytest.mark.parametrize("how", ["rejected-upload", "transcode-failure"])
def test_an_upload_onto_a_failed_video_does_not_run_it_again(services: Services, how: str) -> None:
    # Given a video that failed: its upload was rejected, or its transcode failed after two attempts
    video_id = new_video(services)
    key = landed(services, video_id, b"" if how == "rejected-upload" else b"x" * 100)
    if how == "rejected-upload":
        assert services.uploads.handle_object_created(key, 0) == UploadOutcome.REJECTED
    else:
        assert services.uploads.handle_object_created(key, 100) == UploadOutcome.QUEUED
        for worker in ("w1", "w2"):
            assert services.catalogue.claim(video_id, worker, 60) is not None
            assert services.catalogue.release(video_id, worker)
        assert services.catalogue.claim(video_id, "w3", 60) is not None
        assert services.catalogue.fail(video_id, "the source has no video track", worker_id="w3")
    before = services.catalogue.get(video_id)
    sent_before = len(services.queue.sent)  # type: ignore[attr-defined]
    # When a new body is PUT onto its key and notified
    services.store.put_bytes(key, b"y" * 100, content_type="video/mp4")
    outcome = services.uploads.handle_object_created(key, 100)
    # Then it is refused: still failed with its reason and attempts, no job, and the object deleted
    assert outcome == UploadOutcome.REFUSED
    after = services.catalogue.get(video_id)
    assert (after.status, after.failure_reason, after.attempts) == (
        VideoStatus.FAILED,
        before.failure_reason,
        before.attempts,
    )
    assert len(services.queue.sent) == sent_before  # type: ignore[attr-defined]
    assert services.store.head(key) is None


def test_the_single_put_url_only_creates_its_object(services: Services) -> None:
    # Given a single-PUT upload
    _, upload = services.videos.create_upload("owner-1", "o@example.com", "clip", "", "video/mp4", 100, None)
    # Then the client is told to send If-None-Match: *, and the URL was signed create-only,
    # so once the upload landed the URL cannot replace it (the stores refuse with 412)
    assert upload.headers == {"Content-Type": "video/mp4", "If-None-Match": "*"}  # type: ignore[union-attr]
    assert upload.url.endswith("&create-only")  # type: ignore[union-attr]


# --- the Lambda ---------------------------------------------------------------------------------
def test_lambda_processes_every_record_and_reports_outcomes(services: Services) -> None:
    # Given two real uploads, one duplicate record, one stranger and an empty file
    a, b, empty = new_video(services), new_video(services), new_video(services)
    for vid in (a, b):
        landed(services, vid)
    landed(services, empty, b"")
    event = s3_event(
        (f"uploads/{a}", 100),
        (f"uploads/{a}", 100),
        ("outputs/x/poster.jpg", 5),
        (f"uploads/{b}", 100),
        (f"uploads/{empty}", 0),
    )
    # When the Lambda runs
    result = lambda_handler(event, FakeLambdaContext())
    # Then both uploads are queued once and the others are accounted for
    assert result == {"outcomes": {"queued": 2, "duplicate": 1, "ignored": 1, "rejected": 1}}
    assert sorted(j.video_id for j in services.queue.sent) == sorted([a, b])  # type: ignore[attr-defined]


def test_lambda_ignores_non_create_events(services: Services) -> None:
    video_id = new_video(services)
    result = lambda_handler(
        s3_event((f"uploads/{video_id}", 100), event_name="ObjectRemoved:Delete"), FakeLambdaContext()
    )
    assert result == {"outcomes": {"ignored": 1}}


def test_a_malformed_record_is_logged_and_skipped(services: Services) -> None:
    good = new_video(services)
    landed(services, good)
    event = s3_event((f"uploads/{good}", 100))
    event["Records"].insert(0, {"eventName": "ObjectCreated:Put", "s3": {}})  # no object at all
    # When one record is not an S3 object record
    result = lambda_handler(event, FakeLambdaContext())
    # Then it is counted as malformed and the good one is still queued
    assert result == {"outcomes": {"malformed": 1, "queued": 1}}
    assert [j.video_id for j in services.queue.sent] == [good]  # type: ignore[attr-defined]


@pytest.mark.parametrize("failure", [ConnectionError("sqs down"), StorageError("queue service unavailable")])
def test_a_transient_failure_does_not_poison_the_others_and_asks_for_a_retry(
    services: Services, failure: Exception
) -> None:
    # (the catalogue's clock a minute behind: Lambda retries a failed event after a minute)
    services.__dict__["catalogue"] = MemoryCatalogue(clock=lambda: utcnow() - timedelta(minutes=1))
    for built in ("videos", "uploads"):
        services.__dict__.pop(built, None)
    ok, stuck = new_video(services), new_video(services)
    landed(services, ok)
    landed(services, stuck)
    sent: list[TranscodeJob] = []

    class FlakyQueue(FakeQueue):
        def send(self, job: TranscodeJob) -> None:
            if job.video_id == stuck:
                raise failure
            sent.append(job)

    services.__dict__["queue"] = FlakyQueue()
    event = s3_event((f"uploads/{stuck}", 100), (f"uploads/{ok}", 100))
    # When the queue fails for the first record
    with pytest.raises(UploadEventsFailed, match="1 of 2"):
        lambda_handler(event, FakeLambdaContext())
    # Then the second record was still queued, and the failed video stays queued for the retry
    assert [j.video_id for j in sent] == [ok]
    assert services.catalogue.get(stuck).status == VideoStatus.QUEUED
    services.__dict__["queue"] = FakeQueue()
    services.__dict__.pop("uploads", None)
    # And once a worker has claimed the first video, the retry sends only the job that never went out
    assert services.catalogue.claim(ok, "w1", 60) is not None
    result = lambda_handler(event, FakeLambdaContext())
    assert result == {"outcomes": {"queued": 1, "duplicate": 1}}
    assert [j.video_id for j in services.queue.sent] == [stuck]  # type: ignore[attr-defined]
