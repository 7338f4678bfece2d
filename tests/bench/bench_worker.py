"""Upload to playback through the real worker: how soon the first segments play, and when it is ready.

The shared 1080p source (``ctx.source_clip()``) is "uploaded" to a file:// store, its job put on a
moto SQS queue, and ``python -m transcoder.worker`` (its own process, so its peak RSS is its own) is
started against a temporary MariaDB database. The clock starts when the job is enqueued ("upload
complete"). Progressive publishing is measured against its peer in the same run: the time to ready,
which is how long a viewer would wait if the video were published only at the end.

The worker's realtime factor is printed next to the pipeline's, measured in the same run: the same
``transcode`` on the same file in a process of its own, plugins loaded before the clock starts as the
worker loads them. Both sides also count CPU seconds (the worker's from /proc between enqueue and
ready, the pipeline's from getrusage around ``transcode``): what the worker spends on top of the
pipeline (polling, download, probe, publishing, the catalogue) shows as CPU, not only as wall time,
which a loaded machine blurs.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.bench.registry import ROOT, BenchContext, Row
from tests.conftest import scratch_database

BENCH = "worker"
LADDER = "1080p,720p,480p,360p"


def run(ctx: BenchContext) -> list[Row]:
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines

    # moto accepts any credentials; never let the bench find real ones.
    fake = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}
    for k, v in {**fake, "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(k, v)
    source = ctx.source_clip()
    work = ctx.work_dir / f"worker-{uuid.uuid4().hex[:6]}"
    media = work / "media"
    media.mkdir(parents=True)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        queue_url = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1").create_queue(
            QueueName="bench-transcode", Attributes={"VisibilityTimeout": "300"}
        )["QueueUrl"]
        with scratch_database(prefix="reelay_bench") as db_url:
            rows = _measure(source, work, media, db_url, db_url.rsplit("/", 1)[1], endpoint, queue_url)
        return rows + _against_pipeline(rows, source, work / "pipeline")
    finally:
        moto.stop()
        if not os.environ.get("REELAY_BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


def _measure(
    source: Path, work: Path, media: Path, db_url: str, db_name: str, endpoint: str, queue_url: str
) -> list[Row]:
    from reelay.catalogue import ConnectionProvider, MySQLCatalogue, migrate
    from reelay.media.probe import probe
    from reelay.models import TranscodeJob, Video, VideoStatus
    from reelay.settings import Settings
    from reelay.wiring import Services

    provider = ConnectionProvider.from_url(db_url)
    migrate(provider)
    settings = Settings(
        media_store_url=f"file://{media}", transcode_queue_url=queue_url, aws_endpoint_url=endpoint,
        database_url=db_url, db_name=db_name, ladder=LADDER, work_dir=str(work / "tmp"),
    )  # fmt: skip
    services = Services(settings, catalogue=MySQLCatalogue(provider))
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": str(ROOT), "REELAY_MEDIA_STORE_URL": settings.media_store_url,
        "REELAY_TRANSCODE_QUEUE_URL": queue_url, "REELAY_AWS_ENDPOINT_URL": endpoint,
        "REELAY_DATABASE_URL": db_url, "REELAY_DB_NAME": db_name, "REELAY_LADDER": LADDER,
        "REELAY_WORK_DIR": settings.work_dir, "POWERTOOLS_SERVICE_NAME": "transcoder",
    })  # fmt: skip
    log = work / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "transcoder.worker"], cwd=ROOT, env=env,
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    rusage = None
    try:
        # The worker's start (imports, GStreamer's plugins) is not part of the job: enqueue once it polls.
        # A fixed sleep was too short on a loaded machine, and its start was counted in the job's time.
        started = time.monotonic()
        while b"worker started" not in log.read_bytes():
            if worker.poll() is not None or time.monotonic() - started > 120:
                raise RuntimeError(f"the worker did not start; see {log}")
            time.sleep(0.05)
        time.sleep(0.5)  # from its log line to its first long poll
        video_id = uuid.uuid4().hex[:22]
        key = f"{settings.upload_prefix}{video_id}.mp4"
        services.catalogue.create(
            Video(
                video_id=video_id,
                video_key=key,
                display_name="bench",
                owner_id="bench",
                email="b@example.com",
            )
        )
        services.store.put_file(key, source, content_type="video/mp4")
        services.catalogue.mark_uploaded(video_id, size_bytes=source.stat().st_size, content_type="video/mp4")
        cpu_before, idle_mb = _process_cpu(worker.pid), _rss_mb(worker.pid)
        threads_before = _thread_cpu(worker.pid)
        threads: dict[int, tuple[str, float]] = {}
        services.queue.send(TranscodeJob(videoId=video_id, sourceKey=key, jobId=f"bench-{video_id}"))
        enqueued = time.monotonic()
        first_playable = ready = None
        job_cpu = 0.0
        while ready is None:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited early; see {work / 'worker.log'}")
            if time.monotonic() - enqueued > 3600:
                raise RuntimeError("the job did not finish within an hour")
            video = services.catalogue.get(video_id)
            now = time.monotonic()
            if video.playable and first_playable is None:
                first_playable = now - enqueued
            if video.status == VideoStatus.FAILED:
                raise RuntimeError(f"the job failed: {video.failure_reason}")
            if video.status == VideoStatus.READY:
                ready = now - enqueued
                job_cpu = _process_cpu(worker.pid) - cpu_before
            threads.update(_thread_cpu(worker.pid))
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        _, status, rusage = os.wait4(worker.pid, 0)
        worker.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if worker.poll() is None and rusage is None:
            worker.kill()
            worker.wait()
    duration = probe(source).duration_seconds or 0.0
    # Threads Python starts keep the interpreter's name; GStreamer names its streaming threads (and the
    # encoders' and decoder's threads inherit those names).
    python_cpu = sum(
        cpu - threads_before.get(tid, ("", 0.0))[1]
        for tid, (name, cpu) in threads.items()
        if name.startswith("python")
    )
    first = first_playable if first_playable is not None else ready
    peak_mb = rusage.ru_maxrss / 1024
    note = f"{duration:.0f}s 1080p source, ladder {LADDER}"
    return [
        Row(BENCH, "progressive publish", "upload to first playable segment", first, "s", note),
        Row(BENCH, "publish at the end (peer)", "upload to ready", ready, "s", note),
        Row(
            BENCH, "progressive publish", "first playable / ready", first / ready, "ratio", "lower is better"
        ),
        Row(BENCH, "worker", "realtime factor (source s / job s)", duration / ready, "x", note),
        Row(BENCH, "worker", "CPU time of the job", job_cpu, "s", "user + system, enqueue to ready"),
        Row(
            BENCH,
            "worker",
            "CPU of its Python threads",
            python_cpu,
            "s",
            f"{100 * python_cpu / job_cpu:.1f} % of the job: the orchestration, sampled every 0.1 s",
        ),
        Row(BENCH, "worker", "peak memory (max RSS)", peak_mb, "MB", "transcoder.worker process"),
        Row(BENCH, "worker", "memory before the job (RSS)", idle_mb, "MB", "started, plugins loaded"),
    ]


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process so far, all its threads (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """{thread id: (name, user + system CPU seconds)} of a live process's threads."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return out


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:", 1)[1].split()[0]) / 1024


def _against_pipeline(rows: list[Row], source: Path, out: Path) -> list[Row]:
    """The pipeline alone on the same file, right after the worker's job, and the worker's overhead."""
    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.bench_worker", str(source), str(out)],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    alone = json.loads(done.stdout.strip().splitlines()[-1])
    worker = {r.metric: r.value for r in rows if r.subject == "worker"}
    rtf, cpu = worker["realtime factor (source s / job s)"], worker["CPU time of the job"]
    pipe_rtf = alone["duration"] / alone["wall"]
    load = f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    same = "transcode() only, same ladder"
    return [
        Row(BENCH, "pipeline alone", "realtime factor", pipe_rtf, "x", f"{same}; {load}"),
        Row(BENCH, "worker / pipeline", "realtime factor ratio", rtf / pipe_rtf, "", "1: no overhead"),
        Row(BENCH, "pipeline alone", "CPU time", alone["cpu"], "s", "user + system around transcode()"),
        Row(BENCH, "worker - pipeline", "orchestration CPU", cpu - alone["cpu"], "s",
            f"{100 * (cpu / alone['cpu'] - 1):.1f} % on top of the pipeline's CPU"),
    ]  # fmt: skip


def _pipeline_child(source: Path, out: Path) -> None:
    """Runs in its own process: what the worker's transcode stage does, timed without the start-up."""
    from reelay.media.ladder import choose_ladder
    from reelay.media.pipeline import transcode, warm_up
    from reelay.media.probe import probe
    from reelay.settings import Settings

    settings = Settings()
    warm_up()
    info = probe(source)
    ladder = choose_ladder(info, LADDER, settings.ladder_overrides)
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    transcode(
        source, out, ladder, info, segment_seconds=settings.segment_seconds, x264_preset=settings.x264_preset
    )
    wall, after = time.monotonic() - started, resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(json.dumps({"wall": wall, "cpu": cpu, "duration": info.duration_seconds or 0.0}))


if __name__ == "__main__":
    _pipeline_child(Path(sys.argv[1]), Path(sys.argv[2]))
