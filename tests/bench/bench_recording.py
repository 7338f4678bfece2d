"""Recording: manifest bytes per segment (rolling chunks vs the naive full rewrite), and finalize/fixup
of a synthetic 48 h x 5 renditions session (432,000 segments) in the file store.

Manifests: a simulated 5-rendition session of 2 s segments (1800 per hour per rendition). For the
hour ending at hour 1 and at hour 48, the manifest bytes written per segment by Reelay's
``ManifestWriter`` (chunks of 100 entries; the hour-48 writer starts at that hour's chunk and
sequence numbers) next to what rewriting the session's whole playlist after every segment writes
(its real rendered size at that point). Reelay's ratio hour48/hour1 stays ~1; the naive one grows.

Finalize/fixup: 432,000 empty segment files named by ``reelay.recording.layout`` under
``.build/bench/recording-48h`` (made once, cached), 2 writers whose sequences overlap at the start of
the session. Each run is a child process (its own wall time and peak RSS from wait4) running the local
workflow runner over a ``FileStore`` and the in-memory catalogue. S3's cost for the same listing is
stated as ListObjectsV2 requests (1000 keys each).

Renditions: CPU seconds per minute of recording a live 720p25 RTSP camera (keyframe every 2 s), in
the relay's recording branch (supervisor + recorder, no KVS sink, a file store): the passthrough
source alone, then source + 480p + 360p (one decode, two x264 veryfast/zerolatency encodes: a 720p
rung would repeat the camera's picture, which the recorder does not encode), each in
a child process measuring its own CPU time over the same window once every rendition has written a
segment. The peer, in the same run on the same camera: ffmpeg reading the camera, copying the source
into 2 s MPEG-TS segments and encoding the same two rungs (same sizes, rates, VBV, preset and tune, no
B-frames, keyframes forced every 2 s) into 2 s segments, its CPU from wait4 over the same media length.
Window: ``REELAY_BENCH_RENDITIONS_SECONDS`` (default 30).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.bench.registry import ROOT, BenchContext, Row, measure

HOURS = 48
RENDITIONS = ("source", "1080p", "720p", "480p", "360p")
PER_HOUR = 1800  # 2 s segments
CHUNK = 100
T0_MS = 1_780_000_000_000
STREAM, SESSION = "bench-cam", "bench-session"
OVERLAP = 30  # the second writer re-records the first minute's segments


class _CountingStore:
    """Counts what is written and keeps nothing (the bench measures bytes, not a store)."""

    def put_bytes(self, key: str, data: bytes, **_kw: object) -> None:
        pass


def manifest_bytes(hour: int) -> tuple[float, float]:
    """(reelay bytes/segment, naive bytes/segment) over the hour ending at ``hour``, all renditions."""
    from reelay.recording import layout
    from reelay.recording.manifests import ManifestWriter
    from reelay.recording.merge import render_playlist

    first_seq = (hour - 1) * PER_HOUR
    reelay_bytes = 0
    for r in RENDITIONS:
        w = ManifestWriter(_CountingStore(), STREAM, SESSION, "w1", r, CHUNK, first_chunk=first_seq // CHUNK)  # type: ignore[arg-type]
        for seq in range(first_seq, first_seq + PER_HOUR):
            w.append(
                layout.segment_key(STREAM, SESSION, "w1", r, seq, duration_ms=2000, pdt_ms=T0_MS + seq * 2000)
            )
        reelay_bytes += w.bytes_written
    # Naive: every push rewrites the whole playlist; its size grows linearly, so the hour's mean push is
    # the playlist at the hour's middle segment. Rendered for real (same URIs and tags as Reelay's).
    mid = first_seq + PER_HOUR // 2
    entries = [(s, 2000, T0_MS + s * 2000, 0, 0, 188, 0) for s in range(mid + 1)]

    def name(e: tuple[int, ...]) -> str:
        return layout.segment_name(e[0], e[1], e[2])

    naive_per_push = len(render_playlist(entries, name, target=2, playlist_type="EVENT", ended=False))
    segments = PER_HOUR * len(RENDITIONS)
    return reelay_bytes / segments, float(naive_per_push)


def synthetic_session(root: Path) -> Path:
    """432,000 empty segments (cached); returns the store root."""
    from reelay.recording import layout

    done = root / ".complete"
    if done.exists():
        return root
    total = HOURS * PER_HOUR
    for writer, seqs in (("w1", range(0, total)), ("w2", range(0, OVERLAP))):
        for r in RENDITIONS:
            directory = root / layout.rendition_prefix(STREAM, SESSION, writer, r)
            directory.mkdir(parents=True, exist_ok=True)
            for seq in seqs:
                name = layout.segment_name(seq, 2000, T0_MS + seq * 2000)
                os.close(os.open(directory / name, os.O_CREAT | os.O_WRONLY, 0o644))
    done.write_text("ok")
    return root


def _child(root: str, mode: str) -> None:
    """Runs in the measured child: the workflow over the synthetic session; prints its final state."""
    from datetime import timedelta

    from reelay.catalogue.memory import MemoryCatalogue
    from reelay.models import SourceProtocol, Stream
    from reelay.recording.runner import WorkflowRunner
    from reelay.recording.steps import StepContext
    from reelay.storage.file import FileStore

    cat = MemoryCatalogue()
    cat.create_stream(
        Stream(
            stream_id=STREAM,
            owner_id="op",
            name="Bench",
            source_url="rtsp://x/y",
            source_protocol=SourceProtocol.RTSP,
            kvs_stream_name="reelay-bench",
        )
    )
    session, _ = cat.start_recording_session(STREAM, "w1", session_id=SESSION)
    cat.start_recording_session(STREAM, "w2")
    if mode == "finalize":
        cat.end_recording_session(SESSION)
    else:  # fixup: the writers died; the sweep finds the session stale
        assert cat.stale_recording_sessions(session.started_at + timedelta(hours=1))
    store = FileStore(Path(root), public_url=None, signing_key=None)
    started = time.monotonic()
    out = WorkflowRunner(StepContext(catalogue=cat, media_store=store)).start(SESSION, mode=mode)
    out["wallInProcess"] = time.monotonic() - started
    print(
        json.dumps(
            {
                k: out.get(k)
                for k in (
                    "status",
                    "segments",
                    "duplicates",
                    "listRequests",
                    "wallInProcess",
                    "failureReason",
                )
            }
        )
    )


# --- renditions: CPU per minute of recording, against ffmpeg ----------------------------------------------
RUNG_NAMES = ("480p", "360p")
WITH_RUNGS = "+".join(("source", *RUNG_NAMES))
SEGMENT_SECONDS = 2
X264_PRESET = "veryfast"


def _renditions_child(url: str, seconds: float, names: list[str], work: str) -> None:
    """Runs in its own process: records ``url`` (source + ``names``) and prints its CPU over ``seconds``
    of steady recording (from the moment every rendition has written a segment)."""
    from reelay.catalogue.memory import MemoryCatalogue
    from reelay.media.ladder import rungs
    from reelay.models import Rendition
    from reelay.recording import layout
    from reelay.recording.recorder import Recorder, planned_renditions
    from reelay.recording.writer import SessionWriter
    from reelay.relay.pipelines import RecordingSpec, SourceSpec
    from reelay.relay.supervisor import RelayPolicy, Supervisor
    from reelay.storage.file import FileStore

    store = FileStore(Path(work) / "store", public_url=None, signing_key=None)
    encoded = rungs(names)
    source = Rendition(name="source", bandwidth=0, codecs="avc1.640028", playlist="source/index.m3u8")
    writer = SessionWriter(
        store, MemoryCatalogue(), "bench", "w1", [source, *planned_renditions(encoded)],
        segment_ms=SEGMENT_SECONDS * 1000,
    )  # fmt: skip
    recorder = Recorder(writer, Path(work) / "spool", renditions=encoded, x264_preset=X264_PRESET)
    spec = RecordingSpec(
        recorder, recorder.spool_dir, segment_seconds=SEGMENT_SECONDS, renditions=recorder.encoded,
        x264_preset=X264_PRESET,
    )  # fmt: skip
    supervisor = Supervisor(SourceSpec(url), None, recording=spec, policy=RelayPolicy(stall_seconds=10))
    loop = threading.Thread(target=supervisor.run, daemon=True)
    loop.start()
    wanted = {"source", *names}

    def renditions_seen() -> set[str]:
        found = (layout.parse_key(i.key) for i in store.list(layout.ROOT))
        return {s.rendition for s in found if isinstance(s, layout.SegmentKey)}

    deadline = time.monotonic() + 60
    while renditions_seen() != wanted:
        if time.monotonic() > deadline:
            raise SystemExit(f"no segments of every rendition within 60 s: {renditions_seen()}")
        time.sleep(0.2)
    dropped0, cpu0, wall0 = recorder.health().frames_dropped, time.process_time(), time.monotonic()
    time.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    dropped = recorder.health().frames_dropped - dropped0
    supervisor.stop()
    supervisor.stopped.wait(30)
    recorder.end("stopped")
    recorder.close(30)
    print(json.dumps({"cpu": cpu, "wall": wall, "framesDropped": dropped}))


def ffmpeg_renditions_argv(url: str, seconds: float, out: Path) -> list[str]:
    """ffmpeg doing the recorder's job: the source copied, the two rungs encoded alike, 2 s segments."""
    from reelay.media.ladder import fit_rung, rungs

    ladder = [fit_rung(r, 1280, 720) for r in rungs(list(RUNG_NAMES))]
    n = len(ladder)
    graph = [f"[0:v]split={n}" + "".join(f"[s{i}]" for i in range(n))]
    graph += [f"[s{i}]scale={r.width}:{r.height}:flags=bilinear,setsar=1[v{i}]" for i, r in enumerate(ladder)]
    argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-rtsp_transport", "tcp",
            "-t", str(seconds), "-i", url, "-filter_complex", ";".join(graph),
            "-map", "0:v", "-c:v", "copy", "-f", "segment", "-segment_time", str(SEGMENT_SECONDS),
            "-segment_format", "mpegts", str(out / "source_%05d.ts")]  # fmt: skip
    for i, r in enumerate(ladder):
        argv += ["-map", f"[v{i}]", "-c:v", "libx264", "-preset", X264_PRESET, "-tune", "zerolatency",
                 "-b:v", f"{r.video_kbps}k", "-maxrate", f"{r.video_kbps}k",
                 "-bufsize", f"{r.video_kbps * SEGMENT_SECONDS}k", "-profile:v", r.profile, "-bf", "0",
                 "-sc_threshold", "0", "-force_key_frames", f"expr:gte(t,n_forced*{SEGMENT_SECONDS})",
                 "-pix_fmt", "yuv420p", "-f", "segment", "-segment_time", str(SEGMENT_SECONDS),
                 "-segment_format", "mpegts", str(out / f"{r.name}_%05d.ts")]  # fmt: skip
    return argv


def renditions_rows(ctx: BenchContext) -> list[Row]:
    from local.cameras import Picture, RtspCamera

    seconds = float(os.environ.get("REELAY_BENCH_RENDITIONS_SECONDS", "30"))
    picture = Picture(1280, 720, 25, keyframe_seconds=SEGMENT_SECONDS, bitrate_kbps=2500)
    work = ctx.work_dir / "recording-renditions"
    results: dict[str, dict[str, float]] = {}
    with RtspCamera(picture=picture, start_timeout=40) as camera:
        for label, names in (("source", []), (WITH_RUNGS, list(RUNG_NAMES))):
            run_dir = work / label
            argv = [sys.executable, "-m", "tests.bench.bench_recording", "--renditions", camera.url]
            argv += [str(seconds), str(run_dir), *names]
            done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 180)
            if done.returncode != 0:
                raise RuntimeError(f"recording child ({label}) failed: {done.stderr[-2000:]}")
            results[label] = json.loads(done.stdout.strip().splitlines()[-1])
        out = work / "ffmpeg"
        out.mkdir(parents=True, exist_ok=True)
        m = measure(ffmpeg_renditions_argv(camera.url, seconds, out), timeout=seconds + 120)
        if m.returncode != 0:
            raise RuntimeError(f"ffmpeg failed: {m.stderr[-2000:]}")
    per_minute = {label: r["cpu"] / r["wall"] * 60 for label, r in results.items()}
    ffmpeg_per_minute = m.cpu_seconds / seconds * 60
    full, alone = per_minute[WITH_RUNGS], per_minute["source"]
    dropped = int(results[WITH_RUNGS]["framesDropped"])
    # Frames lost to a busy machine are frames not encoded: the same CPU scaled to every frame encoded.
    frames = picture.fps * results[WITH_RUNGS]["wall"]
    scaled = full * frames / max(1.0, frames - dropped)
    return [
        Row("recording", "reelay source only", "CPU s per minute recorded", alone, "s", "720p25 RTSP camera"),
        Row(
            "recording",
            f"reelay {WITH_RUNGS}",
            "CPU s per minute recorded",
            full,
            "s",
            f"{dropped} frames dropped in the window",
        ),
        Row(
            "recording",
            f"ffmpeg {WITH_RUNGS}",
            "CPU s per minute recorded",
            ffmpeg_per_minute,
            "s",
            "same camera, same run",
        ),
        Row(
            "recording", "reelay renditions", "CPU, with rungs / source only", full / alone if alone else 0.0
        ),
        Row(
            "recording",
            "reelay / ffmpeg",
            f"CPU ratio, {WITH_RUNGS}",
            full / ffmpeg_per_minute,
            "",
            "<1: Reelay uses less CPU",
        ),
        Row(
            "recording",
            "reelay / ffmpeg",
            "CPU ratio, every frame encoded",
            scaled / ffmpeg_per_minute,
            "",
            f"Reelay's CPU scaled by frames in / frames encoded ({dropped} of {frames:.0f} dropped)",
        ),
    ]


def run(ctx: BenchContext) -> list[Row]:
    if os.environ.get("REELAY_BENCH_RECORDING_ONLY") == "renditions":
        return renditions_rows(ctx)
    rows: list[Row] = []
    (r1, n1), (r48, n48) = manifest_bytes(1), manifest_bytes(HOURS)
    rows += [
        Row("recording", "reelay (rolling chunks)", "manifest B/segment, hour 1", r1, "B"),
        Row("recording", "reelay (rolling chunks)", "manifest B/segment, hour 48", r48, "B"),
        Row("recording", "naive (full rewrite)", "manifest B/segment, hour 1", n1, "B"),
        Row("recording", "naive (full rewrite)", "manifest B/segment, hour 48", n48, "B"),
        Row("recording", "reelay", "hour 48 / hour 1", r48 / r1, "", "constant: ~1"),
        Row("recording", "naive", "hour 48 / hour 1", n48 / n1, "", "grows with the session"),
        Row("recording", "naive / reelay", "bytes ratio at hour 48", n48 / r48, "", ">1: Reelay writes less"),
    ]
    root = synthetic_session(ctx.work_dir / "recording-48h")
    total = sum(1 for _ in range(HOURS * PER_HOUR)) * len(RENDITIONS)
    for mode in ("finalize", "fixup"):
        m = measure([sys.executable, "-m", "tests.bench.bench_recording", "--child", str(root), mode])
        if m.returncode != 0:
            raise RuntimeError(f"{mode} child failed: {m.stderr[-2000:]}")
        rows += [
            Row(
                "recording",
                f"{mode} 48 h x 5",
                "wall time",
                m.wall_seconds,
                "s",
                f"target < 10 s; {total} segments",
            ),
            Row(
                "recording",
                f"{mode} 48 h x 5",
                "peak memory",
                m.max_rss_mb,
                "MB",
                "target < 200 MB (max RSS)",
            ),
            Row(
                "recording",
                f"{mode} 48 h x 5",
                "wall / target",
                m.wall_seconds / 10,
                "",
                "<1 meets the target",
            ),
        ]
    rows += renditions_rows(ctx)
    s3_requests = -(-(total + OVERLAP * len(RENDITIONS)) // 1000)
    rows.append(
        Row(
            "recording",
            "S3 listing",
            "ListObjectsV2 requests",
            s3_requests,
            "",
            "1000 keys each; vs 432,000 HEADs without durations in the key names",
        )
    )
    return rows


if __name__ == "__main__" and len(sys.argv) >= 5 and sys.argv[1] == "--renditions":
    _renditions_child(sys.argv[2], float(sys.argv[3]), sys.argv[5:], sys.argv[4])

if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--child":
    from reelay.recording import layout  # noqa: F401  (imported before timing starts)

    _child(sys.argv[2], sys.argv[3])
