"""Messaging: the transcode queue and its DLQ, the events topic, and the upload trigger."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import ReelayConfig
from infra.constants import EVENT_VIDEO_FAILED, EVENT_VIDEO_READY
from infra.nag import acknowledge


def topic_key(scope: Construct, description: str) -> kms.Key:
    """A rotated customer key for one SNS topic, removed with the stack."""
    return kms.Key(
        scope, "Key", description=description, enable_key_rotation=True, removal_policy=RemovalPolicy.DESTROY
    )


class TranscodeQueue(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: ReelayConfig) -> None:
        super().__init__(scope, construct_id)
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            # Six times the dead-jobs function timeout, as Lambda's SQS event source advises.
            visibility_timeout=Duration.minutes(6),
        )
        acknowledge(
            self.dead_letters,
            "AwsSolutions-SQS3",
            "This is the dead-letter queue of the transcode queue; a DLQ of a DLQ adds nothing.",
        )
        self.queue = sqs.Queue(
            self,
            "Jobs",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            # Longer than the worker's lease: a message reappears only after its lease has expired.
            visibility_timeout=Duration.seconds(config.transcode_queue_visibility_seconds),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letters, max_receive_count=config.max_receive_count
            ),
        )


class EventsTopic(Construct):
    """video.ready / video.failed notifications for integrators."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.key = topic_key(self, "Encrypts the Reelay events topic")
        self.topic = sns.Topic(
            self,
            "Events",
            display_name=f"Reelay video events ({EVENT_VIDEO_READY}, {EVENT_VIDEO_FAILED})",
            master_key=self.key,
            enforce_ssl=True,
        )


class AlarmTopic(Construct):
    """Where every Reelay alarm goes; CloudWatch must be able to use the topic's key."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.key = topic_key(self, "Encrypts the Reelay alarm topic")
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # "*" in a key policy means this key
            )
        )
        self.topic = sns.Topic(
            self, "Alarms", display_name="Reelay alarms", master_key=self.key, enforce_ssl=True
        )
