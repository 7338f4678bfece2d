"""What API Gateway's Cognito authorizer does: check a bearer JWT against the pool's JWKS."""

from __future__ import annotations

from typing import Any

import jwt
from jwt import PyJWKClient


class InvalidToken(Exception):
    pass


class JwtAuthorizer:
    """Accepts Cognito ID tokens for this app client (aud = client id), and nothing else.

    API Gateway's Cognito authorizer without OAuth scopes accepts only ID tokens; an access token
    that passed here would fail in AWS, so it is refused here too.
    """

    def __init__(self, jwks_url: str, issuer: str, client_id: str) -> None:
        self._jwks = PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5)
        self._issuer = issuer
        self._client_id = client_id

    def claims(self, authorization: str | None) -> dict[str, Any]:
        if not authorization:
            raise InvalidToken("Missing Authorization header.")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise InvalidToken("The Authorization header must be 'Bearer <token>'.")
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=["RS256"],
                issuer=self._issuer,
                options={"require": ["exp", "iss", "sub", "token_use"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError as e:
            raise InvalidToken("The token has expired.") from e
        except (jwt.PyJWTError, jwt.PyJWKClientError) as e:
            raise InvalidToken(f"The token is not valid: {e}") from e
        use = claims.get("token_use")
        if use == "access":
            raise InvalidToken(
                "send the ID token (idToken from /auth/login), not the access token, as the bearer token."
            )
        aud = claims.get("aud")
        ok = use == "id" and (aud == self._client_id or (isinstance(aud, list) and self._client_id in aud))
        if not ok:
            raise InvalidToken("The token was not issued for this app client.")
        return claims
