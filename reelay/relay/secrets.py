"""Source secrets at rest: camera passwords, SRT passphrases and tokens, encrypted with Fernet.

The keys come from settings: ``REELAY_STREAM_SECRET_KEYS`` (locally: comma-separated), or in AWS a
Secrets Manager secret (``REELAY_STREAM_SECRET_ARN``) read through Powertools parameters, whose value
is the same comma-separated list. Each entry is a passphrase of at least 32 characters; the Fernet key
is derived from it with HKDF-SHA256, so a generated password is a valid key. The first key encrypts,
every key decrypts: put a new key first to rotate, and drop the old one once nothing uses it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from reelay.errors import ReelayError

MIN_KEY_CHARS = 32
_INFO = b"reelay stream source secrets v1"


class SecretsUnavailable(ReelayError):
    """No key is configured, or none of the keys opens a stored secret: the deployment's fault, so the
    API answers 503 with this message (it names no secret), not a bare 500."""

    code = "secrets_unavailable"
    status = 503


def derive_key(passphrase: str) -> bytes:
    """A Fernet key from a long random passphrase (HKDF-SHA256, fixed info; no salt needed for one)."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(passphrase.encode())
    return base64.urlsafe_b64encode(raw)


def parse_keys(text: str | None) -> list[str]:
    keys = [k.strip() for k in (text or "").split(",") if k.strip()]
    short = [k for k in keys if len(k) < MIN_KEY_CHARS]
    if short:
        raise SecretsUnavailable(f"every stream secret key must be at least {MIN_KEY_CHARS} characters")
    return keys


class SourceSecrets:
    """Seals a source's secrets (a small dict) into one ASCII token, and opens it again."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._fernet = MultiFernet([Fernet(derive_key(k)) for k in keys]) if keys else None
        self._first = keys[0] if keys else None

    def derive(self, purpose: str) -> str:
        """A secret of its own for ``purpose`` (a stream's webhook signing secret, the live playlist
        token key), HMAC-SHA256 of the purpose under the first key: stable while that key is first,
        and never the key itself. Rotating the first key changes every derived secret."""
        if self._first is None:
            self._require()
        assert self._first is not None
        return hmac.new(
            self._first.encode(), f"reelay derived v1:{purpose}".encode(), hashlib.sha256
        ).hexdigest()

    def seal(self, secrets: Mapping[str, str]) -> str | None:
        """The ciphertext to store; None when there is nothing secret."""
        if not secrets:
            return None
        data = json.dumps(dict(secrets), separators=(",", ":"), sort_keys=True).encode()
        return self._require().encrypt(data).decode("ascii")

    def open(self, token: str | None) -> dict[str, str]:
        if token is None:
            return {}
        try:
            return dict(json.loads(self._require().decrypt(token.encode("ascii"))))
        except InvalidToken:
            raise SecretsUnavailable("no configured key opens this stream's source secret") from None

    def _require(self) -> MultiFernet:
        if self._fernet is None:
            raise SecretsUnavailable(
                "no stream secret key: set REELAY_STREAM_SECRET_KEYS or REELAY_STREAM_SECRET_ARN"
            )
        return self._fernet
