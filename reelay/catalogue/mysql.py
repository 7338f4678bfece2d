"""VideoCatalogue on MySQL 8 / MariaDB 10.11. Parameterized SQL; every state change is one
conditional UPDATE whose matched-row count says whether this caller made the transition."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import pymysql
from pymysql.connections import Connection

from reelay.catalogue._common import (
    check_content_type,
    check_description,
    check_display_name,
    check_duration,
    check_lease_seconds,
    check_limit,
    check_size,
    check_video,
    check_worker_id,
    clamp_progress,
    clip_reason,
    decode_cursor,
    encode_cursor,
    event_row,
    is_video_id,
    to_db_time,
)
from reelay.catalogue.connection import ConnectionProvider, error_code
from reelay.errors import Conflict, InvalidInput, NotFound
from reelay.models import OutboxEvent, Rendition, Video, VideoSource, VideoStatus
from reelay.ports import Page

T = TypeVar("T")
logger = logging.getLogger(__name__)

_COLUMNS = (
    "videoId, videoKey, displayName, description, ownerId, email, status, failureReason, progress, "
    "playable, isTranscoded, durationSeconds, renditions, source, contentType, sizeBytes, attempts, "
    "uploadTime, createdAt, updatedAt"
)
_SELECT = f"SELECT {_COLUMNS} FROM videos"
_NOW = "UTC_TIMESTAMP(3)"
_HELD = "videoId = %s AND status = 'processing' AND leaseOwner = %s"
# Data too long, bad string, out of range, bad datetime, CHECK failed (MySQL 3819, MariaDB 4025).
_BAD_VALUE = frozenset({1406, 1366, 1264, 1292, 3819, 4025})


class MySQLCatalogue:
    def __init__(self, provider: ConnectionProvider) -> None:
        self._provider = provider

    # --- plain CRUD ---------------------------------------------------------------------------
    def create(self, video: Video) -> Video:
        check_video(video)
        row = _to_row(video)

        def work(conn: Connection) -> None:
            with conn.cursor() as cur:
                cur.execute(
                    f"INSERT INTO videos ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})",
                    tuple(row.values()),
                )

        try:
            self._run(work)
        except pymysql.err.IntegrityError as exc:
            if error_code(exc) == 1062:
                raise Conflict(f"video {video.video_id} already exists") from None
            raise
        return self.get(video.video_id)

    def get(self, video_id: str) -> Video:
        if not is_video_id(video_id):
            raise NotFound(f"video {video_id} not found")
        video = self._run(lambda conn: _fetch(conn, video_id))
        if video is None:
            raise NotFound(f"video {video_id} not found")
        return video

    def list_ready(self, *, limit: int, cursor: str | None = None) -> Page:
        return self._page("status = 'ready'", (), limit, cursor)

    def list_by_owner(self, owner_id: str, *, limit: int, cursor: str | None = None) -> Page:
        return self._page("ownerId = %s", (owner_id,), limit, cursor)

    def update_metadata(
        self, video_id: str, *, display_name: str | None = None, description: str | None = None
    ) -> Video:
        sets: list[str] = []
        args: list[Any] = []
        if display_name is not None:
            sets.append("displayName = %s")
            args.append(check_display_name(display_name))
        if description is not None:
            sets.append("description = %s")
            args.append(check_description(description))
        if not sets or not is_video_id(video_id):
            return self.get(video_id)
        sql = f"UPDATE videos SET {', '.join(sets)}, updatedAt = {_NOW} WHERE videoId = %s"

        def work(conn: Connection) -> Video | None:
            if _execute(conn, sql, (*args, video_id)) == 0:
                return None
            return _fetch(conn, video_id)

        video = self._run(work)
        if video is None:
            raise NotFound(f"video {video_id} not found")
        return video

    def delete(self, video_id: str) -> None:
        if not is_video_id(video_id) or (
            self._run(lambda conn: _execute(conn, "DELETE FROM videos WHERE videoId = %s", (video_id,))) == 0
        ):
            raise NotFound(f"video {video_id} not found")

    # --- the transcode lifecycle --------------------------------------------------------------
    def mark_uploaded(self, video_id: str, *, size_bytes: int, content_type: str | None) -> bool:
        check_size(size_bytes)
        check_content_type(content_type)
        if not is_video_id(video_id):
            raise NotFound(f"video {video_id} not found")
        sql = (
            f"UPDATE videos SET status = 'queued', sizeBytes = %s, contentType = %s, failureReason = NULL,"
            f" progress = 0, playable = 0, attempts = 0, leaseOwner = NULL, leaseExpiresAt = NULL,"
            f" updatedAt = {_NOW} WHERE videoId = %s AND status IN ('awaiting_upload', 'failed')"
        )

        def work(conn: Connection) -> bool | None:
            if _execute(conn, sql, (size_bytes, content_type, video_id)):
                return True
            return False if _exists(conn, video_id) else None

        done = self._run(work)
        if done is None:
            raise NotFound(f"video {video_id} not found")
        return done

    def claim(self, video_id: str, worker_id: str, lease_seconds: int) -> Video | None:
        check_worker_id(worker_id)
        check_lease_seconds(lease_seconds)
        if not is_video_id(video_id):
            return None
        # A worker re-claims its own lease at once: a restarted local platform reuses its id.
        sql = (
            f"UPDATE videos SET status = 'processing', leaseOwner = %s,"
            f" leaseExpiresAt = {_NOW} + INTERVAL %s SECOND, attempts = attempts + 1, progress = 0,"
            f" playable = 0, failureReason = NULL, updatedAt = {_NOW}"
            f" WHERE videoId = %s AND (status = 'queued' OR (status = 'processing' AND"
            f" (leaseOwner = %s OR leaseExpiresAt IS NULL OR leaseExpiresAt < {_NOW})))"
        )

        def work(conn: Connection) -> Video | None:
            if _execute(conn, sql, (worker_id, lease_seconds, video_id, worker_id)) == 0:
                return None
            return _fetch(conn, video_id)

        return self._run(work)

    def heartbeat(
        self, video_id: str, worker_id: str, *, lease_seconds: int, progress: int, playable: bool
    ) -> bool:
        check_lease_seconds(lease_seconds)
        sql = (
            f"UPDATE videos SET leaseExpiresAt = {_NOW} + INTERVAL %s SECOND, progress = %s,"
            f" playable = %s, updatedAt = {_NOW} WHERE {_HELD}"
        )
        args = (lease_seconds, clamp_progress(progress), bool(playable), video_id, worker_id)
        return self._transition(video_id, sql, args)

    def complete(
        self,
        video_id: str,
        worker_id: str,
        *,
        duration_seconds: float,
        renditions: Sequence[Rendition],
        event: OutboxEvent | None = None,
    ) -> bool:
        duration = check_duration(duration_seconds)
        sql = (
            f"UPDATE videos SET status = 'ready', isTranscoded = 1, progress = 100, playable = 1,"
            f" durationSeconds = %s, renditions = %s, failureReason = NULL, leaseOwner = NULL,"
            f" leaseExpiresAt = NULL, updatedAt = {_NOW} WHERE {_HELD}"
        )
        args = (duration, _renditions_json(renditions), video_id, worker_id)
        return self._transition(video_id, sql, args, event=event)

    def fail(
        self, video_id: str, reason: str, *, worker_id: str | None = None, event: OutboxEvent | None = None
    ) -> bool:
        sets = (
            f"UPDATE videos SET status = 'failed', failureReason = %s, playable = 0, leaseOwner = NULL,"
            f" leaseExpiresAt = NULL, updatedAt = {_NOW} WHERE "
        )
        if worker_id is not None:
            return self._transition(
                video_id, sets + _HELD, (clip_reason(reason), video_id, worker_id), event=event
            )
        where = "videoId = %s AND status IN ('awaiting_upload', 'queued', 'processing')"
        return self._transition(video_id, sets + where, (clip_reason(reason), video_id), event=event)

    def release(self, video_id: str, worker_id: str) -> bool:
        sql = (
            f"UPDATE videos SET status = 'queued', leaseOwner = NULL, leaseExpiresAt = NULL,"
            f" progress = 0, playable = 0, updatedAt = {_NOW} WHERE {_HELD}"
        )
        return self._transition(video_id, sql, (video_id, worker_id))

    def in_flight(self) -> list[Video]:
        sql = f"{_SELECT} WHERE status IN ('queued', 'processing') ORDER BY createdAt, videoId"
        return self._run(lambda conn: _fetch_all(conn, sql, ()))

    # --- event outbox ---------------------------------------------------------------------------
    def claim_events(
        self, *, limit: int, lease_seconds: int, video_id: str | None = None
    ) -> list[OutboxEvent]:
        check_limit(limit)
        check_lease_seconds(lease_seconds)
        where = f"nextAttemptAt <= {_NOW}"
        args: tuple[Any, ...] = ()
        if video_id is not None:
            if not is_video_id(video_id):
                return []
            where += " AND videoId = %s"
            args = (video_id,)

        def work(conn: Connection) -> list[OutboxEvent]:
            with conn.cursor() as cur:
                # SKIP LOCKED (MySQL 8.0.1+, MariaDB 10.6+): a concurrent relay takes other rows instead
                # of waiting for these, and never reads them before this lease commits.
                cur.execute(
                    f"SELECT eventId FROM event_outbox WHERE {where} ORDER BY eventId LIMIT %s"
                    " FOR UPDATE SKIP LOCKED",
                    (*args, limit),
                )
                ids = tuple(row["eventId"] for row in cur.fetchall())
                if not ids:
                    return []
                marks = ", ".join(["%s"] * len(ids))
                cur.execute(
                    f"UPDATE event_outbox SET attempts = attempts + 1,"
                    f" nextAttemptAt = {_NOW} + INTERVAL %s SECOND WHERE eventId IN ({marks})",
                    (lease_seconds, *ids),
                )
                cur.execute(
                    "SELECT eventId, eventKey, eventType, videoId, detail, attempts, createdAt"
                    f" FROM event_outbox WHERE eventId IN ({marks}) ORDER BY eventId",
                    ids,
                )
                return [e for e in map(_outbox_event, cur.fetchall()) if e is not None]

        return self._run(work)

    def delete_event(self, event_id: int) -> None:
        if isinstance(event_id, bool) or not isinstance(event_id, int):
            raise InvalidInput("event_id must be an integer")
        self._run(lambda conn: _execute(conn, "DELETE FROM event_outbox WHERE eventId = %s", (event_id,)))

    def pending_events(self) -> tuple[int, float]:
        sql = (
            "SELECT COUNT(*) AS pending,"
            f" COALESCE(TIMESTAMPDIFF(MICROSECOND, MIN(createdAt), {_NOW}), 0) AS micros FROM event_outbox"
        )

        def work(conn: Connection) -> tuple[int, float]:
            with conn.cursor() as cur:
                cur.execute(sql)
                row = cur.fetchone()
                return int(row["pending"]), max(0.0, int(row["micros"]) / 1e6)

        return self._run(work)

    # --- helpers ------------------------------------------------------------------------------
    def _transition(
        self, video_id: str, sql: str, args: tuple[Any, ...], *, event: OutboxEvent | None = None
    ) -> bool:
        stored = event_row(event, video_id) if event is not None else None
        if not is_video_id(video_id):
            return False

        def work(conn: Connection) -> bool:
            if _execute(conn, sql, args) != 1:
                return False
            if stored is not None:
                key, kind, detail = stored
                try:
                    _execute(
                        conn,
                        "INSERT INTO event_outbox (eventKey, eventType, videoId, detail, createdAt,"
                        f" nextAttemptAt) VALUES (%s, %s, %s, %s, {_NOW}, {_NOW})",
                        (key, kind, video_id, detail),
                    )
                except pymysql.err.IntegrityError as exc:
                    if error_code(exc) == 1062:  # the transition rolls back with it
                        raise Conflict(f"event {key} is already in the outbox") from None
                    raise
            return True

        return self._run(work)

    def _page(self, where: str, args: tuple[Any, ...], limit: int, cursor: str | None) -> Page:
        check_limit(limit)
        if cursor is not None:
            upload_time, video_id = decode_cursor(cursor)
            where += " AND (uploadTime < %s OR (uploadTime = %s AND videoId < %s))"
            args = (*args, upload_time, upload_time, video_id)
        sql = f"{_SELECT} WHERE {where} ORDER BY uploadTime DESC, videoId DESC LIMIT %s"
        items = self._run(lambda conn: _fetch_all(conn, sql, (*args, limit + 1)))
        if len(items) > limit:
            items = items[:limit]
            return Page(items, encode_cursor(items[-1].upload_time, items[-1].video_id))
        return Page(items, None)

    def _run(self, work: Callable[[Connection], T]) -> T:
        try:
            return self._provider.transaction(work)
        except (pymysql.err.DataError, pymysql.err.OperationalError, pymysql.err.IntegrityError) as exc:
            if error_code(exc) in _BAD_VALUE:
                raise InvalidInput(f"a value does not fit the catalogue: {exc.args[-1]}") from None
            raise


def _outbox_event(row: dict[str, Any]) -> OutboxEvent | None:
    """A claimed outbox row as an event; None (logged) for a row no relay could publish, such as a
    detail that is JSON but not an object (hand-written), so one bad row cannot block the others.
    It stays in the outbox, where the age alarm shows it."""
    try:
        return OutboxEvent(
            event_id=row["eventId"],
            event_key=row["eventKey"],
            event_type=row["eventType"],
            video_id=row["videoId"],
            detail=json.loads(row["detail"]),
            attempts=row["attempts"],
            created_at=row["createdAt"],
        )
    except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        logger.error(
            "outbox row cannot be published", extra={"eventId": row.get("eventId"), "error": str(exc)}
        )
        return None


def _execute(conn: Connection, sql: str, args: tuple[Any, ...]) -> int:
    with conn.cursor() as cur:
        return cur.execute(sql, args)


def _exists(conn: Connection, video_id: str) -> bool:
    return _execute(conn, "SELECT 1 FROM videos WHERE videoId = %s", (video_id,)) > 0


def _fetch(conn: Connection, video_id: str) -> Video | None:
    found = _fetch_all(conn, f"{_SELECT} WHERE videoId = %s", (video_id,))
    return found[0] if found else None


def _fetch_all(conn: Connection, sql: str, args: tuple[Any, ...]) -> list[Video]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return [_to_video(row) for row in cur.fetchall()]


def _renditions_json(renditions: Sequence[Rendition]) -> str:
    return json.dumps([r.model_dump() for r in renditions], separators=(",", ":"))


def _to_row(video: Video) -> dict[str, Any]:
    return {
        "videoId": video.video_id,
        "videoKey": video.video_key,
        "displayName": video.display_name,
        "description": video.description,
        "ownerId": video.owner_id,
        "email": video.email,
        "status": video.status.value,
        "failureReason": video.failure_reason,
        "progress": video.progress,
        "playable": video.playable,
        "isTranscoded": video.is_transcoded,
        "durationSeconds": video.duration_seconds,
        "renditions": _renditions_json(video.renditions),
        "source": video.source.value,
        "contentType": video.content_type,
        "sizeBytes": video.size_bytes,
        "attempts": video.attempts,
        "uploadTime": to_db_time(video.upload_time),
        "createdAt": to_db_time(video.created_at),
        "updatedAt": to_db_time(video.updated_at),
    }


def _to_video(row: dict[str, Any]) -> Video:
    return Video(
        video_id=row["videoId"],
        video_key=row["videoKey"],
        display_name=row["displayName"],
        description=row["description"],
        owner_id=row["ownerId"],
        email=row["email"],
        status=VideoStatus(row["status"]),
        failure_reason=row["failureReason"],
        progress=row["progress"],
        playable=bool(row["playable"]),
        is_transcoded=bool(row["isTranscoded"]),
        duration_seconds=row["durationSeconds"],
        renditions=[Rendition.model_validate(r) for r in json.loads(row["renditions"] or "[]")],
        source=VideoSource(row["source"]),
        content_type=row["contentType"],
        size_bytes=row["sizeBytes"],
        attempts=row["attempts"],
        upload_time=_naive(row["uploadTime"]),
        created_at=_naive(row["createdAt"]),
        updated_at=_naive(row["updatedAt"]),
    )


def _naive(value: datetime) -> datetime:
    return value.replace(tzinfo=None)
