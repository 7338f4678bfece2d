"""Relay tasks on this machine: what ECS RunTask and the reconciler do in AWS.

Each started stream runs as a child process with the same entry point as the ECS task
(``python -m transcoder.relay``). A child that dies while its stream should run (``kill -9``, a
crash) is started again at once; a stopped stream's child gets SIGTERM, drains and exits. The task
id is stable per stream (``local-<streamId>``), so a replacement re-claims the lease at once
instead of waiting for the dead child's lease to lapse; the fencing token still keeps a stale
child from writing anything.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reelay.errors import NotFound
from reelay.models import DesiredState
from reelay.ports import StreamCatalogue

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# kvssink takes static keys from the environment before its credential file, and never refreshes
# them: a relay child must not inherit the platform's placeholder keys for moto.
_STATIC_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


def task_id_for(stream_id: str) -> str:
    return f"local-{stream_id}"


@dataclass
class Child:
    stream_id: str
    process: subprocess.Popen[bytes]
    started_at: float = field(default_factory=time.monotonic)
    stopping: bool = False


class LocalRelays:
    """Implements the ``RelayLauncher`` port with child processes, and reconciles them."""

    def __init__(
        self,
        catalogue: StreamCatalogue,
        *,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        stop_seconds: float = 20.0,
        python: str = sys.executable,
    ) -> None:
        self.catalogue = catalogue
        self.log_dir = log_dir
        self.stop_seconds = stop_seconds
        self.python = python
        base = dict(os.environ if env is None else env)
        for key in _STATIC_KEYS:
            base.pop(key, None)
        self.env = base
        self._children: dict[str, Child] = {}
        self._lock = threading.RLock()
        self.restarts = 0

    # --- RelayLauncher ------------------------------------------------------------------------
    def launch(self, stream_id: str) -> None:
        with self._lock:
            child = self._children.get(stream_id)
            if child is not None and child.process.poll() is None and not child.stopping:
                return  # one task per stream
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{stream_id}.log", "ab")  # noqa: SIM115 (the child owns it)
            try:
                process = subprocess.Popen(
                    [self.python, "-m", "transcoder.relay", "--stream-id", stream_id,
                     "--task-id", task_id_for(stream_id)],
                    cwd=PROJECT_ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                    start_new_session=True,  # Ctrl-C on `make up` reaches the platform, which stops us
                )  # fmt: skip
            finally:
                out.close()
            self._children[stream_id] = Child(stream_id, process)
            log.info("relay task started for stream %s (pid %d)", stream_id, process.pid)

    def stop(self, stream_id: str, task_id: str | None = None) -> None:
        """SIGTERM the stream's child (it drains and releases its lease); SIGKILL after stop_seconds."""
        with self._lock:
            child = self._children.get(stream_id)
            if child is None or child.process.poll() is not None:
                return
            child.stopping = True
            child.process.send_signal(signal.SIGTERM)
        threading.Thread(target=self._reap_later, args=(child,), name="relay-stop", daemon=True).start()

    def _reap_later(self, child: Child) -> None:
        try:
            child.process.wait(self.stop_seconds)
        except subprocess.TimeoutExpired:
            log.warning(
                "relay task for %s did not stop in %.0f s: killing it", child.stream_id, self.stop_seconds
            )
            child.process.kill()
            child.process.wait()

    # --- introspection ------------------------------------------------------------------------
    def pid(self, stream_id: str) -> int | None:
        with self._lock:
            child = self._children.get(stream_id)
            return child.process.pid if child is not None and child.process.poll() is None else None

    # --- the reconciler -----------------------------------------------------------------------
    def reconcile_once(self) -> None:
        """Replace children that died while their stream should run; start and stop what the
        catalogue says (the same query the AWS reconciler uses)."""
        with self._lock:
            dead = [c for c in self._children.values() if c.process.poll() is not None]
        for child in dead:
            with self._lock:
                if self._children.get(child.stream_id) is child:
                    del self._children[child.stream_id]
            if child.stopping:
                continue
            try:
                stream = self.catalogue.get_stream(child.stream_id)
            except NotFound:
                continue
            if stream.desired_state == DesiredState.RUNNING and stream.deleted_at is None:
                log.warning(
                    "relay task for %s exited (code %s): starting another",
                    child.stream_id,
                    child.process.returncode,
                )
                self.restarts += 1
                self.launch(child.stream_id)
        for stream in self.catalogue.streams_to_reconcile():
            if stream.desired_state == DesiredState.RUNNING and stream.deleted_at is None:
                self.launch(stream.stream_id)
            else:
                self.stop(stream.stream_id, stream.lease_owner)

    def __call__(self, stop: threading.Event) -> None:
        """The background worker: reconcile every second until ``stop``, then stop every child."""
        try:
            while not stop.is_set():
                try:
                    self.reconcile_once()
                except Exception:
                    log.exception("relay reconcile failed; retrying")
                stop.wait(1.0)
        finally:
            self.stop_all()

    def stop_all(self) -> None:
        with self._lock:
            children = list(self._children.values())
        for child in children:
            self.stop(child.stream_id)
        deadline = time.monotonic() + self.stop_seconds + 1
        for child in children:
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
