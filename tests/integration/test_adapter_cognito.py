"""CognitoIdentity: the flows moto supports run against moto; the rest of the error table via Stubber."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import jwt
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from reelay.adapters.cognito import CognitoIdentity
from reelay.errors import AuthError

REGION = "us-east-1"
POLICY = {
    "MinimumLength": 8,
    "RequireUppercase": True,
    "RequireLowercase": True,
    "RequireNumbers": True,
    "RequireSymbols": False,
}
GOOD = "Str0ngPassw0rd"


@pytest.fixture
def idp() -> Iterator[CognitoIdentity]:
    # The same pool shape as the deployed stack: email is the username.
    with mock_aws():
        c = boto3.client("cognito-idp", region_name=REGION)
        pool = c.create_user_pool(
            PoolName="reelay-users",
            Policies={"PasswordPolicy": POLICY},
            UsernameAttributes=["email"],
            AutoVerifiedAttributes=["email"],
        )["UserPool"]
        app = c.create_user_pool_client(
            UserPoolId=pool["Id"],
            ClientName="web",
            GenerateSecret=False,
            ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )["UserPoolClient"]
        yield CognitoIdentity(pool["Id"], app["ClientId"], client=c)


def auth_error(call: Callable[[], Any]) -> AuthError:
    with pytest.raises(AuthError) as err:
        call()
    return err.value


def test_register_confirm_login_refresh(idp: CognitoIdentity) -> None:
    # Given a new user who registers with a mixed-case email
    sub = idp.register("  Alice@Example.com ", GOOD)
    # Then logging in before confirming is refused with a clear code
    err = auth_error(lambda: idp.login("alice@example.com", GOOD))
    assert (err.code, err.status) == ("user_not_confirmed", 403)
    # When the user confirms and logs in
    idp.confirm("alice@example.com", "123456")
    tokens = idp.login("ALICE@example.com", GOOD)
    # Then the tokens belong to that user
    claims = jwt.decode(tokens.id_token, options={"verify_signature": False})
    assert claims["sub"] == sub and tokens.token_type == "Bearer" and tokens.expires_in > 0
    assert tokens.access_token and tokens.refresh_token
    # And a refresh gives new tokens and keeps the refresh token usable
    refreshed = idp.refresh(tokens.refresh_token)
    assert refreshed.id_token and refreshed.refresh_token == tokens.refresh_token


def test_duplicate_email_is_taken(idp: CognitoIdentity) -> None:
    idp.register("bob@example.com", GOOD)
    err = auth_error(lambda: idp.register("BOB@example.com", GOOD))
    assert (err.code, err.status) == ("email_taken", 409)


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("Sh0rt", "at least 8 characters"),
        ("alllowercase1", "uppercase"),
        ("ALLUPPERCASE1", "lowercase"),
        ("NoNumbersHere", "numeric"),
    ],
)
def test_weak_password_says_which_rule(idp: CognitoIdentity, password: str, rule: str) -> None:
    err = auth_error(lambda: idp.register("carol@example.com", password))
    assert (err.code, err.status) == ("weak_password", 400)
    assert rule in err.message and password not in err.message


def test_wrong_password_and_unknown_user_look_the_same(idp: CognitoIdentity) -> None:
    idp.register("dave@example.com", GOOD)
    idp.confirm("dave@example.com", "000000")
    wrong = auth_error(lambda: idp.login("dave@example.com", "Wr0ngPassword"))
    unknown = auth_error(lambda: idp.login("nobody@example.com", GOOD))
    assert (wrong.code, wrong.status, wrong.message) == (unknown.code, unknown.status, unknown.message)
    assert (wrong.code, wrong.status) == ("invalid_credentials", 401)


def test_confirm_unknown_user_and_bad_refresh(idp: CognitoIdentity) -> None:
    err = auth_error(lambda: idp.confirm("nobody@example.com", "123456"))
    assert (err.code, err.status) == ("user_not_found", 404)
    err = auth_error(lambda: idp.refresh("not-a-refresh-token"))
    assert (err.code, err.status) == ("invalid_refresh_token", 401)


@pytest.mark.parametrize(
    "call",
    [
        lambda i: i.register("", GOOD),
        lambda i: i.register("no-at-sign", GOOD),
        lambda i: i.register("e@x.com", ""),
        lambda i: i.register(None, GOOD),
        lambda i: i.confirm("e@x.com", "  "),
        lambda i: i.login("e@x.com", ""),
        lambda i: i.refresh(""),
        lambda i: i.resend_code("@"),
    ],
)
def test_missing_or_malformed_input_is_invalid_input(idp: CognitoIdentity, call: Callable[..., Any]) -> None:
    err = auth_error(lambda: call(idp))
    assert (err.code, err.status) == ("invalid_input", 400)


def test_overlong_password_is_weak_not_a_crash(idp: CognitoIdentity) -> None:
    err = auth_error(lambda: idp.register("e@x.com", "Aa1" * 100))
    assert (err.code, err.status) == ("weak_password", 400)


# --- the error table, for answers moto does not give -----------------------------------------------
@pytest.fixture
def stubbed() -> Iterator[tuple[CognitoIdentity, Stubber]]:
    c = boto3.client("cognito-idp", region_name=REGION)
    with Stubber(c) as stub:
        yield CognitoIdentity("us-east-1_pool", "client", client=c), stub


CALLS: dict[str, tuple[str, Callable[[CognitoIdentity], Any]]] = {
    "register": ("sign_up", lambda i: i.register("e@x.com", GOOD)),
    "confirm": ("confirm_sign_up", lambda i: i.confirm("e@x.com", "123456")),
    "resend": ("resend_confirmation_code", lambda i: i.resend_code("e@x.com")),
    "login": ("initiate_auth", lambda i: i.login("e@x.com", GOOD)),
    "refresh": ("initiate_auth", lambda i: i.refresh("rt")),
}


@pytest.mark.parametrize(
    ("op", "cognito_code", "message", "code", "status"),
    [
        ("register", "UsernameExistsException", "User already exists", "email_taken", 409),
        ("register", "InvalidParameterException", "Invalid email address format.", "invalid_input", 400),
        ("register", "TooManyRequestsException", "Rate exceeded", "too_many_requests", 429),
        ("confirm", "CodeMismatchException", "Invalid code provided", "invalid_code", 400),
        (
            "confirm",
            "ExpiredCodeException",
            "Invalid code provided, please request again",
            "expired_code",
            400,
        ),
        (
            "confirm",
            "NotAuthorizedException",
            "User cannot be confirmed. Current status is CONFIRMED",
            "already_confirmed",
            409,
        ),
        (
            "confirm",
            "UserNotFoundException",
            "Username/client id combination not found.",
            "user_not_found",
            404,
        ),
        ("confirm", "LimitExceededException", "Attempt limit exceeded", "too_many_requests", 429),
        ("confirm", "TooManyFailedAttemptsException", "Too many failed attempts", "too_many_requests", 429),
        (
            "resend",
            "UserNotFoundException",
            "Username/client id combination not found.",
            "user_not_found",
            404,
        ),
        ("resend", "InvalidParameterException", "User is already confirmed.", "already_confirmed", 409),
        ("resend", "LimitExceededException", "Attempt limit exceeded", "too_many_requests", 429),
        ("login", "NotAuthorizedException", "Incorrect username or password.", "invalid_credentials", 401),
        ("login", "NotAuthorizedException", "Password attempts exceeded", "too_many_requests", 429),
        ("login", "UserNotFoundException", "User does not exist.", "invalid_credentials", 401),
        ("login", "UserNotConfirmedException", "User is not confirmed.", "user_not_confirmed", 403),
        (
            "login",
            "PasswordResetRequiredException",
            "Password reset required",
            "password_reset_required",
            403,
        ),
        (
            "login",
            "InvalidParameterException",
            "USER_PASSWORD_AUTH flow not enabled for this client",
            "invalid_input",
            400,
        ),
        ("refresh", "NotAuthorizedException", "Invalid Refresh Token", "invalid_refresh_token", 401),
        ("login", "InternalErrorException", "boom", "identity_error", 502),
        ("login", "ResourceNotFoundException", "User pool client x does not exist.", "identity_error", 502),
    ],
)
def test_error_table(
    stubbed: tuple[CognitoIdentity, Stubber], op: str, cognito_code: str, message: str, code: str, status: int
) -> None:
    idp, stub = stubbed
    operation, call = CALLS[op]
    # Given Cognito answers with an error
    stub.add_client_error(
        operation, service_error_code=cognito_code, service_message=message, http_status_code=400
    )
    # When the adapter makes the call, Then it raises the stable Reelay code and status
    err = auth_error(lambda: call(idp))
    assert (err.code, err.status) == (code, status)


def test_real_cognito_weak_password_message_names_the_rule(stubbed: tuple[CognitoIdentity, Stubber]) -> None:
    idp, stub = stubbed
    stub.add_client_error(
        "sign_up",
        service_error_code="InvalidPasswordException",
        service_message="Password did not conform with policy: Password must have symbol characters",
    )
    err = auth_error(lambda: idp.register("e@x.com", GOOD))
    assert (err.code, err.message) == ("weak_password", "Password must have symbol characters")


def test_weak_password_without_policy_access_still_answers(stubbed: tuple[CognitoIdentity, Stubber]) -> None:
    idp, stub = stubbed
    stub.add_client_error("sign_up", service_error_code="InvalidPasswordException", service_message="nope")
    stub.add_client_error("describe_user_pool", service_error_code="AccessDeniedException")
    err = auth_error(lambda: idp.register("e@x.com", GOOD))
    assert (err.code, err.status, err.message) == (
        "weak_password",
        400,
        "the password does not meet the password policy",
    )


def test_resend_succeeds(stubbed: tuple[CognitoIdentity, Stubber]) -> None:
    idp, stub = stubbed
    stub.add_response(
        "resend_confirmation_code",
        {"CodeDeliveryDetails": {"Destination": "e***@x.com", "DeliveryMedium": "EMAIL"}},
        {"ClientId": "client", "Username": "e@x.com"},
    )
    idp.resend_code(" E@x.com")
    stub.assert_no_pending_responses()


def test_unsupported_challenge_is_an_auth_error(stubbed: tuple[CognitoIdentity, Stubber]) -> None:
    idp, stub = stubbed
    stub.add_response("initiate_auth", {"ChallengeName": "NEW_PASSWORD_REQUIRED", "Session": "s" * 32})
    err = auth_error(lambda: idp.login("e@x.com", GOOD))
    assert (err.code, err.status) == ("challenge_required", 401)


def test_unreachable_identity_provider_is_503() -> None:
    from botocore.config import Config

    c = boto3.client(
        "cognito-idp",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"max_attempts": 1}),
    )
    err = auth_error(lambda: CognitoIdentity("p", "c", client=c).login("e@x.com", GOOD))
    assert (err.code, err.status) == ("identity_unavailable", 503)
