from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_rds as rds
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.dashboard import OperationsDashboard


class MonitoringStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        api: apigw.RestApi,
        functions: Sequence[lambda_.IFunction],
        queue: sqs.IQueue,
        dead_letters: sqs.IQueue,
        service: ecs.FargateService,
        database: rds.IDatabaseInstance,
        alarm_topic: sns.ITopic,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, description="Reelay: dashboard and API alarms", **kwargs)
        self.operations = OperationsDashboard(
            self,
            "Operations",
            stage=stage,
            api=api,
            functions=functions,
            queue=queue,
            dead_letters=dead_letters,
            service=service,
            database=database,
            alarm_topic=alarm_topic,
        )
