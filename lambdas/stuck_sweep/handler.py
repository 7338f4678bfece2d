"""EventBridge schedule -> re-enqueue videos stuck in queued/processing past their deadline, or fail them
once their attempts are spent (reelay.stuck), and report how many were stuck (the stuck-videos alarm).

A catalogue error raises: Lambda retries, and a sweep that keeps failing stops reporting, which the
alarm counts as breaching.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from reelay.events import OutboxSweep
from reelay.observability import MetricUnit, logger, metrics, tracer
from reelay.stuck import StuckVideoSweep
from reelay.wiring import get_services

METRIC_STUCK = "StuckVideos"
METRIC_REQUEUED = "StuckVideosRequeued"
METRIC_FAILED = "StuckVideosFailed"


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    services = get_services()
    sweep = StuckVideoSweep(
        services.catalogue,
        services.queue,
        services.store,
        services.events,
        services.settings,
        outbox=OutboxSweep(services.catalogue, services.events, metrics=metrics),
    )
    result = sweep.run()
    metrics.add_metric(name=METRIC_STUCK, unit=MetricUnit.Count, value=result.stuck)
    metrics.add_metric(name=METRIC_REQUEUED, unit=MetricUnit.Count, value=len(result.requeued))
    metrics.add_metric(name=METRIC_FAILED, unit=MetricUnit.Count, value=len(result.failed))
    return {
        "stuck": result.stuck,
        "requeued": result.requeued,
        "failed": result.failed,
        "leftAlone": result.left_alone,
        "errors": result.errors,
    }
