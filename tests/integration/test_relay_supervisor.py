"""The supervisor's own rules, on real GStreamer without a camera: what it refuses before connecting."""

from __future__ import annotations

import gc
import itertools
import socket
import threading
import time
import weakref

import pytest

from local.cameras import RtspCamera
from reelay.media._gst import Gst
from reelay.relay.pipelines import RelayPipeline, SourceSpec
from reelay.relay.slate import EncoderBranch, FrameFormat, SlateSpec, render_slate
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


# --- the slate (transcode mode): KVS's side outlives the camera ---------------------------------------
def test_frames_waiting_for_a_busy_encoder_keep_each_its_own_timestamp() -> None:
    # Given an encoder branch whose encoder is held up (as on a loaded machine), so that frames wait in
    # the appsrc and the queue before it
    fmt = FrameFormat(320, 240, 15, 1)
    stamps: list[int] = []  # the PTS of each buffer the sink takes

    def recording_sink() -> Gst.Element:
        sink = Gst.ElementFactory.make("fakesink")
        sink.set_property("sync", False)
        sink.set_property("signal-handoffs", True)
        sink.connect("handoff", lambda _sink, buf, _pad: stamps.append(buf.pts))
        return sink

    branch = EncoderBranch(fmt, recording_sink, slate=SlateSpec(after_seconds=0.0))
    camera = render_slate(fmt, "a camera frame")
    camera_pts, slate_pts = camera.pts, branch.slate_frame.pts
    held = branch.encoder.get_static_pad("sink")
    block = held.add_probe(Gst.PadProbeType.BLOCK_DOWNSTREAM, lambda _pad, _info: Gst.PadProbeReturn.OK)
    branch.pipeline.set_state(Gst.State.PLAYING)
    try:
        assert branch.appsrc.get_state(5 * Gst.SECOND)[1] == Gst.State.PLAYING
        # When camera frames come, then the camera goes and the slate is fed, all while the encoder waits
        branch.camera(camera)
        time.sleep(0.05)
        branch.camera(camera)
        branch.camera_lost()
        branch.start_slate_clock()
        assert _wait_for(lambda: branch.slate_frames >= 4, 5), branch.slate_frames
        branch.stop_slate_clock()
        pushed = branch.camera_frames + branch.slate_frames
        held.remove_probe(block)
        # (the appsrc holds 8 frames at most: any more were dropped, never re-stamped)
        assert _wait_for(lambda: len(stamps) >= min(pushed, 8 + 2), 10), (stamps, pushed)
    finally:
        branch.pipeline.set_state(Gst.State.NULL)
        branch.release()
    # Then every frame reached the sink with its own PTS, in order (a frame stamped twice came out of
    # h264parse with no PTS at all)
    assert all(pts != Gst.CLOCK_TIME_NONE for pts in stamps), stamps
    assert all(a < b for a, b in itertools.pairwise(stamps)), stamps
    # and the frames they were made from (the camera's, the one slate picture) were never re-stamped
    assert (camera.pts, branch.slate_frame.pts) == (camera_pts, slate_pts)


def test_the_slate_keeps_the_encoder_fed_with_monotonic_timestamps_and_the_same_caps(
    rtsp_camera: RtspCamera,
) -> None:
    # Given a relay in transcode mode, with the slate on, into a sink that records what it gets
    seen: list[tuple[int, bool, str]] = []  # (PTS, key frame?, caps) of each buffer the sink takes
    sinks: list[Gst.Element] = []

    def recording_sink(_on_ack, _on_fatal):  # type: ignore[no-untyped-def]
        sink = Gst.ElementFactory.make("fakesink")
        sink.set_property("signal-handoffs", True)

        def handoff(_sink: Gst.Element, buf: Gst.Buffer, pad: Gst.Pad) -> None:
            key = not buf.has_flags(Gst.BufferFlags.DELTA_UNIT)
            seen.append((buf.pts, key, pad.get_current_caps().to_string()))

        sink.connect("handoff", handoff)
        sinks.append(sink)
        return sink

    policy = RelayPolicy(stall_seconds=2, backoff_initial=0.25, backoff_cap=0.5)
    slate = SlateSpec(text="camera offline", after_seconds=0.5)
    supervisor = Supervisor(
        SourceSpec(rtsp_camera.url, video="transcode"),
        recording_sink,
        expects_acks=False,
        policy=policy,
        slate=slate,
    )
    loop = threading.Thread(target=supervisor.run, daemon=True)
    loop.start()
    try:
        assert _wait_for(lambda: supervisor.health().state == RUNNING and len(seen) > 15, 20)
        # When the camera dies for 3 s, then comes back
        rtsp_camera.kill()
        # (the slate may come on before the drop is detected: after 0.5 s without a camera frame)
        assert _wait_for(
            lambda: supervisor.health().slate and supervisor.health().state == RECONNECTING, 10
        ), supervisor.health()
        during = len(seen)
        time.sleep(3)
        slate_frames = len(seen) - during
        rtsp_camera.start()
        assert _wait_for(lambda: supervisor.health().state == RUNNING and not supervisor.health().slate, 20)
        time.sleep(1)
    finally:
        supervisor.stop()
        loop.join(15)
    # Then the encoder was fed all along: about 15 frames a second of slate while the camera was away
    assert slate_frames >= 30, slate_frames
    # through one sink (one kvssink: never rebuilt for a source drop), with one set of caps
    assert len(sinks) == 1
    assert len({caps for _pts, _key, caps in seen}) == 1
    assert "stream-format=(string)avc" in seen[0][2] and "width=(int)320" in seen[0][2]
    # with timestamps that only ever go forward, and no gap longer than the slate's delay and a bit
    stamps = [pts for pts, _key, _caps in seen]
    backwards = [
        (i, a, b, seen[i][1], seen[i + 1][1]) for i, (a, b) in enumerate(itertools.pairwise(stamps)) if b <= a
    ]
    assert not backwards, (backwards, len(stamps))
    assert max(b - a for a, b in itertools.pairwise(stamps)) < (slate.after_seconds + 0.5) * Gst.SECOND
    # and the outage was still an outage, with its cause and duration
    outage = supervisor.health().recent_outages[-1]
    assert "source" in outage.cause and outage.duration_seconds >= 2.5


def test_passthrough_has_no_slate(rtsp_camera: RtspCamera) -> None:
    # Given an H.264 camera in auto mode (passthrough: no encoder to feed) with the slate on
    supervisor = Supervisor(SourceSpec(rtsp_camera.url), fakesink, expects_acks=False, slate=SlateSpec())
    loop = threading.Thread(target=supervisor.run, daemon=True)
    loop.start()
    try:
        assert _wait_for(lambda: supervisor.health().state == RUNNING, 20), supervisor.health()
        rtsp_camera.kill()
        assert _wait_for(lambda: supervisor.health().state == RECONNECTING, 10)
        time.sleep(1.5)
        # Then the outage is an outage, with no slate and no encoder pipeline
        assert not supervisor.health().slate and supervisor._branch is None
    finally:
        supervisor.stop()
        loop.join(15)


def test_a_kvs_side_failure_in_the_slate_layout_rebuilds_both_pipelines(rtsp_camera: RtspCamera) -> None:
    # Given a relay in transcode mode whose first sink fails as kvssink does on a fatal stream error
    # (its stream-error signal, which the sink factory wires to on_fatal) once media has flowed a while
    built: list[Gst.Element] = []

    def failing_first(_on_ack, on_fatal):  # type: ignore[no-untyped-def]
        sink = Gst.ElementFactory.make("fakesink")
        if not built:
            sink.set_property("signal-handoffs", True)
            count = itertools.count()
            sink.connect(
                "handoff",
                lambda *_: next(count) == 30 and on_fatal("kvssink stream error 0x52000049"),
            )
        built.append(sink)
        return sink

    supervisor = Supervisor(
        SourceSpec(rtsp_camera.url, video="transcode"),
        failing_first,
        expects_acks=False,
        policy=RelayPolicy(backoff_initial=0.25, backoff_cap=0.5),
        slate=SlateSpec(),
    )
    loop = threading.Thread(target=supervisor.run, daemon=True)
    loop.start()
    try:
        # Then the failure is an outage of KVS's side, and both pipelines are rebuilt (a new sink)
        assert _wait_for(lambda: supervisor.health().recoveries >= 1 and len(built) == 2, 30), built
        outage = supervisor.health().recent_outages[-1]
        assert outage.cause == "KVS error: kvssink stream error 0x52000049"
        assert len(built) == 2 and supervisor.health().pipelines_built == 2
        assert supervisor.health().state == RUNNING and not supervisor.health().slate
    finally:
        supervisor.stop()
        loop.join(15)


@pytest.mark.parametrize(
    ("caps", "expected"),
    [
        ("video/x-raw,format=I420,width=640,height=360,framerate=25/1", (640, 360, 25, 1, 1, 1)),
        # a camera that announces no rate (variable) gets the slate at 30 fps; no aspect ratio is square
        ("video/x-raw,format=I420,width=720,height=576,framerate=0/1,pixel-aspect-ratio=16/15",
         (720, 576, 30, 1, 16, 15)),
        ("video/x-raw,format=I420,width=320,height=240", (320, 240, 30, 1, 1, 1)),
    ],
)  # fmt: skip
def test_the_encoder_input_is_the_first_frames_size_and_rate(caps: str, expected: tuple[int, ...]) -> None:
    fmt = FrameFormat.from_caps(Gst.Caps.from_string(caps))
    assert (fmt.width, fmt.height, fmt.fps_n, fmt.fps_d, fmt.par_n, fmt.par_d) == expected
    # later builds must deliver exactly that size (any rate: frames are stamped as they arrive)
    assert f"width={expected[0]},height={expected[1]}" in fmt.source_caps()
    assert "framerate" not in fmt.source_caps() and "framerate" in fmt.caps()
    # and the slate is rendered at that size, as I420
    slate = render_slate(fmt, "camera offline")
    assert slate.get_size() == expected[0] * expected[1] * 3 // 2
