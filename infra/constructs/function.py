"""The house Lambda function: shared code asset, Python 3.11 x86_64, X-Ray, own log group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.bundling import lambda_code
from infra.constants import LAMBDA_PYTHON_VERSION, METRICS_NAMESPACE, SERVICE_NAME
from infra.nag import LAMBDA_MANAGED_POLICIES, acknowledge

if TYPE_CHECKING:
    from infra.environment import PlatformRefs

RUNTIME = lambda_.Runtime.PYTHON_3_11
ARCHITECTURE = lambda_.Architecture.X86_64  # matches the manylinux2014_x86_64 wheels in the asset


def powertools_service(service: str) -> str:
    """POWERTOOLS_SERVICE_NAME of a ReelayFunction: the ``service`` dimension of the metrics it emits."""
    return f"{SERVICE_NAME}-{service}"


class ReelayFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        service: str,
        environment: Mapping[str, str],
        vpc: ec2.IVpc | None,
        security_groups: Sequence[ec2.ISecurityGroup],
        log_retention: logs.RetentionDays,
        timeout: Duration | None = None,
        memory_size: int = 512,
        reserved_concurrency: int | None = None,
        description: str = "",
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=handler,
            code=lambda_code(),
            description=description,
            environment={
                **environment,
                "POWERTOOLS_SERVICE_NAME": powertools_service(service),
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            },
            timeout=timeout or Duration.seconds(30),
            memory_size=memory_size,
            reserved_concurrent_executions=reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            # Outside a VPC (vpc None) only for deploy-time helpers that reach AWS APIs alone.
            vpc=vpc,
            vpc_subnets=(
                ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
                if vpc is not None
                else None
            ),
            security_groups=list(security_groups) if vpc is not None else None,
        )
        for policy in LAMBDA_MANAGED_POLICIES:
            acknowledge(
                self.function,
                f"AwsSolutions-IAM4[{policy}]",
                "AWS-managed Lambda execution policies grant only log writing and VPC ENI management.",
            )
        acknowledge(
            self.function,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions.",
        )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            f"Pinned to Python {LAMBDA_PYTHON_VERSION}: the asset's compiled wheels are built for cp311.",
        )


def catalogue_function(
    scope: Construct,
    construct_id: str,
    refs: PlatformRefs,
    *,
    handler: str,
    service: str,
    description: str,
    events: str,
    timeout: Duration,
    memory_size: int = 512,
    reserved_concurrency: int | None = None,
) -> ReelayFunction:
    """A ReelayFunction in the VPC that reads the app DB secret and publishes ``events`` (e.g. "video
    events") to the events topic: what the sweeps and the workflow steps are."""
    function = ReelayFunction(
        scope,
        construct_id,
        handler=handler,
        service=service,
        description=description,
        environment=refs.environment(),
        vpc=refs.vpc,
        security_groups=[refs.db_clients],
        log_retention=refs.config.log_retention,
        timeout=timeout,
        memory_size=memory_size,
        reserved_concurrency=reserved_concurrency,
    )
    refs.events_topic.grant_publish(function.function)
    refs.db_secret.grant_read(function.function)
    acknowledge(
        function.function,
        "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
        f"Publishing {events} to the KMS-encrypted events topic needs GenerateDataKey* on its key.",
    )
    return function
