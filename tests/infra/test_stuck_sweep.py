"""The stuck-video sweep: a scheduled Lambda in the transcoder stack, its grants and its alarms; and the
alarm on the upload-events failure queue."""

from __future__ import annotations

import json

import pytest

from infra.constants import STUCK_SWEEP_HANDLER
from lambdas.stuck_sweep import handler as stuck_sweep
from tests.infra.conftest import function_by_handler, props, statement_actions


@pytest.fixture(scope="module")
def template(synthesized, stacks):
    return synthesized.template(stacks.transcoder)


@pytest.fixture(scope="module")
def function(template):
    return function_by_handler(template, STUCK_SWEEP_HANDLER)


def test_a_schedule_invokes_the_stuck_sweep_every_five_minutes(template, function):
    function_id, fn = function
    assert (fn["Timeout"], fn["ReservedConcurrentExecutions"]) == (60, 1)
    assert fn["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == "reelay-stuck-sweep"
    (rule,) = [
        props(r)
        for r in template.find_resources("AWS::Events::Rule").values()
        if props(r)["Targets"][0]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    assert (rule["ScheduleExpression"], rule["State"]) == ("rate(5 minutes)", "ENABLED")


def test_the_stuck_sweep_may_send_jobs_and_remove_outputs_only(template, function):
    _, fn = function
    role_id = fn["Role"]["Fn::GetAtt"][0]
    statements = [
        s
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in props(policy)["Roles"]
        for s in props(policy)["PolicyDocument"]["Statement"]
    ]
    by_action = {a: s for s in statements for a in statement_actions(s)}
    # It re-sends jobs (SendMessage, on the transcode queue), removes a failed video's outputs,
    # publishes video.failed and reads the app DB secret
    assert "Transcode" in json.dumps(by_action["sqs:SendMessage"]["Resource"])
    assert "/outputs/*" in json.dumps(by_action["s3:DeleteObject"]["Resource"])
    assert "/private-outputs/*" in json.dumps(by_action["s3:DeleteObject"]["Resource"])
    assert "uploads" not in json.dumps(by_action["s3:DeleteObject"]["Resource"])
    assert "sns:Publish" in by_action and "secretsmanager:GetSecretValue" in by_action
    assert not any(a.startswith("sqs:Receive") or a.startswith("sqs:Delete") for a in by_action)


def test_stuck_videos_alarm_on_the_metric_the_sweep_emits(template, function):
    _, fn = function
    alarms = {
        props(a)["MetricName"]: props(a)
        for a in template.find_resources("AWS::CloudWatch::Alarm").values()
        if props(a).get("MetricName") in (stuck_sweep.METRIC_STUCK, stuck_sweep.METRIC_FAILED)
    }
    service = fn["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    stuck, failed = alarms[stuck_sweep.METRIC_STUCK], alarms[stuck_sweep.METRIC_FAILED]
    for alarm in (stuck, failed):
        assert alarm["Namespace"] == "Reelay"
        assert alarm["Dimensions"] == [{"Name": "service", "Value": service}]
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
        assert "Alarms" in json.dumps(alarm["AlarmActions"])
    # Stuck across three sweeps in a row (the sweep re-sends at once), or a sweep that stops reporting
    assert (stuck["Statistic"], stuck["EvaluationPeriods"], stuck["TreatMissingData"]) == (
        "Minimum",
        3,
        "breaching",
    )
    assert (failed["Statistic"], failed["EvaluationPeriods"]) == ("Sum", 1)


def test_upload_events_that_failed_every_retry_alarm(synthesized, stacks):
    template = synthesized.template(stacks.queue)
    queue_id = stacks.queue.get_logical_id(stacks.queue.upload_trigger.failed_events.node.default_child)
    (alarm,) = [
        props(a)
        for a in template.find_resources("AWS::CloudWatch::Alarm").values()
        if props(a).get("Dimensions")
        == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    ]
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["EvaluationPeriods"]) == (
        0,
        "GreaterThanThreshold",
        1,
    )
    assert alarm["AlarmActions"] == [
        {"Ref": stacks.queue.get_logical_id(stacks.queue.alarms.topic.node.default_child)}
    ]
