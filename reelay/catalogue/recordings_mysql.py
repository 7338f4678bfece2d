"""Recording sessions on MySQL (a mixin of ``MySQLCatalogue``).

Each method is one transaction: it locks the rows it reads (``FOR UPDATE``), applies the shared rule
from ``reelay.catalogue._recordings`` and writes the result with its outbox events. The clock is the
database server's, as for leases.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from pymysql.connections import Connection

from reelay.catalogue import _recordings as rules
from reelay.catalogue._common import check_limit, decode_cursor, encode_cursor, event_row, to_db_time
from reelay.errors import Conflict, NotFound
from reelay.models import RecordingSession, RecordingState, Rendition
from reelay.ports import SessionPage

T = TypeVar("T")

_FIELDS = {
    "session_id": "sessionId",
    "stream_id": "streamId",
    "state": "state",
    "writers": "writers",
    "store_url": "storeUrl",
    "store_ref": "storeRef",
    "store_secret": "storeSecret",
    "store_source": "storeSource",
    "store_fallback": "storeFallback",
    "reconnect_window_seconds": "reconnectWindowSeconds",
    "started_at": "startedAt",
    "ended_at": "endedAt",
    "end_reason": "endReason",
    "last_segment_at": "lastSegmentAt",
    "heartbeat_at": "heartbeatAt",
    "renditions": "renditions",
    "discontinuities": "discontinuities",
    "duration_seconds": "durationSeconds",
    "video_id": "videoId",
    "failure_reason": "failureReason",
    "workflow_state": "workflowState",
    "execution_id": "executionId",
    "created_at": "createdAt",
    "updated_at": "updatedAt",
}
_SELECT = f"SELECT {', '.join(_FIELDS.values())} FROM recording_sessions"


def _row(s: RecordingSession) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, column in _FIELDS.items():
        value = getattr(s, field)
        if field == "writers":
            value = json.dumps(value)
        elif field == "renditions":
            value = json.dumps([r.model_dump() for r in value])
        elif field == "state":
            value = value.value
        elif isinstance(value, datetime):
            value = to_db_time(value)
        out[column] = value
    return out


def _session(row: dict[str, Any]) -> RecordingSession:
    data = {field: row[column] for field, column in _FIELDS.items()}
    data["writers"] = json.loads(data["writers"] or "[]")
    data["renditions"] = [Rendition(**r) for r in json.loads(data["renditions"] or "[]")]
    data["store_ref"] = data["store_ref"] or "default"
    data["store_source"] = data["store_source"] or "default"
    if data["reconnect_window_seconds"] is None:
        data["reconnect_window_seconds"] = rules.DEFAULT_RECONNECT_WINDOW
    data["discontinuities"] = data["discontinuities"] or 0
    return RecordingSession(**data)


class MySQLRecordings:
    """Needs the host's ``_run`` (one transaction) and ``insert_event``."""

    _run: Callable[[Callable[[Connection], Any]], Any]

    @staticmethod
    def _now(conn: Connection) -> datetime:
        with conn.cursor() as cur:
            cur.execute("SELECT UTC_TIMESTAMP(3) AS now")
            return cur.fetchone()["now"]

    @staticmethod
    def _fetch(
        conn: Connection, where: str, args: tuple[Any, ...], lock: bool = False
    ) -> list[RecordingSession]:
        with conn.cursor() as cur:
            cur.execute(f"{_SELECT} WHERE {where}{' FOR UPDATE' if lock else ''}", args)
            return [_session(r) for r in cur.fetchall()]

    def _apply(self, conn: Connection, change: rules.Change) -> bool:
        from reelay.catalogue.mysql import insert_event

        stored = [event_row(e, None, e.subject) for e in change.events]
        for s in change.rows:
            row = _row(s)
            cols = ", ".join(row)
            updates = ", ".join(f"{c} = VALUES({c})" for c in row if c != "sessionId")
            with conn.cursor() as cur:
                cur.execute(
                    f"INSERT INTO recording_sessions ({cols}) VALUES ({', '.join(['%s'] * len(row))})"
                    f" ON DUPLICATE KEY UPDATE {updates}",
                    tuple(row.values()),
                )
        for event, row_ in zip(change.events, stored, strict=True):
            insert_event(conn, row_, video_id=None, subject=event.subject)
        return change.changed

    def _locked(
        self,
        session_id: str,
        decide: Callable[[RecordingSession, datetime], rules.Change],
        now: datetime | None = None,
    ) -> bool:
        def work(conn: Connection) -> bool:
            found = self._fetch(conn, "sessionId = %s", (session_id,), lock=True)
            if not found:
                raise NotFound(f"recording session {session_id} not found")
            return self._apply(conn, decide(found[0], now or self._now(conn)))

        if not isinstance(session_id, str) or not session_id or len(session_id) > 64:
            raise NotFound(f"recording session {session_id} not found")
        return bool(self._run(work))

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
        def work(conn: Connection) -> tuple[RecordingSession, bool]:
            if session_id is not None and self._fetch(conn, "sessionId = %s", (session_id,)):
                raise Conflict(f"recording session {session_id} already exists")
            # Locking the stream's recording rows serialises two writers starting at once.
            recording = self._fetch(
                conn,
                "streamId = %s AND state = 'recording' ORDER BY startedAt DESC, sessionId DESC",
                (stream_id,),
                lock=True,
            )
            change, session, continued = rules.start(
                recording[0] if recording else None,
                stream_id=stream_id,
                writer_id=writer_id,
                now=now or self._now(conn),
                window=reconnect_window_seconds,
                session_id=session_id,
                store_url=store_url,
                store_ref=store_ref,
                renditions=renditions,
                store_secret=store_secret,
                store_source=store_source,
                store_fallback=store_fallback,
            )
            self._apply(conn, change)
            return session, continued

        return self._run(work)

    def heartbeat_recording_session(
        self,
        session_id: str,
        writer_id: str,
        *,
        media_at: datetime | None = None,
        now: datetime | None = None,
    ) -> bool:
        return self._locked(session_id, lambda s, at: rules.heartbeat(s, writer_id, at, media_at), now)

    def end_recording_session(
        self, session_id: str, *, reason: str = "stopped", now: datetime | None = None
    ) -> bool:
        return self._locked(session_id, lambda s, at: rules.end(s, at, reason), now)

    def get_recording_session(self, session_id: str) -> RecordingSession:
        found = (
            self._run(lambda conn: self._fetch(conn, "sessionId = %s", (session_id,)))
            if isinstance(session_id, str) and len(session_id) <= 64
            else []
        )
        if not found:
            raise NotFound(f"recording session {session_id} not found")
        return found[0]

    def list_recording_sessions(self, stream_id: str, *, limit: int = 100) -> list[RecordingSession]:
        check_limit(limit)
        return self._run(
            lambda conn: self._fetch(
                conn, "streamId = %s ORDER BY startedAt DESC, sessionId DESC LIMIT %s", (stream_id, limit)
            )
        )

    def list_recording_sessions_page(
        self, stream_id: str, *, limit: int, cursor: str | None = None
    ) -> SessionPage:
        check_limit(limit)
        where = "streamId = %s"
        args: list[Any] = [stream_id]
        if cursor is not None:
            started, session_id = decode_cursor(cursor)
            where += " AND (startedAt < %s OR (startedAt = %s AND sessionId < %s))"
            args += [started, started, session_id]
        sql = f"{where} ORDER BY startedAt DESC, sessionId DESC LIMIT %s"
        items = self._run(lambda conn: self._fetch(conn, sql, (*args, limit + 1)))
        if len(items) > limit:
            items = items[:limit]
            return SessionPage(items, encode_cursor(items[-1].started_at, items[-1].session_id))
        return SessionPage(items, None)

    def recording_sessions_past_retention(self, now: datetime | None = None) -> list[RecordingSession]:
        states = tuple(s.value for s in rules.EXPIRABLE)

        def work(conn: Connection) -> list[RecordingSession]:
            at = to_db_time(now) if now is not None else self._now(conn)
            where = (
                f"state IN ({', '.join(['%s'] * len(states))}) AND streamId IN"
                " (SELECT streamId FROM streams WHERE retentionDays IS NOT NULL)"
                " AND COALESCE(endedAt, startedAt) < DATE_SUB(%s, INTERVAL"
                " (SELECT r.retentionDays FROM streams r"
                " WHERE r.streamId = recording_sessions.streamId) DAY)"
                " ORDER BY sessionId"
            )
            return self._fetch(conn, where, (*states, at))

        return self._run(work)

    def expire_recording_session(self, session_id: str, *, now: datetime | None = None) -> bool:
        return self._locked(session_id, lambda s, at: rules.expire(s, at), now)

    def stale_recording_sessions(self, now: datetime | None = None) -> list[RecordingSession]:
        def work(conn: Connection) -> list[RecordingSession]:
            at = now or self._now(conn)
            # The index narrows to recording rows; the per-session window is applied by the shared rule.
            rows = self._fetch(conn, "state = 'recording' ORDER BY sessionId", ())
            return [s for s in rows if rules.is_stale(s, at)]

        return self._run(work)

    def ended_recording_sessions(self) -> list[RecordingSession]:
        return self._run(
            lambda conn: self._fetch(conn, "state = %s ORDER BY sessionId", (RecordingState.ENDED.value,))
        )

    def begin_recording_workflow(
        self, session_id: str, execution_id: str, *, mode: str = "finalize", now: datetime | None = None
    ) -> bool:
        return self._locked(session_id, lambda s, at: rules.begin_workflow(s, execution_id, at, mode), now)

    def set_recording_workflow_state(self, session_id: str, execution_id: str, workflow_state: str) -> bool:
        return self._locked(session_id, lambda s, at: rules.step(s, execution_id, workflow_state, at))

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
        return self._locked(
            session_id,
            lambda s, at: rules.complete(
                s,
                execution_id=execution_id,
                video_id=video_id,
                duration_seconds=duration_seconds,
                renditions=renditions,
                discontinuities=discontinuities,
                now=at,
            ),
        )

    def fail_recording_session(
        self, session_id: str, reason: str, *, execution_id: str | None = None
    ) -> bool:
        return self._locked(session_id, lambda s, at: rules.fail(s, reason, at, execution_id))
