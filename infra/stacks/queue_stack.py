from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import ReelayConfig
from infra.constructs.messaging import AlarmTopic, EventsTopic, TranscodeQueue
from infra.constructs.upload_trigger import UploadTrigger
from infra.environment import PlatformRefs


class QueueStack(Stack):
    """The transcode queue and DLQ, the events and alarm topics, and the upload trigger."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ReelayConfig,
        refs: Callable[[sqs.IQueue, sqs.IQueue, sns.ITopic], PlatformRefs],
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope, construct_id, description="Reelay: transcode queue, topics, upload trigger", **kwargs
        )
        self.transcode = TranscodeQueue(self, "Transcode", config=config)
        self.events = EventsTopic(self, "Events")
        self.alarms = AlarmTopic(self, "Alarms")
        if config.alarm_email:
            self.alarms.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        self.refs = refs(self.transcode.queue, self.transcode.dead_letters, self.events.topic)
        self.upload_trigger = UploadTrigger(self, "Uploads", refs=self.refs, alarm_topic=self.alarms.topic)
        CfnOutput(self, "TranscodeQueueUrl", value=self.transcode.queue.queue_url)
        CfnOutput(self, "EventsTopicArn", value=self.events.topic.topic_arn)
