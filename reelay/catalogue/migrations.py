"""Versioned schema migrations: ``migrations/NNNN_name.sql``, applied in order, each once.

A MySQL named lock (GET_LOCK) serialises concurrent starters (two Lambdas, the local platform
restarting), and ``schema_migrations`` records what was applied. DDL commits implicitly in MySQL,
so every statement is written to be re-runnable (IF NOT EXISTS) in case a run died half way.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pymysql

from reelay.catalogue.connection import ConnectionProvider, DatabaseUnavailable

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_STATEMENT_END = re.compile(r";[ \t]*(?:\r?\n|$)")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
  version VARCHAR(16) NOT NULL,
  name VARCHAR(255) NOT NULL,
  appliedAt DATETIME(3) NOT NULL,
  PRIMARY KEY (version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
"""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    statements: tuple[str, ...]


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration file, in version order. A misnamed or duplicate file is an error."""
    found: dict[str, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name} is not named NNNN_name.sql")
        version, name = match.groups()
        if version in found:
            raise ValueError(f"two migrations share version {version}")
        found[version] = Migration(version, name, split_statements(path.read_text(encoding="utf-8")))
    return [found[v] for v in sorted(found)]


def split_statements(sql: str) -> tuple[str, ...]:
    """Statements end with ``;`` at the end of a line. Whole-line ``--`` comments are dropped."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    parts = _STATEMENT_END.split("\n".join(lines))
    return tuple(p.strip() for p in parts if p.strip())


def migrate(
    provider: ConnectionProvider, *, directory: Path = MIGRATIONS_DIR, lock_timeout: int = 60
) -> list[str]:
    """Apply every pending migration. Returns the versions applied by this call (often none)."""
    migrations = load_migrations(directory)
    if not migrations:
        raise RuntimeError(f"no migrations in {directory}: was the package built without its .sql files?")
    applied: list[str] = []
    with provider.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT DATABASE() AS db")
        database = cur.fetchone()["db"]
        # Named locks are server-wide: scope ours to this database (names max 64 chars).
        lock = "reelay_migrate_" + hashlib.sha1(database.encode()).hexdigest()[:40]
        cur.execute("SELECT GET_LOCK(%s, %s) AS got", (lock, lock_timeout))
        if cur.fetchone()["got"] != 1:
            raise DatabaseUnavailable(
                f"another migration of {database} held the lock for more than {lock_timeout}s"
            )
        try:
            cur.execute(_CREATE_TABLE)
            cur.execute("SELECT version FROM schema_migrations")
            done = {row["version"] for row in cur.fetchall()}
            for migration in migrations:
                if migration.version in done:
                    continue
                logger.info("applying migration %s_%s", migration.version, migration.name)
                for statement in migration.statements:
                    cur.execute(statement)
                cur.execute(
                    "INSERT INTO schema_migrations (version, name, appliedAt) "
                    "VALUES (%s, %s, UTC_TIMESTAMP(3))",
                    (migration.version, migration.name),
                )
                conn.commit()
                applied.append(migration.version)
            unknown = done - {m.version for m in migrations}
            if unknown:
                logger.warning("database has migrations this code does not know: %s", sorted(unknown))
        finally:
            # The lock dies with the session anyway; keep the original error.
            with contextlib.suppress(pymysql.err.MySQLError):
                cur.execute("DO RELEASE_LOCK(%s)", (lock,))
    return applied
