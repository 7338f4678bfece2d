"""SQS: the transcode job queue, and a raw queue that yields Lambda-shaped SQS records."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from reelay.adapters.aws import client as aws_client
from reelay.adapters.aws import error_code
from reelay.errors import InvalidInput, ReelayError
from reelay.models import TranscodeJob
from reelay.ports import QueueMessage
from reelay.settings import Settings

logger = Logger(child=True)

MAX_VISIBILITY = 12 * 3600  # SQS's limit for ChangeMessageVisibility
MAX_BATCH = 10
MAX_WAIT = 20
MAX_BODY_BYTES = 256 * 1024
# ApproximateReceiveCount drives retries and the DLQ; the rest fills Lambda-shaped records.
_SYSTEM_ATTRIBUTES = ["ApproximateReceiveCount", "SentTimestamp", "ApproximateFirstReceiveTimestamp"]


class QueueError(ReelayError):
    """The queue service failed or refused (throttled, gone, no permission)."""

    code = "queue_error"
    status = 502


def _check_receive(max_messages: int, wait_seconds: int) -> None:
    if (
        isinstance(max_messages, bool)
        or not isinstance(max_messages, int)
        or not 1 <= max_messages <= MAX_BATCH
    ):
        raise InvalidInput(f"max_messages must be from 1 to {MAX_BATCH}")
    if (
        isinstance(wait_seconds, bool)
        or not isinstance(wait_seconds, int)
        or not 0 <= wait_seconds <= MAX_WAIT
    ):
        raise InvalidInput(f"wait_seconds must be from 0 to {MAX_WAIT}")


def _check_visibility(seconds: int) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 <= seconds <= MAX_VISIBILITY:
        raise InvalidInput(f"visibility timeout must be from 0 to {MAX_VISIBILITY} seconds")
    return seconds


class SqsQueue:
    """Raw JSON messages on one queue. The local platform polls it to feed Lambda-style handlers."""

    def __init__(self, queue_url: str, client: Any = None, *, settings: Settings | None = None) -> None:
        if not queue_url:
            raise InvalidInput("queue URL must not be empty")
        self.queue_url = queue_url
        self._client = client or aws_client("sqs", settings)
        self._arn: str | None = None

    def _fail(self, op: str, err: Exception) -> QueueError:
        return QueueError(f"SQS {op} on {self.queue_url} failed: {error_code(err)}")

    def send(self, body: dict[str, Any] | list[Any] | str, *, delay_seconds: int = 0) -> str:
        """Send a JSON body (a dict/list is serialised; a str is sent as is). Returns the message id."""
        text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"), default=str)
        if not text:
            raise InvalidInput("message body must not be empty")
        if len(text.encode()) > MAX_BODY_BYTES:
            raise InvalidInput(f"message body is larger than SQS's {MAX_BODY_BYTES} bytes")
        if isinstance(delay_seconds, bool) or not 0 <= delay_seconds <= 900:
            raise InvalidInput("delay_seconds must be from 0 to 900")
        try:
            resp = self._client.send_message(
                QueueUrl=self.queue_url, MessageBody=text, DelaySeconds=delay_seconds
            )
        except (ClientError, BotoCoreError) as e:
            raise self._fail("send", e) from e
        return str(resp["MessageId"])

    def receive_raw(self, *, max_messages: int = 1, wait_seconds: int = 20) -> list[dict[str, Any]]:
        """SQS ReceiveMessage as is (long poll), with the receive count attribute."""
        _check_receive(max_messages, wait_seconds)
        try:
            resp = self._client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=max_messages,
                WaitTimeSeconds=wait_seconds,
                MessageSystemAttributeNames=_SYSTEM_ATTRIBUTES,
                MessageAttributeNames=["All"],
            )
        except (ClientError, BotoCoreError) as e:
            raise self._fail("receive", e) from e
        return list(resp.get("Messages") or [])

    @property
    def arn(self) -> str:
        if self._arn is None:
            try:
                attrs = self._client.get_queue_attributes(
                    QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
                )
            except (ClientError, BotoCoreError) as e:
                raise self._fail("get attributes", e) from e
            self._arn = str(attrs["Attributes"]["QueueArn"])
        return self._arn

    def poll_records(self, max_messages: int = 10, wait_seconds: int = 20) -> list[dict[str, Any]]:
        """Messages shaped like the ``Records`` of a Lambda SQS event, so handlers run unchanged.

        Each record: ``messageId, receiptHandle, body, attributes{ApproximateReceiveCount, ...},
        messageAttributes, md5OfBody, eventSource, eventSourceARN, awsRegion``. The caller deletes
        the ones it handled (Lambda's partial batch response, done by hand).
        """
        messages = self.receive_raw(max_messages=max_messages, wait_seconds=wait_seconds)
        if not messages:
            return []
        arn = self.arn
        region = arn.split(":")[3] if arn.count(":") >= 5 else ""
        return [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m.get("Body", ""),
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    **{k: str(v) for k, v in (m.get("Attributes") or {}).items()},
                },
                "messageAttributes": {
                    name: {
                        "stringValue": a.get("StringValue"),
                        "binaryValue": a.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": a.get("DataType", "String"),
                    }
                    for name, a in (m.get("MessageAttributes") or {}).items()
                },
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": region,
            }
            for m in messages
        ]

    def delete(self, receipt_handle: str) -> None:
        try:
            self._client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt_handle)
        except (ClientError, BotoCoreError) as e:
            raise self._fail("delete", e) from e

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        _check_visibility(seconds)
        try:
            self._client.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )
        except (ClientError, BotoCoreError) as e:
            raise self._fail("change visibility", e) from e


class SqsJobQueue:
    """The transcode queue (``JobQueue``): bodies are TranscodeJob JSON with camelCase names."""

    def __init__(self, queue_url: str, client: Any = None, *, settings: Settings | None = None) -> None:
        self.queue = SqsQueue(queue_url, client, settings=settings)

    @property
    def queue_url(self) -> str:
        return self.queue.queue_url

    def send(self, job: TranscodeJob) -> None:
        self.queue.send(job.model_dump_json(by_alias=True))

    def receive(self, *, max_messages: int = 1, wait_seconds: int = 20) -> list[QueueMessage]:
        """Long poll. A body that is not a valid job is logged and deleted: retrying cannot fix it."""
        out: list[QueueMessage] = []
        for m in self.queue.receive_raw(max_messages=max_messages, wait_seconds=wait_seconds):
            try:
                job = TranscodeJob.model_validate_json(m.get("Body") or "")
            except ValidationError as e:
                logger.warning(
                    "dropping a transcode message that is not a job",
                    extra={
                        "message_id": m.get("MessageId"),
                        "error": e.errors(include_url=False)[:3],
                        "body_prefix": (m.get("Body") or "")[:200],
                    },
                )
                self.queue.delete(m["ReceiptHandle"])
                continue
            count = int((m.get("Attributes") or {}).get("ApproximateReceiveCount", "1"))
            out.append(QueueMessage(job=job, receipt=m["ReceiptHandle"], receive_count=count, raw=m))
        return out

    def delete(self, message: QueueMessage) -> None:
        self.queue.delete(message.receipt)

    def extend(self, message: QueueMessage, seconds: int) -> None:
        self.queue.change_visibility(message.receipt, seconds)

    def release(self, message: QueueMessage) -> None:
        self.queue.change_visibility(message.receipt, 0)


__all__ = ["QueueError", "SqsJobQueue", "SqsQueue"]
