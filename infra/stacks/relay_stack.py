from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.relay import Relay
from infra.environment import PlatformRefs


class RelayStack(Stack):
    """Live relay tasks on a cluster of their own, their reconciler and alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        refs: PlatformRefs,
        alarm_topic: sns.ITopic,
        stream_secret: secretsmanager.ISecret | None = None,
        **kwargs: Any,
    ) -> None:
        description = "Reelay: live relay tasks on ECS Fargate and their reconciler"
        super().__init__(scope, construct_id, description=description, **kwargs)
        self.relay = Relay(self, "Relay", refs=refs, alarm_topic=alarm_topic, stream_secret=stream_secret)
        CfnOutput(self, "RelayTaskDefinitionArn", value=self.relay.task.task_definition_arn)
        CfnOutput(self, "KvsStreamPrefix", value=self.relay.kvs_prefix)
