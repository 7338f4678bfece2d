"""The application's own database user: data access to the catalogue and nothing more.

Deploy-time migrations run as the master user. Every other process (API, upload events, dead
jobs, the worker) connects as the application user, whose secret Secrets Manager rotates with
the alternating-users strategy: rotation creates ``NAME_clone`` (copying NAME's grants) and then
flips the secret between the two users, changing passwords with the master secret.

So the migration only creates the user named in the secret when it is missing; an existing user
keeps its password, since after rotation only the secret knows it. Grants are re-applied to both
users of the pair, so a privilege added later reaches whichever one the secret names.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import pymysql

from reelay.catalogue.connection import (
    ConnectionProvider,
    DatabaseUnavailable,
    default_secrets_provider,
    error_code,
    error_detail,
)

logger = logging.getLogger(__name__)

# Row data only: no DDL, no GRANT, nothing outside the catalogue database.
APP_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
CLONE_SUFFIX = "_clone"  # what the AWS multi-user rotation function appends
ANY_HOST = "%"
_MAX_USER = 32  # MySQL 8 user name limit; the clone name must fit too
_USER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_DATABASE = re.compile(r"^[A-Za-z0-9_]{1,64}$")


@dataclass(frozen=True)
class AppUser:
    """Who the application connects as, from its secret. The password never appears in repr."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class AppUserResult:
    username: str
    created: bool  # False: the user existed and kept its password
    granted: tuple[str, ...]  # the users of the rotation pair that now hold the grants


def rotation_pair(username: str) -> tuple[str, str]:
    """The two users multi-user rotation alternates between: (base, base_clone)."""
    base = username.removesuffix(CLONE_SUFFIX) or username
    return base, base + CLONE_SUFFIX


def check_username(username: Any) -> str:
    if not isinstance(username, str) or not _USER.match(username):
        raise ValueError("database user name must be a letter followed by letters, digits or _")
    base, clone = rotation_pair(username)
    if len(clone) > _MAX_USER:
        raise ValueError(
            f"database user name {base!r} is too long: {clone!r} must fit in {_MAX_USER} characters"
        )
    return username


def check_database(db_name: Any) -> str:
    if not isinstance(db_name, str) or not _DATABASE.match(db_name):
        raise ValueError("database name must be 1-64 letters, digits or _")
    return db_name


def _grant_target(db_name: str) -> str:
    # In a database-level GRANT, _ is a wildcard: escape it so the grant names exactly one database.
    return "`" + db_name.replace("_", "\\_") + "`.*"


def ensure_app_user(
    provider: ConnectionProvider, username: str, password: str, db_name: str
) -> AppUserResult:
    """Create ``username`` with ``password`` if it does not exist, and grant it (and its rotation
    partner, when that exists) row access to ``db_name`` only. ``provider`` must connect as a user
    allowed to create users and grant, the master. Safe to run again: it never resets a password.
    """
    check_username(username)
    check_database(db_name)
    if not isinstance(password, str) or not password:
        raise ValueError(f"the password for database user {username} is empty")
    privileges = ", ".join(APP_PRIVILEGES)
    try:
        with provider.connection() as conn, conn.cursor() as cur:
            created = not _exists(cur, username)
            if created:
                # IF NOT EXISTS: a concurrent run that got there first keeps its (equal) password.
                cur.execute(
                    "CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (username, ANY_HOST, password)
                )
            granted = []
            for user in rotation_pair(username):
                if user == username or _exists(cur, user):
                    cur.execute(f"GRANT {privileges} ON {_grant_target(db_name)} TO %s@%s", (user, ANY_HOST))
                    granted.append(user)
    except pymysql.err.MySQLError as exc:
        # Server messages can quote the statement; make sure the password is not in what we raise.
        raise DatabaseUnavailable(
            f"cannot set up database user {username} on {db_name}: "
            f"MySQL error {error_code(exc)}: {error_detail(exc, password)}"
        ) from None
    logger.info(
        "application database user ready",
        extra={"db_user": username, "user_created": created, "granted": granted, "database": db_name},
    )
    return AppUserResult(username=username, created=created, granted=tuple(granted))


def current_database(provider: ConnectionProvider) -> str:
    """The database ``provider`` connects to (the DSN's or the secret's, whichever won)."""
    with provider.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT DATABASE() AS db")
        return str(cur.fetchone()["db"])


def _exists(cur: Any, username: str) -> bool:
    cur.execute("SELECT 1 FROM mysql.user WHERE User = %s AND Host = %s", (username, ANY_HOST))
    return cur.fetchone() is not None


def app_user_from_secret(
    secret_arn: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    secrets_provider: Any = None,
) -> AppUser:
    """Username and password from an RDS-style JSON secret, always fetched fresh (deploy time)."""
    if not secret_arn:
        raise ValueError("the application database secret ARN is empty")
    if secrets_provider is None:
        secrets_provider = default_secrets_provider(endpoint_url=endpoint_url, region=region)
    try:
        secret = secrets_provider.get(secret_arn, transform="json", force_fetch=True)
    except Exception as exc:
        raise DatabaseUnavailable(
            f"cannot read the application database secret {secret_arn}: {type(exc).__name__}"
        ) from None
    if not isinstance(secret, dict):
        raise DatabaseUnavailable(f"application database secret {secret_arn} is not a JSON object")
    missing = [k for k in ("username", "password") if not secret.get(k)]
    if missing:
        raise DatabaseUnavailable(f"application database secret {secret_arn} lacks {', '.join(missing)}")
    username = secret["username"]
    try:
        check_username(username)
    except ValueError as exc:
        raise DatabaseUnavailable(f"application database secret {secret_arn}: {exc}") from None
    return AppUser(username=username, password=str(secret["password"]))
