"""The supervisor's own rules, on real GStreamer without a camera: what it refuses before connecting."""

from __future__ import annotations

import gc
import socket
import threading
import time
import weakref

import pytest

from local.cameras import RtspCamera
from reelay.media._gst import Gst
from reelay.relay.pipelines import RelayPipeline, SourceSpec
from reelay.relay.supervisor import RECONNECTING, RUNNING, RelayPolicy, Supervisor
from tests.camera_fixtures import rtsp_camera
from transcoder.relay import check_source_host

__all__ = ["rtsp_camera"]  # a fixture used by name

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


# --- waiting out a backoff: the probe ---------------------------------------------------------------
def _wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def test_a_camera_back_mid_backoff_is_reconnected_at_once(rtsp_camera: RtspCamera) -> None:
    # Given a relay whose backoff is a whole minute, relaying a camera
    slow = RelayPolicy(backoff_initial=60, backoff_cap=60, backoff_cap_long=60, jitter=0, stall_seconds=2)
    supervisor = Supervisor(SourceSpec(rtsp_camera.url), fakesink, expects_acks=False, policy=slow)
    loop = threading.Thread(target=supervisor.run, daemon=True)
    loop.start()
    try:
        assert _wait_for(lambda: supervisor.health().state == RUNNING, 20), supervisor.health()
        # When the camera dies, and comes back while the relay waits out its backoff
        rtsp_camera.kill()
        assert _wait_for(lambda: supervisor.health().state == RECONNECTING, 10), supervisor.health()
        time.sleep(1)  # the first retry follows at once (the feed ran longer than the backoff) and fails
        built = supervisor.health().pipelines_built
        rtsp_camera.start()
        # Then the relay rebuilds as soon as the camera answers, not after the minute
        assert _wait_for(lambda: supervisor.health().state == RUNNING, 20), supervisor.health()
        assert supervisor.health().pipelines_built <= built + 1
        assert supervisor.health().recent_outages[-1].duration_seconds < 40
    finally:
        supervisor.stop()
        loop.join(15)


def test_a_source_that_answers_the_probe_but_fails_gets_only_the_plain_backoff() -> None:
    # Given a "camera" that accepts TCP connections (so the probe says it answers) but speaks no RTSP
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()

    def accept_and_close() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                conn.close()
            except OSError:
                continue

    threading.Thread(target=accept_and_close, daemon=True).start()
    policy = RelayPolicy(backoff_initial=1.5, backoff_cap=1.5, jitter=0, probe_seconds=0.05)
    url = f"rtsp://127.0.0.1:{listener.getsockname()[1]}/cam"
    supervisor = Supervisor(SourceSpec(url), fakesink, expects_acks=False, policy=policy)
    loop = threading.Thread(target=supervisor.run, daemon=True)
    try:
        loop.start()
        time.sleep(4)
        built = supervisor.health().pipelines_built
        # Then it keeps retrying, one pipeline per backoff, never in a tight probe-driven loop
        assert 2 <= built <= 4, built
        assert supervisor.health().state == RECONNECTING
    finally:
        supervisor.stop()
        loop.join(15)
        stop.set()
        listener.close()


# --- memory: a torn-down pipeline is freed -------------------------------------------------------------
def test_a_released_relay_pipeline_is_freed_and_an_unreleased_one_is_not() -> None:
    def build() -> RelayPipeline:
        sink = lambda: Gst.ElementFactory.make("fakesink")  # noqa: E731
        return RelayPipeline(SourceSpec("rtsp://127.0.0.1:9/cam"), sink)

    # Given two pipelines, one released once done with (as the supervisor does)
    released, kept = build(), build()
    released.release()
    released_ref, kept_ref = weakref.ref(released), weakref.ref(kept)
    del released, kept
    gc.collect()
    # Then only the released one is gone: its signal handlers no longer hold it through C
    assert released_ref() is None
    survivor = kept_ref()
    assert survivor is not None  # the cycle release() exists to break
    survivor.release()
    del survivor
    gc.collect()
    assert kept_ref() is None
