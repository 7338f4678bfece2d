"""Deploy-time custom resource (CDK Provider framework): the key pair that signs private playback.

Create and Update make sure the secret named by the ``SecretArn`` property holds an RSA-2048 private
key, making and storing one only if it holds none, and answer the public half as the ``PublicKey``
attribute, which the stack's CloudFront public key takes. A key already there is kept, so updates and
retries never replace the key in use. Delete leaves the secret alone (its own removal policy applies).
A failure raises, so the framework reports FAILED and CloudFormation rolls back.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from reelay.adapters.aws import client
from reelay.adapters.playback_key import ensure_key
from reelay.observability import logger

PHYSICAL_ID = "reelay-playback-signing-key"


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = event.get("RequestType")
    physical_id = event.get("PhysicalResourceId") or PHYSICAL_ID
    if request == "Delete":
        logger.info("stack delete: the playback signing key stays in its secret")
        return {"PhysicalResourceId": physical_id}
    if request not in ("Create", "Update"):
        raise ValueError(f"unknown custom resource RequestType {request!r}")
    secret_arn = (event.get("ResourceProperties") or {}).get("SecretArn")
    if not secret_arn:
        raise ValueError("the playback key resource needs a SecretArn property")
    key = ensure_key(client("secretsmanager"), secret_arn)
    logger.info("playback signing key ready", extra={"generated": key.generated, "request": request})
    return {"PhysicalResourceId": physical_id, "Data": {"PublicKey": key.public_pem}}
