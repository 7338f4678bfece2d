"""Reading the application user's secret, and the names multi-user rotation alternates between."""

from __future__ import annotations

from typing import Any

import pytest

from reelay.catalogue import DatabaseUnavailable
from reelay.catalogue.users import AppUser, app_user_from_secret, check_username, rotation_pair

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:reelay-app-AbCdEf"


class FakeSecrets:
    """Powertools' SecretsProvider.get, answering from a dict and recording how it was asked."""

    def __init__(self, value: Any = None, error: Exception | None = None) -> None:
        self.value, self.error, self.calls = value, error, []

    def get(self, name: str, **options: Any) -> Any:
        self.calls.append((name, options))
        if self.error:
            raise self.error
        return self.value


def test_rotation_pair_is_the_same_from_either_user() -> None:
    # Given the user named before and after a rotation, Then both name the same pair
    assert rotation_pair("reelay_app") == ("reelay_app", "reelay_app_clone")
    assert rotation_pair("reelay_app_clone") == ("reelay_app", "reelay_app_clone")


def test_a_name_whose_clone_would_not_fit_is_refused() -> None:
    # Given MySQL's 32-character user names, When the clone of a name would exceed it, Then ValueError
    assert check_username("a" * 26) == "a" * 26
    with pytest.raises(ValueError, match="too long"):
        check_username("a" * 27)


def test_reads_a_fresh_secret_and_hides_the_password() -> None:
    # Given an RDS-style secret
    secrets = FakeSecrets({"username": "reelay_app_clone", "password": "Pa55-word-x", "host": "db"})
    # When it is read
    user = app_user_from_secret(ARN, secrets_provider=secrets)
    # Then the user and password come back, bypassing any cache, and repr never shows the password
    assert user == AppUser(username="reelay_app_clone", password="Pa55-word-x")
    assert secrets.calls == [(ARN, {"transform": "json", "force_fetch": True})]
    assert "Pa55-word-x" not in repr(user)


@pytest.mark.parametrize(
    "value",
    [
        {"username": "x'; DROP USER root; --", "password": "Pa55-word-x"},
        {"username": "", "password": "Pa55-word-x"},
        {"username": "reelay_app", "password": ""},
        "Pa55-word-x",
        None,
    ],
    ids=["injected-name", "empty-name", "empty-password", "a-string", "nothing"],
)
def test_an_unusable_secret_is_a_clear_error_without_its_content(value: Any) -> None:
    # Given a secret that does not describe a usable user, When it is read, Then DatabaseUnavailable
    # naming the secret, never quoting its password
    with pytest.raises(DatabaseUnavailable) as caught:
        app_user_from_secret(ARN, secrets_provider=FakeSecrets(value))
    assert ARN in str(caught.value)
    assert "Pa55-word-x" not in str(caught.value)


def test_a_failing_read_names_the_secret_and_the_error_type_only() -> None:
    # Given Secrets Manager failing with a message that quotes something sensitive
    secrets = FakeSecrets(error=RuntimeError("AccessDenied for Pa55-word-x"))
    # When the secret is read, Then the error names the secret and the type, not the message
    with pytest.raises(DatabaseUnavailable, match="RuntimeError") as caught:
        app_user_from_secret(ARN, secrets_provider=secrets)
    assert "Pa55-word-x" not in str(caught.value)


def test_an_empty_arn_is_refused() -> None:
    with pytest.raises(ValueError, match="ARN is empty"):
        app_user_from_secret("", secrets_provider=FakeSecrets({}))
