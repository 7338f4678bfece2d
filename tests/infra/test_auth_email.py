"""Cognito email: Cognito's default sender (50 emails a day) unless a verified SES sender is configured."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from infra.config import ConfigError, ReelayConfig
from infra.stacks.auth_stack import AuthStack
from tests.infra.conftest import props


def _pool(config: ReelayConfig) -> dict:
    app = cdk.App()
    stack = AuthStack(app, "Auth", config=config, env=config.env)
    (pool,) = Template.from_stack(stack).find_resources("AWS::Cognito::UserPool").values()
    return props(pool)


def test_by_default_cognito_sends_its_own_email(synthesized, stacks):
    template = synthesized.template(stacks.auth)
    (pool,) = template.find_resources("AWS::Cognito::UserPool").values()
    email = props(pool).get("EmailConfiguration", {})
    assert email.get("EmailSendingAccount", "COGNITO_DEFAULT") == "COGNITO_DEFAULT"
    assert "SourceArn" not in email


def test_a_verified_sender_switches_cognito_to_ses():
    config = ReelayConfig.from_context(
        {"ses_from_email": "no-reply@example.com", "ses_from_name": "Reelay", "ses_region": "eu-west-1"}
    )
    email = _pool(config)["EmailConfiguration"]
    assert email["EmailSendingAccount"] == "DEVELOPER"
    assert email["From"] == "Reelay <no-reply@example.com>"
    source = str(email["SourceArn"])
    assert "eu-west-1" in source and "identity/no-reply@example.com" in source


def test_the_ses_region_defaults_to_the_deployment_region():
    config = ReelayConfig.from_context(
        {"ses_from_email": "no-reply@example.com", "account": "123456789012", "region": "eu-central-1"}
    )
    assert "eu-central-1" in str(_pool(config)["EmailConfiguration"]["SourceArn"])


def test_an_ses_sender_without_any_region_is_a_config_error():
    with pytest.raises(ConfigError, match="ses_region"):
        ReelayConfig.from_context({"ses_from_email": "no-reply@example.com"})
