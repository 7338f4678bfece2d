"""kvssink's credential file: its format, its atomic write, and a refresh rule kvssink never trips over."""

from __future__ import annotations

import os
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import botocore.session
import pytest
from botocore.credentials import RefreshableCredentials

from reelay.relay.credentials import (
    STATIC_KEYS_LIFETIME,
    CredentialFile,
    KvsCredentials,
    botocore_provider,
    credential_line,
    write_credential_file,
)

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def creds(key: str = "ASIAKEY1", *, expires: datetime, token: str = "tok") -> KvsCredentials:
    return KvsCredentials(key, "s3cr3t/+=", token, expires)


def test_the_line_is_in_the_sdk_format_with_whole_seconds_in_utc():
    # Given credentials expiring at a time with microseconds, in another zone
    expiry = datetime(2026, 12, 1, 14, 30, 15, 987654, tzinfo=UTC).astimezone(ZoneInfo("Europe/Paris"))
    line = credential_line(creds(expires=expiry))

    # Then it is one line, CREDENTIALS <key> <UTC expiry, no fraction> <secret> <token>
    assert line == "CREDENTIALS ASIAKEY1 2026-12-01T14:30:15Z s3cr3t/+= tok\n"
    # And long-term keys (no session token) leave the token out, which the SDK's parser accepts
    no_token = credential_line(creds(expires=expiry, token=""))
    assert no_token == "CREDENTIALS ASIAKEY1 2026-12-01T14:30:15Z s3cr3t/+=\n"


def test_secrets_never_show_in_repr_and_bad_values_are_refused():
    c = creds(expires=T0)
    assert "s3cr3t" not in repr(c) and "tok" not in repr(c) and "ASIAKEY1" in repr(c)
    with pytest.raises(ValueError):
        KvsCredentials("AK", "secret", "tok", datetime(2026, 1, 1))  # naive expiry
    with pytest.raises(ValueError):
        KvsCredentials("AK", "sec ret", "tok", T0)  # a blank would split the line


def test_the_file_is_replaced_atomically_with_mode_0600(tmp_path: Path):
    # Given an existing credential file that someone made world-readable
    path = tmp_path / "kvs.credentials"
    path.write_text("old\n")
    path.chmod(0o644)
    inode_before = path.stat().st_ino

    # When new credentials are written
    write_credential_file(path, creds(expires=T0))

    # Then the file is a new inode (a rename, so a reader sees old or new, never half), 0600,
    # holding exactly the new line, and no temp file is left behind
    assert path.stat().st_ino != inode_before
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == credential_line(creds(expires=T0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kvs.credentials"]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class RotatingRole:
    """Like the ECS agent (and the stand-in): the same key until half its life, then a new one."""

    def __init__(self, clock: Clock, ttl: timedelta) -> None:
        self.clock, self.ttl = clock, ttl
        self.issued: list[KvsCredentials] = []
        self._issued_at: datetime | None = None

    def __call__(self) -> KvsCredentials:
        now = self.clock()
        if not self.issued or now >= self._issued_at + self.ttl / 2:  # type: ignore[operator]
            self.issued.append(creds(f"ASIA{len(self.issued)}", expires=now + self.ttl))
            self._issued_at = now
        return self.issued[-1]


def kvssink_rereads(path: Path, start: datetime, end: datetime, step: timedelta, tick) -> list[float]:
    """kvssink's file provider, modelled from the SDK: after each read it caches min(expiry, now+40 min)
    and reads again 3 s before that. Returns the seconds left on what it found at each re-read."""
    left_at_reread: list[float] = []
    now = start
    cached = None
    while now < end:
        tick(now)
        if cached is None or now >= cached - timedelta(seconds=3):
            _, _, expiry, *_ = path.read_text().split()
            expires = datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            if cached is not None:
                left_at_reread.append((expires - now).total_seconds())
            cached = min(expires, now + timedelta(minutes=40))
        now += step
    return left_at_reread


@pytest.mark.parametrize(
    "ttl",
    [
        timedelta(seconds=80),
        timedelta(minutes=15),
        # kvssink's 40 min cap makes it re-read 13 s before these expire: the file must be new by then
        timedelta(minutes=40, seconds=10),
        timedelta(hours=1),
        timedelta(hours=6),
    ],
)
def test_kvssink_always_finds_credentials_with_more_than_30_s_left(tmp_path: Path, ttl: timedelta):
    # Given a role whose keys live `ttl`, and the file written at start
    clock = Clock(T0)
    role = RotatingRole(clock, ttl)
    cf = CredentialFile(tmp_path / "c", role, clock=clock)
    cf.write_now()

    def tick(now: datetime) -> None:
        clock.now = now
        cf.refresh_if_due(now)

    # When kvssink runs for several lifetimes (and the 40 min cap) with a 1 s poll
    span = max(ttl * 4, timedelta(hours=3))
    step = timedelta(seconds=1) if ttl < timedelta(hours=1) else timedelta(seconds=5)
    found = kvssink_rereads(tmp_path / "c", T0, T0 + span, step, tick)

    # Then it re-read the file several times, and every time the credentials had over 30 s left
    assert len(found) >= 3
    assert min(found) > 30, found
    # And the role was asked for new keys, not once per poll
    assert 2 <= len(role.issued) <= span / (ttl / 2) + 2


def test_the_rule_rewrites_half_a_lifetime_before_expiry_within_bounds(tmp_path: Path):
    # Given files written with keys of different lifetimes
    def due_lead(lifetime: timedelta) -> timedelta:
        clock = Clock(T0)
        cf = CredentialFile(tmp_path / "c", lambda: creds(expires=T0 + lifetime), clock=clock)
        cf.write_now()
        return T0 + lifetime - cf.due_at()  # type: ignore[operator]

    # Then the rewrite is due half a lifetime before expiry, at least 40 s and at most 15 min before
    assert due_lead(timedelta(minutes=10)) == timedelta(minutes=5)
    assert due_lead(timedelta(seconds=60)) == timedelta(seconds=40)
    assert due_lead(timedelta(hours=6)) == timedelta(minutes=15)


def test_unchanged_credentials_are_not_rewritten_and_a_failing_provider_is_retried(tmp_path: Path):
    # Given a file written with keys that the provider keeps returning
    clock = Clock(T0)
    same = creds(expires=T0 + timedelta(minutes=10))
    calls: list[str] = []

    def provider() -> KvsCredentials:
        calls.append("call")
        if len(calls) == 3:
            raise RuntimeError("metadata endpoint down")
        return same

    cf = CredentialFile(tmp_path / "c", provider, clock=clock, poll_seconds=0.01)
    cf.write_now()
    mtime = os.stat(tmp_path / "c").st_mtime_ns

    # When the rewrite is due but the provider returns the same keys
    clock.now = T0 + timedelta(minutes=6)
    assert cf.refresh_if_due() is False
    assert os.stat(tmp_path / "c").st_mtime_ns == mtime

    # And the loop keeps going through a provider error
    stop = threading.Event()
    thread = threading.Thread(target=cf.run, args=(stop,))
    thread.start()
    while len(calls) < 5:
        stop.wait(0.01)
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and cf.expires_at == same.expires_at


def test_botocore_static_keys_get_a_synthetic_expiry(monkeypatch: pytest.MonkeyPatch):
    # Given long-term keys in the environment (no expiry)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASTATIC")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    before = datetime.now(UTC)

    got = botocore_provider(botocore.session.Session())()

    # Then they get an expiry an hour ahead, so kvssink re-reads the file
    assert got.access_key_id == "AKIASTATIC" and got.session_token == ""
    assert before + STATIC_KEYS_LIFETIME <= got.expires_at <= datetime.now(UTC) + STATIC_KEYS_LIFETIME


def test_botocore_refreshable_credentials_carry_their_expiry():
    # Given a session whose credentials are refreshable (as the ECS container provider's are)
    expiry = datetime.now(UTC) + timedelta(hours=2)
    session = botocore.session.Session()
    session._credentials = RefreshableCredentials.create_from_metadata(
        {"access_key": "ASIAROLE", "secret_key": "s", "token": "t", "expiry_time": expiry.isoformat()},
        refresh_using=lambda: pytest.fail("not due for a refresh"),
        method="container-role",
    )

    got = botocore_provider(session)()

    # Then the provider reports their real expiry
    assert (got.access_key_id, got.session_token) == ("ASIAROLE", "t")
    assert abs((got.expires_at - expiry).total_seconds()) < 1
