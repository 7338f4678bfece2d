"""The supervisor's own rules, on real GStreamer without a camera: what it refuses before connecting."""

from __future__ import annotations

import threading
import time

import pytest

from reelay.media._gst import Gst
from reelay.relay.pipelines import SourceSpec
from reelay.relay.supervisor import RECONNECTING, Supervisor
from transcoder.relay import check_source_host

pytestmark = pytest.mark.media


def fakesink(_on_ack, _on_fatal):  # type: ignore[no-untyped-def]
    return Gst.ElementFactory.make("fakesink")


@pytest.mark.parametrize(
    ("url", "allow_loopback", "reason"),
    [
        ("rtsp://127.0.0.1:8554/cam", False, "loopback"),
        ("rtsp://localhost:8554/cam", False, "loopback"),
        ("http://169.254.169.254/latest/live.m3u8", True, "link-local"),
        ("srt://169.254.170.2:9000", True, "link-local"),
    ],
)
def test_a_forbidden_host_is_refused_before_every_connect(
    url: str, allow_loopback: bool, reason: str
) -> None:
    # Given a source whose host is forbidden where the relay runs
    supervisor = Supervisor(
        SourceSpec(url),
        fakesink,
        expects_acks=False,
        check_source=lambda u: check_source_host(u, allow_loopback=allow_loopback),
    )
    loop = threading.Thread(target=supervisor.run, daemon=True)
    loop.start()
    try:
        deadline = time.monotonic() + 5
        while supervisor.health().state != RECONNECTING and time.monotonic() < deadline:
            time.sleep(0.05)
        health = supervisor.health()
        # Then it never builds a pipeline, and says why, and keeps retrying (the name may change)
        assert health.state == RECONNECTING
        assert health.outage_cause and "refused before connecting" in health.outage_cause
        assert reason in health.outage_cause.lower()
        assert health.pipelines_built == 0
    finally:
        supervisor.stop()
        loop.join(10)
    assert supervisor.stopped.is_set()
