"""CloudFront signed URLs for private playback: the key read from Secrets Manager (moto) through the
wiring, a custom policy on the video's prefix wildcard, an RSA-SHA1 signature the public key verifies."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from urllib.parse import parse_qsl

import boto3
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from moto import mock_aws

from reelay.adapters.cloudfront_signing import CloudFrontPlaybackSigner
from reelay.playback import HmacPlaybackSigner, PlaybackUnavailable
from reelay.settings import Settings
from reelay.wiring import Services

BASE = "https://d111.cloudfront.net/private/outputs"
NOW = 1_800_000_000


def _b64(text: str) -> bytes:
    # CloudFront's URL-safe base64: + -> -, = -> _, / -> ~
    return base64.b64decode(text.replace("-", "+").replace("_", "=").replace("~", "/"))


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def secret_arn(key: rsa.RSAPrivateKey) -> Iterator[str]:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        yield client.create_secret(Name="reelay/playback-key", SecretString=pem(key))["ARN"]


def test_the_signature_covers_every_file_under_the_videos_prefix_until_it_expires(
    secret_arn: str, key: rsa.RSAPrivateKey
) -> None:
    # Given the API's wiring in AWS: the key pair id and the secret holding the private key
    settings = Settings(
        playback_signed_base_url=BASE,
        playback_key_pair_id="K2JCJMDEHXQW5F",
        playback_signing_secret_arn=secret_arn,
        playback_url_expires_seconds=3600,
    )
    signer = Services(settings).playback_signer
    assert isinstance(signer, CloudFrontPlaybackSigner) and signer.base_url == BASE
    signer._clock = lambda: NOW  # type: ignore[attr-defined]
    # When it signs a video
    query = dict(parse_qsl(signer.signed_query("vid123", 3600)))
    # Then the query is CloudFront's custom-policy form
    assert set(query) == {"Policy", "Signature", "Key-Pair-Id"} and query["Key-Pair-Id"] == "K2JCJMDEHXQW5F"
    policy = _b64(query["Policy"])
    statement = json.loads(policy)["Statement"][0]
    # scoped to the video's prefix (every playlist and segment), not the master alone, nor another video
    assert statement["Resource"] == f"{BASE}/vid123/*"
    assert statement["Condition"]["DateLessThan"]["AWS:EpochTime"] == NOW + 3600
    # and signed with the private key: the public key in the key group verifies it (raises if not)
    key.public_key().verify(_b64(query["Signature"]), policy, padding.PKCS1v15(), hashes.SHA1())


def test_a_secret_that_holds_no_key_makes_private_playback_unavailable_not_a_crash(secret_arn: str) -> None:
    # Given the secret still holds the placeholder the stack created (the key was never installed)
    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId=secret_arn, SecretString="placeholder: run python -m infra.playback_keys"
    )
    settings = Settings(
        playback_signed_base_url=BASE, playback_key_pair_id="K1", playback_signing_secret_arn=secret_arn
    )
    # Then signing says what is wrong, as a 503, naming no secret
    with pytest.raises(PlaybackUnavailable, match="signing key is not installed") as caught:
        Services(settings).playback_signer.signed_query("vid123", 60)
    assert caught.value.status == 503 and secret_arn not in caught.value.message


def test_an_unreadable_secret_makes_private_playback_unavailable() -> None:
    with mock_aws():
        settings = Settings(
            playback_key_pair_id="K1",
            playback_signing_secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf",
        )
        with pytest.raises(PlaybackUnavailable, match="cannot be read"):
            Services(settings).playback_signer.signed_query("vid123", 60)


def test_without_cloudfront_settings_the_local_hmac_signer_is_used() -> None:
    signer = Services(Settings(file_store_signing_key="k" * 32)).playback_signer
    assert isinstance(signer, HmacPlaybackSigner)
    assert set(dict(parse_qsl(signer.signed_query("v1", 60)))) == {"exp", "sig"}
