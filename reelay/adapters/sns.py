"""Domain events (``video.ready``, ``recording.ready``, ...) on SNS, or in the log when no topic is set."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from reelay.adapters.aws import client as aws_client
from reelay.adapters.aws import error_code
from reelay.errors import InvalidInput, ReelayError
from reelay.settings import Settings

logger = Logger(child=True)

_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$")
MAX_MESSAGE_BYTES = 256 * 1024


class EventPublishError(ReelayError):
    code = "event_publish_error"
    status = 502


def event_envelope(event_type: str, detail: dict[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
    """``{"type", "time", "detail"}``: the one shape of every Reelay event."""
    if not isinstance(event_type, str) or not _EVENT_TYPE.match(event_type):
        raise InvalidInput(f"event type {event_type!r} must look like 'video.ready' (lower-case, dotted)")
    if not isinstance(detail, dict):
        raise InvalidInput("event detail must be a JSON object")
    when = (now or datetime.now(UTC)).astimezone(UTC)
    return {
        "type": event_type,
        "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "detail": detail,
    }


class SnsEventPublisher:
    """Publishes events to one topic. The ``type`` message attribute lets subscriptions filter."""

    def __init__(self, topic_arn: str, client: Any = None, *, settings: Settings | None = None) -> None:
        if not topic_arn or not topic_arn.startswith("arn:"):
            raise InvalidInput(f"topic ARN {topic_arn!r} is not an ARN")
        self.topic_arn = topic_arn
        self._client = client or aws_client("sns", settings)

    def publish(self, event_type: str, detail: dict[str, Any]) -> None:
        envelope = event_envelope(event_type, detail)
        message = json.dumps(envelope, separators=(",", ":"), default=str)
        if len(message.encode()) > MAX_MESSAGE_BYTES:
            raise InvalidInput(f"event {event_type} is larger than SNS's {MAX_MESSAGE_BYTES} bytes")
        try:
            self._client.publish(
                TopicArn=self.topic_arn,
                Message=message,
                MessageAttributes={"type": {"DataType": "String", "StringValue": event_type}},
            )
        except (ClientError, BotoCoreError) as e:
            raise EventPublishError(
                f"publishing {event_type} to {self.topic_arn} failed: {error_code(e)}"
            ) from e
        logger.info("event published", extra={"event_type": event_type, "topic": self.topic_arn})


class LogEventPublisher:
    """Writes events to the log: used when no topic is configured (tests, the local platform)."""

    def publish(self, event_type: str, detail: dict[str, Any]) -> None:
        envelope = event_envelope(event_type, detail)
        logger.info("event", extra={"event": json.loads(json.dumps(envelope, default=str))})


__all__ = ["EventPublishError", "LogEventPublisher", "SnsEventPublisher", "event_envelope"]
