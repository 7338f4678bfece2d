"""Temporary credentials for the KVS stand-in: issued with a TTL, served like ECS serves a task role's,
and checked on every request (by the SigV4 key id and session token; signatures are not verified).

Like the ECS agent, the issuer hands out the same key until half its lifetime has passed, then a new one,
so a client that refreshes in time never holds an expired key.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")


class Forbidden(Exception):
    """The request's credentials are unknown, expired or revoked (HTTP 403)."""


@dataclass
class IssuedKey:
    access_key_id: str
    secret_access_key: str
    session_token: str
    issued_at: float
    expires_at: float
    revoked: bool = False

    def container_json(self) -> dict[str, Any]:
        """The ECS container-credentials document botocore's ContainerProvider reads."""
        expiry = datetime.fromtimestamp(self.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.session_token,
            "Expiration": expiry,
            "RoleArn": "arn:aws:iam::000000000000:role/reelay-local-relay",
        }


class CredentialIssuer:
    def __init__(self, ttl_seconds: float = 3600, *, clock: Callable[[], float] = time.time) -> None:
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._keys: dict[str, IssuedKey] = {}
        self._current: IssuedKey | None = None
        self._lock = threading.Lock()

    def current(self) -> IssuedKey:
        """The key to hand out now: the latest, or a new one once it is past half its life."""
        with self._lock:
            now = self._clock()
            key = self._current
            if key is None or key.revoked or now >= key.issued_at + (key.expires_at - key.issued_at) / 2:
                key = self._issue(now)
            return key

    def _issue(self, now: float) -> IssuedKey:
        # Whole-second expiries: the ECS document and kvssink's file both carry seconds.
        expires = float(int(now + self.ttl_seconds))
        key = IssuedKey(
            access_key_id="ASIA" + secrets.token_hex(8).upper(),
            secret_access_key=secrets.token_urlsafe(30),
            session_token=secrets.token_urlsafe(48),
            issued_at=now,
            expires_at=expires,
        )
        self._keys[key.access_key_id] = key
        self._current = key
        return key

    def check(self, authorization: str | None, session_token: str | None) -> str:
        """The request's key id if it may pass; raises Forbidden otherwise."""
        match = _CREDENTIAL.search(authorization or "")
        if not match:
            raise Forbidden("MissingAuthenticationTokenException: no SigV4 credential")
        key_id = match.group(1)
        with self._lock:
            key = self._keys.get(key_id)
            if key is None:
                raise Forbidden(f"UnrecognizedClientException: unknown key {key_id}")
            if key.revoked:
                raise Forbidden(f"UnrecognizedClientException: revoked key {key_id}")
            if self._clock() >= key.expires_at:
                raise Forbidden(f"ExpiredTokenException: key {key_id} expired")
            if session_token != key.session_token:
                raise Forbidden(f"UnrecognizedClientException: wrong session token for {key_id}")
        return key_id

    def is_valid(self, key_id: str) -> bool:
        with self._lock:
            key = self._keys.get(key_id)
            return key is not None and not key.revoked and self._clock() < key.expires_at

    def expire(self, access_key_id: str | None = None) -> list[str]:
        """Make one key (or every key) expire now. Returns the key ids touched."""
        return self._mark(access_key_id, lambda k: setattr(k, "expires_at", min(k.expires_at, self._clock())))

    def revoke(self, access_key_id: str | None = None) -> list[str]:
        return self._mark(access_key_id, lambda k: setattr(k, "revoked", True))

    def _mark(self, access_key_id: str | None, change: Callable[[IssuedKey], None]) -> list[str]:
        with self._lock:
            keys = [self._keys[access_key_id]] if access_key_id else list(self._keys.values())
            for key in keys:
                change(key)
            return [k.access_key_id for k in keys]
