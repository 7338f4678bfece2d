"""The relay-reconciler Lambda: a scheduled pass, and a pass on a relay task's STOPPED event."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from lambdas.relay_reconciler.handler import lambda_handler, notified_streams, stopped_stream
from reelay.models import utcnow
from reelay.observability import metrics
from reelay.relay.reconciler import METRIC_STREAMS_DOWN, RelayTask
from reelay.settings import Settings
from reelay.wiring import Services, set_services
from tests.fakes import FakeLambdaContext
from tests.unit.test_reconciler import LEASE, FakeCatalogue, FakeLauncher, FakeStream

SCHEDULED = {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}


def task_stopped(started_by: str) -> dict[str, Any]:
    """An ECS "Task State Change" event as EventBridge delivers it (the fields the handler reads)."""
    return {
        "version": "0",
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "detail": {
            "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/media",
            "taskArn": "arn:aws:ecs:us-east-1:123456789012:task/media/dead",
            "lastStatus": "STOPPED",
            "desiredStatus": "STOPPED",
            "group": "family:reelay-relay",
            "startedBy": started_by,
            "stoppedReason": "Essential container in task exited",
        },
    }


def sns_delivery(*messages: str) -> dict[str, Any]:
    """Events-topic messages as SNS delivers them to a Lambda subscription."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "Sns": {
                    "Type": "Notification",
                    "Message": message,
                    "MessageAttributes": {"type": {"Type": "String", "Value": "stream.started"}},
                },
            }
            for message in messages
        ]
    }


def envelope(event_type: str, stream_id: object) -> str:
    return json.dumps({"type": event_type, "time": "2026-12-01T12:00:00Z", "detail": {"streamId": stream_id}})


@pytest.fixture(autouse=True)
def _reset():
    metrics.clear_metrics()
    yield
    set_services(None)


def use(catalogue: FakeCatalogue, launcher: FakeLauncher) -> None:
    set_services(Services(Settings(), catalogue=catalogue, relay_launcher=launcher))


def test_a_stopped_event_replaces_the_dead_task_of_its_stream_at_once(capsys):
    # Given a running stream whose task just died (its lease has not run out yet)
    now = utcnow()
    stream = FakeStream("cam-1", state="running", lease_owner="arn:task/dead", lease_expires_at=now + LEASE)
    launcher = FakeLauncher()
    use(FakeCatalogue(stream), launcher)
    # When ECS reports that task stopped
    summary = lambda_handler(task_stopped("relay/cam-1"), FakeLambdaContext())
    # Then a replacement is launched now
    assert launcher.launched == ["cam-1"]
    assert summary["started"] == ["cam-1"] and summary["errors"] == []
    # And StreamsDown is flushed as EMF in the Reelay namespace
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    (record,) = emf
    assert record["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Reelay"
    assert record[METRIC_STREAMS_DOWN] == [0.0]


def test_a_scheduled_pass_without_a_hint_leaves_a_live_lease_alone():
    # Given a stream whose lease holder is alive (a task ECS lists, up for 10 minutes)
    now = utcnow()
    launcher = FakeLauncher(tasks=[RelayTask("arn:task/a", "cam-1", "RUNNING", now - timedelta(minutes=10))])
    catalogue = FakeCatalogue(
        FakeStream("cam-1", state="running", lease_owner="arn:task/a", lease_expires_at=now + LEASE)
    )
    use(catalogue, launcher)
    # When the schedule fires
    summary = lambda_handler(SCHEDULED, FakeLambdaContext())
    # Then nothing is launched or stopped
    assert (summary["started"], summary["stopped"], launcher.launched) == ([], [], [])


@pytest.mark.parametrize(
    ("event", "stream"),
    [
        (task_stopped("relay/cam-1"), "cam-1"),
        (task_stopped("ecs-svc/1234"), None),  # a service's task, not a relay task
        (task_stopped(""), None),
        (SCHEDULED, None),
        ({"detail-type": "ECS Task State Change", "detail": "garbled"}, None),
    ],
)
def test_stopped_stream_reads_the_stream_from_started_by(event, stream):
    assert stopped_stream(event) == stream


def test_services_build_the_ecs_launcher_from_settings():
    # Given settings naming the relay cluster and task definition
    settings = Settings(
        relay_cluster_arn="arn:aws:ecs:us-east-1:123456789012:cluster/media",
        relay_task_definition_arn="arn:aws:ecs:us-east-1:123456789012:task-definition/reelay-relay:3",
        relay_subnets=("subnet-1",),
        relay_security_groups=("sg-1",),
    )
    # When the launcher is asked for
    launcher: Any = Services(settings).relay_launcher
    # Then it is the ECS launcher for that family, on the configured network
    assert (launcher.family, launcher.subnets, launcher.security_groups) == (
        "reelay-relay",
        ["subnet-1"],
        ["sg-1"],
    )


def test_a_started_event_from_the_topic_launches_the_task_at_once():
    # Given a stream an operator just started: desired running, nobody holds it
    now = utcnow()
    launcher = FakeLauncher()
    use(FakeCatalogue(FakeStream("cam-2", updated_at=now)), launcher)
    # When the events topic delivers its stream.started event
    summary = lambda_handler(sns_delivery(envelope("stream.started", "cam-2")), FakeLambdaContext())
    # Then its task is launched in this invocation, not at the next scheduled pass
    assert launcher.launched == ["cam-2"] and summary["started"] == ["cam-2"]


def test_only_stream_events_with_a_stream_id_are_read_from_sns():
    # Given a delivery mixing stream events, another event type and messages that are not events
    event = sns_delivery(
        envelope("stream.started", "a"),
        envelope("stream.stopped", "b"),
        envelope("video.ready", "c"),
        envelope("stream.started", 42),
        "not json",
        "[1, 2]",
    )
    # Then the stream ids of the stream events are taken, and nothing else
    assert notified_streams(event) == ["a", "b"]
    assert notified_streams(SCHEDULED) == []
