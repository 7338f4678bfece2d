"""No video stuck forever: find videos left in ``queued`` or ``processing`` past their deadline, and
re-enqueue each one, or fail it with a reason once its attempts are spent.

SQS and the lease cover most failures; this covers what they cannot see:

- a crash between marking an upload queued and sending its job (no message ever existed);
- a duplicate delivery dropped (its message deleted) because another worker held the lease, when that
  worker later died (the message that would have retried it is gone);
- a job whose message outlived SQS's 12-hour visibility ceiling and was redelivered and dropped the
  same way.

A video is stuck once it has not changed for a while: a queued one for ``stuck_queued_seconds`` (a
backlog drains faster than that), a processing one for its lease plus ``stuck_grace_seconds`` (a live
worker heartbeats, which touches it, several times per lease). The sweep takes the video's lease
first, like any worker, so it never races one: a video a live worker holds is left alone. The claim
counts as an attempt, so a video that keeps getting stuck is failed after ``max_attempts`` rounds
instead of being re-sent forever. A send that fails leaves the video queued, due again next round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from reelay.errors import describe
from reelay.events import OutboxSweep, video_failed
from reelay.models import TranscodeJob, Video, VideoStatus, utcnow
from reelay.ports import EventPublisher, JobQueue, ObjectStore, VideoCatalogue
from reelay.settings import Settings
from reelay.videos import clean_up_failed

logger = Logger(service="stuck-sweep")

STUCK_SWEEP_WORKER = "stuck-sweep"
SWEEP_LEASE_SECONDS = 60


@dataclass
class StuckSweepResult:
    stuck: int = 0  # in flight past their deadline this round
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)  # a live worker held it, or it moved on
    errors: int = 0  # a send or a catalogue call failed: due again next round


def stuck_deadline(video: Video, settings: Settings) -> datetime:
    """When an in-flight video that has not changed since ``updated_at`` counts as stuck."""
    if video.status == VideoStatus.PROCESSING:
        return video.updated_at + timedelta(seconds=settings.lease_seconds + settings.stuck_grace_seconds)
    return video.updated_at + timedelta(seconds=settings.stuck_queued_seconds)


class StuckVideoSweep:
    def __init__(
        self,
        catalogue: VideoCatalogue,
        queue: JobQueue,
        store: ObjectStore,
        events: EventPublisher,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
        outbox: OutboxSweep | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.queue = queue
        self.store = store
        self.settings = settings
        self.clock = clock
        self.outbox = outbox or OutboxSweep(catalogue, events)

    def run(self) -> StuckSweepResult:
        result = StuckSweepResult()
        now = self.clock()
        for video in self.catalogue.in_flight():
            if now < stuck_deadline(video, self.settings):
                continue
            result.stuck += 1
            try:
                self._handle(video, result)
            except Exception as exc:  # one video's trouble never stops the others
                result.errors += 1
                logger.warning(
                    "stuck video not handled: the next sweep tries again",
                    extra={"videoId": video.video_id, "error": describe(exc)},
                )
        if result.stuck:
            logger.info(
                "stuck videos swept",
                extra={
                    "stuck": result.stuck,
                    "requeued": result.requeued,
                    "failed": result.failed,
                    "leftAlone": result.left_alone,
                    "errors": result.errors,
                },
            )
        return result

    def _handle(self, video: Video, result: StuckSweepResult) -> None:
        ids = {"videoId": video.video_id, "status": str(video.status)}
        claimed = self.catalogue.claim(video.video_id, STUCK_SWEEP_WORKER, SWEEP_LEASE_SECONDS)
        if claimed is None:  # a live worker holds it, or it was finished or deleted meanwhile
            result.left_alone.append(video.video_id)
            return
        spent = claimed.attempts - 1  # this claim counted as one
        if spent >= self.settings.max_attempts:
            reason = f"processing did not finish after {spent} attempts"
            if self.catalogue.fail(
                video.video_id,
                reason,
                worker_id=STUCK_SWEEP_WORKER,
                event=video_failed(video.video_id, reason, ownerId=video.owner_id),
            ):
                result.failed.append(video.video_id)
                logger.warning("stuck video failed: its attempts are spent", extra={**ids, "attempts": spent})
                # Its upload expires, its output goes, and the outbox sweep drops it from the CDN.
                clean_up_failed(self.catalogue, self.store, self.settings, claimed)
                self.outbox.flush_quietly(video_id=video.video_id)
            return
        if not self.catalogue.release(video.video_id, STUCK_SWEEP_WORKER):
            result.left_alone.append(video.video_id)
            return
        job = TranscodeJob.for_video(claimed)
        self.queue.send(job)  # raising leaves it queued and touched: due again after stuck_queued_seconds
        result.requeued.append(video.video_id)
        logger.info("stuck video re-enqueued", extra={**ids, "jobId": job.job_id, "attempts": spent})


__all__ = ["STUCK_SWEEP_WORKER", "StuckSweepResult", "StuckVideoSweep", "stuck_deadline"]
