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
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from tests.bench.registry import BenchContext, Row, measure

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


def run(ctx: BenchContext) -> list[Row]:
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


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--child":
    from reelay.recording import layout  # noqa: F401  (imported before timing starts)

    _child(sys.argv[2], sys.argv[3])
