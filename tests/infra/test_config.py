"""The typed config read from cdk context: good values pass, bad ones name the field."""

from __future__ import annotations

import aws_cdk as cdk
import pytest

from infra.config import ConfigError, ReelayConfig
from tests.infra.conftest import cdk_json_context


def test_cdk_json_context_is_a_valid_config():
    # Given the context committed in cdk.json
    # When it is read
    config = ReelayConfig.from_app(cdk.App(context=cdk_json_context()))
    # Then it describes the dev stage with the pinned MySQL and a scale-to-zero transcoder
    assert config.stage == "dev"
    assert config.mysql_version == "8.0.39"
    assert config.transcoder_min_tasks == 0
    assert config.env is None  # env-agnostic: synth needs no AWS lookups


def test_flat_context_keys_override_the_reelay_object():
    # Given cdk.json's context plus command-line style overrides (strings)
    context = {**cdk_json_context(), "stage": "prod", "transcoder_max_tasks": "8", "db_multi_az": "true"}
    # When it is read
    config = ReelayConfig.from_app(cdk.App(context=context))
    # Then the overrides win and are typed
    assert (config.stage, config.transcoder_max_tasks, config.db_multi_az) == ("prod", 8, True)


def test_account_and_region_give_an_explicit_environment():
    # Given an account and region in context
    config = ReelayConfig.from_context({"account": "123456789012", "region": "eu-west-1"})
    # Then stacks get that environment
    assert config.env is not None
    assert (config.env.account, config.env.region) == ("123456789012", "eu-west-1")


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"vpc_cidr": "10.0.0.0/8"}, "vpc_cidr"),
        ({"vpc_cidr": "not-a-cidr"}, "vpc_cidr"),
        ({"mysql_version": "8.0.999"}, "mysql_version"),
        ({"transcoder_min_tasks": 5, "transcoder_max_tasks": 2}, "transcoder_min_tasks"),
        ({"transcode_queue_visibility_seconds": 60, "worker_lease_seconds": 120}, "visibility"),
        ({"log_retention_days": 31}, "log_retention_days"),
        ({"stage": "Prod_1"}, "stage"),
        ({"account": "12345"}, "account"),
        ({"alarm_email": "not-an-email"}, "alarm_email"),
        ({"db_backup_retention_days": 1}, "db_backup_retention_days"),
        ({"nat_gateways": 0}, "nat_gateways"),
        ({"max_receive_count": 0}, "max_receive_count"),
        ({"api_auth_throttle_rate": 500}, "api_auth_throttle_rate"),  # looser than the stage's
        ({"api_auth_throttle_burst": 0}, "api_auth_throttle_burst"),
        ({"vcp_cidr": "10.0.0.0/16"}, "vcp_cidr"),  # a typo is an error, not silently ignored
    ],
)
def test_bad_config_is_a_clear_error_naming_the_field(values, field):
    # Given a config with one bad value
    # When it is read
    # Then a ConfigError names what is wrong
    with pytest.raises(ConfigError, match=field):
        ReelayConfig.from_context(values)


def test_context_that_is_not_an_object_is_refused():
    # Given a "reelay" context that is a string
    app = cdk.App(context={"reelay": "dev"})
    # Then reading it fails clearly
    with pytest.raises(ConfigError, match="must be an object"):
        ReelayConfig.from_app(app)
