"""The scheduled sweep: start fixup for stale sessions and finalize for ended ones.

EventBridge runs it every minute in AWS (``lambdas/recording_sweep``), the local platform's
``recording-sweep`` row runs the same handler. Each start is idempotent: in AWS the execution is named
after the session and mode, and Step Functions answers a repeated start of a running execution with
that execution; the workflow's ``Begin`` takes the session under one execution only.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Protocol

from reelay.observability import logger
from reelay.recording.runner import WorkflowRunner
from reelay.recording.steps import State, StepContext
from reelay.recording.workflow import RECORDING_EXPORT_WORKFLOW


class WorkflowStarter(Protocol):
    def start(self, session_id: str, *, mode: str, mp4: bool, execution_name: str) -> str:
        """Start the recording workflow for a session; returns the execution id."""
        ...


def execution_name(mode: str, session_id: str, attempt: str | None = None) -> str:
    """Step Functions execution names: 1-80 of [A-Za-z0-9-_]."""
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in session_id)
    return (f"{mode}-{safe}" + (f"-{attempt}" if attempt else ""))[:80]


class LocalStarter:
    """Runs the workflow in-process, to its end, on the caller's thread (the local platform)."""

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx
        self.last: State | None = None

    def start(self, session_id: str, *, mode: str, mp4: bool, execution_name: str) -> str:
        execution = f"local-{execution_name}-{uuid.uuid4().hex[:8]}"
        self.last = WorkflowRunner(self.ctx).start(session_id, mode=mode, mp4=mp4, execution_id=execution)
        return execution


class BackgroundStarter:
    """A ``LocalStarter`` whose run goes on in a daemon thread: for the API, which answers 202 at once
    (the local platform's stand-in for StartExecution). A run racing the sweep's is safe: ``Begin``
    lets one execution take the session, and the other ends without touching it."""

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx

    def start(self, session_id: str, *, mode: str, mp4: bool, execution_name: str) -> str:
        import threading

        execution = f"local-{execution_name}-{uuid.uuid4().hex[:8]}"

        def run() -> None:
            try:
                WorkflowRunner(self.ctx).start(session_id, mode=mode, mp4=mp4, execution_id=execution)
            except Exception:
                logger.exception("recording workflow crashed", extra={"sessionId": session_id})

        threading.Thread(target=run, name=f"recording-{mode}", daemon=True).start()
        return execution


class LocalExportLauncher:
    """The local platform's ``ExportLauncher``: the export workflow (``RECORDING_EXPORT_WORKFLOW``, the
    definition Step Functions runs in AWS) on the local runner, in a daemon thread (the API answers
    202 at once); ``background=False`` runs it on the caller's thread. Its ``ExportMp4Range`` step runs
    the ECS task's entry point as a child process (``StepContext.export``)."""

    def __init__(self, ctx: StepContext, *, background: bool = True) -> None:
        self.ctx = ctx
        self.background = background

    def launch(self, state: State) -> str:
        import threading

        execution = f"local-export-{state['exportId']}"
        runner = WorkflowRunner(self.ctx, workflow=RECORDING_EXPORT_WORKFLOW)

        def run() -> None:
            try:
                runner.run(dict(state))
            except Exception:  # the catch step itself failed (the store is down): the record stays running
                logger.exception("recording export workflow crashed", extra={"exportId": state["exportId"]})

        if not self.background:
            run()
        else:
            threading.Thread(target=run, name="recording-export", daemon=True).start()
        return execution


def sweep(
    catalogue: Any, starter: WorkflowStarter, *, mp4: bool = False, now: datetime | None = None
) -> dict:
    """Start what is due; returns what was started. A start that fails is logged and left for the next
    sweep (the session's state did not change)."""
    started: dict[str, list[str]] = {"fixup": [], "finalize": []}
    due = [("fixup", s) for s in catalogue.stale_recording_sessions(now)]
    due += [("finalize", s) for s in catalogue.ended_recording_sessions()]
    for mode, session in due:
        try:
            starter.start(
                session.session_id,
                mode=mode,
                mp4=mp4,
                execution_name=execution_name(mode, session.session_id),
            )
        except Exception as exc:
            logger.error(
                "recording workflow not started",
                extra={"sessionId": session.session_id, "mode": mode, "error": str(exc)},
            )
            continue
        started[mode].append(session.session_id)
    return started


def trigger(
    catalogue: Any,
    starter: WorkflowStarter,
    session_id: str,
    *,
    mp4: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Finalize one session by hand (the API's "finalize now"), idempotently.

    A ready session is left alone (its video id is answered); a session still recording with a live
    writer is a Conflict; a stale one is fixed up; an ended or failed one finalized. A failed session
    gets a fresh execution name (Step Functions keeps names for 90 days)."""
    from reelay.catalogue._recordings import is_stale
    from reelay.errors import Conflict
    from reelay.models import RecordingState, utcnow

    session = catalogue.get_recording_session(session_id)
    if session.state == RecordingState.READY:
        return {
            "sessionId": session_id,
            "state": session.state.value,
            "videoId": session.video_id,
            "started": False,
        }
    if session.state == RecordingState.FINALIZING:
        return {"sessionId": session_id, "state": session.state.value, "started": False}
    if session.state == RecordingState.RECORDING and not is_stale(session, now or utcnow()):
        raise Conflict(f"session {session_id} is still recording; stop the stream first")
    mode = "fixup" if session.state == RecordingState.RECORDING else "finalize"
    attempt = uuid.uuid4().hex[:8] if session.state == RecordingState.FAILED else None
    execution = starter.start(
        session_id, mode=mode, mp4=mp4, execution_name=execution_name(mode, session_id, attempt)
    )
    return {
        "sessionId": session_id,
        "state": "finalizing",
        "mode": mode,
        "execution": execution,
        "started": True,
    }


def step_context(services: Any) -> StepContext:
    """The steps' context from the process's ``reelay.wiring.Services``."""
    from reelay.events import OutboxSweep
    from reelay.recording.resolver import resolver_for
    from reelay.recording.steps import subprocess_exporter

    settings = services.settings
    outbox = OutboxSweep(services.catalogue, services.events)

    def flush(subject: str) -> None:
        outbox.flush_quietly(subject=subject)

    return StepContext(
        catalogue=services.catalogue,
        media_store=services.store,
        output_prefix=settings.output_prefix,
        segment_seconds=settings.segment_seconds,
        export=subprocess_exporter(),
        flush_events=flush,
        open_store=resolver_for(services),
    )
