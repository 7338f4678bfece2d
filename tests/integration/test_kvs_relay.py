"""The real kvssink (built by scripts/build-kvssink.sh) relaying a live test source to the KVS stand-in.

Each test runs videotestsrc 320x240@15 -> x264enc (a key frame a second) -> h264parse -> kvssink in a
child process (see tests/kvs_fixtures.py) and drives the stand-in's faults. Figures worth knowing are
printed (run with -s to see them).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from local.kvs import KvsStandIn
from tests.kvs_fixtures import ROOT, kvs, relay  # noqa: F401  (fixtures)
from tests.media_fixtures import FFPROBE

pytestmark = pytest.mark.media


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_make_kvssink_registers_the_built_plugin_with_sane_properties(tmp_path: Path):
    from reelay.relay.kvssink import make_kvssink, plugin_dir

    # When a kvssink is made (the plugin comes from the build cache, registered on demand)
    sink = make_kvssink(
        stream_name="cam", region="eu-west-1", credential_path=tmp_path / "c", storage_size=32, name="k"
    )

    # Then it has the relay's defaults, the overrides, and a log4cplus config that is not DEBUG
    assert (sink.get_property("stream-name"), sink.get_property("aws-region")) == ("cam", "eu-west-1")
    assert sink.get_property("credential-path") == str(tmp_path / "c")
    assert sink.get_property("stop-stream-timeout") == 5
    assert sink.get_property("storage-size") == 32
    assert sink.get_name() == "k"
    config = Path(sink.get_property("log-config")).read_text()
    assert "log4cplus.rootLogger=ERROR" in config
    assert (plugin_dir() / "libgstkvssink.so").is_file()


def test_fragments_are_persisted_acked_in_python_watchable_and_eos_stops_fast(
    kvs: KvsStandIn,  # noqa: F811
    relay,  # noqa: F811
    tmp_path: Path,
):
    # Given a relay to a stream the stand-in does not know yet
    child = relay(kvs, "cam-basic")

    # When it runs for a few fragments
    persisted = child.wait_acks("persisted", 3, timeout=60)

    # Then kvssink created the stream (describe 404 -> create -> getDataEndpoint) and put media
    paths = [(r.path, r.status) for r in kvs.requests]
    assert paths[:3] == [("/describeStream", 404), ("/createStream", 200), ("/getDataEndpoint", 200)]
    # And every ack seen in Python names a fragment the stand-in stored, by number and timecode
    stored = {f.fragmentNumber: f.timecode for f in kvs.persisted("cam-basic")}
    for ack in persisted:
        assert stored[ack["fragment_number"]] == ack["timecode_ms"]
        assert ack["result"] == 200
    # in order: BUFFERING, RECEIVED, PERSISTED for the first fragment, with epoch-ms timecodes
    first = persisted[0]["timecode_ms"]
    kinds = [a["kind"] for a in child.of("ack") if a["timecode_ms"] == first]
    assert kinds == ["buffering", "received", "persisted"]
    assert abs(first / 1000 - time.time()) < 60

    # When it stops (SIGTERM -> EOS)
    stopped = child.stop()

    # Then it stops in a couple of seconds, and the last fragment was acked at the end-of-fragment tag
    print(f"\nkvssink stop (EOS to NULL): {stopped['seconds']:.2f} s")
    assert stopped["seconds"] < 2.5
    assert len(kvs.persisted("cam-basic")) == len(child.of("ack", kind="persisted"))
    assert child.of("bus", type="error") == []

    # And an operator can watch the feed: the stream is listed, and live.mkv plays
    streams = get_json(f"{kvs.url}/_reelay/streams")["streams"]
    assert [(s["StreamName"], s["FragmentCount"] >= 4) for s in streams] == [("cam-basic", True)]
    fragments = get_json(f"{kvs.url}/_reelay/streams/cam-basic/fragments")["fragments"]
    assert [f["fragmentNumber"] for f in fragments] == [f.fragmentNumber for f in kvs.persisted("cam-basic")]
    live = tmp_path / "live.mkv"
    with urllib.request.urlopen(f"{kvs.url}/_reelay/streams/cam-basic/live.mkv?last=3", timeout=10) as r:
        live.write_bytes(r.read())
    probe = subprocess.run(
        [FFPROBE, "-v", "error", "-count_frames", "-show_streams", "-show_format", "-of", "json", str(live)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    info = json.loads(probe.stdout)
    video = info["streams"][0]
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 320, 240)
    # three one-second fragments at 15 fps
    assert 30 <= int(video["nb_read_frames"]) <= 50


def test_stand_in_down_then_back_resumes_and_resends_the_cut_fragment(
    kvs: KvsStandIn,  # noqa: F811
    relay,  # noqa: F811
):
    # Given a relay that is streaming
    child = relay(kvs, "cam-outage")
    child.wait_acks("persisted", 2, timeout=60)

    # When the stand-in goes away (listener closed, connections cut) for 3 s, then comes back
    kvs.stop()
    down_at = time.time()
    time.sleep(3)
    kvs.start()
    back_at = time.time()

    # Then fragments are persisted again within a second or two
    resumed = child.wait_acks("persisted", 2, timeout=30, after=back_at)
    latency = resumed[0]["t"] - back_at
    first_put = min(r.time for r in kvs.requests if r.path == "/putMedia" and r.time >= back_at)
    print(
        f"\nreconnect: first PutMedia {first_put - back_at:.3f} s, "
        f"first PERSISTED {latency:.2f} s after the stand-in came back"
    )
    assert latency < 3
    # The bus said nothing about the outage: it is visible only in the acks
    assert child.of("bus", type="error") == [] and child.of("stream-error") == []
    # kvssink's first body after the reconnect started mid-fragment: the stand-in answered 4006,
    # kvssink reconnected with a header and resent the fragment the outage cut
    errors = [e for e in child.of("ack", kind="error") if e["t"] >= down_at]
    assert [e["result"] for e in errors] == [4006]
    cut = [e["timecode_ms"] for e in child.of("ack", kind="buffering") if e["t"] < down_at][-1]
    assert cut in {f.timecode for f in kvs.persisted("cam-outage")}
    invalid = [r for r in kvs.requests if r.path == "/putMedia" and r.note.startswith("invalid MKV")]
    assert len(invalid) == 1
    child.stop()


def test_error_acks_reach_python_and_kvssink_resends_on_a_retriable_error(
    kvs: KvsStandIn,  # noqa: F811
    relay,  # noqa: F811
):
    # Given a relay that is streaming
    child = relay(kvs, "cam-errors")
    child.wait_acks("persisted", 2, timeout=60)

    # When the stand-in (driven over HTTP, as from another process) fails the next fragment with 5000
    assert (
        post(f"{kvs.url}/_reelay/faults", {"acks": "error", "errorId": 5000, "errorCount": 1})["acks"]
        == "error"
    )
    error = child.wait_for(lambda ev: [e for e in ev if e.get("kind") == "error"], 30, "an error ack")[0]

    # Then Python sees the ERROR ack with its ErrorId and timecode; kvssink opens a new PutMedia and
    # resends that fragment (5000 is retriable), which is then persisted
    assert error["result"] == 5000
    child.wait_for(
        lambda ev: [
            e for e in ev if e.get("kind") == "persisted" and e["timecode_ms"] == error["timecode_ms"]
        ],
        30,
        "the failed fragment persisted",
    )
    child.wait_acks("persisted", 2, timeout=30, after=error["t"])
    assert child.of("bus", type="error") == [] and child.of("stream-error") == []
    assert get_json(f"{kvs.url}/_reelay/faults")["acks"] == "normal"  # the one error was used up
    child.stop()


def test_silent_stand_in_then_acks_resume(kvs: KvsStandIn, relay):  # noqa: F811
    # Given a relay that is streaming
    child = relay(kvs, "cam-silent")
    child.wait_acks("persisted", 2, timeout=60)

    # When the stand-in stops acking for 3 s (it takes the bytes, stores and acks nothing)
    kvs.set_acks("silent")
    silent_at = time.time()
    time.sleep(3)
    quiet = [e for e in child.of("ack") if e["t"] > silent_at + 0.5]
    kvs.set_acks("normal")
    resumed_at = time.time()

    # Then Python saw no acks meanwhile, and sees them again afterwards
    assert quiet == []
    child.wait_acks("persisted", 2, timeout=30, after=resumed_at)
    child.stop()


# Made and dropped in a fresh process: the C heap in use per kvssink instance.
_HEAP_PER_ELEMENT = """
import gc, sys
from reelay.media._gst import Gst
from reelay.relay import kvssink
from transcoder.relay import malloc_in_use

def in_use():
    gc.collect()
    return malloc_in_use()

def make_and_drop(count):
    for _ in range(count):
        element = Gst.ElementFactory.make("kvssink")
        assert element is not None
        del element

kvssink.register()
make_and_drop(50)  # warm up: type and plugin set-up, allocator caches
count = int(sys.argv[1])
before = in_use()
make_and_drop(count)
print((in_use() - before) / count)
"""


def test_a_kvssink_frees_its_state_when_dropped():
    """kvssink v3.4.2 never released its KvsSinkCustomData (a shared_ptr in a GObject, whose destructor
    GLib never runs): 208 bytes per instance without a producer, more with its stream object. The build
    patches gst_kvs_sink_finalize (scripts/kvssink-patches/0001-finalize-frees-custom-data.patch)."""
    # When 1000 kvssink elements are made and dropped in one process
    out = subprocess.run(
        [sys.executable, "-c", _HEAP_PER_ELEMENT, "1000"], cwd=ROOT, capture_output=True, text=True,
        timeout=120, check=True,
    )  # fmt: skip

    # Then the heap in use does not grow with them (unpatched: 208 bytes per element on this machine)
    per_element = float(out.stdout.strip().splitlines()[-1])
    assert per_element < 32, f"{per_element:.0f} bytes of C heap kept per kvssink made and dropped"
