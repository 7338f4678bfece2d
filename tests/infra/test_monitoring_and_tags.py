"""Monitoring stack and tags."""

from __future__ import annotations

import json

from tests.infra.conftest import props


def test_dashboard_covers_api_lambdas_queue_jobs_ecs_and_rds(synthesized, stacks):
    # Given the dashboard's body
    template = synthesized.template(stacks.monitoring)
    (dashboard,) = template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(props(dashboard)["DashboardBody"])
    # Then it graphs every part of the platform
    for metric in (
        "Count",
        "4XXError",
        "5XXError",
        "Latency",  # API
        "Errors",  # Lambda
        "ApproximateNumberOfMessagesVisible",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateAgeOfOldestMessage",  # queue and DLQ
        "TranscodeJobsSucceeded",
        "TranscodeJobsFailed",
        "TranscodeSeconds",  # the worker's EMF
        "RunningTaskCount",
        "CPUUtilization",  # ECS
        "DatabaseConnections",  # RDS
    ):
        assert f'\\"{metric}\\"' in body, metric


def test_api_server_errors_alarm_to_the_alarm_topic(synthesized, stacks):
    template = synthesized.template(stacks.monitoring)
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm", {"MetricName": "5XXError", "Namespace": "AWS/ApiGateway", "Threshold": 0}
    )


def test_resources_are_tagged_with_project_and_stage(synthesized, stacks, config):
    # Given every taggable resource of every stack
    untagged = []
    for stack in stacks.all():
        for logical_id, resource in synthesized.template(stack).to_json()["Resources"].items():
            tags = props(resource).get("Tags")
            if isinstance(tags, list):
                pairs = {t["Key"]: t["Value"] for t in tags}
                if pairs.get("project") != "reelay" or pairs.get("stage") != config.stage:
                    untagged.append(f"{stack.stack_name}/{logical_id}")
    # Then every one carries project=reelay and the stage
    assert untagged == []
