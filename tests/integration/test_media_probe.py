"""probe() against real files generated on the spot, good and bad."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reelay.errors import MediaError
from reelay.media.probe import MediaInfo, probe
from tests.media_fixtures import (
    FFMPEG,
    make_audio_only,
    make_clip,
    make_text_file_named_mp4,
    make_truncated,
    make_zero_byte,
)

pytestmark = pytest.mark.media


def test_probe_describes_an_ordinary_clip(tmp_path: Path):
    # Given a 3 s 640x360 25 fps H.264/AAC MP4
    clip = make_clip(tmp_path / "clip.mp4", seconds=3)
    # When it is probed
    info = probe(clip)
    # Then every field says so
    assert info == MediaInfo(
        duration_seconds=pytest.approx(3.0, abs=0.1), has_video=True, has_audio=True, width=640,
        height=360, rotation=0, fps=25.0, variable_frame_rate=False, video_codec="h264", audio_codec="aac",
        container="mp4",
    )  # fmt: skip


def test_probe_reports_display_size_of_a_rotated_phone_clip(tmp_path: Path):
    # Given a portrait clip stored landscape (640x360) with a 90 degree rotation tag
    clip = make_clip(tmp_path / "phone.mp4", width=360, height=640, rotate=90, seconds=1)
    # When it is probed
    info = probe(clip)
    # Then the size is the upright display size and the rotation is reported
    assert (info.width, info.height, info.rotation) == (360, 640, 90)


def test_probe_reads_other_containers_and_codecs(tmp_path: Path):
    # Given a WebM with VP8 video and Opus audio
    clip = make_clip(tmp_path / "clip.webm", container="webm", seconds=1)
    # Then the codecs and container are named
    info = probe(clip)
    assert (info.container, info.video_codec, info.audio_codec) == ("webm", "vp8", "opus")


def test_probe_keeps_odd_dimensions_and_notices_missing_audio(tmp_path: Path):
    clip = make_clip(tmp_path / "odd.mp4", width=321, height=241, audio=False, seconds=1)
    info = probe(clip)
    assert (info.width, info.height, info.has_audio, info.audio_codec) == (321, 241, False, None)


def test_zero_byte_file_is_a_media_error(tmp_path: Path):
    with pytest.raises(MediaError, match=r"empty \(0 bytes\)"):
        probe(make_zero_byte(tmp_path / "empty.mp4"))


def test_text_file_renamed_mp4_is_a_media_error(tmp_path: Path):
    with pytest.raises(MediaError, match="not a recognised video file"):
        probe(make_text_file_named_mp4(tmp_path / "list.mp4"))


def test_the_reason_is_a_sentence_and_gstreamers_own_text_is_kept_apart(tmp_path: Path):
    # The reason becomes the video's failureReason (shown to people); GStreamer's text goes to the logs
    with pytest.raises(MediaError) as caught:
        probe(make_text_file_named_mp4(tmp_path / "list.mp4"))
    assert caught.value.message == "not a recognised video file"
    assert caught.value.detail and caught.value.detail not in caught.value.message


def test_random_bytes_are_a_media_error(tmp_path: Path):
    junk = tmp_path / "junk.mov"
    junk.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(MediaError, match="not a recognised video file"):
        probe(junk)


def test_truncated_upload_is_a_media_error(tmp_path: Path):
    # Given an MP4 whose upload stopped half way (its index at the end is lost)
    with pytest.raises(MediaError, match="truncated or corrupt"):
        probe(make_truncated(tmp_path / "cut.mp4"))


def test_audio_only_file_is_refused_with_a_reason(tmp_path: Path):
    # Given an audio-only MP4: Reelay refuses those (see reelay.media.pipeline)
    with pytest.raises(MediaError, match=r"no video stream \(audio-only files are not supported\)"):
        probe(make_audio_only(tmp_path / "memo.mp4"))


def test_still_image_is_refused(tmp_path: Path):
    # Given a JPEG photo renamed .mp4
    photo = tmp_path / "photo.mp4"
    subprocess.run(
        [FFMPEG, "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=320x240:d=1", "-frames:v", "1",
         "-f", "mjpeg", str(photo)], check=True, timeout=60,
    )  # fmt: skip
    with pytest.raises(MediaError, match="still image"):
        probe(photo)


def test_missing_file_is_not_blamed_on_the_uploader(tmp_path: Path):
    # A missing download is a transient worker problem, not bad media
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "nowhere.mp4")


def test_probe_survives_bad_files_in_a_row(tmp_path: Path):
    # Given a bad file followed by a truncated one and a good one (a discoverer bug used to hang here)
    text = make_text_file_named_mp4(tmp_path / "a.mp4")
    cut = make_truncated(tmp_path / "b.mp4", seconds=1)
    good = make_clip(tmp_path / "c.mp4", seconds=1)
    # Then each gets its own answer promptly
    with pytest.raises(MediaError, match="not a recognised"):
        probe(text, timeout_seconds=5)
    with pytest.raises(MediaError, match="truncated or corrupt"):
        probe(cut, timeout_seconds=5)
    assert probe(good, timeout_seconds=5).has_video
