"""A private MariaDB server with its data under the state directory.

Administration goes through MariaDB's own command-line tools over the unix socket, so nothing
here needs a database driver.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")


class DatabaseError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _tool(*names: str) -> str:
    for name in names:
        found = shutil.which(name) or next(
            (str(p) for d in ("/usr/sbin", "/usr/bin") if (p := Path(d, name)).exists()), None
        )
        if found:
            return found
    raise DatabaseError(f"none of {names} is installed; run `make bootstrap`")


def _die_with_parent() -> None:
    # If the platform is killed without a chance to clean up, the server must not outlive it
    # holding the datadir lock (Linux only; elsewhere this is a no-op).
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class PrivateMariaDB:
    """``mariadb-install-db`` once, then ``mariadbd`` as a child process until ``stop()``."""

    def __init__(self, state_dir: Path, *, host: str = "127.0.0.1", port: int = 3307) -> None:
        self.root = state_dir.resolve()
        self.datadir = self.root / "mysql"
        self.socket = self.root / "mysqld.sock"
        if len(str(self.socket)) > 100:  # unix socket paths are limited to 108 bytes
            self.socket = Path(f"/tmp/reelay-mysqld-{abs(hash(str(self.root))):x}.sock")
        self.log_file = self.root / "mysqld.log"
        self.host = host
        self.port = port or free_port(host)
        self._proc: subprocess.Popen[bytes] | None = None
        self._as_root = ["--user=root"] if os.geteuid() == 0 else []

    def url(self, db_name: str) -> str:
        return f"mysql://root@{self.host}:{self.port}/{db_name}"

    def start(self, *, timeout: float = 60.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.datadir / "mysql").is_dir():
            self._install()
        self.socket.unlink(missing_ok=True)
        cmd = [
            _tool("mariadbd", "mysqld"),
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--port={self.port}",
            f"--bind-address={self.host}",
            "--skip-networking=0",
            f"--pid-file={self.root / 'mysqld.pid'}",
            f"--log-error={self.log_file}",
            "--innodb-buffer-pool-size=64M",
            *self._as_root,
        ]
        log.info("starting private MariaDB: %s", " ".join(cmd))
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise DatabaseError(f"mariadbd exited with {self._proc.returncode}; see {self.log_file}")
            if self._client("SELECT 1", check=False).returncode == 0:
                return
            time.sleep(0.2)
        self.stop()
        raise DatabaseError(f"mariadbd did not answer within {timeout:.0f}s; see {self.log_file}")

    def create_database(self, name: str) -> None:
        if not _NAME.match(name):
            raise DatabaseError(f"invalid database name {name!r}")
        self._client(
            f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )

    def stop(self, *, timeout: float = 30.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # SIGTERM is mariadbd's clean shutdown
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("mariadbd did not stop within %.0fs; killing it", timeout)
            proc.kill()
            proc.wait()

    def _install(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        cmd = [
            _tool("mariadb-install-db", "mysql_install_db"),
            "--no-defaults",
            f"--datadir={self.datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *self._as_root,
        ]
        log.info("initialising the private MariaDB in %s", self.datadir)
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            shutil.rmtree(self.datadir, ignore_errors=True)  # a half-made datadir would never start
            raise DatabaseError(f"mariadb-install-db failed: {done.stderr.strip()[-2000:]}")

    def _client(self, sql: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [_tool("mariadb", "mysql"), "--no-defaults", f"--socket={self.socket}", "-uroot", "-e", sql]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise DatabaseError(f"{sql!r} failed: {done.stderr.strip()}")
        return done
