"""Recording sessions in the in-memory catalogue (a mixin of ``MemoryCatalogue``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from reelay.catalogue import _recordings as rules
from reelay.catalogue._common import check_limit, decode_cursor, encode_cursor, event_row, to_db_time
from reelay.errors import Conflict, NotFound
from reelay.models import RecordingSession, RecordingState, Rendition
from reelay.ports import SessionPage


class MemoryRecordings:
    """Needs the host's ``_lock``, ``_clock`` and ``_record`` (the outbox)."""

    _lock: Any
    _clock: Callable[[], datetime]
    _record: Callable[..., None]

    @property
    def _sessions(self) -> dict[str, RecordingSession]:
        store = self.__dict__.get("_recording_sessions")
        if store is None:
            store = self.__dict__["_recording_sessions"] = {}
        return store

    def _apply(self, change: rules.Change) -> bool:
        stored = [event_row(e, None, e.subject) for e in change.events]  # checked before any write
        for row in change.rows:
            self._sessions[row.session_id] = row.model_copy(deep=True)
        for event, stored_row in zip(change.events, stored, strict=True):
            self._record(None, stored_row, event.subject)
        return change.changed

    def _session(self, session_id: str) -> RecordingSession:
        found = self._sessions.get(session_id) if isinstance(session_id, str) else None
        if found is None:
            raise NotFound(f"recording session {session_id} not found")
        return found

    def start_recording_session(
        self,
        stream_id: str,
        writer_id: str,
        *,
        reconnect_window_seconds: int = rules.DEFAULT_RECONNECT_WINDOW,
        store_url: str | None = None,
        store_ref: str = "default",
        renditions: Sequence[Rendition] = (),
        session_id: str | None = None,
        store_secret: str | None = None,
        store_source: str = "default",
        store_fallback: str | None = None,
        now: datetime | None = None,
    ) -> tuple[RecordingSession, bool]:
        with self._lock:
            if session_id is not None and session_id in self._sessions:
                raise Conflict(f"recording session {session_id} already exists")
            recording = [
                s
                for s in self._sessions.values()
                if s.stream_id == stream_id and s.state == RecordingState.RECORDING
            ]
            latest = max(recording, key=lambda s: (s.started_at, s.session_id), default=None)
            change, session, continued = rules.start(
                latest,
                stream_id=stream_id,
                writer_id=writer_id,
                now=now or self._clock(),
                window=reconnect_window_seconds,
                session_id=session_id,
                store_url=store_url,
                store_ref=store_ref,
                renditions=renditions,
                store_secret=store_secret,
                store_source=store_source,
                store_fallback=store_fallback,
            )
            self._apply(change)
            return session.model_copy(deep=True), continued

    def heartbeat_recording_session(
        self,
        session_id: str,
        writer_id: str,
        *,
        media_at: datetime | None = None,
        now: datetime | None = None,
    ) -> bool:
        with self._lock:
            return self._apply(
                rules.heartbeat(self._session(session_id), writer_id, now or self._clock(), media_at)
            )

    def end_recording_session(
        self, session_id: str, *, reason: str = "stopped", now: datetime | None = None
    ) -> bool:
        with self._lock:
            return self._apply(rules.end(self._session(session_id), now or self._clock(), reason))

    def get_recording_session(self, session_id: str) -> RecordingSession:
        with self._lock:
            return self._session(session_id).model_copy(deep=True)

    def list_recording_sessions(self, stream_id: str, *, limit: int = 100) -> list[RecordingSession]:
        check_limit(limit)
        with self._lock:
            found = [s for s in self._sessions.values() if s.stream_id == stream_id]
            found.sort(key=lambda s: (s.started_at, s.session_id), reverse=True)
            return [s.model_copy(deep=True) for s in found[:limit]]

    def list_recording_sessions_page(
        self, stream_id: str, *, limit: int, cursor: str | None = None
    ) -> SessionPage:
        check_limit(limit)
        after = decode_cursor(cursor) if cursor is not None else None
        with self._lock:
            found = [s for s in self._sessions.values() if s.stream_id == stream_id]
        found.sort(key=lambda s: (s.started_at, s.session_id), reverse=True)
        if after is not None:
            found = [s for s in found if (s.started_at, s.session_id) < after]
        items = [s.model_copy(deep=True) for s in found[: limit + 1]]
        if len(items) > limit:
            items = items[:limit]
            return SessionPage(items, encode_cursor(items[-1].started_at, items[-1].session_id))
        return SessionPage(items, None)

    def recording_sessions_past_retention(self, now: datetime | None = None) -> list[RecordingSession]:
        with self._lock:
            at = to_db_time(now or self._clock())
            days = {
                s.stream_id: s.retention_days
                for s in self.__dict__.get("_streams", {}).values()
                if s.retention_days is not None
            }
            return sorted(
                (
                    s.model_copy(deep=True)
                    for s in self._sessions.values()
                    if s.state in rules.EXPIRABLE
                    and s.stream_id in days
                    and (s.ended_at or s.started_at) < at - timedelta(days=days[s.stream_id])
                ),
                key=lambda s: s.session_id,
            )

    def expire_recording_session(self, session_id: str, *, now: datetime | None = None) -> bool:
        with self._lock:
            return self._apply(rules.expire(self._session(session_id), now or self._clock()))

    def stale_recording_sessions(self, now: datetime | None = None) -> list[RecordingSession]:
        with self._lock:
            at = now or self._clock()
            return sorted(
                (s.model_copy(deep=True) for s in self._sessions.values() if rules.is_stale(s, at)),
                key=lambda s: s.session_id,
            )

    def ended_recording_sessions(self) -> list[RecordingSession]:
        with self._lock:
            return sorted(
                (s.model_copy(deep=True) for s in self._sessions.values() if s.state == RecordingState.ENDED),
                key=lambda s: s.session_id,
            )

    def begin_recording_workflow(
        self, session_id: str, execution_id: str, *, mode: str = "finalize", now: datetime | None = None
    ) -> bool:
        with self._lock:
            return self._apply(
                rules.begin_workflow(self._session(session_id), execution_id, now or self._clock(), mode)
            )

    def set_recording_workflow_state(self, session_id: str, execution_id: str, workflow_state: str) -> bool:
        with self._lock:
            return self._apply(
                rules.step(self._session(session_id), execution_id, workflow_state, self._clock())
            )

    def complete_recording_session(
        self,
        session_id: str,
        execution_id: str,
        *,
        video_id: str,
        duration_seconds: float,
        renditions: Sequence[Rendition],
        discontinuities: int,
    ) -> bool:
        with self._lock:
            return self._apply(
                rules.complete(
                    self._session(session_id),
                    execution_id=execution_id,
                    video_id=video_id,
                    duration_seconds=duration_seconds,
                    renditions=renditions,
                    discontinuities=discontinuities,
                    now=self._clock(),
                )
            )

    def fail_recording_session(
        self, session_id: str, reason: str, *, execution_id: str | None = None
    ) -> bool:
        with self._lock:
            return self._apply(rules.fail(self._session(session_id), reason, self._clock(), execution_id))
