"""In-memory VideoCatalogue: the fake other units test against. Same rules as MySQLCatalogue."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

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
    stream_changes,
    subject_event_row,
    to_db_time,
)
from reelay.catalogue._stream_recording import recording_changes
from reelay.catalogue.recordings_memory import MemoryRecordings
from reelay.errors import Conflict, InvalidInput, NotFound
from reelay.models import (
    DesiredState,
    ModerationRecord,
    OutboxEvent,
    Rendition,
    SourceProtocol,
    Stream,
    StreamHealth,
    StreamState,
    Video,
    VideoMode,
    VideoStatus,
    VideoVisibility,
    stream_subject,
    utcnow,
)
from reelay.ports import ModerationPage, Page, StreamPage
from reelay.quotas import OwnerUsage, UploadQuota, check_quota


@dataclass
class _Row:
    video: Video
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None


@dataclass
class _Event:
    event_id: int
    event_key: str
    event_type: str
    video_id: str | None
    detail: str  # JSON text, as the MySQL column holds it
    created_at: datetime
    next_attempt_at: datetime
    attempts: int = 0
    subject: str | None = None


class MemoryCatalogue(MemoryRecordings):
    """Thread-safe dict of videos. Returned videos are copies: mutate them freely.

    ``clock`` returns naive UTC; tests may pass their own to move time without sleeping.
    """

    def __init__(self, clock: Callable[[], datetime] = utcnow) -> None:
        self._rows: dict[str, _Row] = {}
        self._events: dict[int, _Event] = {}
        self._streams: dict[str, Stream] = {}
        self._audit: list[ModerationRecord] = []
        self._audit_ids = itertools.count(1)
        self._event_ids = itertools.count(1)
        self._lock = threading.RLock()
        self._clock = clock
        self._media_moves: dict[str, tuple[str, datetime]] = {}  # videoId: (mover, lease expiry)
        self._uploaded: dict[tuple[str, date], int] = {}  # (owner, UTC day) -> bytes, as upload_usage

    # --- plain CRUD ---------------------------------------------------------------------------
    def create(self, video: Video, *, quota: UploadQuota | None = None) -> Video:
        check_video(video)
        stored = video.model_copy(
            deep=True,
            update={
                "upload_time": to_db_time(video.upload_time),
                "created_at": to_db_time(video.created_at),
                "updated_at": to_db_time(video.updated_at),
            },
        )
        with self._lock:
            if stored.video_id in self._rows:
                raise Conflict(f"video {stored.video_id} already exists")
            if quota is not None:
                day = (stored.owner_id, self._clock().date())
                check_quota(quota, self._usage(stored.owner_id, quota, day), stored.size_bytes or 0)
                self._uploaded[day] = self._uploaded.get(day, 0) + (stored.size_bytes or 0)
            self._rows[stored.video_id] = _Row(stored)
            return stored.model_copy(deep=True)

    def _usage(self, owner_id: str, quota: UploadQuota, day: tuple[str, date]) -> OwnerUsage:
        pending_since = to_db_time(self._clock()) - timedelta(seconds=quota.pending_upload_seconds)
        mine = [r.video for r in self._rows.values() if r.video.owner_id == owner_id]
        return OwnerUsage(
            videos_in_flight=sum(
                1
                for v in mine
                if v.status in (VideoStatus.QUEUED, VideoStatus.PROCESSING)
                or (v.status == VideoStatus.AWAITING_UPLOAD and v.created_at > pending_since)
            ),
            uploaded_today=self._uploaded.get(day, 0),
            stored_bytes=sum(v.size_bytes or 0 for v in mine if v.status != VideoStatus.FAILED),
        )

    def get(self, video_id: str) -> Video:
        with self._lock:
            return self._row(video_id).video.model_copy(deep=True)

    def list_ready(self, *, limit: int, cursor: str | None = None) -> Page:
        return self._page(lambda v: v.listed, limit, cursor)

    def list_by_owner(self, owner_id: str, *, limit: int, cursor: str | None = None) -> Page:
        return self._page(lambda v: v.owner_id == owner_id, limit, cursor)

    def update_metadata(
        self, video_id: str, *, display_name: str | None = None, description: str | None = None
    ) -> Video:
        changes: dict[str, object] = {}
        if display_name is not None:
            changes["display_name"] = check_display_name(display_name)
        if description is not None:
            changes["description"] = check_description(description)
        with self._lock:
            row = self._row(video_id)
            if changes:
                self._touch(row, **changes)
            return row.video.model_copy(deep=True)

    def delete(self, video_id: str) -> None:
        with self._lock:
            self._row(video_id)
            del self._rows[video_id]

    def record_event(self, event: OutboxEvent) -> None:
        if not isinstance(event, OutboxEvent) or event.subject is None:
            raise InvalidInput("an event recorded on its own needs a subject")
        stored = event_row(event, event.video_id, event.subject)
        with self._lock:
            self._record(event.video_id, stored, event.subject)

    # --- visibility and moderation ------------------------------------------------------------
    def set_visibility(
        self, video_id: str, visibility: VideoVisibility, *, event: OutboxEvent | None = None
    ) -> Video:
        visibility = check_visibility(visibility)
        relocation = subject_event_row(event)
        with self._lock:
            row = self._row(video_id)
            self._touch(row, visibility=visibility)
            if event is not None:
                self._record(None, relocation, event.subject)
            return row.video.model_copy(deep=True)

    def moderate(
        self, record: ModerationRecord, *, unpublished: bool | None = None, event: OutboxEvent | None = None
    ) -> ModerationRecord:
        check_moderation(record)
        relocation = subject_event_row(event)
        with self._lock:
            row = self._row(record.video_id)
            if event is not None:
                self._record(None, relocation, event.subject)
            if unpublished is not None:
                self._touch(row, unpublished=unpublished)
            stored = record.model_copy(
                update={"audit_id": next(self._audit_ids), "created_at": to_db_time(self._clock())}
            )
            self._audit.append(stored)
            return stored.model_copy()

    def list_moderation(self, *, limit: int, cursor: str | None = None) -> ModerationPage:
        check_limit(limit)
        before = decode_audit_cursor(cursor) if cursor is not None else None
        with self._lock:
            records = sorted(self._audit, key=lambda r: r.audit_id or 0, reverse=True)
        if before is not None:
            records = [r for r in records if (r.audit_id or 0) < before]
        items = [r.model_copy() for r in records[: limit + 1]]
        if len(items) > limit:
            items = items[:limit]
            return ModerationPage(items, encode_audit_cursor(items[-1].audit_id or 0))
        return ModerationPage(items, None)

    # --- the transcode lifecycle --------------------------------------------------------------
    def mark_uploaded(self, video_id: str, *, size_bytes: int, content_type: str | None) -> bool:
        check_size(size_bytes)
        check_content_type(content_type)
        with self._lock:
            row = self._row(video_id)
            if row.video.status != VideoStatus.AWAITING_UPLOAD:
                return False
            row.lease_owner = row.lease_expires_at = None
            self._touch(
                row,
                status=VideoStatus.QUEUED,
                size_bytes=size_bytes,
                content_type=content_type,
                failure_reason=None,
                progress=0,
                playable=False,
                attempts=0,
            )
            return True

    def reopen_upload(self, video_id: str) -> bool:
        with self._lock:
            row = self._rows.get(video_id)
            if (
                row is None
                or row.video.status != VideoStatus.QUEUED
                or row.video.attempts
                or row.lease_owner is not None
            ):
                return False
            self._touch(row, status=VideoStatus.AWAITING_UPLOAD, progress=0, playable=False)
            return True

    def claim(self, video_id: str, worker_id: str, lease_seconds: int) -> Video | None:
        check_worker_id(worker_id)
        check_lease_seconds(lease_seconds)
        with self._lock:
            row = self._rows.get(video_id)
            if row is None or not self._claimable(row, worker_id):
                return None
            row.lease_owner = worker_id
            row.lease_expires_at = self._clock() + timedelta(seconds=lease_seconds)
            self._touch(
                row,
                status=VideoStatus.PROCESSING,
                attempts=row.video.attempts + 1,
                progress=0,
                playable=False,
                failure_reason=None,
            )
            return row.video.model_copy(deep=True)

    def heartbeat(
        self, video_id: str, worker_id: str, *, lease_seconds: int, progress: int, playable: bool
    ) -> bool:
        check_lease_seconds(lease_seconds)
        with self._lock:
            row = self._held(video_id, worker_id)
            if row is None:
                return False
            row.lease_expires_at = self._clock() + timedelta(seconds=lease_seconds)
            self._touch(row, progress=clamp_progress(progress), playable=bool(playable))
            return True

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
        stored = event_row(event, video_id) if event is not None else None
        moved = subject_event_row(relocation)
        with self._lock:
            row = self._held(video_id, worker_id)
            if row is None:
                return False
            self._record(video_id, stored)
            if relocation is not None:
                self._record(None, moved, relocation.subject)
            row.lease_owner = row.lease_expires_at = None
            self._touch(
                row,
                status=VideoStatus.READY,
                is_transcoded=True,
                progress=100,
                playable=True,
                duration_seconds=duration,
                renditions=list(renditions),
                failure_reason=None,
            )
            return True

    def fail(
        self, video_id: str, reason: str, *, worker_id: str | None = None, event: OutboxEvent | None = None
    ) -> bool:
        stored = event_row(event, video_id) if event is not None else None
        with self._lock:
            if worker_id is not None:
                row = self._held(video_id, worker_id)
            else:
                row = self._rows.get(video_id)
                if row is not None and row.video.status not in _FAILABLE:
                    row = None
            if row is None:
                return False
            self._record(video_id, stored)
            row.lease_owner = row.lease_expires_at = None
            self._touch(row, status=VideoStatus.FAILED, failure_reason=clip_reason(reason), playable=False)
            return True

    def release(self, video_id: str, worker_id: str) -> bool:
        with self._lock:
            row = self._held(video_id, worker_id)
            if row is None:
                return False
            row.lease_owner = row.lease_expires_at = None
            self._touch(row, status=VideoStatus.QUEUED, progress=0, playable=False)
            return True

    def in_flight(self) -> list[Video]:
        with self._lock:
            rows = [
                r.video
                for r in self._rows.values()
                if r.video.status in (VideoStatus.QUEUED, VideoStatus.PROCESSING)
            ]
            rows.sort(key=lambda v: (v.created_at, v.video_id))
            return [v.model_copy(deep=True) for v in rows]

    # --- event outbox ---------------------------------------------------------------------------
    def claim_events(
        self, *, limit: int, lease_seconds: int, video_id: str | None = None, subject: str | None = None
    ) -> list[OutboxEvent]:
        check_limit(limit)
        check_lease_seconds(lease_seconds)
        with self._lock:
            now = to_db_time(self._clock())
            due = [
                e
                for e in self._events.values()
                if e.next_attempt_at <= now
                and (video_id is None or e.video_id == video_id)
                and (subject is None or e.subject == subject)
            ]
            due.sort(key=lambda e: e.event_id)
            claimed = []
            for e in due[:limit]:
                e.attempts += 1
                e.next_attempt_at = now + timedelta(seconds=lease_seconds)
                claimed.append(
                    OutboxEvent(
                        event_id=e.event_id,
                        event_key=e.event_key,
                        event_type=e.event_type,
                        video_id=e.video_id,
                        subject=e.subject,
                        detail=json.loads(e.detail),
                        created_at=e.created_at,
                        attempts=e.attempts,
                    )
                )
            return claimed

    def delete_event(self, event_id: int) -> None:
        with self._lock:
            self._events.pop(event_id, None)

    # --- the media mover's lease ----------------------------------------------------------------
    def claim_media_move(self, video_id: str, mover_id: str, lease_seconds: int) -> bool:
        check_task_id(mover_id)
        check_lease_seconds(lease_seconds)
        with self._lock:
            now = to_db_time(self._clock())
            held = self._media_moves.get(video_id)
            if held is not None and held[0] != mover_id and held[1] >= now:
                return False
            self._media_moves[video_id] = (mover_id, now + timedelta(seconds=lease_seconds))
            return True

    def renew_media_move(self, video_id: str, mover_id: str, lease_seconds: int) -> bool:
        check_lease_seconds(lease_seconds)
        with self._lock:
            now = to_db_time(self._clock())
            held = self._media_moves.get(video_id)
            if held is None or held[0] != mover_id or held[1] < now:
                return False
            self._media_moves[video_id] = (mover_id, now + timedelta(seconds=lease_seconds))
            return True

    def release_media_move(self, video_id: str, mover_id: str) -> None:
        with self._lock:
            held = self._media_moves.get(video_id)
            if held is not None and held[0] == mover_id:
                del self._media_moves[video_id]

    def pending_events(self) -> tuple[int, float]:
        with self._lock:
            if not self._events:
                return 0, 0.0
            oldest = min(e.created_at for e in self._events.values())
            age = (to_db_time(self._clock()) - oldest).total_seconds()
            return len(self._events), max(0.0, age)

    # --- streams (the live relay) -------------------------------------------------------------------
    def create_stream(self, stream: Stream) -> Stream:
        check_stream(stream)
        stored = stream.model_copy(update=_db_times(stream, _STREAM_TIMES))
        with self._lock:
            now = self._clock()
            for other in list(self._streams.values()):
                if (
                    stream.kvs_stream_name is not None
                    and other.kvs_stream_name == stream.kvs_stream_name
                    and other.deleted_at
                    and not other.lease_live(now)
                ):
                    del self._streams[other.stream_id]  # a deleted stream no task holds gives its name back
            if stored.stream_id in self._streams:
                raise Conflict(f"stream {stored.stream_id} already exists")
            if stored.kvs_stream_name is not None and any(
                s.kvs_stream_name == stored.kvs_stream_name for s in self._streams.values()
            ):
                raise Conflict(f"kvsStreamName {stored.kvs_stream_name} is used by another stream")
            self._streams[stored.stream_id] = stored
            return stored.model_copy()

    def get_stream(self, stream_id: str) -> Stream:
        with self._lock:
            return self._stream(stream_id).model_copy()

    def list_streams_by_owner(self, owner_id: str, *, limit: int, cursor: str | None = None) -> StreamPage:
        check_limit(limit)
        after = decode_cursor(cursor) if cursor is not None else None
        with self._lock:
            mine = [s for s in self._streams.values() if s.owner_id == owner_id and s.deleted_at is None]
        mine.sort(key=lambda s: (s.created_at, s.stream_id), reverse=True)
        if after is not None:
            mine = [s for s in mine if (s.created_at, s.stream_id) < after]
        items = [s.model_copy() for s in mine[: limit + 1]]
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
        with self._lock:
            stream = self._stream(stream_id)
            if not changes:
                return stream.model_copy()
            taken = changes.get("kvs_stream_name")
            if taken is not None and any(
                s.kvs_stream_name == taken and s.stream_id != stream_id for s in self._streams.values()
            ):
                raise Conflict(f"kvsStreamName {taken} is used by another stream")
            return self._touch_stream(stream, **changes).model_copy()

    def update_stream_recording(self, stream_id: str, changes: Mapping[str, object]) -> Stream:
        checked = recording_changes(changes)
        with self._lock:
            stream = self._stream(stream_id)
            if not checked:
                return stream.model_copy()
            return self._touch_stream(stream, **checked).model_copy()

    def delete_stream(self, stream_id: str) -> None:
        with self._lock:
            stream = self._stream(stream_id)
            if stream.lease_live(self._clock()):
                self._touch_stream(
                    stream, deleted_at=to_db_time(self._clock()), desired_state=DesiredState.STOPPED
                )
            else:
                del self._streams[stream_id]

    def set_desired_state(
        self, stream_id: str, desired: DesiredState, *, event: OutboxEvent | None = None
    ) -> bool:
        desired = DesiredState(desired)
        stored = event_row(event, event.video_id, stream_subject(stream_id)) if event is not None else None
        with self._lock:
            stream = self._stream(stream_id)
            if stream.desired_state == desired:
                return False
            self._record(event.video_id if event else None, stored, subject=stream_subject(stream_id))
            self._touch_stream(stream, desired_state=desired)
            return True

    def claim_stream_lease(self, stream_id: str, task_id: str, lease_seconds: int) -> int | None:
        check_task_id(task_id)
        check_lease_seconds(lease_seconds)
        with self._lock:
            stream = self._streams.get(stream_id)
            now = self._clock()
            if (
                stream is None
                or stream.deleted_at is not None
                or stream.desired_state != DesiredState.RUNNING
                or (stream.lease_owner != task_id and stream.lease_live(now))
            ):
                return None
            same = stream.lease_owner == task_id
            stream = self._touch_stream(
                stream,
                task_started_at=(stream.task_started_at or to_db_time(now)) if same else to_db_time(now),
                state_since=stream.state_since if stream.state == StreamState.STARTING else to_db_time(now),
                state=StreamState.STARTING,
                lease_owner=task_id,
                lease_expires_at=to_db_time(now + timedelta(seconds=lease_seconds)),
                lease_token=stream.lease_token + 1,
                heartbeat_at=to_db_time(now),
            )
            return stream.lease_token

    def renew_stream_lease(self, stream_id: str, task_id: str, token: int, lease_seconds: int) -> bool:
        check_lease_seconds(lease_seconds)
        check_token(token)
        with self._lock:
            stream = self._leased(stream_id, task_id, token)
            if (
                stream is None
                or stream.deleted_at is not None
                or stream.desired_state != DesiredState.RUNNING
            ):
                return False
            now = self._clock()
            self._streams[stream_id] = stream.model_copy(
                update={
                    "lease_expires_at": to_db_time(now + timedelta(seconds=lease_seconds)),
                    "heartbeat_at": to_db_time(now),
                }
            )
            return True

    def release_stream_lease(self, stream_id: str, task_id: str, token: int) -> bool:
        check_token(token)
        with self._lock:
            stream = self._leased(stream_id, task_id, token)
            if stream is None:
                return False
            if stream.deleted_at is not None:
                del self._streams[stream_id]
                return True
            self._touch_stream(
                stream,
                state_since=stream.state_since
                if stream.state == StreamState.STOPPED
                else to_db_time(self._clock()),
                state=StreamState.STOPPED,
                outage_cause=None,
                outage_since=None,
                input_bitrate_bps=None,
                slate_since=None,
                lease_owner=None,
                lease_expires_at=None,
                task_started_at=None,
            )
            return True

    def report_stream_health(self, stream_id: str, token: int, health: StreamHealth) -> bool:
        h = check_health(health)
        check_token(token)
        with self._lock:
            stream = self._streams.get(stream_id)
            if stream is None or stream.lease_token != token or stream.lease_owner is None:
                return False
            now = to_db_time(self._clock())
            self._touch_stream(
                stream,
                state_since=stream.state_since if stream.state == h.state else now,
                state=h.state,
                outage_cause=h.outage_cause,
                outage_since=h.outage_since,
                reconnects=h.reconnects,
                input_bitrate_bps=h.input_bitrate_bps,
                last_fragment_number=h.last_fragment_number or stream.last_fragment_number,
                last_fragment_timecode=(
                    h.last_fragment_timecode
                    if h.last_fragment_timecode is not None
                    else stream.last_fragment_timecode
                ),
                last_fragment_ack_at=h.last_fragment_ack_at or stream.last_fragment_ack_at,
                credentials_expire_at=h.credentials_expire_at,
                slate_since=h.slate_since,
                slate_fragments_persisted=h.slate_fragments_persisted,
                heartbeat_at=now,
            )
            return True

    def streams_to_reconcile(self, now: datetime | None = None) -> list[Stream]:
        with self._lock:
            at = to_db_time(now) if now is not None else self._clock()
            due = [
                s
                for s in self._streams.values()
                if (s.desired_state == DesiredState.RUNNING and s.deleted_at is None and not s.lease_live(at))
                or (
                    (s.desired_state == DesiredState.STOPPED or s.deleted_at is not None) and s.lease_live(at)
                )
            ]
            return [s.model_copy() for s in sorted(due, key=lambda s: s.stream_id)]

    def _stream(self, stream_id: str) -> Stream:
        stream = self._streams.get(stream_id)
        if stream is None or stream.deleted_at is not None:
            raise NotFound(f"stream {stream_id} not found")
        return stream

    def _leased(self, stream_id: str, task_id: str, token: int) -> Stream | None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.lease_owner != task_id or stream.lease_token != token:
            return None
        return stream

    def _touch_stream(self, stream: Stream, **changes: object) -> Stream:
        changes["updated_at"] = to_db_time(self._clock())
        updated = stream.model_copy(update=changes)
        self._streams[stream.stream_id] = updated
        return updated

    # --- helpers ------------------------------------------------------------------------------
    def _record(
        self, video_id: str | None, stored: tuple[str, str, str] | None, subject: str | None = None
    ) -> None:
        if stored is None:
            return
        key, kind, detail = stored
        if any(e.event_key == key for e in self._events.values()):
            raise Conflict(f"event {key} is already in the outbox")  # MySQL: the unique key refuses it
        now = to_db_time(self._clock())
        event_id = next(self._event_ids)
        self._events[event_id] = _Event(event_id, key, kind, video_id, detail, now, now, subject=subject)

    def _row(self, video_id: str) -> _Row:
        row = self._rows.get(video_id)
        if row is None:
            raise NotFound(f"video {video_id} not found")
        return row

    def _claimable(self, row: _Row, worker_id: str) -> bool:
        status = row.video.status
        if status == VideoStatus.QUEUED:
            return True
        if status != VideoStatus.PROCESSING:
            return False
        if row.lease_owner == worker_id:  # a restarted worker re-claims its own job at once
            return True
        return row.lease_expires_at is None or row.lease_expires_at < self._clock()

    def _held(self, video_id: str, worker_id: str) -> _Row | None:
        row = self._rows.get(video_id)
        if row is None or row.video.status != VideoStatus.PROCESSING or row.lease_owner != worker_id:
            return None
        return row

    def _touch(self, row: _Row, **changes: object) -> None:
        changes["updated_at"] = to_db_time(self._clock())
        row.video = row.video.model_copy(update=changes)

    def _page(self, keep: Callable[[Video], bool], limit: int, cursor: str | None) -> Page:
        check_limit(limit)
        after = decode_cursor(cursor) if cursor is not None else None
        with self._lock:
            videos = [r.video for r in self._rows.values() if keep(r.video)]
        videos.sort(key=lambda v: (v.upload_time, v.video_id), reverse=True)
        if after is not None:
            videos = [v for v in videos if (v.upload_time, v.video_id) < after]
        items = [v.model_copy(deep=True) for v in videos[: limit + 1]]
        if len(items) > limit:
            items = items[:limit]
            return Page(items, encode_cursor(items[-1].upload_time, items[-1].video_id))
        return Page(items, None)


_STREAM_TIMES = (
    "state_since",
    "outage_since",
    "last_fragment_ack_at",
    "credentials_expire_at",
    "slate_since",
    "lease_expires_at",
    "task_started_at",
    "heartbeat_at",
    "created_at",
    "updated_at",
)


def _db_times(model: Stream, names: Sequence[str]) -> dict[str, object]:
    """The model's times as the database keeps them (naive UTC milliseconds)."""
    return {n: to_db_time(getattr(model, n)) for n in names if getattr(model, n) is not None}


_FAILABLE = (VideoStatus.AWAITING_UPLOAD, VideoStatus.QUEUED, VideoStatus.PROCESSING)
