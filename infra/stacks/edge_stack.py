"""The CloudFront web ACL, in us-east-1 (WAF requires it there for scope CLOUDFRONT)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra.config import ReelayConfig
from infra.constructs.waf import edge_acl_parameter, rate_rule, web_acl


class EdgeStack(Stack):
    """Rate-based rules per client IP in front of the playback and web distributions.

    Its ARN goes to an SSM parameter the distributions' stacks read (infra/constructs/waf.py).
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: ReelayConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, description="Reelay: CloudFront WAF (us-east-1)", **kwargs)
        self.web_acl = web_acl(
            self,
            "CdnWebAcl",
            name=f"reelay-{config.stage}-cdn",
            waf_scope="CLOUDFRONT",
            rules=[rate_rule("CdnRatePerIp", 0, config.waf_cdn_rate_limit)],
        )
        self.parameter = ssm.StringParameter(
            self,
            "CdnWebAclArn",
            parameter_name=edge_acl_parameter(config.stage),
            string_value=self.web_acl.attr_arn,
            description="ARN of Reelay's CloudFront web ACL, read by the stacks with distributions",
        )
        CfnOutput(self, "CdnWebAclArnOutput", value=self.web_acl.attr_arn)
