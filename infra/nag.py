"""cdk-nag wiring: the AwsSolutions pack on the whole app, and acknowledgements with reasons."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from infra.constants import BUCKET_NOTIFICATIONS_SINGLETON, LOG_RETENTION_SINGLETON


def enable_nag(app: cdk.App) -> None:
    """Every finding fails synth unless acknowledged (CDK policy validation)."""
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one AwsSolutions finding on scope (and everything under it), with why."""
    if len(reason) < 20:
        raise ValueError(f"acknowledgement of {rule} needs a specific reason, got {reason!r}")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule, reason=reason))


LAMBDA_MANAGED_POLICIES = (
    "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
)


def acknowledge_cdk_helpers(stack: cdk.Stack) -> None:
    """Findings on the singleton helper functions CDK itself adds to a stack."""
    basic = LAMBDA_MANAGED_POLICIES[0]
    helpers = {
        LOG_RETENTION_SINGLETON: "CDK's log-retention helper sets retention on the RDS log groups.",
        BUCKET_NOTIFICATIONS_SINGLETON: "CDK's bucket-notifications helper writes the upload trigger.",
    }
    for child_id, purpose in helpers.items():
        helper = stack.node.try_find_child(child_id)
        if helper is None:
            continue
        acknowledge(helper, f"AwsSolutions-IAM4[{basic}]", purpose + " It writes only its own logs.")
        acknowledge(helper, "AwsSolutions-IAM5[Resource::*]", purpose + " Its actions take no resource ARN.")


def acknowledge_provider(provider: IConstruct, handler: lambda_.IFunction, purpose: str) -> None:
    """Findings on a CDK custom-resource Provider's own framework function, which invokes ``handler``."""
    handler_cfn = handler.node.default_child
    assert isinstance(handler_cfn, cdk.CfnElement)
    handler_id = cdk.Stack.of(handler).get_logical_id(handler_cfn)
    for rule, reason in (
        (
            f"AwsSolutions-IAM4[{LAMBDA_MANAGED_POLICIES[0]}]",
            "The CDK provider framework's function only writes its own logs.",
        ),
        ("AwsSolutions-L1", "The CDK provider framework pins its own Node.js runtime."),
        (
            f"AwsSolutions-IAM5[Resource::<{handler_id}.Arn>:*]",
            f"The provider may invoke any version of the one {purpose} function.",
        ),
    ):
        acknowledge(provider, rule, reason)
