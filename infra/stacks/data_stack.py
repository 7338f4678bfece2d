from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from infra.config import ReelayConfig
from infra.constructs.database import CatalogueDatabase


class DataStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ReelayConfig,
        vpc: ec2.IVpc,
        secrets_endpoint: ec2.IInterfaceVpcEndpoint,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope, construct_id, description="Reelay: catalogue database and migrations", **kwargs
        )
        self.database = CatalogueDatabase(
            self, "Catalogue", config=config, vpc=vpc, secrets_endpoint=secrets_endpoint
        )
        # Stacks deployed before the application user imported the master secret's ARN. Keep that
        # export until every stage has deployed once with the app secret: CloudFormation refuses to
        # delete an export that another stack still imports.
        self.export_value(self.database.master_secret.secret_arn)
