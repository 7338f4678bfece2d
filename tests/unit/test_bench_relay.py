"""The relay bench's pure helpers and the camera picture option it uses (the bench runs in `make bench`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.cameras import Picture, RtspCamera
from tests.bench.bench_relay import (
    Config,
    Sample,
    count_frames,
    cpu_seconds,
    first_after,
    first_line_after,
    growth_per_rebuild,
    log_time,
    median,
    ratio,
    recycle_verdict,
    rss_mb,
    seed_argv,
    shown,
)

DROP = (
    '{"level":"WARNING","location":"_schedule_rebuild:242",'
    '"message":"relay dropped: source stalled: no media",'
    '"timestamp":"2026-12-01 12:47:30,250+0000","service":"relay","name":"reelay.relay.supervisor"}'
)


def test_median_of_measured_samples_and_of_lower_bounds() -> None:
    assert median([Sample(3.0), Sample(1.0), Sample(2.0)]) == Sample(2.0)
    # Two of three never happened within 20 s: the median is at least 20 s.
    assert median([Sample(1.0), Sample(20.0, True), Sample(20.0, True)]) == Sample(20.0, bound=True)
    assert median([Sample(1.0), Sample(2.0), Sample(20.0, True)]).bound is False
    with pytest.raises(ValueError):
        median([])


def test_ratio_is_a_lower_bound_when_the_peer_never_got_there() -> None:
    assert ratio(Sample(5.0), Sample(0.5)) == Sample(10.0)
    assert ratio(Sample(20.0, True), Sample(2.0)) == Sample(10.0, bound=True)
    assert shown(Sample(20.0, True)) == "> 20.00 s" and shown(Sample(1.5), "") == "1.50"
    with pytest.raises(ValueError):
        ratio(Sample(1.0), Sample(0.0))


def test_the_drop_line_of_the_task_log_gives_its_time() -> None:
    t = log_time(DROP)
    assert t is not None and abs(t - 1796129250.25) < 1e-6
    assert log_time("kvssink ERROR something") is None and log_time('{"no": "timestamp"}') is None
    text = "\n".join(["not json", DROP.replace("12:47:30,250", "12:47:20,000"), DROP])
    assert first_line_after(text, "relay dropped", 1796129249.0) == t
    assert first_line_after(text, "relay dropped", t + 1) is None
    assert first_after([1.0, 5.0, 3.0], 2.0) == 3.0 and first_after([1.0], 2.0) is None


def test_proc_readers() -> None:
    stat = "1234 (gst launch) (x) S 1 1 1 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 9 0 100 1 1"
    assert cpu_seconds(stat, 100) == 3.0  # utime 250 + stime 50 ticks
    assert rss_mb("Name:\tpython\nVmRSS:\t  102400 kB\n") == 100.0
    with pytest.raises(ValueError):
        rss_mb("Name:\tpython\n")


def test_the_seed_line_is_the_issue_s_pipeline_with_kvssink(tmp_path: Path) -> None:
    argv = seed_argv(
        "rtsp://127.0.0.1:1/cam",
        stream="s",
        credential_path=tmp_path / "c",
        log_config=tmp_path / "l",
        keyint=15,
    )
    line = " ".join(argv)
    assert argv[:2] == ["gst-launch-1.0", "-q"]
    assert "rtspsrc location=rtsp://127.0.0.1:1/cam protocols=tcp ! decodebin ! videoconvert" in line
    assert "x264enc tune=zerolatency" in line and "key-int-max=15" in line
    assert "video/x-h264,stream-format=avc,alignment=au ! kvssink stream-name=s" in line
    assert f"credential-path={tmp_path / 'c'}" in line
    assert "srtsrc uri=srt://h:1" in " ".join(seed_argv("srt://h:1", stream="s", credential_path=tmp_path,
                                                        log_config=tmp_path, keyint=1))  # fmt: skip


def test_recycle_verdict_and_config_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert recycle_verdict(0.001).startswith("no recycling")
    assert recycle_verdict(1.0).startswith("recycle the task")
    monkeypatch.setenv("REELAY_BENCH_RELAY_PARTS", "memory, cost")
    monkeypatch.setenv("REELAY_BENCH_RELAY_REBUILDS", "30")
    cfg = Config.from_env()
    assert cfg.parts == ("memory", "cost") and cfg.rebuilds == 30 and cfg.outages == Config().outages


def test_camera_picture_option() -> None:
    assert Picture.parse_size("1920x1080") == (1920, 1080)
    with pytest.raises(ValueError):
        Picture.parse_size("big")
    with pytest.raises(ValueError):
        Picture(fps=0)
    hd = Picture(1920, 1080, 30, keyframe_seconds=2, bitrate_kbps=4000)
    assert hd.args() == ["--size", "1920x1080", "--fps", "30", "--keyframe-seconds", "2", "--bitrate", "4000"]
    assert RtspCamera().picture == Picture() and RtspCamera(picture=hd).picture is hd


def test_camera_pipelines_follow_the_picture_and_keep_the_default() -> None:
    from local.cameras import serve

    assert "width=320,height=240,framerate=15/1" in serve.VIDEO and "key-int-max=15 bitrate=300" in serve.H264
    hd = Picture(1920, 1080, 30, keyframe_seconds=2, bitrate_kbps=4000)
    launch = serve.rtsp_launch("h264", audio=False, picture=hd)
    assert "width=1920,height=1080,framerate=30/1" in launch and "key-int-max=60 bitrate=4000" in launch
    srt = serve.srt_pipeline("127.0.0.1", 1, audio=False, picture=hd)
    assert "width=1920,height=1080" in srt and "key-int-max=60" in srt
    assert serve.rtsp_launch("h264", audio=False) == f"( {serve.VIDEO} ! {serve.RTSP_VIDEO['h264']} )"


def test_frames_are_counted_in_a_stored_cluster() -> None:
    timecode = bytes.fromhex("E78100")
    block = bytes.fromhex("A384") + b"\x81\x00\x00\x80"
    group = bytes.fromhex("A086") + bytes.fromhex("A184") + b"\x81\x00\x00\x00"
    unknown = bytes.fromhex("1F43B675") + bytes.fromhex("01FFFFFFFFFFFFFF") + timecode + block + block + group
    assert count_frames(unknown) == 3
    body = timecode + block
    sized = bytes.fromhex("1F43B675") + bytes([0x80 | len(body)]) + body + block  # a block past its end
    assert count_frames(sized) == 1
    assert count_frames(b"") == 0


def test_growth_per_rebuild_is_the_slope_from_the_first_rebuild_counted() -> None:
    # 1 MB per rebuild over rebuilds 10-29, the last sample taken 4 MB high (a buffer in flight), and an
    # early one that does not count
    samples = {k: float(k) for k in range(10, 30)} | {29: 33.0, 1: 50.0}
    # The two end points would say 1.21 MB per rebuild; the slope stays near the true 1
    assert (samples[29] - samples[10]) / 19 == pytest.approx(1.21, abs=0.01)
    assert growth_per_rebuild(samples, 10) == pytest.approx(1.0, abs=0.06)
    assert growth_per_rebuild({10: 5.0, 20: 5.0, 30: 5.0}, 10) == 0.0


def test_child_events_skip_other_output_and_wait_with_a_timeout() -> None:
    import subprocess
    import sys
    import time

    from tests.bench.bench_relay import ChildEvents

    # Given a child that prints a stray line, one event, then goes quiet without exiting
    script = (
        "import time; print('kvssink says hello');"
        ' print(\'{"event": "flowing", "built": 1}\', flush=True); time.sleep(30)'
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        events = ChildEvents(proc)
        # Then the event comes through, the stray line does not, and a quiet child gives None in time
        assert events.next(10) == {"event": "flowing", "built": 1}
        began = time.monotonic()
        assert events.next(0.3) is None
        assert time.monotonic() - began < 5
    finally:
        proc.kill()
        proc.wait(5)


def test_floor_rows_add_one_key_frame_interval_and_show_what_the_relay_adds() -> None:
    from tests.bench.bench_relay import floor_rows

    # Given a bare caller's first key frames after each heal, and Reelay's recoveries
    rows = floor_rows("srt", [Sample(0.26), Sample(1.27), Sample(1.26)], [Sample(2.33), Sample(2.3)], 1.0)
    by_metric = {row.metric: row.value for row in rows}
    # Then the floor is the median key frame plus one interval, and Reelay's excess is its median minus it
    assert by_metric["srt camera killed: back -> first key frame"] == pytest.approx(1.26)
    assert by_metric["srt camera killed: back -> first fragment PERSISTED (floor)"] == pytest.approx(2.26)
    assert by_metric["srt camera killed: recovery above the floor"] == pytest.approx(2.315 - 2.26)
    assert floor_rows("rtsp", [], [Sample(1.0)], 1.0) == []
