"""Publishing the event outbox (``video.ready``, ``video.failed``, ``stream.started``, ...), at least once.

The catalogue records each event in the same transaction as the status change it announces
(``VideoCatalogue.complete``/``fail`` with ``event=``). ``OutboxSweep.flush`` then claims due events,
publishes each and deletes it. Whoever changed the status flushes right away, so in the normal case
an event goes out within milliseconds; a scheduled sweep (the ``outbox_sweep`` Lambda, a thread in the
local platform) publishes whatever a crash, a lost connection or an SNS outage left behind.

A claim leases the event for ``lease_seconds``: two relays never publish the same event at once, and
an event whose publisher died is due again when its lease runs out. An event published but not yet
deleted when its publisher dies is published again: subscribers see ``eventId`` (a UUID, unique
across restores of the database) in every detail and can drop the repeat. Events are not ordered: a
retried event can arrive after a newer one about the same video, so each carries ``occurredAt``.

One kind of event is not published but acted on: ``cdn.invalidate`` (``cdn_invalidation``) asks the
CDN to drop paths, for media that was deleted, failed or turned private. It goes through the outbox so
that an invalidation CloudFront refused or never received is retried like a publish; with no CDN
configured (the local platform) there is nothing to drop and it is simply done.

Another is acted on too: ``media.relocate`` (``media_relocation``) moves a video's media to the prefix
its visibility calls for (reelay.media_location), after a visibility change, an unpublish or a
transcode. Only sweeps given a ``relocate`` action claim it for real: the outbox sweep (which claims
every event), and whoever changed the visibility, flushing that subject at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from reelay.models import OutboxEvent
from reelay.observability import logger
from reelay.ports import CdnInvalidator, EventOutbox, EventPublisher

# A publish takes milliseconds, and at worst (the SNS client's 5 s connect and 10 s read timeouts,
# 6 attempts with back-off) about 2 minutes: the lease is twice that, so a slow publish that succeeds
# is not claimed and sent again meanwhile. An event whose publisher died goes out on the first sweep
# after its lease, before the outbox age alarm (10 minutes).
DEFAULT_LEASE_SECONDS = 240


def video_failed(video_id: str, reason: str, **ids: str) -> OutboxEvent:
    """The ``video.failed`` event: the video, why, and the ids the caller knows (job, owner)."""
    return OutboxEvent(
        event_type="video.failed", video_id=video_id, detail={"videoId": video_id, **ids, "reason": reason}
    )


CDN_INVALIDATE = "cdn.invalidate"


def cdn_subject(video_id: str) -> str:
    return f"cdn:{video_id}"


def cdn_invalidation(video_id: str, paths: list[str]) -> OutboxEvent:
    """Drop ``paths`` (CloudFront path patterns) of a video from the CDN, at least once. It is about
    the video by subject only: the video's row may be deleted before it is acted on."""
    return OutboxEvent(
        event_type=CDN_INVALIDATE,
        subject=cdn_subject(video_id),
        detail={"videoId": video_id, "paths": list(paths)},
    )


MEDIA_RELOCATE = "media.relocate"


def media_subject(video_id: str) -> str:
    return f"media:{video_id}"


def media_relocation(video_id: str) -> OutboxEvent:
    """Move a video's media to the prefix its visibility calls for *when it is acted on*, at least
    once. About the video by subject only: it must outlive the row (a deleted video's media goes)."""
    return OutboxEvent(
        event_type=MEDIA_RELOCATE, subject=media_subject(video_id), detail={"videoId": video_id}
    )


@dataclass(frozen=True)
class FlushResult:
    published: int = 0
    failed: int = 0


class OutboxSweep:
    """Publishes due outbox events through an ``EventPublisher`` and forgets the published ones."""

    def __init__(
        self,
        catalogue: EventOutbox,
        publisher: EventPublisher | None,
        *,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        metrics: Any = None,
        cdn: CdnInvalidator | None = None,
        relocate: Callable[[str], object] | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.publisher = publisher
        self.cdn = cdn  # acts on cdn.invalidate events; None: nothing caches media, they are done
        # Acts on media.relocate events (reelay.media_location.MediaRelocator.reconcile); None: this
        # sweep leaves them to one that can (an event it claims anyway fails and is retried).
        self.relocate = relocate
        self.lease_seconds = lease_seconds
        self.metrics = metrics  # a Powertools metrics provider; its owner flushes it

    def flush(
        self, *, video_id: str | None = None, subject: str | None = None, limit: int = 100
    ) -> FlushResult:
        """Publish up to ``limit`` due events (of one video or subject, or all). Never raises for a failed
        publish: the event stays in the outbox and is retried when its lease runs out."""
        published = failed = 0
        for event in self.catalogue.claim_events(
            limit=limit, lease_seconds=self.lease_seconds, video_id=video_id, subject=subject
        ):
            if self._publish(event):
                published += 1
            else:
                failed += 1
        self._count("EventsPublished", published)
        self._count("EventPublishFailed", failed)
        return FlushResult(published=published, failed=failed)

    def flush_quietly(self, *, video_id: str | None = None, subject: str | None = None) -> FlushResult:
        """``flush`` for callers whose own work is done (the status change is committed): a catalogue
        error is logged and left to the sweep instead of turning a finished job into a retry."""
        try:
            return self.flush(video_id=video_id, subject=subject)
        except Exception as exc:
            logger.warning(
                "outbox not flushed: the sweep will publish its events",
                extra={"videoId": video_id, "subject": subject, "error": str(exc) or type(exc).__name__},
            )
            return FlushResult()

    def _publish(self, event: OutboxEvent) -> bool:
        ids = {
            "eventId": event.event_id,
            "eventType": event.event_type,
            "videoId": event.video_id,
            "subject": event.subject,
        }
        detail = {**event.detail, "eventId": event.event_key}
        if event.created_at is not None:
            # When it happened, not when it went out: a retried event arrives late and out of order.
            detail["occurredAt"] = event.created_at.isoformat(timespec="milliseconds") + "Z"
        try:
            if event.event_type == CDN_INVALIDATE:
                self._invalidate(event)
            elif event.event_type == MEDIA_RELOCATE:
                self._relocate(event)
            elif self.publisher is None:  # a sweep for CDN invalidations only
                raise RuntimeError("this sweep has no event publisher")
            else:
                self.publisher.publish(event.event_type, detail)
        except Exception as exc:
            logger.error(
                "event not published: it stays in the outbox",
                extra={**ids, "attempts": event.attempts, "error": str(exc) or type(exc).__name__},
            )
            return False
        assert event.event_id is not None  # claimed events come from the catalogue, with their ids
        try:
            self.catalogue.delete_event(event.event_id)
        except Exception as exc:  # published: at worst it goes out once more after its lease
            logger.warning("published event not deleted from the outbox", extra={**ids, "error": str(exc)})
        return True

    def _invalidate(self, event: OutboxEvent) -> None:
        if self.cdn is not None:
            self.cdn.invalidate([str(p) for p in event.detail.get("paths", [])])

    def _relocate(self, event: OutboxEvent) -> None:
        if self.relocate is None:
            raise RuntimeError("this sweep does not move media")
        self.relocate(str(event.detail["videoId"]))

    def _count(self, name: str, value: int) -> None:
        if self.metrics is not None and value:
            self.metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


__all__ = [
    "CDN_INVALIDATE",
    "DEFAULT_LEASE_SECONDS",
    "MEDIA_RELOCATE",
    "FlushResult",
    "OutboxSweep",
    "cdn_invalidation",
    "cdn_subject",
    "media_relocation",
    "media_subject",
    "video_failed",
]
