"""The application's least-privilege database user, on the real server.

Each test makes its own users (dropped afterwards) on a catalogue database migrated once per module.
The database name contains ``_`` on purpose: in a database-level GRANT it is a wildcard.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlparse

import boto3
import pymysql
import pytest
from moto import mock_aws

from reelay.catalogue import ConnectionProvider, DatabaseUnavailable, MySQLCatalogue, migrate
from reelay.catalogue.users import APP_PRIVILEGES, ensure_app_user
from reelay.models import Rendition, Video, VideoStatus
from tests.conftest import scratch_database

pytestmark = pytest.mark.mysql

PASSWORD = "Initial-pa55word"
R360 = Rendition(
    name="360p", width=640, height=360, bandwidth=800_000, codecs="avc1.4d401e", playlist="360p/index.m3u8"
)


def _server(server_url: str, database: str | None = None) -> pymysql.connections.Connection:
    u = urlparse(server_url)
    return pymysql.connect(
        host=u.hostname,
        port=u.port or 3306,
        user=u.username or "root",
        password=u.password or "",
        database=database,
        autocommit=True,
    )


@pytest.fixture(scope="module")
def catalogue_db() -> Iterator[str]:
    with scratch_database(prefix="reelay_app") as url:
        provider = ConnectionProvider.from_url(url)
        migrate(provider)
        provider.close()
        yield url.rsplit("/", 1)[1]


@pytest.fixture
def master(mysql_server_url: str, catalogue_db: str) -> Iterator[ConnectionProvider]:
    provider = ConnectionProvider.from_url(f"{mysql_server_url.rstrip('/')}/{catalogue_db}")
    yield provider
    provider.close()


@pytest.fixture
def app_user(mysql_server_url: str) -> Iterator[str]:
    """A fresh user name; it and its rotation partner are dropped afterwards."""
    name = f"rt_{uuid.uuid4().hex[:10]}"
    yield name
    conn = _server(mysql_server_url)
    with conn.cursor() as cur:
        for user in (name, f"{name}_clone"):
            cur.execute("DROP USER IF EXISTS %s@'%%'", (user,))
    conn.close()


def connect_as(server_url: str, database: str, user: str, password: str) -> ConnectionProvider:
    u = urlparse(server_url)
    return ConnectionProvider.from_url(
        f"mysql://{user}:{quote(password, safe='')}@{u.hostname}:{u.port or 3306}/{database}"
    )


def grants(server_url: str, user: str) -> list[str]:
    """SHOW GRANTS, without the password hash MariaDB appends to the USAGE line."""
    conn = _server(server_url)
    with conn.cursor() as cur:
        cur.execute("SHOW GRANTS FOR %s@'%%'", (user,))
        rows = [re.sub(r" IDENTIFIED BY PASSWORD '[^']*'", "", row[0]) for row in cur.fetchall()]
    conn.close()
    return rows


def user_count(server_url: str, *names: Any) -> int:
    """How many of these user names exist. Named, not server-wide: other test sessions on the same
    server create and drop their own users concurrently."""
    wanted = [n for n in names if isinstance(n, str)] or [""]
    wanted += [f"{n}_clone" for n in wanted]
    conn = _server(server_url)
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT COUNT(*) FROM mysql.user WHERE User IN ({', '.join(['%s'] * len(wanted))})", wanted
        )
        (count,) = cur.fetchone()
    conn.close()
    return count


def can_log_in(server_url: str, database: str, user: str, password: str) -> bool:
    provider = connect_as(server_url, database, user, password)
    try:
        with provider.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) AS n FROM videos")
            return cur.fetchone()["n"] >= 0
    except DatabaseUnavailable as exc:
        assert "Access denied" in str(exc), exc
        return False
    finally:
        provider.close()


def mysql_error(provider: ConnectionProvider, sql: str) -> int | None:
    """Run sql; the MySQL error number it fails with, or None when it succeeds."""
    try:
        with provider.connection() as conn, conn.cursor() as cur:
            cur.execute(sql)
    except pymysql.err.MySQLError as exc:
        return exc.args[0]
    return None


# --- creating the user -----------------------------------------------------------------------
def test_creates_the_user_with_row_access_to_the_catalogue_only(
    master: ConnectionProvider, app_user: str, catalogue_db: str, mysql_server_url: str
) -> None:
    # Given a migrated catalogue and no application user
    # When the migration ensures the application user
    result = ensure_app_user(master, app_user, PASSWORD, catalogue_db)
    # Then the user was created and granted
    assert result.username == app_user
    assert result.created is True
    assert result.granted == (app_user,)
    # And SHOW GRANTS lists nothing global beyond USAGE, and only DML on exactly this database
    shown = grants(mysql_server_url, app_user)
    assert len(shown) == 2, shown
    usage = next(g for g in shown if " ON *.* " in g)
    assert usage.startswith("GRANT USAGE ON *.* TO "), usage
    dml = next(g for g in shown if " ON *.* " not in g)
    escaped = catalogue_db.replace("_", "\\_")
    assert dml.startswith(f"GRANT {', '.join(APP_PRIVILEGES)} ON `{escaped}`.* TO "), dml
    # And it can log in with the password it was given
    assert can_log_in(mysql_server_url, catalogue_db, app_user, PASSWORD)


def test_app_user_runs_the_catalogue_but_cannot_change_the_schema(
    master: ConnectionProvider, app_user: str, catalogue_db: str, mysql_server_url: str
) -> None:
    # Given the application user
    ensure_app_user(master, app_user, PASSWORD, catalogue_db)
    provider = connect_as(mysql_server_url, catalogue_db, app_user, PASSWORD)
    catalogue = MySQLCatalogue(provider)
    try:
        # When it runs a video through its whole life
        video = catalogue.create(
            Video(
                video_id=uuid.uuid4().hex,
                video_key="uploads/x/source.mp4",
                display_name="Harbour",
                owner_id=f"owner-{app_user}",
                email="owner@example.com",
            )
        )
        assert catalogue.mark_uploaded(video.video_id, size_bytes=10, content_type="video/mp4")
        assert catalogue.claim(video.video_id, "worker-1", 60) is not None
        assert catalogue.heartbeat(video.video_id, "worker-1", lease_seconds=60, progress=50, playable=False)
        assert catalogue.complete(video.video_id, "worker-1", duration_seconds=1.0, renditions=[R360])
        catalogue.update_metadata(video.video_id, display_name="Harbour at dusk")
        # Then every catalogue operation works
        got = catalogue.get(video.video_id)
        assert got.status == VideoStatus.READY
        assert got.display_name == "Harbour at dusk"
        assert video.video_id in [v.video_id for v in catalogue.list_ready(limit=100).items]
        assert [v.video_id for v in catalogue.list_by_owner(f"owner-{app_user}", limit=10).items] == [
            video.video_id
        ]
        catalogue.delete(video.video_id)
        assert catalogue.list_by_owner(f"owner-{app_user}", limit=10).items == []
        # But it cannot create, alter or drop tables, read the user table, or hand out rights
        assert mysql_error(provider, "CREATE TABLE intruder (id INT)") == 1142
        assert mysql_error(provider, "DROP TABLE videos") == 1142
        assert mysql_error(provider, "ALTER TABLE videos ADD COLUMN x INT") == 1142
        assert mysql_error(provider, "TRUNCATE TABLE videos") == 1142
        assert mysql_error(provider, "SELECT User FROM mysql.user") == 1142
        assert mysql_error(provider, f"GRANT SELECT ON `{catalogue_db}`.* TO '{app_user}'@'%'") in (
            1044,
            1142,
        )
    finally:
        provider.close()
    # And the schema is as the migration left it
    conn = _server(mysql_server_url, catalogue_db)
    with conn.cursor() as cur:
        cur.execute("SHOW TABLES LIKE 'intruder'")
        assert cur.fetchall() == ()
        cur.execute("SHOW TABLES LIKE 'videos'")
        assert len(cur.fetchall()) == 1
    conn.close()


def test_running_again_is_harmless_and_keeps_a_rotated_password(
    master: ConnectionProvider, app_user: str, catalogue_db: str, mysql_server_url: str
) -> None:
    # Given the application user, whose password rotation has since changed
    ensure_app_user(master, app_user, PASSWORD, catalogue_db)
    before = grants(mysql_server_url, app_user)
    conn = _server(mysql_server_url)
    with conn.cursor() as cur:
        cur.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (app_user, "Rotated-pa55word"))
    conn.close()
    # When the migration runs again with the original password (twice, as on two updates)
    first = ensure_app_user(master, app_user, PASSWORD, catalogue_db)
    second = ensure_app_user(master, app_user, PASSWORD, catalogue_db)
    # Then nothing was created and the rotated password still works, the old one does not
    assert first.created is False and second.created is False
    assert can_log_in(mysql_server_url, catalogue_db, app_user, "Rotated-pa55word")
    assert not can_log_in(mysql_server_url, catalogue_db, app_user, PASSWORD)
    # And the grants are the same as before
    assert grants(mysql_server_url, app_user) == before


def test_grants_reach_both_users_of_the_rotation_pair(
    master: ConnectionProvider, app_user: str, catalogue_db: str, mysql_server_url: str
) -> None:
    # Given the application user, and its clone made by rotation (here: without grants yet)
    ensure_app_user(master, app_user, PASSWORD, catalogue_db)
    clone = f"{app_user}_clone"
    conn = _server(mysql_server_url)
    with conn.cursor() as cur:
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (clone, "Clone-pa55word"))
    conn.close()
    assert not can_log_in(mysql_server_url, catalogue_db, clone, "Clone-pa55word")  # no rights yet
    # When the secret names the clone and the migration runs with some other password
    result = ensure_app_user(master, clone, "Not-the-clone-password", catalogue_db)
    # Then both users hold the grants, and the clone keeps the password rotation gave it
    assert result.created is False
    assert result.granted == (app_user, clone)
    assert can_log_in(mysql_server_url, catalogue_db, clone, "Clone-pa55word")
    assert not can_log_in(mysql_server_url, catalogue_db, clone, "Not-the-clone-password")
    assert grants(mysql_server_url, clone) == [
        g.replace(f"`{app_user}`@", f"`{clone}`@") for g in grants(mysql_server_url, app_user)
    ]


def test_the_grant_names_one_database_not_a_wildcard_match(
    master: ConnectionProvider, app_user: str, catalogue_db: str, mysql_server_url: str
) -> None:
    # Given a neighbour database whose name matches the catalogue's with _ read as a wildcard
    neighbour = catalogue_db.replace("_", "x")
    with scratch_database(neighbour):
        conn = _server(mysql_server_url)
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE `{neighbour}`.secrets (v INT)")
        conn.close()
        # When the application user is ensured on the catalogue
        ensure_app_user(master, app_user, PASSWORD, catalogue_db)
        provider = connect_as(mysql_server_url, catalogue_db, app_user, PASSWORD)
        # Then it cannot read the neighbour
        assert mysql_error(provider, f"SELECT * FROM `{neighbour}`.secrets") == 1142
        assert mysql_error(provider, "SELECT COUNT(*) FROM videos") is None
        provider.close()


def test_a_password_with_quotes_and_backslashes_is_data_not_sql(
    master: ConnectionProvider, app_user: str, catalogue_db: str, mysql_server_url: str
) -> None:
    # Given a password full of SQL metacharacters
    password = "it's \"q\" \\ %s ; -- `x` 'y'"
    # When the user is created with it, Then exactly that password logs in
    assert ensure_app_user(master, app_user, password, catalogue_db).created
    assert can_log_in(mysql_server_url, catalogue_db, app_user, password)
    assert not can_log_in(mysql_server_url, catalogue_db, app_user, "it's")


# --- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "username",
    ["", "1abc", "a-b", "a'b", "x'@'%' IDENTIFIED BY 'p'; --", "a" * 27, "usér", None, 42],
    ids=lambda v: repr(v)[:16],
)
def test_bad_user_names_are_refused_and_create_nothing(
    master: ConnectionProvider, catalogue_db: str, mysql_server_url: str, username: Any
) -> None:
    # Given the server's users, When a bad name is ensured, Then ValueError and no new user
    count = user_count(mysql_server_url, username)
    with pytest.raises(ValueError, match="user name"):
        ensure_app_user(master, username, PASSWORD, catalogue_db)
    assert user_count(mysql_server_url, username) == count


@pytest.mark.parametrize(
    "db_name", ["", "a-b", "a`b", "db.*", "x" * 65, "*", None], ids=lambda v: repr(v)[:16]
)
def test_bad_database_names_are_refused_and_create_nothing(
    master: ConnectionProvider, app_user: str, mysql_server_url: str, db_name: Any
) -> None:
    count = user_count(mysql_server_url, app_user)
    with pytest.raises(ValueError, match="database name"):
        ensure_app_user(master, app_user, PASSWORD, db_name)
    assert user_count(mysql_server_url, app_user) == count == 0


@pytest.mark.parametrize("password", ["", None])
def test_an_empty_password_is_refused(
    master: ConnectionProvider, app_user: str, catalogue_db: str, mysql_server_url: str, password: Any
) -> None:
    count = user_count(mysql_server_url, app_user)
    with pytest.raises(ValueError, match="password"):
        ensure_app_user(master, app_user, password, catalogue_db)
    assert user_count(mysql_server_url, app_user) == count == 0


def test_a_caller_without_rights_gets_a_clear_error_that_hides_the_password(
    master: ConnectionProvider, app_user: str, catalogue_db: str, mysql_server_url: str
) -> None:
    # Given the application user itself (no right to create users)
    ensure_app_user(master, app_user, PASSWORD, catalogue_db)
    provider = connect_as(mysql_server_url, catalogue_db, app_user, PASSWORD)
    count = user_count(mysql_server_url, f"{app_user}x")
    # When it tries to ensure another user
    with pytest.raises(DatabaseUnavailable) as caught:
        ensure_app_user(provider, f"{app_user}x", "Other-Secret-99", catalogue_db)
    provider.close()
    # Then the error names the user and the MySQL error, never the password, and nothing was made
    message = str(caught.value)
    assert f"{app_user}x" in message and "MySQL error 1142" in message
    assert "Other-Secret-99" not in message and PASSWORD not in message
    assert user_count(mysql_server_url, f"{app_user}x") == count == 0


# --- the migrate custom resource ---------------------------------------------------------------
@pytest.fixture
def handler_env(
    monkeypatch: pytest.MonkeyPatch, mysql_server_url: str, catalogue_db: str
) -> Iterator[dict[str, Any]]:
    """The migrate Lambda's environment: the master DSN, and the app secret in (mocked) Secrets Manager."""
    from reelay.settings import get_settings

    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        monkeypatch.setenv("REELAY_DATABASE_URL", f"{mysql_server_url.rstrip('/')}/{catalogue_db}")
        monkeypatch.delenv("REELAY_DB_SECRET_ARN", raising=False)
        monkeypatch.delenv("REELAY_AWS_ENDPOINT_URL", raising=False)
        get_settings.cache_clear()
        yield {"client": client, "monkeypatch": monkeypatch}
    get_settings.cache_clear()


def _use_secret(env: dict[str, Any], value: str) -> str:
    from reelay.settings import get_settings

    arn = env["client"].create_secret(Name=f"app-{uuid.uuid4().hex[:8]}", SecretString=value)["ARN"]
    env["monkeypatch"].setenv("REELAY_APP_DB_SECRET_ARN", arn)
    get_settings.cache_clear()
    return arn


def _event(request: str) -> dict[str, Any]:
    return {
        "RequestType": request,
        "PhysicalResourceId": "reelay-catalogue-schema",
        "ResourceProperties": {"ServiceToken": "x", "AppUser": "reelay_app"},
    }


def test_migrate_handler_ensures_the_app_user_from_its_secret(
    handler_env: dict[str, Any], app_user: str, catalogue_db: str, mysql_server_url: str
) -> None:
    from lambdas.migrate.handler import lambda_handler
    from tests.fakes import FakeLambdaContext

    # Given the application secret, as RDS's attachment shapes it
    secret = {"engine": "mysql", "host": "db.internal", "port": 3306, "username": app_user}
    _use_secret(handler_env, json.dumps({**secret, "password": PASSWORD, "dbname": catalogue_db}))
    # When the stack is created
    out = lambda_handler(_event("Create"), FakeLambdaContext())
    # Then the user exists with the secret's password and the response names it
    assert out["Data"]["appUser"] == app_user
    assert can_log_in(mysql_server_url, catalogue_db, app_user, PASSWORD)
    # When the stack is updated after rotation changed the password, Then the password stays
    conn = _server(mysql_server_url)
    with conn.cursor() as cur:
        cur.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (app_user, "Rotated-pa55word"))
    conn.close()
    again = lambda_handler(_event("Update"), FakeLambdaContext())
    assert again["Data"] == {
        "applied": "",
        "schemaVersion": out["Data"]["schemaVersion"],
        "appUser": app_user,
    }
    assert can_log_in(mysql_server_url, catalogue_db, app_user, "Rotated-pa55word")


@pytest.mark.parametrize(
    "secret_string",
    ['{"username": "reelay_app"}', '{"password": "Hidden-pa55word"}', "not json Hidden-pa55word", "[1, 2]"],
    ids=["no-password", "no-username", "not-json", "not-an-object"],
)
def test_migrate_handler_fails_the_deploy_on_a_bad_app_secret(
    handler_env: dict[str, Any], mysql_server_url: str, secret_string: str
) -> None:
    from lambdas.migrate.handler import lambda_handler
    from tests.fakes import FakeLambdaContext

    # Given an application secret that is not usable
    arn = _use_secret(handler_env, secret_string)
    count = user_count(mysql_server_url, "reelay_app")
    # When the stack is created, Then the handler raises (CloudFormation rolls back), names the
    # secret, never echoes its content, and creates no user
    with pytest.raises(DatabaseUnavailable) as caught:
        lambda_handler(_event("Create"), FakeLambdaContext())
    assert arn in str(caught.value)
    assert "Hidden-pa55word" not in str(caught.value)
    assert user_count(mysql_server_url, "reelay_app") == count


def test_migrate_handler_fails_the_deploy_when_the_app_secret_is_missing(
    handler_env: dict[str, Any], mysql_server_url: str
) -> None:
    from lambdas.migrate.handler import lambda_handler
    from reelay.settings import get_settings
    from tests.fakes import FakeLambdaContext

    # Given an application secret ARN that names nothing
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf"
    handler_env["monkeypatch"].setenv("REELAY_APP_DB_SECRET_ARN", missing)
    get_settings.cache_clear()
    # When the stack is created, Then the handler raises and says which secret it could not read
    with pytest.raises(DatabaseUnavailable, match="cannot read the application database secret"):
        lambda_handler(_event("Create"), FakeLambdaContext())
