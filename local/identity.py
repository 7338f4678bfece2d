"""Sign-up codes for the local platform, where there is no email.

moto's ``confirm_sign_up`` accepts any code, so this wrapper issues the codes itself: it prints
and logs them, keeps them in memory and in the state directory, and checks them before it lets
the real identity provider confirm the user.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

from reelay.errors import AuthError
from reelay.ports import IdentityProvider, Tokens

log = logging.getLogger(__name__)


def _key(email: str) -> str:
    return email.strip().lower()


class LocalConfirmationIdentity:
    """An IdentityProvider that issues and checks its own sign-up confirmation codes."""

    def __init__(
        self, inner: IdentityProvider, codes_file: Path, *, announce: Callable[[str], None] = print
    ) -> None:
        self._inner = inner
        self._file = codes_file
        self._announce = announce
        self._lock = threading.Lock()
        # Users live in moto and die with it: codes from an earlier run are meaningless.
        self._pending: dict[str, str] = {}
        self._confirmed: set[str] = set()
        self._save()

    def register(self, email: str, password: str) -> str:
        user_id = self._inner.register(email, password)
        self._issue(email)
        return user_id

    def resend_code(self, email: str) -> None:
        # Not forwarded: moto has no ResendConfirmationCode, and the code is ours anyway.
        try:
            self._expected(email)
        except AuthError as e:
            if e.code != "user_not_found":
                raise
            # The deployed app client prevents user existence errors: Cognito answers as if it sent one.
            log.info("resend-code for %s, which has no account waiting; answered as sent", email.strip())
            return
        self._issue(email)

    def confirm(self, email: str, code: str) -> None:
        try:
            expected = self._expected(email)
        except AuthError as e:
            if e.code != "user_not_found":
                raise
            # What Cognito says then, with user existence errors prevented: the code does not match.
            raise AuthError("invalid_code", "the confirmation code is wrong", 400) from None
        if not isinstance(code, str) or not secrets.compare_digest(code.strip().encode(), expected.encode()):
            raise AuthError("invalid_code", "the confirmation code is wrong", 400)
        self._inner.confirm(email, code)
        with self._lock:
            self._pending.pop(_key(email), None)
            self._confirmed.add(_key(email))
            self._save()

    def _expected(self, email: str) -> str:
        """The pending code, or the error Cognito gives for a user with nothing to confirm."""
        with self._lock:
            expected = self._pending.get(_key(email))
            confirmed = _key(email) in self._confirmed
        if expected is not None:
            return expected
        if confirmed:
            raise AuthError("already_confirmed", "this account is already confirmed", 409)
        raise AuthError("user_not_found", "no account with this email is waiting for confirmation", 404)

    def login(self, email: str, password: str) -> Tokens:
        # The password is checked first (moto, like Cognito, refuses a wrong one with 401 before it
        # looks at confirmation), so "not confirmed" never tells a stranger the account exists.
        tokens = self._inner.login(email, password)
        with self._lock:
            unconfirmed = _key(email) in self._pending
        if unconfirmed:
            raise AuthError(
                "user_not_confirmed", "confirm your email with the code we sent before logging in", 403
            )
        return tokens

    def refresh(self, refresh_token: str) -> Tokens:
        return self._inner.refresh(refresh_token)

    def _issue(self, email: str) -> None:
        code = f"{secrets.randbelow(1_000_000):06d}"
        with self._lock:
            self._pending[_key(email)] = code
            self._save()
        line = f"confirmation code for {email.strip()}: {code}"
        log.info(line)
        self._announce(line)

    def _save(self) -> None:
        tmp = self._file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._pending, indent=2))
        tmp.replace(self._file)

    def __getattr__(self, name: str):
        # Anything else the real provider offers (e.g. admin helpers) passes straight through.
        return getattr(self._inner, name)
