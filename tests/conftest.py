"""Fixtures shared by every suite."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import pytest

# Tests never reach real AWS: fake credentials, one region.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "reelay-test")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ReelayTest")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

# The MySQL/MariaDB server the tests use. Each test session makes its own database on it.
# REELAY_TEST_MYSQL_URL names one; otherwise the machine's server at 127.0.0.1:3306 (root, no
# password), and when none answers there, a private MariaDB started for this session, so that
# `make test` needs no database set up by hand on a fresh machine.
DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:3306"
_server: dict[str, str] = {}


def _open(url: str):
    import pymysql

    u = urlparse(url)
    return pymysql.connect(
        host=u.hostname or "127.0.0.1",
        port=u.port or 3306,
        user=u.username or "root",
        password=u.password or "",
        autocommit=True,
        connect_timeout=3,
    )


def resolve_mysql_server_url(default: str = DEFAULT_MYSQL_URL) -> str:
    if "url" in _server:
        return _server["url"]
    url = os.environ.get("REELAY_TEST_MYSQL_URL")
    if not url:
        try:
            _open(default).close()
            url = default
        except Exception:
            url = _start_private_mariadb()
    _server["url"] = url
    return url


def _start_private_mariadb() -> str:
    import atexit
    import shutil
    import tempfile
    from pathlib import Path

    from local.database import PrivateMariaDB

    state = Path(tempfile.mkdtemp(prefix="reelay-test-mysql-"))
    server = PrivateMariaDB(state, port=0)
    server.start()
    atexit.register(shutil.rmtree, state, True)  # atexit runs last-registered first: stop, then remove
    atexit.register(server.stop)
    return f"mysql://root@127.0.0.1:{server.port}"


def _connect_server():
    return _open(resolve_mysql_server_url())


@pytest.fixture(scope="session")
def mysql_server_url() -> str:
    return resolve_mysql_server_url()


@contextmanager
def scratch_database(name: str | None = None, *, prefix: str = "reelay_test") -> Iterator[str]:
    """An empty database on the test server (named, or a fresh name), dropped on the way out.

    Yields its URL; the database name is the URL's last path segment."""
    name = name or f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = _connect_server()
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        try:
            yield f"{resolve_mysql_server_url().rstrip('/')}/{name}"
        finally:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh, empty database on the real server, dropped at the end of the session."""
    with scratch_database() as url:
        yield url
