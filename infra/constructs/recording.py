"""The recording workflows on Step Functions, built from ``reelay.recording.workflow``:
``RECORDING_WORKFLOW`` (finalize and fixup) and ``RECORDING_EXPORT_WORKFLOW`` (MP4 range exports).

Lambda steps invoke one thin handler (``lambdas/recording_steps``) with ``{"step", "state"}``; the
MP4 steps are ECS RunTasks (``.sync``) of the media image (``transcoder/export.py``); retries and
the catch come from the same definitions the local runner uses. Both state machines have fixed names
(``infra.constants``) so the API, an earlier stack, can start them without a cross-stack reference.
A sweep Lambda, every minute, starts fixup for stale sessions and finalize for ended ones.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import CfnElement, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.bundling import REPO_ROOT
from infra.constants import (
    DOCKER_EXCLUDES,
    OUTPUT_PREFIX,
    PRIVATE_OUTPUT_PREFIX,
    TRANSCODER_DOCKERFILE,
    recording_export_state_machine_name,
    recording_state_machine_name,
)
from infra.constructs.function import ReelayFunction, catalogue_function
from infra.environment import PlatformRefs
from infra.nag import acknowledge
from reelay.recording.layout import EXPORT_STATE_PREFIX
from reelay.recording.workflow import RECORDING_EXPORT_WORKFLOW, RECORDING_WORKFLOW, Step, Workflow

RECORDING_PREFIX = "recordings/"
# Retention deletes a session's keys, its exports' and its video's outputs (wherever its visibility
# put them).
RETENTION_PREFIXES = (RECORDING_PREFIX, OUTPUT_PREFIX, PRIVATE_OUTPUT_PREFIX, EXPORT_STATE_PREFIX)
STEPS_HANDLER = "lambdas.recording_steps.handler.lambda_handler"
SWEEP_HANDLER = "lambdas.recording_sweep.handler.lambda_handler"
EXPORT_COMMAND = ("python3", "-m", "transcoder.export")
EXPORT_STATE_ENV = "REELAY_EXPORT_STATE"
FAIL_STATE = "RecordingFailed"
EXPORT_FAIL_STATE = "RecordingExportFailed"
SWEEP_RATE_MINUTES = 1


def _family_revisions(task: ecs.TaskDefinition) -> str:
    """How cdk-nag prints CDK's ``<task definition ARN without revision>:*`` resource."""
    resource = task.node.default_child
    assert isinstance(resource, CfnElement)
    ref = json.dumps({"Ref": Stack.of(task).get_logical_id(resource)}, separators=(",", ":"))

    def part(n: int, sep: str = ":", inner: str | None = None) -> str:
        src = inner or ref
        return json.dumps({"Fn::Select": [n, {"Fn::Split": [sep, json.loads(src)]}]}, separators=(",", ":"))

    fifth = part(5)
    return f"arn:{part(1)}:{part(2)}:{part(3)}:{part(4)}:{part(0, '/', fifth)}/{part(1, '/', fifth)}:*"


def choice_name(step: Step) -> str:
    """The Choice state guarding a step with ``when``."""
    return f"Want{step.name}"


class Recording(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        refs: PlatformRefs,
        cluster: ecs.ICluster,
        workflow: Workflow = RECORDING_WORKFLOW,
        export_workflow: Workflow = RECORDING_EXPORT_WORKFLOW,
        stream_secret: secretsmanager.ISecret | None = None,
    ) -> None:
        """``stream_secret``: the keys that seal a stream's own store and a webhook's answer; the steps
        open the store a session recorded to, the sweep removes expired recordings from it."""
        super().__init__(scope, construct_id)
        self.refs = refs
        self.stream_secret = stream_secret
        self.steps = self._function(
            "Steps",
            STEPS_HANDLER,
            "recording-steps",
            "Runs one step of the recording finalize/fixup workflow",
            timeout=Duration.minutes(15),
            memory=1024,
        )
        self._grant_media(self.steps.function, write=True)
        self._grant_export_states(self.steps.function, read=True)
        self._export_task(cluster)
        self.state_machine = self._state_machine(
            self,
            workflow,
            cluster,
            name=recording_state_machine_name(self.refs.config.stage),
            fail_state=FAIL_STATE,
            comment=f"Reelay {workflow.name}: finalize and fixup of sessions (reelay.recording.workflow)",
            timeout=Duration.hours(12),
        )
        # The export workflow's states live in a scope of their own (state names are construct ids).
        self.export_state_machine = self._state_machine(
            Construct(self, "Export"),
            export_workflow,
            cluster,
            name=recording_export_state_machine_name(self.refs.config.stage),
            fail_state=EXPORT_FAIL_STATE,
            comment=f"Reelay {export_workflow.name}: a time range of a recording as MP4 "
            "(reelay.recording.workflow)",
            timeout=Duration.hours(13),  # the export task (6 h at most) and its one retry
        )
        self.sweep = self._function(
            "Sweep",
            SWEEP_HANDLER,
            "recording-sweep",
            "Starts fixup for stale recording sessions and finalize for ended ones",
            timeout=Duration.minutes(1),
        )
        self.sweep.function.add_environment(
            "REELAY_RECORDING_STATE_MACHINE_ARN", self.state_machine.state_machine_arn
        )
        self.state_machine.grant_start_execution(self.sweep.function)
        self._grant_retention(self.sweep.function)
        for function in (self.steps.function, self.sweep.function):
            if stream_secret is not None:
                function.add_environment("REELAY_STREAM_SECRET_ARN", stream_secret.secret_arn)
                stream_secret.grant_read(function)
        self.sweep.function.configure_async_invoke(retry_attempts=1, max_event_age=Duration.minutes(2))
        self.schedule = events.Rule(
            self,
            "SweepSchedule",
            description="Finds ended and stale recording sessions and starts their workflows",
            schedule=events.Schedule.rate(Duration.minutes(SWEEP_RATE_MINUTES)),
            targets=[
                targets.LambdaFunction(
                    self.sweep.function, retry_attempts=2, max_event_age=Duration.minutes(2)
                )
            ],
        )

    # --- functions ---------------------------------------------------------------------------------
    def _function(
        self,
        construct_id: str,
        handler: str,
        service: str,
        description: str,
        *,
        timeout: Duration,
        memory: int = 512,
    ) -> ReelayFunction:
        return catalogue_function(
            self, construct_id, self.refs, handler=handler, service=service, description=description,
            events="recording events", timeout=timeout, memory_size=memory,
        )  # fmt: skip

    def _grant_media(self, grantee: iam.IGrantable, *, write: bool) -> None:
        refs = self.refs
        actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"] if write else ["s3:GetObject"]
        principal = grantee.grant_principal
        principal.add_to_principal_policy(
            iam.PolicyStatement(actions=actions, resources=[refs.objects_arn(RECORDING_PREFIX)])
        )
        principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject"], resources=[refs.objects_arn(OUTPUT_PREFIX)]
            )
        )
        principal.add_to_principal_policy(refs.list_media(RECORDING_PREFIX, OUTPUT_PREFIX))
        scope = grantee if isinstance(grantee, Construct) else self
        refs.acknowledge_prefix_grant(
            scope,
            RECORDING_PREFIX,
            "Reads a session's segments (keys are per stream and session) and removes its intermediates.",
        )
        refs.acknowledge_prefix_grant(
            scope, OUTPUT_PREFIX, "Writes a recording's VOD playlists and MP4 under outputs/<videoId>/."
        )

    def _grant_export_states(self, grantee: iam.IGrantable, *, read: bool) -> None:
        """The export workflow's steps write the export's state JSON (ready or failed), and its catch
        reads the reason the export task wrote there (``read``)."""
        actions = ["s3:GetObject", "s3:PutObject"] if read else ["s3:PutObject"]
        principal = grantee.grant_principal
        principal.add_to_principal_policy(
            iam.PolicyStatement(actions=actions, resources=[self.refs.objects_arn(EXPORT_STATE_PREFIX)])
        )
        if read:
            principal.add_to_principal_policy(self.refs.list_media(EXPORT_STATE_PREFIX))
        self.refs.acknowledge_prefix_grant(
            grantee if isinstance(grantee, Construct) else self,
            EXPORT_STATE_PREFIX,
            "Records an export's state, one JSON object per export id.",
        )

    def _grant_retention(self, function: Any) -> None:
        """A stream's retentionDays: the sweep deletes a session's segments and manifests, its exports
        and its video's outputs (the video delete path), and drops the video from the CDN."""
        refs = self.refs
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:DeleteObject"],  # delete_prefix: a listing and batch deletes, no reads
                resources=[refs.objects_arn(p) for p in RETENTION_PREFIXES],
            )
        )
        function.add_to_role_policy(refs.list_media(*RETENTION_PREFIXES))
        for prefix in RETENTION_PREFIXES:
            refs.acknowledge_prefix_grant(
                function, prefix, "Retention deletes an expired recording's keys, which are per session."
            )
        if refs.cdn_distribution_id:
            function.add_environment("REELAY_CDN_DISTRIBUTION_ID", refs.cdn_distribution_id)
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["cloudfront:CreateInvalidation"],
                    resources=[
                        Stack.of(self).format_arn(
                            service="cloudfront",
                            region="",
                            resource="distribution",
                            resource_name=refs.cdn_distribution_id,
                        )
                    ],
                )
            )

    # --- the MP4 export task ------------------------------------------------------------------------
    def _export_task(self, cluster: ecs.ICluster) -> None:
        refs = self.refs
        self.export_task = ecs.FargateTaskDefinition(
            self,
            "ExportTask",
            cpu=1024,
            memory_limit_mib=2048,
            ephemeral_storage_gib=100,  # an hours-long recording's segments, joined, then the MP4
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        log_group = logs.LogGroup(
            self, "ExportLogs", retention=refs.config.log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        self.export_container = self.export_task.add_container(
            "Export",
            image=ecs.ContainerImage.from_asset(
                str(REPO_ROOT),
                file=TRANSCODER_DOCKERFILE,
                exclude=list(DOCKER_EXCLUDES),
                platform=ecr_assets.Platform.LINUX_AMD64,
            ),
            command=list(EXPORT_COMMAND),
            environment=refs.environment(),
            logging=ecs.LogDrivers.aws_logs(stream_prefix="export", log_group=log_group),
            readonly_root_filesystem=False,
        )
        self._grant_media(self.export_task.task_role, write=False)
        # A range export that fails writes its reason into the export's state JSON.
        self._grant_export_states(self.export_task.task_role, read=False)
        self.export_security_group = ec2.SecurityGroup(
            self,
            "ExportSecurityGroup",
            vpc=refs.vpc,
            description="MP4 export tasks: outbound to S3 only",
            allow_all_outbound=True,
        )
        acknowledge(
            self.export_task,
            "AwsSolutions-ECS2",
            "The environment holds non-secret resource names only; the export reads no secret.",
        )
        acknowledge(
            self.export_task.obtain_execution_role(),
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken has no resource ARN; image pulls are limited to the asset repository.",
        )

    # --- the state machine ----------------------------------------------------------------------------
    def _state_machine(
        self,
        scope: Construct,
        workflow: Workflow,
        cluster: ecs.ICluster,
        *,
        name: str,
        fail_state: str,
        comment: str,
        timeout: Duration,
    ) -> sfn.StateMachine:
        failed = self._task(scope, workflow.catch, cluster).next(
            sfn.Fail(scope, fail_state, error=fail_state, cause=f"a {workflow.name} workflow step failed")
        )
        following: sfn.IChainable | None = None
        for step in reversed(workflow.steps):
            task = self._task(scope, step, cluster)
            if following is not None:
                task.next(following)
            if step.retry is not None:
                task.add_retry(
                    errors=list(step.retry.errors),
                    max_attempts=step.retry.max_attempts,
                    interval=Duration.seconds(step.retry.interval_seconds),
                    backoff_rate=step.retry.backoff_rate,
                )
            task.add_catch(failed, errors=["States.ALL"], result_path=f"$.{workflow.error_path}")
            entry: sfn.IChainable = task
            if step.when:
                assert following is not None, "a conditional step cannot be the last"
                present = sfn.Condition.is_present(f"$.{step.when}")
                wanted = sfn.Condition.boolean_equals(f"$.{step.when}", True)
                entry = (
                    sfn.Choice(scope, choice_name(step))
                    .when(sfn.Condition.and_(present, wanted), task)
                    .otherwise(following)
                )
            following = entry
        assert following is not None
        log_group = logs.LogGroup(
            scope,
            "WorkflowLogs",
            retention=self.refs.config.log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        machine = sfn.StateMachine(
            scope,
            "Workflow",
            state_machine_name=name,
            comment=comment,
            definition_body=sfn.DefinitionBody.from_chainable(following),
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            tracing_enabled=True,
            timeout=timeout,
        )
        acknowledge(
            machine,
            "AwsSolutions-IAM5[Resource::*]",
            "Step Functions log delivery and X-Ray actions take no resource ARN.",
        )
        fn_ref = Stack.of(self).resolve(self.steps.function.function_arn)
        acknowledge(
            machine,
            f"AwsSolutions-IAM5[Resource::<{fn_ref['Fn::GetAtt'][0]}.Arn>:*]",
            "Invoking the steps function by any version or alias of it (CDK's LambdaInvoke grant).",
        )
        acknowledge(
            machine,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:events:<AWS::Region>:<AWS::AccountId>:rule/"
            "StepFunctionsGetEventsForECSTaskRule]",
            "The .sync ECS integration's managed EventBridge rule (its fixed name is set by Step Functions).",
        )
        acknowledge(
            machine,
            f"AwsSolutions-IAM5[Resource::{_family_revisions(self.export_task)}]",
            "RunTask on every revision of the export task definition (CDK's EcsRunTask grant).",
        )
        return machine

    def _task(self, scope: Construct, step: Step, cluster: ecs.ICluster) -> sfn.TaskStateBase:
        if step.kind == "ecs":
            return tasks.EcsRunTask(
                scope,
                step.name,
                integration_pattern=sfn.IntegrationPattern.RUN_JOB,
                cluster=cluster,
                task_definition=self.export_task,
                launch_target=tasks.EcsFargateLaunchTarget(
                    platform_version=ecs.FargatePlatformVersion.LATEST
                ),
                container_overrides=[
                    tasks.ContainerOverride(
                        container_definition=self.export_container,
                        environment=[
                            tasks.TaskEnvironmentVariable(
                                name=EXPORT_STATE_ENV,
                                value=sfn.JsonPath.json_to_string(sfn.JsonPath.entire_payload),
                            )
                        ],
                    )
                ],
                subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
                security_groups=[self.export_security_group],
                assign_public_ip=False,
                result_path=sfn.JsonPath.DISCARD,
                task_timeout=sfn.Timeout.duration(Duration.seconds(step.timeout_seconds)),
            )
        return tasks.LambdaInvoke(
            scope,
            step.name,
            lambda_function=self.steps.function,
            payload=sfn.TaskInput.from_object({"step": step.handler, "state": sfn.JsonPath.entire_payload}),
            payload_response_only=True,
            retry_on_service_exceptions=False,  # the definition's own retries, nothing added
            task_timeout=sfn.Timeout.duration(Duration.seconds(step.timeout_seconds)),
        )
