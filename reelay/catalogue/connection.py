"""PyMySQL connections for the catalogue, from a DSN or from a rotated Secrets Manager secret.

The secret is cached by Powertools parameters for ``max_age`` seconds. When the database refuses
the cached password (MySQL error 1045/1698) the secret is fetched again, bypassing the cache, and the
connection is retried once: a rotated password is picked up without a redeploy.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import pymysql
from pymysql.connections import Connection
from pymysql.constants import CLIENT
from pymysql.cursors import DictCursor

from reelay.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Access denied: 1045, or 1698 from MariaDB for some users and plugins.
ACCESS_DENIED = frozenset({1045, 1698})
DEADLOCK = 1213
# Gone away, lost, killed (MariaDB), idle-disconnected (MySQL 8.0.24+).
DROPPED = frozenset({2006, 2013, 1927, 4031})
_IDLE_PING_SECONDS = 10.0
_SESSION_INIT = (
    "SET time_zone = '+00:00', "
    "sql_mode = 'STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
    "NO_ENGINE_SUBSTITUTION'"
)


class DatabaseUnavailable(RuntimeError):
    """The catalogue database cannot be reached or refuses us. Never carries a password.

    Not a ReelayError on purpose: it is transient infrastructure trouble, so callers retry it
    (S3 events, SQS) and the API answers a generic 5xx without naming hosts or users.
    """


@dataclass(frozen=True)
class Credentials:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    unix_socket: str | None = None

    @property
    def where(self) -> str:
        place = self.unix_socket or f"{self.host}:{self.port}"
        return f"{self.user}@{place}/{self.database}"


def error_code(exc: BaseException) -> int | None:
    """The MySQL error number of a PyMySQL error, or None."""
    if isinstance(exc, pymysql.err.InterfaceError):
        return 2006  # "(0, '')": the connection was already closed
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def is_dropped(exc: BaseException) -> bool:
    return error_code(exc) in DROPPED


def error_detail(exc: BaseException, password: str) -> str:
    """The server's message of a PyMySQL error, or its class name if the message quotes ``password``."""
    detail = str(exc.args[1]) if len(exc.args) > 1 else type(exc).__name__
    return type(exc).__name__ if password and password in detail else detail


def default_secrets_provider(*, endpoint_url: str | None, region: str | None) -> Any:
    """Powertools' SecretsProvider on a Secrets Manager client from the one client factory."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    from reelay.adapters.aws import client

    return SecretsProvider(boto3_client=client("secretsmanager", endpoint_url=endpoint_url, region=region))


def tls_options(enabled: bool, ca_file: str | None) -> dict[str, Any] | None:
    """PyMySQL ``ssl`` options. With a CA file the server certificate is verified; without one
    the link is still encrypted (RDS with require_secure_transport accepts it) but not verified."""
    if not enabled:
        return None
    if ca_file:
        return {"ca": ca_file, "check_hostname": True}
    return {"check_hostname": False}


class ConnectionProvider:
    """One reusable connection (warm Lambdas, the worker), guarded by a lock.

    ``load_credentials(force)`` returns the credentials; ``force=True`` must bypass any cache.
    """

    def __init__(
        self,
        load_credentials: Callable[[bool], Credentials],
        *,
        refreshable: bool = False,
        connect_timeout: int = 5,
        read_timeout: int | None = 120,
        tls: dict[str, Any] | None = None,
    ) -> None:
        self._load = load_credentials
        self._tls = tls
        self._refreshable = refreshable
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._lock = threading.RLock()
        self._conn: Connection | None = None
        self._depth = 0
        self._last_used = 0.0

    # --- constructors ---------------------------------------------------------------------------
    @classmethod
    def from_url(cls, url: str, *, db_name: str | None = None) -> ConnectionProvider:
        """``mysql://user:pass@host:port/db`` (user and password percent-encoded if needed).

        ``?unix_socket=/path`` connects through a socket instead of TCP.
        """
        creds = parse_url(url, db_name=db_name)
        return cls(lambda _force: creds)

    @classmethod
    def from_secret(
        cls,
        secret_arn: str,
        *,
        db_name: str | None = None,
        max_age: int = 300,
        endpoint_url: str | None = None,
        region: str | None = None,
        secrets_provider: Any = None,
    ) -> ConnectionProvider:
        """An RDS-style JSON secret: username, password, host, port, dbname.

        ``db_name`` wins over the secret's dbname. ``endpoint_url`` points Secrets Manager at moto.
        """
        if not secret_arn:
            raise ValueError("secret_arn is empty")
        if secrets_provider is None:
            secrets_provider = default_secrets_provider(endpoint_url=endpoint_url, region=region)

        def load(force: bool) -> Credentials:
            try:
                secret = secrets_provider.get(
                    secret_arn, transform="json", max_age=max_age, force_fetch=force
                )
            except Exception as exc:
                raise DatabaseUnavailable(
                    f"cannot read the database secret {secret_arn}: {type(exc).__name__}"
                ) from None
            return credentials_from_secret(secret, secret_arn=secret_arn, db_name=db_name)

        return cls(load, refreshable=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionProvider:
        """REELAY_DATABASE_URL wins; otherwise REELAY_DB_SECRET_ARN (AWS, rotated)."""
        if settings.database_url:
            provider = cls.from_url(settings.database_url, db_name=settings.db_name)
        elif settings.db_secret_arn:
            provider = cls.from_secret(
                settings.db_secret_arn,
                db_name=settings.db_name,
                max_age=settings.db_secret_max_age,
                endpoint_url=settings.aws_endpoint_url,
                region=settings.aws_region,
            )
        else:
            raise ValueError("set REELAY_DATABASE_URL or REELAY_DB_SECRET_ARN to reach the catalogue")
        provider._tls = tls_options(settings.db_tls, settings.db_tls_ca_file)
        return provider

    # --- use --------------------------------------------------------------------------------------
    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection inside a transaction: commit on success, rollback on error.

        Nested use in one thread joins the outer transaction. Other threads wait for the lock.
        """
        with self._lock:
            if self._depth:
                assert self._conn is not None
                yield self._conn
                return
            conn = self._ensure()
            self._depth = 1
            try:
                yield conn
            except BaseException:
                try:
                    conn.rollback()
                except Exception:
                    self._discard()
                raise
            else:
                try:
                    conn.commit()
                except pymysql.err.MySQLError as exc:
                    # The work may or may not have landed: never retry it blindly.
                    self._discard()
                    raise DatabaseUnavailable(
                        f"catalogue commit failed, outcome unknown: MySQL error {error_code(exc)}"
                    ) from None
            finally:
                self._depth = 0
                self._last_used = time.monotonic()

    def transaction(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a transaction; once more if the connection dropped or a deadlock hit.

        A transaction that dies before COMMIT was rolled back by the server, so running the work
        again is safe.
        """
        for attempt in (1, 2):
            try:
                with self.connection() as conn:
                    return work(conn)
            except pymysql.err.MySQLError as exc:
                retryable = is_dropped(exc) or error_code(exc) == DEADLOCK
                if not retryable or self._depth:
                    raise
                if is_dropped(exc):
                    self._discard()
                if attempt == 2:
                    raise DatabaseUnavailable(f"catalogue database error {error_code(exc)}: {exc}") from None
                logger.warning("catalogue transaction retried after MySQL error %s", error_code(exc))
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            self._discard()

    def thread_id(self) -> int | None:
        """The server's id for the current connection (tests kill it to simulate a drop)."""
        with self._lock:
            return self._conn.thread_id() if self._conn is not None and self._conn.open else None

    # --- internals --------------------------------------------------------------------------------
    def _ensure(self) -> Connection:
        conn = self._conn
        if conn is not None and conn.open:
            if time.monotonic() - self._last_used < _IDLE_PING_SECONDS:
                return conn
            try:
                conn.ping(reconnect=False)
                return conn
            except pymysql.err.MySQLError as exc:
                logger.info("catalogue connection went stale (%s); reconnecting", error_code(exc))
        self._discard()
        self._conn = self._connect()
        return self._conn

    def _connect(self) -> Connection:
        creds = self._load(False)
        try:
            return self._open(creds)
        except pymysql.err.MySQLError as exc:
            code = error_code(exc)
            if code in ACCESS_DENIED and self._refreshable:
                logger.warning("database refused the cached secret; fetching it again (rotation?)")
                creds = self._load(True)
            elif code in DROPPED or code == 2003:
                pass  # one more try for a blip
            else:
                raise self._unavailable(creds, exc) from None
        try:
            return self._open(creds)
        except pymysql.err.MySQLError as exc:
            raise self._unavailable(creds, exc) from None

    def _open(self, creds: Credentials) -> Connection:
        return pymysql.connect(
            host=creds.host,
            port=creds.port,
            user=creds.user,
            password=creds.password,
            database=creds.database,
            unix_socket=creds.unix_socket,
            charset="utf8mb4",
            autocommit=False,
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
            write_timeout=self._read_timeout,
            init_command=_SESSION_INIT,
            cursorclass=DictCursor,
            # rowcount = rows matched, not rows changed: a same-millisecond heartbeat still counts.
            client_flag=CLIENT.FOUND_ROWS,
            ssl=self._tls,
        )

    @staticmethod
    def _unavailable(creds: Credentials, exc: BaseException) -> DatabaseUnavailable:
        # Server messages name the user and host, never the password; the DSN is not repeated.
        return DatabaseUnavailable(
            f"cannot connect to the catalogue database as {creds.where}: "
            f"MySQL error {error_code(exc)}: {error_detail(exc, creds.password)}"
        )

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # already dead: nothing to tell
                conn.close()


def parse_url(url: str, *, db_name: str | None = None) -> Credentials:
    """Parse a mysql:// DSN. Errors name the problem, never the password."""
    if not isinstance(url, str) or not url:
        raise ValueError("database URL is empty")
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb", "mysql+pymysql"):
        raise ValueError("database URL must start with mysql://")
    try:
        port = parts.port or 3306
    except ValueError:
        raise ValueError("database URL has an invalid port") from None
    socket = parse_qs(parts.query).get("unix_socket", [None])[0]
    database = unquote(parts.path.lstrip("/")) or db_name
    if not parts.hostname and not socket:
        raise ValueError("database URL has no host")
    if not database:
        raise ValueError("database URL names no database")
    return Credentials(
        host=parts.hostname or "localhost",
        port=port,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=database,
        unix_socket=socket,
    )


def credentials_from_secret(secret: Any, *, secret_arn: str, db_name: str | None) -> Credentials:
    if not isinstance(secret, dict):
        raise DatabaseUnavailable(f"database secret {secret_arn} is not a JSON object")
    missing = [k for k in ("username", "password", "host") if not secret.get(k)]
    if missing:
        raise DatabaseUnavailable(f"database secret {secret_arn} lacks {', '.join(missing)}")
    database = db_name or secret.get("dbname")
    if not database:
        raise DatabaseUnavailable(f"database secret {secret_arn} names no dbname and none was given")
    try:
        port = int(secret.get("port") or 3306)
    except (TypeError, ValueError):
        raise DatabaseUnavailable(f"database secret {secret_arn} has an invalid port") from None
    return Credentials(
        host=str(secret["host"]),
        port=port,
        user=str(secret["username"]),
        password=str(secret["password"]),
        database=str(database),
    )
