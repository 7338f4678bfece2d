"""Encoded recording renditions on real GStreamer and a live RTSP camera (854x480, 15 fps, a keyframe a
second, larger than both rungs: neither repeats the source's size): the relay's supervisor records the
passthrough source plus two ladder rungs (360p, 240p) from one decode, finalize writes the VOD
playlists and the master, and the result is checked the way a player and the transcoder would check
it: keyframes at every segment start, boundaries aligned across renditions, the master's
RESOLUTION/CODECS/BANDWIDTH, the transcoder's HLS validation, the MP4 export. A slow encoder loses
frames (counted) without holding up the source rendition or the KVS branch. A rung the size of the
camera (360p on a 640x360 camera) is neither encoded nor recorded."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from local.cameras import RtspCamera
from local.cameras.picture import Picture
from reelay.catalogue.memory import MemoryCatalogue
from reelay.media import hls
from reelay.media._gst import Gst
from reelay.media.ladder import PRESETS, rungs
from reelay.models import RecordingState, Rendition
from reelay.recording import layout
from reelay.recording.recorder import Recorder, planned_renditions
from reelay.recording.runner import WorkflowRunner
from reelay.recording.steps import StepContext, subprocess_exporter
from reelay.recording.writer import SessionWriter
from reelay.relay.pipelines import RecordingSpec, SourceSpec
from reelay.relay.supervisor import RelayPolicy, Supervisor
from reelay.storage.file import FileStore
from reelay.transcode import validate_hls
from tests.relay_fixtures import wait_until
from tests.unit.recording_helpers import stream

pytestmark = pytest.mark.media

FPS = 15
FRAME_MS = 1000 / FPS
PICTURE = Picture(width=854, height=480, fps=FPS, keyframe_seconds=1, bitrate_kbps=900)
RUNGS = ("360p", "240p")
SOURCE = Rendition(name="source", bandwidth=0, codecs="avc1.640028", playlist="source/index.m3u8")
PROFILE_IDC = {"Constrained Baseline": "42", "Baseline": "42", "Main": "4d", "High": "64"}


@pytest.fixture(scope="module")
def camera() -> Iterator[RtspCamera]:
    with RtspCamera(picture=PICTURE) as cam:
        yield cam


@dataclass
class Rig:
    catalogue: MemoryCatalogue
    store: FileStore
    root: Path
    recorder: Recorder
    supervisor: Supervisor
    kvs_frames: list[int]

    def segments(self) -> dict[str, list[layout.SegmentKey]]:
        found = [layout.parse_key(i.key) for i in self.store.list(layout.ROOT)]
        out: dict[str, list[layout.SegmentKey]] = {}
        for s in found:
            if isinstance(s, layout.SegmentKey):
                out.setdefault(s.rendition, []).append(s)
        return {r: sorted(v, key=lambda s: s.seq) for r, v in out.items()}

    def stop(self) -> None:
        self.supervisor.stop()
        assert self.supervisor.stopped.wait(30)
        self.recorder.end("stopped")
        assert self.recorder.close(30)


def start_rig(tmp_path: Path, url: str, *, raw_queue_frames: int = 4, names: tuple[str, ...] = RUNGS) -> Rig:
    root = tmp_path / "media"
    store = FileStore(root, public_url=None, signing_key=None)
    catalogue = MemoryCatalogue()
    catalogue.create_stream(stream("cam1"))
    encoded = rungs(list(names))
    writer = SessionWriter(
        store, catalogue, "cam1", "w1", [SOURCE, *planned_renditions(encoded)], segment_ms=1000, chunk_size=4
    )
    spool = tmp_path / "spool"
    recorder = Recorder(writer, spool, renditions=encoded, x264_preset="veryfast")
    kvs_frames = [0]

    def kvs_sink(_on_ack: object, _on_fatal: object) -> Gst.Element:
        # Stands in for kvssink: counts what reaches the KVS branch.
        sink = Gst.ElementFactory.make("fakesink")
        sink.set_property("sync", False)

        def count(_pad: Gst.Pad, _info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
            kvs_frames[0] += 1
            return Gst.PadProbeReturn.OK

        sink.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, count)
        return sink

    supervisor = Supervisor(
        SourceSpec(url),
        kvs_sink,
        expects_acks=False,
        recording=RecordingSpec(
            recorder,
            spool,
            segment_seconds=1.0,
            renditions=recorder.encoded,
            x264_preset=recorder.x264_preset,
            raw_queue_frames=raw_queue_frames,
        ),
        policy=RelayPolicy(stall_seconds=3, backoff_cap=0.5),
    )
    threading.Thread(target=supervisor.run, name="relay-loop", daemon=True).start()
    return Rig(catalogue, store, root, recorder, supervisor, kvs_frames)


def ffprobe(path: Path, *args: str) -> dict:
    done = subprocess.run(
        ["ffprobe", "-v", "error", *args, "-of", "json", str(path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(done.stdout)


def first_frame(path: Path) -> dict:
    """The first video frame of a segment file: key_frame and pts_time."""
    info = ffprobe(
        path, "-select_streams", "v:0", "-read_intervals", "%+#1", "-show_entries", "frame=key_frame,pts_time"
    )
    return info["frames"][0]


def test_source_and_two_encoded_renditions_record_aligned_and_finalize_to_a_valid_video(
    tmp_path: Path, camera: RtspCamera
) -> None:
    rig = start_rig(tmp_path, camera.url)
    try:
        wait_until(
            lambda: all(len(rig.segments().get(r, [])) >= 4 for r in ("source", *RUNGS)),
            40,
            "four segments of every rendition",
        )
    finally:
        rig.stop()
    segments = rig.segments()
    assert sorted(segments) == sorted(["source", *RUNGS])
    source = segments["source"]
    assert len(source) >= 4
    # Boundaries aligned: the same sequence numbers, start times and durations in every rendition.
    for name in RUNGS:
        assert [s.seq for s in segments[name]] == [s.seq for s in source], name
        assert [s.pdt_ms for s in segments[name]] == [s.pdt_ms for s in source], name
        for enc, src in zip(segments[name], source, strict=True):
            assert abs((enc.duration_ms or 0) - (src.duration_ms or 0)) <= FRAME_MS, (name, enc, src)
    # A keyframe opens every segment of every rendition, and segment N starts on the same frame
    # (the same PTS) in each of them.
    for i in range(len(source)):
        starts = {}
        for name in ("source", *RUNGS):
            frame = first_frame(rig.store.local_path(segments[name][i].key()))
            assert frame["key_frame"] == 1, (name, i)
            starts[name] = float(frame["pts_time"])
        assert max(starts.values()) - min(starts.values()) < FRAME_MS / 1000, (i, starts)
    assert rig.recorder.health().segments_written == sum(len(v) for v in segments.values())

    session = rig.catalogue.list_recording_sessions("cam1")[0]
    assert session.state == RecordingState.ENDED
    # The session carries the renditions as they really are (the source described from its stream).
    by_name = {r.name: r for r in session.renditions}
    assert (by_name["source"].width, by_name["source"].height) == (854, 480)
    assert (by_name["360p"].width, by_name["360p"].height) == (640, 360)
    assert (by_name["240p"].width, by_name["240p"].height) == (426, 240)

    ctx = StepContext(
        catalogue=rig.catalogue,
        media_store=rig.store,
        segment_seconds=1,
        export=subprocess_exporter(env={"REELAY_MEDIA_STORE_URL": f"file://{rig.root}"}),
    )
    out = WorkflowRunner(ctx).start(session.session_id, mp4=True)
    assert out["status"] == "ready", out
    assert out["segments"] == 3 * len(source)
    video = rig.catalogue.get(out["videoId"])
    published = rig.root / "outputs" / out["videoId"]

    # The master: every rendition once, with its real size, its codec as its SPS says, and a
    # bandwidth that covers its segments.
    master = hls.parse_master_playlist((published / "master.m3u8").read_text())
    assert sorted(v.uri for v in master) == sorted(f"{r}/index.m3u8" for r in ("source", *RUNGS))
    for variant in master:
        name = variant.uri.split("/")[0]
        playlist = hls.parse_media_playlist((published / variant.uri).read_text())
        assert len(playlist.segments) == len(source)
        first = (published / name / playlist.segments[0][0]).resolve()
        probed = ffprobe(
            first, "-select_streams", "v:0", "-show_entries", "stream=profile,level,width,height"
        )
        st = probed["streams"][0]
        assert variant.resolution == (st["width"], st["height"]), name
        codec = variant.attributes["CODECS"]
        assert codec.startswith(f"avc1.{PROFILE_IDC[st['profile']]}") and codec.endswith(
            f"{st['level']:02x}"
        ), (
            name,
            codec,
            st,
        )
        sizes = [(published / name / uri).resolve().stat().st_size * 8 for uri, _ in playlist.segments]
        average = sum(sizes) / playlist.duration
        assert variant.bandwidth >= average > 0, name
        assert int(variant.attributes["AVERAGE-BANDWIDTH"]) == pytest.approx(average, rel=0.01)
        if name in RUNGS:
            # The rung's rate is applied (x264enc's default would be 2048 kbps): within MPEG-TS overhead
            # and the rate control's start on a clip of a few seconds keyed every second.
            assert average <= PRESETS[name].video_kbps * 1000 * 1.6, (name, average)
    assert {v.uri.split("/")[0]: v.resolution for v in master} == {
        "source": (854, 480),
        "360p": (640, 360),
        "240p": (426, 240),
    }

    # The transcoder's own validation of published HLS, on the published playlists as they are.
    final = validate_hls(published, video.renditions, video.duration_seconds or 0, 1)
    assert {name: len(v) for name, v in final.items()} == {name: len(source) for name in ("source", *RUNGS)}

    mp4 = rig.store.local_path(out["mp4Key"])
    info = ffprobe(mp4, "-show_entries", "format=duration")
    assert abs(float(info["format"]["duration"]) - (video.duration_seconds or 0)) < 0.5


def test_encoders_that_cannot_keep_up_lose_frames_not_the_source_or_kvs(
    tmp_path: Path, camera: RtspCamera
) -> None:
    rig = start_rig(tmp_path, camera.url, raw_queue_frames=2)
    try:
        relay = wait_until(lambda: rig.supervisor._relay, 20, "the pipeline")
        bin_ = wait_until(lambda: relay.recording, 20, "the recording branch")
        slow = bin_.get_by_name("record-x264-240p")

        def stall(_pad: Gst.Pad, _info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
            time.sleep(3 * FRAME_MS / 1000)  # an encoder at a third of real time
            return Gst.PadProbeReturn.OK

        slow.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, stall)
        wait_until(lambda: len(rig.segments().get("source", [])) >= 2, 30, "the first source segments")
        kvs_before, at = rig.kvs_frames[0], time.monotonic()
        source_before = len(rig.segments()["source"])
        time.sleep(4)
        kvs_rate = (rig.kvs_frames[0] - kvs_before) / (time.monotonic() - at)
        source_after = len(rig.segments()["source"])
    finally:
        rig.stop()
    health = rig.recorder.health()
    assert health.frames_dropped > 0
    # The KVS branch and the passthrough source kept real time while the encoders fell behind.
    assert kvs_rate >= 0.9 * FPS, kvs_rate
    assert source_after - source_before >= 3
    segments = rig.segments()
    # Both rungs lost the same frames (they are dropped before the raw tee): still aligned.
    assert [s.seq for s in segments["360p"]] == [s.seq for s in segments["240p"]]
    for a, b in zip(segments["360p"], segments["240p"], strict=True):
        assert abs((a.duration_ms or 0) - (b.duration_ms or 0)) <= FRAME_MS
        assert first_frame(rig.store.local_path(a.key()))["key_frame"] == 1
        assert first_frame(rig.store.local_path(b.key()))["key_frame"] == 1


def test_a_rung_the_size_of_the_camera_is_not_encoded_nor_recorded(tmp_path: Path) -> None:
    """A 640x360 camera recorded with 360p and 240p rungs: 360p would repeat the source's picture
    (rungs are never upscaled), so its encoder gets no frame and the session records source and 240p."""
    small = Picture(width=640, height=360, fps=FPS, keyframe_seconds=1, bitrate_kbps=600)
    with RtspCamera(picture=small) as cam:
        rig = start_rig(tmp_path, cam.url)
        fed = {"360p": 0, "240p": 0}
        try:
            relay = wait_until(lambda: rig.supervisor._relay, 20, "the pipeline")
            bin_ = wait_until(lambda: relay.recording, 20, "the recording branch")
            for name in fed:

                def count(_pad: Gst.Pad, _info: Gst.PadProbeInfo, name: str = name) -> Gst.PadProbeReturn:
                    fed[name] += 1
                    return Gst.PadProbeReturn.OK

                encoder = bin_.get_by_name(f"record-x264-{name}")
                encoder.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, count)
            wait_until(
                lambda: all(len(rig.segments().get(r, [])) >= 3 for r in ("source", "240p")),
                40,
                "three segments of the source and 240p",
            )
        finally:
            rig.stop()  # and it stops cleanly, the idle branch included
    assert fed["360p"] == 0 and fed["240p"] > 0, fed
    assert sorted(rig.segments()) == ["240p", "source"]
    session = rig.catalogue.list_recording_sessions("cam1")[0]
    assert [(r.name, r.width, r.height) for r in session.renditions] == [
        ("source", 640, 360),
        ("240p", 426, 240),
    ]
    out = WorkflowRunner(
        StepContext(catalogue=rig.catalogue, media_store=rig.store, segment_seconds=1)
    ).start(session.session_id)
    master = hls.parse_master_playlist((rig.root / "outputs" / out["videoId"] / "master.m3u8").read_text())
    assert {v.uri: v.resolution for v in master} == {
        "source/index.m3u8": (640, 360),
        "240p/index.m3u8": (426, 240),
    }


def test_no_rendition_asked_for_builds_no_decoder_or_encoder(tmp_path: Path) -> None:
    """Passthrough recording costs what it always did: the branch holds no decoder and no encoder."""
    from reelay.relay.pipelines import RelayPipeline

    class Sink:
        def media_started(self) -> None: ...

        def segment_closed(self, path: str | Path, duration_ms: int) -> None: ...

    def factories(renditions: tuple) -> list[str]:
        spec = RecordingSpec(Sink(), tmp_path / "spool", renditions=renditions)  # type: ignore[arg-type]
        relay = RelayPipeline(SourceSpec("rtsp://127.0.0.1:1/cam"), None, recording=spec)
        assert relay.recording is not None
        return sorted(e.get_factory().get_name() for e in relay.recording.iterate_elements())

    assert factories(()) == ["h264parse", "queue", "splitmuxsink"]
    encoded = factories(tuple(rungs(list(RUNGS))))
    assert encoded.count("x264enc") == 2 and encoded.count("avdec_h264") == 1
    assert encoded.count("splitmuxsink") == 3
