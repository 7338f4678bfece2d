"""The deploy-time key maker (lambdas.playback_keys): Create stores an RSA-2048 private key in the
playback secret and answers its public half; Update and retries keep a valid key, replacing only a
placeholder or garbage; Delete touches nothing; an unknown request fails with a reason. Secrets
Manager is moto's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from moto import mock_aws

from lambdas.playback_keys.handler import PHYSICAL_ID, lambda_handler
from reelay.adapters import aws
from reelay.settings import get_settings
from tests.fakes import FakeLambdaContext

REGION = "us-east-1"


@pytest.fixture
def secret() -> Iterator[tuple[Any, str]]:
    aws.clear_cache()
    get_settings.cache_clear()
    with mock_aws():
        client = boto3.client("secretsmanager", region_name=REGION)
        # As the stack makes it: a generated 32-character placeholder until a key is put.
        arn = client.create_secret(
            Name="reelay-test-playback", SecretString="Ab3dEfGh1jKlMn0pQrStUvWxYz012345"
        )["ARN"]
        yield client, arn
    aws.clear_cache()


def _event(request: str, arn: str, physical_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "RequestType": request,
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:x",
            "SecretArn": arn,
        },
    }
    if physical_id:
        event["PhysicalResourceId"] = physical_id
    return event


def _stored(client: Any, arn: str) -> str:
    return str(client.get_secret_value(SecretId=arn)["SecretString"])


def _versions(client: Any, arn: str) -> int:
    return len(client.list_secret_version_ids(SecretId=arn)["Versions"])


def _assert_pair(private_pem: str, public_pem: str) -> None:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    signature = key.sign(b"policy", padding.PKCS1v15(), hashes.SHA1())
    public = serialization.load_pem_public_key(public_pem.encode())
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(signature, b"policy", padding.PKCS1v15(), hashes.SHA1())  # raises if not the pair
    assert public_pem.startswith("-----BEGIN PUBLIC KEY-----")  # what CloudFront's EncodedKey takes


def test_create_stores_a_private_key_and_answers_its_public_half(secret) -> None:
    client, arn = secret
    answer = lambda_handler(_event("Create", arn), FakeLambdaContext())
    assert answer["PhysicalResourceId"] == PHYSICAL_ID
    assert set(answer["Data"]) == {"PublicKey"}  # the private half never leaves the secret
    _assert_pair(_stored(client, arn), answer["Data"]["PublicKey"])


def test_update_and_retries_keep_the_key_in_the_secret(secret) -> None:
    client, arn = secret
    created = lambda_handler(_event("Create", arn), FakeLambdaContext())
    private = _stored(client, arn)
    versions = _versions(client, arn)
    for request in ("Update", "Create"):  # a stack update, and a retried create
        again = lambda_handler(_event(request, arn, PHYSICAL_ID), FakeLambdaContext())
        assert again == created
        assert _stored(client, arn) == private and _versions(client, arn) == versions


def test_a_key_put_by_hand_is_kept(secret) -> None:
    # A stack whose operator put a key with python -m infra.playback_keys before the key maker existed
    client, arn = secret
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    client.put_secret_value(SecretId=arn, SecretString=pem)
    answer = lambda_handler(_event("Create", arn), FakeLambdaContext())
    assert _stored(client, arn) == pem
    _assert_pair(pem, answer["Data"]["PublicKey"])


@pytest.mark.parametrize(
    "value",
    [
        " ",
        "not a key",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "small",  # replaced below by an RSA-1024 key, which CloudFront refuses
    ],
)
def test_update_over_an_empty_garbage_or_unusable_secret_makes_a_new_key(secret, value) -> None:
    client, arn = secret
    if value == "small":
        value = (
            rsa.generate_private_key(public_exponent=65537, key_size=1024)
            .private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            .decode()
        )
    client.put_secret_value(SecretId=arn, SecretString=value)
    answer = lambda_handler(_event("Update", arn, PHYSICAL_ID), FakeLambdaContext())
    stored = _stored(client, arn)
    assert stored != value
    _assert_pair(stored, answer["Data"]["PublicKey"])


def test_delete_touches_nothing(secret) -> None:
    client, arn = secret
    lambda_handler(_event("Create", arn), FakeLambdaContext())
    private, versions = _stored(client, arn), _versions(client, arn)
    answer = lambda_handler(_event("Delete", arn, PHYSICAL_ID), FakeLambdaContext())
    assert answer == {"PhysicalResourceId": PHYSICAL_ID}
    assert _stored(client, arn) == private and _versions(client, arn) == versions


def test_an_unknown_request_or_a_missing_secret_fails_with_a_reason(secret) -> None:
    client, arn = secret
    with pytest.raises(ValueError, match="unknown custom resource RequestType 'Replace'"):
        lambda_handler(_event("Replace", arn), FakeLambdaContext())
    with pytest.raises(ValueError, match="needs a SecretArn property"):
        lambda_handler({"RequestType": "Create", "ResourceProperties": {}}, FakeLambdaContext())
    # A secret that does not exist is AWS's error, not a key made and lost
    with pytest.raises(ClientError, match=r"ResourceNotFoundException.*PutSecretValue"):
        lambda_handler(
            _event("Create", arn.replace("reelay-test-playback", "reelay-nowhere")), FakeLambdaContext()
        )
    assert _stored(client, arn).startswith("Ab3d")  # and the real secret was not touched
