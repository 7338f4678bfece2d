"""The local stand-ins for Lambda event source mappings and the DLQ redrive, against moto's SQS."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from local.aws import AwsResources, MotoServer, SqsRecords, provision
from local.workers import Background, SqsEventSource, deliver_with_retries


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    moto = MotoServer("127.0.0.1", 0)
    try:
        yield moto.start()
    finally:
        moto.stop()


@pytest.fixture()
def aws(moto_url: str) -> AwsResources:
    # moto's state is per process, not per server: every test starts from new queues.
    client = boto3.client("sqs", endpoint_url=moto_url, region_name="us-east-1")
    for url in client.list_queues(QueueNamePrefix="reelay-transcode").get("QueueUrls", []):
        client.delete_queue(QueueUrl=url)
    res = provision(moto_url, "us-east-1", max_attempts=3, visibility_seconds=30)
    client.set_queue_attributes(QueueUrl=res.dead_letter_queue_url, Attributes={"VisibilityTimeout": "2"})
    return res


def sqs(aws: AwsResources) -> Any:
    return boto3.client("sqs", endpoint_url=aws.endpoint_url, region_name=aws.region)


def queue_depth(aws: AwsResources, url: str) -> int:
    attrs = sqs(aws).get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def run_dead_letter_source(aws: AwsResources, handler: Any, done: threading.Event) -> None:
    """Run handler behind an event source on the DLQ until done is set (failing after 20 s)."""
    records = SqsRecords(aws.endpoint_url, aws.region, aws.dead_letter_queue_url, wait_seconds=1)
    source = Background(
        "dead-jobs",
        SqsEventSource(name="dead-jobs", poll=records.poll, delete=records.delete, handler=handler),
    )
    source.start()
    try:
        assert done.wait(20)
    finally:
        source.stop(timeout=10)


def test_poison_message_is_redriven_to_the_dlq_after_max_attempts(aws: AwsResources) -> None:
    client = sqs(aws)
    # Given a job on the transcode queue
    client.send_message(QueueUrl=aws.transcode_queue_url, MessageBody='{"videoId": "v"}')
    # When it is received and given back max_attempts times
    for _ in range(3):
        got = client.receive_message(QueueUrl=aws.transcode_queue_url, WaitTimeSeconds=1)["Messages"]
        client.change_message_visibility(
            QueueUrl=aws.transcode_queue_url, ReceiptHandle=got[0]["ReceiptHandle"], VisibilityTimeout=0
        )
    # Then the next receive moves it to the dead-letter queue
    assert client.receive_message(QueueUrl=aws.transcode_queue_url, WaitTimeSeconds=1).get("Messages") is None
    dead = SqsRecords(aws.endpoint_url, aws.region, aws.dead_letter_queue_url, wait_seconds=1).poll()
    assert [json.loads(r["body"]) for r in dead] == [{"videoId": "v"}]


def test_event_source_invokes_with_lambda_records_and_deletes_only_successes(aws: AwsResources) -> None:
    # Given three messages on the DLQ, and a handler that reports the second as a batch item failure
    client = sqs(aws)
    for i in range(3):
        client.send_message(QueueUrl=aws.dead_letter_queue_url, MessageBody=json.dumps({"n": i}))
    seen: list[dict[str, Any]] = []
    done = threading.Event()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        assert context.function_name == "dead-jobs"
        seen.extend(event["Records"])
        failures = [
            {"itemIdentifier": r["messageId"]} for r in event["Records"] if json.loads(r["body"])["n"] == 1
        ]
        if sum(1 for r in seen if json.loads(r["body"])["n"] != 1) >= 2:
            done.set()
        return {"batchItemFailures": failures}

    # When the event source runs
    run_dead_letter_source(aws, handler, done)
    # Then the records had the Lambda SQS shape
    first = seen[0]
    assert first["eventSource"] == "aws:sqs" and first["eventSourceARN"].endswith(":reelay-transcode-dlq")
    assert first["receiptHandle"] and first["messageId"] and first["awsRegion"] == "us-east-1"
    assert int(first["attributes"]["ApproximateReceiveCount"]) >= 1
    # And only the failed record is still on the queue
    deadline = time.monotonic() + 10
    left: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not left:
        left = client.receive_message(QueueUrl=aws.dead_letter_queue_url, WaitTimeSeconds=1).get(
            "Messages", []
        )
    assert [json.loads(m["Body"]) for m in left] == [{"n": 1}]
    assert queue_depth(aws, aws.dead_letter_queue_url) == 1


def test_a_crashing_handler_leaves_the_batch_and_the_runner_survives(aws: AwsResources) -> None:
    # Given a handler that crashes on its first call and succeeds afterwards
    client = sqs(aws)
    client.send_message(QueueUrl=aws.dead_letter_queue_url, MessageBody="{}")
    calls: list[int] = []
    done = threading.Event()

    def handler(event: dict[str, Any], context: Any) -> None:
        calls.append(len(event["Records"]))
        if len(calls) == 1:
            raise RuntimeError("boom")
        done.set()

    # When the event source runs, Then the message comes back and the second call handles it
    run_dead_letter_source(aws, handler, done)
    assert calls[:2] == [1, 1]
    assert queue_depth(aws, aws.dead_letter_queue_url) == 0


def test_failed_delivery_is_retried_in_the_background() -> None:
    # Given a delivery that fails twice and then succeeds
    attempts: list[float] = []

    def deliver() -> None:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise RuntimeError("database hiccup")

    # When it is delivered with retries
    thread = deliver_with_retries(deliver, what="test event", delays=(0.05, 0.05, 0.05))
    # Then the first failure does not raise, and the retries run until one succeeds
    assert thread is not None
    thread.join(5)
    assert len(attempts) == 3


def test_delivery_that_never_succeeds_gives_up_after_the_retries() -> None:
    attempts: list[int] = []

    def deliver() -> None:
        attempts.append(1)
        raise RuntimeError("down")

    thread = deliver_with_retries(deliver, what="test event", delays=(0.01, 0.01))
    assert thread is not None
    thread.join(5)
    assert not thread.is_alive() and len(attempts) == 3


def test_successful_delivery_starts_no_thread() -> None:
    calls: list[int] = []
    assert deliver_with_retries(lambda: calls.append(1), what="test event") is None
    assert calls == [1]
