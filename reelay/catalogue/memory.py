"""In-memory VideoCatalogue: the fake other units test against. Same rules as MySQLCatalogue."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

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
    to_db_time,
)
from reelay.errors import Conflict, NotFound
from reelay.models import OutboxEvent, Rendition, Video, VideoStatus, utcnow
from reelay.ports import Page


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
    video_id: str
    detail: str  # JSON text, as the MySQL column holds it
    created_at: datetime
    next_attempt_at: datetime
    attempts: int = 0


class MemoryCatalogue:
    """Thread-safe dict of videos. Returned videos are copies: mutate them freely.

    ``clock`` returns naive UTC; tests may pass their own to move time without sleeping.
    """

    def __init__(self, clock: Callable[[], datetime] = utcnow) -> None:
        self._rows: dict[str, _Row] = {}
        self._events: dict[int, _Event] = {}
        self._event_ids = itertools.count(1)
        self._lock = threading.RLock()
        self._clock = clock

    # --- plain CRUD ---------------------------------------------------------------------------
    def create(self, video: Video) -> Video:
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
            self._rows[stored.video_id] = _Row(stored)
            return stored.model_copy(deep=True)

    def get(self, video_id: str) -> Video:
        with self._lock:
            return self._row(video_id).video.model_copy(deep=True)

    def list_ready(self, *, limit: int, cursor: str | None = None) -> Page:
        return self._page(lambda v: v.status == VideoStatus.READY, limit, cursor)

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

    # --- the transcode lifecycle --------------------------------------------------------------
    def mark_uploaded(self, video_id: str, *, size_bytes: int, content_type: str | None) -> bool:
        check_size(size_bytes)
        check_content_type(content_type)
        with self._lock:
            row = self._row(video_id)
            if row.video.status not in (VideoStatus.AWAITING_UPLOAD, VideoStatus.FAILED):
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
    ) -> bool:
        duration = check_duration(duration_seconds)
        stored = event_row(event, video_id) if event is not None else None
        with self._lock:
            row = self._held(video_id, worker_id)
            if row is None:
                return False
            self._record(video_id, stored)
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
        self, *, limit: int, lease_seconds: int, video_id: str | None = None
    ) -> list[OutboxEvent]:
        check_limit(limit)
        check_lease_seconds(lease_seconds)
        with self._lock:
            now = to_db_time(self._clock())
            due = [
                e
                for e in self._events.values()
                if e.next_attempt_at <= now and (video_id is None or e.video_id == video_id)
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
                        detail=json.loads(e.detail),
                        created_at=e.created_at,
                        attempts=e.attempts,
                    )
                )
            return claimed

    def delete_event(self, event_id: int) -> None:
        with self._lock:
            self._events.pop(event_id, None)

    def pending_events(self) -> tuple[int, float]:
        with self._lock:
            if not self._events:
                return 0, 0.0
            oldest = min(e.created_at for e in self._events.values())
            age = (to_db_time(self._clock()) - oldest).total_seconds()
            return len(self._events), max(0.0, age)

    # --- helpers ------------------------------------------------------------------------------
    def _record(self, video_id: str, stored: tuple[str, str, str] | None) -> None:
        if stored is None:
            return
        key, kind, detail = stored
        if any(e.event_key == key for e in self._events.values()):
            raise Conflict(f"event {key} is already in the outbox")  # MySQL: the unique key refuses it
        now = to_db_time(self._clock())
        event_id = next(self._event_ids)
        self._events[event_id] = _Event(event_id, key, kind, video_id, detail, now, now)

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


_FAILABLE = (VideoStatus.AWAITING_UPLOAD, VideoStatus.QUEUED, VideoStatus.PROCESSING)
