"""The transcode pipeline on tiny generated clips, checked with ffprobe/ffmpeg from outside."""

from __future__ import annotations

import itertools
import random
import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from reelay.errors import InvalidInput, MediaError
from reelay.media import hls
from reelay.media._gst import Gst, ensure_init
from reelay.media.ladder import PRESETS, choose_ladder
from reelay.media.pipeline import (
    _FACTORIES,
    DECODER_THREADS,
    RAW_QUEUE_FRAMES,
    TranscodeCancelled,
    TranscodeResult,
    _Job,
    encoder_threads,
    ladder_encoder_threads,
    planned_renditions,
    scale_parents,
    scaler_for,
    transcode,
    warm_up,
)
from reelay.media.probe import MediaInfo, probe
from reelay.media.runner import PipelineRunner, PipelineStalled
from reelay.models import Rendition
from tests.media_fixtures import FFMPEG, ffprobe_json, make_clip, make_truncated, make_vfr

pytestmark = pytest.mark.media

SEGMENT = 2
HD_LADDER = ("720p", "480p", "360p")


class Run:
    def __init__(
        self, out: Path, result: TranscodeResult, progress: list[float], segments: list[tuple[str, Path]],
        planned: list[Rendition] | None = None,
    ):  # fmt: skip
        self.out, self.result, self.progress, self.segments = out, result, progress, segments
        self.planned = planned or []

    def playlist(self, name: str) -> hls.MediaPlaylist:
        return hls.parse_media_playlist((self.out / name / "index.m3u8").read_text())

    def segment_files(self, name: str) -> list[Path]:
        return [self.out / name / uri for uri, _ in self.playlist(name).segments]


def run_transcode(src: Path, out: Path, names=("720p", "360p"), ladder=None, **kwargs) -> Run:
    info = probe(src)
    ladder = ladder or choose_ladder(info, names)
    progress: list[float] = []
    segments: list[tuple[str, Path]] = []
    result = transcode(
        src, out, ladder, info, segment_seconds=SEGMENT,
        on_progress=progress.append, on_segment=lambda n, p: segments.append((n, p)), **kwargs,
    )  # fmt: skip
    return Run(out, result, progress, segments, planned_renditions(ladder, info))


def video_stream(path: Path) -> dict:
    return next(s for s in ffprobe_json(path)["streams"] if s["codec_type"] == "video")


def first_video_packet(path: Path) -> dict:
    packets = ffprobe_json(path, "-select_streams", "v:0", "-show_packets")["packets"]
    return packets[0]


def decode_errors(path: Path) -> str:
    proc = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.stderr.strip() if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr.strip()}"


def top_and_bottom_colour(path: Path, width: int, height: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Mean RGB of the top and bottom quarter of the first frame."""
    raw = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24",
         "-"], capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert len(raw) == width * height * 3

    def mean(rows: range) -> tuple[int, ...]:
        sums, n = [0, 0, 0], 0
        for y in rows:
            line = raw[y * width * 3 : (y + 1) * width * 3]
            for c in range(3):
                sums[c] += sum(line[c::3])
            n += width
        return tuple(s // n for s in sums)

    return mean(range(0, height // 4)), mean(range(height * 3 // 4, height))


# --- one ordinary transcode, inspected from every side -----------------------------------------------
@pytest.fixture(scope="module")
def hd(tmp_path_factory: pytest.TempPathFactory) -> Run:
    # Given a 5 s 1280x720 clip with audio, transcoded to 720p, 480p and 360p in 2 s segments
    base = tmp_path_factory.mktemp("hd")
    src = make_clip(base / "src.mp4", seconds=5, width=1280, height=720)
    return run_transcode(src, base / "out", names=HD_LADDER)


def test_output_layout(hd: Run):
    # Then the master, the poster and each rendition's playlist and segments are where the contract says
    assert (hd.out / "master.m3u8").is_file()
    assert (hd.out / "poster.jpg").is_file()
    for name in HD_LADDER:
        files = hd.segment_files(name)
        assert [f.name for f in files] == [f"seg_{i:05d}.ts" for i in range(len(files))]
        assert all(f.is_file() and f.stat().st_size > 0 for f in files)
    assert not list(hd.out.glob(".poster_*"))  # no leftovers
    assert [r.name for r in hd.result.renditions] == list(HD_LADDER)
    assert hd.result.duration_seconds == pytest.approx(5.0, abs=0.1)


def test_segments_last_segment_seconds_except_the_last(hd: Run):
    for name in HD_LADDER:
        playlist = hd.playlist(name)
        durations = [d for _, d in playlist.segments]
        assert len(durations) == 3
        assert durations[:-1] == pytest.approx([SEGMENT] * (len(durations) - 1), abs=0.05)
        assert 0 < durations[-1] <= SEGMENT + 0.05
        assert sum(durations) == pytest.approx(5.0, abs=0.1)


def test_rendition_playlists_are_vod(hd: Run):
    for name in HD_LADDER:
        playlist = hd.playlist(name)
        assert playlist.playlist_type == "VOD"
        assert playlist.ended
        assert playlist.version == 3
        assert playlist.target_duration == SEGMENT


def test_every_rendition_of_the_default_ladder_carries_the_same_audio(hd: Run):
    # Then the audio was encoded once and shared: each rendition's AAC frames are byte for byte the same,
    # so a player switching variants never hears a seam (and the transcode encodes no audio twice)
    def aac(name: str) -> bytes:
        playlist = hd.out / name / "index.m3u8"
        return subprocess.run(
            [FFMPEG, "-v", "error", "-allowed_extensions", "ALL", "-i", str(playlist), "-map", "0:a:0",
             "-c", "copy", "-f", "adts", "-"],
            capture_output=True, check=True,
        ).stdout  # fmt: skip

    first = aac(HD_LADDER[0])
    assert len(first) > 10_000  # 5 s of AAC
    assert all(aac(name) == first for name in HD_LADDER[1:])


def test_video_is_8bit_420_square_pixels_main_or_high(hd: Run):
    # 854x480 is the size that gets a non-square pixel aspect ratio unless it is forced
    expected = {"720p": ("High", 1280, 720), "480p": ("Main", 854, 480), "360p": ("Main", 640, 360)}
    for name, (profile, width, height) in expected.items():
        for segment in hd.segment_files(name):
            v = video_stream(segment)
            assert v["codec_name"] == "h264"
            assert v["profile"] == profile
            assert v["pix_fmt"] == "yuv420p"  # 8-bit 4:2:0
            assert v.get("bits_per_raw_sample", "8") == "8"
            assert (v["width"], v["height"]) == (width, height)
            assert v["sample_aspect_ratio"] == "1:1"
            assert v["r_frame_rate"] == "25/1"


def test_audio_is_aac_lc(hd: Run):
    for name in HD_LADDER:
        streams = ffprobe_json(hd.segment_files(name)[0])["streams"]
        audio = [s for s in streams if s["codec_type"] == "audio"]
        assert len(audio) == 1
        assert audio[0]["codec_name"] == "aac" and audio[0]["profile"] == "LC"
        assert audio[0]["sample_rate"] == "48000" and audio[0]["channels"] == 2


def test_keyframes_align_across_renditions(hd: Run):
    # Then every segment of every rendition starts with a keyframe, and at the same timestamp
    starts = {}
    for name in HD_LADDER:
        firsts = [first_video_packet(seg) for seg in hd.segment_files(name)]
        assert all("K" in p["flags"] for p in firsts), f"{name}: a segment does not start on a keyframe"
        starts[name] = [round(float(p["pts_time"]), 3) for p in firsts]
    assert starts["720p"] == starts["480p"] == starts["360p"]
    steps = [b - a for a, b in zip(starts["720p"], starts["720p"][1:], strict=False)]
    assert steps == pytest.approx([SEGMENT] * len(steps), abs=0.001)


def test_master_playlist_is_valid_and_truthful(hd: Run):
    variants = hls.parse_master_playlist((hd.out / "master.m3u8").read_text())
    # Every rendition is listed once, the start variant first (by the peaks the encoder measured)
    assert sorted(v.uri for v in variants) == sorted(f"{name}/index.m3u8" for name in HD_LADDER)
    assert [v.uri for v in variants] == [r.playlist for r in hls.start_order(hd.result.renditions)]
    made = {r.playlist: r for r in hd.result.renditions}
    for variant in variants:
        name = variant.uri.split("/")[0]
        rendition = made[variant.uri]
        assert (hd.out / variant.uri).is_file()
        # BANDWIDTH is the measured peak: at least every full segment's rate, at least the average
        files = hd.segment_files(name)
        durations = [d for _, d in hd.playlist(name).segments]
        rates = [f.stat().st_size * 8 / d for f, d in zip(files, durations, strict=True) if d >= SEGMENT / 2]
        average = int(variant.attributes["AVERAGE-BANDWIDTH"])
        assert variant.bandwidth >= max(rates) - 1
        assert variant.bandwidth >= average > 0
        assert average == pytest.approx(sum(f.stat().st_size for f in files) * 8 / sum(durations), rel=0.01)
        # CODECS is the real profile/level of the stream, plus AAC LC
        v = video_stream(files[0])
        profile_idc = {"High": "64", "Main": "4d"}[v["profile"]]
        video_codec, audio_codec = variant.attributes["CODECS"].split(",")
        assert video_codec.startswith(f"avc1.{profile_idc}")
        assert int(video_codec[-2:], 16) == v["level"]
        assert audio_codec == "mp4a.40.2"
        assert variant.resolution == (v["width"], v["height"])
        assert float(variant.attributes["FRAME-RATE"]) == pytest.approx(25.0)
        assert variant.bandwidth == rendition.bandwidth


def test_the_early_master_announces_the_levels_the_encoder_chose(hd: Run):
    # Given the nominal renditions published before the job finished
    # Then each names the same profile and level as the stream that came out, and no lower peak
    for planned, final in zip(hd.planned, hd.result.renditions, strict=True):
        assert planned.codecs == final.codecs, planned.name
        assert planned.bandwidth >= final.bandwidth * 0.5


def test_every_rendition_decodes_end_to_end(hd: Run):
    for name in HD_LADDER:
        assert decode_errors(hd.out / name / "index.m3u8") == ""


def test_poster_is_a_jpeg_no_wider_than_the_video(hd: Run):
    poster = hd.result.poster
    assert poster == hd.out / "poster.jpg"
    assert poster.read_bytes()[:3] == b"\xff\xd8\xff"
    v = video_stream(poster)
    assert v["codec_name"] == "mjpeg"
    assert (v["width"], v["height"]) == (1280, 720)


def test_progress_rises_to_one_and_segments_are_announced_as_they_close(hd: Run):
    assert hd.progress, "no progress was reported"
    assert hd.progress == sorted(hd.progress)
    assert all(0 <= p <= 1 for p in hd.progress)
    assert hd.progress[-1] == 1.0
    for name in HD_LADDER:
        announced = [p for n, p in hd.segments if n == name]
        assert announced == hd.segment_files(name)


# --- sources that need care ------------------------------------------------------------------------
def test_no_upscaling_small_source_gets_only_its_own_size(tmp_path: Path):
    # Given a 640x360 source asked for 1080p, 720p and 360p
    run = run_transcode(
        make_clip(tmp_path / "s.mp4", seconds=2), tmp_path / "out", names=("1080p", "720p", "360p")
    )
    # Then only a 640x360 rendition exists
    assert [(r.name, r.width, r.height) for r in run.result.renditions] == [("360p", 640, 360)]
    v = video_stream(run.segment_files("360p")[0])
    assert (v["width"], v["height"]) == (640, 360)


@pytest.mark.parametrize("rotate", [90, 270])
def test_rotated_phone_video_comes_out_upright(tmp_path: Path, rotate: int):
    # Given a portrait clip (red top, blue bottom) stored sideways with a rotation tag
    src = make_clip(tmp_path / "phone.mp4", seconds=2, width=360, height=640, rotate=rotate, pattern="split")
    # When it is transcoded
    run = run_transcode(src, tmp_path / "out", names=("360p",))
    # Then the rendition is portrait and upright: red on top, blue at the bottom, with no rotation tag left
    segment = run.segment_files("360p")[0]
    v = video_stream(segment)
    assert (v["width"], v["height"]) == (360, 640)
    assert not v.get("side_data_list")
    top, bottom = top_and_bottom_colour(segment, 360, 640)
    assert top[0] > 200 and top[2] < 60, f"top is not red: {top}"
    assert bottom[2] > 200 and bottom[0] < 60, f"bottom is not blue: {bottom}"
    poster = video_stream(run.result.poster)
    assert (poster["width"], poster["height"]) == (360, 640)


def test_odd_dimensions_and_444_input_become_even_420(tmp_path: Path):
    # Given a 4:4:4 clip of 321x241 pixels without audio
    src = make_clip(tmp_path / "odd.mp4", seconds=2, width=321, height=241, audio=False)
    run = run_transcode(src, tmp_path / "out", names=("360p",))
    # Then one even-sized 4:2:0 rendition comes out
    (rendition,) = run.result.renditions
    assert (rendition.width, rendition.height) == (320, 240)
    v = video_stream(run.segment_files(rendition.name)[0])
    assert (v["width"], v["height"], v["pix_fmt"]) == (320, 240, "yuv420p")


def test_variable_frame_rate_input_comes_out_constant(tmp_path: Path):
    # Given 4 s that run at 25 fps for one second and then at about 8 fps
    src = make_vfr(tmp_path / "vfr.mp4", seconds=4)
    run = run_transcode(src, tmp_path / "out", names=("360p",))
    # Then the output has 25 frames for every second
    frames = 0
    for segment in run.segment_files("360p"):
        packets = ffprobe_json(segment, "-select_streams", "v:0", "-show_packets")["packets"]
        frames += len(packets)
        durations = {p["duration"] for p in packets if "duration" in p}
        assert len(durations) <= 1, f"frame durations vary: {durations}"
    assert frames == pytest.approx(100, abs=2)
    assert decode_errors(run.out / "360p" / "index.m3u8") == ""


def test_video_without_audio_makes_video_only_renditions(tmp_path: Path):
    src = make_clip(tmp_path / "silent.mp4", seconds=2, audio=False)
    run = run_transcode(src, tmp_path / "out", names=("360p",))
    (rendition,) = run.result.renditions
    assert "mp4a" not in rendition.codecs and rendition.codecs.startswith("avc1.")
    variant = hls.parse_master_playlist((run.out / "master.m3u8").read_text())[0]
    assert variant.attributes["CODECS"] == rendition.codecs
    streams = ffprobe_json(run.segment_files("360p")[0])["streams"]
    assert [s["codec_type"] for s in streams] == ["video"]


def test_audio_track_that_yields_no_audio_does_not_hang_the_job(tmp_path: Path):
    # Given a probe that promised audio, but the file has none that can be decoded
    src = make_clip(tmp_path / "silent.mp4", seconds=2, audio=False)
    info = replace(probe(src), has_audio=True)
    # When it is transcoded with a short watchdog
    result = transcode(src, tmp_path / "out", choose_ladder(info, ("360p",)), info, stall_seconds=10)
    # Then it finishes with video-only renditions instead of stalling
    assert [r.codecs.startswith("avc1.") and "mp4a" not in r.codecs for r in result.renditions] == [True]
    assert decode_errors(tmp_path / "out" / "360p" / "index.m3u8") == ""


def test_ntsc_frame_rate_keeps_a_two_second_target_and_aligned_keyframes(tmp_path: Path):
    # Given a 4 s 320x180 clip at 30000/1001 fps, transcoded to two sizes in 2 s segments
    src = make_clip(tmp_path / "ntsc.mp4", seconds=4, width=320, height=180, fps="30000/1001")
    ladder = [
        replace(PRESETS["240p"], name="180p", width=320, height=180, video_kbps=300, max_kbps=450),
        replace(PRESETS["240p"], name="90p", width=160, height=90, video_kbps=150, max_kbps=225),
    ]
    run = run_transcode(src, tmp_path / "out", ladder=ladder)
    starts = {}
    for spec in ladder:
        playlist = run.playlist(spec.name)
        durations = [d for _, d in playlist.segments]
        # Then segments last 60 frames (2.002 s) and TARGETDURATION is 2, as RFC 8216 rounds EXTINF
        assert durations[0] == pytest.approx(2.002, abs=0.001)
        assert playlist.target_duration == 2
        assert all(round(d) <= playlist.target_duration for d in durations)
        # And every segment starts on a keyframe, at the same timestamps in both renditions
        firsts = [first_video_packet(seg) for seg in run.segment_files(spec.name)]
        assert all("K" in p["flags"] for p in firsts), f"{spec.name}: a segment does not start on a keyframe"
        starts[spec.name] = [round(float(p["pts_time"]), 3) for p in firsts]
        assert video_stream(run.segment_files(spec.name)[0])["r_frame_rate"] == "30000/1001"
    assert len(starts["180p"]) >= 2
    assert starts["180p"] == starts["90p"]
    steps = [b - a for a, b in itertools.pairwise(starts["180p"])]
    assert steps == pytest.approx([2.002] * len(steps), abs=0.002)
    variants = hls.parse_master_playlist((run.out / "master.m3u8").read_text())
    assert {v.attributes["FRAME-RATE"] for v in variants} == {"29.970"}


def test_planned_renditions_match_the_ladder(tmp_path: Path):
    info = probe(make_clip(tmp_path / "s.mp4", seconds=1, audio=False))
    planned = planned_renditions(choose_ladder(info, ("360p",)), info)
    # 640x360 at 25 fps and 1.2 Mbit/s peak is Main profile level 3.0
    assert [(r.name, r.playlist, r.codecs) for r in planned] == [("360p", "360p/index.m3u8", "avc1.4d401e")]
    assert planned[0].bandwidth == PRESETS["360p"].max_kbps * 1000


# --- failures --------------------------------------------------------------------------------------
def test_truncated_fast_start_upload_is_a_media_error(tmp_path: Path):
    # Given an MP4 whose index is intact but whose media data stops at 40 %
    src = make_truncated(tmp_path / "cut.mp4", faststart=True, keep_fraction=0.4)
    info = probe(src)  # the index still describes the whole file
    # When it is transcoded, Then the shortfall is reported as bad media
    with pytest.raises(MediaError, match=r"truncated: only .* of its 3.0 s could be decoded"):
        transcode(src, tmp_path / "out", choose_ladder(info, ("360p",)), info)


def test_source_without_video_is_refused(tmp_path: Path):
    src = make_clip(tmp_path / "s.mp4", seconds=1)
    info = replace(probe(src), has_video=False, width=0, height=0)
    with pytest.raises(MediaError, match="no video stream"):
        transcode(src, tmp_path / "out", [PRESETS["360p"]], info)


@pytest.mark.parametrize(
    ("kwargs", "ladder", "message"),
    [
        ({"segment_seconds": 0}, None, "segment_seconds"),
        ({"x264_preset": "warp9"}, None, "unknown x264 preset"),
        ({}, [], "ladder is empty"),
        ({}, [PRESETS["360p"], PRESETS["360p"]], "unique"),
        ({}, [replace(PRESETS["360p"], name="../escape")], "folder-safe"),
        ({}, [replace(PRESETS["360p"], width=641)], "even dimensions"),
        ({}, [replace(PRESETS["360p"], profile="baseline")], "profile"),
    ],
)
def test_bad_arguments_are_invalid_input(tmp_path: Path, kwargs, ladder, message):
    src = make_clip(tmp_path / "s.mp4", seconds=1, audio=False)
    info = probe(src)
    with pytest.raises(InvalidInput, match=message):
        transcode(src, tmp_path / "out", [PRESETS["360p"]] if ladder is None else ladder, info, **kwargs)
    assert not (tmp_path / "out").exists()


def test_missing_source_is_a_transient_error(tmp_path: Path):
    info = probe(make_clip(tmp_path / "s.mp4", seconds=1))
    with pytest.raises(FileNotFoundError):
        transcode(tmp_path / "gone.mp4", tmp_path / "out", [PRESETS["360p"]], info)


def test_cancel_stops_the_job_after_the_first_segment(tmp_path: Path):
    # Given a 6 s clip and a cancel that is set as soon as the first segment closes
    src = make_clip(tmp_path / "s.mp4", seconds=6)
    info = probe(src)
    cancel = threading.Event()
    # When it is transcoded, Then TranscodeCancelled is raised before the job finishes
    with pytest.raises(TranscodeCancelled):
        transcode(
            src, tmp_path / "out", choose_ladder(info, ("360p",)), info,
            on_segment=lambda _n, _p: cancel.set(), cancel=cancel,
        )  # fmt: skip
    assert not (tmp_path / "out" / "master.m3u8").exists()


def test_watchdog_fails_a_stuck_pipeline_and_releases_it():
    # Given a live pipeline whose media never flows (a closed valve)
    ensure_init()
    pipeline = Gst.parse_launch("videotestsrc is-live=true ! valve drop=true ! fakesink")
    runner = PipelineRunner(pipeline, stall_seconds=1, tick_seconds=0.1)
    # When it runs, Then the watchdog fails it, and the pipeline is back in NULL
    with pytest.raises(PipelineStalled, match="no media flowed for 1 s"):
        runner.run()
    assert pipeline.get_state(0)[1] == Gst.State.NULL


# --- memory: raw video is never buffered in bulk -----------------------------------------------------
def _peer_element(pad: Gst.Pad) -> Gst.Element | None:
    peer = pad.get_peer()
    return peer.get_parent_element() if peer is not None else None


def test_raw_video_queues_hold_a_few_frames_and_encoders_share_the_cores(tmp_path: Path):
    # Given the pipeline built for a full-HD source and the whole default ladder
    src = make_clip(tmp_path / "s.mp4", seconds=1, width=1920, height=1080, audio=False)
    info = probe(src)
    ladder = choose_ladder(info)
    job = _Job(src, tmp_path / "out", ladder, info, SEGMENT, "veryfast")
    try:
        elements = list(job.pipeline.iterate_elements())
        queues = [e for e in elements if kind(e) == "queue"]

        # Then every queue on raw video (the decoder's output and each tee branch) holds at most
        # RAW_QUEUE_FRAMES frames, with no byte or time allowance, and never drops frames
        def fed_by(q: Gst.Element) -> str:
            upstream = _peer_element(q.get_static_pad("sink"))
            return upstream.get_name() if upstream is not None else ""

        raw = [q for q in queues if q.get_name() == "video_in" or fed_by(q).endswith("_tee")]
        raw = [q for q in raw if not fed_by(q).startswith("aac_")]
        feeders = {p for p in scale_parents(ladder, info.width, info.height).values() if p}
        # decoder output, one scaler per rendition, poster, and an encoder queue behind each feeding rendition
        assert len(raw) == 1 + len(ladder) + 1 + len(feeders)
        for q in raw:
            assert 1 <= q.get_property("max-size-buffers") <= RAW_QUEUE_FRAMES, q.get_name()
            assert q.get_property("max-size-bytes") == 0 and q.get_property("max-size-time") == 0
            assert q.get_property("leaky").value_nick == "no"
        # And the encoders' threads follow their share of the pixels (1080p gets the most), at least one each
        threads = {
            e.get_name(): e.get_property("threads") for e in elements if e.get_name().startswith("x264_")
        }
        assert threads == {f"x264_{s.name}": ladder_encoder_threads(s, ladder) for s in ladder}
        assert threads["x264_1080p"] == max(threads.values()) and min(threads.values()) >= 1
    finally:
        job.pipeline.set_state(Gst.State.NULL)
        job.release()


@pytest.mark.parametrize(
    ("cores", "expected"), [(1, [1, 1, 1, 1]), (2, [2, 1, 1, 1]), (4, [4, 2, 1, 1]), (8, [7, 4, 2, 1])]
)
def test_encoder_threads_scale_with_cores_and_pixels(cores, expected):
    ladder = [PRESETS[n] for n in ("1080p", "720p", "480p", "360p")]
    assert [encoder_threads(s, ladder, cores) for s in ladder] == expected


def kind(element: Gst.Element) -> str:
    """An element's factory name; "swscale" for Reelay's own libswscale scaler (made without one)."""
    factory = element.get_factory()
    return factory.get_name() if factory is not None else type(element).__name__.lower()


def _factories(job: _Job) -> list[str]:
    return [kind(e) for e in job.pipeline.iterate_recurse()]


def test_only_an_oriented_source_goes_through_videoflip(tmp_path: Path):
    # Given an upright source (videoflip would copy each of its frames to change nothing)
    src = make_clip(tmp_path / "s.mp4", seconds=1, audio=False)
    info = probe(src)
    assert (info.rotation, info.mirrored) == (0, False)
    cases = {"upright": (info, False), "rotated": (replace(info, rotation=180), True),
             "mirrored": (replace(info, mirrored=True), True)}  # fmt: skip
    for case, (oriented, expected) in cases.items():
        # When the pipeline is built for it, Then only a rotated or mirrored source gets a videoflip
        job = _Job(src, tmp_path / case, choose_ladder(oriented), oriented, SEGMENT, "veryfast")
        try:
            assert ("videoflip" in _factories(job)) is expected, case
        finally:
            job.release()


def test_the_video_decoder_runs_one_thread_and_copies_into_pooled_buffers(tmp_path: Path):
    # Given the pipeline for a full-HD source
    src = make_clip(tmp_path / "s.mp4", seconds=1, width=1920, height=1080, audio=False)
    info = probe(src)
    job = _Job(src, tmp_path / "out", choose_ladder(info), info, SEGMENT, "veryfast")
    try:
        # When it starts and decodebin has made its decoder
        job.pipeline.set_state(Gst.State.PAUSED)
        job.pipeline.get_state(10 * Gst.SECOND)
        decoders = [e for e in job.decodebin.iterate_recurse() if e.get_factory().get_name() == "avdec_h264"]
        # Then libav decodes on one thread, without direct rendering (which made a copy per frame anyway,
        # into fresh memory that the encoders then held)
        assert len(decoders) == 1
        assert decoders[0].get_property("max-threads") == DECODER_THREADS == 1
        assert decoders[0].get_property("direct-rendering") is False
    finally:
        job.pipeline.set_state(Gst.State.NULL)
        job.release()


@pytest.mark.parametrize(
    ("cores", "expected"), [(1, [1, 1, 1, 1]), (2, [1, 1, 1, 1]), (4, [2, 1, 1, 1]), (8, [5, 2, 1, 1])]
)
def test_a_files_encoders_get_frame_threads_only_for_their_share_of_the_cores(cores, expected):
    # Given the default ladder: together its encoders take as many threads as there are cores, roughly
    ladder = [PRESETS[n] for n in ("1080p", "720p", "480p", "360p")]
    assert [ladder_encoder_threads(s, ladder, cores) for s in ladder] == expected
    # And a one-rendition ladder uses every core
    assert ladder_encoder_threads(ladder[0], ladder[:1], cores) == cores


def test_a_rendition_is_scaled_from_the_source_unless_it_is_half_of_an_exact_copy():
    # Given the default ladder of a 16:9 1080p source: 854x480 is rounded to even, so not an exact copy
    ladder = [PRESETS[n] for n in ("1080p", "720p", "480p", "360p")]
    # Then 360p comes from 720p, its exact double; every other rung from the source's frames
    assert scale_parents(ladder, 1920, 1080) == {"1080p": None, "720p": None, "480p": None, "360p": "720p"}
    # And a 4:3 source's ladder (1440x1080, 960x720, 640x480, 480x360): 360p is half of 720p there too
    four_three = choose_ladder(replace(probe_info_stub(), width=1440, height=1080))
    assert scale_parents(four_three, 1440, 1080) == {
        "1080p": None,
        "720p": None,
        "480p": None,
        "360p": "720p",
    }
    # And a rendition is never fed by one smaller than itself, or by a picture of another shape
    assert scale_parents(four_three, 1920, 1080) == {s.name: None for s in four_three}
    # And a portrait ladder follows the same rule
    portrait = choose_ladder(replace(probe_info_stub(), width=1080, height=1920))
    parents = scale_parents(portrait, 1080, 1920)
    assert [parents[r.name] for r in portrait] == [None, None, None, "720p"]


def _scale_frame(planes: list[bytes], size: tuple[int, int], to: tuple[int, int], props: dict) -> list[bytes]:
    """One I420 frame (Y, U, V planes, no row padding) through a real videoscale with ``props``."""
    ensure_init()
    caps = (
        "video/x-raw,format=I420,width={},height={},framerate=25/1,colorimetry=bt709,pixel-aspect-ratio=1/1"
    )
    pipeline = Gst.parse_launch(
        f"appsrc name=src caps={caps.format(*size)} format=time ! videoscale name=scale add-borders=false "
        f"! {caps.format(*to)} ! appsink name=sink"
    )
    scale = pipeline.get_by_name("scale")
    for key, value in props.items():
        Gst.util_set_object_arg(scale, key.replace("_", "-"), value)
    pipeline.set_state(Gst.State.PLAYING)
    try:
        buf = Gst.Buffer.new_wrapped(b"".join(planes))
        buf.pts, buf.duration = 0, Gst.SECOND // 25
        pipeline.get_by_name("src").emit("push-buffer", buf)
        pipeline.get_by_name("src").emit("end-of-stream")
        sample = pipeline.get_by_name("sink").emit("try-pull-sample", 10 * Gst.SECOND)
        assert sample is not None, "videoscale produced no frame"
        out = sample.get_buffer().extract_dup(0, sample.get_buffer().get_size())
    finally:
        pipeline.set_state(Gst.State.NULL)
    w, h = to
    y, c = w * h, (w // 2) * (h // 2)
    return [out[:y], out[y : y + c], out[y + c : y + 2 * c]]


def test_a_rendition_half_its_parents_size_is_the_2x2_average_of_it_on_every_plane(tmp_path: Path):
    # Given the pipeline for a full-HD source and the default ladder: 360p is scaled from 720p, its half
    src = make_clip(tmp_path / "s.mp4", seconds=1, width=1920, height=1080, audio=False)
    info = probe(src)
    ladder = {s.name: s for s in choose_ladder(info)}
    job = _Job(src, tmp_path / "out", list(ladder.values()), info, SEGMENT, "veryfast")
    try:
        scalers = {
            e.get_name(): kind(e)
            + (f" {e.get_property('chroma-resampler').value_nick} chroma" if kind(e) == "videoscale" else "")
            for e in job.pipeline.iterate_elements()
            if e.get_name().startswith("scale_")
        }
    finally:
        job.pipeline.set_state(Gst.State.NULL)
        job.release()
    # Then the halving rung is a videoscale filtering its chroma linearly, the others libswscale
    assert scalers == {"scale_1080p": "swscale", "scale_720p": "swscale", "scale_480p": "swscale",
                      "scale_360p": "videoscale linear chroma"}  # fmt: skip
    assert scaler_for(ladder["360p"], 1280, 720) != scaler_for(ladder["480p"], 1280, 720)
    # And that scaler, given a noisy 64x36 frame, returns each plane's 2x2 averages (GStreamer's one-pass
    # halving; Lanczos chroma went through the multi-tap scaler: 35-39 levels off on U and V of noise)
    rng = random.Random(7)
    planes = [bytes(rng.randrange(16, 236) for _ in range(w * h)) for w, h in ((64, 36), (32, 18), (32, 18))]
    half = replace(ladder["360p"], width=32, height=18)
    out = _scale_frame(planes, (64, 36), (32, 18), dict(scaler_for(half, 64, 36).properties))
    for name, plane, scaled, (w, h) in zip("YUV", planes, out, ((64, 36), (32, 18), (32, 18)), strict=True):
        worst = max(
            abs(
                4 * scaled[y * (w // 2) + x]
                - sum(plane[(2 * y + dy) * w + 2 * x + dx] for dy in (0, 1) for dx in (0, 1))
            )
            for y in range(h // 2)
            for x in range(w // 2)
        )
        assert worst <= 4, f"{name}: {worst / 4} levels from the 2x2 average"


def probe_info_stub():
    return MediaInfo(
        duration_seconds=1.0, has_video=True, has_audio=False, width=1920, height=1080, rotation=0, fps=25.0,
        variable_frame_rate=False, video_codec="h264", audio_codec=None, container="mp4",
    )  # fmt: skip


def _psnr_against_source(rendition: Path, source: Path, width: int, height: int) -> float:
    out = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-i", str(rendition), "-i", str(source), "-lavfi",
         f"[0]setpts=PTS-STARTPTS[a];[1]setpts=PTS-STARTPTS,scale={width}:{height}:flags=lanczos[r];[a][r]psnr",
         "-f", "null", "-"], capture_output=True, text=True, check=True, timeout=120,
    ).stderr  # fmt: skip
    return float(out.rsplit("average:", 1)[1].split()[0])


def test_sd_renditions_of_an_hd_source_keep_its_colours_and_sharpness(tmp_path: Path):
    # Given a 1080p test pattern without colour description, transcoded to 720p, 480p and 360p
    src = make_clip(tmp_path / "s.mp4", seconds=1, width=1920, height=1080, audio=False)
    run = run_transcode(src, tmp_path / "out", names=("720p", "480p", "360p"))
    for spec in run.result.renditions:
        rendition = run.out / spec.name / "index.m3u8"
        # Then each one is close to the source scaled to its size (a BT.709 -> BT.601 matrix conversion
        # of the SD ones gave 24 dB; 2-tap scaling 34-40 dB)
        assert _psnr_against_source(rendition, src, spec.width, spec.height) > 41, spec.name
        # And says which colours it carries: those of the source (BT.709 for HD), not a guess from its size
        assert video_stream(run.segment_files(spec.name)[0]).get("color_space") == "bt709", spec.name


def test_warm_up_loads_every_plugin_the_pipeline_uses(tmp_path: Path):
    # Given a worker that warmed up before its first job
    warm_up()
    # Then the plugins of the listed elements are loaded
    for name in _FACTORIES:
        assert Gst.ElementFactory.find(name).get_plugin().is_loaded(), name
    # And the list holds every element a transcode builds (so a new element cannot be left out of it)
    src = make_clip(tmp_path / "s.mp4", seconds=1, width=1280, height=720)
    info = probe(src)
    job = _Job(src, tmp_path / "out", choose_ladder(info), info, SEGMENT, "veryfast")
    try:
        built = {e.get_factory().get_name() for e in job.pipeline.iterate_recurse() if e.get_factory()}
        assert built <= set(_FACTORIES), built - set(_FACTORIES)
    finally:
        job.pipeline.set_state(Gst.State.NULL)
        job.release()
