"""One relay reconcile pass (``reelay.relay.reconciler``), whatever invoked it:

- the EventBridge schedule, every minute;
- ECS "Task State Change" events of relay tasks that stopped: the event names its task's stream in
  ``startedBy``, and that stream is looked at at once (its dead task's lease may still run for a while,
  and the replacement should not wait for it);
- ``stream.started`` / ``stream.stopped`` events from the events topic (SNS): a stream an operator
  starts gets its task in seconds, without the API itself holding any ECS permission.

A catalogue or ECS listing error raises (the next minute's pass is the real retry); a launch or stop
that fails is logged, counted in ``ReconcileErrors`` and tried again on the next pass.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from reelay.adapters.ecs import stream_of_started_by
from reelay.observability import logger, metrics, tracer
from reelay.relay.reconciler import Reconciler
from reelay.wiring import get_services

TASK_STATE_CHANGE = "ECS Task State Change"
STREAM_EVENTS = ("stream.started", "stream.stopped")  # the events topic's, filtered on ``type``


def stopped_stream(event: dict[str, Any]) -> str | None:
    """The stream whose relay task an ECS task-state event reports, or None."""
    if event.get("detail-type") != TASK_STATE_CHANGE:
        return None
    detail = event.get("detail") or {}
    return stream_of_started_by(detail.get("startedBy")) if isinstance(detail, dict) else None


def notified_streams(event: dict[str, Any]) -> list[str]:
    """The streams of the stream events in an SNS delivery (``{"type", "time", "detail"}`` envelopes)."""
    found: list[str] = []
    for record in event.get("Records") or []:
        if not isinstance(record, dict) or record.get("EventSource") != "aws:sns":
            continue
        try:
            envelope = json.loads((record.get("Sns") or {}).get("Message") or "")
        except ValueError:
            logger.warning("skipping an SNS message that is not JSON")
            continue
        if not isinstance(envelope, dict) or envelope.get("type") not in STREAM_EVENTS:
            continue
        detail = envelope.get("detail")
        stream_id = detail.get("streamId") if isinstance(detail, dict) else None
        if isinstance(stream_id, str) and stream_id:
            found.append(stream_id)
    return found


def streams_of(event: dict[str, Any]) -> list[str]:
    """The streams an invocation is about, beyond the ones a pass always looks at (none when scheduled)."""
    stopped = stopped_stream(event)
    return [stopped] if stopped else notified_streams(event)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    services = get_services()
    stream_ids = streams_of(event)
    catalogue: Any = services.catalogue  # the catalogue is also the StreamCatalogue
    reconciler = Reconciler(catalogue, services.relay_launcher, metrics=metrics)
    report = reconciler.run_once(stream_ids)
    summary = report.summary()
    if report.started or report.stopped or report.errors or report.streams_down:
        logger.info("relay tasks reconciled", extra={**summary, "trigger": stream_ids or "schedule"})
    return summary
