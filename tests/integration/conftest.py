"""Fixtures the integration suites share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from reelay.adapters.aws import clear_cache


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """A moto server on an ephemeral port for one test module, as the local platform runs one."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        clear_cache()  # cached clients point at the stopped server
