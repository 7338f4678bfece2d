"""Finalize on real HLS segments made by GStreamer: two writers overlap, the output passes the
transcoder's own HLS validation, and the MP4 export probes with the recording's duration."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from reelay.catalogue.memory import MemoryCatalogue
from reelay.media import hls
from reelay.media._gst import Gst, ensure_init
from reelay.media.runner import PipelineRunner
from reelay.media_location import MediaRelocator
from reelay.models import RecordingState, Rendition, VideoVisibility
from reelay.recording import layout
from reelay.recording.manifests import ManifestWriter, write_segment
from reelay.recording.runner import WorkflowRunner
from reelay.recording.steps import StepContext, subprocess_exporter
from reelay.settings import Settings
from reelay.storage.file import FileStore
from reelay.transcode import validate_hls
from tests.unit.recording_helpers import T0_MS, stream

SEGMENTS = 9  # 1 s each at 320x240, 15 fps, with AAC audio


@pytest.fixture(scope="module")
def segments(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, float]]:
    out = tmp_path_factory.mktemp("hls")
    # zerolatency: no encoder look-ahead, so video does not fall seconds behind audio and stall the
    # muxer's queues; both branches last exactly SEGMENTS seconds (15 fps frames, 20 ms audio buffers).
    launch = (
        f"videotestsrc num-buffers={SEGMENTS * 15} ! video/x-raw,width=320,height=240,framerate=15/1 "
        "! videoconvert ! video/x-raw,format=I420 ! x264enc key-int-max=15 speed-preset=ultrafast "
        "tune=zerolatency ! video/x-h264,profile=main ! h264parse ! queue "
        "! hlssink2 name=h target-duration=1 max-files=0 playlist-length=0 "
        f"location={out}/seg%05d.ts playlist-location={out}/p.m3u8 "
        f"audiotestsrc num-buffers={SEGMENTS * 50} samplesperbuffer=960 ! audio/x-raw,rate=48000 "
        "! audioconvert ! avenc_aac ! aacparse ! queue ! h.audio"
    )
    # In-process through the project's runner: gst-launch-1.0 itself sometimes hangs at EOS with
    # hlssink2 after writing every segment (seen in 2 of 6 runs); the runner's bus handling does not.
    ensure_init()
    with PipelineRunner(Gst.parse_launch(launch), stall_seconds=30) as runner:
        runner.run()
    playlist = hls.parse_media_playlist((out / "p.m3u8").read_text())
    assert len(playlist.segments) == SEGMENTS
    return [(out / name, duration) for name, duration in playlist.segments]


def _media(tmp_path: Path) -> tuple[Path, FileStore, MemoryCatalogue]:
    """A file store on disk, and a catalogue with the stream ``cam1``."""
    root = tmp_path / "media"
    cat = MemoryCatalogue()
    cat.create_stream(stream("cam1"))
    return root, FileStore(root, public_url=None, signing_key=None), cat


def _probe(path: Path) -> dict:
    """ffprobe's format duration and stream codecs of a media file."""
    done = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_name",
            "-of",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(done.stdout)


def test_two_writers_finalize_to_a_valid_video_and_mp4(
    tmp_path: Path, segments: list[tuple[Path, float]]
) -> None:
    root, store, cat = _media(tmp_path)
    known = Rendition(
        name="source",
        width=320,
        height=240,
        bandwidth=0,
        codecs="avc1.4d400d,mp4a.40.2",
        playlist="source/index.m3u8",
    )
    session, _ = cat.start_recording_session("cam1", "w1", renditions=[known], now=datetime(2026, 5, 28))
    sid = session.session_id
    cat.start_recording_session("cam1", "w2", now=datetime(2026, 5, 28, 0, 0, 3))
    # w1 wrote 0-5 and w2 (after a reconnect) 3-8: 3, 4 and 5 exist twice.
    for writer, seqs in (("w1", range(0, 6)), ("w2", range(3, SEGMENTS))):
        manifest = ManifestWriter(store, "cam1", sid, writer, "source", chunk_size=4)
        for seq in seqs:
            path, duration = segments[seq]
            seg = layout.segment_key(
                "cam1",
                sid,
                writer,
                "source",
                seq,
                duration_ms=round(duration * 1000),
                pdt_ms=T0_MS + seq * 1000,
            )
            write_segment(store, seg, path.read_bytes())
            manifest.append(seg)
    cat.end_recording_session(sid)

    settings = Settings(media_store_url=f"file://{root}", segment_seconds=1)
    ctx = StepContext(
        catalogue=cat,
        media_store=store,
        segment_seconds=1,
        export=subprocess_exporter(env={"REELAY_MEDIA_STORE_URL": f"file://{root}"}),
    )
    out = WorkflowRunner(ctx).start(sid, mp4=True)
    assert out["status"] == "ready", out
    assert (out["segments"], out["duplicates"], out["writers"]) == (SEGMENTS, 3, 2)
    assert cat.get_recording_session(sid).state == RecordingState.READY

    # The transcoder's own validation of published HLS, on the playlists as published: it resolves each
    # segment against its playlist, as a player does, so the recorder's segments are found where they
    # were written (../../../recordings/...).
    video = cat.get(out["videoId"])
    published = root / "outputs" / out["videoId"]
    for uri, _ in hls.parse_media_playlist((published / "source" / "index.m3u8").read_text()).segments:
        assert uri.startswith("../../../recordings/")
    final = validate_hls(published, video.renditions, video.duration_seconds or 0, settings.segment_seconds)
    assert len(final["source"]) == SEGMENTS
    master = hls.parse_master_playlist(store.get_bytes(f"outputs/{out['videoId']}/master.m3u8").decode())
    assert master[0].resolution == (320, 240) and master[0].bandwidth > 0
    assert not list(store.list(layout.manifest_session_prefix("cam1", sid)))

    info = _probe(store.local_path(out["mp4Key"]))
    assert abs(float(info["format"]["duration"]) - SEGMENTS) < 0.5
    assert sorted(s["codec_name"] for s in info["streams"]) == ["aac", "h264"]


def test_a_private_recording_exports_from_where_its_media_moved(
    tmp_path: Path, segments: list[tuple[Path, float]]
) -> None:
    # Given a finalized recording made private: its playlists and segments moved under private-outputs/
    root, store, cat = _media(tmp_path)
    session, _ = cat.start_recording_session("cam1", "w1", now=datetime(2026, 5, 28))
    sid = session.session_id
    for seq, (path, duration) in enumerate(segments):
        seg = layout.segment_key(
            "cam1", sid, "w1", "source", seq, duration_ms=round(duration * 1000), pdt_ms=T0_MS + seq * 1000
        )
        write_segment(store, seg, path.read_bytes())
    cat.end_recording_session(sid)
    out = WorkflowRunner(StepContext(catalogue=cat, media_store=store, segment_seconds=1)).start(sid)
    assert out["status"] == "ready", out
    vid = out["videoId"]
    cat.set_visibility(vid, VideoVisibility.PRIVATE)
    assert MediaRelocator(cat, store, Settings()).reconcile(vid) == SEGMENTS + 2
    assert not list(store.list("outputs/")) and not list(store.list("recordings/"))
    # When a range of it is exported, as the API starts it for a private recording (the real child)
    mp4_key = layout.export_media_key("private-outputs/", sid, "e1")
    state = {
        "videoId": vid,
        "mp4Key": mp4_key,
        "exportRendition": "source",
        "exportStart": 2.0,
        "exportEnd": 5.0,
    }
    run = subprocess_exporter(env={"REELAY_MEDIA_STORE_URL": f"file://{root}"}, timeout_seconds=120)
    result = run(state)
    # Then the MP4 is read from the private prefix and written under it, with the range's duration
    assert result["mp4Key"] == mp4_key and not list(store.list("outputs/"))
    assert abs(float(_probe(store.local_path(mp4_key))["format"]["duration"]) - 3.0) < 0.5
