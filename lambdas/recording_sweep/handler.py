"""EventBridge schedule -> start fixup for stale recording sessions and finalize for ended ones.

With no state machine configured (the local platform) the workflow runs in-process."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from reelay.observability import logger, metrics, tracer
from reelay.recording.retention import expire_recordings
from reelay.recording.sweep import LocalStarter, WorkflowStarter, step_context, sweep
from reelay.wiring import get_services


def starter() -> WorkflowStarter:
    services = get_services()
    arn = services.settings.recording_state_machine_arn
    if arn:
        from reelay.adapters.stepfunctions import StepFunctionsStarter

        return StepFunctionsStarter(arn, settings=services.settings)
    return LocalStarter(step_context(services))


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    services = get_services()
    started = sweep(services.catalogue, starter(), mp4=services.settings.recording_mp4)
    if started["fixup"] or started["finalize"]:
        logger.info("recording workflows started", extra=started)
    # Each stream's retentionDays: media and video removed, the session marked expired.
    return {**started, "expired": expire_recordings(services)}
