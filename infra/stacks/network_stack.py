from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from constructs import Construct

from infra.config import ReelayConfig
from infra.constructs.network import Network


class NetworkStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: ReelayConfig, **kwargs: Any) -> None:
        super().__init__(
            scope, construct_id, description="Reelay: VPC, subnets, endpoints, flow logs", **kwargs
        )
        self.network = Network(self, "Network", config=config)
        self.vpc = self.network.vpc
