"""The REELAY_* environment every Lambda and the worker get (reelay.settings.Settings fields)."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, Stack
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import IConstruct

from infra.config import ReelayConfig
from infra.constants import MEDIA_BUCKET_NAME, OUTPUT_PREFIX, PRIVATE_OUTPUT_PREFIX, UPLOAD_PREFIX
from infra.nag import acknowledge


def media_bucket_name(stage: str) -> str:
    return MEDIA_BUCKET_NAME.format(stage=stage, account=Aws.ACCOUNT_ID, region=Aws.REGION)


def media_objects_arn(stage: str, prefix: str) -> str:
    """ARN of every object under prefix, built from the bucket's name (no cross-stack token)."""
    return f"arn:{Aws.PARTITION}:s3:::{media_bucket_name(stage)}/{prefix}*"


def media_objects_finding(stage: str, prefix: str) -> str:
    """The cdk-nag IAM5 finding id for a grant on media_objects_arn(stage, prefix)."""
    bucket = MEDIA_BUCKET_NAME.format(stage=stage, account="<AWS::AccountId>", region="<AWS::Region>")
    return f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{bucket}/{prefix}*]"


@dataclass(frozen=True)
class PlatformRefs:
    """What the compute stacks share: passed from the stacks that own each resource."""

    config: ReelayConfig
    vpc: ec2.IVpc
    db_clients: ec2.ISecurityGroup
    db_secret: secretsmanager.ISecret  # the application user's (DML only), never the master's
    media_bucket: s3.IBucket
    playback_base_url: str
    user_pool: cognito.IUserPool
    user_pool_client: cognito.IUserPoolClient
    transcode_queue: sqs.IQueue
    dead_letters: sqs.IQueue
    events_topic: sns.ITopic
    # The playback distribution (Storage stack); the API imports its id to invalidate deleted media.
    cdn_distribution_id: str | None = None
    # Private playback (Storage stack): the signed path, the key group's public key id, and the
    # secret holding the private key. The API signs; nothing else reads the secret.
    signed_playback_base_url: str | None = None
    playback_key_pair_id: str | None = None
    playback_signing_secret: secretsmanager.ISecret | None = None

    def objects_arn(self, prefix: str) -> str:
        return media_objects_arn(self.config.stage, prefix)

    def acknowledge_prefix_grant(self, scope: IConstruct, prefix: str, reason: str) -> None:
        acknowledge(scope, media_objects_finding(self.config.stage, prefix), reason)

    def invalidate_playback(self, scope: IConstruct) -> iam.PolicyStatement | None:
        """CreateInvalidation on the playback distribution only (None when there is none)."""
        if not self.cdn_distribution_id:
            return None
        arn = Stack.of(scope).format_arn(
            service="cloudfront", region="", resource="distribution", resource_name=self.cdn_distribution_id
        )
        return iam.PolicyStatement(actions=["cloudfront:CreateInvalidation"], resources=[arn])

    def list_media(self, *prefixes: str) -> iam.PolicyStatement:
        """ListBucket on the media bucket, for keys under prefixes only."""
        return iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[self.media_bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}},
        )

    def environment(self) -> dict[str, str]:
        return {
            "REELAY_MEDIA_STORE_URL": f"s3://{Aws.REGION}/{self.media_bucket.bucket_name}",
            "REELAY_UPLOAD_PREFIX": UPLOAD_PREFIX,
            "REELAY_OUTPUT_PREFIX": OUTPUT_PREFIX,
            "REELAY_PRIVATE_OUTPUT_PREFIX": PRIVATE_OUTPUT_PREFIX,
            "REELAY_PLAYBACK_BASE_URL": self.playback_base_url,
            "REELAY_DB_SECRET_ARN": self.db_secret.secret_arn,
            "REELAY_DB_NAME": self.config.db_name,
            "REELAY_DB_TLS": "true" if self.config.db_require_tls else "false",
            "REELAY_USER_POOL_ID": self.user_pool.user_pool_id,
            "REELAY_USER_POOL_CLIENT_ID": self.user_pool_client.user_pool_client_id,
            "REELAY_TRANSCODE_QUEUE_URL": self.transcode_queue.queue_url,
            "REELAY_EVENTS_TOPIC_ARN": self.events_topic.topic_arn,
            "REELAY_MAX_ATTEMPTS": str(self.config.max_receive_count),
            "REELAY_LEASE_SECONDS": str(self.config.worker_lease_seconds),
            # The API names KVS streams under it; the relay task's role may use no other stream.
            "REELAY_KVS_STREAM_PREFIX": self.config.kvs_prefix,
        }
