"""The client factory, the SQS job queue and raw queue, and SNS events, against moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from reelay.adapters import aws
from reelay.adapters.sns import EventPublishError, LogEventPublisher, SnsEventPublisher, event_envelope
from reelay.adapters.sqs import QueueError, SqsJobQueue, SqsQueue
from reelay.errors import InvalidInput
from reelay.models import TranscodeJob
from reelay.settings import Settings

REGION = "us-east-1"


@pytest.fixture
def mocked() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def sqs(mocked: None) -> Any:
    return boto3.client("sqs", region_name=REGION)


@pytest.fixture
def queue_url(sqs: Any) -> str:
    return sqs.create_queue(QueueName="transcode", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]


def job(n: int = 1) -> TranscodeJob:
    return TranscodeJob(videoId=f"v{n}", sourceKey=f"uploads/v{n}", jobId=f"j{n}")


# --- client factory --------------------------------------------------------------------------------
def test_client_factory_honours_settings_and_caches() -> None:
    # Given settings that point at a local endpoint in another region
    aws.clear_cache()
    s = Settings(aws_endpoint_url="http://127.0.0.1:5999", AWS_REGION="eu-west-2")
    # When clients are asked for
    a, b = aws.client("sqs", s), aws.client("sqs", s)
    other = aws.client("sqs", Settings(AWS_REGION="eu-west-1"))
    # Then the endpoint and region are applied, and one client serves each combination
    assert a is b and a is not other
    assert a.meta.endpoint_url == "http://127.0.0.1:5999" and a.meta.region_name == "eu-west-2"
    assert other.meta.region_name == "eu-west-1" and "amazonaws.com" in other.meta.endpoint_url
    assert a.meta.config.retries["mode"] == "standard" and a.meta.config.read_timeout > 20
    s3 = aws.client("s3", s)
    assert s3.meta.config.s3["addressing_style"] == "path" and s3.meta.config.signature_version == "s3v4"
    # And an SNS publish gives up long before the event outbox's lease would let a second relay in
    from reelay.events import DEFAULT_LEASE_SECONDS

    sns = aws.client("sns", s)
    config = sns.meta.config
    worst = config.retries["total_max_attempts"] * (config.connect_timeout + config.read_timeout) + 30
    assert config.read_timeout <= 10 and worst * 2 <= DEFAULT_LEASE_SECONDS
    aws.clear_cache()
    assert aws.client("sqs", s) is not a


def test_explicit_credentials_make_a_separate_client() -> None:
    s = Settings()
    ambient = aws.client("s3", s)
    keyed = aws.client("s3", s, access_key="AKIAX", secret_key="sekrit")
    assert keyed is not ambient
    assert keyed._request_signer._credentials.access_key == "AKIAX"


# --- SQS job queue ---------------------------------------------------------------------------------
def test_job_round_trip_with_receive_count(queue_url: str, sqs: Any) -> None:
    # Given a job sent to the queue
    q = SqsJobQueue(queue_url, client=sqs)
    q.send(job(1))
    # Then the body uses the camelCase names other parts of the system read
    # When it is received, released and received again
    (first,) = q.receive(max_messages=1, wait_seconds=0)
    assert json.loads(first.raw["Body"]) == {"videoId": "v1", "sourceKey": "uploads/v1", "jobId": "j1"}
    assert (first.job, first.receive_count) == (job(1), 1)
    q.release(first)
    (second,) = q.receive(wait_seconds=1)
    # Then the receive count has grown, and a deleted job does not come back
    assert second.job == job(1) and second.receive_count == 2
    q.delete(second)
    assert q.receive(wait_seconds=0) == []


def test_extend_keeps_the_job_hidden(queue_url: str, sqs: Any) -> None:
    q = SqsJobQueue(queue_url, client=sqs)
    q.send(job(2))
    (msg,) = q.receive(wait_seconds=0)
    q.extend(msg, 600)
    assert q.receive(wait_seconds=0) == []
    with pytest.raises(InvalidInput):
        q.extend(msg, 43_201)
    with pytest.raises(InvalidInput):
        q.extend(msg, -1)


def test_bodies_that_are_not_jobs_are_deleted_not_returned(queue_url: str, sqs: Any) -> None:
    # Given garbage, a job missing a field, and one good job on the queue
    for body in ("not json", json.dumps({"videoId": "v9"}), job(3).model_dump_json(by_alias=True)):
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    q = SqsJobQueue(queue_url, client=sqs)
    # When the worker receives
    got = q.receive(max_messages=10, wait_seconds=0)
    # Then only the job comes back and the bad bodies are gone for good (not just hidden)
    assert [m.job for m in got] == [job(3)]
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert (
        attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "1"
    )


@pytest.mark.parametrize(("max_messages", "wait"), [(0, 0), (11, 0), (1, -1), (1, 21), (True, 0)])
def test_bad_receive_arguments(queue_url: str, sqs: Any, max_messages: int, wait: int) -> None:
    with pytest.raises(InvalidInput):
        SqsJobQueue(queue_url, client=sqs).receive(max_messages=max_messages, wait_seconds=wait)


def test_missing_queue_is_a_queue_error(mocked: None, sqs: Any) -> None:
    q = SqsJobQueue(f"https://sqs.{REGION}.amazonaws.com/123456789012/nope", client=sqs)
    with pytest.raises(QueueError) as err:
        q.send(job(1))
    assert err.value.status == 502 and "nope" in err.value.message


def test_stale_receipt_on_delete_is_a_queue_error() -> None:
    c = boto3.client("sqs", region_name=REGION)
    with Stubber(c) as stub:
        stub.add_client_error(
            "delete_message", service_error_code="ReceiptHandleIsInvalid", http_status_code=400
        )
        with pytest.raises(QueueError, match="ReceiptHandleIsInvalid"):
            SqsQueue("https://sqs.us-east-1.amazonaws.com/1/q", client=c).delete("r")


# --- SQS raw queue (Lambda-shaped records) ---------------------------------------------------------
def test_poll_records_are_shaped_like_a_lambda_sqs_event(queue_url: str, sqs: Any) -> None:
    q = SqsQueue(queue_url, client=sqs)
    message_id = q.send({"Records": [{"s3": {"object": {"key": "uploads/v1"}}}]})
    # When records are polled
    (record,) = q.poll_records(max_messages=10, wait_seconds=0)
    # Then they carry what a Lambda SQS handler reads
    assert record["messageId"] == message_id
    assert json.loads(record["body"]) == {"Records": [{"s3": {"object": {"key": "uploads/v1"}}}]}
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["eventSource"] == "aws:sqs" and record["awsRegion"] == REGION
    assert record["eventSourceARN"].endswith(":transcode")
    # And deleting by receipt handle removes it
    q.delete(record["receiptHandle"])
    assert q.poll_records(wait_seconds=0) == []


def test_visibility_change_on_raw_queue(queue_url: str, sqs: Any) -> None:
    q = SqsQueue(queue_url, client=sqs)
    q.send("plain text body")
    (record,) = q.poll_records(wait_seconds=0)
    q.change_visibility(record["receiptHandle"], 0)
    (again,) = q.poll_records(wait_seconds=0)
    assert again["body"] == "plain text body" and again["attributes"]["ApproximateReceiveCount"] == "2"


def test_raw_queue_rejects_bad_sends(queue_url: str, sqs: Any) -> None:
    q = SqsQueue(queue_url, client=sqs)
    for bad in ("", "x" * (256 * 1024 + 1)):
        with pytest.raises(InvalidInput):
            q.send(bad)
    with pytest.raises(InvalidInput):
        q.send({"a": 1}, delay_seconds=901)
    with pytest.raises(InvalidInput):
        SqsQueue("", client=sqs)


# --- SNS events ------------------------------------------------------------------------------------
def test_events_reach_filtered_subscribers(mocked: None, sqs: Any) -> None:
    # Given a topic with one queue subscribed to video.ready only
    sns = boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name="reelay-events")["TopicArn"]
    url = sqs.create_queue(QueueName="ready-only")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"FilterPolicy": json.dumps({"type": ["video.ready"]}), "RawMessageDelivery": "true"},
    )
    publisher = SnsEventPublisher(topic, client=sns)
    # When two kinds of event are published
    publisher.publish("video.failed", {"videoId": "v1", "reason": "bad media"})
    publisher.publish("video.ready", {"videoId": "v2", "durationSeconds": 3.5})
    # Then only the filtered one arrives, in the envelope shape
    msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    assert len(msgs) == 1
    event = json.loads(msgs[0]["Body"])
    assert event["type"] == "video.ready" and event["detail"] == {"videoId": "v2", "durationSeconds": 3.5}
    assert event["time"].endswith("Z") and "T" in event["time"]


def test_bad_events_are_refused(mocked: None) -> None:
    sns = boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name="t")["TopicArn"]
    publisher = SnsEventPublisher(topic, client=sns)
    for bad_type in ("", "Ready", "video", "video..ready", "video.ready "):
        with pytest.raises(InvalidInput):
            publisher.publish(bad_type, {})
    with pytest.raises(InvalidInput):
        publisher.publish("video.ready", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        publisher.publish("video.ready", {"blob": "x" * 300_000})
    with pytest.raises(InvalidInput):
        SnsEventPublisher("not-an-arn", client=sns)


def test_publishing_to_a_missing_topic_is_an_event_error(mocked: None) -> None:
    sns = boto3.client("sns", region_name=REGION)
    publisher = SnsEventPublisher(f"arn:aws:sns:{REGION}:123456789012:gone", client=sns)
    with pytest.raises(EventPublishError, match="NotFound"):
        publisher.publish("video.ready", {"videoId": "v1"})


def test_log_publisher_logs_the_envelope(caplog: pytest.LogCaptureFixture) -> None:
    # Given no topic, When an event is published, Then its envelope is in the log record
    # (caplog, not capsys: Powertools' handler keeps the stdout it found when it was first built)
    with caplog.at_level("INFO"):
        LogEventPublisher().publish("recording.ready", {"sessionId": "s1"})
    events = [getattr(r, "event", None) for r in caplog.records if getattr(r, "event", None)]
    assert [e["type"] for e in events] == ["recording.ready"]
    assert events[0]["detail"] == {"sessionId": "s1"}
    with pytest.raises(InvalidInput):
        LogEventPublisher().publish("nope", {})


def test_envelope_shape() -> None:
    from datetime import UTC, datetime

    env = event_envelope("video.ready", {"a": 1}, now=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC))
    assert env == {"type": "video.ready", "time": "2026-01-02T03:04:05.678Z", "detail": {"a": 1}}
