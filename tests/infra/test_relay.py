"""The live relay stack: task definition, task role, reconciler, its rules and grants, alarms, dashboard."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.config import ConfigError, ReelayConfig
from infra.constants import KVS_RELAY_ACTIONS, RELAY_COMMAND, RELAY_RECONCILER_HANDLER
from reelay.adapters import ecs as ecs_adapter
from reelay.relay import reconciler
from reelay.settings import Settings
from tests.infra.conftest import props


@pytest.fixture(scope="module")
def template(synthesized, stacks):
    return synthesized.template(stacks.relay)


@pytest.fixture(scope="module")
def resources(template) -> dict[str, dict[str, Any]]:
    return template.to_json()["Resources"]


@pytest.fixture(scope="module")
def task_definition(template) -> tuple[str, dict[str, Any]]:
    ((logical_id, task),) = template.find_resources("AWS::ECS::TaskDefinition").items()
    return logical_id, props(task)


@pytest.fixture(scope="module")
def function(template) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (logical_id, props(fn))
        for logical_id, fn in template.find_resources("AWS::Lambda::Function").items()
        if props(fn).get("Handler") == RELAY_RECONCILER_HANDLER
    ]
    return found


def _statements(template, role_id: str) -> list[dict[str, Any]]:
    return [
        s
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in props(policy)["Roles"]
        for s in props(policy)["PolicyDocument"]["Statement"]
    ]


def _actions(statement) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else actions


def _by_action(statements) -> dict[str, dict[str, Any]]:
    return {a: s for s in statements for a in _actions(s)}


def _env(fn: dict[str, Any]) -> dict[str, Any]:
    return fn["Environment"]["Variables"]


def _cluster_id(template) -> str:
    (cluster_id,) = template.find_resources("AWS::ECS::Cluster")
    return cluster_id


# --- the task definition -------------------------------------------------------------------------------
def test_task_definition_runs_the_media_image_under_the_relay_command(task_definition, synthesized, stacks):
    # Given the relay task definition
    _, task = task_definition
    (container,) = task["ContainerDefinitions"]
    # Then it is a Fargate task of its own family, sized by the config
    assert task["RequiresCompatibilities"] == ["FARGATE"] and task["NetworkMode"] == "awsvpc"
    assert task["Family"] == "reelay-dev-relay"
    assert (task["Cpu"], task["Memory"]) == ("1024", "2048")
    # And its container runs the media image, the one the transcode worker runs
    worker = synthesized.template(stacks.transcoder)
    (worker_task,) = worker.find_resources("AWS::ECS::TaskDefinition").values()
    (worker_container,) = props(worker_task)["ContainerDefinitions"]
    assert container["Image"] == worker_container["Image"]
    # And its command is the relay entry point; the launcher's override adds --stream-id to the same one
    assert container["Command"] == ["python3", "-m", "transcoder.relay"] == list(RELAY_COMMAND)
    assert ecs_adapter.relay_command("s1") == [*container["Command"], "--stream-id", "s1"]
    assert container["Name"] == Settings().relay_container_name
    # And kvssink gets 30 s to send its last fragment after SIGTERM
    assert container["StopTimeout"] == 30
    # And it names its metrics service=relay in Reelay's namespace, and knows its KVS prefix
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert (env["POWERTOOLS_SERVICE_NAME"], env["POWERTOOLS_METRICS_NAMESPACE"]) == ("relay", "Reelay")
    assert env["REELAY_KVS_STREAM_PREFIX"] == "reelay-dev-"
    assert "REELAY_DB_SECRET_ARN" in env


def test_task_logs_to_its_own_log_group_with_retention(task_definition, resources, config):
    # Given the relay container's log configuration
    _, task = task_definition
    (container,) = task["ContainerDefinitions"]
    log = container["LogConfiguration"]
    # Then it uses awslogs into the relay log group, which keeps logs for the configured days
    assert log["LogDriver"] == "awslogs" and log["Options"]["awslogs-stream-prefix"] == "relay"
    group_id = log["Options"]["awslogs-group"]["Ref"]
    assert resources[group_id]["Type"] == "AWS::Logs::LogGroup"
    assert props(resources[group_id])["RetentionInDays"] == config.log_retention_days


def test_task_role_may_use_kvs_only_on_streams_under_the_stage_prefix(template, task_definition):
    # Given the statements of the relay task's role
    _, task = task_definition
    role_id = task["TaskRoleArn"]["Fn::GetAtt"][0]
    statements = _statements(template, role_id)
    kvs = [s for s in statements if any(a.startswith("kinesisvideo:") for a in _actions(s))]
    # Then one statement grants exactly kvssink's KVS actions
    (statement,) = kvs
    assert sorted(_actions(statement)) == sorted(KVS_RELAY_ACTIONS)
    assert sorted(KVS_RELAY_ACTIONS) == sorted(
        [
            "kinesisvideo:DescribeStream",
            "kinesisvideo:CreateStream",
            "kinesisvideo:GetDataEndpoint",
            "kinesisvideo:PutMedia",
            "kinesisvideo:TagStream",
        ]
    )
    assert statement["Effect"] == "Allow" and "Condition" not in statement
    # And on the stage's streams only: arn:<partition>:kinesisvideo:<region>:<account>:stream/reelay-dev-*/*
    assert statement["Resource"] == {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":kinesisvideo:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                ":stream/reelay-dev-*/*",
            ],
        ]
    }
    # And otherwise it reads the app DB secret and puts metrics in the Reelay namespace: nothing more
    by_action = _by_action(statements)
    assert set(by_action) == {
        *KVS_RELAY_ACTIONS,
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
        "cloudwatch:PutMetricData",
        "s3:PutObject",
    }
    # (the recorder's writes, under recordings/ of the media bucket only)
    put = json.dumps(by_action["s3:PutObject"]["Resource"])
    assert put.endswith('/recordings/*"]]}') and "Condition" not in by_action["s3:PutObject"]
    metrics = by_action["cloudwatch:PutMetricData"]
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Reelay"}}
    assert not any(a.endswith("*") for s in statements for a in _actions(s))
    # And the role has no managed policies
    assert "ManagedPolicyArns" not in props(template.to_json()["Resources"][role_id])


def test_the_kvs_prefix_is_configurable_and_validated():
    # Given the default config and one with a prefix of its own
    assert ReelayConfig(stage="prod").kvs_prefix == "reelay-prod-"
    assert ReelayConfig(kvs_stream_prefix="cams-").kvs_prefix == "cams-"
    # Then a prefix KVS could not hold in a stream name is refused
    with pytest.raises(ConfigError, match="kvs_stream_prefix"):
        ReelayConfig.from_context({"kvs_stream_prefix": "bad prefix/*"})
    # And Fargate sizes that do not exist are refused
    with pytest.raises(ConfigError, match="relay_memory_mib"):
        ReelayConfig.from_context({"relay_cpu": 1024, "relay_memory_mib": 1024})
    with pytest.raises(ConfigError, match="relay_cpu"):
        ReelayConfig.from_context({"relay_cpu": 1000})


def test_every_function_and_task_is_told_the_kvs_prefix(synthesized, stacks):
    # Given every Reelay handler in every stack (the API names the KVS streams it creates)
    for stack in stacks.all():
        for fn in synthesized.template(stack).find_resources("AWS::Lambda::Function").values():
            handler = props(fn).get("Handler", "")
            # (not the deploy-time custom resources: the migration and the playback key maker)
            if handler.startswith("lambdas.") and not any(h in handler for h in ("migrate", "playback_keys")):
                # Then each gets the same prefix the relay task's role is limited to
                assert _env(props(fn))["REELAY_KVS_STREAM_PREFIX"] == "reelay-dev-", props(fn)["Handler"]


# --- the reconciler ------------------------------------------------------------------------------------
def test_reconciler_function_runs_alone_in_the_vpc_and_knows_where_to_launch(
    function, template, task_definition, stacks, monkeypatch
):
    # Given the reconciler function
    _, fn = function
    task_id, _ = task_definition
    # Then it runs the relay_reconciler handler, one invocation at a time, for up to a minute
    assert fn["Handler"] == "lambdas.relay_reconciler.handler.lambda_handler"
    assert (fn["Timeout"], fn["ReservedConcurrentExecutions"]) == (60, 1)
    assert "privateSubnet" in json.dumps(fn["VpcConfig"]["SubnetIds"])
    # And its settings name the relay cluster, the task definition, the container and the network
    env = _env(fn)
    assert env["REELAY_RELAY_CLUSTER_ARN"] == {"Fn::GetAtt": [_cluster_id(template), "Arn"]}
    assert env["REELAY_RELAY_TASK_DEFINITION_ARN"] == {"Ref": task_id}
    assert env["REELAY_RELAY_CONTAINER_NAME"] == "Relay"
    assert env["REELAY_RELAY_ASSIGN_PUBLIC_IP"] == "false"
    subnets = json.dumps(env["REELAY_RELAY_SUBNETS"])
    assert "privateSubnet" in subnets and "public" not in subnets.lower()
    db_clients = stacks.data.get_logical_id(stacks.data.database.client_security_group.node.default_child)
    assert db_clients in json.dumps(env["REELAY_RELAY_SECURITY_GROUPS"])
    assert env["POWERTOOLS_SERVICE_NAME"] == "reelay-relay-reconciler"


def test_reconciler_may_run_stop_and_list_relay_tasks_only(function, template, task_definition):
    # Given the reconciler role's statements
    _, fn = function
    task_id, task = task_definition
    statements = _statements(template, fn["Role"]["Fn::GetAtt"][0])
    by_action = _by_action(statements)
    cluster = {"Fn::GetAtt": [_cluster_id(template), "Arn"]}
    on_cluster = {"ArnEquals": {"ecs:cluster": cluster}}
    # Then it may run the relay task definition, on the relay cluster only
    run = by_action["ecs:RunTask"]
    assert (run["Resource"], run["Condition"]) == ({"Ref": task_id}, on_cluster)
    # And stop and describe that cluster's tasks, list with the cluster condition, tag only on RunTask
    for action in ("ecs:StopTask", "ecs:DescribeTasks"):
        statement = by_action[action]
        assert statement["Condition"] == on_cluster
        assert ":task/" in json.dumps(statement["Resource"])
        assert {"Ref": _cluster_id(template)} in statement["Resource"]["Fn::Join"][1]
    assert by_action["ecs:ListTasks"]["Resource"] == "*"
    assert by_action["ecs:ListTasks"]["Condition"] == on_cluster
    assert by_action["ecs:TagResource"]["Condition"] == {"StringEquals": {"ecs:CreateAction": "RunTask"}}
    # And pass the relay task's two roles, to ECS tasks only
    pass_role = by_action["iam:PassRole"]
    assert sorted(json.dumps(r) for r in pass_role["Resource"]) == sorted(
        json.dumps(task[key]) for key in ("TaskRoleArn", "ExecutionRoleArn")
    )
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    # And nothing else but the app DB secret and X-Ray
    assert set(by_action) == {
        "ecs:RunTask",
        "ecs:TagResource",
        "ecs:StopTask",
        "ecs:DescribeTasks",
        "ecs:ListTasks",
        "iam:PassRole",
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    unconditioned_wildcards = {
        a for s in statements if s["Resource"] == "*" and "Condition" not in s for a in _actions(s)
    }
    assert unconditioned_wildcards == {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def test_a_schedule_and_relay_task_stopped_events_invoke_the_reconciler(template, function, task_definition):
    # Given the relay stack's rules
    function_id, _ = function
    _, task = task_definition
    rules = {
        props(r)["Description"]: (rid, props(r))
        for rid, r in template.find_resources("AWS::Events::Rule").items()
    }
    assert len(rules) == 2
    (schedule,) = [r for r in rules.values() if "ScheduleExpression" in r[1]]
    (stopped,) = [r for r in rules.values() if "EventPattern" in r[1]]
    # Then one fires every minute
    assert schedule[1]["ScheduleExpression"] == "rate(1 minute)"
    # And one on ECS task-state changes of relay tasks (this cluster, this family) that stopped
    assert stopped[1]["EventPattern"] == {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {
            "clusterArn": [{"Fn::GetAtt": [_cluster_id(template), "Arn"]}],
            "group": [f"family:{task['Family']}"],
            "lastStatus": ["STOPPED"],
        },
    }
    # And the event's detail-type is what the handler reads
    from lambdas.relay_reconciler.handler import TASK_STATE_CHANGE

    assert stopped[1]["EventPattern"]["detail-type"] == [TASK_STATE_CHANGE]
    # And both target the reconciler, with bounded retries, and may invoke it from their rule only
    for _, rule in (schedule, stopped):
        (target,) = rule["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
        assert 0 < target["RetryPolicy"]["MaximumRetryAttempts"] <= 3
        assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 300
    permissions = sorted(
        json.dumps(props(p)["SourceArn"])
        for p in template.find_resources("AWS::Lambda::Permission").values()
        if props(p)["Principal"] == "events.amazonaws.com"
    )
    assert permissions == sorted(json.dumps({"Fn::GetAtt": [rid, "Arn"]}) for rid, _ in (schedule, stopped))


def test_stream_start_and_stop_events_reach_the_reconciler_at_once(template, function, stacks):
    # Given the reconciler's subscription to the events topic
    function_id, _ = function
    (subscription,) = [props(s) for s in template.find_resources("AWS::SNS::Subscription").values()]
    # Then the events topic delivers stream.started and stream.stopped, and nothing else, to it
    assert subscription["Protocol"] == "lambda"
    assert subscription["Endpoint"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert "Events" in json.dumps(subscription["TopicArn"])
    from lambdas.relay_reconciler.handler import STREAM_EVENTS

    assert subscription["FilterPolicy"] == {"type": list(STREAM_EVENTS)}
    # And SNS may invoke the function for that topic only
    (permission,) = [
        props(p)
        for p in template.find_resources("AWS::Lambda::Permission").values()
        if props(p)["Principal"] == "sns.amazonaws.com"
    ]
    assert permission["SourceArn"] == subscription["TopicArn"]


# --- alarms --------------------------------------------------------------------------------------------
def _alarms(template) -> dict[str, dict[str, Any]]:
    return {
        props(a)["AlarmDescription"]: props(a)
        for a in template.find_resources("AWS::CloudWatch::Alarm").values()
    }


def test_streams_down_alarm_fires_after_two_minutes_down_or_a_silent_reconciler(template, function):
    # Given the alarm on StreamsDown
    _, fn = function
    (alarm,) = [a for a in _alarms(template).values() if a.get("MetricName") == "StreamsDown"]
    # Then it watches what the reconciler emits, under the reconciler's service dimension
    assert alarm["MetricName"] == reconciler.METRIC_STREAMS_DOWN
    assert alarm["Namespace"] == "Reelay"
    assert alarm["Dimensions"] == [{"Name": "service", "Value": _env(fn)["POWERTOOLS_SERVICE_NAME"]}]
    # And fires when it is above zero for two 1-minute periods: a stream counts as down after 60 s,
    # so the alarm means "down for over two minutes"
    assert (alarm["Statistic"], alarm["Period"]) == ("Maximum", 60)
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (2, 2)
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert reconciler.DEFAULT_DOWN_AFTER.total_seconds() == 60
    # And a reconciler that stops reporting is an alarm too
    assert alarm["TreatMissingData"] == "breaching"
    assert "Alarms" in json.dumps(alarm["AlarmActions"])
    # And the slate has no alarm of its own: a stream on the slate is "reconnecting" (the camera is down;
    # test_relay_slate asserts it), so this alarm already fires once the slate has lasted 2 minutes
    assert not [a for a in _alarms(template).values() if "Slate" in json.dumps(a)]


@pytest.mark.parametrize(
    ("metric", "function", "threshold", "comparison"),
    [
        ("FragmentErrors", "SUM", 0, "GreaterThanThreshold"),
        ("CredentialSecondsLeft", "MIN", 300, "LessThanThreshold"),
    ],
)
def test_relay_alarms_watch_every_streams_metric(template, metric, function, threshold, comparison):
    # Given the alarm on one of the relay task's per-stream metrics
    (alarm,) = [a for a in _alarms(template).values() if metric in json.dumps(a.get("Metrics", ""))]
    (query,) = alarm["Metrics"]
    # Then a Metrics Insights query folds every stream's series (service=relay, StreamId) into one
    assert query["Expression"] == (
        f"SELECT {function}({metric}) FROM SCHEMA(\"Reelay\", service, StreamId) WHERE service = 'relay'"
    )
    assert (query["Period"], query["ReturnData"]) == (60, True)
    # And it alarms on any error ack / on credentials within 5 minutes of expiry, to the alarm topic
    assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["EvaluationPeriods"]) == (
        threshold,
        comparison,
        1,
    )
    assert alarm["TreatMissingData"] == "notBreaching"  # no stream running is no data
    assert "Alarms" in json.dumps(alarm["AlarmActions"])


# --- dashboard -----------------------------------------------------------------------------------------
def _dashboard(synthesized, stacks) -> dict[str, Any]:
    """The dashboard body as JSON, with CloudFormation tokens (region, names) replaced by TOKEN."""
    template = synthesized.template(stacks.monitoring)
    (dashboard,) = template.find_resources("AWS::CloudWatch::Dashboard").values()
    parts = props(dashboard)["DashboardBody"]["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else "TOKEN" for p in parts))


def test_dashboard_has_a_relay_section(synthesized, stacks):
    # Given the dashboard's graphs, by title
    widgets = _dashboard(synthesized, stacks)["widgets"]
    graphs = {w["properties"].get("title"): w["properties"] for w in widgets if w["type"] == "metric"}

    def expressions(title: str) -> list[str]:
        return [m[0]["expression"] for m in graphs[title]["metrics"] if "expression" in m[0]]

    def plain(title: str) -> list[list[Any]]:
        return [m for m in graphs[title]["metrics"] if isinstance(m[0], str)]

    def search(metric: str, statistic: str) -> str:
        terms = f'{{Reelay,service,StreamId}} service="relay" MetricName="{metric}"'
        return f"SEARCH('{terms}', '{statistic}', 60)"

    # Then a "Live relay" heading opens the section
    assert any(w["type"] == "text" and "Live relay" in w["properties"]["markdown"] for w in widgets)
    # And streams up (summed over streams) and down (the reconciler's count) share a graph
    assert expressions("Relay streams up and down") == [f"SUM({search('StreamUp', 'Maximum')})"]
    (down,) = plain("Relay streams up and down")
    assert down[:4] == ["Reelay", "StreamsDown", "service", "reelay-relay-reconciler"]
    # And each stream's reconnects, outage seconds, bitrate, fragments and credentials are graphed
    assert expressions("Relay reconnects and outage seconds") == [
        search("Reconnects", "Sum"),
        search("OutageSeconds", "Sum"),
    ]
    assert expressions("Relay input bitrate (bit/s)") == [search("InputBitrate", "Average")]
    assert expressions("KVS fragments persisted and errors") == [
        search("FragmentsPersisted", "Sum"),
        search("FragmentErrors", "Sum"),
    ]
    assert expressions("KVS credential seconds left") == [search("CredentialSecondsLeft", "Minimum")]
    assert graphs["KVS credential seconds left"]["annotations"]["horizontal"][0]["value"] == 300
    # And in transcode mode, which streams feed KVS the slate (0/1) and how many fragments were the slate
    assert expressions("Relay slate to KVS (camera offline)") == [
        search("SlateOn", "Maximum"),
        search("SlateFragmentsPersisted", "Sum"),
    ]
    slate = graphs["Relay slate to KVS (camera offline)"]
    assert [m[0].get("yAxis", "left") == "left" for m in slate["metrics"]] == [True, False]
    assert slate["yAxis"]["left"]["min"] == 0 and slate["yAxis"]["left"]["max"] == 1
    # And the reconciler's launches, stops and errors
    assert [m[1] for m in plain("Relay reconciler")] == [
        "RelayTasksStarted",
        "RelayTasksStopped",
        "ReconcileErrors",
    ]
    # And the reconciler's errors are on the Lambda errors graph
    assert "Reconciler" in [m[-1]["label"] for m in graphs["Lambda errors"]["metrics"]]


# --- the source-secret keys (the API stack owns them) ----------------------------------------------------
def test_given_the_stream_secret_the_task_may_read_it_and_is_told_its_arn(tmp_path):
    # Given a relay on a bare stack of its own, handed the secret that seals source passwords
    from aws_cdk import App, Stack
    from aws_cdk import aws_cognito as cognito
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk import aws_s3 as s3
    from aws_cdk import aws_secretsmanager as secretsmanager
    from aws_cdk import aws_sns as sns
    from aws_cdk import aws_sqs as sqs
    from aws_cdk.assertions import Template

    from infra.constructs.relay import Relay
    from infra.environment import PlatformRefs

    stack = Stack(App(outdir=str(tmp_path)), "Probe")
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=1)
    pool = cognito.UserPool(stack, "Pool")
    refs = PlatformRefs(
        config=ReelayConfig(),
        vpc=vpc,
        db_clients=ec2.SecurityGroup(stack, "Clients", vpc=vpc),
        db_secret=secretsmanager.Secret(stack, "Db"),
        media_bucket=s3.Bucket(stack, "Media"),
        playback_base_url="https://cdn.example",
        user_pool=pool,
        user_pool_client=pool.add_client("Client"),
        transcode_queue=sqs.Queue(stack, "Jobs"),
        dead_letters=sqs.Queue(stack, "Dead"),
        events_topic=sns.Topic(stack, "Events"),
    )
    keys = secretsmanager.Secret(stack, "StreamSecretKeys")
    relay = Relay(stack, "Relay", refs=refs, alarm_topic=sns.Topic(stack, "Alarms"), stream_secret=keys)
    template = Template.from_stack(stack)
    keys_ref = {"Ref": stack.get_logical_id(keys.node.default_child)}
    # Then the relay container is told the secret's ARN
    (task,) = template.find_resources("AWS::ECS::TaskDefinition").values()
    (container,) = props(task)["ContainerDefinitions"]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["REELAY_STREAM_SECRET_ARN"] == keys_ref
    # And its role may read that secret
    role_id = stack.get_logical_id(relay.task.task_role.node.default_child)
    reads = [
        s
        for s in _statements(template, role_id)
        if "secretsmanager:GetSecretValue" in _actions(s) and s["Resource"] == keys_ref
    ]
    assert len(reads) == 1
