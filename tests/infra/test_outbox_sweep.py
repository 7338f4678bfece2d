"""The event-outbox sweep: a scheduled Lambda in the transcoder stack, its grants and its alarm."""

from __future__ import annotations

import importlib
import json

import pytest

from infra.constants import LAMBDA_SOURCE_DIRS, OUTBOX_SWEEP_HANDLER
from lambdas.outbox_sweep import handler as outbox_sweep
from tests.infra.conftest import function_by_handler, props, statement_actions


@pytest.fixture(scope="module")
def template(synthesized, stacks):
    return synthesized.template(stacks.transcoder)


@pytest.fixture(scope="module")
def function(template):
    return function_by_handler(template, OUTBOX_SWEEP_HANDLER)


def _ref_id(stack, construct) -> str:
    return stack.get_logical_id(construct.node.default_child)


def test_sweep_function_runs_the_handler_alone_in_the_vpc(function, stacks):
    # Given the outbox-sweep function
    _, fn = function
    # Then it runs lambdas.outbox_sweep for up to a minute, one invocation at a time
    assert fn["Handler"] == "lambdas.outbox_sweep.handler.lambda_handler"
    assert (fn["Timeout"], fn["ReservedConcurrentExecutions"]) == (60, 1)
    assert (fn["Runtime"], fn["TracingConfig"]) == ("python3.11", {"Mode": "Active"})
    # And it reaches the catalogue: private subnets, the DB clients security group
    vpc = fn["VpcConfig"]
    assert "privateSubnet" in json.dumps(vpc["SubnetIds"])
    clients = _ref_id(stacks.data, stacks.data.database.client_security_group)
    assert clients in json.dumps(vpc["SecurityGroupIds"])
    # And it is told the topic and the app secret, and names its metrics reelay-outbox-sweep
    env = fn["Environment"]["Variables"]
    assert "Events" in json.dumps(env["REELAY_EVENTS_TOPIC_ARN"])
    assert _ref_id(stacks.data, stacks.data.database.app_secret) in json.dumps(env["REELAY_DB_SECRET_ARN"])
    assert (env["POWERTOOLS_SERVICE_NAME"], env["POWERTOOLS_METRICS_NAMESPACE"]) == (
        "reelay-outbox-sweep",
        "Reelay",
    )


def test_a_schedule_invokes_the_sweep_every_minute(template, function):
    # Given the transcoder stack's EventBridge rules
    function_id, _ = function
    (rule_id, rule), *others = [
        (rule_id, rule)
        for rule_id, rule in template.find_resources("AWS::Events::Rule").items()
        if props(rule)["Targets"][0]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    assert others == []
    p = props(rule)
    # Then one rule fires every minute, enabled, at the sweep function only
    assert (p["ScheduleExpression"], p["State"]) == ("rate(1 minute)", "ENABLED")
    (target,) = p["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    # And a failed delivery is retried a little, never for longer than the next sweep makes pointless
    assert 0 < target["RetryPolicy"]["MaximumRetryAttempts"] <= 3
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 300
    # And EventBridge may invoke the function, from that rule only
    permissions = [
        props(perm)
        for perm in template.find_resources("AWS::Lambda::Permission").values()
        if props(perm)["Principal"] == "events.amazonaws.com"
        and props(perm)["FunctionName"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    assert permissions == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [function_id, "Arn"]},
            "Principal": "events.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]},
        }
    ]
    # And late async retries are bounded too: the next scheduled sweep is the real retry
    (invoke,) = [
        props(c)
        for c in template.find_resources("AWS::Lambda::EventInvokeConfig").values()
        if props(c)["FunctionName"] == {"Ref": function_id}
    ]
    assert invoke["MaximumRetryAttempts"] <= 2 and invoke["MaximumEventAgeInSeconds"] <= 300


def test_sweep_may_publish_events_invalidate_playback_and_read_the_app_secret_only(
    template, function, stacks
):
    # Given the statements of the sweep function's role
    _, fn = function
    role_id = fn["Role"]["Fn::GetAtt"][0]
    statements = [
        s
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in props(policy)["Roles"]
        for s in props(policy)["PolicyDocument"]["Statement"]
    ]
    by_action = {a: s for s in statements for a in statement_actions(s)}
    # Then it may publish to the events topic (and use that topic's key), invalidate the playback
    # distribution (the CDN invalidations in the outbox), move media between the output prefixes
    # (media.relocate), read the app DB secret, and send traces: nothing else
    assert set(by_action) == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:ListBucket",
        "sns:Publish",
        "cloudfront:CreateInvalidation",
        "kms:Decrypt",
        "kms:GenerateDataKey*",
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    assert "Events" in json.dumps(by_action["sns:Publish"]["Resource"])
    assert "EventsKey" in json.dumps(by_action["kms:GenerateDataKey*"]["Resource"])
    assert ":distribution/" in json.dumps(by_action["cloudfront:CreateInvalidation"]["Resource"])
    assert "REELAY_CDN_DISTRIBUTION_ID" in fn["Environment"]["Variables"]
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
        resources = json.dumps(by_action[action]["Resource"])
        assert resources.count("/outputs/*") == 1 and resources.count("/private-outputs/*") == 1, resources
    assert by_action["s3:ListBucket"]["Condition"] == {
        "StringLike": {"s3:prefix": ["outputs/*", "private-outputs/*"]}
    }
    assert fn["Environment"]["Variables"]["REELAY_PRIVATE_OUTPUT_PREFIX"] == "private-outputs/"
    app_secret = _ref_id(stacks.data, stacks.data.database.app_secret)
    assert app_secret in json.dumps(by_action["secretsmanager:GetSecretValue"]["Resource"])
    # And "*" only for X-Ray, which has no resource ARNs
    assert all(s["Effect"] == "Allow" for s in statements)
    wildcard = {a for s in statements if s["Resource"] == "*" for a in statement_actions(s)}
    assert wildcard == {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
    # And its managed policies are the Lambda basic and VPC execution roles
    role = template.to_json()["Resources"][role_id]
    managed = json.dumps(props(role)["ManagedPolicyArns"])
    assert managed.count("arn:") == 2
    assert "AWSLambdaBasicExecutionRole" in managed and "AWSLambdaVPCAccessExecutionRole" in managed


def test_old_outbox_events_alarm_on_the_metric_the_sweep_emits(template, function):
    # Given the alarm on the outbox's oldest event
    _, fn = function
    (alarm,) = [
        props(a)
        for a in template.find_resources("AWS::CloudWatch::Alarm").values()
        if props(a).get("MetricName") == "OutboxOldestAgeSeconds"
    ]
    # Then it watches the metric the handler emits, in Reelay's namespace, under the service
    # dimension Powertools adds from the function's POWERTOOLS_SERVICE_NAME
    assert alarm["MetricName"] == outbox_sweep.METRIC_OLDEST_AGE
    assert alarm["Namespace"] == fn["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    service = fn["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": service}]
    # And it fires when the oldest event has waited over 10 minutes for two 5-minute periods
    assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"]) == ("Maximum", 300, 2)
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (600, "GreaterThanThreshold")
    # And a sweep that stops reporting (broken, or never invoked) counts as breaching
    assert alarm["TreatMissingData"] == "breaching"
    # And it notifies the alarm topic
    assert "Alarms" in json.dumps(alarm["AlarmActions"])


def test_dashboard_graphs_the_outbox_and_every_publisher(synthesized, stacks):
    # Given the dashboard's body
    template = synthesized.template(stacks.monitoring)
    (dashboard,) = template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(props(dashboard)["DashboardBody"])
    # Then it shows the sweep's backlog metrics under the sweep's service dimension
    for metric in (outbox_sweep.METRIC_PENDING, outbox_sweep.METRIC_OLDEST_AGE):
        assert f'\\"Reelay\\",\\"{metric}\\",\\"service\\",\\"reelay-outbox-sweep\\"' in body, metric
    # And publishes and failed publishes summed over every service that flushes the outbox
    for metric in ("EventsPublished", "EventPublishFailed"):
        assert f"SUM(SEARCH('{{Reelay,service}} MetricName=\\\\\\\"{metric}\\\\\\\"'" in body, metric
    # And the sweep's errors are on the Lambda errors graph
    assert '\\"label\\":\\"OutboxSweep\\"' in body


def test_every_handler_the_templates_name_is_importable_from_the_asset_sources(synthesized, stacks):
    # Given every Reelay handler named by a function in any stack
    handlers = {
        props(fn)["Handler"]
        for stack in stacks.all()
        for fn in synthesized.template(stack).find_resources("AWS::Lambda::Function").values()
        if props(fn).get("Handler", "").startswith("lambdas.")
    }
    assert OUTBOX_SWEEP_HANDLER in handlers
    for name in handlers:
        module, _, attribute = name.rpartition(".")
        # Then its module lives in a directory the code asset ships, and defines the handler
        assert module.split(".")[0] in LAMBDA_SOURCE_DIRS, name
        assert callable(getattr(importlib.import_module(module), attribute)), name
