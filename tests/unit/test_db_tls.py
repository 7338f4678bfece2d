"""Catalogue connections are encrypted in AWS, where RDS requires secure transport."""

from __future__ import annotations

from reelay.catalogue.connection import ConnectionProvider, tls_options
from reelay.settings import Settings


def test_tls_off_by_default_for_the_local_database() -> None:
    # Given settings with no TLS asked for, When the provider is built, Then no ssl options are passed
    provider = ConnectionProvider.from_settings(Settings(database_url="mysql://root@127.0.0.1:3306/x"))
    assert provider._tls is None


def test_tls_without_a_ca_encrypts_but_cannot_verify_the_host() -> None:
    assert tls_options(True, None) == {"check_hostname": False}


def test_tls_with_a_ca_verifies_the_server() -> None:
    assert tls_options(True, "/etc/ssl/rds.pem") == {"ca": "/etc/ssl/rds.pem", "check_hostname": True}


def test_settings_turn_tls_on_for_the_connection() -> None:
    # Given REELAY_DB_TLS as the stacks set it, When the provider is built, Then it connects with TLS
    settings = Settings(database_url="mysql://root@127.0.0.1:3306/x", db_tls=True, db_tls_ca_file="/ca.pem")
    provider = ConnectionProvider.from_settings(settings)
    assert provider._tls == {"ca": "/ca.pem", "check_hostname": True}
