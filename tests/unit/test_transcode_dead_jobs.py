"""The dead-jobs Lambda: transcode jobs that reached the DLQ fail their video, once, with a reason."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from lambdas.dead_jobs.handler import lambda_handler
from reelay.catalogue.memory import MemoryCatalogue
from reelay.errors import NotFound
from reelay.events import OutboxSweep
from reelay.models import Rendition, Video, VideoStatus
from reelay.observability import metrics
from reelay.settings import Settings
from reelay.wiring import Services, set_services
from tests.fakes import FakeCdn, FakeEvents, FakeLambdaContext, FakeStore, event_body


class FlakyCatalogue(MemoryCatalogue):
    """Fails every call for one video id, as a database outage would."""

    broken: str | None = None

    def get(self, video_id: str) -> Video:
        if video_id == self.broken:
            raise ConnectionError("database unreachable")
        return super().get(video_id)

    def claim(self, video_id: str, worker_id: str, lease_seconds: int) -> Video | None:
        if video_id == self.broken:
            raise ConnectionError("database unreachable")
        return super().claim(video_id, worker_id, lease_seconds)


@pytest.fixture
def services():
    svc = Services(
        Settings(max_attempts=3), catalogue=FlakyCatalogue(), events=FakeEvents(), store=FakeStore()
    )
    set_services(svc)
    yield svc
    set_services(None)
    metrics.clear_metrics()


def add_video(services: Services, video_id: str, *, claims: int = 0) -> None:
    cat = services.catalogue
    cat.create(
        Video(
            video_id=video_id,
            video_key=f"uploads/{video_id}.mp4",
            display_name="v",
            owner_id="u",
            email="u@example.com",
        )
    )
    cat.mark_uploaded(video_id, size_bytes=10, content_type="video/mp4")
    for _ in range(claims):  # each attempt claims it and hands it back
        worker = f"w-{uuid.uuid4().hex[:4]}"
        assert cat.claim(video_id, worker, 60)
        assert cat.release(video_id, worker)


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"r{i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:reelay-transcode-dlq",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def job_body(video_id: str) -> str:
    return json.dumps({"videoId": video_id, "sourceKey": f"uploads/{video_id}.mp4", "jobId": f"j-{video_id}"})


def test_dead_job_fails_its_video_with_the_attempt_count(services):
    # Given a video whose job was claimed three times and never finished
    add_video(services, "vid1", claims=3)
    services.store.put_bytes("uploads/vid1.mp4", b"source")

    # When its message arrives from the DLQ
    response = lambda_handler(sqs_event(job_body("vid1")), FakeLambdaContext())

    # Then the video failed with a reason, one video.failed went out, and the batch succeeded
    assert response == {"batchItemFailures": []}
    video = services.catalogue.get("vid1")
    assert video.status == VideoStatus.FAILED
    assert video.failure_reason == "transcoding failed after 3 attempts"
    ((kind, detail),) = services.events.published
    assert (kind, event_body(detail)) == (
        "video.failed",
        {"videoId": "vid1", "jobId": "j-vid1", "reason": "transcoding failed after 3 attempts"},
    )
    # And its upload is tagged, so the bucket's lifecycle rule expires it
    assert services.store.tags["uploads/vid1.mp4"] == {"reelay-upload": "failed"}
    # And its output's CDN invalidation is the one event left, for the outbox sweep (which holds the CDN)
    assert_cdn_invalidation_queued(services.catalogue, "vid1")


def assert_cdn_invalidation_queued(catalogue: MemoryCatalogue, video_id: str) -> None:
    """The only event in the outbox drops both of the video's output prefixes from the CDN, as the
    outbox sweep, acting on it, shows."""
    assert catalogue.pending_events()[0] == 1
    cdn = FakeCdn()
    assert OutboxSweep(catalogue, None, cdn=cdn).flush().published == 1
    assert cdn.invalidated == [[f"/outputs/{video_id}/*", f"/private-outputs/{video_id}/*"]]
    assert catalogue.pending_events()[0] == 0


def test_dead_job_never_claimed_reports_the_configured_attempts(services):
    # Given a job that died before any worker claimed it (e.g. the catalogue was down)
    add_video(services, "vid2")

    # When it is handled
    lambda_handler(sqs_event(job_body("vid2")), FakeLambdaContext())

    # Then the reason uses max_attempts
    assert services.catalogue.get("vid2").failure_reason == "transcoding failed after 3 attempts"


def test_dead_job_of_a_ready_video_changes_nothing(services):
    # Given a video that became ready although a copy of its job died
    add_video(services, "vid3")
    cat = services.catalogue
    assert cat.claim("vid3", "w", 60)
    r = Rendition(name="360p", bandwidth=1, codecs="avc1.4d401e", playlist="360p/index.m3u8")
    assert cat.complete("vid3", "w", duration_seconds=3.0, renditions=[r])

    # When the dead copy is handled
    response = lambda_handler(sqs_event(job_body("vid3")), FakeLambdaContext())

    # Then the video stays ready and nothing is published
    assert response == {"batchItemFailures": []}
    assert cat.get("vid3").status == VideoStatus.READY
    assert services.events.published == []


def test_bad_and_unknown_messages_are_dropped_and_outages_are_retried(services):
    # Given a batch: a body that is not a job, a deleted video, a good one, and one the DB cannot read
    add_video(services, "vid4")
    add_video(services, "vid5")
    services.catalogue.broken = "vid5"
    with pytest.raises(NotFound):
        services.catalogue.get("gone")
    event = sqs_event("not json at all", job_body("gone"), job_body("vid4"), job_body("vid5"))

    # When the batch is handled
    response = lambda_handler(event, FakeLambdaContext())

    # Then only the outage is reported as a partial failure (SQS keeps it), the rest are done
    assert response == {"batchItemFailures": [{"itemIdentifier": "m3"}]}
    assert services.catalogue.get("vid4").status == VideoStatus.FAILED
    assert [e for e, _ in services.events.published] == ["video.failed"]


def test_dead_copy_of_a_job_in_progress_leaves_the_video_alone(services):
    # Given a worker is transcoding the video under a live lease, and has published a segment
    add_video(services, "vid6")
    cat = services.catalogue
    assert cat.claim("vid6", "busy-worker", 60)
    services.store.put_bytes("outputs/vid6/360p/seg_00000.ts", b"segment")

    # When a duplicate copy of its job arrives from the DLQ
    response = lambda_handler(sqs_event(job_body("vid6")), FakeLambdaContext())

    # Then the video is still the worker's: not failed, media kept, nothing published
    assert response == {"batchItemFailures": []}
    video = cat.get("vid6")
    assert video.status == VideoStatus.PROCESSING and video.failure_reason is None
    assert cat.heartbeat("vid6", "busy-worker", lease_seconds=60, progress=50, playable=True)
    assert "outputs/vid6/360p/seg_00000.ts" in services.store.objects
    assert services.events.published == []


class ClockedCatalogue(FlakyCatalogue):
    """A catalogue whose clock the test moves, to let a lease expire."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1)
        super().__init__(clock=lambda: self.now)


def test_dead_job_of_a_crashed_worker_fails_the_video_and_removes_its_partial_output(services, capsys):
    # Given a worker claimed the video, published a segment and died; its lease has expired
    cat = ClockedCatalogue()
    services.__dict__["catalogue"] = cat
    add_video(services, "vid7", claims=2)
    assert cat.claim("vid7", "crashed-worker", 60)
    services.store.put_bytes("outputs/vid7/360p/seg_00000.ts", b"segment")
    services.store.put_bytes("outputs/vid8/master.m3u8", b"another video's")
    cat.now += timedelta(seconds=61)

    # When its job arrives from the DLQ
    response = lambda_handler(sqs_event(job_body("vid7")), FakeLambdaContext())

    # Then the video failed with the number of attempts the workers made, once
    assert response == {"batchItemFailures": []}
    video = cat.get("vid7")
    assert video.status == VideoStatus.FAILED
    assert video.failure_reason == "transcoding failed after 3 attempts"
    assert [e for e, _ in services.events.published] == ["video.failed"]
    # And its partial output is gone, other videos' kept, and queued to be dropped from the CDN
    assert list(services.store.objects) == ["outputs/vid8/master.m3u8"]
    assert_cdn_invalidation_queued(cat, "vid7")
    # And TranscodeJobsFailed is counted under the transcoder's service, where the failures alarm looks
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    failed = [d for d in docs if "TranscodeJobsFailed" in d]
    assert len(failed) == 1 and failed[0]["TranscodeJobsFailed"] == [1.0]
    assert failed[0]["service"] == "transcoder"
    assert failed[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Reelay"
    assert ["service"] in failed[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
