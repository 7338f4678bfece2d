"""``python -m local make-operator EMAIL`` against moto, as under ``make up``: the group reaches the
ID token, the local gateway's authorizer verifies it, and the API reads it as an operator."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from local.__main__ import main
from local.auth import JwtAuthorizer
from local.aws import AwsResources, provision
from reelay.api.app import claimed_groups

PASSWORD = "Correct-Horse-9"


@pytest.fixture
def platform(moto_url: str, tmp_path: Path) -> tuple[AwsResources, Path]:
    """The running platform as make-operator sees it: moto with the pool, and .state/endpoints.json."""
    aws = provision(moto_url, "us-east-1", max_attempts=3, visibility_seconds=60)
    (tmp_path / "endpoints.json").write_text(
        json.dumps({"moto": moto_url, "userPoolId": aws.user_pool_id, "api": "http://127.0.0.1:1"})
    )
    return aws, tmp_path


def sign_up(aws: AwsResources, email: str) -> None:
    idp = boto3.client("cognito-idp", endpoint_url=aws.endpoint_url, region_name=aws.region)
    idp.sign_up(ClientId=aws.user_pool_client_id, Username=email, Password=PASSWORD,
                UserAttributes=[{"Name": "email", "Value": email}])  # fmt: skip
    idp.admin_confirm_sign_up(UserPoolId=aws.user_pool_id, Username=email)


def id_token(aws: AwsResources, email: str) -> str:
    idp = boto3.client("cognito-idp", endpoint_url=aws.endpoint_url, region_name=aws.region)
    auth = idp.initiate_auth(
        ClientId=aws.user_pool_client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )
    return auth["AuthenticationResult"]["IdToken"]


def test_make_operator_puts_the_group_in_the_next_id_token(
    platform: tuple[AwsResources, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    aws, state = platform
    authorizer = JwtAuthorizer(aws.jwks_url, aws.issuer, aws.user_pool_client_id)
    sign_up(aws, "olga@example.com")
    before = authorizer.claims(f"Bearer {id_token(aws, 'olga@example.com')}")
    assert "cognito:groups" not in before
    # When the command runs (twice: it is idempotent)
    for _ in range(2):
        assert main(["make-operator", "olga@example.com", "--state-dir", str(state)]) == 0
    assert "log in again" in capsys.readouterr().out
    # Then the next ID token lists the group: a JSON list in the token
    claims = authorizer.claims(f"Bearer {id_token(aws, 'olga@example.com')}")
    assert claims["cognito:groups"] == ["operators"]
    # And as the local gateway hands it over (a string, as API Gateway does) the API sees an operator
    handed_over = (
        claims["cognito:groups"]
        if isinstance(claims["cognito:groups"], str)
        else json.dumps(claims["cognito:groups"])
    )
    assert "operators" in claimed_groups(handed_over)


def test_make_operator_says_what_is_wrong(
    platform: tuple[AwsResources, Path], tmp_path: Path, capsys
) -> None:
    _, state = platform
    assert main(["make-operator", "nobody@example.com", "--state-dir", str(state)]) == 1
    assert "no user nobody@example.com" in capsys.readouterr().out
    assert main(["make-operator", "x@example.com", "--state-dir", str(tmp_path / "nowhere")]) == 1
    assert "start the platform first" in capsys.readouterr().out


def test_make_moderator_puts_the_moderators_group_in_the_next_id_token(
    platform: tuple[AwsResources, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    aws, state = platform
    authorizer = JwtAuthorizer(aws.jwks_url, aws.issuer, aws.user_pool_client_id)
    sign_up(aws, "mo@example.com")
    sign_up(aws, "ola@example.com")
    # When the command runs for Mo (twice: idempotent), and make-operator for Ola
    for _ in range(2):
        assert main(["make-moderator", "mo@example.com", "--state-dir", str(state)]) == 0
    assert "'moderators' group" in capsys.readouterr().out
    assert main(["make-operator", "ola@example.com", "--state-dir", str(state)]) == 0
    # Then Mo's next ID token has the moderators group only, and Ola's the operators group only
    claims = authorizer.claims(f"Bearer {id_token(aws, 'mo@example.com')}")
    assert claims["cognito:groups"] == ["moderators"]
    assert claimed_groups(json.dumps(claims["cognito:groups"])) == {"moderators"}
    assert authorizer.claims(f"Bearer {id_token(aws, 'ola@example.com')}")["cognito:groups"] == ["operators"]
    # And the group says what it is for
    idp = boto3.client("cognito-idp", endpoint_url=aws.endpoint_url, region_name=aws.region)
    group = idp.get_group(GroupName="moderators", UserPoolId=aws.user_pool_id)["Group"]
    assert "delete any video" in group["Description"]
    # And a missing user is said plainly
    assert main(["make-moderator", "nobody@example.com", "--state-dir", str(state)]) == 1
    assert "make-moderator: no user nobody@example.com" in capsys.readouterr().out
