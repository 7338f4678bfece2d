"""WAF web ACLs with rate-based rules: a regional one on the API stage, and one for CloudFront.

A CloudFront web ACL must live in us-east-1 (scope CLOUDFRONT), whatever region the app deploys to.
The edge stack (infra/stacks/edge_stack.py) is pinned there; it writes the ACL's ARN to an SSM
parameter, and each stack with a distribution reads it back with a custom resource that calls SSM in
us-east-1. That is what CDK's ``cross_region_references`` does, but it also works when the app is
synthesized env-agnostic (no account or region in the config), which ``cross_region_references``
refuses. The reading stacks depend on the edge stack, so it is deployed first.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_wafv2 as wafv2
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.nag import acknowledge

EDGE_REGION = "us-east-1"
AUTH_PATH = "/auth/"


def edge_acl_parameter(stage: str) -> str:
    """The SSM parameter (in us-east-1) holding the CloudFront web ACL's ARN."""
    return f"/reelay/{stage}/edge-web-acl-arn"


def _visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
    )


def rate_rule(
    name: str, priority: int, limit: int, *, path_contains: str | None = None
) -> wafv2.CfnWebACL.RuleProperty:
    """Block a client IP past ``limit`` requests in 5 minutes (only those whose path holds the text)."""
    scope_down = None
    if path_contains is not None:
        scope_down = wafv2.CfnWebACL.StatementProperty(
            byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
                field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(uri_path={}),
                positional_constraint="CONTAINS",
                search_string=path_contains,
                text_transformations=[wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")],
            )
        )
    return wafv2.CfnWebACL.RuleProperty(
        name=name,
        priority=priority,
        action=wafv2.CfnWebACL.RuleActionProperty(block={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                aggregate_key_type="IP",
                limit=limit,
                evaluation_window_sec=300,
                scope_down_statement=scope_down,
            )
        ),
        visibility_config=_visibility(name),
    )


def web_acl(
    scope: Construct,
    construct_id: str,
    *,
    name: str,
    waf_scope: str,
    rules: list[wafv2.CfnWebACL.RuleProperty],
) -> wafv2.CfnWebACL:
    return wafv2.CfnWebACL(
        scope,
        construct_id,
        name=name,
        scope=waf_scope,
        default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
        rules=rules,
        visibility_config=_visibility(name),
    )


class EdgeWebAclArn(Construct):
    """The CloudFront web ACL's ARN, read from its SSM parameter in us-east-1 at deploy time."""

    def __init__(self, scope: Construct, construct_id: str, *, stage: str) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        parameter = edge_acl_parameter(stage)
        parameter_arn = stack.format_arn(
            service="ssm", region=EDGE_REGION, resource="parameter", resource_name=parameter.lstrip("/")
        )
        call = cr.AwsSdkCall(
            service="SSM",
            action="getParameter",
            parameters={"Name": parameter},
            region=EDGE_REGION,
            physical_resource_id=cr.PhysicalResourceId.of(parameter),
        )
        self.reader = cr.AwsCustomResource(
            self,
            "Read",
            on_create=call,
            on_update=call,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [iam.PolicyStatement(actions=["ssm:GetParameter"], resources=[parameter_arn])]
            ),
            install_latest_aws_sdk=False,
        )
        self.arn = self.reader.get_response_field("Parameter.Value")


def acknowledge_sdk_helper(stack: Stack) -> None:
    """cdk-nag findings on the one Lambda CDK adds for AwsCustomResource (reading the edge ACL's ARN)."""
    helper = stack.node.try_find_child("AWS679f53fac002430cb0da5b7982bd2287")
    if helper is None:
        return
    acknowledge(
        helper,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        "CDK's AwsCustomResource helper reads the edge web ACL's ARN; it writes only its own logs.",
    )
    acknowledge(
        helper,
        "AwsSolutions-L1",
        "CDK's AwsCustomResource helper runtime is chosen by aws-cdk-lib and updated with it.",
    )
