"""EventBridge schedule -> publish the outbox events the fast path left behind, then report the backlog.

Whoever changes a video's status flushes its events right away; this sweep publishes what a crash, a
lost connection or an SNS outage left in the outbox, and reports how many events wait and for how long
(the alarm on ``OutboxOldestAgeSeconds``). A catalogue error raises: Lambda retries, and a sweep that
keeps failing stops reporting, which the alarm counts as breaching.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from reelay.events import OutboxSweep
from reelay.media_location import MediaRelocator
from reelay.observability import MetricUnit, logger, metrics, tracer
from reelay.wiring import get_services

METRIC_PENDING = "OutboxPending"
METRIC_OLDEST_AGE = "OutboxOldestAgeSeconds"
BATCH_SIZE = 100
# No new batch once less than this is left of the invocation: a batch of publishes that answer as SNS
# normally does, and the closing backlog query, fit in it. A publish that hangs through its retries
# can still outlast the invocation; its event's lease (4 minutes) outlasts that, so it is retried,
# not sent twice at once.
RESERVE_MILLIS = 15_000


def sweep(relay: OutboxSweep, context: LambdaContext) -> tuple[int, int]:
    """Flush batches until none is due, a batch publishes nothing (the publisher is down: the next
    sweep tries again) or time runs short. Failed events stay leased, so no batch claims them twice."""
    published = failed = 0
    while True:
        result = relay.flush(limit=BATCH_SIZE)
        published += result.published
        failed += result.failed
        claimed = result.published + result.failed
        if claimed < BATCH_SIZE or not result.published:
            return published, failed
        if context.get_remaining_time_in_millis() < RESERVE_MILLIS:
            return published, failed


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    services = get_services()
    # It also moves media between the public and private prefixes (media.relocate) that the fast path
    # (the API, the worker) left undone.
    relocator = MediaRelocator(services.catalogue, services.store, services.settings, services.cdn)

    def relocate(video_id: str) -> int:
        # A big video's move goes on in the next sweep (it keeps its progress) rather than outlive this one.
        budget = context.get_remaining_time_in_millis() / 1000 - RESERVE_MILLIS / 1000
        return relocator.reconcile(video_id, budget_seconds=max(1.0, budget))

    relay = OutboxSweep(
        services.catalogue, services.events, metrics=metrics, cdn=services.cdn, relocate=relocate
    )
    published, failed = sweep(relay, context)
    pending, oldest_age = services.catalogue.pending_events()
    metrics.add_metric(name=METRIC_PENDING, unit=MetricUnit.Count, value=pending)
    metrics.add_metric(name=METRIC_OLDEST_AGE, unit=MetricUnit.Seconds, value=oldest_age)
    summary = {"published": published, "failed": failed, "pending": pending, "oldestAgeSeconds": oldest_age}
    if published or failed or pending:
        logger.info("outbox swept", extra=summary)
    return summary
