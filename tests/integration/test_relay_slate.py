"""The slate, really: in transcode mode the relay task (the real kvssink) keeps feeding the KVS stand-in
a "camera offline" picture from the same encoder while the camera is down, so the KVS timeline has no
hole; the outage is still in the catalogue and the metrics, with its cause and duration.
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC

import pytest

from local.cameras import RtspCamera
from reelay.models import Stream
from tests.camera_fixtures import rtsp_camera, rtsp_h265_camera
from tests.integration.test_relay import relaying
from tests.relay_fixtures import RelayRig, relay_database, relay_rig, wait_until

__all__ = ["relay_database", "relay_rig", "rtsp_camera", "rtsp_h265_camera"]  # fixtures used by name

pytestmark = [pytest.mark.media, pytest.mark.mysql]

KEYFRAME_SECONDS = 2.0  # the relay's encoder: a fragment at least every 2 s


def metric_sum(rig: RelayRig, stream: Stream, name: str) -> float:
    return sum(sum(doc.get(name, [0.0])) for doc in rig.metrics(stream))


def slate_fragments(rig: RelayRig, stream: Stream) -> int:
    """The slate's fragments KVS persisted, as the task last reported them to the catalogue."""
    return rig.stream(stream.stream_id).slate_fragments_persisted


def full_log(rig: RelayRig, stream: Stream) -> str:
    return (rig.log_dir / f"{stream.stream_id}.log").read_text(errors="replace")


def test_a_camera_killed_in_transcode_mode_gets_a_slate_and_the_timeline_has_no_hole(
    relay_rig: RelayRig, rtsp_camera: RtspCamera
) -> None:
    # Given an H.264 camera relayed in transcode mode
    stream = relaying(relay_rig, rtsp_camera.url, video="transcode")
    assert "encoder pipeline built: 320x240 at 15/1 fps" in full_log(relay_rig, stream)

    # When the camera dies for about 8 s
    rtsp_camera.kill()
    killed_at = time.time()
    down = relay_rig.wait_state(stream, "reconnecting", timeout=30)
    wait_until(lambda: "showing the slate" in full_log(relay_rig, stream), 15, "the slate")
    while time.time() < killed_at + 8:
        time.sleep(0.2)

    # Then the outage is in the catalogue with its cause all along: acks of the slate do not end it
    still = relay_rig.stream(stream.stream_id)
    assert down.outage_cause and "source" in still.outage_cause, still.outage_cause  # type: ignore[operator]
    assert still.state == "reconnecting" and still.outage_since == down.outage_since
    # ...while fragments kept arriving at the stand-in: the slate, from the same encoder
    during = [f for f in relay_rig.kvs.persisted(stream.kvs_stream_name) if f.serverTimestamp > killed_at + 2]
    assert len(during) >= 2, during
    # ...and the catalogue shows the slate on, since it started (after the camera's last frame), and
    # counts its fragments (the task reports on its lease beat)
    assert still.slate_since is not None, "the slate is not in the catalogue"
    slate_since = still.slate_since.replace(tzinfo=UTC).timestamp()
    assert killed_at - 2 < slate_since < killed_at + 8, (killed_at, slate_since)
    wait_until(lambda: slate_fragments(relay_rig, stream) >= 2, 10, "slate fragments counted")

    # When the camera comes back
    rtsp_camera.start()
    back_at = time.time()
    up = relay_rig.wait_state(stream, "running", timeout=30)
    assert up.outage_cause is None
    wait_until(lambda: "back to the camera" in full_log(relay_rig, stream), 15, "the switch back")
    relay_rig.wait_persisted(stream, relay_rig.persisted(stream) + 1, timeout=30)
    # And the catalogue shows the slate off again, its fragments still counted
    after = wait_until(
        lambda: (now := relay_rig.stream(stream.stream_id)).slate_since is None and now, 10, "the slate off"
    )
    assert after.slate_fragments_persisted >= 2

    # Then the fragment timeline has no hole across the whole outage: one fragment at least every key
    # frame interval (plus a little: a stamp is when a frame reached the encoder)
    timecodes = sorted(f.timecode for f in relay_rig.kvs.persisted(stream.kvs_stream_name))
    gaps = [(b - a) / 1000 for a, b in itertools.pairwise(timecodes)]
    print(f"\nfragment gaps around the outage: max {max(gaps):.2f} s over {len(gaps)}")
    assert max(gaps) <= KEYFRAME_SECONDS + 0.5, gaps
    assert timecodes[0] < killed_at * 1000 and timecodes[-1] > back_at * 1000
    # The source side was rebuilt; KVS's side (the encoder, and one kvssink) was not
    log = full_log(relay_rig, stream)
    assert log.count("encoder pipeline built") == 1
    assert relay_rig.stream(stream.stream_id).reconnects >= 1
    # And the metrics carry the outage's seconds and how many fragments were the slate
    wait_until(lambda: metric_sum(relay_rig, stream, "OutageSeconds") >= 5, 10, "OutageSeconds")
    wait_until(lambda: metric_sum(relay_rig, stream, "SlateFragmentsPersisted") >= 2, 10, "slate fragments")
    slate = metric_sum(relay_rig, stream, "SlateFragmentsPersisted")
    assert slate < metric_sum(relay_rig, stream, "FragmentsPersisted")
    # ...the same count as the catalogue's, once both have caught up (no slate since the camera came back)
    wait_until(
        lambda: (
            metric_sum(relay_rig, stream, "SlateFragmentsPersisted") == slate_fragments(relay_rig, stream)
        ),
        10,
        "the metric and the catalogue to agree on the slate's fragments",
    )


def test_sigterm_during_the_slate_drains_and_exits_0(
    relay_rig: RelayRig, rtsp_h265_camera: RtspCamera
) -> None:
    # Given an H.265 camera in auto mode (transcoded: the relay moves to the slate layout once it sees
    # the codec) whose camera is down, the slate showing
    stream = relaying(relay_rig, rtsp_h265_camera.url)
    log = full_log(relay_rig, stream)
    assert "rebuilding with the encoder in its own pipeline" in log and "encoder pipeline built" in log
    assert relay_rig.stream(stream.stream_id).reconnects == 0  # moving to the layout is no outage
    process = relay_rig.relays._children[stream.stream_id].process
    rtsp_h265_camera.kill()
    wait_until(lambda: "showing the slate" in full_log(relay_rig, stream), 20, "the slate")
    before = relay_rig.persisted(stream)
    relay_rig.wait_persisted(stream, before, timeout=20)  # slate fragments persist

    # When the stream is stopped (the launcher sends SIGTERM)
    started = time.monotonic()
    relay_rig.streams.stop("operator-1", stream.stream_id)

    # Then the task drains (kvssink sends its last fragment) and exits 0, releasing its lease
    assert process.wait(20) == 0
    print(f"\nSIGTERM during the slate: exited 0 after {time.monotonic() - started:.2f} s")
    stopped = relay_rig.wait_state(stream, "stopped", timeout=10)
    assert stopped.lease_owner is None
    assert "signal SIGTERM" in full_log(relay_rig, stream)
    assert "EOS did not reach the sinks" not in full_log(relay_rig, stream)


def test_kvs_down_then_back_in_transcode_mode_is_not_rebuilt(
    relay_rig: RelayRig, rtsp_camera: RtspCamera
) -> None:
    # Given a camera relayed in transcode mode (the slate layout)
    stream = relaying(relay_rig, rtsp_camera.url, video="transcode")
    rebuilt_before = relay_rig.stream(stream.stream_id).reconnects
    # When KVS goes away, then comes back
    relay_rig.kvs.refuse_connections()
    down = relay_rig.wait_state(stream, "reconnecting", timeout=30)
    assert down.outage_cause and "KVS unreachable" in down.outage_cause
    before = relay_rig.persisted(stream)
    relay_rig.kvs.start()
    # Then kvssink reconnects by itself (no rebuild), the camera's fragments resume, the outage ends,
    # and the camera was never replaced by the slate (the camera never went away)
    relay_rig.wait_persisted(stream, before, timeout=40)
    up = relay_rig.wait_state(stream, "running", timeout=30)
    assert up.outage_cause is None and up.reconnects == rebuilt_before
    assert "showing the slate" not in full_log(relay_rig, stream)
    wait_until(lambda: metric_sum(relay_rig, stream, "OutageSeconds") > 0, 10, "OutageSeconds")
