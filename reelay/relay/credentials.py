"""kvssink's credential file: written from the task role, atomically, well before the old keys expire.

kvssink never refreshes credentials given as properties or ``AWS_*`` variables; it does re-read the
file at ``credential-path``. Its rules (producer SDK v3.4.2, checked in the source and at run time):

- the file is one line, ``CREDENTIALS <AccessKeyId> <YYYY-MM-DDTHH:mm:SSZ> <SecretKey> <SessionToken>``;
  an expiry already past makes the read fail;
- after a read it caches ``min(expiry, now + 40 min)`` and re-reads the file 3 s before that;
- at that re-read the credentials it finds must have at least 30 s left, otherwise the stream stops
  with STATUS_INVALID_TOKEN_EXPIRATION (0x52000049).

:class:`CredentialFile` keeps those promises; see :meth:`CredentialFile.due_at` for the rule.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# kvssink's own constants (see the module docstring).
KVSSINK_REREAD_LEAD = timedelta(seconds=3)
KVSSINK_MIN_LEFT = timedelta(seconds=30)
# Static keys carry no expiry; kvssink needs one, and one in the future makes it re-read the file.
STATIC_KEYS_LIFETIME = timedelta(hours=1)


@dataclass(frozen=True)
class KvsCredentials:
    """One set of AWS credentials with an aware expiry. The secrets never show in ``repr``."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expires_at: datetime

    def __post_init__(self) -> None:
        if self.expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")
        for name in ("access_key_id", "secret_access_key", "session_token"):
            value = getattr(self, name)
            # The file is space-separated on one line: a blank or a newline would corrupt it.
            if any(c.isspace() for c in value):
                raise ValueError(f"{name} must not contain whitespace")
        if not self.access_key_id or not self.secret_access_key:
            raise ValueError("access_key_id and secret_access_key are required")

    def seconds_left(self, now: datetime) -> float:
        return (self.expires_at - now).total_seconds()


CredentialProvider = Callable[[], KvsCredentials]


def credential_line(creds: KvsCredentials) -> str:
    """The SDK's file format. Whole seconds only: the SDK's parser rejects fractional seconds."""
    expiry = creds.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    parts = ["CREDENTIALS", creds.access_key_id, expiry, creds.secret_access_key]
    if creds.session_token:
        parts.append(creds.session_token)
    return " ".join(parts) + "\n"


def write_credential_file(path: str | os.PathLike[str], creds: KvsCredentials) -> None:
    """Replace ``path`` atomically (temp file in the same directory, fsync, rename), mode 0600.

    kvssink may read the file at any moment: it sees the old line or the new one, never half of one."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(credential_line(creds))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # The rename is durable once the directory entry is.
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class CredentialFile:
    """Owns kvssink's credential file: writes it from ``provider`` and rewrites it well before expiry.

    Call :meth:`write_now` once before the pipeline starts (kvssink reads the file when it starts), then
    either call :meth:`refresh_if_due` periodically or run :meth:`run` on a thread.
    """

    # When to rewrite: half of the current credentials' lifetime before they expire, but never later
    # than MIN_LEAD before it and never earlier than MAX_LEAD before it. MIN_LEAD covers kvssink's
    # 30 s + 3 s plus a poll interval and slack; MAX_LEAD keeps hour-long credentials in use for most
    # of their life (and gives the rewrite 15 min of retries if the provider fails).
    MIN_LEAD = KVSSINK_MIN_LEFT + KVSSINK_REREAD_LEAD + timedelta(seconds=7)
    MAX_LEAD = timedelta(minutes=15)

    def __init__(
        self,
        path: str | os.PathLike[str],
        provider: CredentialProvider,
        *,
        clock: Callable[[], datetime] | None = None,
        poll_seconds: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self.provider = provider
        self.poll_seconds = poll_seconds
        self._clock = clock or (lambda: datetime.now(UTC))
        self._current: KvsCredentials | None = None
        self._written_at: datetime | None = None
        self._lock = threading.Lock()

    @property
    def expires_at(self) -> datetime | None:
        """Expiry of the credentials in the file (None before the first write)."""
        return self._current.expires_at if self._current else None

    @property
    def access_key_id(self) -> str | None:
        return self._current.access_key_id if self._current else None

    def due_at(self) -> datetime | None:
        """When the file must be rewritten. None: it was never written (so: now).

        Why this is safe: kvssink re-reads at (cached expiry - 3 s), where the cached expiry is at most
        the file's expiry E. If we rewrite at E - lead with lead >= MIN_LEAD (> 33 s), then
        - a re-read before our rewrite happens at a time t with E - t >= lead > 30 s left (this covers
          the 40 min cap, where kvssink re-reads while E is still far off);
        - a re-read after it sees fresh credentials, whose own lead again keeps them >= 30 s away.
        Half the lifetime adapts to short test TTLs (a 90 s TTL is rewritten 45 s before expiry).
        """
        if self._current is None or self._written_at is None:
            return None
        lifetime = self._current.expires_at - self._written_at
        lead = min(max(lifetime / 2, self.MIN_LEAD), self.MAX_LEAD)
        return self._current.expires_at - lead

    def write_now(self) -> KvsCredentials:
        """Fetch from the provider and write the file, whatever the schedule says."""
        with self._lock:
            creds = self.provider()
            self._write(creds, self._clock())
            return creds

    def refresh_if_due(self, now: datetime | None = None) -> bool:
        """Rewrite the file if it is due (or was never written). True if it was written.

        If the provider hands back the credentials already in the file (the role's keys have not
        rotated yet), nothing is written and the next call asks again."""
        now = now or self._clock()
        due = self.due_at()
        if due is not None and now < due:
            return False
        with self._lock:
            creds = self.provider()
            if creds == self._current:
                return False
            self._write(creds, now)
            return True

    def _write(self, creds: KvsCredentials, now: datetime) -> None:
        left = creds.seconds_left(now)
        if left < (KVSSINK_MIN_LEFT + KVSSINK_REREAD_LEAD).total_seconds():
            # Still written: it is the best there is, but kvssink stops if it re-reads these.
            log.warning("new kvssink credentials expire in %.0f s: too soon for its 30 s rule", left)
        write_credential_file(self.path, creds)
        self._current, self._written_at = creds, now
        log.info("kvssink credential file written (key %s, %.0f s left)", creds.access_key_id, left)

    def run(self, stop: threading.Event) -> None:
        """Refresh until ``stop`` is set. Provider errors are logged and retried at the next poll."""
        while not stop.is_set():
            try:
                self.refresh_if_due()
            except Exception:
                log.exception("could not refresh kvssink's credential file; retrying")
            stop.wait(self.poll_seconds)


def botocore_provider(session: Any = None) -> CredentialProvider:
    """Credentials from botocore's standard chain (on ECS: the container provider, which refreshes).

    Static keys (no expiry) get a synthetic one, STATIC_KEYS_LIFETIME ahead, so kvssink re-reads the
    file and :class:`CredentialFile` rewrites it in time."""
    import botocore.session

    sess = session or botocore.session.get_session()

    def provide() -> KvsCredentials:
        creds = sess.get_credentials()
        if creds is None:
            raise RuntimeError("no AWS credentials found for kvssink")
        # get_frozen_credentials refreshes RefreshableCredentials when due. botocore has no public
        # accessor for the expiry: read it after the snapshot, and again if a refresh slipped between.
        frozen = creds.get_frozen_credentials()
        expiry = getattr(creds, "_expiry_time", None)
        again = creds.get_frozen_credentials()
        if again != frozen:
            frozen, expiry = again, getattr(creds, "_expiry_time", None)
        if expiry is None:
            expiry = datetime.now(UTC) + STATIC_KEYS_LIFETIME
        return KvsCredentials(
            access_key_id=frozen.access_key,
            secret_access_key=frozen.secret_key,
            session_token=frozen.token or "",
            expires_at=expiry.astimezone(UTC),
        )

    return provide
