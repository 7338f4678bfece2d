"""No video stuck forever: the stuck-video sweep against the ways a video gets stuck.

Each scenario drives the real upload handler and transcode service (with a fake encoder) over an
in-memory catalogue whose clock the test moves, then runs the sweep and checks the video gets done.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reelay.catalogue.memory import MemoryCatalogue
from reelay.models import TranscodeJob, Video, VideoStatus
from reelay.settings import Settings
from reelay.stuck import STUCK_SWEEP_WORKER, StuckVideoSweep, stuck_deadline
from reelay.transcode import Outcome, TranscodeService
from reelay.uploads import UploadEventService, UploadOutcome
from reelay.videos import output_prefix, upload_key
from tests.fakes import FakeEvents, FakeQueue, FakeStore
from tests.unit.test_transcode import FakeEncoder, fake_ladder, fake_probe
from tests.unit.test_transcode_dead_jobs import assert_cdn_invalidation_queued

VIDEO_ID = "vid00000000000000000007"
SQS_VISIBILITY_CEILING = timedelta(hours=12)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, 0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Platform:
    """The pieces one video's life touches, sharing one clock."""

    def __init__(self, tmp_path: Path, **settings: object) -> None:
        self.clock = Clock()
        self.settings = Settings(
            work_dir=str(tmp_path / "work"),
            ladder="360p,240p",
            max_attempts=3,
            lease_seconds=60,
            stuck_queued_seconds=900,
            stuck_grace_seconds=60,
            **settings,
        )
        self.catalogue = MemoryCatalogue(clock=self.clock)
        self.store = FakeStore()
        self.queue = FakeQueue()
        self.events = FakeEvents()
        self.sweep = StuckVideoSweep(
            self.catalogue, self.queue, self.store, self.events, self.settings, clock=self.clock
        )

    def upload(self) -> str:
        """A video whose upload landed in the store (the notification not handled yet)."""
        key = upload_key(self.settings, VIDEO_ID)
        self.catalogue.create(
            Video(
                video_id=VIDEO_ID,
                video_key=key,
                display_name="Stuck",
                owner_id="u1",
                email="u1@example.com",
                created_at=self.clock(),
                updated_at=self.clock(),
            )
        )
        self.store.put_bytes(key, b"\x00\x00\x00 ftypisom-a-real-looking-video", content_type="video/mp4")
        return key

    def worker(self, worker_id: str, encoder: FakeEncoder | None = None) -> TranscodeService:
        return TranscodeService(
            self.catalogue,
            self.store,
            self.events,
            self.settings,
            worker_id=worker_id,
            transcode_fn=encoder or FakeEncoder(),
            probe_fn=fake_probe,
            choose_ladder_fn=fake_ladder,
            heartbeat_seconds=0.05,
        )

    def deliver(self, worker_id: str) -> Outcome:
        """The queue's next message, run by a worker (SQS deletes it when the outcome says so)."""
        (message,) = self.queue.receive(max_messages=1)
        return self.worker(worker_id).run(message.job, cancel=threading.Event(), receive_count=1)

    def status(self) -> VideoStatus:
        return self.catalogue.get(VIDEO_ID).status


class CrashOnSend(FakeQueue):
    """The process dies (not an exception the handler catches) as it sends the job."""

    def send(self, job: TranscodeJob) -> None:
        raise KeyboardInterrupt("the upload handler's process was killed")


def test_a_crash_between_marking_the_upload_and_sending_its_job_is_re_enqueued(tmp_path):
    # Given an upload whose handler marked it queued, then died before sending the job
    p = Platform(tmp_path)
    key = p.upload()
    handler = UploadEventService(p.catalogue, p.store, CrashOnSend(), p.events, p.settings)
    with pytest.raises(KeyboardInterrupt):
        handler.handle_object_created(key, 35)
    assert p.status() == VideoStatus.QUEUED and p.queue.sent == []

    # When the sweep runs before the queued deadline, then after it
    p.clock.advance(seconds=899)
    early = p.sweep.run()
    p.clock.advance(seconds=2)
    late = p.sweep.run()

    # Then only the late sweep re-enqueued it, once, and a worker finishes the video
    assert early.stuck == 0 and early.requeued == []
    assert late.stuck == 1 and late.requeued == [VIDEO_ID]
    assert [j.video_id for j in p.queue.sent] == [VIDEO_ID]
    assert p.deliver("w1") is Outcome.DONE
    assert p.status() == VideoStatus.READY
    assert p.sweep.run().stuck == 0  # nothing left to sweep


def test_a_dropped_duplicate_whose_original_worker_later_died_is_re_enqueued(tmp_path):
    # Given a queued video; worker A takes the job (and holds the lease) ...
    p = Platform(tmp_path)
    key = p.upload()
    assert (
        UploadEventService(p.catalogue, p.store, p.queue, p.events, p.settings).handle_object_created(key, 35)
        is UploadOutcome.QUEUED
    )
    (original,) = p.queue.receive()
    assert p.catalogue.claim(VIDEO_ID, "worker-a", p.settings.lease_seconds) is not None

    # ... a duplicate delivery reaches worker B, which drops it (its message deleted) ...
    outcome = p.worker("worker-b").run(original.job, cancel=threading.Event(), receive_count=2)
    assert outcome is Outcome.ALREADY_DONE and outcome.deletes_message

    # ... and worker A dies: no heartbeat again, and no message left to retry the job.
    # When the sweep runs while A's lease could still be live, then once it has lapsed
    p.clock.advance(seconds=p.settings.lease_seconds)
    while_leased = p.sweep.run()
    p.clock.advance(seconds=p.settings.stuck_grace_seconds + 1)
    lapsed = p.sweep.run()

    # Then it is left alone first, re-enqueued after, and a new worker finishes it
    assert while_leased.stuck == 0
    assert lapsed.requeued == [VIDEO_ID] and p.status() == VideoStatus.QUEUED
    assert p.deliver("worker-c") is Outcome.DONE
    assert p.status() == VideoStatus.READY


def test_a_job_past_sqs_twelve_hour_visibility_ceiling_is_finished_after_its_worker_dies(tmp_path):
    # Given a worker that has held a video, heartbeating, for longer than SQS can keep a message hidden
    p = Platform(tmp_path)
    key = p.upload()
    UploadEventService(p.catalogue, p.store, p.queue, p.events, p.settings).handle_object_created(key, 35)
    (message,) = p.queue.receive()
    assert p.catalogue.claim(VIDEO_ID, "long-worker", p.settings.lease_seconds) is not None
    elapsed = timedelta()
    while elapsed <= SQS_VISIBILITY_CEILING:
        p.clock.advance(seconds=30)
        elapsed += timedelta(seconds=30)
        assert p.catalogue.heartbeat(
            VIDEO_ID, "long-worker", lease_seconds=p.settings.lease_seconds, progress=50, playable=False
        )
        if elapsed.total_seconds() % 3600 == 0:  # a live worker is never swept, however long it runs
            assert p.sweep.run().stuck == 0
    # SQS made the message visible again at the ceiling; its redelivery is dropped as a duplicate
    redelivered = p.worker("other").run(message.job, cancel=threading.Event(), receive_count=2)
    assert redelivered is Outcome.ALREADY_DONE and redelivered.deletes_message

    # When the long worker dies, and the sweep runs after its lease lapsed
    p.clock.advance(seconds=p.settings.lease_seconds + p.settings.stuck_grace_seconds + 1)
    result = p.sweep.run()

    # Then the video is sent again and finished
    assert result.requeued == [VIDEO_ID]
    assert p.deliver("w2") is Outcome.DONE
    assert p.status() == VideoStatus.READY


def test_a_video_stuck_again_and_again_fails_with_a_reason_once_its_attempts_are_spent(tmp_path):
    # Given a video whose every worker dies mid-job, leaving partial output behind
    p = Platform(tmp_path)
    key = p.upload()
    UploadEventService(p.catalogue, p.store, p.queue, p.events, p.settings).handle_object_created(key, 35)
    rounds = 0
    while p.status() != VideoStatus.FAILED:
        rounds += 1
        assert rounds < 10, "the sweep never gave up"
        p.queue.receive()  # the job is taken ...
        assert p.catalogue.claim(VIDEO_ID, f"w{rounds}", p.settings.lease_seconds) is not None
        p.store.put_bytes(f"{output_prefix(p.settings, VIDEO_ID)}360p/seg_00000.ts", b"partial")
        p.clock.advance(seconds=p.settings.lease_seconds + p.settings.stuck_grace_seconds + 1)  # ... dies
        p.sweep.run()

    # Then the sweep failed it after max_attempts, with a reason, announced once, partial output removed
    video = p.catalogue.get(VIDEO_ID)
    assert video.failure_reason is not None
    assert video.failure_reason.startswith("processing did not finish after ")
    assert video.failure_reason.endswith(" attempts")
    spent = int(video.failure_reason.split()[-2])
    assert spent >= p.settings.max_attempts
    assert [e for e, _ in p.events.published] == ["video.failed"]
    assert p.events.published[0][1]["reason"] == video.failure_reason
    assert not any(k.startswith(output_prefix(p.settings, VIDEO_ID)) for k in p.store.objects)
    assert rounds <= p.settings.max_attempts
    # And, as on every path that fails a video, its upload is tagged for the lifecycle rule to expire,
    # and its output's CDN invalidation waits in the outbox for the outbox sweep
    assert p.store.tags[key] == {"reelay-upload": "failed"}
    assert_cdn_invalidation_queued(p.catalogue, VIDEO_ID)


def test_the_sweep_leaves_a_video_a_live_worker_holds(tmp_path):
    # Given a processing video whose worker holds a live lease, though its row looks old
    p = Platform(tmp_path)
    key = p.upload()
    UploadEventService(p.catalogue, p.store, p.queue, p.events, p.settings).handle_object_created(key, 35)
    assert p.catalogue.claim(VIDEO_ID, "slow-worker", 3600) is not None
    p.clock.advance(seconds=p.settings.lease_seconds + p.settings.stuck_grace_seconds + 1)

    # When the sweep runs
    result = p.sweep.run()

    # Then it is past the deadline, but the lease wins: not re-sent, still the worker's
    assert result.stuck == 1 and result.left_alone == [VIDEO_ID] and result.requeued == []
    assert p.status() == VideoStatus.PROCESSING
    assert p.catalogue.heartbeat(VIDEO_ID, "slow-worker", lease_seconds=60, progress=10, playable=False)


class BrokenQueue(FakeQueue):
    def __init__(self) -> None:
        super().__init__()
        self.down = True

    def send(self, job: TranscodeJob) -> None:
        if self.down:
            raise ConnectionError("SQS unreachable")
        super().send(job)


def test_a_send_that_fails_leaves_the_video_queued_for_the_next_sweep(tmp_path):
    # Given a queued video whose job was lost, and a queue that is down
    p = Platform(tmp_path)
    p.upload()
    assert p.catalogue.mark_uploaded(VIDEO_ID, size_bytes=35, content_type="video/mp4")
    queue = BrokenQueue()
    sweep = StuckVideoSweep(p.catalogue, queue, p.store, p.events, p.settings, clock=p.clock)
    p.clock.advance(seconds=p.settings.stuck_queued_seconds + 1)

    # When the sweep runs with the queue down, then again after the deadline with it back
    down = sweep.run()
    queue.down = False
    p.clock.advance(seconds=p.settings.stuck_queued_seconds + 1)
    back = sweep.run()

    # Then the first round counted an error and left it queued; the second sent the job
    assert down.errors == 1 and down.requeued == [] and p.status() == VideoStatus.QUEUED
    assert back.requeued == [VIDEO_ID] and [j.video_id for j in queue.sent] == [VIDEO_ID]


def test_the_deadline_of_a_queued_and_a_processing_video(tmp_path):
    p = Platform(tmp_path)
    at = datetime(2026, 1, 1)
    queued = Video(
        video_id=VIDEO_ID, video_key="k", display_name="x", owner_id="u", email="e@x.y",
        status=VideoStatus.QUEUED, updated_at=at,
    )  # fmt: skip
    processing = queued.model_copy(update={"status": VideoStatus.PROCESSING})
    assert stuck_deadline(queued, p.settings) == at + timedelta(seconds=900)
    assert stuck_deadline(processing, p.settings) == at + timedelta(seconds=60 + 60)
    assert STUCK_SWEEP_WORKER == "stuck-sweep"


# --- the scheduled Lambda and its row in the local platform ------------------------------------------
def _stale_queued_video(minutes_ago: int):
    from reelay.wiring import Services, set_services
    from tests.fakes import ManualClock

    then = ManualClock(datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=minutes_ago))
    catalogue = MemoryCatalogue(clock=then)
    catalogue.create(
        Video(
            video_id=VIDEO_ID, video_key=f"uploads/{VIDEO_ID}", display_name="x", owner_id="u1",
            email="u1@example.com", created_at=then(), updated_at=then(),
        )
    )  # fmt: skip
    assert catalogue.mark_uploaded(VIDEO_ID, size_bytes=10, content_type="video/mp4")
    queue = FakeQueue()
    services = Services(
        Settings(stuck_queued_seconds=1800), catalogue=catalogue, queue=queue, store=FakeStore(),
        events=FakeEvents(),
    )  # fmt: skip
    set_services(services)
    return catalogue, queue


def test_the_scheduled_handler_re_enqueues_and_reports_the_stuck_count(capsys):
    import json

    from lambdas.stuck_sweep import handler as stuck_sweep
    from reelay.observability import metrics
    from reelay.wiring import set_services
    from tests.fakes import FakeLambdaContext

    # Given a video queued 31 minutes ago whose job never reached the queue
    metrics.clear_metrics()
    catalogue, queue = _stale_queued_video(31)
    try:
        # When the schedule invokes the handler
        result = stuck_sweep.lambda_handler({"detail-type": "Scheduled Event"}, FakeLambdaContext())
    finally:
        set_services(None)

    # Then the job is sent again, and the counts go out as EMF metrics for the stuck-videos alarm
    assert result["stuck"] == 1 and result["requeued"] == [VIDEO_ID]
    assert [j.video_id for j in queue.sent] == [VIDEO_ID]
    assert catalogue.get(VIDEO_ID).status == VideoStatus.QUEUED
    (doc,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert (
        doc[stuck_sweep.METRIC_STUCK],
        doc[stuck_sweep.METRIC_REQUEUED],
        doc[stuck_sweep.METRIC_FAILED],
    ) == (
        [1.0],
        [1.0],
        [0.0],
    )


def test_the_local_platform_runs_the_sweep_on_a_schedule():
    import time
    from types import SimpleNamespace

    from local.platform import BACKGROUND_WORKERS, STUCK_SWEEP_EVERY_SECONDS
    from reelay.wiring import set_services

    # Given the platform's stuck-sweep row, over a video whose job was lost half an hour ago
    assert STUCK_SWEEP_EVERY_SECONDS <= 60
    (spec,) = [w for w in BACKGROUND_WORKERS if w.name == "stuck-sweep"]
    _, queue = _stale_queued_video(31)
    platform = SimpleNamespace(
        settings=Settings(), _invoke=lambda handler, event, context: handler(event, context)
    )
    stop = threading.Event()
    thread = threading.Thread(target=spec.build(platform), args=(stop,))  # type: ignore[arg-type]
    try:
        # When it starts
        thread.start()
        deadline = time.monotonic() + 20
        while not queue.sent and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
        set_services(None)

    # Then its first run already re-enqueued the video
    assert [j.video_id for j in queue.sent] == [VIDEO_ID]


def test_a_job_that_could_not_be_sent_through_every_retry_is_sent_by_the_sweep(tmp_path: Path) -> None:
    # Given an upload whose job cannot be sent: SQS refuses it through the notification and both of
    # Lambda's retries (the event then goes to the failure queue, and nothing retries it)
    p = Platform(tmp_path)
    key = p.upload()

    class DownQueue(FakeQueue):
        def send(self, job: TranscodeJob) -> None:
            raise ConnectionError("sqs down")

    uploads = UploadEventService(p.catalogue, p.store, DownQueue(), p.events, p.settings)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            uploads.handle_object_created(key, 35)
        p.clock.advance(minutes=1)
    # Then the video is queued, not awaiting its upload: the sweep sees it once its deadline passed
    assert p.catalogue.get(VIDEO_ID).status == VideoStatus.QUEUED
    assert p.sweep.run().stuck == 0  # not yet
    p.clock.advance(seconds=p.settings.stuck_queued_seconds)
    result = p.sweep.run()
    assert result.requeued == [VIDEO_ID] and [j.video_id for j in p.queue.sent] == [VIDEO_ID]
    # And the job it sent gets the video done
    assert p.deliver("w1") == Outcome.DONE
    assert p.status() == VideoStatus.READY
