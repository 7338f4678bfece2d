"""The outbox-sweep Lambda: the scheduled sweep of the event outbox, and the local schedule that runs it."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import pytest

from lambdas.outbox_sweep import handler as outbox_sweep
from lambdas.outbox_sweep.handler import lambda_handler
from local.platform import Schedule
from local.workers import Background
from reelay.catalogue.memory import MemoryCatalogue
from reelay.events import DEFAULT_LEASE_SECONDS
from reelay.models import OutboxEvent, Video
from reelay.observability import metrics
from reelay.settings import Settings
from reelay.wiring import Services, set_services
from tests.fakes import DownEvents, FakeEvents, FakeLambdaContext, FakeStore, ManualClock, event_body

SCHEDULED = {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}


class BrokenCatalogue(MemoryCatalogue):
    def claim_events(
        self, *, limit: int, lease_seconds: int, video_id: str | None = None, subject: str | None = None
    ) -> list[OutboxEvent]:
        raise ConnectionError("database unreachable")


class ShortContext(FakeLambdaContext):
    def get_remaining_time_in_millis(self) -> int:
        return outbox_sweep.RESERVE_MILLIS - 1


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def catalogue(clock: ManualClock) -> MemoryCatalogue:
    return MemoryCatalogue(clock=clock)


def use(catalogue: MemoryCatalogue, events: Any) -> Services:
    services = Services(Settings(), catalogue=catalogue, events=events, store=FakeStore())
    set_services(services)
    return services


@pytest.fixture(autouse=True)
def _reset():
    metrics.clear_metrics()
    yield
    set_services(None)
    metrics.clear_metrics()


def fail_with_event(catalogue: MemoryCatalogue, video_id: str) -> None:
    """A video failed, its video.failed recorded in the outbox in the same change (never published)."""
    catalogue.create(
        Video(
            video_id=video_id,
            video_key=f"uploads/{video_id}.mp4",
            display_name="v",
            owner_id="u",
            email="u@example.com",
        )
    )
    event = OutboxEvent(
        event_type="video.failed", video_id=video_id, detail={"videoId": video_id, "reason": "bad input"}
    )
    assert catalogue.fail(video_id, "bad input", event=event)


def emf(output: str) -> dict[str, Any]:
    """The one EMF document the invocation printed."""
    (document,) = [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]
    return document


def test_pending_events_are_published_with_their_id_and_deleted(catalogue, clock):
    # Given two events the fast path never published, two minutes old
    events = FakeEvents()
    use(catalogue, events)
    fail_with_event(catalogue, "vid1")
    fail_with_event(catalogue, "vid2")
    clock.advance(120)

    # When the schedule invokes the sweep
    result = lambda_handler(SCHEDULED, FakeLambdaContext())

    # Then both went out, oldest first, each with its outbox id for de-duplication
    assert [(kind, detail["videoId"]) for kind, detail in events.published] == [
        ("video.failed", "vid1"),
        ("video.failed", "vid2"),
    ]
    assert all(detail["reason"] == "bad input" for _, detail in events.published)
    ids = [detail["eventId"] for _, detail in events.published]
    assert len(set(ids)) == 2
    assert [event_body(detail)["videoId"] for _, detail in events.published] == ["vid1", "vid2"]
    # And the outbox is empty, which is what the sweep reports
    assert result == {"published": 2, "failed": 0, "pending": 0, "oldestAgeSeconds": 0.0}
    assert catalogue.pending_events() == (0, 0.0)

    # When the next sweep runs, even after any lease would have run out
    clock.advance(DEFAULT_LEASE_SECONDS + 1)
    again = lambda_handler(SCHEDULED, FakeLambdaContext())

    # Then nothing is published twice
    assert again["published"] == 0 and len(events.published) == 2


def test_a_failing_publisher_leaves_the_events_pending_until_a_later_sweep(catalogue, clock):
    # Given three events and an SNS topic that is down
    down = DownEvents()
    use(catalogue, down)
    for n in range(3):
        fail_with_event(catalogue, f"vid{n}")
    clock.advance(30)

    # When the sweep runs
    result = lambda_handler(SCHEDULED, FakeLambdaContext())

    # Then every publish was tried and counted as failed, and the events still wait, as old as before
    assert down.attempts == 3
    assert result == {"published": 0, "failed": 3, "pending": 3, "oldestAgeSeconds": 30.0}
    assert catalogue.pending_events() == (3, 30.0)

    # When SNS is back and the next sweep runs after the lease of the failed attempt
    events = FakeEvents()
    use(catalogue, events)
    clock.advance(DEFAULT_LEASE_SECONDS + 1)
    result = lambda_handler(SCHEDULED, FakeLambdaContext())

    # Then they all go out
    assert (result["published"], result["failed"], result["pending"]) == (3, 0, 0)
    assert sorted(detail["videoId"] for _, detail in events.published) == ["vid0", "vid1", "vid2"]


def test_the_sweep_emits_its_backlog_and_publish_counts(catalogue, clock, capsys):
    # Given one event that will publish now, and an SNS topic down for the first sweep
    use(catalogue, DownEvents())
    fail_with_event(catalogue, "vid1")
    clock.advance(45)
    capsys.readouterr()

    # When the sweep runs with SNS down
    lambda_handler(SCHEDULED, FakeLambdaContext())

    # Then the EMF output reports one failed publish and one event pending for 45 s (EMF values are lists)
    down = emf(capsys.readouterr().out)
    (directive,) = down["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == metrics.namespace
    assert directive["Dimensions"] == [["service"]]
    assert down["service"] == os.environ["POWERTOOLS_SERVICE_NAME"]
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units == {
        "EventPublishFailed": "Count",
        outbox_sweep.METRIC_PENDING: "Count",
        outbox_sweep.METRIC_OLDEST_AGE: "Seconds",
    }
    assert (down["EventPublishFailed"], down["OutboxPending"], down["OutboxOldestAgeSeconds"]) == (
        [1.0],
        [1.0],
        [45.0],
    )

    # When SNS is back and a later sweep publishes it
    use(catalogue, FakeEvents())
    clock.advance(DEFAULT_LEASE_SECONDS + 1)
    lambda_handler(SCHEDULED, FakeLambdaContext())

    # Then that sweep reports the publish and an empty outbox
    up = emf(capsys.readouterr().out)
    assert (up["EventsPublished"], up["OutboxPending"], up["OutboxOldestAgeSeconds"]) == ([1.0], [0.0], [0.0])
    assert "EventPublishFailed" not in up


@pytest.fixture
def five_events_batches_of_two(catalogue, monkeypatch) -> MemoryCatalogue:
    monkeypatch.setattr(outbox_sweep, "BATCH_SIZE", 2)
    for n in range(5):
        fail_with_event(catalogue, f"vid{n}")
    return catalogue


def test_the_sweep_flushes_batch_after_batch_until_nothing_is_due(five_events_batches_of_two):
    # Given five events and batches of two
    events = FakeEvents()
    use(five_events_batches_of_two, events)

    # When the sweep runs with plenty of time
    result = lambda_handler(SCHEDULED, FakeLambdaContext())

    # Then three batches published all five
    assert (result["published"], result["pending"]) == (5, 0)
    assert len(events.published) == 5


def test_the_sweep_starts_no_batch_when_the_invocation_is_nearly_out_of_time(five_events_batches_of_two):
    # Given five events, batches of two, and an invocation with less time left than a batch needs
    events = FakeEvents()
    use(five_events_batches_of_two, events)

    # When the sweep runs
    result = lambda_handler(SCHEDULED, ShortContext())

    # Then it published one batch and left the rest, reported, for the next sweep
    assert (result["published"], result["failed"], result["pending"]) == (2, 0, 3)
    assert len(events.published) == 2


def test_the_sweep_stops_after_a_batch_that_published_nothing(five_events_batches_of_two):
    # Given five events, batches of two, and SNS down
    down = DownEvents()
    use(five_events_batches_of_two, down)

    # When the sweep runs
    result = lambda_handler(SCHEDULED, FakeLambdaContext())

    # Then it does not hammer SNS with the rest: one batch tried, everything still pending
    assert down.attempts == 2
    assert (result["published"], result["failed"], result["pending"]) == (0, 2, 5)


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_catalogue_error_fails_the_invocation(clock):
    # Given a catalogue that cannot be reached
    events = FakeEvents()
    use(BrokenCatalogue(clock=clock), events)

    # When the sweep runs, then it raises (Lambda retries; the age alarm sees the silence)
    with pytest.raises(ConnectionError, match="database unreachable"):
        lambda_handler(SCHEDULED, FakeLambdaContext())
    assert events.published == []


# --- the local platform's stand-in for the EventBridge schedule ----------------------------------
def test_local_schedule_invokes_with_a_scheduled_event_until_stopped_and_stops_promptly():
    # Given a schedule every 50 ms whose handler fails on its second run
    calls: list[tuple[dict[str, Any], Any]] = []
    third = threading.Event()

    def handler(event: dict[str, Any], context: Any) -> None:
        calls.append((event, context))
        if len(calls) == 2:
            raise ConnectionError("database unreachable")
        if len(calls) >= 3:
            third.set()

    schedule = Schedule(name="reelay-outbox-sweep", every_seconds=0.05, region="us-east-1", handler=handler)
    runner = Background("outbox-sweep", schedule, restart_delay=30)
    runner.start()
    try:
        # Then it keeps invoking, a failed run notwithstanding (no 30 s restart of the thread)
        assert third.wait(5)
    finally:
        runner.stop(timeout=5)
    event, context = calls[0]
    # With what EventBridge delivers, and a context with the Lambda's time left
    assert (event["source"], event["detail-type"], event["detail"]) == ("aws.events", "Scheduled Event", {})
    assert event["region"] == "us-east-1"
    assert event["resources"] == ["arn:aws:events:us-east-1:000000000000:rule/reelay-outbox-sweep-schedule"]
    assert context.function_name == "reelay-outbox-sweep"
    assert 50_000 < context.get_remaining_time_in_millis() <= 60_000
    assert len({e["id"] for e, _ in calls}) == len(calls)

    # Given a schedule with a 5 s period, waiting between runs
    ran = threading.Event()
    slow = Background(
        "outbox-sweep",
        Schedule(name="r", every_seconds=5.0, region="us-east-1", handler=lambda e, c: ran.set()),
    )
    slow.start()
    assert ran.wait(5)
    # When it is stopped mid-wait, then it stops at once, not at the end of the period
    started = time.monotonic()
    slow.stop(timeout=5)
    assert time.monotonic() - started < 1.0
    assert not slow._thread.is_alive()
