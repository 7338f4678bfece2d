"""The live relay, really: the relay task (the real kvssink) relays real cameras served on this machine
to the KVS stand-in, through every kind of outage, and the catalogue and the metrics show each one.

Each outage test asserts three things: the catalogue shows the outage with its cause while it lasts,
fragments resume at the stand-in afterwards, and the task's metrics count the outage's seconds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from local.cameras import Camera, HlsCamera, RtspCamera, SrtCamera
from local.faults import TcpFaultProxy, UdpFaultProxy
from local.kvs import KvsStandIn
from reelay.models import Stream
from tests.camera_fixtures import (
    hls_camera,
    rtsp_camera,
    rtsp_h265_camera,
    rtsp_mjpeg_camera,
    rtsp_proxy,
    srt_camera,
    srt_proxy,
)
from tests.picture_check import check_picture
from tests.relay_fixtures import RelayRig, relay_database, relay_rig, wait_until

__all__ = [  # fixtures used by name
    "hls_camera",
    "relay_database",
    "relay_rig",
    "rtsp_camera",
    "rtsp_h265_camera",
    "rtsp_mjpeg_camera",
    "rtsp_proxy",
    "srt_camera",
    "srt_proxy",
]

pytestmark = [pytest.mark.media, pytest.mark.mysql]


def relaying(rig: RelayRig, source: str | Stream, **kwargs: str) -> Stream:
    """A started stream (or a new one from a source URL) whose fragments are persisting at the
    stand-in."""
    stream = rig.add(source, **kwargs) if isinstance(source, str) else source
    rig.wait_persisted(stream, 1, timeout=40)
    rig.wait_state(stream, "running", timeout=20)
    # the health the task reports on its lease beat catches up with the stand-in
    return wait_until(
        lambda: (s := rig.stream(stream.stream_id)).last_fragment_number and s,
        20,
        "the last fragment reported",
    )


def outage(
    rig: RelayRig, stream: Stream, inject: Callable[[], None], heal: Callable[[], None], cause: str
) -> None:
    """Inject a fault, see it in the catalogue with its cause, heal it, see fragments resume."""
    inject()
    down = rig.wait_state(stream, "reconnecting", timeout=30)
    assert down.outage_cause is not None and cause in down.outage_cause, down.outage_cause
    assert down.outage_since is not None
    before = rig.persisted(stream)
    heal()
    rig.wait_persisted(stream, before, timeout=40)
    up = rig.wait_state(stream, "running", timeout=30)
    assert up.outage_cause is None
    # The task's metrics (EMF, every 2 s here) carry the outage's seconds and the reconnects.
    wait_until(lambda: outage_seconds(rig, stream) > 0, 10, "OutageSeconds in the metrics")


def assert_picture_intact(rig: RelayRig, stream: Stream, tmp_path: Path) -> None:
    """Every frame of the last 3 fragments KVS stored decodes to the camera's pattern."""
    rig.wait_persisted(stream, 4, timeout=40)
    live = tmp_path / f"{stream.stream_id}.mkv"
    url = f"{rig.kvs.url}/_reelay/streams/{stream.kvs_stream_name}/live.mkv?last=3"
    with urllib.request.urlopen(url, timeout=10) as r:
        live.write_bytes(r.read())
    picture = check_picture(live, tmp_path)
    assert picture.damaged == 0, (stream.video_mode, picture)
    assert picture.frames >= 20, (stream.video_mode, picture)


def outage_seconds(rig: RelayRig, stream: Stream) -> float:
    return sum(sum(doc.get("OutageSeconds", [0.0])) for doc in rig.metrics(stream))


# --- relaying each kind of source -----------------------------------------------------------------
@pytest.mark.parametrize("camera", ["rtsp_camera", "hls_camera", "srt_camera"])
def test_each_source_type_is_relayed_and_the_picture_kvs_stores_is_intact(
    relay_rig: RelayRig, camera: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """One camera, relayed twice at once: as it comes (auto, which for H.264 is passthrough) and
    re-encoded. Every frame of what KVS stored decodes to the camera's pattern. The cameras' H.264
    has two slices a picture (x264's sliced threads) and the RTSP one repeats SPS/PPS before each
    slice of a key frame: relayed through parsebin, each key frame was cut in two and every frame
    was damaged."""
    cam: Camera = request.getfixturevalue(camera)
    as_is = relay_rig.add(cam.url)
    encoded = relay_rig.add(cam.url, video="transcode")
    as_is, encoded = (relaying(relay_rig, s) for s in (as_is, encoded))

    # The stream's status, as an operator reads it
    assert as_is.input_bitrate_bps and as_is.input_bitrate_bps > 0
    assert as_is.last_fragment_number and as_is.last_fragment_ack_at is not None
    # ...and it is a fragment KVS really persisted, by its number
    persisted = {f.fragmentNumber for f in relay_rig.kvs.persisted(as_is.kvs_stream_name)}
    assert as_is.last_fragment_number in persisted
    assert as_is.credentials_expire_at is not None
    assert as_is.lease_owner == f"local-{as_is.stream_id}" and as_is.reconnects == 0
    # Passthrough: the task built no encoder (it logs the branch it built).
    assert "without re-encoding" in relay_rig.log(as_is) and "transcoding" not in relay_rig.log(as_is)
    assert (
        "decoding video/x-h264 for the encoder branch"
        in (relay_rig.log_dir / f"{encoded.stream_id}.log").read_text()
    )

    for stream in (as_is, encoded):
        assert_picture_intact(relay_rig, stream, tmp_path)


def test_a_source_that_is_not_h264_is_transcoded(relay_rig: RelayRig, rtsp_h265_camera: RtspCamera) -> None:
    stream = relaying(relay_rig, rtsp_h265_camera.url)
    assert relay_rig.persisted(stream) >= 1
    assert "transcoding video/x-h265 to H.264" in relay_rig.log(stream)


def test_an_mjpeg_camera_is_transcoded_with_its_picture_intact(
    relay_rig: RelayRig, rtsp_mjpeg_camera: RtspCamera, tmp_path: Path
) -> None:
    """Motion JPEG over RTSP (RTP/JPEG) comes out of parsebin as image/jpeg, not video/*: it is decoded
    and encoded to H.264 like any codec KVS cannot take, and every stored frame is the camera's. Auto
    and transcode mode, relayed at once."""
    streams = [relay_rig.add(rtsp_mjpeg_camera.url, video=video) for video in ("auto", "transcode")]
    for stream in streams:
        stream = relaying(relay_rig, stream)
        # (transcode mode, and auto once it has seen the codec, put the encoder in a pipeline of its
        # own for the slate: the source side then only decodes)
        decoded = r"(transcoding|decoding) image/jpeg (to H\.264|for the encoder branch)"
        assert re.search(decoded, (relay_rig.log_dir / f"{stream.stream_id}.log").read_text())
        assert_picture_intact(relay_rig, stream, tmp_path)


@pytest.mark.parametrize(("camera", "codec"), [("rtsp_h265_camera", "h265"), ("rtsp_mjpeg_camera", "MJPEG")])
def test_passthrough_of_a_codec_kvs_cannot_take_is_an_outage_with_its_reason(
    relay_rig: RelayRig, camera: str, codec: str, request: pytest.FixtureRequest
) -> None:
    cam: RtspCamera = request.getfixturevalue(camera)
    stream = relay_rig.add(cam.url, video="passthrough")
    down = relay_rig.wait_state(stream, "reconnecting", timeout=30)
    assert down.outage_cause and "cannot be relayed without re-encoding" in down.outage_cause
    assert f"the source's video is {codec}," in down.outage_cause
    assert relay_rig.persisted(stream) == 0


# --- outages ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("camera", ["hls_camera", "rtsp_camera", "srt_camera"])
def test_a_camera_killed_and_back(relay_rig: RelayRig, camera: str, request: pytest.FixtureRequest) -> None:
    cam: Camera = request.getfixturevalue(camera)
    stream = relaying(relay_rig, cam.url)
    outage(relay_rig, stream, cam.kill, cam.start, cause="source")


def test_an_rtsp_server_that_accepts_but_sends_nothing(
    relay_rig: RelayRig, rtsp_proxy: TcpFaultProxy
) -> None:
    stream = relaying(relay_rig, rtsp_proxy.url("rtsp", "/cam"))
    outage(relay_rig, stream, rtsp_proxy.stall, rtsp_proxy.heal, cause="stalled")


def test_an_srt_link_that_goes_quiet(relay_rig: RelayRig, srt_proxy: UdpFaultProxy) -> None:
    stream = relaying(relay_rig, srt_proxy.url("srt"))
    outage(relay_rig, stream, srt_proxy.stall, srt_proxy.heal, cause="stalled")


def test_an_hls_server_that_stalls(relay_rig: RelayRig, hls_camera: HlsCamera) -> None:
    stream = relaying(relay_rig, hls_camera.url)
    outage(relay_rig, stream, hls_camera.stall, hls_camera.heal, cause="source")


def test_an_hls_playlist_that_stops_updating(relay_rig: RelayRig, hls_camera: HlsCamera) -> None:
    stream = relaying(relay_rig, hls_camera.url)
    outage(relay_rig, stream, hls_camera.freeze_playlist, hls_camera.heal, cause="source")


def test_hls_segments_that_404(relay_rig: RelayRig, hls_camera: HlsCamera) -> None:
    stream = relaying(relay_rig, hls_camera.url)
    outage(relay_rig, stream, lambda: hls_camera.fail_segments(404), hls_camera.heal, cause="source")


def test_kvs_down_then_back(relay_rig: RelayRig, rtsp_camera: RtspCamera) -> None:
    stream = relaying(relay_rig, rtsp_camera.url)
    rebuilt_before = relay_rig.stream(stream.stream_id).reconnects
    outage(relay_rig, stream, relay_rig.kvs.refuse_connections, relay_rig.kvs.start, cause="KVS unreachable")
    # kvssink reconnects by itself: the supervisor did not throw its buffer away with a rebuild.
    assert relay_rig.stream(stream.stream_id).reconnects == rebuilt_before


def test_kvs_not_acking(relay_rig: RelayRig, srt_camera: SrtCamera) -> None:
    stream = relaying(relay_rig, srt_camera.url)
    outage(
        relay_rig,
        stream,
        lambda: relay_rig.kvs.set_acks("silent"),
        lambda: relay_rig.kvs.set_acks("normal"),
        cause="KVS unreachable",
    )


def test_the_relay_process_killed_with_sigkill_comes_back(
    relay_rig: RelayRig, rtsp_camera: RtspCamera
) -> None:
    stream = relaying(relay_rig, rtsp_camera.url)
    pid = relay_rig.relays.pid(stream.stream_id)
    assert pid is not None
    token = relay_rig.stream(stream.stream_id).lease_token
    os.kill(pid, signal.SIGKILL)
    # The launcher starts another task at once; it re-claims the lease with a new fencing token.
    wait_until(lambda: relay_rig.relays.pid(stream.stream_id) not in (None, pid), 10, "a new relay task")
    wait_until(lambda: relay_rig.stream(stream.stream_id).lease_token > token, 20, "a new lease")
    before = relay_rig.persisted(stream)
    relay_rig.wait_persisted(stream, before, timeout=40)
    relay_rig.wait_state(stream, "running", timeout=30)
    assert relay_rig.relays.restarts == 1


def test_credentials_expiring_mid_stream(relay_rig: RelayRig, rtsp_camera: RtspCamera) -> None:
    # Given credentials that live 70 s: kvssink re-reads its file 3 s before they expire and needs the
    # new ones to have 30 s left then; the task rewrites the file at half their life.
    kvs = relay_rig.kvs
    kvs.issuer.ttl_seconds = 70
    stream = relaying(relay_rig, rtsp_camera.url)
    first = relay_rig.stream(stream.stream_id).credentials_expire_at
    assert first is not None

    def puts() -> list[Any]:
        return [r for r in kvs.requests if r.path == "/putMedia" and r.note == "started"]

    old_key = kvs.issuer._keys[puts()[0].key]
    # When they expire (the stand-in refuses the old key from then on)
    time.sleep(max(0.0, old_key.expires_at - time.time()) + 1)
    # Then kvssink opened a PutMedia with the new key before the old one expired (at expiry - 3 s)
    switched = [r for r in puts() if r.key != old_key.access_key_id]
    assert switched and old_key.expires_at - 10 < switched[0].time < old_key.expires_at
    # ...the stand-in refuses the old key now
    assert describe_with(kvs, old_key, stream.kvs_stream_name) == 403
    # ...fragments keep arriving, signed with the new key, and the catalogue shows the new expiry
    before = relay_rig.persisted(stream)
    relay_rig.wait_persisted(stream, before + 2, timeout=30)
    now = relay_rig.stream(stream.stream_id)
    assert now.state == "running"
    assert now.credentials_expire_at is not None and now.credentials_expire_at > first


def describe_with(standin: KvsStandIn, key: Any, stream_name: str) -> int:
    """POST /describeStream signed (by key id) with ``key``: the HTTP status."""
    request = urllib.request.Request(
        f"{standin.url}/describeStream",
        data=json.dumps({"StreamName": stream_name}).encode(),
        headers={
            "Authorization": f"AWS4-HMAC-SHA256 Credential={key.access_key_id}/20261201/us-east-1/"
            "kinesisvideo/aws4_request, SignedHeaders=host, Signature=00",
            "X-Amz-Security-Token": key.session_token,
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_stop_drains_and_releases_the_lease(relay_rig: RelayRig, srt_camera: SrtCamera) -> None:
    stream = relaying(relay_rig, srt_camera.url)
    started = time.monotonic()
    relay_rig.streams.stop("operator-1", stream.stream_id)
    stopped = relay_rig.wait_state(stream, "stopped", timeout=30)
    assert time.monotonic() - started < 15
    assert stopped.lease_owner is None
    wait_until(lambda: relay_rig.relays.pid(stream.stream_id) is None, 10, "the task to exit")
    assert '"reason": "asked' in relay_rig.log(stream) or "signal SIGTERM" in relay_rig.log(stream)


def test_soak_twenty_mixed_outages_give_twenty_recoveries(
    relay_rig: RelayRig, rtsp_proxy: TcpFaultProxy, rtsp_camera: RtspCamera, tmp_path: Path
) -> None:
    stream = relaying(relay_rig, rtsp_proxy.url("rtsp", "/cam"))
    faults: list[tuple[Callable[[], None], Callable[[], None], str]] = [
        (rtsp_proxy.stall, rtsp_proxy.heal, "stalled"),
        (rtsp_proxy.cut, rtsp_proxy.heal, "source"),
        (rtsp_camera.kill, rtsp_camera.start, "source"),
        (relay_rig.kvs.refuse_connections, relay_rig.kvs.start, "KVS unreachable"),
    ]
    recoveries = 0
    for i in range(20):
        inject, heal, cause = faults[i % len(faults)]
        outage(relay_rig, stream, inject, heal, cause)
        recoveries += 1
    assert recoveries == 20
    assert relay_rig.stream(stream.stream_id).state == "running"


def test_a_task_recycles_itself_after_many_rebuilds_and_keeps_its_lease(
    relay_rig: RelayRig, rtsp_camera: RtspCamera
) -> None:
    # Given a task told to start afresh after one rebuild (500 by default: each leaves memory behind)
    relay_rig.relays.env["REELAY_RELAY_RECYCLE_AFTER_REBUILDS"] = "1"
    stream = relaying(relay_rig, rtsp_camera.url)
    pid = relay_rig.relays.pid(stream.stream_id)
    token = relay_rig.stream(stream.stream_id).lease_token
    # When an outage makes it rebuild
    rtsp_camera.kill()
    wait_until(lambda: "relay task recycling" in relay_rig.log(stream), 30, "the task to recycle")
    rtsp_camera.start()
    # Then the same process (exec, not a replacement task) re-claims the lease it kept and relays again
    wait_until(lambda: relay_rig.stream(stream.stream_id).lease_token > token, 20, "the lease re-claimed")
    before = relay_rig.persisted(stream)
    relay_rig.wait_persisted(stream, before, timeout=40)
    relay_rig.wait_state(stream, "running", timeout=30)
    assert relay_rig.relays.pid(stream.stream_id) == pid
    assert relay_rig.relays.restarts == 0
