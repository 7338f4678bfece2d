from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.transcoder import Transcoder
from infra.environment import PlatformRefs


class TranscoderStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        refs: PlatformRefs,
        alarm_topic: sns.ITopic,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, description="Reelay: transcode worker on ECS Fargate", **kwargs)
        self.transcoder = Transcoder(self, "Transcoder", refs=refs, alarm_topic=alarm_topic)
