"""Step Functions -> one step of the recording workflow: ``{"step": name, "state": {...}}`` in, the
new state out. Errors propagate: their class name is what the state machine's Retry and Catch match."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from reelay.observability import logger, metrics, tracer
from reelay.recording.steps import HANDLERS
from reelay.recording.sweep import step_context
from reelay.wiring import get_services


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = HANDLERS[event["step"]]
    return step(dict(event["state"]), step_context(get_services()))
