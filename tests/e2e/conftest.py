"""The one-machine platform as a subprocess, driven over HTTP like a user would."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"Reelay is up: (http://[^\s{\"]+)")  # another thread's print may follow on the line
CODE = re.compile(r"confirmation code for (\S+): (\d{6})")
MULTIPART_THRESHOLD = 400_000
PASSWORD = "Sup3r-Secret-42"  # meets the pool policy: 12+, upper, lower, digit, symbol


class PlatformProcess:
    """``python -m local`` in the foreground, its output collected line by line."""

    def __init__(
        self,
        state_dir: Path,
        *,
        database_url: str | None,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.extra_env = env or {}
        self.state_dir = state_dir
        self.database_url = database_url
        self.extra_args = extra_args
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self, timeout: float = 90) -> PlatformProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REELAY_")}
        env.pop("DATABASE_URL", None)
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        env["REELAY_WORK_DIR"] = str(self.state_dir / "work")
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        cmd = [
            sys.executable,
            "-m",
            "local",
            "--port",
            "0",
            "--moto-port",
            "0",
            "--db-port",
            "0",
            "--kvs-port",
            "0",
            "--camera-port",
            "0",
            "--camera",
            "none",  # a test that relays the demo camera asks for one in extra_args
            "--state-dir",
            str(self.state_dir),
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        threading.Thread(target=self._read, daemon=True).start()
        match = self.wait_for(READY, timeout)
        self.url = match.group(1)
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, pattern: re.Pattern[str], timeout: float, start: int = 0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._changed:
            seen = start
            while True:
                for line in self.lines[seen:]:
                    if m := pattern.search(line):
                        return m
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (
                    self.proc is not None and self.proc.poll() is not None and seen == len(self.lines)
                ):
                    tail = "\n".join(self.lines[-40:])
                    raise AssertionError(f"never saw {pattern.pattern!r}; last output:\n{tail}")
                self._changed.wait(min(left, 0.5))

    def code_for(self, email: str, *, after: int = 0, timeout: float = 10) -> str:
        pattern = re.compile(rf"confirmation code for {re.escape(email)}: (\d{{6}})")
        return self.wait_for(pattern, timeout, start=after).group(1)

    def stop(self, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode

    def output(self) -> str:
        return "\n".join(self.lines)


@contextmanager
def own_platform(
    tmp_path_factory: pytest.TempPathFactory,
    prefix: str,
    *,
    env: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
) -> Iterator[PlatformProcess]:
    """A platform of a test module's own, on a fresh database; it must stop cleanly."""
    from tests.conftest import scratch_database

    with scratch_database(prefix=prefix) as url:
        p = PlatformProcess(
            tmp_path_factory.mktemp(f"{prefix}-state"), database_url=url, env=env, extra_args=extra_args
        )
        try:
            p.start()
            yield p
        finally:
            if p.proc is not None:
                code = p.stop()
                assert code == 0, f"platform exited {code}:\n{p.output()[-4000:]}"


@pytest.fixture(scope="session")
def e2e_database_url(database_url: str) -> Iterator[str]:
    """A database of its own next to the session's one: other suites' rows (queued videos would be
    re-enqueued at start, ready ones would crowd the public list) stay out of the platform's way."""
    from tests.conftest import scratch_database

    with scratch_database(f"{database_url.rsplit('/', 1)[1]}_e2e") as url:
        yield url


@pytest.fixture(scope="session")
def platform(e2e_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    """One platform for the session, on a fresh database of the shared MariaDB (fast start)."""
    # Uploads over 400 kB go multipart, so one small clip and one larger clip cover both paths.
    p = PlatformProcess(
        tmp_path_factory.mktemp("state"),
        database_url=e2e_database_url,
        env={"REELAY_MULTIPART_THRESHOLD_BYTES": str(MULTIPART_THRESHOLD)},
    )
    try:
        p.start()
        yield p
    finally:
        if p.proc is not None:
            code = p.stop()
            assert code == 0, f"platform exited {code}:\n{p.output()[-4000:]}"


class Api:
    """A small client of the gateway."""

    def __init__(self, platform: PlatformProcess) -> None:
        self.platform = platform
        self.url = platform.url

    def call(self, method: str, path: str, *, token: str | None = None, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def sign_up(self, email: str, password: str = PASSWORD) -> str:
        """Register, confirm with the printed code, log in; returns the id token."""
        mark = len(self.platform.lines)
        r = self.call("POST", "/auth/register", json={"email": email, "password": password})
        assert r.status_code == 201, r.text
        code = self.platform.code_for(email, after=mark)
        r = self.call("POST", "/auth/confirm-register", json={"email": email, "code": code})
        assert r.status_code == 200, r.text
        return self.login(email, password)

    def start_upload(self, token: str, name: str, size: int, **fields: object) -> dict:
        """POST /videos/upload declaring a video/mp4 of size bytes; returns the 201 answer."""
        body = {"displayName": name, "contentType": "video/mp4", "sizeBytes": size, **fields}
        r = self.call("POST", "/videos/upload", token=token, json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def login(self, email: str, password: str = PASSWORD) -> str:
        r = self.call("POST", "/auth/login", json={"email": email, "password": password})
        assert r.status_code == 200, r.text
        return r.json()["idToken"]


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.media_fixtures import make_clip

    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", seconds=2.5, width=320, height=180)


@pytest.fixture(scope="session")
def large_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Over the multipart threshold (about 600 kB)."""
    from tests.media_fixtures import make_clip

    path = make_clip(tmp_path_factory.mktemp("clips") / "large.mp4", seconds=2.5, width=640, height=360)
    assert path.stat().st_size > MULTIPART_THRESHOLD
    return path
