"""SIGTERM (as from systemd or docker stop) stops the platform as cleanly as Ctrl-C."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import PlatformProcess

pytestmark = [pytest.mark.mysql]


def test_sigterm_stops_everything_and_exits_zero(tmp_path: Path, e2e_database_url: str) -> None:
    # Given a running platform
    # (workers off: the session platform owns the jobs in this database)
    p = PlatformProcess(
        tmp_path / "state", database_url=e2e_database_url, extra_args=("--no-workers",)
    ).start()
    endpoints = json.loads((tmp_path / "state" / "endpoints.json").read_text())
    assert requests.get(f"{p.url}/videos", timeout=10).status_code == 200
    assert requests.get(f"{endpoints['moto']}/{endpoints['userPoolId']}/.well-known/jwks.json", timeout=10).ok
    # When it gets SIGTERM
    assert p.proc is not None
    p.proc.send_signal(signal.SIGTERM)
    # Then it exits 0 after saying so, and its servers are gone
    assert p.proc.wait(60) == 0, p.output()[-3000:]
    assert "Reelay: stopped" in p.output()
    for url in (f"{p.url}/videos", endpoints["moto"]):
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=2)
