"""OutboxSweep: the outbox's publisher, against the in-memory catalogue (same contract as MySQL)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from reelay.catalogue.memory import MemoryCatalogue
from reelay.events import FlushResult, OutboxSweep
from reelay.models import DesiredState, OutboxEvent, Rendition, SourceProtocol, Stream, Video, stream_subject
from tests.fakes import DownEvents, FakeEvents, ManualClock, event_body

R360 = Rendition(name="360p", width=640, height=360, bandwidth=900_000, codecs="avc1.4d401e",
                 playlist="360p/index.m3u8")  # fmt: skip


class RecordingMetrics:
    def __init__(self) -> None:
        self.added: list[tuple[str, float]] = []

    def add_metric(self, *, name: str, unit: Any, value: float) -> None:
        self.added.append((name, value))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def catalogue(clock: ManualClock) -> MemoryCatalogue:
    return MemoryCatalogue(clock=clock)


def completed(catalogue: MemoryCatalogue, n: int = 1) -> list[str]:
    """n videos made ready by worker w1, each with its video.ready in the outbox."""
    ids = []
    for i in range(n):
        vid = uuid.uuid4().hex
        catalogue.create(
            Video(video_id=vid, video_key=f"uploads/{vid}", display_name="v", owner_id="o", email="o@x.io")
        )
        assert catalogue.mark_uploaded(vid, size_bytes=1, content_type="video/mp4")
        assert catalogue.claim(vid, "w1", 60) is not None
        event = OutboxEvent(event_type="video.ready", video_id=vid, detail={"videoId": vid, "n": i})
        assert catalogue.complete(vid, "w1", duration_seconds=1, renditions=[R360], event=event)
        ids.append(vid)
    return ids


def test_flush_publishes_each_due_event_once_with_its_id_and_forgets_it(catalogue: MemoryCatalogue) -> None:
    # Given two ready videos whose events wait in the outbox
    ids = completed(catalogue, 2)
    events, metrics = FakeEvents(), RecordingMetrics()
    relay = OutboxSweep(catalogue, events, metrics=metrics)
    # When the relay flushes twice
    first, second = relay.flush(), relay.flush()
    # Then both events went out once, oldest first, each with its outbox id for de-duplication
    assert (first, second) == (FlushResult(published=2), FlushResult())
    assert [(t, d["videoId"], d["n"]) for t, d in events.published] == [
        ("video.ready", ids[0], 0),
        ("video.ready", ids[1], 1),
    ]
    assert len({d["eventId"] for _, d in events.published}) == 2
    assert catalogue.pending_events() == (0, 0.0)
    assert metrics.added == [("EventsPublished", 2)]


def test_flush_of_one_video_leaves_the_others(catalogue: MemoryCatalogue) -> None:
    ids = completed(catalogue, 3)
    events = FakeEvents()
    assert OutboxSweep(catalogue, events).flush(video_id=ids[1]).published == 1
    assert [d["videoId"] for _, d in events.published] == [ids[1]]
    assert catalogue.pending_events()[0] == 2


def test_events_without_a_video_flush_by_their_subject(catalogue: MemoryCatalogue) -> None:
    # Given a video's event and a stream's event (no video: its subject names the stream)
    (vid,) = completed(catalogue, 1)
    catalogue.create_stream(
        Stream(stream_id="s1", owner_id="o", name="cam", source_url="srt://cam:9000",
               source_protocol=SourceProtocol.SRT, kvs_stream_name="cam")
    )  # fmt: skip
    subject = stream_subject("s1")
    started = OutboxEvent(event_type="stream.started", subject=subject, detail={"streamId": "s1"})
    assert catalogue.set_desired_state("s1", DesiredState.RUNNING, event=started)
    events = FakeEvents()
    # When the stream's subject is flushed, Then only its event goes out, without a videoId
    assert OutboxSweep(catalogue, events).flush(subject=stream_subject("s1")).published == 1
    ((kind, detail),) = events.published
    assert kind == "stream.started" and detail["streamId"] == "s1" and "videoId" not in detail
    # And the video's event still waits for its own flush
    assert OutboxSweep(catalogue, events).flush_quietly(video_id=vid).published == 1


def test_an_outage_keeps_events_until_their_lease_runs_out_then_publishes_them(
    catalogue: MemoryCatalogue, clock: ManualClock
) -> None:
    # Given SNS is down when two events are flushed
    completed(catalogue, 2)
    events, metrics = DownEvents(), RecordingMetrics()
    relay = OutboxSweep(catalogue, events, lease_seconds=60, metrics=metrics)
    assert relay.flush() == FlushResult(failed=2)
    assert metrics.added == [("EventPublishFailed", 2)]
    # When SNS is back but the leases still run, Then nothing is retried yet (no hammering)
    events.up = True
    clock.advance(30)
    assert relay.flush() == FlushResult()
    assert events.attempts == 2
    # When the leases have run out, Then each event goes out once, on its second attempt
    clock.advance(31)
    assert relay.flush() == FlushResult(published=2)
    assert len(events.published) == 2 and events.attempts == 4
    count, age = catalogue.pending_events()
    assert (count, age) == (0, 0.0)


def test_pending_events_report_the_age_of_the_oldest(catalogue: MemoryCatalogue, clock: ManualClock) -> None:
    completed(catalogue, 1)
    clock.advance(90)
    completed(catalogue, 1)
    clock.advance(10)
    assert catalogue.pending_events() == (2, 100.0)


class DeleteFails(MemoryCatalogue):
    def delete_event(self, event_id: int) -> None:
        raise ConnectionError("database went away")


def test_an_event_published_but_not_forgotten_goes_out_again_after_its_lease(clock: ManualClock) -> None:
    # Given the catalogue fails just after the publish (the delete is lost)
    catalogue = DeleteFails(clock=clock)
    completed(catalogue, 1)
    events = FakeEvents()
    relay = OutboxSweep(catalogue, events, lease_seconds=60)
    # When the relay flushes, Then the publish counts as done
    assert relay.flush() == FlushResult(published=1)
    # And after the lease the same event (same eventId) goes out again: at least once, never lost
    clock.advance(61)
    assert relay.flush() == FlushResult(published=1)
    first, again = (d for _, d in events.published)
    assert first == again and event_body(first) == {"videoId": first["videoId"], "n": 0}


class ClaimFails(MemoryCatalogue):
    def claim_events(self, **kwargs: Any) -> list[OutboxEvent]:
        raise ConnectionError("database went away")


def test_flush_quietly_leaves_a_catalogue_outage_to_the_sweep(clock: ManualClock) -> None:
    relay = OutboxSweep(ClaimFails(clock=clock), FakeEvents())
    with pytest.raises(ConnectionError):
        relay.flush()
    assert relay.flush_quietly(video_id="v1") == FlushResult()
