"""Transcode DLQ -> fail each dead job's video with a reason (unless it is ready or in progress)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from reelay.models import TranscodeJob
from reelay.observability import MetricUnit, logger, metrics, tracer
from reelay.transcode import mark_dead_job
from reelay.wiring import get_services

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    try:
        job = TranscodeJob.model_validate_json(record.body)
    except ValidationError:
        # Unreadable bodies can never succeed: log and drop them rather than loop in the DLQ.
        logger.warning("dead message is not a transcode job", extra={"messageId": record.message_id})
        return
    services = get_services()
    failed = mark_dead_job(job, services.catalogue, services.store, services.events, services.settings)
    logger.info("dead job handled", extra={"videoId": job.video_id, "jobId": job.job_id, "failed": failed})
    metrics.add_metric(name="DeadJobs", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # Catalogue trouble fails only that record; SQS keeps it in the DLQ for the next try.
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
