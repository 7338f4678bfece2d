"""Users that survive a restart of the local platform.

moto keeps nothing across restarts, so without this a user signing up again after one got a new user
id (Cognito's ``sub``), and every video they owned answered 403. ``DurableUsers`` records each user in
the state directory: their email, their sub, a scrypt hash of their password (never the password),
whether they confirmed, and the groups their last ID token listed. After a restart, the first login
with the right password re-creates the user in moto with the same sub and groups, then logs in: the
same login owns the same videos. Signing up again with a recorded email is refused as Cognito would
(the email is taken).

moto issues every user a random sub and offers no API to choose one, so the restore sets it on moto's
in-process user model (moto's server runs in this process under ``make up``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
from pathlib import Path
from typing import Any

import jwt

from reelay.errors import AuthError
from reelay.ports import IdentityProvider, Tokens

log = logging.getLogger(__name__)

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def _key(email: str) -> str:
    return email.strip().lower() if isinstance(email, str) else ""


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)  # type: ignore[arg-type]
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
        if scheme != "scrypt" or not isinstance(password, str):
            return False
        again = hash_password(password, base64.b64decode(salt)).split("$")[2]
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(again, digest)


class DurableUsers:
    """An IdentityProvider over moto's user pool that records users in ``users_file`` and restores
    them into moto, with their sub, on their first login after a restart."""

    def __init__(self, inner: IdentityProvider, users_file: Path, *, idp: Any, user_pool_id: str) -> None:
        self._inner = inner
        self._file = users_file
        self._idp = idp  # boto3 cognito-idp client on moto
        self._pool_id = user_pool_id
        self._lock = threading.Lock()
        self._users: dict[str, dict[str, Any]] = self._load()

    # --- the port ----------------------------------------------------------------------------
    def register(self, email: str, password: str) -> str:
        with self._lock:
            known = self._users.get(_key(email))
        if known is not None and not self._in_moto(email):
            raise AuthError("email_taken", "an account with this email already exists", 409)
        sub = self._inner.register(email, password)
        self._record(email, sub=sub, password=password, confirmed=False)
        return sub

    def confirm(self, email: str, code: str) -> None:
        self._inner.confirm(email, code)
        with self._lock:
            user = self._users.get(_key(email))
            if user is not None:
                user["confirmed"] = True
                self._save()

    def resend_code(self, email: str) -> None:
        self._inner.resend_code(email)

    def login(self, email: str, password: str) -> Tokens:
        with self._lock:
            known = dict(self._users.get(_key(email)) or {})
        if known and not self._in_moto(email):
            if not check_password(password, known.get("passwordHash", "")):
                raise AuthError("invalid_credentials", "the email or password is wrong", 401)
            self._restore(email, password, known)
        tokens = self._inner.login(email, password)
        self._record(email, sub=None, password=password, confirmed=True, groups=_groups(tokens.id_token))
        return tokens

    def refresh(self, refresh_token: str) -> Tokens:
        return self._inner.refresh(refresh_token)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    # --- restore -----------------------------------------------------------------------------
    def _in_moto(self, email: str) -> bool:
        try:
            self._idp.admin_get_user(UserPoolId=self._pool_id, Username=email.strip())
        except self._idp.exceptions.UserNotFoundException:
            return False
        return True

    def _restore(self, email: str, password: str, user: dict[str, Any]) -> None:
        email = email.strip()
        self._idp.admin_create_user(
            UserPoolId=self._pool_id,
            Username=email,
            UserAttributes=[
                {"Name": "email", "Value": email},
                {"Name": "email_verified", "Value": "true"},
            ],
            MessageAction="SUPPRESS",
        )
        self._idp.admin_set_user_password(
            UserPoolId=self._pool_id, Username=email, Password=password, Permanent=True
        )
        for group in user.get("groups", []):
            with contextlib.suppress(self._idp.exceptions.GroupExistsException):
                self._idp.create_group(UserPoolId=self._pool_id, GroupName=group)
            self._idp.admin_add_user_to_group(UserPoolId=self._pool_id, Username=email, GroupName=group)
        _set_moto_sub(self._pool_id, email, user["sub"])
        log.info("restored user %s into the local user pool with their user id %s", email, user["sub"])

    # --- the file ----------------------------------------------------------------------------
    def _record(
        self, email: str, *, sub: str | None, password: str, confirmed: bool, groups: list[str] | None = None
    ) -> None:
        with self._lock:
            user = self._users.setdefault(_key(email), {})
            if sub is not None:
                user["sub"] = sub
            if "sub" not in user:  # a user from before this file existed: take moto's
                user["sub"] = self._moto_sub(email)
            if not check_password(password, user.get("passwordHash", "")):
                user["passwordHash"] = hash_password(password)
            user["confirmed"] = bool(user.get("confirmed")) or confirmed
            if groups is not None:
                user["groups"] = groups
            self._save()

    def _moto_sub(self, email: str) -> str:
        resp = self._idp.admin_get_user(UserPoolId=self._pool_id, Username=email.strip())
        return next(a["Value"] for a in resp["UserAttributes"] if a["Name"] == "sub")

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self._file.read_text())
        except FileNotFoundError:
            return {}
        except ValueError:
            log.warning("%s is not JSON: starting with no recorded users", self._file)
            return {}
        # Only confirmed users come back: a sign-up never confirmed is forgotten with its code.
        return {
            k: v
            for k, v in data.items()
            if isinstance(v, dict) and isinstance(v.get("sub"), str) and v.get("confirmed") is True
        }

    def _save(self) -> None:
        tmp = self._file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self._users, f, indent=2)
        tmp.replace(self._file)


def _groups(id_token: str) -> list[str]:
    try:
        claims = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return []
    groups = claims.get("cognito:groups") or []
    return [g for g in groups if isinstance(g, str)] if isinstance(groups, list) else []


def _set_moto_sub(pool_id: str, email: str, sub: str) -> None:
    """Give the moto user ``email`` the user id ``sub`` (moto picks a random one and has no API for it)."""
    from moto.cognitoidp.models import cognitoidp_backends
    from moto.core import DEFAULT_ACCOUNT_ID

    region = pool_id.split("_", 1)[0]
    pool = cognitoidp_backends[DEFAULT_ACCOUNT_ID][region].user_pools[pool_id]
    user = pool._get_user(email)
    old_username, old_id = user.username, user.id
    pool.users.pop(old_username, None)
    if old_username == old_id:  # a pool whose username is the email names its users by their sub
        user.username = sub
    user.id = sub
    user.update_attributes([{"Name": "sub", "Value": sub}])
    pool.users[user.username] = user
