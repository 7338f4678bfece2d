"""The live test cameras against real GStreamer clients, and what each fault looks like to a client.

The assertions pin down what the relay's supervisor relies on: which faults show up on the bus (and
how), and which only show as buffers that stop coming.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from local.cameras import HlsCamera, RtspCamera, SrtCamera
from local.faults import TcpFaultProxy, UdpFaultProxy
from tests import camera_fixtures
from tests.camera_fixtures import (
    GstClient,
    fetch,
    hls_client,
    media_sequence,
    rtsp_client,
    segment_names,
    srt_client,
)

# The fixtures these tests take by name.
hls_camera = camera_fixtures.hls_camera
hls_proxy = camera_fixtures.hls_proxy
rtsp_camera = camera_fixtures.rtsp_camera
rtsp_proxy = camera_fixtures.rtsp_proxy
srt_camera = camera_fixtures.srt_camera
srt_proxy = camera_fixtures.srt_proxy

pytestmark = pytest.mark.media

FIRST = 15  # one second of frames
QUIET = 3.0  # seconds without a buffer that count as "stopped"; normal gaps (HLS bursts) stay under 1.5 s


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def _pid_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


# -------------------------------------------------------------------------------------------- HLS


def test_hls_camera_serves_a_sliding_live_playlist(hls_camera: HlsCamera):
    status, first = fetch(hls_camera.url)
    assert status == 200
    names = segment_names(first)
    assert 1 <= len(names) <= 6  # the window
    status, seg = fetch(hls_camera.url.replace("live.m3u8", names[-1]))
    assert status == 200 and seg[0] == 0x47  # an MPEG-TS packet
    time.sleep(2.5)
    _, later = fetch(hls_camera.url)
    assert segment_names(later)[-1] > names[-1]  # live: new segments keep coming
    assert b"#EXT-X-TARGETDURATION:1" in later


def test_hls_client_receives_frames(hls_camera: HlsCamera):
    with GstClient(hls_client(hls_camera.url)) as client:
        assert client.wait_buffers(FIRST, 10)
        assert client.wait_buffers(FIRST, 5)  # and keeps receiving
        assert [e for e in client.events if e.kind == "error"] == []


def test_hls_kill_is_a_playlist_error_and_a_restart_serves_the_same_url(hls_camera: HlsCamera):
    url, pid = hls_camera.url, hls_camera.pid
    with GstClient(hls_client(url)) as client:
        assert client.wait_buffers(FIRST, 10)
        killed_at = client.elapsed
        hls_camera.kill()
        assert not hls_camera.alive and _pid_gone(pid or 0, 2)
        # hlsdemux posts one ERROR after failing to reload the playlist (about 4 s)
        err = client.wait_event({"error"}, 10, since=killed_at)
        assert err is not None and err.source.startswith("hlsdemux")
        assert "Could not update playlist" in err.text
    hls_camera.start()
    assert hls_camera.url == url and hls_camera.pid != pid
    with GstClient(hls_client(url)) as again:
        assert again.wait_buffers(FIRST, 10)


def test_hls_stall_holds_requests_and_the_client_only_stops_receiving(hls_camera: HlsCamera):
    with GstClient(hls_client(hls_camera.url)) as client:
        assert client.wait_buffers(FIRST, 10)
        stalled_at = client.elapsed
        hls_camera.stall()
        with pytest.raises(TimeoutError):  # the server accepts and reads, but answers nothing
            fetch(hls_camera.url, timeout=1)
        assert client.quiet_for(QUIET, QUIET + 3)
        assert client.events_since(stalled_at) == []  # no ERROR, WARNING or EOS: only silence
        hls_camera.heal()
        assert client.wait_buffers(FIRST, 10)  # the same client resumes by itself


def test_hls_frozen_playlist_stops_the_media_sequence(hls_camera: HlsCamera):
    with GstClient(hls_client(hls_camera.url)) as client:
        assert client.wait_buffers(FIRST, 10)
        frozen_at = client.elapsed
        hls_camera.freeze_playlist()
        _, before = fetch(hls_camera.url)
        assert client.quiet_for(QUIET, QUIET + 3)
        _, after = fetch(hls_camera.url)
        assert media_sequence(after) == media_sequence(before)
        assert segment_names(after) == segment_names(before)
        assert client.events_since(frozen_at) == []  # hlsdemux keeps polling, silently
        hls_camera.heal()
        assert client.wait_buffers(FIRST, 10)
        _, healed = fetch(hls_camera.url)
        assert segment_names(healed)[-1] > segment_names(after)[-1]


def test_hls_failing_segments_are_skipped_silently(hls_camera: HlsCamera):
    with GstClient(hls_client(hls_camera.url)) as client:
        assert client.wait_buffers(FIRST, 10)
        failed_at = client.elapsed
        hls_camera.fail_segments(404)
        status, playlist = fetch(hls_camera.url)
        assert status == 200  # the playlist still updates...
        assert fetch(hls_camera.url.replace("live.m3u8", segment_names(playlist)[-1]))[0] == 404
        # ...and hlsdemux retries each fragment, then skips it, without a bus message
        assert client.quiet_for(QUIET, QUIET + 3)
        assert client.events_since(failed_at) == []
        hls_camera.heal()
        assert client.wait_buffers(FIRST, 10)


def test_hls_through_a_cut_proxy_is_a_playlist_error(hls_camera: HlsCamera, hls_proxy: TcpFaultProxy):
    with GstClient(hls_client(hls_proxy.url("http", "/live.m3u8"))) as client:
        assert client.wait_buffers(FIRST, 10)
        cut_at = client.elapsed
        hls_proxy.cut()
        err = client.wait_event({"error"}, 10, since=cut_at)
        assert err is not None and "Could not update playlist" in err.text


def test_hls_fail_segments_takes_any_error_status(tmp_path: Path):
    with HlsCamera(tmp_path / "hls") as cam:
        cam.fail_segments(503)
        _, playlist = fetch(cam.url)
        assert fetch(cam.url.replace("live.m3u8", segment_names(playlist)[-1]))[0] == 503


# ------------------------------------------------------------------------------------------- RTSP


@pytest.mark.parametrize(("codec", "encoding"), [("h264", "H264"), ("h265", "H265"), ("mjpeg", "JPEG")])
def test_rtsp_camera_sends_its_codec(codec: str, encoding: str):
    with RtspCamera(codec=codec) as cam:
        desc = f"rtspsrc location={cam.url} protocols=tcp latency=200 ! fakesink name=sink sync=false"
        with GstClient(desc) as rtp:
            assert rtp.wait_buffers(FIRST, 10)
            assert rtp.sink_caps().get_string("encoding-name") == encoding
        with GstClient(rtsp_client(cam.url)) as decoded:
            assert decoded.wait_buffers(FIRST, 10)


def test_rtsp_kill_is_a_warning_then_eos_and_a_restart_serves_the_same_url(rtsp_camera: RtspCamera):
    url = rtsp_camera.url
    with GstClient(rtsp_client(url)) as client:
        assert client.wait_buffers(FIRST, 10)
        killed_at = client.elapsed
        rtsp_camera.kill()
        eos = client.wait_event({"eos"}, 5, since=killed_at)
        assert eos is not None and eos.at - killed_at < 2
        warnings = [e for e in client.events_since(killed_at) if e.kind == "warning"]
        assert warnings and "server closed the connection" in warnings[0].text
        assert [e for e in client.events_since(killed_at) if e.kind == "error"] == []
    assert _refused(rtsp_camera.port)
    rtsp_camera.start()
    assert rtsp_camera.url == url
    with GstClient(rtsp_client(url)) as again:
        assert again.wait_buffers(FIRST, 10)


def test_rtsp_stall_through_the_proxy_is_silence(rtsp_camera: RtspCamera, rtsp_proxy: TcpFaultProxy):
    with GstClient(rtsp_client(rtsp_proxy.url("rtsp", rtsp_camera.path))) as client:
        assert client.wait_buffers(FIRST, 10)
        stalled_at = client.elapsed
        rtsp_proxy.stall()
        assert client.quiet_for(QUIET, QUIET + 3)
        # Nothing on the bus (rtpbin's source timeout sends a bare EOS only after about 25 s)
        assert client.events_since(stalled_at) == []
        assert rtsp_proxy.connections == 1  # the connection stays open
        rtsp_proxy.heal()
        assert client.wait_buffers(FIRST, 10)


def test_rtsp_cut_through_the_proxy_is_an_error(rtsp_camera: RtspCamera, rtsp_proxy: TcpFaultProxy):
    url = rtsp_proxy.url("rtsp", rtsp_camera.path)
    with GstClient(rtsp_client(url)) as client:
        assert client.wait_buffers(FIRST, 10)
        cut_at = client.elapsed
        rtsp_proxy.cut()
        err = client.wait_event({"error"}, 5, since=cut_at)
        assert err is not None and err.at - cut_at < 2
        assert "Could not read from resource" in err.text
        assert _refused(rtsp_proxy.port)
    rtsp_proxy.heal()
    with GstClient(rtsp_client(url)) as again:
        assert again.wait_buffers(FIRST, 10)
    assert rtsp_proxy.accepted == 2


# -------------------------------------------------------------------------------------------- SRT


def test_srt_client_receives_h264_in_mpegts(srt_camera: SrtCamera):
    with GstClient(srt_client(srt_camera.url)) as client:
        assert client.wait_buffers(FIRST, 10)
        caps = client.sink_caps()
        assert caps.get_name() == "video/x-raw"
        assert (caps.get_int("width").value, caps.get_int("height").value) == (320, 240)


def test_srt_kill_is_endless_warnings_and_the_client_reconnects_by_itself(srt_camera: SrtCamera):
    with GstClient(srt_client(srt_camera.url)) as client:
        assert client.wait_buffers(FIRST, 10)
        killed_at = client.elapsed
        srt_camera.kill()
        # srtsrc (auto-reconnect on) notices after SRT's 5 s peer idle timeout, then warns every
        # ~3 s forever; never an ERROR or EOS.
        warning = client.wait_event({"warning"}, 9, since=killed_at)
        assert warning is not None and "Trying to reconnect" in warning.text
        assert warning.at - killed_at > 3
        assert [e for e in client.events_since(killed_at) if e.kind != "warning"] == []
        srt_camera.start()
        assert client.wait_buffers(FIRST, 10)


def test_srt_stall_through_the_proxy_is_silence(srt_camera: SrtCamera, srt_proxy: UdpFaultProxy):
    with GstClient(srt_client(srt_proxy.url())) as client:
        assert client.wait_buffers(FIRST, 10)
        stalled_at = client.elapsed
        srt_proxy.stall()
        assert client.quiet_for(QUIET, QUIET + 3)
        assert client.events_since(stalled_at) == []  # a warning comes only after 5 s
        assert srt_proxy.dropped > 0
        srt_proxy.heal()
        assert client.wait_buffers(FIRST, 10)


def test_srt_stall_without_auto_reconnect_is_an_error_after_the_idle_timeout(
    srt_camera: SrtCamera, srt_proxy: UdpFaultProxy
):
    desc = srt_client(srt_proxy.url()).replace("srtsrc ", "srtsrc auto-reconnect=false ", 1)
    with GstClient(desc) as client:
        assert client.wait_buffers(FIRST, 10)
        stalled_at = client.elapsed
        srt_proxy.stall()
        err = client.wait_event({"error"}, 9, since=stalled_at)
        assert err is not None and 3 < err.at - stalled_at < 9  # SRT's peer idle timeout: 5 s
        assert "Could not read from resource" in err.text


AVC = "h264parse ! video/x-h264,stream-format=avc,alignment=au ! fakesink name=sink sync=false"


@pytest.mark.parametrize("kind", ["hls", "rtsp", "srt"])
def test_every_camera_feeds_the_relays_passthrough_chain(kind: str, tmp_path: Path):
    # What the relay hands kvssink: H.264 as avc/au, with codec data from the in-band SPS/PPS.
    cam = {"hls": lambda: HlsCamera(tmp_path / "hls"), "rtsp": RtspCamera, "srt": SrtCamera}[kind]()
    with cam:
        source = {
            "hls": f"souphttpsrc location={cam.url} ! hlsdemux ! tsdemux",
            "rtsp": f"rtspsrc location={cam.url} protocols=tcp latency=200 ! rtph264depay",
            "srt": f"srtsrc uri={cam.url} latency=125 ! tsdemux",
        }[kind]
        with GstClient(f"{source} ! {AVC}") as client:
            assert client.wait_buffers(FIRST, 10)
            caps = client.sink_caps()
            assert caps.get_string("stream-format") == "avc"
            assert caps.has_field("codec_data")
            assert (caps.get_int("width").value, caps.get_int("height").value) == (320, 240)
            # 8-bit 4:2:0 that every decoder takes (x264 with zerolatency/ultrafast flags its main
            # profile stream as constrained-baseline compatible)
            assert caps.get_string("profile") in ("constrained-baseline", "main")
            assert caps.get_string("chroma-format") == "4:2:0"
            assert caps.get_uint("bit-depth-luma").value == 8


# -------------------------------------------------------------------------------------- lifecycle


def test_cameras_start_fast_and_keep_their_port(tmp_path: Path):
    for cam in (RtspCamera(), SrtCamera(), HlsCamera(tmp_path / "hls")):
        with cam:
            port = cam.port
            assert cam.startup_seconds is not None
            # HLS waits for its first segment (hlssink2 closes it after two GOPs: about 2 s)
            assert cam.startup_seconds < (5 if isinstance(cam, HlsCamera) else 3)
            cam.restart()
            assert cam.alive and cam.port == port
        assert not cam.alive


@contextmanager
def _parent_running(script: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A Python process running ``script``, and the first line it prints."""
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=Path(__file__).parents[2], text=True
    )
    try:
        assert parent.stdout is not None
        yield parent, parent.stdout.readline().strip()
    finally:
        parent.kill()
        parent.wait(5)


def test_a_camera_dies_with_the_process_that_started_it():
    script = "import time\nfrom local.cameras import RtspCamera\ncam = RtspCamera().start()\n"
    with _parent_running(script + "print(cam.pid, flush=True)\ntime.sleep(60)\n") as (parent, line):
        child = int(line)
        os.kill(child, 0)  # the camera runs
        parent.send_signal(signal.SIGKILL)  # no atexit, no fixture teardown: only the kernel
        parent.wait(5)
        assert _pid_gone(child, 3)


def test_a_camera_started_from_a_thread_outlives_the_thread_but_not_the_process():
    script = (
        "import threading, time\n"
        "from local.cameras import SrtCamera\n"
        "cams = []\n"
        "t = threading.Thread(target=lambda: cams.append(SrtCamera().start()))\n"
        "t.start(); t.join()\n"
        "time.sleep(0.5)\n"
        "print(cams[0].pid if cams[0].alive else 'dead', flush=True)\n"
        "time.sleep(60)\n"
    )
    with _parent_running(script) as (parent, line):
        assert line.isdigit()  # alive after its thread ended
        parent.send_signal(signal.SIGKILL)
        parent.wait(5)
        assert _pid_gone(int(line), 5)  # its stdin closed: it left


def test_the_cli_runs_a_demo_camera_in_the_foreground():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.cameras", "rtsp", "--port", str(port), "--codec", "mjpeg"],
        cwd=Path(__file__).parents[2],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        # It says where it serves once it does (GStreamer may log other lines first)
        lines = iter(proc.stderr.readline, "")
        assert any(f"camera: serving rtsp://127.0.0.1:{port}/cam" in line for line in lines)
        with GstClient(rtsp_client(f"rtsp://127.0.0.1:{port}/cam")) as client:
            assert client.wait_buffers(FIRST, 10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
    finally:
        proc.kill()
        proc.wait(5)
