from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnOutput, Stack
from constructs import Construct

from infra.bundling import REPO_ROOT
from infra.constants import BUCKET_DEPLOYMENT_SINGLETON, WEB_DIST
from infra.constructs.waf import EdgeWebAclArn, acknowledge_sdk_helper
from infra.constructs.web import WebOrigins, WebSite
from infra.environment import media_bucket_name
from infra.nag import LAMBDA_MANAGED_POLICIES, acknowledge


class WebStack(Stack):
    """The web front end on S3 + CloudFront, configured for this deployment's API and user pool."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        api_url: str,
        api_id: str,
        media_domain: str,
        user_pool_id: str,
        user_pool_client_id: str,
        waf_enabled: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope, construct_id, description="Reelay: the web front end (S3 + CloudFront)", **kwargs
        )
        uploads = media_bucket_name(stage)
        # The CloudFront web ACL lives in us-east-1 (the edge stack): its ARN is read from there.
        self.edge_acl = EdgeWebAclArn(self, "EdgeWebAcl", stage=stage) if waf_enabled else None
        self.site = WebSite(
            self,
            "Site",
            dist=REPO_ROOT / WEB_DIST,
            # The same keys as the local gateway's /config.json (local/web.py web_config).
            config={
                "apiUrl": api_url,
                "region": Aws.REGION,
                "userPoolId": user_pool_id,
                "userPoolClientId": user_pool_client_id,
            },
            allowed=WebOrigins(
                api=f"https://{api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}",
                media=f"https://{media_domain}",
                uploads=(
                    f"https://{uploads}.s3.amazonaws.com",
                    f"https://{uploads}.s3.{Aws.REGION}.amazonaws.com",
                ),
            ),
            web_acl_arn=self.edge_acl.arn if self.edge_acl else None,
        )
        acknowledge_sdk_helper(self)
        self._acknowledge_deployment_function()
        CfnOutput(self, "WebUrl", value=self.site.url)
        CfnOutput(self, "WebBucketName", value=self.site.bucket.bucket_name)

    def _acknowledge_deployment_function(self) -> None:
        # The singleton's id ends with its memory size (e.g. ...256MiB).
        site_bucket = self.resolve(self.get_logical_id(self.site.bucket.node.default_child))  # type: ignore[arg-type]
        purpose = "CDK's BucketDeployment function copies the web build into the site bucket at deploy time."
        wildcards = [
            *(
                f"Action::s3:{action}"
                for action in ("GetBucket*", "GetObject*", "List*", "Abort*", "DeleteObject*")
            ),
            f"Resource::<{site_bucket}.Arn>/*",
            "Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*",
        ]
        for helper in self.node.children:
            if not helper.node.id.startswith(BUCKET_DEPLOYMENT_SINGLETON):
                continue
            acknowledge(
                helper,
                f"AwsSolutions-IAM4[{LAMBDA_MANAGED_POLICIES[0]}]",
                purpose + " It writes only its own logs.",
            )
            for finding in wildcards:
                acknowledge(
                    helper,
                    f"AwsSolutions-IAM5[{finding}]",
                    purpose + " CDK scopes these to the asset bucket's and the site bucket's objects.",
                )
            acknowledge(
                helper, "AwsSolutions-L1", purpose + " CDK pins its runtime; it runs only during deploys."
            )
