"""The transcode worker on ECS Fargate, scaled on queue backlog, with its alarms and DLQ consumer."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constants import (
    DEAD_JOBS_HANDLER,
    METRIC_JOBS_FAILED,
    METRIC_OUTBOX_OLDEST_AGE,
    METRIC_STUCK_VIDEOS,
    METRIC_STUCK_VIDEOS_FAILED,
    METRICS_NAMESPACE,
    OUTBOX_AGE_ALARM_SECONDS,
    OUTBOX_SWEEP_HANDLER,
    OUTBOX_SWEEP_RATE_MINUTES,
    OUTBOX_SWEEP_SERVICE,
    OUTPUT_PREFIX,
    PRIVATE_OUTPUT_PREFIX,
    STUCK_SWEEP_HANDLER,
    STUCK_SWEEP_RATE_MINUTES,
    STUCK_SWEEP_SERVICE,
    TRANSCODER_COMMAND,
    TRANSCODER_CPU,
    TRANSCODER_MEMORY_MIB,
    TRANSCODER_SERVICE_DIMENSION,
    TRANSCODER_STOP_TIMEOUT_SECONDS,
    UPLOAD_PREFIX,
)
from infra.constructs.function import ReelayFunction, catalogue_function, powertools_service
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

_ALARM_PERIOD = Duration.minutes(5)


def worker_metric(
    name: str, statistic: str, *, service: str = TRANSCODER_SERVICE_DIMENSION
) -> cloudwatch.Metric:
    """One of the metrics the worker emits (Powertools EMF, dimension service=transcoder), or with
    ``service`` one that another Reelay process emits under its POWERTOOLS_SERVICE_NAME."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": service},
        statistic=statistic,
        period=_ALARM_PERIOD,
    )


def outbox_metric(name: str, statistic: str) -> cloudwatch.Metric:
    """One of the outbox metrics the outbox sweep emits (dimension service=reelay-outbox-sweep)."""
    return worker_metric(name, statistic, service=powertools_service(OUTBOX_SWEEP_SERVICE))


def stuck_metric(name: str, statistic: str) -> cloudwatch.Metric:
    """One of the metrics the stuck-video sweep emits (dimension service=reelay-stuck-sweep)."""
    return worker_metric(name, statistic, service=powertools_service(STUCK_SWEEP_SERVICE))


def backlog_expression(jobs_per_task: int) -> str:
    """The scaled metric: queued jobs plus J per job in flight.

    A task works one job at a time, so every job in flight needs a task of its own: weighting them by
    J makes the steps below give ``inflight + ceil(visible / J)`` tasks, never fewer than in flight.
    """
    return "visible + inflight" if jobs_per_task == 1 else f"visible + {jobs_per_task} * inflight"


def backlog_steps(max_tasks: int, jobs_per_task: int) -> list[appscaling.ScalingInterval]:
    """EXACT_CAPACITY steps: n tasks for a backlog of ((n-1)*J, n*J] jobs, 0 tasks when idle.

    The backlog (``backlog_expression``) is a whole number; the half-way bounds keep every value
    inside exactly one step, so the scale-in and scale-out alarms never both claim it.
    """
    steps = [appscaling.ScalingInterval(upper=0.5, change=0)]
    for tasks in range(1, max_tasks + 1):
        lower = (tasks - 1) * jobs_per_task + 0.5
        upper = tasks * jobs_per_task + 0.5 if tasks < max_tasks else None
        steps.append(appscaling.ScalingInterval(lower=lower, upper=upper, change=tasks))
    return steps


OUTPUT_PREFIXES = (OUTPUT_PREFIX, PRIVATE_OUTPUT_PREFIX)  # public, and private videos' media


def _grant_output_cleanup(refs: PlatformRefs, fn: lambda_.IFunction, whose: str) -> None:
    """List and delete under the output prefixes only: a function that fails a video removes its
    partial output, wherever its visibility put it."""
    fn.add_to_role_policy(
        iam.PolicyStatement(
            actions=["s3:DeleteObject"], resources=[refs.objects_arn(p) for p in OUTPUT_PREFIXES]
        )
    )
    fn.add_to_role_policy(refs.list_media(*OUTPUT_PREFIXES))
    for prefix in OUTPUT_PREFIXES:
        refs.acknowledge_prefix_grant(
            fn.role or fn, prefix, f"Removes the partial HLS output under {prefix}<videoId>/ {whose}."
        )


def _grant_upload_retirement(refs: PlatformRefs, fn: lambda_.IFunction) -> None:
    """Tag the upload of a video it failed (reelay.videos.retire_upload), so the bucket's lifecycle rule
    expires it: PutObjectTagging under uploads/ only."""
    fn.add_to_role_policy(
        iam.PolicyStatement(actions=["s3:PutObjectTagging"], resources=[refs.objects_arn(UPLOAD_PREFIX)])
    )
    refs.acknowledge_prefix_grant(
        fn.role or fn,
        UPLOAD_PREFIX,
        "Tags the upload under uploads/<videoId> of a video it failed, so the lifecycle rule expires it.",
    )


def grant_media_moves(refs: PlatformRefs, role: iam.IRole) -> None:
    """Move a video's media between the output prefixes (reelay.media_location): list, copy (a read
    and a write) and delete under both."""
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            resources=[refs.objects_arn(p) for p in OUTPUT_PREFIXES],
        )
    )
    role.add_to_principal_policy(refs.list_media(*OUTPUT_PREFIXES))
    for prefix in OUTPUT_PREFIXES:
        refs.acknowledge_prefix_grant(
            role, prefix, f"Moves a video's media between the public and private prefixes ({prefix}<id>/)."
        )


class Transcoder(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, refs: PlatformRefs, alarm_topic: sns.ITopic
    ) -> None:
        super().__init__(scope, construct_id)
        config = refs.config
        self.cluster = media_cluster(self, refs.vpc)
        self.task = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=TRANSCODER_CPU,
            memory_limit_mib=TRANSCODER_MEMORY_MIB,
            ephemeral_storage_gib=50,  # source download plus every rendition's segments
            runtime_platform=media_platform(),
        )
        self.log_group = media_log_group(self, config)
        self.container = self.task.add_container(
            "Worker",
            image=media_image(),
            command=list(TRANSCODER_COMMAND),
            environment={
                **refs.environment(),
                # A failed video's playable segments are dropped from the playback CDN too.
                **(
                    {"REELAY_CDN_DISTRIBUTION_ID": refs.cdn_distribution_id}
                    if refs.cdn_distribution_id
                    else {}
                ),
                "POWERTOOLS_SERVICE_NAME": TRANSCODER_SERVICE_DIMENSION,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            },
            logging=ecs.LogDrivers.aws_logs(stream_prefix="worker", log_group=self.log_group),
            # SIGTERM -> the worker finishes or hands its job back before SIGKILL.
            stop_timeout=Duration.seconds(TRANSCODER_STOP_TIMEOUT_SECONDS),
            readonly_root_filesystem=False,
        )
        self._grant(refs)
        capacity = (
            [
                ecs.CapacityProviderStrategy(capacity_provider="FARGATE_SPOT", weight=3),
                ecs.CapacityProviderStrategy(capacity_provider="FARGATE", weight=1, base=0),
            ]
            if config.transcoder_spot
            else [ecs.CapacityProviderStrategy(capacity_provider="FARGATE", weight=1)]
        )
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task,
            desired_count=config.transcoder_min_tasks,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[refs.db_clients],
            assign_public_ip=False,
            capacity_provider_strategies=capacity,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            min_healthy_percent=0,  # no request traffic: a queue worker may restart in place
            enable_execute_command=False,
        )
        self._scaling(refs)
        self._alarms(refs, alarm_topic)
        self._dead_jobs(refs)
        self._outbox_sweep(refs, alarm_topic)
        self._stuck_sweep(refs, alarm_topic)
        acknowledge_media_task(self.task)

    def _grant(self, refs: PlatformRefs) -> None:
        role = self.task.task_role
        # Delete on uploads/: a video deleted while it was transcoded leaves no source behind.
        # Tagging: a failed video's upload is tagged for the bucket's lifecycle rule to expire.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:DeleteObject", "s3:PutObjectTagging"],
                resources=[refs.objects_arn(UPLOAD_PREFIX)],
            )
        )
        # It writes a video's output under the prefix its visibility calls for, removes it on failure,
        # and once the job is done moves whatever a visibility change left under the other prefix
        # (reelay.media_location): read, write, delete and list under both output prefixes.
        grant_media_moves(refs, role)
        # Listing uploads/ makes HEAD of a missing source answer 404 rather than 403.
        role.add_to_principal_policy(refs.list_media(UPLOAD_PREFIX))
        refs.transcode_queue.grant_consume_messages(role)
        # A SIGTERM hand-back re-sends the job as a fresh message (it must not use up an attempt).
        refs.transcode_queue.grant_send_messages(role)
        refs.events_topic.grant_publish(role)
        refs.db_secret.grant_read(role)
        # The ECS agent sets scale-in protection with the task role while a job is held.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["ecs:UpdateTaskProtection", "ecs:GetTaskProtection"],
                resources=[
                    Stack.of(self).format_arn(
                        service="ecs", resource="task", resource_name=f"{self.cluster.cluster_name}/*"
                    )
                ],
            )
        )
        grant_metrics(role)
        invalidate = refs.invalidate_playback(self)
        if invalidate is not None:  # a failed video's playable segments are dropped from the CDN
            role.add_to_principal_policy(invalidate)
        refs.acknowledge_prefix_grant(
            role,
            UPLOAD_PREFIX,
            "Downloads the source of the job it claimed (and removes it if the video was deleted meanwhile);"
            " source keys are per video.",
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "Publishing to the KMS-encrypted events topic needs GenerateDataKey* on that one key.",
        )
        cluster_ref = Stack.of(self).resolve(self.cluster.cluster_name)["Ref"]
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:"
            f"task/<{cluster_ref}>/*]",
            "Task ids are known only at run time; scale-in protection is limited to this cluster's tasks.",
        )

    def _scaling(self, refs: PlatformRefs) -> None:
        config = refs.config
        queue = refs.transcode_queue
        # Backlog = jobs waiting + jobs being worked on. Counting in-flight jobs keeps a task that
        # is transcoding from being scaled in under it; an empty backlog scales to zero tasks.
        self.backlog = cloudwatch.MathExpression(
            expression=backlog_expression(config.transcoder_jobs_per_task),
            using_metrics={
                "visible": queue.metric_approximate_number_of_messages_visible(
                    statistic="Maximum", period=Duration.minutes(1)
                ),
                "inflight": queue.metric_approximate_number_of_messages_not_visible(
                    statistic="Maximum", period=Duration.minutes(1)
                ),
            },
            label="Transcode backlog (visible + in flight)",
            period=Duration.minutes(1),
        )
        self.scaling = self.service.auto_scale_task_count(
            min_capacity=config.transcoder_min_tasks, max_capacity=config.transcoder_max_tasks
        )
        # One task per job in flight plus one per transcoder_jobs_per_task queued jobs, capped at
        # transcoder_max_tasks. Scale-in protection keeps a busy task alive whatever the count says.
        self.scaling.scale_on_metric(
            "BacklogPerTask",
            metric=self.backlog,
            scaling_steps=backlog_steps(config.transcoder_max_tasks, config.transcoder_jobs_per_task),
            adjustment_type=appscaling.AdjustmentType.EXACT_CAPACITY,
            cooldown=Duration.minutes(2),
            evaluation_periods=1,
        )

    def _alarms(self, refs: PlatformRefs, alarm_topic: sns.ITopic) -> None:
        # The dead-jobs function drains the DLQ within seconds, so its depth is almost never seen above
        # zero; every dead letter is received once by that function, so receives are what to count.
        self.dlq_alarm = self._alarm(
            "DeadLettersAlarm",
            "Transcode jobs reached the dead-letter queue (failed max_attempts times)",
            refs.dead_letters.metric_number_of_messages_received(statistic="Sum", period=_ALARM_PERIOD),
        )
        # Dead letters that stay put mean the dead-jobs function itself is broken.
        self.dlq_stuck_alarm = self._alarm(
            "DeadLettersStuckAlarm",
            "Dead-lettered transcode jobs stay unhandled: the dead-jobs function fails",
            refs.dead_letters.metric_approximate_number_of_messages_visible(
                statistic="Minimum", period=_ALARM_PERIOD
            ),
            evaluation_periods=3,
        )
        self.failures_alarm = self._alarm(
            "JobFailuresAlarm",
            "Transcode jobs failed in the last 5 minutes",
            worker_metric(METRIC_JOBS_FAILED, "Sum"),
        )
        self.age_alarm = self._alarm(
            "OldestJobAlarm",
            "A transcode job has waited too long: workers are stuck or at max capacity",
            refs.transcode_queue.metric_approximate_age_of_oldest_message(
                statistic="Maximum", period=_ALARM_PERIOD
            ),
            threshold=refs.config.oldest_message_alarm_seconds,
            evaluation_periods=2,
        )
        action = cw_actions.SnsAction(alarm_topic)
        for alarm in (self.dlq_alarm, self.dlq_stuck_alarm, self.failures_alarm, self.age_alarm):
            alarm.add_alarm_action(action)

    def _schedule(self, fn: lambda_.IFunction, rule_id: str, description: str, minutes: int) -> events.Rule:
        """An EventBridge rule invoking a sweep every ``minutes``. The next scheduled sweep is the real
        retry: an older invocation is not worth running late."""
        fn.configure_async_invoke(retry_attempts=1, max_event_age=Duration.minutes(2))
        return events.Rule(
            self,
            rule_id,
            description=description,
            schedule=events.Schedule.rate(Duration.minutes(minutes)),
            targets=[targets.LambdaFunction(fn, retry_attempts=2, max_event_age=Duration.minutes(2))],
        )

    def _alarm(
        self,
        alarm_id: str,
        description: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float = 0,
        evaluation_periods: int = 1,
        missing_data: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> cloudwatch.Alarm:
        """Alarms when metric rises above threshold; by default no data (an idle queue) is fine."""
        return cloudwatch.Alarm(
            self,
            alarm_id,
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=evaluation_periods,
            treat_missing_data=missing_data,
        )

    def _catalogue_function(
        self,
        refs: PlatformRefs,
        construct_id: str,
        *,
        handler: str,
        service: str,
        description: str,
        reserved: int,
    ) -> ReelayFunction:
        """A function in the VPC that reads the app DB secret and publishes video events."""
        return catalogue_function(
            self, construct_id, refs, handler=handler, service=service, description=description,
            events="video events", timeout=Duration.seconds(60),
            reserved_concurrency=refs.config.reserved(reserved),
        )  # fmt: skip

    def _dead_jobs(self, refs: PlatformRefs) -> None:
        self.dead_jobs = self._catalogue_function(
            refs,
            "DeadJobs",
            handler=DEAD_JOBS_HANDLER,
            service="dead-jobs",
            description="Marks the videos of dead-lettered transcode jobs failed",
            reserved=2,
        )
        fn = self.dead_jobs.function
        fn.add_event_source(
            event_sources.SqsEventSource(refs.dead_letters, batch_size=10, report_batch_item_failures=True)
        )
        # A dead job's partial output is removed once its video is failed: list and delete outputs/ only.
        _grant_output_cleanup(refs, fn, "of a video it failed")
        _grant_upload_retirement(refs, fn)

    def _outbox_sweep(self, refs: PlatformRefs, alarm_topic: sns.ITopic) -> None:
        """The outbox sweep: every minute, publish the video events the fast path left behind."""
        self.outbox_sweep = self._catalogue_function(
            refs,
            "OutboxSweep",
            handler=OUTBOX_SWEEP_HANDLER,
            service=OUTBOX_SWEEP_SERVICE,
            description="Publishes video events left in the catalogue's outbox and reports its backlog",
            reserved=1,  # one sweep at a time (claims are leased anyway)
        )
        self.outbox_sweep_schedule = self._schedule(
            self.outbox_sweep.function,
            "OutboxSweepSchedule",
            "Sweeps the event outbox: publishes video events a crash or an SNS outage delayed",
            OUTBOX_SWEEP_RATE_MINUTES,
        )
        # It also moves the media a visibility change or a finished job left under the wrong prefix.
        fn_role = self.outbox_sweep.function.role
        assert fn_role is not None
        grant_media_moves(refs, fn_role)
        # It also retries the CDN invalidations a delete, a failure or a move to private left behind.
        invalidate = refs.invalidate_playback(self)
        if invalidate is not None and refs.cdn_distribution_id:
            self.outbox_sweep.function.add_environment("REELAY_CDN_DISTRIBUTION_ID", refs.cdn_distribution_id)
            self.outbox_sweep.function.add_to_role_policy(invalidate)
        # Missing data breaches: the sweep reports the age every minute, so silence means it is broken
        # (failing before it reports, or not invoked), and then nothing left behind gets published.
        self.outbox_age_alarm = self._alarm(
            "OutboxAgeAlarm",
            "Video events are not being published: an outbox event has waited over 10 minutes, "
            "or the outbox sweep has stopped reporting",
            outbox_metric(METRIC_OUTBOX_OLDEST_AGE, "Maximum"),
            threshold=OUTBOX_AGE_ALARM_SECONDS,
            evaluation_periods=2,
            missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        self.outbox_age_alarm.add_alarm_action(cw_actions.SnsAction(alarm_topic))

    def _stuck_sweep(self, refs: PlatformRefs, alarm_topic: sns.ITopic) -> None:
        """The stuck-video sweep: every few minutes, re-enqueue (or fail) videos stuck past their deadline."""
        self.stuck_sweep = self._catalogue_function(
            refs,
            "StuckSweep",
            handler=STUCK_SWEEP_HANDLER,
            service=STUCK_SWEEP_SERVICE,
            description="Re-enqueues videos stuck in queued or processing, or fails them out of attempts",
            reserved=1,  # one sweep at a time (it claims each video's lease anyway)
        )
        fn = self.stuck_sweep.function
        refs.transcode_queue.grant_send_messages(fn)
        _grant_output_cleanup(refs, fn, "of a stuck video it failed")
        _grant_upload_retirement(refs, fn)
        self.stuck_sweep_schedule = self._schedule(
            fn,
            "StuckSweepSchedule",
            "Sweeps videos stuck in queued or processing past their deadline",
            STUCK_SWEEP_RATE_MINUTES,
        )
        # A stuck video is re-enqueued at once; one still stuck at the next two sweeps, or one failed
        # because its attempts ran out, is worth a look. Silence means the sweep itself is broken.
        self.stuck_alarm = self._alarm(
            "StuckVideosAlarm",
            "Videos stay stuck in queued or processing past their deadline across sweeps, "
            "or the stuck-video sweep has stopped reporting",
            stuck_metric(METRIC_STUCK_VIDEOS, "Minimum"),
            evaluation_periods=3,
            missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        self.stuck_failed_alarm = self._alarm(
            "StuckVideosFailedAlarm",
            "The stuck-video sweep failed videos whose attempts were spent",
            stuck_metric(METRIC_STUCK_VIDEOS_FAILED, "Sum"),
        )
        action = cw_actions.SnsAction(alarm_topic)
        for alarm in (self.stuck_alarm, self.stuck_failed_alarm):
            alarm.add_alarm_action(action)
