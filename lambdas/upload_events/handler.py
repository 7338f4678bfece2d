"""S3 ObjectCreated on the upload prefix -> queue a transcode job per uploaded video."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from reelay.errors import ReelayError
from reelay.observability import MetricUnit, logger, metrics, tracer
from reelay.uploads import UploadEventService
from reelay.wiring import get_services


def _handle(uploads: UploadEventService, record: S3EventRecord) -> str:
    try:
        if not record.event_name.startswith("ObjectCreated"):
            return "ignored"
        key, size = record.s3.get_object.key, int(record.s3.get_object.size)
    except (KeyError, TypeError, ValueError, AttributeError):  # not an S3 record: retrying will not help
        logger.error("malformed S3 record", extra={"record": record.raw_event})
        return "malformed"
    try:
        return str(uploads.handle_object_created(key, size))
    except ReelayError as exc:
        if exc.status >= 500:  # a dependency failed (queue, store): retry like any transient error
            logger.error("upload record failed", extra={"key": key, "error": exc.code, "detail": exc.message})
            return "retry"
        logger.warning("upload record rejected", extra={"key": key, "error": exc.code, "detail": exc.message})
        return "invalid"  # a bad upload: retrying will not help
    except Exception:  # catalogue or queue trouble: finish the other records, then ask for a retry
        logger.exception("upload record failed", extra={"key": key})
        return "retry"


class UploadEventsFailed(Exception):
    """Raised after every record was tried, so Lambda's async retry re-runs the failed ones."""


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@event_source(data_class=S3Event)
def lambda_handler(event: S3Event, context: LambdaContext) -> dict[str, Any]:
    uploads = get_services().uploads
    outcomes: dict[str, int] = {}
    transient = 0
    records = list(event.records)
    for record in records:
        outcome = _handle(uploads, record)
        if outcome == "retry":
            transient += 1
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        metrics.add_metric(name=f"UploadEvent_{outcome}", unit=MetricUnit.Count, value=1)
    if transient:
        # Handling is idempotent (a queued video is not queued again), so a retry of the whole event is safe.
        raise UploadEventsFailed(f"{transient} of {len(records)} upload records failed; see the log")
    return {"outcomes": outcomes}
