from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra.config import ReelayConfig
from infra.constructs.media_storage import MediaStorage
from infra.constructs.waf import EdgeWebAclArn, acknowledge_sdk_helper
from infra.environment import media_bucket_name


class StorageStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: ReelayConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, description="Reelay: media bucket and playback CDN", **kwargs)
        # The CloudFront web ACL lives in us-east-1 (the edge stack): its ARN is read from there.
        self.edge_acl = EdgeWebAclArn(self, "EdgeWebAcl", stage=config.stage) if config.waf_enabled else None
        self.media = MediaStorage(
            self,
            "Media",
            bucket_name=media_bucket_name(config.stage),
            cors_origins=config.cors_allowed_origins,
            playback_public_key=config.playback_public_key,
            log_retention=config.log_retention,
            web_acl_arn=self.edge_acl.arn if self.edge_acl else None,
        )
        acknowledge_sdk_helper(self)
        CfnOutput(self, "MediaBucketName", value=self.media.bucket.bucket_name)
        CfnOutput(self, "PlaybackBaseUrl", value=self.media.playback_base_url)
        # The private key's secret (where `python -m infra.playback_keys` says to put a key of your own).
        CfnOutput(self, "PlaybackSigningKeyArn", value=self.media.playback_signing_secret.secret_arn)
