"""The operations dashboard and the API/Lambda alarms."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_rds as rds
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constants import (
    CREDENTIAL_ALARM_SECONDS,
    METRIC_CREDENTIAL_SECONDS_LEFT,
    METRIC_EVENT_PUBLISH_FAILED,
    METRIC_EVENTS_PUBLISHED,
    METRIC_FRAGMENT_ERRORS,
    METRIC_FRAGMENTS_PERSISTED,
    METRIC_INPUT_BITRATE,
    METRIC_JOB_SECONDS,
    METRIC_JOBS_FAILED,
    METRIC_JOBS_SUCCEEDED,
    METRIC_OUTAGE_SECONDS,
    METRIC_OUTBOX_OLDEST_AGE,
    METRIC_OUTBOX_PENDING,
    METRIC_RECONCILE_ERRORS,
    METRIC_RECONNECTS,
    METRIC_RELAY_TASKS_STARTED,
    METRIC_RELAY_TASKS_STOPPED,
    METRIC_SLATE_FRAGMENTS_PERSISTED,
    METRIC_SLATE_ON,
    METRIC_STREAM_UP,
    METRIC_STREAMS_DOWN,
    METRICS_NAMESPACE,
)
from infra.constructs.relay import reconciler_metric, relay_search
from infra.constructs.transcoder import outbox_metric, worker_metric

_PERIOD = Duration.minutes(5)
_RELAY_PERIOD = Duration.minutes(1)  # live feeds: a one-minute outage must show


def per_stream(metric_name: str, statistic: str, label: str) -> cloudwatch.MathExpression:
    """One line per stream of a relay task's metric (dimensions service=relay, StreamId)."""
    return cloudwatch.MathExpression(
        expression=relay_search(metric_name, statistic, _RELAY_PERIOD),
        using_metrics={},
        label=label,
        period=_RELAY_PERIOD,
    )


def all_services_sum(metric_name: str, label: str) -> cloudwatch.MathExpression:
    """A Reelay metric summed over every service that emits it (the worker and the sweep both
    publish events), found by a search so a new publisher shows up without a change here."""
    search = (
        f"SEARCH('{{{METRICS_NAMESPACE},service}} MetricName=\"{metric_name}\"', 'Sum', "
        f"{int(_PERIOD.to_seconds())})"
    )
    return cloudwatch.MathExpression(
        expression=f"SUM({search})", using_metrics={}, label=label, period=_PERIOD
    )


class OperationsDashboard(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        api: apigw.RestApi,
        functions: Sequence[lambda_.IFunction],
        queue: sqs.IQueue,
        dead_letters: sqs.IQueue,
        service: ecs.FargateService,
        database: rds.IDatabaseInstance,
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"reelay-{stage}", default_interval=Duration.hours(6)
        )
        lambda_errors = [
            fn.metric_errors(period=_PERIOD, label=fn.node.path.split("/")[-2]) for fn in functions
        ]
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="API requests and errors",
                left=[
                    api.metric_count(period=_PERIOD),
                    api.metric_client_error(period=_PERIOD),
                    api.metric_server_error(period=_PERIOD),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="API latency (p50, p99)",
                left=[
                    api.metric_latency(period=_PERIOD, statistic="p50"),
                    api.metric_latency(period=_PERIOD, statistic="p99"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(title="Lambda errors", left=lambda_errors, width=8),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Transcode queue depth",
                left=[
                    queue.metric_approximate_number_of_messages_visible(period=_PERIOD),
                    queue.metric_approximate_number_of_messages_not_visible(period=_PERIOD),
                ],
                right=[
                    dead_letters.metric_approximate_number_of_messages_visible(
                        period=_PERIOD, label="Dead letters"
                    )
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Oldest job age (s)",
                left=[queue.metric_approximate_age_of_oldest_message(period=_PERIOD, statistic="Maximum")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Transcode jobs",
                left=[
                    worker_metric(METRIC_JOBS_SUCCEEDED, "Sum"),
                    worker_metric(METRIC_JOBS_FAILED, "Sum"),
                ],
                right=[worker_metric(METRIC_JOB_SECONDS, "Average")],
                width=8,
            ),
        )
        running = cloudwatch.Metric(
            namespace="ECS/ContainerInsights",
            metric_name="RunningTaskCount",
            dimensions_map={"ClusterName": service.cluster.cluster_name, "ServiceName": service.service_name},
            statistic="Average",
            period=Duration.minutes(1),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Transcoder tasks",
                left=[running],
                right=[service.metric_cpu_utilization(period=_PERIOD)],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Database",
                left=[database.metric_cpu_utilization(period=_PERIOD)],
                right=[database.metric_database_connections(period=_PERIOD)],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Event outbox",
                left=[
                    outbox_metric(METRIC_OUTBOX_PENDING, "Maximum"),
                    all_services_sum(METRIC_EVENTS_PUBLISHED, "Events published"),
                    all_services_sum(METRIC_EVENT_PUBLISH_FAILED, "Event publishes failed"),
                ],
                right=[outbox_metric(METRIC_OUTBOX_OLDEST_AGE, "Maximum")],
                width=8,
            ),
        )
        self._relay_section()
        action = cw_actions.SnsAction(alarm_topic)
        self.api_5xx_alarm = api.metric_server_error(period=_PERIOD, statistic="Sum").create_alarm(
            self,
            "Api5xxAlarm",
            alarm_description="The API answered 5xx: bad input must never do that",
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.api_5xx_alarm.add_alarm_action(action)

    def _relay_section(self) -> None:
        """Live relay: each stream's state, reconnects, outages, bitrate, KVS acks, credentials and slate."""
        streams_up = cloudwatch.MathExpression(
            expression=f"SUM({relay_search(METRIC_STREAM_UP, 'Maximum', _RELAY_PERIOD)})",
            using_metrics={},
            label="Streams up",
            period=_RELAY_PERIOD,
        )
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(markdown="## Live relay", width=24, height=1),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Relay streams up and down",
                left=[
                    streams_up,
                    reconciler_metric(METRIC_STREAMS_DOWN, "Maximum").with_(label="Streams down"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Relay reconnects and outage seconds",
                left=[per_stream(METRIC_RECONNECTS, "Sum", "Reconnects")],
                right=[per_stream(METRIC_OUTAGE_SECONDS, "Sum", "Outage seconds")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Relay input bitrate (bit/s)",
                left=[per_stream(METRIC_INPUT_BITRATE, "Average", "Input bitrate")],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="KVS fragments persisted and errors",
                left=[per_stream(METRIC_FRAGMENTS_PERSISTED, "Sum", "Fragments persisted")],
                right=[per_stream(METRIC_FRAGMENT_ERRORS, "Sum", "Fragment errors")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="KVS credential seconds left",
                left=[per_stream(METRIC_CREDENTIAL_SECONDS_LEFT, "Minimum", "Credential seconds left")],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(value=CREDENTIAL_ALARM_SECONDS, label="alarm")
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Relay reconciler",
                left=[
                    reconciler_metric(name, "Sum").with_(label=label)
                    for name, label in (
                        (METRIC_RELAY_TASKS_STARTED, "Tasks started"),
                        (METRIC_RELAY_TASKS_STOPPED, "Tasks stopped"),
                        (METRIC_RECONCILE_ERRORS, "Launch/stop errors"),
                    )
                ],
                width=8,
            ),
        )
        # Transcode mode: which streams feed KVS the "camera offline" slate, and how much of what KVS
        # stored was the slate. No alarm of its own: the slate is on only while the camera is down, so
        # the stream is "reconnecting" and StreamsDownAlarm fires after 2 minutes (see Relay._alarms).
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Relay slate to KVS (camera offline)",
                left=[per_stream(METRIC_SLATE_ON, "Maximum", "Slate on")],
                right=[per_stream(METRIC_SLATE_FRAGMENTS_PERSISTED, "Sum", "Slate fragments persisted")],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=1, show_units=False),
                width=8,
            ),
        )
