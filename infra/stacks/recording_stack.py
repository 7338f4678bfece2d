from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.constructs.recording import Recording
from infra.environment import PlatformRefs


class RecordingStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        refs: PlatformRefs,
        cluster: ecs.ICluster,
        stream_secret: secretsmanager.ISecret | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description="Reelay: recording finalize/fixup workflow (Step Functions)",
            **kwargs,
        )
        self.recording = Recording(self, "Recording", refs=refs, cluster=cluster, stream_secret=stream_secret)
