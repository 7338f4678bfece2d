"""The worker loop with fakes: what happens to the queue message after each outcome."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from reelay.models import TranscodeJob, VideoStatus
from reelay.ports import QueueMessage
from reelay.settings import Settings
from reelay.transcode import Outcome
from tests.fakes import FakeEvents, FakeQueue
from tests.unit.test_transcode import (  # the lifecycle's fakes
    SOURCE_KEY,
    VIDEO_ID,
    FakeEncoder,
    make_service,
    new_catalogue,
    new_store,
)
from transcoder.worker import Worker


class RecordingQueue(FakeQueue):
    def __init__(self, receive_count: int = 1) -> None:
        super().__init__()
        self.receive_count = receive_count
        self.deleted: list[str] = []
        self.released: list[str] = []
        self.extended: list[tuple[str, int]] = []
        self.fail_receives = 0

    def receive(self, *, max_messages: int = 1, wait_seconds: int = 20) -> list[QueueMessage]:
        if self.fail_receives:
            self.fail_receives -= 1
            raise ConnectionError("queue unreachable")
        messages = super().receive(max_messages=max_messages, wait_seconds=wait_seconds)
        for m in messages:
            m.receive_count = self.receive_count
        return messages

    def delete(self, message: QueueMessage) -> None:
        self.deleted.append(message.job.job_id)

    def extend(self, message: QueueMessage, seconds: int) -> None:
        self.extended.append((message.job.job_id, seconds))

    def release(self, message: QueueMessage) -> None:
        self.released.append(message.job.job_id)
        super().release(message)


class UnsendableQueue(RecordingQueue):
    def send(self, job) -> None:
        raise ConnectionError("queue unreachable")


class Ports:
    def __init__(self, catalogue, store, queue, events) -> None:
        self.catalogue, self.store, self.queue, self.events = catalogue, store, queue, events


@pytest.fixture
def world(tmp_path: Path):
    settings = Settings(work_dir=str(tmp_path / "work"), ladder="360p,240p", max_attempts=3, lease_seconds=60)
    queue = RecordingQueue()
    queue.send(TranscodeJob(videoId=VIDEO_ID, sourceKey=SOURCE_KEY, jobId="job-1"))
    return settings, Ports(new_catalogue(), new_store(), queue, FakeEvents())


def make_worker(world, encoder: FakeEncoder, stop: threading.Event | None = None, **kw) -> Worker:
    settings, ports = world
    service = make_service(ports.catalogue, ports.store, ports.events, settings, encoder)
    return Worker(ports, settings, stop or threading.Event(), worker_id="w1", service=service, **kw)


def test_done_job_deletes_its_message(world):
    # Given a queued job and a working encoder
    _, ports = world
    worker = make_worker(world, FakeEncoder())

    # When the worker takes one job
    outcome = worker.run_once(wait_seconds=0)

    # Then the video is ready and the message deleted, not released
    assert outcome is Outcome.DONE
    assert ports.queue.deleted == ["job-1"] and ports.queue.released == []
    assert ports.catalogue.get(VIDEO_ID).status == VideoStatus.READY


def test_empty_queue_returns_none(world):
    # Given an empty queue
    _, ports = world
    ports.queue.sent.clear()

    # When the worker polls, Then nothing happens
    assert make_worker(world, FakeEncoder()).run_once(wait_seconds=0) is None


def test_bad_media_deletes_its_message_so_it_never_storms(world):
    # Given an upload that is plain text
    _, ports = world
    ports.store.put_bytes(SOURCE_KEY, b"text, not a video")

    # When the worker takes the job
    outcome = make_worker(world, FakeEncoder()).run_once(wait_seconds=0)

    # Then the video failed and the message is gone
    assert outcome is Outcome.FAILED
    assert ports.queue.deleted == ["job-1"]
    assert ports.catalogue.get(VIDEO_ID).failure_reason == "the file is not a video"
    # And its upload is tagged, so the bucket's lifecycle rule expires it
    assert ports.store.tags[SOURCE_KEY] == {"reelay-upload": "failed"}


def test_transient_failure_leaves_the_message_for_redelivery(world):
    # Given an encoder that fails for a transient reason
    _, ports = world

    # When the worker takes the job on its first attempt
    outcome = make_worker(world, FakeEncoder(fail_with=OSError("boom"))).run_once(wait_seconds=0)

    # Then the message is neither deleted nor released: SQS redelivers it after its timeout
    assert outcome is Outcome.RETRY
    assert ports.queue.deleted == [] and ports.queue.released == []


def test_stop_during_a_job_hands_it_back(world):
    # Given a long encode and a stop request (SIGTERM) once it has started
    _, ports = world
    stop = threading.Event()
    encoder = FakeEncoder(segments=500, during=lambda out: stop.set())
    worker = make_worker(world, encoder, stop)

    # When the worker runs until stopped
    worker.run_forever()

    # Then the job was cancelled and released in the catalogue, and handed back to the queue as a
    # fresh message (the old one deleted) so the stop does not use up one of its attempts
    assert encoder.cancelled
    assert ports.queue.deleted == ["job-1"] and ports.queue.released == []
    assert [j.job_id for j in ports.queue.sent] == ["job-1"]
    assert ports.catalogue.get(VIDEO_ID).status == VideoStatus.QUEUED


def test_visibility_is_extended_while_the_job_runs(world):
    # Given a job that takes about half a second and a worker extending every 0.1 s
    _, ports = world

    def slow(out_dir: Path) -> None:
        time.sleep(0.5)

    worker = make_worker(world, FakeEncoder(during=slow), extend_every=0.1)

    # When it runs
    assert worker.run_once(wait_seconds=0) is Outcome.DONE

    # Then visibility was extended at once and then periodically, beyond the lease (60 s + a period)
    assert len(ports.queue.extended) >= 3
    assert all(seconds == 61 for _, seconds in ports.queue.extended)


def test_loop_survives_an_unreachable_queue(world):
    # Given a queue that fails twice before answering
    _, ports = world
    ports.queue.fail_receives = 2
    stop = threading.Event()
    worker = make_worker(world, FakeEncoder(), stop, wait_seconds=0)

    # When the loop runs in the background for a while
    thread = threading.Thread(target=worker.run_forever)
    thread.start()
    deadline = time.monotonic() + 15
    while ports.queue.deleted == [] and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(10)

    # Then it kept going, did the job, and stopped when asked
    assert ports.queue.deleted == ["job-1"]
    assert not thread.is_alive()


def test_a_job_received_while_stopping_is_given_straight_back(world):
    # Given a worker asked to stop just as a message arrives
    _, ports = world
    stop = threading.Event()
    encoder = FakeEncoder()
    worker = make_worker(world, encoder, stop)
    real_receive = ports.queue.receive

    def receive_then_stop(**kw):
        messages = real_receive(**kw)
        stop.set()
        return messages

    ports.queue.receive = receive_then_stop

    # When it polls
    outcome = worker.run_once(wait_seconds=0)

    # Then the job is handed back as a fresh message untouched and the video never claimed
    assert outcome is Outcome.HANDED_BACK
    assert ports.queue.deleted == ["job-1"] and [j.job_id for j in ports.queue.sent] == ["job-1"]
    assert encoder.calls == 0
    assert ports.catalogue.get(VIDEO_ID).status == VideoStatus.QUEUED


def test_hand_back_falls_back_to_visibility_when_the_queue_refuses_the_copy(world):
    # Given a queue that cannot take a new message
    queue = UnsendableQueue()
    message = QueueMessage(
        job=TranscodeJob(videoId=VIDEO_ID, sourceKey="uploads/x", jobId="job-1"),
        receipt="r1",
        receive_count=1,
    )
    worker = make_worker(world, FakeEncoder(segments=1), threading.Event())
    worker.queue = queue

    # When the worker hands the job back
    worker._hand_back(message)

    # Then the message is made visible again rather than deleted: the job is never lost
    assert queue.released == ["job-1"] and queue.deleted == []
