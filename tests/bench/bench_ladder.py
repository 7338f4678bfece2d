"""ABR ladder throughput: Reelay's one-decode GStreamer pipeline against ffmpeg doing the same job.

Same source (60 s 1080p25 moving pattern + tone, cached), same machine, same run, back to back. Both
produce the same ladder (sizes from ``choose_ladder``), x264 preset, bitrates with a one-segment VBV
buffer, fixed GOP of fps x segment seconds without scene cuts or B-frames, keyframes forced at segment
boundaries, 2 s HLS segments, AAC at the same rates. ffmpeg encodes audio once per variant (its HLS
muxer maps each audio stream to one variant); Reelay encodes it once per distinct audio bitrate.
Each side runs as its own process so its peak memory (ru_maxrss from wait4) is its own.

The machine is shared, so the sides alternate ``repeats`` times and the figures are medians, the ratios
medians of each round's ratio; the load average is printed with them. Three more figures:

- Quality: the PSNR of every rendition of both sides against the source scaled to that size with
  ffmpeg's Lanczos (one neutral reference for both: neither side scales with it), and Reelay minus
  ffmpeg. A speed-up may not come from worse pictures: the difference must stay above -0.1 dB.
- The floor: the CPU time of the four x264 encodes alone, on frames decoded and scaled by other
  processes (not counted) and piped in raw, with the same encoder settings as the ffmpeg side. Each
  side's overhead above it is everything around the encoders: decoding, scaling, muxing, audio.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.bench.registry import BenchContext, Measured, Row, measure

LADDER = ("1080p", "720p", "480p", "360p")
PRESET = "veryfast"
SEGMENT = 2
QUALITY_TOLERANCE_DB = 0.1


def _ladder(source: Path):
    from reelay.media.ladder import choose_ladder
    from reelay.media.probe import probe

    info = probe(source)
    return info, choose_ladder(info, LADDER)


def _x264_args(ladder, fps: int) -> list[str]:
    """The per-stream libx264 options of the ffmpeg side (and of the floor): stream i is rendition i."""
    gop = fps * SEGMENT
    argv: list[str] = []
    for i, r in enumerate(ladder):
        rate = f"{r.video_kbps}k"
        argv += [f"-c:v:{i}", "libx264", f"-b:v:{i}", rate, f"-maxrate:v:{i}", rate,
                 f"-bufsize:v:{i}", f"{r.video_kbps * SEGMENT}k", f"-profile:v:{i}", r.profile]  # fmt: skip
    return [
        *argv, "-preset", PRESET, "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-bf", "0",
        "-force_key_frames", f"expr:gte(t,n_forced*{SEGMENT})", "-pix_fmt", "yuv420p",
    ]  # fmt: skip


def ffmpeg_argv(source: Path, out: Path) -> list[str]:
    info, ladder = _ladder(source)
    fps = round(info.fps or 25)
    n = len(ladder)
    graph = [f"[0:v]fps={fps},split={n}" + "".join(f"[s{i}]" for i in range(n))]
    graph += [f"[s{i}]scale={r.width}:{r.height}:flags=bilinear,setsar=1[v{i}]" for i, r in enumerate(ladder)]
    argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source),
            "-filter_complex", ";".join(graph)]  # fmt: skip
    for i in range(n):
        argv += ["-map", f"[v{i}]"]
    for i, r in enumerate(ladder):
        argv += ["-map", "a:0", f"-c:a:{i}", "aac", f"-b:a:{i}", f"{r.audio_kbps}k"]
    argv += [
        *_x264_args(ladder, fps), "-ar", "48000", "-ac", "2",
        "-f", "hls", "-hls_time", str(SEGMENT), "-hls_playlist_type", "vod",
        "-hls_segment_filename", str(out / "%v" / "seg_%05d.ts"), "-master_pl_name", "master.m3u8",
        "-var_stream_map", " ".join(f"v:{i},a:{i},name:{r.name}" for i, r in enumerate(ladder)),
        str(out / "%v" / "index.m3u8"),
    ]  # fmt: skip
    return argv


def _reelay_child(source: Path, out: Path) -> None:
    """Runs in the measured child process: exactly what the worker does with a downloaded file."""
    from reelay.media.pipeline import transcode

    info, ladder = _ladder(source)
    transcode(source, out, ladder, info, segment_seconds=SEGMENT, x264_preset=PRESET)


def _check(m: Measured, out: Path, who: str) -> None:
    if m.returncode != 0 or not (out / "master.m3u8").is_file():
        raise RuntimeError(f"{who} failed (exit {m.returncode}): {m.stderr[-2000:]}")


def _segments(out: Path) -> int:
    return len(list(out.glob("*/seg_*.ts")))


def psnr(source: Path, outputs: dict[str, Path]) -> dict[tuple[str, str], tuple[float, int]]:
    """{(side, rendition): (PSNR dB over all frames and planes, frames compared)}, in one ffmpeg run.

    The source is decoded once, scaled with Lanczos to each rendition's size, and compared with every
    side's rendition (read through its playlist), both timelines starting at zero. The PSNR is that of
    the mean squared error over the whole clip, as ffmpeg's psnr filter's "average" is.
    """
    _, ladder = _ladder(source)
    sides = list(outputs)
    argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(source)]
    for side in sides:
        argv += [arg for r in ladder for arg in ("-i", str(outputs[side] / r.name / "index.m3u8"))]
    n = len(ladder)
    graph = [f"[0:v]setpts=PTS-STARTPTS,split={n}" + "".join(f"[s{i}]" for i in range(n))]
    for i, r in enumerate(ladder):
        refs = "".join(f"[r{i}_{j}]" for j in range(len(sides)))
        graph.append(f"[s{i}]scale={r.width}:{r.height}:flags=lanczos+accurate_rnd,split={len(sides)}{refs}")
    with tempfile.TemporaryDirectory() as tmp:
        stats: dict[tuple[str, str], Path] = {}
        for j, side in enumerate(sides):
            for i, r in enumerate(ladder):
                log = stats[(side, r.name)] = Path(tmp) / f"{side}_{r.name}.log"
                graph.append(
                    f"[{1 + j * n + i}:v]setpts=PTS-STARTPTS[d{i}_{j}];"
                    f"[d{i}_{j}][r{i}_{j}]psnr=stats_file={log}[o{i}_{j}]"
                )
        argv += ["-filter_complex", ";".join(graph)]
        for j in range(len(sides)):
            for i in range(n):
                argv += ["-map", f"[o{i}_{j}]", "-f", "null", "-"]
        subprocess.run(argv, check=True, capture_output=True)
        result = {}
        for key, log in stats.items():
            mse = [float(v) for v in re.findall(r"mse_avg:([0-9.]+)", log.read_text())]
            if not mse:
                raise RuntimeError(f"no frames compared for {key}")
            mean = sum(mse) / len(mse)
            result[key] = (10 * math.log10(255**2 / mean) if mean > 0 else math.inf, len(mse))
    return result


def measure_floor(source: Path, work: Path) -> Measured:
    """CPU of the ladder's x264 encodes alone: raw frames, decoded and scaled elsewhere, piped in."""
    info, ladder = _ladder(source)
    fps = round(info.fps or 25)
    work.mkdir(parents=True, exist_ok=True)
    feeders, argv = [], ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    for i, r in enumerate(ladder):
        fifo = work / f"raw_{i}.yuv"
        fifo.unlink(missing_ok=True)
        os.mkfifo(fifo)
        scale = f"fps={fps},scale={r.width}:{r.height}:flags=bilinear"
        feed = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-nostdin", "-i", str(source),
                "-vf", scale, "-pix_fmt", "yuv420p", "-f", "rawvideo", str(fifo)]  # fmt: skip
        feeders.append(subprocess.Popen(feed, stdin=subprocess.DEVNULL))
        argv += ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{r.width}x{r.height}", "-r", str(fps),
                 "-thread_queue_size", "64", "-i", str(fifo)]  # fmt: skip
    for i in range(len(ladder)):
        argv += ["-map", f"{i}:v"]
    argv += [*_x264_args(ladder, fps), "-f", "null", "-"]
    try:
        m = measure(argv)
    finally:
        for p in feeders:
            if p.wait(timeout=60) != 0:
                raise RuntimeError("a raw-frame feeder for the floor failed")
    if m.returncode != 0:
        raise RuntimeError(f"the floor's encoder failed (exit {m.returncode}): {m.stderr[-2000:]}")
    return m


def run(ctx: BenchContext, *, repeats: int = int(os.environ.get("REELAY_BENCH_REPEATS", "3"))) -> list[Row]:
    source = ctx.source_clip()
    media_seconds = float(ctx.seconds)
    sides = {
        "reelay": lambda out: [sys.executable, "-m", "tests.bench.bench_ladder", str(source), str(out)],
        "ffmpeg": lambda out: ffmpeg_argv(source, out),
    }
    runs: dict[str, list[Measured]] = {who: [] for who in sides}
    segments: dict[str, int] = {}
    outputs = {who: ctx.work_dir / f"ladder_{who}" for who in sides}
    load_before = os.getloadavg()[0]
    # Alternate the two sides: a neighbour's burst then hits both, and each round gives one ratio.
    for _ in range(repeats):
        for who, argv_for in sides.items():
            out = outputs[who]
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            for name in LADDER:  # ffmpeg's HLS muxer does not create the variant folders
                (out / name).mkdir(exist_ok=True)
            m = measure(argv_for(out))
            _check(m, out, who)
            runs[who].append(m)
            segments[who] = _segments(out)
    floor = measure_floor(source, ctx.work_dir / "ladder_floor")
    load = f"load {load_before:.1f}->{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    quality = psnr(source, outputs)

    def med(who: str, attr: str) -> float:
        return statistics.median(getattr(m, attr) for m in runs[who])

    def ratio(attr: str, invert: bool = False) -> float:
        pairs = zip(runs["reelay"], runs["ffmpeg"], strict=True)
        values = [getattr(g, attr) / getattr(f, attr) for g, f in pairs]
        return statistics.median(1 / v if invert else v for v in values)

    gst, ff = "reelay", "ffmpeg"
    ladder = "/".join(LADDER)
    of = f"median of {repeats}"
    g_cpu, f_cpu, floor_cpu = med(gst, "cpu_seconds"), med(ff, "cpu_seconds"), floor.cpu_seconds
    rss = "max RSS of the process"
    rows = [
        Row("ladder", "reelay (GStreamer)", "realtime factor", media_seconds / med(gst, "wall_seconds"), "x",
            f"{ladder} {PRESET}, {of}: {med(gst, 'wall_seconds'):.1f} s wall, {segments[gst]} segments"),
        Row("ladder", "ffmpeg", "realtime factor", media_seconds / med(ff, "wall_seconds"), "x",
            f"{ladder} {PRESET}, {of}: {med(ff, 'wall_seconds'):.1f} s wall, {segments[ff]} segments"),
        Row("ladder", "reelay / ffmpeg", "speed ratio", ratio("wall_seconds", invert=True), "",
            f">1 means Reelay is faster; {of} rounds, {load}"),
        Row("ladder", "reelay (GStreamer)", "CPU time", g_cpu, "s", f"user + system, {of}"),
        Row("ladder", "ffmpeg", "CPU time", f_cpu, "s", f"user + system, {of}"),
        Row("ladder", "reelay / ffmpeg", "CPU ratio", ratio("cpu_seconds"), "", f"<1: less, {of} rounds"),
        Row("ladder", "x264 floor", "CPU time", floor_cpu, "s", "4 encodes alone on raw frames piped in"),
        Row("ladder", "reelay (GStreamer)", "overhead over floor", g_cpu - floor_cpu, "s",
            f"{100 * (g_cpu / floor_cpu - 1):.0f} % above the encodes alone"),
        Row("ladder", "ffmpeg", "overhead over floor", f_cpu - floor_cpu, "s",
            f"{100 * (f_cpu / floor_cpu - 1):.0f} % above the encodes alone"),
        Row("ladder", "reelay (GStreamer)", "peak memory", med(gst, "max_rss_mb"), "MB", rss),
        Row("ladder", "ffmpeg", "peak memory", med(ff, "max_rss_mb"), "MB", rss),
        Row("ladder", "reelay / ffmpeg", "memory ratio", ratio("max_rss_mb"), "", "<1 means less"),
    ]  # fmt: skip
    for name in LADDER:
        (g_db, g_frames), (f_db, f_frames) = quality[(gst, name)], quality[(ff, name)]
        verdict = "ok" if g_db - f_db >= -QUALITY_TOLERANCE_DB else f"WORSE than -{QUALITY_TOLERANCE_DB} dB"
        ref = "frames vs the Lanczos-scaled source"
        rows += [
            Row("ladder", "reelay (GStreamer)", f"PSNR {name}", g_db, "dB", f"{g_frames} {ref}"),
            Row("ladder", "ffmpeg", f"PSNR {name}", f_db, "dB", f"{f_frames} {ref}"),
            Row("ladder", "reelay - ffmpeg", f"PSNR {name}", g_db - f_db, "dB", verdict),
        ]
    return rows


if __name__ == "__main__":
    _reelay_child(Path(sys.argv[1]), Path(sys.argv[2]))
