"""The playback signing key pair, kept in Secrets Manager (the deploy-time key maker's adapter).

The private half is a PEM in the stack's PlaybackSigningKey secret, which the API signs private
playback with (reelay.adapters.cloudfront_signing); the public half is derived from it for
CloudFront's key group. ``ensure_key`` keeps a valid key already in the secret and makes one only
when there is none (the secret's generated placeholder, an empty or unreadable value), so running
it again, or on a stack whose operator put a key by hand, never replaces a key in use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_SIZE = 2048  # CloudFront takes RSA 2048-bit keys only


@dataclass(frozen=True)
class PlaybackKey:
    public_pem: str
    generated: bool  # False when the secret already held a valid key


def public_pem(private_pem: str) -> str | None:
    """The SubjectPublicKeyInfo PEM of an unencrypted RSA-2048 private key PEM; None for anything else."""
    try:
        key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    except (ValueError, TypeError):
        return None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != KEY_SIZE:
        return None
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def new_private_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _current(secrets: Any, secret_arn: str) -> str:
    try:
        answer = secrets.get_secret_value(SecretId=secret_arn)
    except secrets.exceptions.ResourceNotFoundException:
        # No current value yet; were the secret itself missing, the put that follows says so.
        return ""
    return str(answer.get("SecretString") or "")


def ensure_key(secrets: Any, secret_arn: str) -> PlaybackKey:
    """The secret's key pair, made and stored first if the secret holds no valid private key."""
    found = public_pem(_current(secrets, secret_arn))
    if found is not None:
        return PlaybackKey(found, generated=False)
    private = new_private_pem()
    secrets.put_secret_value(SecretId=secret_arn, SecretString=private)
    derived = public_pem(private)
    assert derived is not None  # a key made just above
    return PlaybackKey(derived, generated=True)


__all__ = ["KEY_SIZE", "PlaybackKey", "ensure_key", "new_private_pem", "public_pem"]
