"""The relay reconciler: makes the relay tasks that run match the streams' desired state.

Why RunTask and a reconciler, not one ECS service per stream: a service per stream would be created
and deleted at run time, outside CloudFormation (drift, and a stack that cannot account for what it
runs), and a service replaces a dead task only after its own deployment and back-off logic, tens of
seconds to minutes later, with no idea of KVS's one-PutMedia-connection-per-stream rule: during a
deployment or a zombie task it runs two. Here one Fargate task per stream is started with RunTask,
and this reconciler, run every minute and at once on every relay task's STOPPED event, replaces a
task that died within seconds of ECS noticing. "Never two" does not rest on it: the catalogue's fenced
lease decides which task may relay a stream, and the reconciler only cleans up what lost (duplicates,
orphans) so nothing idles on Fargate or fights for the lease.

One pass (``run_once``):

- desired running, no task holding a live lease: launch a task, unless one is already on its way
  (pending, or started less than ``start_grace`` ago and not yet claimed). A task that has been up
  longer than that without the lease is stuck: stop it and launch another.
- desired running, the lease held by a task ECS no longer runs (it just died; its lease has not run
  out yet): launch the replacement now, and it claims once the lease lapses.
- desired running, the lease held by a live task: stop any other task of that stream (duplicates).
- desired stopped, or the stream deleted: stop its tasks (the lease holder included).
- a task whose stream no longer exists: stop it (orphan).

It also counts ``StreamsDown``: streams that should run and have not been ``running`` for over
``down_after``. The alarm wants it above zero in two consecutive one-minute periods, so with the
default 60 s it fires once a stream has been down for over two minutes.

Every launch and stop is on its own: one that fails is recorded in the report and retried on the next
pass, and the others go ahead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from reelay.errors import NotFound, ReelayError
from reelay.models import utcnow

METRIC_STREAMS_DOWN = "StreamsDown"
METRIC_TASKS_STARTED = "RelayTasksStarted"
METRIC_TASKS_STOPPED = "RelayTasksStopped"
METRIC_RECONCILE_ERRORS = "ReconcileErrors"

DEFAULT_START_GRACE = timedelta(minutes=3)  # Fargate pulls the media image, starts, claims the lease
DEFAULT_DOWN_AFTER = timedelta(seconds=60)

_DESIRED_RUNNING = "running"
_STATE_RUNNING = "running"


# --- what the reconciler needs (structural: the catalogue and the launchers live elsewhere) ---------
class ReconciledStream(Protocol):
    """The fields of ``reelay.models.Stream`` the reconciler reads."""

    @property
    def stream_id(self) -> str: ...
    @property
    def desired_state(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def state_since(self) -> datetime: ...
    @property
    def outage_since(self) -> datetime | None: ...
    @property
    def lease_owner(self) -> str | None: ...
    @property
    def lease_expires_at(self) -> datetime | None: ...
    @property
    def updated_at(self) -> datetime: ...
    @property
    def deleted_at(self) -> datetime | None: ...


class StreamCatalogue(Protocol):
    """The part of the stream catalogue the reconciler uses. ``get_stream`` raises NotFound for an
    unknown or deleted stream."""

    def streams_to_reconcile(self, now: datetime | None = None) -> Sequence[ReconciledStream]: ...

    def get_stream(self, stream_id: str) -> ReconciledStream: ...


@dataclass(frozen=True)
class RelayTask:
    """A relay task the launcher runs (ECS desired status RUNNING: provisioning, pending or running)."""

    task_arn: str
    stream_id: str
    last_status: str
    started_at: datetime | None = None  # None until the container runs
    created_at: datetime | None = None


class RelayLauncher(Protocol):
    def launch(self, stream_id: str) -> None: ...

    def stop(self, stream_id: str, task_id: str) -> None:
        """Stop one task; NotFound when it is not there (already gone)."""
        ...

    def running(self, stream_id: str | None = None) -> list[RelayTask]:
        """The relay tasks not yet stopped, of one stream or of all."""
        ...


@dataclass(frozen=True)
class Stopped:
    stream_id: str
    task_arn: str
    reason: str


@dataclass(frozen=True)
class ReconcileReport:
    started: tuple[str, ...] = ()  # stream ids a task was launched for
    stopped: tuple[Stopped, ...] = ()
    waiting: tuple[str, ...] = ()  # streams whose new task is on its way
    streams_down: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    def summary(self) -> dict[str, Any]:
        return {
            "started": list(self.started),
            "stopped": [
                {"streamId": s.stream_id, "taskArn": s.task_arn, "reason": s.reason} for s in self.stopped
            ],
            "waiting": list(self.waiting),
            "streamsDown": list(self.streams_down),
            "errors": list(self.errors),
        }


def _utc(value: datetime) -> datetime:
    """Naive UTC, as the catalogue stores times (an aware time is converted)."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value


@dataclass
class _Pass:
    started: list[str] = field(default_factory=list)
    stopped: list[Stopped] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    down: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Reconciler:
    def __init__(
        self,
        catalogue: StreamCatalogue,
        launcher: RelayLauncher,
        *,
        clock: Callable[[], datetime] = utcnow,
        metrics: Any = None,
        start_grace: timedelta = DEFAULT_START_GRACE,
        down_after: timedelta = DEFAULT_DOWN_AFTER,
    ) -> None:
        self.catalogue = catalogue
        self.launcher = launcher
        self.clock = clock
        self.metrics = metrics  # a Powertools metrics provider; its owner flushes it
        self.start_grace = start_grace
        self.down_after = down_after

    def run_once(self, stream_ids: Iterable[str] = ()) -> ReconcileReport:
        """One pass over the streams due, the streams of running tasks and ``stream_ids`` (those of
        tasks ECS just reported stopped: their lease may still be live, so the catalogue does not list
        them yet). A catalogue or ECS listing error raises: nothing is safe to decide without them."""
        now = _utc(self.clock())
        tasks = self.launcher.running()
        by_stream: dict[str, list[RelayTask]] = {}
        for task in tasks:
            by_stream.setdefault(task.stream_id, []).append(task)
        streams: dict[str, ReconciledStream | None] = {
            s.stream_id: s for s in self.catalogue.streams_to_reconcile(now)
        }
        result = _Pass()
        for stream_id in [*by_stream, *stream_ids]:
            if stream_id not in streams:
                try:
                    streams[stream_id] = self.catalogue.get_stream(stream_id)
                except NotFound:
                    streams[stream_id] = None
                except ReelayError as exc:  # e.g. an id from an event that is no stream id at all
                    result.errors.append(f"read {stream_id}: {exc.message}")
        for stream_id in sorted(streams):
            stream = streams[stream_id]
            own = by_stream.get(stream_id, [])
            if stream is None:
                self._stop_all(result, stream_id, own, "orphan: the stream no longer exists")
            elif stream.deleted_at is not None or stream.desired_state != _DESIRED_RUNNING:
                self._stop_all(result, stream_id, self._with_owner(stream, own, now), "stream stopped")
            else:
                self._keep_one(result, stream, own, now)
                if self._down(stream, now):
                    result.down.append(stream_id)
        report = ReconcileReport(
            tuple(result.started),
            tuple(result.stopped),
            tuple(result.waiting),
            tuple(result.down),
            tuple(result.errors),
        )
        self._emit(report)
        return report

    # --- decisions ---------------------------------------------------------------------------------
    def _keep_one(self, result: _Pass, stream: ReconciledStream, own: list[RelayTask], now: datetime) -> None:
        owner = stream.lease_owner if self._lease_live(stream, now) else None
        if owner is not None and any(t.task_arn == owner for t in own):
            others = [t for t in own if t.task_arn != owner]
            self._stop_all(result, stream.stream_id, others, f"duplicate: {owner} holds the lease")
            return
        # No live task holds the lease: the stream needs one. A young task is that one, on its way.
        young = [t for t in own if self._young(t, now)]
        stuck = [t for t in own if not self._young(t, now)]
        self._stop_all(result, stream.stream_id, stuck, "stuck: running without the lease")
        if young:
            result.waiting.append(stream.stream_id)
            return
        try:
            self.launcher.launch(stream.stream_id)
        except ReelayError as exc:
            result.errors.append(f"launch {stream.stream_id}: {exc.message}")
        else:
            result.started.append(stream.stream_id)

    def _stop_all(self, result: _Pass, stream_id: str, tasks: Iterable[RelayTask], reason: str) -> None:
        for task in tasks:
            try:
                self.launcher.stop(stream_id, task.task_arn)
            except NotFound:
                continue  # already gone: nothing to stop
            except ReelayError as exc:
                result.errors.append(f"stop {task.task_arn}: {exc.message}")
            else:
                result.stopped.append(Stopped(stream_id, task.task_arn, reason))

    def _with_owner(self, stream: ReconciledStream, own: list[RelayTask], now: datetime) -> list[RelayTask]:
        """The stream's tasks, plus the lease holder when ECS did not list it (stop it all the same)."""
        owner = stream.lease_owner if self._lease_live(stream, now) else None
        if owner is None or any(t.task_arn == owner for t in own):
            return own
        return [*own, RelayTask(task_arn=owner, stream_id=stream.stream_id, last_status="UNKNOWN")]

    def _young(self, task: RelayTask, now: datetime) -> bool:
        since = task.started_at or task.created_at
        return since is None or now - _utc(since) < self.start_grace

    @staticmethod
    def _lease_live(stream: ReconciledStream, now: datetime) -> bool:
        return (
            stream.lease_owner is not None
            and stream.lease_expires_at is not None
            and _utc(stream.lease_expires_at) >= now
        )

    def _down(self, stream: ReconciledStream, now: datetime) -> bool:
        """Should run, is not running, and has not been since ``down_after`` or longer."""
        if self._lease_live(stream, now):
            if stream.state == _STATE_RUNNING:
                return False
            since = stream.outage_since or stream.state_since  # an outage a task restart did not end
        else:
            # Nobody holds the stream: down since the lease lapsed, or since it was last changed
            # (started), whichever is later.
            since = max(_utc(t) for t in (stream.lease_expires_at, stream.updated_at) if t is not None)
        return now - _utc(since) > self.down_after

    def _emit(self, report: ReconcileReport) -> None:
        if self.metrics is None:
            return
        counts = {
            METRIC_STREAMS_DOWN: len(report.streams_down),
            METRIC_TASKS_STARTED: len(report.started),
            METRIC_TASKS_STOPPED: len(report.stopped),
            METRIC_RECONCILE_ERRORS: len(report.errors),
        }
        for name, value in counts.items():
            self.metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


__all__ = [
    "METRIC_RECONCILE_ERRORS",
    "METRIC_STREAMS_DOWN",
    "METRIC_TASKS_STARTED",
    "METRIC_TASKS_STOPPED",
    "ReconcileReport",
    "ReconciledStream",
    "Reconciler",
    "RelayLauncher",
    "RelayTask",
    "Stopped",
    "StreamCatalogue",
]
