from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra.constructs.api import RestApi
from infra.environment import PlatformRefs


class ApiStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, refs: PlatformRefs, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, description="Reelay: REST API from the route table", **kwargs)
        self.rest = RestApi(self, "Rest", refs=refs)
        CfnOutput(self, "ApiUrl", value=self.rest.api.url)
