"""A platform that cannot start says why, exits non-zero and leaves nothing running."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT

pytestmark = [pytest.mark.mysql]


def run_local(
    *args: str, env_extra: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("REELAY_") and k != "DATABASE_URL"}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "local", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_busy_port_is_a_clear_failure(tmp_path: Path, database_url: str) -> None:
    # Given the gateway's port is already taken
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        # When the platform starts on it
        done = run_local(
            "--port",
            str(port),
            "--moto-port",
            "0",
            "--state-dir",
            str(tmp_path / "s"),
            env_extra={"DATABASE_URL": database_url},
        )
    # Then it exits 1 and says why, without a traceback on the console
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Reelay failed to start" in done.stdout and "in use" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert "Reelay is up" not in done.stdout


def test_unreachable_database_is_a_clear_failure(tmp_path: Path) -> None:
    # Given a DATABASE_URL nobody answers on
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    done = run_local(
        "--port",
        "0",
        "--moto-port",
        "0",
        "--state-dir",
        str(tmp_path / "s"),
        env_extra={"DATABASE_URL": f"mysql://root@127.0.0.1:{dead}/nothing"},
    )
    # Then it exits 1 with a message naming the problem
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Reelay failed to start" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_bad_flags_are_refused_with_usage() -> None:
    done = run_local("--port", "eighty")
    assert done.returncode == 2
    assert "invalid int value" in done.stderr and "usage: python -m local" in done.stderr


def test_help_documents_every_flag() -> None:
    done = run_local("--help")
    assert done.returncode == 0
    for flag in (
        "--port",
        "--moto-port",
        "--db-port",
        "--state-dir",
        "--database-url",
        "--worker-id",
        "--allow-remote",
        "DATABASE_URL",
    ):
        assert flag in done.stdout


def test_a_non_loopback_host_is_refused_without_allow_remote(tmp_path: Path) -> None:
    # Given `--host 0.0.0.0` without --allow-remote, Then it refuses before starting anything
    done = run_local("--host", "0.0.0.0", "--port", "0", "--state-dir", str(tmp_path / "s"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "development server" in done.stderr and "--allow-remote" in done.stderr
    assert "Reelay is up" not in done.stdout and not (tmp_path / "s").exists()
