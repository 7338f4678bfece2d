"""ConnectionProvider against the real MariaDB, with Secrets Manager in moto.

The rotation tests use a real database user whose password really changes, and a secret cache
long enough that only the forced re-fetch on "access denied" can pick the new password up.
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlparse

import boto3
import pymysql
import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from moto import mock_aws

from reelay.catalogue import ConnectionProvider, DatabaseUnavailable
from reelay.catalogue import connection as connection_module
from reelay.catalogue.connection import Credentials, parse_url
from reelay.settings import Settings

pytestmark = pytest.mark.mysql

REGION = "us-east-1"


def _root(url: str, database: str | None = None) -> pymysql.connections.Connection:
    u = urlparse(url)
    return pymysql.connect(
        host=u.hostname,
        port=u.port or 3306,
        user=u.username or "root",
        password=u.password or "",
        database=database,
        autocommit=True,
    )


@dataclass
class DbUser:
    name: str
    password: str
    host: str
    port: int
    database: str
    root: pymysql.connections.Connection

    def rotate(self, new_password: str) -> None:
        with self.root.cursor() as cur:
            cur.execute(f"ALTER USER '{self.name}'@'%%' IDENTIFIED BY %s", (new_password,))
        self.password = new_password

    def secret(self, password: str | None = None) -> dict[str, Any]:
        return {
            "engine": "mysql",
            "host": self.host,
            "port": self.port,
            "username": self.name,
            "password": self.password if password is None else password,
            "dbname": self.database,
        }

    def kill_connections(self) -> int:
        """Kill every server session of this user, as a network drop or failover would."""
        killed = 0
        with self.root.cursor() as cur:
            cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (self.name,))
            for (thread,) in cur.fetchall():
                try:
                    cur.execute(f"KILL {int(thread)}")
                except pymysql.err.OperationalError as exc:
                    # 1094 Unknown thread id: the session ended between the listing and the KILL
                    # (a client closing its replaced connection does exactly that). Nothing to kill.
                    if exc.args[0] != 1094:
                        raise
                else:
                    killed += 1
        return killed


@pytest.fixture
def db_user(database_url: str) -> Iterator[DbUser]:
    """A real, throwaway database user with rights on the session's test database only."""
    u = urlparse(database_url)
    database = u.path.lstrip("/")
    root = _root(database_url)
    user = DbUser(
        f"rl_{uuid.uuid4().hex[:12]}",
        "first-Pa55word",
        u.hostname or "127.0.0.1",
        u.port or 3306,
        database,
        root,
    )
    with root.cursor() as cur:
        cur.execute(f"CREATE USER '{user.name}'@'%%' IDENTIFIED BY %s", (user.password,))
        cur.execute(f"GRANT ALL PRIVILEGES ON `{database}`.* TO '{user.name}'@'%'")
    try:
        yield user
    finally:
        user.kill_connections()
        with root.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user.name}'@'%'")
        root.close()


@dataclass
class Secrets:
    client: Any
    fetches: list[str]

    def create(self, value: dict[str, Any]) -> str:
        return self.client.create_secret(
            Name=f"reelay/db/{uuid.uuid4().hex[:8]}", SecretString=json.dumps(value)
        )["ARN"]

    def put(self, arn: str, value: dict[str, Any] | str) -> None:
        body = value if isinstance(value, str) else json.dumps(value)
        self.client.put_secret_value(SecretId=arn, SecretString=body)

    def provider(self, arn: str, *, db_name: str | None = None, max_age: int = 3600) -> ConnectionProvider:
        return ConnectionProvider.from_secret(
            arn, db_name=db_name, max_age=max_age, secrets_provider=SecretsProvider(boto3_client=self.client)
        )


@pytest.fixture
def secrets() -> Iterator[Secrets]:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name=REGION)
        fetches: list[str] = []
        # Count real GetSecretValue calls, so a test can tell the cache from a forced fetch.
        client.meta.events.register(
            "provide-client-params.secrets-manager.GetSecretValue",
            lambda **kw: fetches.append(kw["params"]["SecretId"]),
        )
        yield Secrets(client, fetches)


def whoami(provider: ConnectionProvider) -> str:
    def work(conn: Any) -> str:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER() AS me")
            return cur.fetchone()["me"]

    return provider.transaction(work)


# --- rotation -------------------------------------------------------------------------------
def test_a_rotated_password_is_picked_up_without_a_redeploy(db_user: DbUser, secrets: Secrets) -> None:
    # Given a provider reading the user's secret, cached for an hour, and one working query
    arn = secrets.create(db_user.secret())
    provider = secrets.provider(arn)
    assert whoami(provider).startswith(db_user.name + "@")
    assert len(secrets.fetches) == 1
    # When the password rotates (database first, then the secret, as the rotation Lambda does)
    db_user.rotate("second-Pa55word")
    secrets.put(arn, db_user.secret())
    # And the provider's connection dies (idle timeout, failover)
    assert db_user.kill_connections() == 1
    # Then the next query still works: the cached password was refused and the secret re-fetched once
    assert whoami(provider).startswith(db_user.name + "@")
    assert len(secrets.fetches) == 2
    # And later queries reuse the new connection without fetching again
    assert whoami(provider).startswith(db_user.name + "@")
    assert len(secrets.fetches) == 2
    provider.close()


def test_a_cold_reconnect_after_rotation_uses_the_new_password(db_user: DbUser, secrets: Secrets) -> None:
    # Given a warm provider whose cached secret holds the old password
    arn = secrets.create(db_user.secret())
    provider = secrets.provider(arn)
    whoami(provider)
    # When the password rotates and the provider reconnects from scratch (a new Lambda sandbox
    # would start empty; this one keeps its stale cache, the harder case)
    db_user.rotate("third-Pa55word")
    secrets.put(arn, db_user.secret())
    provider.close()
    # Then it connects with the new password
    assert whoami(provider).startswith(db_user.name + "@")
    assert len(secrets.fetches) == 2
    provider.close()


def test_the_stale_cache_is_really_what_is_being_bypassed(db_user: DbUser, secrets: Secrets) -> None:
    # Given the secret changed to a password the database does not know, while the cache is warm
    arn = secrets.create(db_user.secret())
    provider = secrets.provider(arn)
    whoami(provider)
    secrets.put(arn, db_user.secret(password="not-the-real-one"))
    # When the connection drops, Then the cached (still right) password reconnects: no fetch needed
    db_user.kill_connections()
    assert whoami(provider).startswith(db_user.name + "@")
    assert len(secrets.fetches) == 1
    provider.close()


def test_a_password_that_never_works_fails_clearly_without_leaking_it(
    db_user: DbUser, secrets: Secrets, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a secret whose password is wrong and stays wrong
    wrong = "Wr0ng-and-Secret-" + uuid.uuid4().hex
    arn = secrets.create(db_user.secret(password=wrong))
    provider = secrets.provider(arn)
    caplog.set_level(logging.DEBUG, logger="reelay")
    # When a query runs
    with pytest.raises(DatabaseUnavailable) as caught:
        whoami(provider)
    # Then it fails after exactly one forced re-fetch, with a message that says what went wrong
    assert len(secrets.fetches) == 2
    message = str(caught.value)
    assert "Access denied" in message and db_user.name in message
    # And the password is nowhere: not in the message, the traceback, its causes, or our logs
    rendered = "".join(traceback.format_exception(caught.value))
    assert wrong not in message and wrong not in repr(caught.value) and wrong not in rendered
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert all(wrong not in r.getMessage() for r in caplog.records)
    assert any("fetching it again" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("not json at all", "cannot read the database secret"),
        ('["a", "list"]', "is not a JSON object"),
        (json.dumps({"username": "u", "host": "h", "dbname": "d"}), "lacks password"),
        (json.dumps({"username": "u", "password": "p", "host": "h"}), "names no dbname"),
        (
            json.dumps({"username": "u", "password": "p", "host": "h", "dbname": "d", "port": "x"}),
            "invalid port",
        ),
    ],
)
def test_a_malformed_secret_is_a_clear_error(secrets: Secrets, value: str, expected: str) -> None:
    # Given a secret that is not RDS-shaped, When a connection is needed, Then the error says why
    arn = secrets.create({})
    secrets.put(arn, value)
    with pytest.raises(DatabaseUnavailable, match=expected) as caught:
        whoami(secrets.provider(arn))
    assert '"p"' not in str(caught.value)


def test_a_missing_secret_is_a_clear_error(secrets: Secrets) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:reelay/none-AbCdEf"
    with pytest.raises(DatabaseUnavailable, match="cannot read the database secret"):
        whoami(secrets.provider(arn))


def test_db_name_overrides_the_secret_dbname(db_user: DbUser, secrets: Secrets) -> None:
    # Given a secret naming another database, When db_name is given, Then db_name is used
    arn = secrets.create({**db_user.secret(), "dbname": "somewhere_else"})
    provider = secrets.provider(arn, db_name=db_user.database)

    def current_db(conn: Any) -> str:
        with conn.cursor() as cur:
            cur.execute("SELECT DATABASE() AS db")
            return cur.fetchone()["db"]

    assert provider.transaction(current_db) == db_user.database
    provider.close()


def test_from_settings_reads_the_secret_through_the_configured_endpoint(db_user: DbUser) -> None:
    # Given settings with only a secret ARN (as on AWS), in moto
    with mock_aws():
        client = boto3.client("secretsmanager", region_name=REGION)
        arn = client.create_secret(Name="reelay/db", SecretString=json.dumps(db_user.secret()))["ARN"]
        settings = Settings(db_secret_arn=arn, db_name=db_user.database, aws_endpoint_url=None)
        # When a provider is built from them, Then it connects as the secret's user
        provider = ConnectionProvider.from_settings(settings)
        assert whoami(provider).startswith(db_user.name + "@")
        provider.close()


def test_from_settings_honours_the_aws_endpoint_url(db_user: DbUser) -> None:
    # Given Secrets Manager served by a moto server on an ephemeral port (as in the local platform)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint)
        arn = client.create_secret(Name="reelay/db", SecretString=json.dumps(db_user.secret()))["ARN"]
        # When a provider is built from settings naming that endpoint
        settings = Settings(db_secret_arn=arn, db_name=db_user.database, aws_endpoint_url=endpoint)
        provider = ConnectionProvider.from_settings(settings)
        # Then it reads the secret there and connects as the secret's user
        assert whoami(provider).startswith(db_user.name + "@")
        provider.close()
    finally:
        server.stop()


# --- dropped connections --------------------------------------------------------------------
def test_a_dropped_connection_is_replaced_transparently(db_user: DbUser, secrets: Secrets) -> None:
    # Given a provider with a live connection
    provider = secrets.provider(secrets.create(db_user.secret()))
    whoami(provider)
    first = provider.thread_id()
    # When the server kills it, mid-life (the next query hits a dead socket: 2013/2006)
    db_user.kill_connections()
    # Then the next query runs on a new connection
    assert whoami(provider).startswith(db_user.name + "@")
    assert provider.thread_id() not in (None, first)
    provider.close()


def test_a_stale_idle_connection_is_pinged_and_replaced(
    db_user: DbUser, secrets: Secrets, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given connections are pinged before every use (as after a long idle in a warm Lambda)
    monkeypatch.setattr(connection_module, "_IDLE_PING_SECONDS", 0.0)
    provider = secrets.provider(secrets.create(db_user.secret()))
    whoami(provider)
    first = provider.thread_id()
    db_user.kill_connections()
    # When a transaction starts through connection(), Then the dead one is noticed and replaced
    with provider.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 AS one")
        assert cur.fetchone() == {"one": 1}
    assert provider.thread_id() not in (None, first)
    provider.close()


def test_an_unreachable_server_is_a_clear_error(mysql_server_url: str) -> None:
    # Given nothing listens on the port (a port we just bound and released)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    provider = ConnectionProvider.from_url(f"mysql://someone:Hidden-Pw@127.0.0.1:{port}/db")
    with pytest.raises(DatabaseUnavailable, match="2003") as caught:
        whoami(provider)
    assert "Hidden-Pw" not in str(caught.value)


# --- transactions ---------------------------------------------------------------------------
@pytest.fixture
def scratch(database_url: str) -> Iterator[tuple[ConnectionProvider, str]]:
    table = f"scratch_{uuid.uuid4().hex[:8]}"
    provider = ConnectionProvider.from_url(database_url)
    with provider.connection() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (n INT NOT NULL) ENGINE=InnoDB")
    yield provider, table
    with provider.connection() as conn, conn.cursor() as cur:
        cur.execute(f"DROP TABLE {table}")
    provider.close()


def _count(database_url: str, table: str) -> int:
    conn = _root(database_url, urlparse(database_url).path.lstrip("/"))
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        (n,) = cur.fetchone()
    conn.close()
    return n


def test_connection_commits_on_success_and_rolls_back_on_error(
    scratch: tuple[ConnectionProvider, str], database_url: str
) -> None:
    provider, table = scratch
    # When one block succeeds and another raises half way
    with provider.connection() as conn, conn.cursor() as cur:
        cur.execute(f"INSERT INTO {table} VALUES (1)")
    with pytest.raises(RuntimeError), provider.connection() as conn, conn.cursor() as cur:
        cur.execute(f"INSERT INTO {table} VALUES (2)")
        raise RuntimeError("boom")
    # Then only the first is visible to another session
    assert _count(database_url, table) == 1


def test_nested_use_joins_the_outer_transaction(
    scratch: tuple[ConnectionProvider, str], database_url: str
) -> None:
    provider, table = scratch
    with pytest.raises(RuntimeError), provider.connection() as outer:
        with provider.connection() as inner, inner.cursor() as cur:
            assert inner is outer
            cur.execute(f"INSERT INTO {table} VALUES (1)")
        raise RuntimeError("the outer block fails after the inner one finished")
    assert _count(database_url, table) == 0


def test_threads_share_one_provider_safely(
    scratch: tuple[ConnectionProvider, str], database_url: str
) -> None:
    # Given eight threads (a worker's heartbeat and job threads, a gateway's request threads)
    provider, table = scratch
    errors: list[BaseException] = []

    def insert_many() -> None:
        try:
            for i in range(20):
                with provider.connection() as conn, conn.cursor() as cur:
                    cur.execute(f"INSERT INTO {table} VALUES (%s)", (i,))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=insert_many) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # Then every insert landed and no thread saw another's half-done transaction
    assert errors == []
    assert _count(database_url, table) == 160


# --- URLs and settings ----------------------------------------------------------------------
def test_a_url_with_special_characters_in_the_password_connects(db_user: DbUser) -> None:
    db_user.rotate("p@ss:w/rd?#%")
    password = quote(db_user.password, safe="")
    url = f"mysql://{db_user.name}:{password}@{db_user.host}:{db_user.port}/{db_user.database}"
    provider = ConnectionProvider.from_url(url)
    assert whoami(provider).startswith(db_user.name + "@")
    provider.close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "empty"),
        ("postgres://u:TopSecret@h/db", "must start with mysql://"),
        ("mysql://u:TopSecret@h:notaport/db", "invalid port"),
        ("mysql://u:TopSecret@h:3306", "names no database"),
        ("mysql://u:TopSecret@/db", "no host"),
    ],
)
def test_a_bad_url_names_the_problem_not_the_password(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        ConnectionProvider.from_url(url)
    assert "TopSecret" not in str(caught.value)


def test_url_parsing_defaults_and_db_name_fallback() -> None:
    creds = parse_url("mysql://app@db.internal", db_name="reelay")
    assert (creds.host, creds.port, creds.user, creds.password, creds.database) == (
        "db.internal",
        3306,
        "app",
        "",
        "reelay",
    )
    sock = parse_url("mysql://root@/reelay?unix_socket=/run/mysqld/mysqld.sock")
    assert sock.unix_socket == "/run/mysqld/mysqld.sock"
    assert "hunter2" not in repr(Credentials("h", 1, "u", "hunter2", "d"))


def test_from_settings_prefers_the_url_and_needs_one_of_them(database_url: str) -> None:
    both = Settings(database_url=database_url, db_secret_arn="arn:aws:secretsmanager:us-east-1:1:secret:x")
    provider = ConnectionProvider.from_settings(both)
    assert whoami(provider).startswith("root@")  # no Secrets Manager call was needed
    provider.close()
    with pytest.raises(ValueError, match="REELAY_DATABASE_URL or REELAY_DB_SECRET_ARN"):
        ConnectionProvider.from_settings(Settings(database_url=None, db_secret_arn=None))
