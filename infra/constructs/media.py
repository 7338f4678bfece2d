"""What the media containers (the transcode worker, the relay) share: the image, their cluster shape,
the Fargate platform, a log group, the metrics grant and the cdk-nag acknowledgements of a task."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.bundling import REPO_ROOT
from infra.config import ReelayConfig
from infra.constants import DOCKER_EXCLUDES, METRICS_NAMESPACE, TRANSCODER_DOCKERFILE
from infra.nag import acknowledge


def media_image() -> ecs.ContainerImage:
    """The media image (``transcoder/Dockerfile``): the transcode worker's and, under another command,
    the relay's. Same source, same asset hash: one image for both."""
    return ecs.ContainerImage.from_asset(
        str(REPO_ROOT),
        file=TRANSCODER_DOCKERFILE,
        exclude=list(DOCKER_EXCLUDES),
        platform=ecr_assets.Platform.LINUX_AMD64,
    )


def media_platform() -> ecs.RuntimePlatform:
    """x86_64 Linux: the image's platform."""
    return ecs.RuntimePlatform(
        cpu_architecture=ecs.CpuArchitecture.X86_64,
        operating_system_family=ecs.OperatingSystemFamily.LINUX,
    )


def media_cluster(scope: Construct, vpc: ec2.IVpc) -> ecs.Cluster:
    return ecs.Cluster(
        scope,
        "Cluster",
        vpc=vpc,
        container_insights_v2=ecs.ContainerInsights.ENABLED,
        enable_fargate_capacity_providers=True,
    )


def media_log_group(scope: Construct, config: ReelayConfig) -> logs.LogGroup:
    return logs.LogGroup(scope, "Logs", retention=config.log_retention, removal_policy=RemovalPolicy.DESTROY)


def grant_metrics(role: iam.IRole) -> None:
    """PutMetricData, in the Reelay namespace only."""
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
        )
    )
    acknowledge(
        role,
        "AwsSolutions-IAM5[Resource::*]",
        "PutMetricData has no resource ARNs; the statement is limited to the Reelay namespace.",
    )


def acknowledge_media_task(task: ecs.TaskDefinition) -> None:
    """The findings every media task definition has, with why they are fine."""
    acknowledge(
        task,
        "AwsSolutions-ECS2",
        "The environment holds non-secret resource names only; the DB password is fetched from "
        "Secrets Manager at run time by ARN.",
    )
    acknowledge(
        task.obtain_execution_role(),
        "AwsSolutions-IAM5[Resource::*]",
        "ecr:GetAuthorizationToken has no resource ARN; image pulls are limited to the asset repository.",
    )
