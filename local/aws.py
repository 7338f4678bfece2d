"""The AWS APIs, emulated by moto's server, and the resources the real stack would create.

moto keeps nothing across restarts, so everything is provisioned at every start. Provisioning
is infrastructure (what CDK does in AWS), so it talks to boto3 directly.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

import boto3
from moto.server import ThreadedMotoServer

from reelay.adapters.sqs import SqsQueue

log = logging.getLogger(__name__)

# Same as the deployed user pool (infra/constructs/user_pool.py): email is the username.
PASSWORD_POLICY = {
    "MinimumLength": 12,
    "RequireUppercase": True,
    "RequireLowercase": True,
    "RequireNumbers": True,
    "RequireSymbols": True,
    "TemporaryPasswordValidityDays": 3,
}


@dataclass(frozen=True)
class AwsResources:
    endpoint_url: str
    region: str
    user_pool_id: str
    user_pool_client_id: str
    transcode_queue_url: str
    dead_letter_queue_url: str
    events_topic_arn: str

    @property
    def jwks_url(self) -> str:
        return f"{self.endpoint_url}/{self.user_pool_id}/.well-known/jwks.json"

    @property
    def issuer(self) -> str:
        # moto signs tokens with the real Cognito issuer, not its own endpoint.
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.user_pool_id}"


class MotoServer:
    """moto's threaded server on one interface; port 0 picks a free port."""

    def __init__(self, host: str, port: int) -> None:
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self.url = ""

    def start(self) -> str:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self.url

    def stop(self) -> None:
        self._server.stop()


def client(service: str, endpoint_url: str, region: str):
    return boto3.client(service, endpoint_url=endpoint_url, region_name=region)


def provision(endpoint_url: str, region: str, *, max_attempts: int, visibility_seconds: int) -> AwsResources:
    """Create the user pool, the transcode queue with its DLQ, and the events topic."""
    idp = client("cognito-idp", endpoint_url, region)
    pool = idp.create_user_pool(
        PoolName="reelay-users",
        Policies={"PasswordPolicy": PASSWORD_POLICY},
        UsernameAttributes=["email"],
        AutoVerifiedAttributes=["email"],
        Schema=[{"Name": "email", "AttributeDataType": "String", "Required": True, "Mutable": True}],
    )["UserPool"]
    app_client = idp.create_user_pool_client(
        UserPoolId=pool["Id"],
        ClientName="reelay-web",
        GenerateSecret=False,
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]

    sqs = client("sqs", endpoint_url, region)
    dlq_url = sqs.create_queue(QueueName="reelay-transcode-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName="reelay-transcode",
        Attributes={
            "VisibilityTimeout": str(visibility_seconds),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_attempts)}
            ),
        },
    )["QueueUrl"]

    topic_arn = client("sns", endpoint_url, region).create_topic(Name="reelay-events")["TopicArn"]
    res = AwsResources(
        endpoint_url=endpoint_url,
        region=region,
        user_pool_id=pool["Id"],
        user_pool_client_id=app_client["ClientId"],
        transcode_queue_url=queue_url,
        dead_letter_queue_url=dlq_url,
        events_topic_arn=topic_arn,
    )
    log.info("provisioned AWS resources in moto: %s", asdict(res))
    return res


class SqsRecords:
    """Receives from one queue as Lambda SQS event records (``SqsQueue.poll_records``), for SqsEventSource."""

    def __init__(self, endpoint_url: str, region: str, queue_url: str, *, wait_seconds: int = 2) -> None:
        self._queue = SqsQueue(queue_url, client("sqs", endpoint_url, region))
        self._wait = wait_seconds

    def poll(self) -> list[dict]:
        return self._queue.poll_records(max_messages=10, wait_seconds=self._wait)

    def delete(self, records: list[dict]) -> None:
        for record in records:
            self._queue.delete(record["receiptHandle"])
