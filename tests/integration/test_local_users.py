"""Users of the local platform survive a restart: recorded in the state dir, restored into a fresh moto
user pool with the same user id (sub) and groups at their first login."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import boto3
import jwt
import pytest
from moto import mock_aws

from local.aws import PASSWORD_POLICY
from local.users import DurableUsers, check_password, hash_password
from reelay.adapters.cognito import CognitoIdentity
from reelay.errors import AuthError

REGION = "us-east-1"
PASSWORD = "Correct-Horse-9-battery"


class Pool:
    """One moto user pool shaped like the local platform's, as a fresh start provisions it."""

    def __init__(self) -> None:
        self.idp = boto3.client("cognito-idp", region_name=REGION)
        pool = self.idp.create_user_pool(
            PoolName="reelay-users",
            Policies={"PasswordPolicy": PASSWORD_POLICY},
            UsernameAttributes=["email"],
            AutoVerifiedAttributes=["email"],
        )["UserPool"]
        client = self.idp.create_user_pool_client(
            UserPoolId=pool["Id"],
            ClientName="reelay-web",
            GenerateSecret=False,
            ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )["UserPoolClient"]
        self.pool_id = pool["Id"]
        self.cognito = CognitoIdentity(self.pool_id, client["ClientId"], self.idp)

    def users(self, users_file: Path) -> DurableUsers:
        return DurableUsers(self.cognito, users_file, idp=self.idp, user_pool_id=self.pool_id)


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def claims(id_token: str) -> dict:
    return jwt.decode(id_token, options={"verify_signature": False})


def test_the_same_login_gets_the_same_user_id_and_groups_after_a_restart(aws, tmp_path):
    users_file = tmp_path / "users.json"
    # Given a user who signed up, confirmed, became an operator and logged in on the first run
    first = Pool()
    users = first.users(users_file)
    sub = users.register("Ada@Example.com", PASSWORD)
    users.confirm("ada@example.com", "123456")
    first.idp.create_group(UserPoolId=first.pool_id, GroupName="operators")
    first.idp.admin_add_user_to_group(
        UserPoolId=first.pool_id, Username="ada@example.com", GroupName="operators"
    )
    assert claims(users.login("ada@example.com", PASSWORD).id_token)["sub"] == sub

    # When the platform restarts: a fresh user pool that knows nobody, the same state dir
    second = Pool()
    restored = second.users(users_file)
    tokens = restored.login("ada@example.com", PASSWORD)

    # Then the login works and its ID token carries the same user id and the operators group
    got = claims(tokens.id_token)
    assert got["sub"] == sub
    assert got["cognito:groups"] == ["operators"]
    # And a second login, and a refresh, keep it
    assert claims(restored.login("ada@example.com", PASSWORD).id_token)["sub"] == sub
    assert claims(restored.refresh(tokens.refresh_token).id_token)["sub"] == sub


def test_after_a_restart_a_wrong_password_is_refused_and_the_email_stays_taken(aws, tmp_path):
    users_file = tmp_path / "users.json"
    first = Pool().users(users_file)
    first.register("bob@example.com", PASSWORD)
    first.confirm("bob@example.com", "123456")
    first.login("bob@example.com", PASSWORD)

    restored = Pool().users(users_file)
    with pytest.raises(AuthError) as wrong:
        restored.login("bob@example.com", PASSWORD + "x")
    assert (wrong.value.code, wrong.value.status) == ("invalid_credentials", 401)
    with pytest.raises(AuthError) as taken:
        restored.register("BOB@example.com", "Another-Pass-123")
    assert (taken.value.code, taken.value.status) == ("email_taken", 409)


def test_the_file_holds_no_password_and_only_its_owner_reads_it(aws, tmp_path):
    users_file = tmp_path / "users.json"
    users = Pool().users(users_file)
    sub = users.register("cy@example.com", PASSWORD)
    users.confirm("cy@example.com", "123456")

    text = users_file.read_text()
    assert PASSWORD not in text
    record = json.loads(text)["cy@example.com"]
    assert record["sub"] == sub and record["confirmed"] is True
    assert check_password(PASSWORD, record["passwordHash"]) and not check_password(
        "nope", record["passwordHash"]
    )
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600


def test_a_sign_up_never_confirmed_is_forgotten_at_restart(aws, tmp_path):
    users_file = tmp_path / "users.json"
    Pool().users(users_file).register("dee@example.com", PASSWORD)

    restored = Pool().users(users_file)
    # Then the email is free again, and a login is Cognito's unknown-user answer
    with pytest.raises(AuthError) as unknown:
        restored.login("dee@example.com", PASSWORD)
    assert unknown.value.status in (401, 404)
    assert restored.register("dee@example.com", PASSWORD)


def test_password_hashes_are_salted():
    assert hash_password(PASSWORD) != hash_password(PASSWORD)
    assert not check_password(PASSWORD, "not-a-hash")
