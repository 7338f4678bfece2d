"""EcsRelayLauncher against moto's ECS (RunTask, ListTasks, DescribeTasks, StopTask)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.moto_api import state_manager

from reelay.adapters.ecs import (
    STREAM_TAG,
    EcsRelayLauncher,
    RelayLaunchError,
    started_by,
    stream_of_started_by,
    task_family,
)
from reelay.errors import InvalidInput, NotFound
from reelay.relay.reconciler import Reconciler
from reelay.settings import Settings

REGION = "us-east-1"
CONTAINER = "Relay"


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    # moto advances a task's status on every describe; a relay task stays RUNNING until stopped.
    state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 10**6})
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})  # as the CDK VPC has
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="relay", Description="relay tasks", VpcId=vpc)["GroupId"]
        ecs = boto3.client("ecs", region_name=REGION)
        cluster = ecs.create_cluster(clusterName="media")["cluster"]["clusterArn"]
        container = {"name": CONTAINER, "image": "media:latest", "memory": 1024}

        def register(family: str) -> str:
            return ecs.register_task_definition(
                family=family,
                requiresCompatibilities=["FARGATE"],
                networkMode="awsvpc",
                cpu="512",
                memory="1024",
                containerDefinitions=[{**container, "command": ["python3", "-m", "transcoder.worker"]}],
            )["taskDefinition"]["taskDefinitionArn"]

        definition, other = register("reelay-relay"), register("reelay-worker")
        yield {
            "ecs": ecs,
            "cluster": cluster,
            "definition": definition,
            "other": other,
            "subnet": subnet,
            "group": group,
        }
    state_manager.unset_transition(model_name="ecs::task")


@pytest.fixture
def launcher(aws: dict[str, Any]) -> EcsRelayLauncher:
    return EcsRelayLauncher(
        cluster=aws["cluster"],
        task_definition=aws["definition"],
        container_name=CONTAINER,
        subnets=[aws["subnet"]],
        security_groups=[aws["group"]],
        client=aws["ecs"],
    )


def _describe(aws: dict[str, Any], arn: str) -> dict[str, Any]:
    (described,) = aws["ecs"].describe_tasks(cluster=aws["cluster"], tasks=[arn], include=["TAGS"])["tasks"]
    return described


def test_launch_runs_one_fargate_task_with_the_relay_command_in_the_configured_network(aws, launcher):
    # When a stream's task is launched
    launcher.launch("s-1")
    # Then exactly one task of the relay definition runs
    (relay,) = launcher.running()
    described = _describe(aws, relay.task_arn)
    assert described["taskDefinitionArn"] == aws["definition"]
    assert (relay.stream_id, relay.last_status) == ("s-1", "RUNNING")
    # And its container runs the relay entry point for that stream, not the worker's default command
    (override,) = described["overrides"]["containerOverrides"]
    assert override == {
        "name": CONTAINER,
        "command": ["python3", "-m", "transcoder.relay", "--stream-id", "s-1"],
    }
    # And the stream is named in startedBy (ECS's task events carry it) and in a tag
    assert described["startedBy"] == "relay/s-1" == started_by("s-1")
    assert {"key": STREAM_TAG, "value": "s-1"} in described["tags"]
    # And it runs on Fargate in the configured subnet, without a public IP
    assert described["launchType"] == "FARGATE"
    (attachment,) = described["attachments"]
    details = {d["name"]: d["value"] for d in attachment["details"]}
    assert details["subnetId"] == aws["subnet"]


def test_running_lists_relay_tasks_of_one_stream_or_all_and_nothing_else(aws, launcher):
    # Given tasks for two streams, and a task of another family on the same cluster
    launcher.launch("s-1")
    launcher.launch("s-2")
    aws["ecs"].run_task(
        cluster=aws["cluster"],
        taskDefinition=aws["other"],
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": [aws["subnet"]], "securityGroups": [aws["group"]]}
        },
    )
    # When the launcher lists them
    everything = launcher.running()
    mine = launcher.running("s-2")
    # Then it sees the relay tasks only, each with its stream
    assert sorted(t.stream_id for t in everything) == ["s-1", "s-2"]
    assert [t.stream_id for t in mine] == ["s-2"]


def test_stop_stops_the_task_and_running_no_longer_lists_it(aws, launcher):
    # Given two tasks of one stream (a duplicate)
    launcher.launch("s-1")
    launcher.launch("s-1")
    first, second = launcher.running("s-1")
    # When one is stopped
    launcher.stop("s-1", first.task_arn)
    # Then ECS stops it, with the reason naming the stream, and only the other is listed
    described = _describe(aws, first.task_arn)
    assert described["desiredStatus"] == "STOPPED"
    assert "s-1" in described["stoppedReason"]
    assert [t.task_arn for t in launcher.running()] == [second.task_arn]
    assert [t.task_arn for t in launcher.running("s-1")] == [second.task_arn]


def test_errors_become_domain_errors(aws, launcher):
    # Given launchers pointing at a missing cluster and at a missing task definition
    nowhere = EcsRelayLauncher(
        cluster="arn:aws:ecs:us-east-1:123456789012:cluster/missing",
        task_definition=aws["definition"],
        container_name=CONTAINER,
        subnets=[aws["subnet"]],
        client=aws["ecs"],
    )
    undefined = EcsRelayLauncher(
        cluster=aws["cluster"],
        task_definition="reelay-relay-missing:1",
        container_name=CONTAINER,
        subnets=[aws["subnet"]],
        client=aws["ecs"],
    )
    # Then ECS's ClientErrors come out as domain errors
    with pytest.raises(NotFound, match="cluster"):
        nowhere.launch("s-1")
    with pytest.raises(NotFound, match="cluster"):
        nowhere.running()
    with pytest.raises(RelayLaunchError, match="RunTask failed: ClientException"):
        undefined.launch("s-1")
    # And a stream id that startedBy could not carry is refused before any call
    with pytest.raises(InvalidInput):
        launcher.launch("a stream/with spaces")
    with pytest.raises(InvalidInput):
        launcher.launch("x" * 121)


def test_run_task_failures_without_a_task_are_a_launch_error(aws):
    # Given ECS answering RunTask with a failure and no task (no capacity), as it does with 200
    class NoCapacity:
        def run_task(self, **_: Any) -> dict[str, Any]:
            return {"tasks": [], "failures": [{"arn": "x", "reason": "Capacity is unavailable at this time"}]}

    launcher = EcsRelayLauncher(
        cluster=aws["cluster"],
        task_definition=aws["definition"],
        container_name=CONTAINER,
        subnets=[aws["subnet"]],
        client=NoCapacity(),
    )
    # Then the launch raises with ECS's reason
    with pytest.raises(RelayLaunchError, match="Capacity is unavailable"):
        launcher.launch("s-1")


def test_from_settings_reads_the_relay_settings(aws, monkeypatch):
    # Given the environment the CDK app gives the reconciler
    monkeypatch.setenv("REELAY_RELAY_CLUSTER_ARN", aws["cluster"])
    monkeypatch.setenv("REELAY_RELAY_TASK_DEFINITION_ARN", aws["definition"])
    monkeypatch.setenv("REELAY_RELAY_CONTAINER_NAME", CONTAINER)
    monkeypatch.setenv("REELAY_RELAY_SUBNETS", f'["{aws["subnet"]}"]')
    monkeypatch.setenv("REELAY_RELAY_SECURITY_GROUPS", f'["{aws["group"]}"]')
    monkeypatch.setenv("REELAY_RELAY_ASSIGN_PUBLIC_IP", "false")
    # When a launcher is built from settings
    launcher = EcsRelayLauncher.from_settings(Settings())
    # Then it carries them all
    assert (launcher.cluster, launcher.task_definition, launcher.family) == (
        aws["cluster"],
        aws["definition"],
        "reelay-relay",
    )
    assert (launcher.subnets, launcher.security_groups, launcher.assign_public_ip) == (
        [aws["subnet"]],
        [aws["group"]],
        False,
    )
    # And without a cluster it refuses to be built
    with pytest.raises(RuntimeError, match="REELAY_RELAY_CLUSTER_ARN"):
        EcsRelayLauncher.from_settings(Settings(relay_cluster_arn=None))


def test_names_round_trip():
    assert stream_of_started_by(started_by("abc_1-2")) == "abc_1-2"
    assert stream_of_started_by("ecs-svc/123") is None and stream_of_started_by(None) is None
    assert task_family("arn:aws:ecs:us-east-1:1:task-definition/reelay-relay:7") == "reelay-relay"
    assert task_family("reelay-relay:7") == task_family("reelay-relay") == "reelay-relay"


def test_the_reconciler_drives_real_ecs_calls(aws, launcher):
    # Given a stream that should run and nothing running, and an orphan task of a deleted stream
    from tests.unit.test_reconciler import NOW, FakeCatalogue, FakeStream

    launcher.launch("deleted")
    catalogue = FakeCatalogue(FakeStream("live", updated_at=NOW))
    # When the reconciler runs against moto's ECS
    report = Reconciler(catalogue, launcher, clock=lambda: NOW).run_once()
    # Then the orphan is stopped and the live stream has its one task
    assert [s.stream_id for s in report.stopped] == ["deleted"]
    assert [t.stream_id for t in launcher.running()] == ["live"]


def test_running_one_stream_uses_started_by_as_the_only_filter():
    # Given an ECS client that checks the exact ListTasks request (ECS refuses startedBy with any other
    # filter but the cluster) and answers one task still running and one being stopped
    from botocore.stub import Stubber

    client = boto3.client("ecs", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    cluster = "arn:aws:ecs:us-east-1:123456789012:cluster/media"
    launcher = EcsRelayLauncher(
        cluster=cluster,
        task_definition="arn:aws:ecs:us-east-1:123456789012:task-definition/reelay-relay:4",
        container_name=CONTAINER,
        subnets=["subnet-1"],
        client=client,
    )
    arns = [f"arn:aws:ecs:us-east-1:123456789012:task/media/{n}" for n in ("up", "going")]
    described = [
        {
            "taskArn": arn,
            "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/reelay-relay:3",
            "lastStatus": "RUNNING",
            "desiredStatus": desired,
            "startedBy": "relay/s-1",
        }
        for arn, desired in zip(arns, ("RUNNING", "STOPPED"), strict=True)
    ]
    with Stubber(client) as stub:
        stub.add_response("list_tasks", {"taskArns": arns}, {"cluster": cluster, "startedBy": "relay/s-1"})
        stub.add_response(
            "describe_tasks", {"tasks": described}, {"cluster": cluster, "tasks": arns, "include": ["TAGS"]}
        )
        # When the stream's tasks are listed
        tasks = launcher.running("s-1")
        stub.assert_no_pending_responses()
    # Then the one being stopped is left out, and an older revision of the family still counts
    assert [(t.task_arn, t.stream_id) for t in tasks] == [(arns[0], "s-1")]
