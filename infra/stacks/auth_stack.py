from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra.config import ReelayConfig
from infra.constructs.user_pool import UserPool, ses_email


class AuthStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: ReelayConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, description="Reelay: Cognito user pool", **kwargs)
        email = ses_email(
            config.ses_from_email, from_name=config.ses_from_name, region=config.ses_region or config.region
        )
        self.users = UserPool(self, "Users", stage=config.stage, email=email)
        CfnOutput(self, "UserPoolId", value=self.users.pool.user_pool_id)
        CfnOutput(self, "UserPoolClientId", value=self.users.client.user_pool_client_id)
