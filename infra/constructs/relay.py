"""Live relay on ECS: its cluster and task definition, the reconciler that runs one task per stream, alarms.

The reconciler (``lambdas/relay_reconciler``) runs every minute and on every relay task's STOPPED
event; ``reelay.relay.reconciler`` says why tasks started with RunTask, not a service per stream.
The task's role may use Kinesis Video Streams only on streams named under the stage's prefix
(``ReelayConfig.kvs_prefix``), the prefix the API gives every stream's KVS name.
"""

from __future__ import annotations

import json

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.constants import (
    CREDENTIAL_ALARM_SECONDS,
    KVS_RELAY_ACTIONS,
    METRIC_CREDENTIAL_SECONDS_LEFT,
    METRIC_FRAGMENT_ERRORS,
    METRIC_STREAMS_DOWN,
    METRICS_NAMESPACE,
    RELAY_COMMAND,
    RELAY_CONTAINER_NAME,
    RELAY_FAMILY,
    RELAY_RECONCILE_RATE_MINUTES,
    RELAY_RECONCILER_HANDLER,
    RELAY_RECONCILER_SERVICE,
    RELAY_SERVICE_DIMENSION,
    RELAY_STOP_TIMEOUT_SECONDS,
    RELAY_STREAM_DIMENSION,
    STREAM_EVENT_TYPES,
)
from infra.constructs.function import ReelayFunction, powertools_service
from infra.constructs.media import (
    acknowledge_media_task,
    grant_metrics,
    media_cluster,
    media_image,
    media_log_group,
    media_platform,
)
from infra.environment import PlatformRefs
from infra.nag import acknowledge
from reelay.recording.layout import ROOT as RECORDING_ROOT

_ONE_MINUTE = Duration.minutes(1)


def reconciler_metric(name: str, statistic: str, period: Duration = _ONE_MINUTE) -> cloudwatch.Metric:
    """A metric the reconciler emits (dimension service=reelay-relay-reconciler)."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": powertools_service(RELAY_RECONCILER_SERVICE)},
        statistic=statistic,
        period=period,
    )


def relay_query(function: str, metric_name: str) -> str:
    """A Metrics Insights query over every stream's relay metric: one series an alarm can watch
    (the per-stream series have a StreamId dimension, so no plain metric covers them all)."""
    schema = f'SCHEMA("{METRICS_NAMESPACE}", service, {RELAY_STREAM_DIMENSION})'
    return f"SELECT {function}({metric_name}) FROM {schema} WHERE service = '{RELAY_SERVICE_DIMENSION}'"


def relay_search(metric_name: str, statistic: str, period: Duration) -> str:
    """One line per stream on a graph."""
    schema = f"{{{METRICS_NAMESPACE},service,{RELAY_STREAM_DIMENSION}}}"
    terms = f'{schema} service="{RELAY_SERVICE_DIMENSION}" MetricName="{metric_name}"'
    return f"SEARCH('{terms}', '{statistic}', {int(period.to_seconds())})"


def kvs_streams_arn(scope: Construct, prefix: str) -> str:
    """Every KVS stream whose name starts with prefix (a stream's ARN ends in /<name>/<creation time>)."""
    return Stack.of(scope).format_arn(service="kinesisvideo", resource="stream", resource_name=f"{prefix}*/*")


class Relay(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        refs: PlatformRefs,
        alarm_topic: sns.ITopic,
        stream_secret: secretsmanager.ISecret | None = None,
    ) -> None:
        """``stream_secret``: the keys sealing the streams' source secrets (camera passwords), which
        the task reads to open its source URL; the API stack owns them."""
        super().__init__(scope, construct_id)
        self.stream_secret = stream_secret
        config = refs.config
        # A cluster of its own: the reconciler's StopTask is scoped to it, so it can never stop a
        # transcode worker, and relay tasks (long-lived, one per stream) get their own Container Insights.
        self.cluster = media_cluster(self, refs.vpc)
        self.kvs_prefix = config.kvs_prefix
        self.family = RELAY_FAMILY.format(stage=config.stage)
        self.task = ecs.FargateTaskDefinition(
            self,
            "Task",
            family=self.family,
            cpu=config.relay_cpu,
            memory_limit_mib=config.relay_memory_mib,
            runtime_platform=media_platform(),
        )
        self.log_group = media_log_group(self, config)
        self.container = self.task.add_container(
            RELAY_CONTAINER_NAME,
            container_name=RELAY_CONTAINER_NAME,
            image=media_image(),
            command=list(RELAY_COMMAND),  # the reconciler adds --stream-id <id> per task
            environment={
                **refs.environment(),
                **({"REELAY_STREAM_SECRET_ARN": stream_secret.secret_arn} if stream_secret else {}),
                "POWERTOOLS_SERVICE_NAME": RELAY_SERVICE_DIMENSION,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            },
            logging=ecs.LogDrivers.aws_logs(stream_prefix="relay", log_group=self.log_group),
            # SIGTERM -> EOS: kvssink sends its last fragment and waits for its ack, then the task exits.
            stop_timeout=Duration.seconds(RELAY_STOP_TIMEOUT_SECONDS),
            readonly_root_filesystem=False,  # kvssink's credential file and GStreamer's registry
        )
        self._grant_task(refs)
        self._reconciler(refs)
        self._alarms(alarm_topic)
        acknowledge_media_task(self.task)

    # --- the relay task ------------------------------------------------------------------------------
    def _grant_task(self, refs: PlatformRefs) -> None:
        role = self.task.task_role
        # kvssink's calls, on this stage's streams only: the role cannot touch any other KVS stream.
        self.kvs_statement = iam.PolicyStatement(
            actions=list(KVS_RELAY_ACTIONS), resources=[kvs_streams_arn(self, self.kvs_prefix)]
        )
        role.add_to_principal_policy(self.kvs_statement)
        refs.db_secret.grant_read(role)  # the fenced lease and the stream's health live in the catalogue
        if self.stream_secret is not None:
            self.stream_secret.grant_read(role)  # opens the camera password of its source URL
        grant_metrics(role)
        # The recorder writes segments and chunk manifests, each once or rewritten in place, under
        # recordings/ of the default store; it never reads, lists or deletes (finalize does).
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[refs.objects_arn(RECORDING_ROOT)])
        )
        refs.acknowledge_prefix_grant(
            role,
            RECORDING_ROOT,
            "Writes recording segments and manifests under recordings/<streamId>/ and "
            "recordings/_manifests/; session ids are made at run time.",
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:kinesisvideo:<AWS::Region>:<AWS::AccountId>:"
            f"stream/{self.kvs_prefix}*/*]",
            f"KVS streams are created and named at run time, always under {self.kvs_prefix}; the ARN's "
            "last part is the stream's creation time, which is unknown until then.",
        )

    # --- the reconciler ------------------------------------------------------------------------------
    def _reconciler(self, refs: PlatformRefs) -> None:
        stack = Stack.of(self)
        subnets = refs.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnet_ids
        self.reconciler = ReelayFunction(
            self,
            "Reconciler",
            handler=RELAY_RECONCILER_HANDLER,
            service=RELAY_RECONCILER_SERVICE,
            description="Keeps one relay task per running stream: starts, replaces and stops ECS tasks",
            environment={
                **refs.environment(),
                "REELAY_RELAY_CLUSTER_ARN": self.cluster.cluster_arn,
                "REELAY_RELAY_TASK_DEFINITION_ARN": self.task.task_definition_arn,
                "REELAY_RELAY_CONTAINER_NAME": RELAY_CONTAINER_NAME,
                "REELAY_RELAY_SUBNETS": stack.to_json_string(subnets),
                "REELAY_RELAY_SECURITY_GROUPS": stack.to_json_string([refs.db_clients.security_group_id]),
                "REELAY_RELAY_ASSIGN_PUBLIC_IP": json.dumps(False),
            },
            vpc=refs.vpc,
            security_groups=[refs.db_clients],
            log_retention=refs.config.log_retention,
            timeout=Duration.seconds(60),
            # One pass at a time: two concurrent passes could both launch a task for one stream.
            reserved_concurrency=refs.config.reserved(1),
        )
        fn = self.reconciler.function
        refs.db_secret.grant_read(fn)
        # The next pass (a minute later at most) is the real retry: a late one is not worth running.
        fn.configure_async_invoke(retry_attempts=2, max_event_age=Duration.minutes(2))
        self._grant_reconciler(fn)
        target = targets.LambdaFunction(fn, retry_attempts=2, max_event_age=Duration.minutes(2))
        self.schedule = events.Rule(
            self,
            "Schedule",
            description="Reconciles relay tasks with the streams' desired state every minute",
            schedule=events.Schedule.rate(Duration.minutes(RELAY_RECONCILE_RATE_MINUTES)),
            targets=[target],
        )
        self.task_stopped = events.Rule(
            self,
            "TaskStopped",
            description="A relay task stopped: reconcile at once, so a dead task is replaced in seconds",
            event_pattern=events.EventPattern(
                source=["aws.ecs"],
                detail_type=["ECS Task State Change"],
                detail={
                    "clusterArn": [self.cluster.cluster_arn],
                    "group": [f"family:{self.family}"],
                    "lastStatus": ["STOPPED"],
                },
            ),
            targets=[target],
        )
        # An operator starts or stops a stream: the API's event reaches the reconciler in seconds, so
        # the task starts (or stops) now, and the API itself needs no ECS permission.
        refs.events_topic.add_subscription(
            subscriptions.LambdaSubscription(
                fn,
                filter_policy={
                    "type": sns.SubscriptionFilter.string_filter(allowlist=list(STREAM_EVENT_TYPES))
                },
            )
        )

    def _grant_reconciler(self, fn: lambda_.Function) -> None:
        stack = Stack.of(self)
        cluster_arn = self.cluster.cluster_arn
        on_cluster = {"ArnEquals": {"ecs:cluster": cluster_arn}}
        cluster_tasks = f"{self.cluster.cluster_name}/*"
        tasks = stack.format_arn(service="ecs", resource="task", resource_name=cluster_tasks)
        statements = [
            iam.PolicyStatement(
                actions=["ecs:RunTask"], resources=[self.task.task_definition_arn], conditions=on_cluster
            ),
            # RunTask tags each task with its stream: tagging on create needs TagResource, for RunTask only.
            iam.PolicyStatement(
                actions=["ecs:TagResource"],
                resources=[tasks],
                conditions={"StringEquals": {"ecs:CreateAction": "RunTask"}},
            ),
            iam.PolicyStatement(
                actions=["ecs:StopTask", "ecs:DescribeTasks"], resources=[tasks], conditions=on_cluster
            ),
            # ListTasks names no task: it is bounded by the cluster condition alone.
            iam.PolicyStatement(actions=["ecs:ListTasks"], resources=["*"], conditions=on_cluster),
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.task.task_role.role_arn, self.task.obtain_execution_role().role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
            ),
        ]
        for statement in statements:
            fn.add_to_role_policy(statement)
        cluster_name = stack.resolve(self.cluster.cluster_name)
        self._tasks_finding = f"task/{_token_name(cluster_name)}/*"
        acknowledge(
            fn,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:"
            f"{self._tasks_finding}]",
            "Task ids are known only at run time; stopping, describing and tagging are limited to the "
            "relay cluster's tasks.",
        )
        acknowledge(
            fn,
            "AwsSolutions-IAM5[Resource::*]",
            "ListTasks and X-Ray take no resource ARN; ListTasks is conditioned on the relay cluster.",
        )

    # --- alarms --------------------------------------------------------------------------------------
    def _alarms(self, alarm_topic: sns.ITopic) -> None:
        # The reconciler reports every minute, streams or not: silence means it is broken, and then
        # nothing replaces a dead task. Two periods, so one late schedule is not an alarm.
        # The slate (transcode mode) needs no alarm of its own: it shows only while the camera is quiet,
        # and a quiet camera is a drop within the stall threshold (2 s; HLS up to 20 s), which makes the
        # stream "reconnecting" until KVS acknowledges the camera again (acks of the slate never end the
        # outage). So a stream on the slate for over 2 minutes is a stream down for over 2 minutes, and
        # this alarm fires; a "slate over 5 minutes" alarm would only ever repeat it 3 minutes later.
        self.streams_down_alarm = cloudwatch.Alarm(
            self,
            "StreamsDownAlarm",
            alarm_description="A stream that should run has been down for over 2 minutes, "
            "or the relay reconciler has stopped reporting",
            metric=reconciler_metric(METRIC_STREAMS_DOWN, "Maximum"),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        self.fragment_errors_alarm = self._relay_alarm(
            "FragmentErrorsAlarm",
            "Kinesis Video Streams answered ERROR acks: fragments were rejected (see the relay logs)",
            relay_query("SUM", METRIC_FRAGMENT_ERRORS),
            threshold=0,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )
        self.credentials_alarm = self._relay_alarm(
            "CredentialsExpiringAlarm",
            "A relay task's KVS credentials expire within 5 minutes: its credential refresh is failing",
            relay_query("MIN", METRIC_CREDENTIAL_SECONDS_LEFT),
            threshold=CREDENTIAL_ALARM_SECONDS,
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        )
        action = cw_actions.SnsAction(alarm_topic)
        for alarm in (self.streams_down_alarm, self.fragment_errors_alarm, self.credentials_alarm):
            alarm.add_alarm_action(action)

    def _relay_alarm(
        self,
        alarm_id: str,
        description: str,
        query: str,
        *,
        threshold: float,
        comparison: cloudwatch.ComparisonOperator,
    ) -> cloudwatch.Alarm:
        """An alarm on a Metrics Insights query over every stream; no stream running is no data, fine."""
        return cloudwatch.Alarm(
            self,
            alarm_id,
            alarm_description=description,
            metric=cloudwatch.MathExpression(expression=query, using_metrics={}, period=_ONE_MINUTE),
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )


def _token_name(resolved: object) -> str:
    """How cdk-nag writes a resolved token in a finding id: <LogicalId> for a Ref, the export's name for
    a cross-stack import."""
    if isinstance(resolved, dict) and isinstance(resolved.get("Ref"), str):
        return f"<{resolved['Ref']}>"
    if isinstance(resolved, dict) and isinstance(resolved.get("Fn::ImportValue"), str):
        return str(resolved["Fn::ImportValue"])
    return str(resolved)
