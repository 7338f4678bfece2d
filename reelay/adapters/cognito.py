"""Cognito user pool as Reelay's ``IdentityProvider``: email is the username.

Every Cognito failure becomes ``AuthError(code, message, status)`` with a stable code; messages are
for end users and never reveal whether an email is registered when logging in.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from reelay.adapters.aws import client as aws_client
from reelay.errors import AuthError
from reelay.ports import Tokens
from reelay.settings import Settings

logger = Logger(child=True)

_THROTTLED = {"LimitExceededException", "TooManyRequestsException", "TooManyFailedAttemptsException"}
_GENERIC_WEAK = "the password does not meet the password policy"


class CognitoIdentity:
    """``IdentityProvider`` on one user pool and one public app client (USER_PASSWORD_AUTH enabled)."""

    def __init__(
        self, user_pool_id: str, client_id: str, client: Any = None, *, settings: Settings | None = None
    ) -> None:
        if not user_pool_id or not client_id:
            raise ValueError("CognitoIdentity needs a user pool id and an app client id")
        self.user_pool_id = user_pool_id
        self.client_id = client_id
        self._client = client or aws_client("cognito-idp", settings)
        self._policy: dict[str, Any] | None = None
        self._policy_lock = threading.Lock()

    # --- the port --------------------------------------------------------------------------------
    def register(self, email: str, password: str) -> str:
        """Sign up; Cognito emails a confirmation code. Returns the user's sub."""
        email, password = _email(email), _password(password)
        try:
            resp = self._client.sign_up(
                ClientId=self.client_id,
                Username=email,
                Password=password,
                UserAttributes=[{"Name": "email", "Value": email}],
            )
        except (ClientError, BotoCoreError) as e:
            raise self._error(e, "register", password=password) from e
        return str(resp["UserSub"])

    def confirm(self, email: str, code: str) -> None:
        email = _email(email)
        if not isinstance(code, str) or not code.strip():
            raise AuthError("invalid_input", "the confirmation code is required", 400)
        try:
            self._client.confirm_sign_up(
                ClientId=self.client_id, Username=email, ConfirmationCode=code.strip()
            )
        except (ClientError, BotoCoreError) as e:
            raise self._error(e, "confirm") from e

    def resend_code(self, email: str) -> None:
        email = _email(email)
        try:
            self._client.resend_confirmation_code(ClientId=self.client_id, Username=email)
        except (ClientError, BotoCoreError) as e:
            raise self._error(e, "resend") from e

    def login(self, email: str, password: str) -> Tokens:
        email = _email(email)
        if not isinstance(password, str) or not password:
            raise AuthError("invalid_input", "the password is required", 400)
        try:
            resp = self._client.initiate_auth(
                ClientId=self.client_id,
                AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": email, "PASSWORD": password},
            )
        except (ClientError, BotoCoreError) as e:
            raise self._error(e, "login") from e
        return _tokens(resp, None)

    def refresh(self, refresh_token: str) -> Tokens:
        """New id and access tokens. The refresh token stays the same unless Cognito rotates it."""
        if not isinstance(refresh_token, str) or not refresh_token.strip():
            raise AuthError("invalid_input", "the refresh token is required", 400)
        try:
            resp = self._client.initiate_auth(
                ClientId=self.client_id,
                AuthFlow="REFRESH_TOKEN_AUTH",
                AuthParameters={"REFRESH_TOKEN": refresh_token.strip()},
            )
        except (ClientError, BotoCoreError) as e:
            raise self._error(e, "refresh") from e
        return _tokens(resp, refresh_token.strip())

    # --- error mapping ---------------------------------------------------------------------------
    def _error(self, err: Exception, op: str, *, password: str | None = None) -> AuthError:
        """The one table from Cognito error codes to Reelay's auth error codes."""
        if not isinstance(err, ClientError):
            logger.warning("identity provider unreachable", extra={"op": op, "error": type(err).__name__})
            return AuthError("identity_unavailable", "sign-in is unavailable right now; try again", 503)
        code = str(err.response.get("Error", {}).get("Code", ""))
        message = str(err.response.get("Error", {}).get("Message", ""))
        lowered = message.lower()
        if code == "UsernameExistsException":
            return AuthError("email_taken", "an account with this email already exists", 409)
        if code == "InvalidPasswordException":
            return AuthError("weak_password", self._weak_password_reason(message, password), 400)
        if code == "CodeMismatchException":
            return AuthError("invalid_code", "the confirmation code is wrong", 400)
        if code == "ExpiredCodeException":
            return AuthError("expired_code", "the confirmation code has expired; ask for a new one", 400)
        if code == "UserNotConfirmedException":
            return AuthError(
                "user_not_confirmed", "confirm your email with the code we sent before logging in", 403
            )
        if code in _THROTTLED or (code == "NotAuthorizedException" and "attempts exceeded" in lowered):
            return AuthError("too_many_requests", "too many attempts; wait a little and try again", 429)
        if code == "NotAuthorizedException":
            if op == "refresh":
                return AuthError(
                    "invalid_refresh_token", "the refresh token is invalid, expired or revoked", 401
                )
            if op == "confirm" and "confirmed" in lowered:
                return AuthError("already_confirmed", "this account is already confirmed", 409)
            if op == "login":
                return AuthError("invalid_credentials", "incorrect email or password", 401)
            return AuthError("not_allowed", "this account cannot do that right now", 403)
        if code == "UserNotFoundException":
            if op in ("confirm", "resend"):
                return AuthError(
                    "user_not_found", "no account with this email is waiting for confirmation", 404
                )
            return AuthError("invalid_credentials", "incorrect email or password", 401)
        if code == "PasswordResetRequiredException":
            return AuthError("password_reset_required", "this account needs a password reset", 403)
        if code == "InvalidParameterException":
            if op == "resend" and "already confirmed" in lowered:
                return AuthError("already_confirmed", "this account is already confirmed", 409)
            if op == "register" and "password" in lowered:
                # Cognito checks the 6-character API minimum before the pool's policy.
                return AuthError("weak_password", self._weak_password_reason("", password), 400)
            return AuthError("invalid_input", _user_message(message), 400)
        if code == "InvalidParameterValue":
            return AuthError("invalid_input", _user_message(message), 400)
        logger.warning("unexpected identity provider error", extra={"op": op, "code": code})
        return AuthError("identity_error", "sign-in failed on the identity provider's side; try again", 502)

    def _weak_password_reason(self, message: str, password: str | None) -> str:
        # Real Cognito says "Password did not conform with policy: Password must have uppercase
        # characters"; emulators may not, so fall back to checking the pool's own policy.
        match = re.search(r"policy:\s*(.+)$", message)
        if match:
            return match.group(1).strip().rstrip(".")
        if password is not None:
            rule = self._broken_rule(password)
            if rule:
                return rule
        return _GENERIC_WEAK

    def _broken_rule(self, password: str) -> str | None:
        policy = self._password_policy()
        if not policy:
            return None
        minimum = int(policy.get("MinimumLength", 8))
        if len(password) < minimum:
            return f"Password must be at least {minimum} characters long"
        if policy.get("RequireUppercase") and not any(c.isupper() for c in password):
            return "Password must have uppercase characters"
        if policy.get("RequireLowercase") and not any(c.islower() for c in password):
            return "Password must have lowercase characters"
        if policy.get("RequireNumbers") and not any(c.isdigit() for c in password):
            return "Password must have numeric characters"
        if policy.get("RequireSymbols") and all(c.isalnum() for c in password):
            return "Password must have symbol characters"
        return None

    def _password_policy(self) -> dict[str, Any]:
        with self._policy_lock:
            if self._policy is None:
                try:
                    pool = self._client.describe_user_pool(UserPoolId=self.user_pool_id)["UserPool"]
                    self._policy = dict(pool.get("Policies", {}).get("PasswordPolicy") or {})
                except (ClientError, BotoCoreError, KeyError):
                    return {}  # no permission or no pool: the generic message will do
            return self._policy


def _email(email: str) -> str:
    if not isinstance(email, str) or not email.strip():
        raise AuthError("invalid_input", "the email is required", 400)
    email = email.strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@") or len(email) > 254:
        raise AuthError("invalid_input", "the email address is not valid", 400)
    return email


def _password(password: str) -> str:
    if not isinstance(password, str) or not password:
        raise AuthError("invalid_input", "the password is required", 400)
    if len(password) > 256:
        raise AuthError("weak_password", "Password must be at most 256 characters long", 400)
    return password


def _user_message(message: str) -> str:
    # Cognito's validation messages echo values back; keep them short and single-line.
    text = " ".join(message.split())[:200]
    return text or "the request is not valid"


def _tokens(resp: dict[str, Any], refresh_token: str | None) -> Tokens:
    result = resp.get("AuthenticationResult")
    if not result:
        challenge = resp.get("ChallengeName", "unknown")
        raise AuthError(
            "challenge_required", f"sign-in needs a step Reelay does not support ({challenge})", 401
        )
    return Tokens(
        id_token=result["IdToken"],
        access_token=result["AccessToken"],
        refresh_token=result.get("RefreshToken") or refresh_token,
        expires_in=int(result.get("ExpiresIn", 3600)),
        token_type=result.get("TokenType", "Bearer"),
    )


__all__ = ["CognitoIdentity"]
