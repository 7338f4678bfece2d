"""CloudFront signed URLs for private playback (reelay.playback explains the scheme).

The private key is the PEM in a Secrets Manager secret, read with Powertools parameters and cached
(``max_age``); the public key is a CloudFront PublicKey in the key group that the distribution's
signed path trusts (infra/constructs/media_storage.py). botocore and cryptography are imported on
the first signature, not with this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger

from reelay.errors import InvalidInput
from reelay.playback import PlaybackUnavailable

logger = Logger(child=True)


class CloudFrontPlaybackSigner:
    """A PlaybackSigner: a custom policy on ``{base_url}/{videoId}/*``, signed with RSA-SHA1."""

    def __init__(
        self,
        base_url: str,
        key_pair_id: str,
        private_key_pem: Callable[[], str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not base_url or not key_pair_id:
            raise InvalidInput("CloudFront signing needs the signed base URL and the public key's id")
        self.base_url = base_url.rstrip("/")
        self.key_pair_id = key_pair_id
        self._private_key_pem = private_key_pem
        self._clock = clock

    def _rsa_signer(self) -> Callable[[bytes], bytes]:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        try:
            key: Any = serialization.load_pem_private_key(self._private_key_pem().encode(), password=None)
        except PlaybackUnavailable:
            raise
        except Exception as exc:  # a missing, unreadable or placeholder secret
            logger.error("playback signing key unusable", extra={"error": type(exc).__name__})
            raise PlaybackUnavailable(
                "private playback is not available: the signing key is not installed"
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise PlaybackUnavailable("private playback is not available: the signing key is not an RSA key")
        return lambda message: key.sign(message, padding.PKCS1v15(), hashes.SHA1())

    def signed_query(self, video_id: str, expires_in: int) -> str:
        from botocore.signers import CloudFrontSigner

        signer = CloudFrontSigner(self.key_pair_id, self._rsa_signer())
        expires = datetime.fromtimestamp(int(self._clock()) + expires_in, UTC)
        prefix = f"{self.base_url}/{video_id}/"
        policy = signer.build_policy(f"{prefix}*", expires)
        url = signer.generate_presigned_url(f"{prefix}master.m3u8", policy=policy)
        return urlsplit(url).query


def secret_pem(
    secret_arn: str, *, endpoint_url: str | None, region: str | None, max_age: int
) -> Callable[[], str]:
    """Reads the PEM from Secrets Manager through Powertools parameters (cached ``max_age`` seconds)."""

    providers: list[Any] = []  # one provider, so its cache lasts across calls

    def read() -> str:
        from reelay.catalogue.connection import default_secrets_provider

        try:
            if not providers:
                providers.append(default_secrets_provider(endpoint_url=endpoint_url, region=region))
            return str(providers[0].get(secret_arn, max_age=max_age))
        except Exception as exc:
            logger.error("playback signing key unreadable", extra={"error": type(exc).__name__})
            raise PlaybackUnavailable(
                "private playback is not available: the signing key cannot be read"
            ) from None

    return read


__all__ = ["CloudFrontPlaybackSigner", "secret_pem"]
