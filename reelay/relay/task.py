"""One relay task: one stream, from claiming its lease to releasing it.

The task (an ECS task in AWS, a child process under ``make up``) claims the stream's fenced lease,
writes kvssink's credential file from the task role and keeps it fresh, runs the supervisor, and
keeps the lease alive with every beat carrying the supervisor's health. It ends when it is told to
stop (SIGTERM), when the stream is stopped or deleted, or when the lease is lost: then the pipeline
drains (kvssink sends its last fragment) and the lease is released.

A stream that records gets a ``Recorder`` (``make_recorder``) whose branch rides in every pipeline the
supervisor builds. The lease beat also beats the recording session's heartbeat and ends the session
once the source has been down longer than the reconnect window. At the end, the session ends when the
stream was stopped or deleted; when the task merely goes away (SIGTERM, a lost lease), the session
stays open for the next task to continue within the window, or for the stale-session sweep's fixup.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from reelay.errors import NotFound
from reelay.lease import LeaseKeeper
from reelay.models import DesiredState, Stream, StreamHealth, StreamState
from reelay.observability import METRICS_NAMESPACE
from reelay.ports import StreamCatalogue
from reelay.relay.credentials import CredentialFile, CredentialProvider
from reelay.relay.pipelines import RecordingSpec, SourceSpec
from reelay.relay.slate import SlateSpec
from reelay.relay.supervisor import (
    KVS_UNREACHABLE,
    RECONNECTING,
    RUNNING,
    RelayHealth,
    RelayPolicy,
    SinkFactory,
    Supervisor,
)

if TYPE_CHECKING:
    from reelay.recording.recorder import Recorder

log = logging.getLogger(__name__)

_STATES = {
    "starting": StreamState.STARTING,
    "running": StreamState.RUNNING,
    "reconnecting": StreamState.RECONNECTING,
    "stopping": StreamState.STOPPING,
    "stopped": StreamState.STOPPED,
}


@dataclass(frozen=True)
class RelayTaskConfig:
    lease_seconds: int = 20
    metrics_seconds: float = 60.0
    claim_retry_seconds: float = 2.0
    # A safety net: after this many rebuilds the task starts afresh in the same process (exec) during
    # an outage, keeping its lease. 0: never. Rebuilds used to leak whole pipelines (~370 kB each); since
    # they are freed (see Supervisor._teardown) the relay bench measures a few kB per rebuild.
    recycle_after_rebuilds: int = 500
    policy: RelayPolicy = field(default_factory=RelayPolicy)
    recorder_close_seconds: float = 30.0  # at the end, how long the spool may take to reach the store
    # Transcode mode: a slate to KVS while the source is down (None: off). See reelay.relay.slate.
    slate: SlateSpec | None = field(default_factory=SlateSpec)


def kvssink_factory(*, stream_name: str, region: str, credential_path: Path) -> SinkFactory:
    """Sinks for one stream: a new kvssink per pipeline, its acks and fatal errors wired in."""
    from reelay.relay import kvssink

    def make(on_ack: Callable[[kvssink.Ack], None], on_fatal: Callable[[str], None]):  # type: ignore[no-untyped-def]
        element = kvssink.make_kvssink(
            stream_name=stream_name, region=region, credential_path=credential_path
        )
        kvssink.connect_acks(element, on_ack)
        kvssink.connect_stream_error(element, lambda status: on_fatal(f"kvssink stream error 0x{status:08x}"))
        return element

    return make


def _utc(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch is not None else None


class RelayTask:
    def __init__(
        self,
        catalogue: StreamCatalogue,
        stream_id: str,
        task_id: str,
        *,
        reveal_source: Callable[[Stream], str],
        make_sink: Callable[[Stream], SinkFactory | None],  # None: the stream does not relay to KVS
        credentials: CredentialFile | None = None,
        check_source: Callable[[str], None] | None = None,
        config: RelayTaskConfig | None = None,
        metrics: Metrics | None = None,
        make_recorder: Callable[[Stream], Recorder] | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.stream_id = stream_id
        self.task_id = task_id
        self.reveal_source = reveal_source
        self.make_sink = make_sink
        self.credentials = credentials
        self.check_source = check_source
        self.config = config or RelayTaskConfig()
        self.metrics = metrics or Metrics(namespace=METRICS_NAMESPACE, service="relay")
        self.make_recorder = make_recorder  # for streams that record
        self.recorder: Recorder | None = None
        self.supervisor: Supervisor | None = None
        self.token: int | None = None
        self.ended_because = ""
        self.recycle = False  # run() ended to start afresh: the caller re-executes, the lease is kept
        self._done = threading.Event()
        self._last_emitted = {
            "reconnects": 0, "persisted": 0, "errors": 0, "written": 0, "dropped": 0, "frames": 0,
            "slate": 0,
        }  # fmt: skip
        self._outage_seconds_emitted = 0.0

    def stop(self, reason: str = "asked to stop") -> None:
        """Thread-safe (and signal-safe): the task drains and releases its lease."""
        if not self._done.is_set():
            self.ended_because = self.ended_because or reason
        self._done.set()

    def run(self) -> int:
        ids = {"streamId": self.stream_id, "taskId": self.task_id}
        token = self._claim()
        if token is None:
            log.info("the stream is stopped, gone or relayed by another task: nothing to do", extra=ids)
            return 0
        self.token = token
        stream = self.catalogue.get_stream(self.stream_id)
        log.info(
            "relay task claimed its stream",
            extra={**ids, "token": token, "kvsStream": stream.kvs_stream_name},
        )
        stop_credentials = threading.Event()
        if self.credentials is not None:
            self.credentials.write_now()  # kvssink reads the file when it starts
            threading.Thread(
                target=self.credentials.run, args=(stop_credentials,), name="kvs-credentials", daemon=True
            ).start()
        recording: RecordingSpec | None = None
        make_sink = self.make_sink(stream)
        if make_sink is None and (not stream.record_enabled or self.make_recorder is None):
            log.error("the stream neither relays to KVS nor records here: nothing to do", extra=ids)
            self.catalogue.release_stream_lease(self.stream_id, self.task_id, token)
            return 0
        if stream.record_enabled and self.make_recorder is not None:
            self.recorder = self.make_recorder(stream)
            recording = RecordingSpec(
                self.recorder,
                self.recorder.spool_dir,
                segment_seconds=self.recorder.writer.segment_ms / 1000,
                renditions=self.recorder.encoded,  # encoded rungs beside the source (none: passthrough only)
                x264_preset=self.recorder.x264_preset,
            )
        supervisor = Supervisor(
            SourceSpec(url=self.reveal_source(stream), video=str(stream.video_mode.value)),
            make_sink,
            recording=recording,
            policy=self.config.policy,
            check_source=self.check_source,
            slate=self.config.slate,
        )
        self.supervisor = supervisor
        loop = threading.Thread(target=supervisor.run, name="relay-loop", daemon=True)
        loop.start()

        keeper = LeaseKeeper(
            self._beat,
            every=max(1.0, self.config.lease_seconds / 4),
            # Failed renewals for most of a lease: another task may claim soon, so stop first.
            expire_after=self.config.lease_seconds * 0.75,
            on_lost=lambda: self.stop("the lease was lost, or the stream was stopped or deleted"),
            snapshot=lambda: (supervisor.health().state, supervisor.health().outage_cause),
            name="relay-lease",
        ).start()
        last_metrics = time.monotonic()
        try:
            while not self._done.wait(1.0):
                if not loop.is_alive():
                    self.stop("the supervisor loop ended")
                if self._due_for_recycling(supervisor.health()):
                    self.recycle = True
                    self.stop(f"recycling after {supervisor.health().pipelines_built} pipelines")
                if time.monotonic() - last_metrics >= self.config.metrics_seconds:
                    self._emit_metrics()
                    last_metrics = time.monotonic()
        finally:
            keeper.stop()
            supervisor.stop()
            loop.join(self.config.policy.stop_seconds + 10)
            stop_credentials.set()
            self._finish_recording()
            self._emit_metrics()
            # A recycling task keeps its lease: the same task id re-claims it at once after exec.
            released = not self.recycle and self.catalogue.release_stream_lease(
                self.stream_id, self.task_id, token
            )
            log.info(
                "relay task ended",
                extra={**ids, "reason": self.ended_because, "leaseReleased": released},
            )
        return 0

    def _due_for_recycling(self, health: RelayHealth) -> bool:
        """Only during an outage, when the feed is down anyway, and only after enough rebuilds."""
        limit = self.config.recycle_after_rebuilds
        return bool(limit) and health.pipelines_built > limit and health.state == RECONNECTING

    def _claim(self) -> int | None:
        """Claim the lease, waiting out a dead predecessor's: a replacement task is launched while
        the lease of the task it replaces may still run. Gives up when the stream no longer wants a
        task, when stopped, or after a lease and a half."""
        deadline = time.monotonic() + self.config.lease_seconds * 1.5
        while True:
            token = self.catalogue.claim_stream_lease(self.stream_id, self.task_id, self.config.lease_seconds)
            if token is not None:
                return token
            try:
                stream = self.catalogue.get_stream(self.stream_id)
            except NotFound:
                return None
            if stream.desired_state != DesiredState.RUNNING or stream.deleted_at is not None:
                return None
            if time.monotonic() > deadline or self._done.wait(self.config.claim_retry_seconds):
                return None

    def _finish_recording(self) -> None:
        recorder = self.recorder
        if recorder is None:
            return
        try:
            stream = self.catalogue.get_stream(self.stream_id)
            stopped = stream.desired_state != DesiredState.RUNNING or stream.deleted_at is not None
        except NotFound:
            stopped = True
        except Exception:  # the catalogue is down: leave the session to the next task or the sweep
            log.exception("could not read the stream at the end; the recording session stays open")
            stopped = False
        if stopped:
            recorder.end("stopped")
        if not recorder.close(self.config.recorder_close_seconds):
            log.error(
                "recording segments still waiting for the store at the end",
                extra={"streamId": self.stream_id, "pending": recorder.health().pending},
            )

    # --- the lease beat -----------------------------------------------------------------------
    def _beat(self) -> bool:
        assert self.token is not None and self.supervisor is not None
        if not self.catalogue.renew_stream_lease(
            self.stream_id, self.task_id, self.token, self.config.lease_seconds
        ):
            return False
        if self.recorder is not None:
            self._beat_recording(self.recorder, self.supervisor.health())
        return self.catalogue.report_stream_health(self.stream_id, self.token, self.stream_health())

    def _beat_recording(self, recorder: Recorder, h: RelayHealth) -> None:
        # KVS being unreachable is not the source being down: media still flows into the recording.
        source_down = h.outage_since is not None and h.outage_cause != KVS_UNREACHABLE
        if source_down and not h.media_flowing:
            recorder.source_down(time.time() - (h.outage_since or time.time()))
        recorder.heartbeat()

    def stream_health(self) -> StreamHealth:
        assert self.supervisor is not None
        h = self.supervisor.health()
        return StreamHealth(
            state=_STATES.get(h.state, StreamState.RECONNECTING),
            outage_cause=h.outage_cause,
            outage_since=_utc(h.outage_since),
            reconnects=h.reconnects,
            input_bitrate_bps=h.input_bitrate_bps,
            last_fragment_number=h.last_fragment_number,
            last_fragment_timecode=h.last_ack_timecode_ms,
            last_fragment_ack_at=_utc(h.last_ack_at),
            credentials_expire_at=self.credentials.expires_at if self.credentials else None,
            slate_since=_utc(h.slate_since),
            slate_fragments_persisted=h.slate_fragments_persisted,
        )

    # --- metrics ------------------------------------------------------------------------------
    def _emit_metrics(self) -> None:
        if self.supervisor is None:
            return
        h = self.supervisor.health()
        m = self.metrics
        m.add_dimension(name="StreamId", value=self.stream_id)
        m.add_metric(name="StreamUp", unit=MetricUnit.Count, value=1 if h.state == RUNNING else 0)
        m.add_metric(
            name="Reconnects", unit=MetricUnit.Count, value=h.reconnects - self._last_emitted["reconnects"]
        )
        m.add_metric(name="OutageSeconds", unit=MetricUnit.Seconds, value=self._outage_seconds(h))
        m.add_metric(name="InputBitrate", unit=MetricUnit.BitsPerSecond, value=h.input_bitrate_bps)
        m.add_metric(
            name="FragmentsPersisted",
            unit=MetricUnit.Count,
            value=h.fragments_persisted - self._last_emitted["persisted"],
        )
        m.add_metric(
            name="FragmentErrors",
            unit=MetricUnit.Count,
            value=h.fragment_errors - self._last_emitted["errors"],
        )
        # Fragments of the slate are in FragmentsPersisted too (KVS stored them): these say how many.
        m.add_metric(
            name="SlateFragmentsPersisted",
            unit=MetricUnit.Count,
            value=h.slate_fragments_persisted - self._last_emitted["slate"],
        )
        m.add_metric(name="SlateOn", unit=MetricUnit.Count, value=1 if h.slate else 0)
        if self.credentials is not None and self.credentials.expires_at is not None:
            left = (self.credentials.expires_at - datetime.now(UTC)).total_seconds()
            m.add_metric(name="CredentialSecondsLeft", unit=MetricUnit.Seconds, value=max(0.0, left))
        last = {
            "reconnects": h.reconnects, "persisted": h.fragments_persisted, "errors": h.fragment_errors,
            "slate": h.slate_fragments_persisted,
        }  # fmt: skip
        if self.recorder is not None:
            r = self.recorder.health()
            m.add_metric(
                name="SegmentsWritten",
                unit=MetricUnit.Count,
                value=r.segments_written - self._last_emitted["written"],
            )
            m.add_metric(
                name="SegmentsDropped",
                unit=MetricUnit.Count,
                value=r.segments_dropped - self._last_emitted["dropped"],
            )
            m.add_metric(name="SpoolBytes", unit=MetricUnit.Bytes, value=r.spool_bytes)
            if self.recorder.encoded:  # frames the encoded renditions lost to encoders that fell behind
                m.add_metric(
                    name="RecordingFramesDropped",
                    unit=MetricUnit.Count,
                    value=r.frames_dropped - self._last_emitted["frames"],
                )
            last |= {"written": r.segments_written, "dropped": r.segments_dropped, "frames": r.frames_dropped}
            log.info("recording health", extra={"streamId": self.stream_id, "recording": asdict(r)})
        self._last_emitted = {**self._last_emitted, **last}
        m.flush_metrics()

    def _outage_seconds(self, h: RelayHealth) -> float:
        """Seconds of outage since the last emission: closed outages plus the open one so far."""
        total = h.outage_seconds_closed
        if h.outage_since is not None:
            total += max(0.0, time.time() - h.outage_since)
        seconds = max(0.0, total - self._outage_seconds_emitted)
        self._outage_seconds_emitted = total
        return seconds


__all__ = ["CredentialProvider", "RelayTask", "RelayTaskConfig", "kvssink_factory"]
