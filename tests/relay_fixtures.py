"""A relay rig: the real relay task (``python -m transcoder.relay``, the real kvssink) started by the
local launcher, relaying a real camera served on this machine to the KVS stand-in, with the
catalogue in the real MariaDB. Shared by the relay's integration tests and its benchmarks.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local.kvs import KvsStandIn
from local.relays import LocalRelays
from reelay.catalogue import ConnectionProvider, migrate
from reelay.catalogue.mysql import MySQLCatalogue
from reelay.models import Stream
from reelay.relay.secrets import SourceSecrets
from reelay.relay.streams import StreamService
from reelay.settings import Settings
from tests.conftest import scratch_database

OWNER = "operator-1"


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


@dataclass
class RelayRig:
    catalogue: MySQLCatalogue
    streams: StreamService
    relays: LocalRelays
    kvs: KvsStandIn
    log_dir: Path
    settings: Settings

    def add(self, source_url: str, *, video: str = "auto", start: bool = True) -> Stream:
        stream = self.streams.create(OWNER, f"camera {time.monotonic():.3f}", source_url, video=video)
        if start:
            self.streams.start(OWNER, stream.stream_id)
        return self.catalogue.get_stream(stream.stream_id)

    def stream(self, stream_id: str) -> Stream:
        return self.catalogue.get_stream(stream_id)

    def persisted(self, stream: Stream) -> int:
        return len(self.kvs.persisted(stream.kvs_stream_name))

    def wait_persisted(self, stream: Stream, more_than: int, timeout: float = 30) -> int:
        return wait_until(
            lambda: (n := self.persisted(stream)) > more_than and n,
            timeout,
            f"more than {more_than} fragments persisted for {stream.stream_id}; log:\n{self.log(stream)}",
        )

    def wait_state(self, stream: Stream, *states: str, timeout: float = 30) -> Stream:
        return wait_until(
            lambda: (s := self.stream(stream.stream_id)).state in states and s,
            timeout,
            f"stream {stream.stream_id} in {states}; log:\n{self.log(stream)}",
        )

    def log(self, stream: Stream) -> str:
        path = self.log_dir / f"{stream.stream_id}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else "(no log)"

    def metrics(self, stream: Stream) -> list[dict[str, Any]]:
        """The EMF documents the relay task printed."""
        path = self.log_dir / f"{stream.stream_id}.log"
        docs = []
        for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
            if line.startswith("{") and '"_aws"' in line:
                try:
                    docs.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return docs


def child_environment(
    database_url: str, kvs: KvsStandIn, work: Path, key: str, **extra: str
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "REELAY_DATABASE_URL": database_url,
            "REELAY_STREAM_SECRET_KEYS": key,
            "REELAY_ALLOW_LOOPBACK_SOURCES": "true",
            "REELAY_RELAY_WORK_DIR": str(work),
            "REELAY_RELAY_LEASE_SECONDS": "6",
            "REELAY_RELAY_METRICS_SECONDS": "2",
            "REELAY_RELAY_STALL_SECONDS": "2",
            "REELAY_RELAY_START_SECONDS": "8",
            "REELAY_RELAY_ACK_TIMEOUT_SECONDS": "4",
            "CONTROL_PLANE_URI": kvs.url,
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": kvs.credentials_url,
            "POWERTOOLS_METRICS_NAMESPACE": "Reelay",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def relay_database() -> Iterator[str]:
    with scratch_database(prefix="reelay_relay") as url:
        migrate(ConnectionProvider.from_url(url))
        yield url


@pytest.fixture
def relay_rig(tmp_path: Path, relay_database: str) -> Iterator[RelayRig]:
    kvs = KvsStandIn(tmp_path / "kvs").start()
    key = secrets.token_urlsafe(32)
    settings = Settings(
        database_url=relay_database,
        stream_secret_keys=key,  # type: ignore[arg-type]
        allow_loopback_sources=True,
    )
    catalogue = MySQLCatalogue(ConnectionProvider.from_url(relay_database))
    log_dir = tmp_path / "relays"
    relays = LocalRelays(
        catalogue, log_dir=log_dir, env=child_environment(relay_database, kvs, tmp_path / "work", key)
    )
    streams = StreamService(catalogue, relays, SourceSecrets([key]), settings)
    rig = RelayRig(catalogue, streams, relays, kvs, log_dir, settings)
    # The launcher's reconcile loop, as the platform runs it: it replaces a task that dies.
    stop = threading.Event()
    loop = threading.Thread(target=relays, args=(stop,), name="relay-tasks", daemon=True)
    loop.start()
    try:
        yield rig
    finally:
        stop.set()
        loop.join(30)
        relays.stop_all()
        kvs.stop()
