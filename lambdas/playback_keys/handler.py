"""Deploy-time custom resource (CDK Provider framework): the key pair that signs private playback.

Create and Update make sure the secret named by the ``SecretArn`` property holds an RSA-2048 private
key, making and storing one only if it holds none, and answer the public half as the ``PublicKey``
attribute, which the stack's CloudFront public key takes. A key already there is kept, so updates and
retries never replace the key in use. Delete leaves the secret alone (its own removal policy applies).
A failure raises, so the framework reports FAILED and CloudFormation rolls back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reelay.adapters.aws import client
from reelay.adapters.playback_key import ensure_key
from reelay.custom_resource import lambda_handler_for
from reelay.observability import logger

PHYSICAL_ID = "reelay-playback-signing-key"


def _ensure(request: str, properties: Mapping[str, Any]) -> dict[str, str]:
    secret_arn = properties.get("SecretArn")
    if not secret_arn:
        raise ValueError("the playback key resource needs a SecretArn property")
    key = ensure_key(client("secretsmanager"), secret_arn)
    logger.info("playback signing key ready", extra={"generated": key.generated, "request": request})
    return {"PublicKey": key.public_pem}


lambda_handler = lambda_handler_for(
    physical_id=PHYSICAL_ID, apply=_ensure, kept_on_delete="the playback signing key stays in its secret"
)
