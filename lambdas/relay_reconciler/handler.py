"""EventBridge -> one relay reconcile pass (``reelay.relay.reconciler``).

Two rules invoke it: a schedule every minute, and ECS "Task State Change" events of relay tasks that
stopped. An event names its task's stream in ``startedBy``, so that stream is looked at at once: its
dead task's lease may still run for a while, and the replacement should not wait for it. A catalogue
or ECS listing error raises (the next minute's pass is the real retry); a launch or stop that fails is
logged and counted in ``ReconcileErrors``, and tried again on the next pass.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from reelay.adapters.ecs import stream_of_started_by
from reelay.observability import logger, metrics, tracer
from reelay.relay.reconciler import Reconciler
from reelay.wiring import get_services

TASK_STATE_CHANGE = "ECS Task State Change"


def stopped_stream(event: dict[str, Any]) -> str | None:
    """The stream whose relay task an ECS task-state event reports, or None (a scheduled run)."""
    if event.get("detail-type") != TASK_STATE_CHANGE:
        return None
    detail = event.get("detail") or {}
    return stream_of_started_by(detail.get("startedBy")) if isinstance(detail, dict) else None


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    services = get_services()
    stream_id = stopped_stream(event)
    catalogue: Any = services.catalogue  # the catalogue is also the StreamCatalogue
    reconciler = Reconciler(catalogue, services.relay_launcher, metrics=metrics)
    report = reconciler.run_once([stream_id] if stream_id else [])
    summary = report.summary()
    if report.started or report.stopped or report.errors or report.streams_down:
        logger.info("relay tasks reconciled", extra={**summary, "trigger": stream_id or "schedule"})
    return summary
