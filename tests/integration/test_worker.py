"""The transcode worker end to end: real GStreamer on tiny clips, moto SQS/SNS, a file:// store and
the real MariaDB catalogue. Workers run in-process (``run_once``) and as ``python -m transcoder.worker``
subprocesses that get SIGKILLed or SIGTERMed mid-job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import boto3
import pytest

from reelay.catalogue import ConnectionProvider, migrate
from reelay.media import hls
from reelay.models import TranscodeJob, Video, VideoStatus
from reelay.settings import Settings
from reelay.transcode import Outcome
from reelay.wiring import Services, set_services
from tests.fakes import FakeLambdaContext
from tests.media_fixtures import (
    make_audio_only,
    make_clip,
    make_text_file_named_mp4,
    make_truncated,
    make_zero_byte,
)
from transcoder.worker import Worker

pytestmark = [pytest.mark.media, pytest.mark.mysql]

ROOT = Path(__file__).resolve().parents[2]
MAX_ATTEMPTS = 3


@pytest.fixture(scope="module")
def catalogue_url(database_url: str) -> str:
    migrate(ConnectionProvider.from_url(database_url))
    return database_url


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {
        "short": make_clip(d / "short.mp4", seconds=3, width=640, height=360),
        # long enough to act on a job between its first segment and its end
        "long": make_clip(d / "long.mp4", seconds=20, width=640, height=360),
    }


@dataclass
class Env:
    settings: Settings
    services: Services
    sqs: object
    queue_url: str
    dlq_url: str
    events_url: str
    media_root: Path

    def submit(self, source: Path, name: str = "clip") -> str:
        """What upload + the upload-events Lambda do: a queued video and a job on the queue."""
        video_id = uuid.uuid4().hex[:22]
        key = f"{self.settings.upload_prefix}{video_id}{source.suffix}"
        cat = self.services.catalogue
        cat.create(
            Video(
                video_id=video_id, video_key=key, display_name=name, owner_id="owner-1", email="o@example.com"
            )
        )
        self.services.store.put_file(key, source, content_type="video/mp4")
        assert cat.mark_uploaded(video_id, size_bytes=source.stat().st_size, content_type="video/mp4")
        self.services.queue.send(TranscodeJob(videoId=video_id, sourceKey=key, jobId=f"job-{video_id}"))
        return video_id

    def events(self, wait: float = 1.0) -> list[dict]:
        """Every event published so far (the events queue subscribes to the topic, raw delivery)."""
        out: list[dict] = []
        deadline = time.monotonic() + wait
        while True:
            resp = self.sqs.receive_message(
                QueueUrl=self.events_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            msgs = resp.get("Messages") or []
            for m in msgs:
                out.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.events_url, ReceiptHandle=m["ReceiptHandle"])
            if not msgs and time.monotonic() > deadline:
                return out
            if not msgs:
                time.sleep(0.2)

    def queue_depth(self, url: str | None = None) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def output(self, video_id: str, rel: str) -> Path:
        return self.media_root / f"{self.settings.output_prefix}{video_id}/{rel}"

    def worker(self, name: str, stop: threading.Event | None = None) -> Worker:
        return Worker(self.services, self.settings, stop or threading.Event(), worker_id=name, wait_seconds=1)

    def subprocess_env(self) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ)
        env.update(
            {
                "PYTHONPATH": str(ROOT),
                "REELAY_MEDIA_STORE_URL": s.media_store_url,
                "REELAY_TRANSCODE_QUEUE_URL": self.queue_url,
                "REELAY_EVENTS_TOPIC_ARN": s.events_topic_arn or "",
                "REELAY_AWS_ENDPOINT_URL": s.aws_endpoint_url or "",
                "REELAY_DATABASE_URL": s.database_url or "",
                "REELAY_DB_NAME": s.db_name,
                "REELAY_LADDER": s.ladder,
                "REELAY_SEGMENT_SECONDS": str(s.segment_seconds),
                "REELAY_LEASE_SECONDS": str(s.lease_seconds),
                "REELAY_MAX_ATTEMPTS": str(s.max_attempts),
                "REELAY_WORK_DIR": s.work_dir + "-sub",
                "POWERTOOLS_SERVICE_NAME": "transcoder",
            }
        )
        return env


@pytest.fixture
def env(tmp_path: Path, moto_url: str, catalogue_url: str) -> Iterator[Env]:
    sqs = boto3.client("sqs", endpoint_url=moto_url, region_name="us-east-1")
    sns = boto3.client("sns", endpoint_url=moto_url, region_name="us-east-1")
    tag = uuid.uuid4().hex[:8]
    dlq_url = sqs.create_queue(QueueName=f"transcode-dlq-{tag}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=f"transcode-{tag}",
        Attributes={
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_ATTEMPTS}),
        },
    )["QueueUrl"]
    events_url = sqs.create_queue(QueueName=f"events-{tag}")["QueueUrl"]
    events_arn = sqs.get_queue_attributes(QueueUrl=events_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    topic_arn = sns.create_topic(Name=f"events-{tag}")["TopicArn"]
    sns.subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=events_arn, Attributes={"RawMessageDelivery": "true"}
    )
    media_root = tmp_path / "media"
    media_root.mkdir()
    settings = Settings(
        media_store_url=f"file://{media_root}",
        transcode_queue_url=queue_url,
        events_topic_arn=topic_arn,
        aws_endpoint_url=moto_url,
        database_url=catalogue_url,
        db_name=urlparse(catalogue_url).path.lstrip("/"),
        ladder="360p,240p",
        segment_seconds=1,
        lease_seconds=6,
        max_attempts=MAX_ATTEMPTS,
        work_dir=str(tmp_path / "work"),
    )
    yield Env(settings, Services(settings), sqs, queue_url, dlq_url, events_url, media_root)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def assert_published_vod(env: Env, video_id: str) -> None:
    master = hls.parse_master_playlist(env.output(video_id, "master.m3u8").read_text())
    assert [v.uri for v in master] == ["360p/index.m3u8", "240p/index.m3u8"]
    assert [v.resolution for v in master] == [(640, 360), (426, 240)]
    for variant in master:
        playlist = hls.parse_media_playlist(env.output(video_id, variant.uri).read_text())
        assert playlist.playlist_type == "VOD" and playlist.ended
        assert playlist.duration == pytest.approx(3.0, abs=0.6)
        folder = variant.uri.rsplit("/", 1)[0]
        for uri, _ in playlist.segments:
            assert env.output(video_id, f"{folder}/{uri}").stat().st_size > 0
        # And the live playlist beside it stayed EVENT and ended, listing the same segments
        live = hls.parse_media_playlist(env.output(video_id, f"{folder}/live.m3u8").read_text())
        assert live.playlist_type == "EVENT" and live.ended
        assert [u for u, _ in live.segments] == [u for u, _ in playlist.segments]
    assert env.output(video_id, "poster.jpg").read_bytes()[:2] == b"\xff\xd8"


def events_for(events: list[dict], video_id: str, kind: str) -> list[dict]:
    return [e for e in events if e["type"] == kind and e["detail"]["videoId"] == video_id]


def test_upload_to_ready(env: Env, clips: dict[str, Path]):
    # Given an uploaded 3 s 640x360 clip and its job on the queue
    video_id = env.submit(clips["short"])

    # When a worker takes one job
    outcome = env.worker("w-happy").run_once()

    # Then the video is ready, with its renditions and duration
    assert outcome is Outcome.DONE
    video = env.services.catalogue.get(video_id)
    assert video.status == VideoStatus.READY and video.is_transcoded and video.playable
    assert video.progress == 100
    assert [r.name for r in video.renditions] == ["360p", "240p"]
    assert video.duration_seconds == pytest.approx(3.0, abs=0.3)
    # And master, VOD playlists, segments and poster are in the store
    assert_published_vod(env, video_id)
    # And exactly one video.ready went out, and the message is gone
    events = env.events()
    assert len(events_for(events, video_id, "video.ready")) == 1
    assert events_for(events, video_id, "video.failed") == []
    assert env.queue_depth() == 0


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (make_zero_byte, "empty (0 bytes)"),
        (make_text_file_named_mp4, "not a recognised video file"),
        (make_truncated, "truncated or corrupt"),
        (make_audio_only, "no video stream"),
    ],
    ids=["zero-byte", "text-renamed-mp4", "truncated", "no-video-stream"],
)
def test_bad_input_fails_with_its_reason_and_no_retry(env: Env, tmp_path: Path, make, says):
    # Given a bad upload and its job
    video_id = env.submit(make(tmp_path / "bad.mp4"))

    # When a worker takes the job on its first attempt
    outcome = env.worker("w-bad").run_once()

    # Then the video failed with a reason a user can read, and the message is deleted (no retry storm)
    assert outcome is Outcome.FAILED
    video = env.services.catalogue.get(video_id)
    assert video.status == VideoStatus.FAILED
    assert says in (video.failure_reason or "")
    assert env.queue_depth() == 0
    # And one video.failed event says why, and nothing was published for it
    failed = events_for(env.events(), video_id, "video.failed")
    assert [e["detail"]["reason"] for e in failed] == [video.failure_reason]
    assert not env.output(video_id, "master.m3u8").exists()


def start_worker_process(env: Env, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "transcoder.worker"],
        cwd=ROOT,
        env=env.subprocess_env(),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def first_segments_published(env: Env, video_id: str) -> bool:
    # Each attempt writes its segments in a folder of its own (a1/, a2/...): any attempt's will do.
    return any(env.output(video_id, "360p").glob("a*/seg_00000.ts")) and any(
        env.output(video_id, "240p").glob("a*/seg_00000.ts")
    )


def run_until_outcome(worker: Worker, timeout: float) -> list[Outcome]:
    """Poll until the worker finishes a job with a final outcome (RETRYs are collected too)."""
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcome = worker.run_once()
        if outcome is not None:
            outcomes.append(outcome)
            if outcome is not Outcome.RETRY:
                return outcomes
    raise AssertionError(f"no final outcome within {timeout}s: {outcomes}")


def test_worker_killed_mid_job_is_redelivered_and_completed_once(env: Env, clips, tmp_path: Path):
    # Given a worker process working on a 20 s clip
    video_id = env.submit(clips["long"])
    proc = start_worker_process(env, tmp_path / "killed.log")
    try:
        # When its first segments are published
        wait_for(lambda: first_segments_published(env, video_id), 90, "the first segments")

        # Then they play before the job ends: a live master, EVENT playlists, playable in the catalogue
        wait_for(lambda: env.services.catalogue.get(video_id).playable, 10, "playable=True")
        assert env.services.catalogue.get(video_id).status == VideoStatus.PROCESSING
        live = hls.parse_media_playlist(env.output(video_id, "360p/live.m3u8").read_text())
        assert live.playlist_type == "EVENT" and not live.ended and live.segments
        assert [
            v.uri for v in hls.parse_master_playlist(env.output(video_id, "master.m3u8").read_text())
        ] == [
            "360p/live.m3u8",
            "240p/live.m3u8",
        ]
        assert not env.output(video_id, "360p/index.m3u8").exists()  # the VOD URI only ever holds VOD

        # When the worker is SIGKILLed mid-job
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert env.services.catalogue.get(video_id).status == VideoStatus.PROCESSING

    # Then the job comes back once the dead worker's lease lapses, and a second worker completes it
    outcomes = run_until_outcome(env.worker("w-second"), timeout=120)
    assert outcomes[-1] is Outcome.DONE
    video = env.services.catalogue.get(video_id)
    assert video.status == VideoStatus.READY and video.attempts >= 2
    assert video.duration_seconds == pytest.approx(20.0, abs=0.5)
    # And exactly one video.ready went out, and nothing is left on the queue
    assert len(events_for(env.events(), video_id, "video.ready")) == 1
    assert env.queue_depth() == 0


def test_sigterm_mid_job_hands_the_job_back_and_exits_zero(env: Env, clips, tmp_path: Path):
    # Given a worker process working on a 20 s clip
    video_id = env.submit(clips["long"])
    log = tmp_path / "terminated.log"
    proc = start_worker_process(env, log)
    try:
        wait_for(lambda: first_segments_published(env, video_id), 90, "the first segments")

        # When it gets SIGTERM (ECS stopping the task)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

    # Then it exits 0 quickly, the video is queued again and no VOD master was written
    assert code == 0, log.read_text()[-3000:]
    assert took < 15
    video = env.services.catalogue.get(video_id)
    assert video.status == VideoStatus.QUEUED and not video.is_transcoded
    master = env.output(video_id, "master.m3u8")
    assert not env.output(video_id, "360p/index.m3u8").exists()
    if master.exists():  # the live master of the stopped attempt, on a playlist that did not end
        assert "live.m3u8" in master.read_text()
        assert "#EXT-X-ENDLIST" not in env.output(video_id, "360p/live.m3u8").read_text()
    assert events_for(env.events(wait=0), video_id, "video.ready") == []

    # And the message is visible again at once, and another run completes the video
    outcomes = run_until_outcome(env.worker("w-after-term"), timeout=30)
    assert outcomes == [Outcome.DONE]
    assert env.services.catalogue.get(video_id).status == VideoStatus.READY
    assert len(events_for(env.events(), video_id, "video.ready")) == 1


def test_poison_job_lands_in_the_dlq_and_the_dead_jobs_handler_fails_the_video(env: Env, clips):
    # Given a job that no worker can take: its catalogue is unreachable from the workers
    from lambdas.dead_jobs.handler import lambda_handler as dead_jobs
    from reelay.catalogue.mysql import MySQLCatalogue

    video_id = env.submit(clips["short"])
    broken_url = env.settings.database_url.rsplit("/", 1)[0] + "/reelay_no_such_db_" + uuid.uuid4().hex[:6]
    broken = Services(
        env.settings,
        catalogue=MySQLCatalogue(ConnectionProvider.from_url(broken_url)),
        store=env.services.store,
        queue=env.services.queue,
        events=env.services.events,
    )
    settings = env.settings.model_copy(update={"lease_seconds": 2})
    worker = Worker(broken, settings, threading.Event(), worker_id="w-poison", wait_seconds=1)

    # When workers keep trying until SQS gives up on it (maxReceiveCount = max_attempts)
    tries: list[Outcome | None] = []
    deadline = time.monotonic() + 60
    while env.queue_depth() and time.monotonic() < deadline:
        tries.append(worker.run_once())
    assert [t for t in tries if t is not None] == [Outcome.RETRY] * MAX_ATTEMPTS

    # Then the job is in the DLQ
    from reelay.adapters.sqs import SqsQueue

    dlq = SqsQueue(env.dlq_url, env.sqs)
    records = wait_for(lambda: dlq.poll_records(wait_seconds=1), 20, "the DLQ message")
    assert [json.loads(r["body"])["videoId"] for r in records] == [video_id]

    # When the dead-jobs handler gets the DLQ batch
    set_services(env.services)
    try:
        response = dead_jobs({"Records": records}, FakeLambdaContext())
    finally:
        set_services(None)

    # Then the video failed with the reason, once, and the batch reported no failures
    assert response == {"batchItemFailures": []}
    video = env.services.catalogue.get(video_id)
    assert video.status == VideoStatus.FAILED
    assert video.failure_reason == f"transcoding failed after {MAX_ATTEMPTS} attempts"
    failed = events_for(env.events(), video_id, "video.failed")
    assert [e["detail"]["reason"] for e in failed] == [video.failure_reason]
