"""VideoCatalogue on MySQL 8 / MariaDB 10.11. Parameterized SQL; every state change is one
conditional UPDATE whose matched-row count says whether this caller made the transition."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

import pymysql
from pymysql.connections import Connection

from reelay.catalogue._common import (
    check_content_type,
    check_description,
    check_display_name,
    check_duration,
    check_health,
    check_lease_seconds,
    check_limit,
    check_moderation,
    check_size,
    check_stream,
    check_task_id,
    check_token,
    check_video,
    check_visibility,
    check_worker_id,
    clamp_progress,
    clip_reason,
    decode_audit_cursor,
    decode_cursor,
    encode_audit_cursor,
    encode_cursor,
    event_row,
    is_subject,
    is_video_id,
    stream_changes,
    subject_event_row,
    to_db_time,
)
from reelay.catalogue._stream_recording import (
    RECORDING_COLUMNS,
    db_value,
    recording_changes,
    recording_fields,
    recording_row,
)
from reelay.catalogue.connection import ConnectionProvider, error_code
from reelay.catalogue.recordings_mysql import MySQLRecordings
from reelay.errors import Conflict, InvalidInput, NotFound
from reelay.models import (
    DesiredState,
    ModerationAction,
    ModerationRecord,
    OutboxEvent,
    Rendition,
    SourceProtocol,
    Stream,
    StreamHealth,
    StreamState,
    Video,
    VideoMode,
    VideoSource,
    VideoStatus,
    VideoVisibility,
    stream_subject,
)
from reelay.ports import ModerationPage, Page, StreamPage
from reelay.quotas import OwnerUsage, UploadQuota, check_quota

T = TypeVar("T")
logger = logging.getLogger(__name__)

_COLUMNS = (
    "videoId, videoKey, displayName, description, ownerId, email, status, failureReason, progress, "
    "playable, isTranscoded, durationSeconds, renditions, source, visibility, unpublished, contentType, "
    "sizeBytes, attempts, "
    "uploadTime, createdAt, updatedAt"
)
_SELECT = f"SELECT {_COLUMNS} FROM videos"
_NOW = "UTC_TIMESTAMP(3)"
_HELD = "videoId = %s AND status = 'processing' AND leaseOwner = %s"
# Data too long, bad string, out of range, bad datetime, CHECK failed (MySQL 3819, MariaDB 4025).
_BAD_VALUE = frozenset({1406, 1366, 1264, 1292, 3819, 4025})


class MySQLCatalogue(MySQLRecordings):
    def __init__(self, provider: ConnectionProvider) -> None:
        self._provider = provider

    # --- plain CRUD ---------------------------------------------------------------------------
    def create(self, video: Video, *, quota: UploadQuota | None = None) -> Video:
        check_video(video)
        row = _to_row(video)
        size = video.size_bytes or 0

        def work(conn: Connection) -> None:
            if quota is not None:
                # The owner's usage row of the day, locked: concurrent uploads of one owner queue here,
                # so each counts what the one before it added.
                _execute(
                    conn,
                    "INSERT INTO upload_usage (ownerId, day, bytes) VALUES (%s, UTC_DATE(), 0)"
                    " ON DUPLICATE KEY UPDATE bytes = bytes",
                    (video.owner_id,),
                )
                check_quota(quota, _owner_usage(conn, video.owner_id, quota), size)
            with conn.cursor() as cur:
                cur.execute(
                    f"INSERT INTO videos ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})",
                    tuple(row.values()),
                )
            if quota is not None:
                _execute(
                    conn,
                    "UPDATE upload_usage SET bytes = bytes + %s WHERE ownerId = %s AND day = UTC_DATE()",
                    (size, video.owner_id),
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
        return self._page("status = 'ready' AND visibility = 'public' AND unpublished = 0", (), limit, cursor)

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

    def record_event(self, event: OutboxEvent) -> None:
        if not isinstance(event, OutboxEvent) or event.subject is None:
            raise InvalidInput("an event recorded on its own needs a subject")
        stored = event_row(event, event.video_id, event.subject)
        self._run(lambda conn: insert_event(conn, stored, video_id=event.video_id, subject=event.subject))

    # --- the transcode lifecycle --------------------------------------------------------------
    # --- visibility and moderation ------------------------------------------------------------
    def set_visibility(
        self, video_id: str, visibility: VideoVisibility, *, event: OutboxEvent | None = None
    ) -> Video:
        value = check_visibility(visibility).value
        sql = f"UPDATE videos SET visibility = %s, updatedAt = {_NOW} WHERE videoId = %s"
        relocation = subject_event_row(event)

        def work(conn: Connection) -> Video | None:
            # Matched rows, not changed rows, count (the provider sets CLIENT.FOUND_ROWS): same value is fine.
            if not _execute(conn, sql, (value, video_id)):
                return None
            if event is not None and relocation is not None:
                insert_event(conn, relocation, video_id=None, subject=event.subject)
            return _fetch(conn, video_id)

        video = self._run(work) if is_video_id(video_id) else None
        if video is None:
            raise NotFound(f"video {video_id} not found")
        return video

    def moderate(
        self, record: ModerationRecord, *, unpublished: bool | None = None, event: OutboxEvent | None = None
    ) -> ModerationRecord:
        check_moderation(record)
        relocation = subject_event_row(event)

        def work(conn: Connection) -> ModerationRecord | None:
            with conn.cursor() as cur:
                if cur.execute("SELECT 1 FROM videos WHERE videoId = %s FOR UPDATE", (record.video_id,)) == 0:
                    return None
                if event is not None and relocation is not None:
                    insert_event(conn, relocation, video_id=None, subject=event.subject)
                if unpublished is not None:
                    cur.execute(
                        f"UPDATE videos SET unpublished = %s, updatedAt = {_NOW} WHERE videoId = %s",
                        (unpublished, record.video_id),
                    )
                cur.execute(
                    "INSERT INTO moderation_audit (moderatorId, moderatorEmail, action, videoId, ownerId,"
                    f" reason, createdAt) VALUES (%s, %s, %s, %s, %s, %s, {_NOW})",
                    (
                        record.moderator_id,
                        record.moderator_email,
                        record.action.value,
                        record.video_id,
                        record.owner_id,
                        record.reason,
                    ),
                )
                audit_id = cur.lastrowid
                cur.execute(f"{_AUDIT_SELECT} WHERE auditId = %s", (audit_id,))
                return _to_record(cur.fetchone())

        stored = self._run(work) if is_video_id(record.video_id) else None
        if stored is None:
            raise NotFound(f"video {record.video_id} not found")
        return stored

    def list_moderation(self, *, limit: int, cursor: str | None = None) -> ModerationPage:
        check_limit(limit)
        where, args = "1 = 1", ()  # type: tuple[str, tuple[int, ...]]
        if cursor is not None:
            where, args = "auditId < %s", (decode_audit_cursor(cursor),)
        sql = f"{_AUDIT_SELECT} WHERE {where} ORDER BY auditId DESC LIMIT %s"

        def work(conn: Connection) -> list[ModerationRecord]:
            with conn.cursor() as cur:
                cur.execute(sql, (*args, limit + 1))
                return [_to_record(row) for row in cur.fetchall()]

        items = self._run(work)
        if len(items) > limit:
            items = items[:limit]
            return ModerationPage(items, encode_audit_cursor(items[-1].audit_id or 0))
        return ModerationPage(items, None)

    def mark_uploaded(self, video_id: str, *, size_bytes: int, content_type: str | None) -> bool:
        check_size(size_bytes)
        check_content_type(content_type)
        if not is_video_id(video_id):
            raise NotFound(f"video {video_id} not found")
        sql = (
            f"UPDATE videos SET status = 'queued', sizeBytes = %s, contentType = %s, failureReason = NULL,"
            f" progress = 0, playable = 0, attempts = 0, leaseOwner = NULL, leaseExpiresAt = NULL,"
            f" updatedAt = {_NOW} WHERE videoId = %s AND status = 'awaiting_upload'"
        )

        def work(conn: Connection) -> bool | None:
            if _execute(conn, sql, (size_bytes, content_type, video_id)):
                return True
            return False if _exists(conn, video_id) else None

        done = self._run(work)
        if done is None:
            raise NotFound(f"video {video_id} not found")
        return done

    def reopen_upload(self, video_id: str) -> bool:
        sql = (
            f"UPDATE videos SET status = 'awaiting_upload', progress = 0, playable = 0, updatedAt = {_NOW}"
            " WHERE videoId = %s AND status = 'queued' AND attempts = 0 AND leaseOwner IS NULL"
        )
        return self._transition(video_id, sql, (video_id,))

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
        relocation: OutboxEvent | None = None,
    ) -> bool:
        duration = check_duration(duration_seconds)
        sql = (
            f"UPDATE videos SET status = 'ready', isTranscoded = 1, progress = 100, playable = 1,"
            f" durationSeconds = %s, renditions = %s, failureReason = NULL, leaseOwner = NULL,"
            f" leaseExpiresAt = NULL, updatedAt = {_NOW} WHERE {_HELD}"
        )
        args = (duration, _renditions_json(renditions), video_id, worker_id)
        return self._transition(video_id, sql, args, event=event, relocation=relocation)

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
        self, *, limit: int, lease_seconds: int, video_id: str | None = None, subject: str | None = None
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
        if subject is not None:
            if not is_subject(subject):
                return []
            where += " AND subject = %s"
            args = (*args, subject)

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
                    "SELECT eventId, eventKey, eventType, videoId, subject, detail, attempts, createdAt"
                    f" FROM event_outbox WHERE eventId IN ({marks}) ORDER BY eventId",
                    ids,
                )
                return [e for e in map(_outbox_event, cur.fetchall()) if e is not None]

        return self._run(work)

    def delete_event(self, event_id: int) -> None:
        if isinstance(event_id, bool) or not isinstance(event_id, int):
            raise InvalidInput("event_id must be an integer")
        self._run(lambda conn: _execute(conn, "DELETE FROM event_outbox WHERE eventId = %s", (event_id,)))

    # --- the media mover's lease ----------------------------------------------------------------
    def claim_media_move(self, video_id: str, mover_id: str, lease_seconds: int) -> bool:
        check_task_id(mover_id)
        check_lease_seconds(lease_seconds)
        # Assignments run left to right: the owner changes only when the lease ran out, and the
        # expiry moves only for the owner it then has.
        sql = (
            "INSERT INTO media_moves (videoId, ownerId, expiresAt)"
            f" VALUES (%s, %s, {_NOW} + INTERVAL %s SECOND) ON DUPLICATE KEY UPDATE"
            f" ownerId = IF(expiresAt < {_NOW}, VALUES(ownerId), ownerId),"
            " expiresAt = IF(ownerId = VALUES(ownerId), VALUES(expiresAt), expiresAt)"
        )

        def work(conn: Connection) -> bool:
            _execute(conn, sql, (video_id, mover_id, lease_seconds))
            with conn.cursor() as cur:
                cur.execute("SELECT ownerId FROM media_moves WHERE videoId = %s", (video_id,))
                row = cur.fetchone()
            return row is not None and row["ownerId"] == mover_id

        return is_video_id(video_id) and self._run(work)

    def renew_media_move(self, video_id: str, mover_id: str, lease_seconds: int) -> bool:
        check_lease_seconds(lease_seconds)
        sql = (
            f"UPDATE media_moves SET expiresAt = {_NOW} + INTERVAL %s SECOND"
            f" WHERE videoId = %s AND ownerId = %s AND expiresAt >= {_NOW}"
        )
        args = (lease_seconds, video_id, mover_id)
        return is_video_id(video_id) and self._run(lambda conn: _execute(conn, sql, args)) == 1

    def release_media_move(self, video_id: str, mover_id: str) -> None:
        sql = "DELETE FROM media_moves WHERE videoId = %s AND ownerId = %s"
        if is_video_id(video_id):
            self._run(lambda conn: _execute(conn, sql, (video_id, mover_id)))

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

    # --- streams (the live relay) -------------------------------------------------------------------
    def create_stream(self, stream: Stream) -> Stream:
        check_stream(stream)
        row = _stream_row(stream)

        def work(conn: Connection) -> None:
            # A deleted stream's row that no live task holds any more gives its KVS name back.
            _execute(
                conn,
                "DELETE FROM streams WHERE kvsStreamName = %s AND deletedAt IS NOT NULL"
                f" AND {_NO_LIVE_LEASE}",
                (stream.kvs_stream_name,),
            )
            _execute(
                conn,
                f"INSERT INTO streams ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})",
                tuple(row.values()),
            )

        try:
            self._run(work)
        except pymysql.err.IntegrityError as exc:
            if error_code(exc) == 1062:
                raise Conflict(_duplicate_stream(exc, stream)) from None
            raise
        return self.get_stream(stream.stream_id)

    def get_stream(self, stream_id: str) -> Stream:
        found = self._run(lambda conn: _fetch_stream(conn, stream_id)) if is_video_id(stream_id) else None
        if found is None:
            raise NotFound(f"stream {stream_id} not found")
        return found

    def list_streams_by_owner(self, owner_id: str, *, limit: int, cursor: str | None = None) -> StreamPage:
        check_limit(limit)
        where = "ownerId = %s AND deletedAt IS NULL"
        args: list[Any] = [owner_id]
        if cursor is not None:
            created, stream_id = decode_cursor(cursor)
            where += " AND (createdAt < %s OR (createdAt = %s AND streamId < %s))"
            args += [created, created, stream_id]
        sql = f"{_STREAM_SELECT} WHERE {where} ORDER BY createdAt DESC, streamId DESC LIMIT %s"
        items = self._run(lambda conn: _fetch_streams(conn, sql, (*args, limit + 1)))
        if len(items) > limit:
            items = items[:limit]
            return StreamPage(items, encode_cursor(items[-1].created_at, items[-1].stream_id))
        return StreamPage(items, None)

    def update_stream(
        self,
        stream_id: str,
        *,
        name: str | None = None,
        source_url: str | None = None,
        source_protocol: SourceProtocol | None = None,
        source_secret: str | None = None,
        kvs_stream_name: str | None = None,
        video_mode: VideoMode | None = None,
        record_enabled: bool | None = None,
    ) -> Stream:
        changes = stream_changes(
            name=name,
            source_url=source_url,
            source_protocol=source_protocol,
            source_secret=source_secret,
            kvs_stream_name=kvs_stream_name,
            video_mode=video_mode,
            record_enabled=record_enabled,
        )
        columns = {_CAMEL[k]: (v.value if isinstance(v, StrEnum) else v) for k, v in changes.items()}
        if not columns:
            return self.get_stream(stream_id)
        sets = ", ".join(f"{c} = %s" for c in columns)
        sql = f"UPDATE streams SET {sets}, updatedAt = {_NOW} WHERE streamId = %s AND deletedAt IS NULL"

        def work(conn: Connection) -> Stream | None:
            if not is_video_id(stream_id) or _execute(conn, sql, (*columns.values(), stream_id)) == 0:
                return None
            return _fetch_stream(conn, stream_id)

        try:
            found = self._run(work)
        except pymysql.err.IntegrityError as exc:
            if error_code(exc) == 1062:
                raise Conflict(f"kvsStreamName {kvs_stream_name} is used by another stream") from None
            raise
        if found is None:
            raise NotFound(f"stream {stream_id} not found")
        return found

    def update_stream_recording(self, stream_id: str, changes: Mapping[str, object]) -> Stream:
        checked = recording_changes(changes)
        if not checked:
            return self.get_stream(stream_id)
        columns = {RECORDING_COLUMNS[k]: db_value(k, v) for k, v in checked.items()}
        sets = ", ".join(f"{c} = %s" for c in columns)
        sql = f"UPDATE streams SET {sets}, updatedAt = {_NOW} WHERE streamId = %s AND deletedAt IS NULL"

        def work(conn: Connection) -> int:
            with conn.cursor() as cur:
                return int(cur.execute(sql, (*columns.values(), stream_id)))

        try:
            if not self._run(work) and self._run(lambda conn: _fetch_stream(conn, stream_id)) is None:
                raise NotFound(f"stream {stream_id} not found")
        except (pymysql.err.DataError, pymysql.err.OperationalError, pymysql.err.IntegrityError) as exc:
            if error_code(exc) in _BAD_VALUE:
                raise InvalidInput(f"a value does not fit the catalogue: {exc.args[-1]}") from None
            raise
        return self.get_stream(stream_id)

    def delete_stream(self, stream_id: str) -> None:
        def work(conn: Connection) -> bool:
            if _execute(conn, f"{_STREAM_LIVE} AND NOT ({_NO_LIVE_LEASE}) FOR UPDATE", (stream_id,)):
                sql = (
                    f"UPDATE streams SET deletedAt = {_NOW}, desiredState = 'stopped', updatedAt = {_NOW}"
                    " WHERE streamId = %s"
                )
                return _execute(conn, sql, (stream_id,)) == 1
            return (
                _execute(conn, "DELETE FROM streams WHERE streamId = %s AND deletedAt IS NULL", (stream_id,))
                == 1
            )

        if not is_video_id(stream_id) or not self._run(work):
            raise NotFound(f"stream {stream_id} not found")

    def set_desired_state(
        self, stream_id: str, desired: DesiredState, *, event: OutboxEvent | None = None
    ) -> bool:
        desired = DesiredState(desired)
        stored = event_row(event, event.video_id, stream_subject(stream_id)) if event is not None else None
        sql = (
            f"UPDATE streams SET desiredState = %s, updatedAt = {_NOW}"
            " WHERE streamId = %s AND deletedAt IS NULL AND desiredState <> %s"
        )

        def work(conn: Connection) -> bool | None:
            if _execute(conn, sql, (desired.value, stream_id, desired.value)) == 1:
                if stored is not None and event is not None:
                    insert_event(conn, stored, video_id=event.video_id, subject=event.subject)
                return True
            return False if _execute(conn, _STREAM_LIVE, (stream_id,)) else None

        changed = self._run(work) if is_video_id(stream_id) else None
        if changed is None:
            raise NotFound(f"stream {stream_id} not found")
        return changed

    def claim_stream_lease(self, stream_id: str, task_id: str, lease_seconds: int) -> int | None:
        check_task_id(task_id)
        check_lease_seconds(lease_seconds)
        # Assignments run left to right: read leaseOwner and state before they are overwritten.
        sql = (
            "UPDATE streams SET"
            f" taskStartedAt = IF(leaseOwner <=> %s, COALESCE(taskStartedAt, {_NOW}), {_NOW}),"
            f" stateSince = IF(state = 'starting', stateSince, {_NOW}), state = 'starting',"
            f" leaseOwner = %s, leaseExpiresAt = {_NOW} + INTERVAL %s SECOND, leaseToken = leaseToken + 1,"
            f" heartbeatAt = {_NOW}, updatedAt = {_NOW}"
            f" WHERE streamId = %s AND deletedAt IS NULL AND desiredState = 'running'"
            f" AND (leaseOwner <=> %s OR {_NO_LIVE_LEASE})"
        )

        def work(conn: Connection) -> int | None:
            if _execute(conn, sql, (task_id, task_id, lease_seconds, stream_id, task_id)) != 1:
                return None
            with conn.cursor() as cur:
                cur.execute("SELECT leaseToken FROM streams WHERE streamId = %s", (stream_id,))
                return int(cur.fetchone()["leaseToken"])

        return self._run(work) if is_video_id(stream_id) else None

    def renew_stream_lease(self, stream_id: str, task_id: str, token: int, lease_seconds: int) -> bool:
        check_lease_seconds(lease_seconds)
        sql = (
            f"UPDATE streams SET leaseExpiresAt = {_NOW} + INTERVAL %s SECOND, heartbeatAt = {_NOW}"
            f" WHERE {_LEASED} AND deletedAt IS NULL AND desiredState = 'running'"
        )
        args = (lease_seconds, stream_id, task_id, check_token(token))
        return is_video_id(stream_id) and self._run(lambda conn: _execute(conn, sql, args)) == 1

    def release_stream_lease(self, stream_id: str, task_id: str, token: int) -> bool:
        args = (stream_id, task_id, check_token(token))
        sql = (
            f"UPDATE streams SET stateSince = IF(state = 'stopped', stateSince, {_NOW}), state = 'stopped',"
            " outageCause = NULL, outageSince = NULL, inputBitrateBps = NULL, slateSince = NULL,"
            " leaseOwner = NULL, leaseExpiresAt = NULL, taskStartedAt = NULL,"
            f" updatedAt = {_NOW} WHERE {_LEASED}"
        )

        def work(conn: Connection) -> bool:
            if _execute(conn, f"DELETE FROM streams WHERE {_LEASED} AND deletedAt IS NOT NULL", args):
                return True
            return _execute(conn, sql, args) == 1

        return is_video_id(stream_id) and self._run(work)

    def report_stream_health(self, stream_id: str, token: int, health: StreamHealth) -> bool:
        h = check_health(health)
        sql = (
            f"UPDATE streams SET stateSince = IF(state = %s, stateSince, {_NOW}), state = %s,"
            " outageCause = %s, outageSince = %s, reconnects = %s, inputBitrateBps = %s,"
            " lastFragmentNumber = COALESCE(%s, lastFragmentNumber),"
            " lastFragmentTimecode = COALESCE(%s, lastFragmentTimecode),"
            " lastFragmentAckAt = COALESCE(%s, lastFragmentAckAt), credentialsExpireAt = %s,"
            " slateSince = %s, slateFragmentsPersisted = %s,"
            f" heartbeatAt = {_NOW}, updatedAt = {_NOW}"
            " WHERE streamId = %s AND leaseToken = %s AND leaseOwner IS NOT NULL"
        )
        args = (
            h.state.value,
            h.state.value,
            h.outage_cause,
            h.outage_since,
            h.reconnects,
            h.input_bitrate_bps,
            h.last_fragment_number,
            h.last_fragment_timecode,
            h.last_fragment_ack_at,
            h.credentials_expire_at,
            h.slate_since,
            h.slate_fragments_persisted,
            stream_id,
            check_token(token),
        )
        return is_video_id(stream_id) and self._run(lambda conn: _execute(conn, sql, args)) == 1

    def streams_to_reconcile(self, now: datetime | None = None) -> list[Stream]:
        at = "%s" if now is not None else _NOW
        live = f"(leaseOwner IS NOT NULL AND leaseExpiresAt >= {at})"
        sql = (
            f"{_STREAM_SELECT} WHERE (desiredState = 'running' AND deletedAt IS NULL AND NOT {live})"
            f" OR ((desiredState = 'stopped' OR deletedAt IS NOT NULL) AND {live}) ORDER BY streamId"
        )
        args = (to_db_time(now), to_db_time(now)) if now is not None else ()
        return self._run(lambda conn: _fetch_streams(conn, sql, args))

    # --- helpers ------------------------------------------------------------------------------
    def _transition(
        self,
        video_id: str,
        sql: str,
        args: tuple[Any, ...],
        *,
        event: OutboxEvent | None = None,
        relocation: OutboxEvent | None = None,
    ) -> bool:
        stored = event_row(event, video_id) if event is not None else None
        moved = subject_event_row(relocation)
        if not is_video_id(video_id):
            return False

        def work(conn: Connection) -> bool:
            if _execute(conn, sql, args) != 1:
                return False
            if stored is not None:
                insert_event(conn, stored, video_id=video_id)
            if relocation is not None and moved is not None:
                insert_event(conn, moved, video_id=None, subject=relocation.subject)
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


_STREAM_COLUMNS = (
    "streamId, ownerId, name, sourceUrl, sourceProtocol, sourceSecret, kvsStreamName, videoMode,"
    " recordEnabled, recordObjectStoreUrl, recordStoreSecret, webhookUrl, retentionDays,"
    " reconnectWindowSeconds, recordRenditions, desiredState, state, stateSince, outageCause, outageSince,"
    " reconnects, inputBitrateBps,"
    " lastFragmentNumber, lastFragmentTimecode, lastFragmentAckAt, credentialsExpireAt,"
    " slateSince, slateFragmentsPersisted, leaseOwner, leaseExpiresAt, leaseToken, taskStartedAt,"
    " heartbeatAt, createdAt, updatedAt, deletedAt"
)
_STREAM_SELECT = f"SELECT {_STREAM_COLUMNS} FROM streams"
_STREAM_LIVE = "SELECT 1 FROM streams WHERE streamId = %s AND deletedAt IS NULL"
_NO_LIVE_LEASE = f"(leaseOwner IS NULL OR leaseExpiresAt IS NULL OR leaseExpiresAt < {_NOW})"
_LEASED = "streamId = %s AND leaseOwner = %s AND leaseToken = %s"
_CAMEL = {
    "name": "name",
    "source_url": "sourceUrl",
    "source_protocol": "sourceProtocol",
    "source_secret": "sourceSecret",
    "kvs_stream_name": "kvsStreamName",
    "video_mode": "videoMode",
    "record_enabled": "recordEnabled",
    **RECORDING_COLUMNS,
}


def _duplicate_stream(exc: pymysql.err.IntegrityError, stream: Stream) -> str:
    if "uq_streams_kvs" in str(exc.args[-1]):
        return f"kvsStreamName {stream.kvs_stream_name} is used by another stream"
    return f"stream {stream.stream_id} already exists"


def _fetch_stream(conn: Connection, stream_id: str) -> Stream | None:
    found = _fetch_streams(conn, f"{_STREAM_SELECT} WHERE streamId = %s AND deletedAt IS NULL", (stream_id,))
    return found[0] if found else None


def _fetch_streams(conn: Connection, sql: str, args: tuple[Any, ...]) -> list[Stream]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return [_to_stream(row) for row in cur.fetchall()]


def _stream_row(stream: Stream) -> dict[str, Any]:
    def at(value: datetime | None) -> datetime | None:
        return to_db_time(value) if value is not None else None

    return {
        "streamId": stream.stream_id,
        "ownerId": stream.owner_id,
        "name": stream.name,
        "sourceUrl": stream.source_url,
        "sourceProtocol": stream.source_protocol.value,
        "sourceSecret": stream.source_secret,
        "kvsStreamName": stream.kvs_stream_name,
        "videoMode": stream.video_mode.value,
        "recordEnabled": 1 if stream.record_enabled else 0,
        **recording_row(stream),
        "desiredState": stream.desired_state.value,
        "state": stream.state.value,
        "stateSince": at(stream.state_since),
        "outageCause": stream.outage_cause,
        "outageSince": at(stream.outage_since),
        "reconnects": stream.reconnects,
        "inputBitrateBps": stream.input_bitrate_bps,
        "lastFragmentNumber": stream.last_fragment_number,
        "lastFragmentTimecode": stream.last_fragment_timecode,
        "lastFragmentAckAt": at(stream.last_fragment_ack_at),
        "credentialsExpireAt": at(stream.credentials_expire_at),
        "slateSince": at(stream.slate_since),
        "slateFragmentsPersisted": stream.slate_fragments_persisted,
        "leaseOwner": stream.lease_owner,
        "leaseExpiresAt": at(stream.lease_expires_at),
        "leaseToken": stream.lease_token,
        "taskStartedAt": at(stream.task_started_at),
        "heartbeatAt": at(stream.heartbeat_at),
        "createdAt": at(stream.created_at),
        "updatedAt": at(stream.updated_at),
    }


def _to_stream(row: dict[str, Any]) -> Stream:
    def at(value: datetime | None) -> datetime | None:
        return _naive(value) if value is not None else None

    return Stream(
        stream_id=row["streamId"],
        owner_id=row["ownerId"],
        name=row["name"],
        source_url=row["sourceUrl"],
        source_protocol=SourceProtocol(row["sourceProtocol"]),
        source_secret=row["sourceSecret"],
        kvs_stream_name=row["kvsStreamName"],
        video_mode=VideoMode(row["videoMode"]),
        record_enabled=bool(row["recordEnabled"]),
        **recording_fields(row),
        desired_state=DesiredState(row["desiredState"]),
        state=StreamState(row["state"]),
        state_since=at(row["stateSince"]) or _naive(row["createdAt"]),
        outage_cause=row["outageCause"],
        outage_since=at(row["outageSince"]),
        reconnects=row["reconnects"],
        input_bitrate_bps=row["inputBitrateBps"],
        last_fragment_number=row["lastFragmentNumber"],
        last_fragment_timecode=row["lastFragmentTimecode"],
        last_fragment_ack_at=at(row["lastFragmentAckAt"]),
        credentials_expire_at=at(row["credentialsExpireAt"]),
        slate_since=at(row["slateSince"]),
        slate_fragments_persisted=row["slateFragmentsPersisted"],
        lease_owner=row["leaseOwner"],
        lease_expires_at=at(row["leaseExpiresAt"]),
        lease_token=row["leaseToken"],
        task_started_at=at(row["taskStartedAt"]),
        heartbeat_at=at(row["heartbeatAt"]),
        created_at=_naive(row["createdAt"]),
        updated_at=_naive(row["updatedAt"]),
        deleted_at=at(row["deletedAt"]),
    )


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
            subject=row["subject"],
            detail=json.loads(row["detail"]),
            attempts=row["attempts"],
            created_at=row["createdAt"],
        )
    except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        logger.error(
            "outbox row cannot be published", extra={"eventId": row.get("eventId"), "error": str(exc)}
        )
        return None


def insert_event(
    conn: Connection, stored: tuple[str, str, str], *, video_id: str | None, subject: str | None = None
) -> None:
    """Record an outbox event (``event_row``'s result) in the caller's transaction."""
    key, kind, detail = stored
    try:
        _execute(
            conn,
            "INSERT INTO event_outbox (eventKey, eventType, videoId, subject, detail, createdAt,"
            f" nextAttemptAt) VALUES (%s, %s, %s, %s, %s, {_NOW}, {_NOW})",
            (key, kind, video_id, subject, detail),
        )
    except pymysql.err.IntegrityError as exc:
        if error_code(exc) == 1062:  # the transition rolls back with it
            raise Conflict(f"event {key} is already in the outbox") from None
        raise


def _execute(conn: Connection, sql: str, args: tuple[Any, ...]) -> int:
    with conn.cursor() as cur:
        return cur.execute(sql, args)


def _owner_usage(conn: Connection, owner_id: str, quota: UploadQuota) -> OwnerUsage:
    """The owner's usage, read after its usage row of the day was locked (see ``create``)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT bytes FROM upload_usage WHERE ownerId = %s AND day = UTC_DATE() FOR UPDATE", (owner_id,)
        )
        today = cur.fetchone()
        cur.execute(
            "SELECT"
            " COALESCE(SUM(status IN ('queued', 'processing') OR (status = 'awaiting_upload'"
            f"   AND createdAt > {_NOW} - INTERVAL %s SECOND)), 0) AS inFlight,"
            " COALESCE(SUM(CASE WHEN status <> 'failed' THEN sizeBytes ELSE 0 END), 0) AS stored"
            " FROM videos WHERE ownerId = %s",
            (quota.pending_upload_seconds, owner_id),
        )
        counts = cur.fetchone()
    return OwnerUsage(
        videos_in_flight=int(counts["inFlight"]),
        uploaded_today=int(today["bytes"]) if today else 0,
        stored_bytes=int(counts["stored"]),
    )


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
        "visibility": video.visibility.value,
        "unpublished": video.unpublished,
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
        visibility=VideoVisibility(row["visibility"]),
        unpublished=bool(row["unpublished"]),
        content_type=row["contentType"],
        size_bytes=row["sizeBytes"],
        attempts=row["attempts"],
        upload_time=_naive(row["uploadTime"]),
        created_at=_naive(row["createdAt"]),
        updated_at=_naive(row["updatedAt"]),
    )


_AUDIT_SELECT = (
    "SELECT auditId, moderatorId, moderatorEmail, action, videoId, ownerId, reason, createdAt"
    " FROM moderation_audit"
)


def _to_record(row: dict[str, Any]) -> ModerationRecord:
    return ModerationRecord(
        audit_id=row["auditId"],
        moderator_id=row["moderatorId"],
        moderator_email=row["moderatorEmail"],
        action=ModerationAction(row["action"]),
        video_id=row["videoId"],
        owner_id=row["ownerId"],
        reason=row["reason"],
        created_at=_naive(row["createdAt"]),
    )


def _naive(value: datetime) -> datetime:
    return value.replace(tzinfo=None)
