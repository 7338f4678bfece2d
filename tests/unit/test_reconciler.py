"""The relay reconciler against in-memory fakes of the stream catalogue and the launcher."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from reelay.errors import InvalidInput, NotFound, ReelayError
from reelay.relay.reconciler import (
    METRIC_RECONCILE_ERRORS,
    METRIC_STREAMS_DOWN,
    METRIC_TASKS_STARTED,
    METRIC_TASKS_STOPPED,
    Reconciler,
    RelayTask,
    Stopped,
)

NOW = datetime(2026, 12, 1, 12, 0, 0)
LEASE = timedelta(seconds=30)


@dataclass(frozen=True)
class FakeStream:
    stream_id: str
    desired_state: str = "running"
    state: str = "stopped"
    state_since: datetime = NOW - timedelta(hours=1)
    outage_since: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    updated_at: datetime = NOW - timedelta(hours=1)
    deleted_at: datetime | None = None

    def lease_live(self, now: datetime) -> bool:
        return (
            self.lease_owner is not None
            and self.lease_expires_at is not None
            and self.lease_expires_at >= now
        )


class FakeCatalogue:
    """streams_to_reconcile as the catalogue documents it: desired running without a live lease, and
    desired stopped or deleted with one. get_stream hides deleted streams."""

    def __init__(self, *streams: FakeStream) -> None:
        self.streams = {s.stream_id: s for s in streams}

    def streams_to_reconcile(self, now: datetime | None = None) -> list[FakeStream]:
        at = now or NOW
        return [
            s
            for s in self.streams.values()
            if (s.desired_state == "running" and s.deleted_at is None and not s.lease_live(at))
            or ((s.desired_state == "stopped" or s.deleted_at is not None) and s.lease_live(at))
        ]

    def get_stream(self, stream_id: str) -> FakeStream:
        stream = self.streams.get(stream_id)
        if stream is None or stream.deleted_at is not None:
            raise NotFound(f"stream {stream_id} not found")
        return stream


@dataclass
class FakeLauncher:
    tasks: list[RelayTask] = field(default_factory=list)
    launched: list[str] = field(default_factory=list)
    stopped: list[tuple[str, str]] = field(default_factory=list)
    fail_launch: set[str] = field(default_factory=set)
    fail_stop: set[str] = field(default_factory=set)
    gone: set[str] = field(default_factory=set)
    _ids: itertools.count = field(default_factory=itertools.count)

    def launch(self, stream_id: str) -> None:
        if stream_id in self.fail_launch:
            raise ReelayError("no Fargate capacity")
        self.launched.append(stream_id)
        self.tasks.append(RelayTask(f"arn:task/new-{next(self._ids)}", stream_id, "PROVISIONING", None, NOW))

    def stop(self, stream_id: str, task_id: str) -> None:
        if task_id in self.gone:
            raise NotFound(f"relay task {task_id} not found")
        if task_id in self.fail_stop:
            raise ReelayError("throttled")
        self.stopped.append((stream_id, task_id))
        self.tasks = [t for t in self.tasks if t.task_arn != task_id]

    def running(self, stream_id: str | None = None) -> list[RelayTask]:
        return [t for t in self.tasks if stream_id is None or t.stream_id == stream_id]


class FakeMetrics:
    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def add_metric(self, *, name: str, unit: object, value: float) -> None:
        self.values[name] = value


def task(arn: str, stream_id: str, *, started_ago: timedelta | None = timedelta(minutes=10)) -> RelayTask:
    """A task created 30 s before it started (or 30 s ago, still pending when started_ago is None)."""
    started = NOW - started_ago if started_ago is not None else None
    created = (started or NOW) - timedelta(seconds=30)
    return RelayTask(arn, stream_id, "RUNNING" if started else "PENDING", started, created)


def leased(stream_id: str, owner: str, *, state: str = "running", **kw: object) -> FakeStream:
    return FakeStream(
        stream_id,
        state=state,
        lease_owner=owner,
        lease_expires_at=NOW + LEASE,
        **kw,  # type: ignore[arg-type]
    )


def reconciler(
    catalogue: FakeCatalogue, launcher: FakeLauncher, metrics: FakeMetrics | None = None
) -> Reconciler:
    return Reconciler(catalogue, launcher, clock=lambda: NOW, metrics=metrics)


# --- starting ----------------------------------------------------------------------------------------
def test_a_started_stream_without_a_task_gets_exactly_one():
    # Given a stream just started (desired running, never leased) and no task
    catalogue = FakeCatalogue(FakeStream("s1", updated_at=NOW - timedelta(seconds=5)))
    launcher = FakeLauncher()
    # When the reconciler runs twice (the schedule, then a task event)
    first = reconciler(catalogue, launcher).run_once()
    second = reconciler(catalogue, launcher).run_once()
    # Then one task is launched, and the second pass waits for it rather than launching another
    assert first.started == ("s1",) and launcher.launched == ["s1"]
    assert second.started == () and second.waiting == ("s1",)


def test_a_task_that_died_is_replaced_while_its_lease_still_runs():
    # Given a running stream whose task ECS just reported stopped: its lease has 30 s left
    catalogue = FakeCatalogue(leased("s1", "arn:task/dead"))
    launcher = FakeLauncher()
    # When the STOPPED event makes the reconciler look at that stream
    report = reconciler(catalogue, launcher).run_once(stream_ids=["s1"])
    # Then a replacement is launched now, not once the lease runs out
    assert report.started == ("s1",)
    assert launcher.launched == ["s1"]


def test_a_stream_whose_lease_ran_out_gets_a_new_task_on_the_schedule():
    # Given a stream whose task vanished and whose lease expired a minute ago
    stream = FakeStream("s1", state="running", lease_owner="arn:task/dead", lease_expires_at=NOW - LEASE * 2)
    launcher = FakeLauncher()
    # When the scheduled pass runs (no event hint)
    report = reconciler(FakeCatalogue(stream), launcher).run_once()
    # Then it is launched again
    assert report.started == ("s1",)


def test_a_task_running_long_without_the_lease_is_stuck_and_replaced():
    # Given a stream nobody leases and a task of it up for 10 minutes that never claimed
    catalogue = FakeCatalogue(FakeStream("s1"))
    launcher = FakeLauncher(tasks=[task("arn:task/stuck", "s1")])
    # When the reconciler runs
    report = reconciler(catalogue, launcher).run_once()
    # Then the stuck task is stopped and another launched
    assert report.stopped == (Stopped("s1", "arn:task/stuck", "stuck: running without the lease"),)
    assert report.started == ("s1",)


@pytest.mark.parametrize("started_ago", [None, timedelta(seconds=90)])
def test_a_young_task_is_left_to_claim_the_lease(started_ago):
    # Given a stream nobody leases yet, and its task still pending or started 90 s ago
    catalogue = FakeCatalogue(FakeStream("s1"))
    launcher = FakeLauncher(tasks=[task("arn:task/young", "s1", started_ago=started_ago)])
    # When the reconciler runs
    report = reconciler(catalogue, launcher).run_once()
    # Then it neither stops it nor launches a second one
    assert (report.started, report.stopped, report.waiting) == ((), (), ("s1",))
    assert launcher.stopped == [] and launcher.launched == []


def test_a_healthy_stream_is_left_alone():
    # Given a running stream whose live task holds the lease
    catalogue = FakeCatalogue(leased("s1", "arn:task/a"))
    launcher = FakeLauncher(tasks=[task("arn:task/a", "s1")])
    metrics = FakeMetrics()
    # When the reconciler runs
    report = reconciler(catalogue, launcher, metrics).run_once()
    # Then nothing changes and nothing is down
    assert report.summary() == {"started": [], "stopped": [], "waiting": [], "streamsDown": [], "errors": []}
    assert metrics.values == {
        METRIC_STREAMS_DOWN: 0,
        METRIC_TASKS_STARTED: 0,
        METRIC_TASKS_STOPPED: 0,
        METRIC_RECONCILE_ERRORS: 0,
    }


# --- stopping ---------------------------------------------------------------------------------------
def test_tasks_of_a_stopped_stream_are_stopped_lease_holder_included():
    # Given a stream set to stopped whose task still holds the lease, plus a second task of it
    catalogue = FakeCatalogue(replace(leased("s1", "arn:task/a"), desired_state="stopped"))
    launcher = FakeLauncher(tasks=[task("arn:task/a", "s1"), task("arn:task/b", "s1")])
    # When the reconciler runs
    report = reconciler(catalogue, launcher).run_once()
    # Then both are stopped and nothing is launched
    assert {s.task_arn for s in report.stopped} == {"arn:task/a", "arn:task/b"}
    assert all(s.reason == "stream stopped" for s in report.stopped)
    assert report.started == () and launcher.tasks == []


def test_the_lease_holder_of_a_deleted_stream_is_stopped_even_if_ecs_does_not_list_it():
    # Given a stream deleted while its task held the lease, a task ECS's listing missed
    catalogue = FakeCatalogue(replace(leased("s1", "arn:task/a"), deleted_at=NOW, desired_state="stopped"))
    launcher = FakeLauncher()
    # When the reconciler runs
    report = reconciler(catalogue, launcher).run_once()
    # Then it asks ECS to stop the lease holder all the same
    assert launcher.stopped == [("s1", "arn:task/a")]
    assert report.stopped == (Stopped("s1", "arn:task/a", "stream stopped"),)


def test_orphans_and_duplicates_are_stopped():
    # Given a task whose stream is gone, and a stream with two tasks of which one holds the lease
    catalogue = FakeCatalogue(leased("s2", "arn:task/holder"))
    launcher = FakeLauncher(
        tasks=[
            task("arn:task/orphan", "gone"),
            task("arn:task/holder", "s2"),
            task("arn:task/dup", "s2", started_ago=None),
        ]
    )
    # When the reconciler runs
    report = reconciler(catalogue, launcher).run_once()
    # Then the orphan and the duplicate are stopped, the holder keeps relaying
    assert set(report.stopped) == {
        Stopped("gone", "arn:task/orphan", "orphan: the stream no longer exists"),
        Stopped("s2", "arn:task/dup", "duplicate: arn:task/holder holds the lease"),
    }
    assert [t.task_arn for t in launcher.tasks] == ["arn:task/holder"]
    assert report.started == ()


def test_a_task_already_gone_is_not_an_error():
    # Given a stopped stream whose lease holder ECS no longer knows
    catalogue = FakeCatalogue(replace(leased("s1", "arn:task/a"), desired_state="stopped"))
    launcher = FakeLauncher(gone={"arn:task/a"})
    # When the reconciler runs
    report = reconciler(catalogue, launcher).run_once()
    # Then nothing is reported stopped, and nothing failed
    assert (report.stopped, report.errors) == ((), ())


# --- failures ---------------------------------------------------------------------------------------
def test_one_failed_launch_or_stop_does_not_hold_up_the_others():
    # Given two streams to start (one cannot be launched) and an orphan that cannot be stopped
    catalogue = FakeCatalogue(FakeStream("a"), FakeStream("b"))
    launcher = FakeLauncher(
        tasks=[task("arn:task/orphan", "gone")], fail_launch={"a"}, fail_stop={"arn:task/orphan"}
    )
    metrics = FakeMetrics()
    # When the reconciler runs
    report = reconciler(catalogue, launcher, metrics).run_once()
    # Then the other stream is launched and both failures are reported for the next pass
    assert report.started == ("b",)
    assert report.errors == ("launch a: no Fargate capacity", "stop arn:task/orphan: throttled")
    assert metrics.values[METRIC_RECONCILE_ERRORS] == 2 and metrics.values[METRIC_TASKS_STARTED] == 1


def test_an_event_naming_no_valid_stream_is_reported_and_the_pass_goes_on():
    # Given a catalogue that refuses an id it cannot read, and a stream that should run
    class Picky(FakeCatalogue):
        def get_stream(self, stream_id: str) -> FakeStream:
            if " " in stream_id:
                raise InvalidInput("not a stream id")
            return super().get_stream(stream_id)

    launcher = FakeLauncher()
    # When an event names a bad id
    report = reconciler(Picky(FakeStream("s1")), launcher).run_once(stream_ids=["bad id"])
    # Then that id is reported, and the stream that should run still gets its task
    assert report.errors == ("read bad id: not a stream id",)
    assert report.started == ("s1",)


def test_a_catalogue_failure_raises_before_anything_is_launched():
    # Given a catalogue that cannot be read
    class Broken(FakeCatalogue):
        def streams_to_reconcile(self, now: datetime | None = None) -> list[FakeStream]:
            raise ReelayError("database unreachable")

    launcher = FakeLauncher()
    # When the reconciler runs, then the error surfaces (Lambda retries) and nothing was launched
    with pytest.raises(ReelayError, match="unreachable"):
        reconciler(Broken(FakeStream("s1")), launcher).run_once()
    assert launcher.launched == []


# --- StreamsDown ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stream", "down"),
    [
        # running with a live lease: up
        (leased("up", "arn:task/a"), False),
        # reconnecting for 30 s: not yet
        (leased("blip", "arn:task/a", state="reconnecting", state_since=NOW - timedelta(seconds=30)), False),
        # reconnecting for 90 s: down
        (leased("out", "arn:task/a", state="reconnecting", state_since=NOW - timedelta(seconds=90)), True),
        # a new task starting, but the outage began 5 minutes ago under the previous task
        (
            leased(
                "long",
                "arn:task/a",
                state="starting",
                state_since=NOW - timedelta(seconds=10),
                outage_since=NOW - timedelta(minutes=5),
            ),
            True,
        ),
        # just started by an operator, nobody holds it yet
        (FakeStream("new", updated_at=NOW - timedelta(seconds=20)), False),
        # started 10 minutes ago and never picked up
        (FakeStream("never", updated_at=NOW - timedelta(minutes=10)), True),
        # its task died: the lease lapsed 2 minutes ago
        (
            FakeStream(
                "dead",
                state="running",
                lease_owner="arn:task/x",
                lease_expires_at=NOW - timedelta(minutes=2),
                updated_at=NOW - timedelta(minutes=3),
            ),
            True,
        ),
    ],
    ids=lambda v: v.stream_id if isinstance(v, FakeStream) else str(v),
)
def test_streams_down_counts_streams_that_should_run_and_have_not_for_over_a_minute(stream, down):
    # Given one stream that should run, with its lease holder (if any) alive in ECS
    launcher = FakeLauncher(
        tasks=[task("arn:task/a", stream.stream_id)] if stream.lease_owner == "arn:task/a" else []
    )
    metrics = FakeMetrics()
    # When the reconciler runs
    report = reconciler(FakeCatalogue(stream), launcher, metrics).run_once()
    # Then it is counted down exactly when it has not been running for over a minute
    assert report.streams_down == ((stream.stream_id,) if down else ())
    assert metrics.values[METRIC_STREAMS_DOWN] == (1 if down else 0)


def test_stopped_streams_are_never_down():
    # Given a stream an operator stopped long ago
    catalogue = FakeCatalogue(FakeStream("s1", desired_state="stopped"))
    # When the reconciler runs, then it is not counted, and nothing is launched for it
    report = reconciler(catalogue, FakeLauncher()).run_once(stream_ids=["s1"])
    assert report.streams_down == () and report.started == ()


def test_aware_clock_and_task_times_compare_with_the_catalogues_naive_utc():
    # Given a clock that answers in aware UTC and a task started 90 s ago in aware UTC
    catalogue = FakeCatalogue(FakeStream("s1"))
    aware = RelayTask("arn:task/a", "s1", "RUNNING", (NOW - timedelta(seconds=90)).replace(tzinfo=UTC))
    launcher = FakeLauncher(tasks=[aware])
    # When the reconciler runs
    report = Reconciler(catalogue, launcher, clock=lambda: NOW.replace(tzinfo=UTC)).run_once()
    # Then the task counts as young (90 s < the 3-minute start grace): no second launch
    assert report.waiting == ("s1",) and launcher.launched == []
