"""Recording sessions in a given state, for the API's unit tests (fakes behind the real resolver)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, timedelta
from typing import Any

from reelay.models import Rendition, utcnow
from reelay.recording.steps import PermanentStepError
from reelay.recording.sweep import LocalExportLauncher, step_context
from reelay.recording.writer import SessionWriter
from reelay.wiring import Services

SOURCE = Rendition(name="source", bandwidth=0, codecs="avc1.640028", playlist="source/index.m3u8")


class InstantExports(LocalExportLauncher):
    """The local export workflow (its real steps, on the caller's thread) with its ``ExportMp4Range``
    step standing in for the GStreamer child / ECS task: it writes what ``transcoder.export`` writes
    (the MP4 object, with its duration in metadata), or fails with ``reason`` as the child does.
    The real export runs in the integration and e2e tests."""

    def __init__(self, svc: Services, reason: str | None = None) -> None:
        super().__init__(replace(step_context(svc), export=self._export), background=False)
        self.reason = reason
        self.launched: list[dict[str, Any]] = []

    def launch(self, state: dict[str, Any]) -> str:
        self.launched.append(state)
        return super().launch(state)

    def _export(self, state: dict[str, Any]) -> dict[str, Any]:
        if self.reason is not None:
            raise PermanentStepError(self.reason)
        seconds = state["exportEnd"] - state["exportStart"]
        meta = {"duration-ms": str(round(seconds * 1000)), "segments": "1"}
        self.ctx.media_store.put_bytes(state["mp4Key"], b"\0" * 1234, content_type="video/mp4", metadata=meta)
        return state


class RecordedStarts:
    """A WorkflowStarter standing in for Step Functions: records each start."""

    def __init__(self) -> None:
        self.starts: list[tuple[str, str]] = []

    def start(self, session_id: str, *, mode: str, mp4: bool, execution_name: str) -> str:
        self.starts.append((session_id, mode))
        return f"execution-{execution_name}"


def install(svc: Services, *, exports: Any = None, starter: Any = None) -> tuple[Any, Any]:
    exports = exports if exports is not None else InstantExports(svc)
    starter = starter if starter is not None else RecordedStarts()
    svc.__dict__["export_launcher"] = exports
    svc.__dict__["recording_starter"] = starter
    svc.__dict__.pop("recordings", None)
    return exports, starter


def live_session(svc: Services, stream_id: str, segments: int = 3) -> str:
    """A session recording now, with ``segments`` 2 s segments in the media store."""
    writer = SessionWriter(svc.store, svc.catalogue, stream_id, "writer-1", [SOURCE], segment_ms=2000)
    session, _ = writer.start()
    start_ms = int(session.started_at.replace(tzinfo=UTC).timestamp() * 1000)
    for n in range(segments):
        writer.segment("source", b"\x47" * 188, duration_ms=2000, pdt_ms=start_ms + n * 2000)
    for m in writer._manifests.values():
        m.flush()
    return session.session_id


def ready_session(svc: Services, stream_id: str, duration: float = 10.0) -> tuple[str, str]:
    """A finalized session: (session id, video id)."""
    cat: Any = svc.catalogue
    began = utcnow() - timedelta(hours=1)  # older than any live session of the same test
    session, _ = cat.start_recording_session(stream_id, "writer-1", renditions=[SOURCE], now=began)
    cat.end_recording_session(session.session_id, now=began + timedelta(seconds=duration))
    assert cat.begin_recording_workflow(session.session_id, "exec-1")
    video_id = f"rec-{session.session_id}"
    assert cat.complete_recording_session(
        session.session_id,
        "exec-1",
        video_id=video_id,
        duration_seconds=duration,
        renditions=[SOURCE],
        discontinuities=0,
    )
    return session.session_id, video_id
