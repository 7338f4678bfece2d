"""Rules both catalogues share, so the fake and MySQL cannot drift: cursors, limits, timestamps."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import replace
from datetime import UTC, datetime
from enum import Enum
from typing import TypeVar

from reelay.errors import InvalidInput
from reelay.models import (
    ModerationRecord,
    OutboxEvent,
    SourceProtocol,
    Stream,
    StreamHealth,
    StreamState,
    Video,
    VideoMode,
    VideoVisibility,
)

E = TypeVar("E", bound=Enum)

VIDEO_ID_MAX = 64
DISPLAY_NAME_MAX = 255
DESCRIPTION_MAX = 5000
FAILURE_REASON_MAX = 2000
MAX_PAGE = 1000
_CURSOR_MAX_CHARS = 512
# DATETIME(3)'s range: a cursor outside it was not issued by the API.
_DATETIME_MIN = datetime(1000, 1, 1)
_DATETIME_MAX = datetime(9999, 12, 31, 23, 59, 59, 999000)
EVENT_TYPE_MAX = 64
EVENT_DETAIL_MAX_BYTES = 200_000  # under SNS's 256 KiB with room for the envelope
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def to_db_time(value: datetime) -> datetime:
    """Naive UTC at millisecond precision, what DATETIME(3) stores (MySQL would round, not truncate)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(microsecond=(value.microsecond // 1000) * 1000)


def encode_cursor(upload_time: datetime, video_id: str) -> str:
    raw = json.dumps([to_db_time(upload_time).isoformat(timespec="milliseconds"), video_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (uploadTime, videoId) after which the next page starts. Anything else is InvalidInput.

    Only the exact form encode_cursor issues is accepted: a naive ISO time with milliseconds in
    DATETIME's range. An offset like ``9999-12-31T23:59-23:00`` would overflow when turned into UTC
    (an OverflowError that once escaped as a 500), and a year MySQL cannot store has no place in one.
    """
    bad = InvalidInput("cursor is not valid; use the nextCursor value from the previous page")
    if not isinstance(cursor, str) or not cursor or len(cursor) > _CURSOR_MAX_CHARS:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        upload_time, video_id = json.loads(raw.decode())
        if not isinstance(upload_time, str) or not isinstance(video_id, str):
            raise ValueError("wrong types")
        parsed = datetime.fromisoformat(upload_time)
        if parsed.tzinfo is not None or not _DATETIME_MIN <= parsed <= _DATETIME_MAX:
            raise ValueError("not a time the API issues")
        if parsed.isoformat(timespec="milliseconds") != upload_time:
            raise ValueError("not the form the API issues")
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise bad from exc
    if not is_video_id(video_id):
        raise bad
    return parsed, video_id


def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be an integer from 1 to {MAX_PAGE}")
    return limit


def check_display_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > DISPLAY_NAME_MAX:
        raise InvalidInput(f"displayName must be 1 to {DISPLAY_NAME_MAX} characters")
    return name


def check_description(text: str) -> str:
    if not isinstance(text, str) or len(text) > DESCRIPTION_MAX:
        raise InvalidInput(f"description must be at most {DESCRIPTION_MAX} characters")
    return text


def check_lease_seconds(seconds: int) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= 86400:
        raise InvalidInput("lease_seconds must be an integer from 1 to 86400")
    return seconds


def clamp_progress(progress: int) -> int:
    return max(0, min(100, int(progress)))


def clip_reason(reason: str) -> str:
    return (reason or "failed")[:FAILURE_REASON_MAX]


_ID_CHARS = re.compile(r"^[\x21-\x7e]+$")
VIDEO_KEY_MAX = 1024
OWNER_ID_MAX = 128
EMAIL_MAX = 320
CONTENT_TYPE_MAX = 255
WORKER_ID_MAX = 128


def is_video_id(video_id: object) -> bool:
    """Printable ASCII, 1-64 chars: what the videoId column (ascii_bin) can hold."""
    return isinstance(video_id, str) and len(video_id) <= VIDEO_ID_MAX and bool(_ID_CHARS.match(video_id))


MODERATION_REASON_MAX = 1000


def check_moderation(record: ModerationRecord) -> ModerationRecord:
    _check_text("moderatorId", record.moderator_id, OWNER_ID_MAX)
    _check_text("moderatorEmail", record.moderator_email, EMAIL_MAX)
    if not is_video_id(record.video_id):
        raise InvalidInput(f"videoId must be 1 to {VIDEO_ID_MAX} printable ASCII characters")
    if len(record.reason) > MODERATION_REASON_MAX:
        raise InvalidInput(f"reason must be at most {MODERATION_REASON_MAX} characters")
    return record


def check_visibility(value: object) -> VideoVisibility:
    return _enum(VideoVisibility, value, "visibility")


def encode_audit_cursor(audit_id: int) -> str:
    return f"a{audit_id}"


def decode_audit_cursor(cursor: str) -> int:
    """The audit id a cursor of ``list_moderation`` stands for; InvalidInput for anything else."""
    if not isinstance(cursor, str) or not re.fullmatch(r"a[0-9]{1,18}", cursor):
        raise InvalidInput("cursor is not one this API issued")
    return int(cursor[1:])


def check_video(video: Video) -> None:
    """Everything a new row must satisfy, checked before any storage sees it."""
    if not is_video_id(video.video_id):
        raise InvalidInput(f"videoId must be 1 to {VIDEO_ID_MAX} printable ASCII characters")
    check_display_name(video.display_name)
    check_description(video.description)
    _check_text("videoKey", video.video_key, VIDEO_KEY_MAX)
    _check_text("ownerId", video.owner_id, OWNER_ID_MAX)
    _check_text("email", video.email, EMAIL_MAX)
    if video.content_type is not None:
        _check_text("contentType", video.content_type, CONTENT_TYPE_MAX)
    if video.size_bytes is not None:
        check_size(video.size_bytes)
    if not 0 <= video.progress <= 100:
        raise InvalidInput("progress must be from 0 to 100")
    if video.attempts < 0:
        raise InvalidInput("attempts must not be negative")


def check_size(size_bytes: int) -> int:
    if isinstance(size_bytes, bool) or not isinstance(size_bytes, int) or size_bytes < 0:
        raise InvalidInput("sizeBytes must be a non-negative integer")
    return size_bytes


def check_content_type(content_type: str | None) -> str | None:
    if content_type is not None:
        _check_text("contentType", content_type, CONTENT_TYPE_MAX)
    return content_type


def check_worker_id(worker_id: str) -> str:
    _check_text("worker_id", worker_id, WORKER_ID_MAX)
    return worker_id


def _check_text(name: str, value: object, limit: int) -> None:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidInput(f"{name} must be 1 to {limit} characters")


def check_duration(seconds: float) -> float:
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        raise InvalidInput("duration_seconds must be a number") from None
    if not math.isfinite(value) or value < 0:
        raise InvalidInput("duration_seconds must be a finite, non-negative number")
    return value


_SUBJECT = re.compile(r"^[a-z]+:[\x21-\x7e]{1,118}$")


def is_subject(subject: object) -> bool:
    """An outbox subject such as ``stream:<streamId>``: what the subject column (ascii) can hold."""
    return isinstance(subject, str) and bool(_SUBJECT.match(subject))


_EVENT_KEY = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def event_row(event: OutboxEvent, video_id: str | None, subject: str | None = None) -> tuple[str, str, str]:
    """An outbox event as the (eventKey, eventType, detail JSON) it is stored as. It must be about
    ``video_id`` (None: no video) and ``subject`` (None: none), the change it is recorded with."""
    if not isinstance(event, OutboxEvent):
        raise InvalidInput("event must be an OutboxEvent")
    if event.video_id != video_id:
        raise InvalidInput(f"event is about video {event.video_id!r}, not {video_id!r}")
    if event.subject != subject:
        raise InvalidInput(f"event is about {event.subject!r}, not {subject!r}")
    if subject is not None and not is_subject(subject):
        raise InvalidInput("an event subject must look like 'stream:<id>'")
    if not _EVENT_KEY.match(event.event_key):
        raise InvalidInput("event key must be 1 to 64 letters, digits or dashes")
    kind = event.event_type
    if len(kind) > EVENT_TYPE_MAX or not _EVENT_TYPE.match(kind):
        raise InvalidInput(f"event type {kind!r} must look like 'video.ready' (lower-case, dotted)")
    try:
        detail = json.dumps(event.detail, separators=(",", ":"), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"event detail is not JSON: {exc}") from None
    if len(detail.encode()) > EVENT_DETAIL_MAX_BYTES:
        raise InvalidInput(f"event detail is larger than {EVENT_DETAIL_MAX_BYTES} bytes")
    return event.event_key, kind, detail


def subject_event_row(event: OutboxEvent | None) -> tuple[str, str, str] | None:
    """An event recorded beside a change, about its subject only (it must outlive the video's row)."""
    if event is None:
        return None
    if not isinstance(event, OutboxEvent) or event.subject is None:
        raise InvalidInput("an event recorded with this change needs a subject")
    return event_row(event, None, event.subject)


# --- streams ----------------------------------------------------------------------------------
STREAM_NAME_MAX = 255
SOURCE_URL_MAX = 2048
SOURCE_SECRET_MAX = 16_000
OUTAGE_CAUSE_MAX = 512
FRAGMENT_NUMBER_MAX = 128
# Kinesis Video Streams names: 1-256 of [a-zA-Z0-9_.-].
KVS_STREAM_NAME = re.compile(r"^[a-zA-Z0-9_.\-]{1,256}$")
_SECRET_CHARS = re.compile(r"^[\x21-\x7e]+$")


def check_stream(stream: Stream) -> None:
    """Everything a new stream row must satisfy, checked before any storage sees it."""
    if not is_video_id(stream.stream_id):
        raise InvalidInput(f"streamId must be 1 to {VIDEO_ID_MAX} printable ASCII characters")
    _check_text("ownerId", stream.owner_id, OWNER_ID_MAX)
    check_stream_name(stream.name)
    check_source(stream.source_url, stream.source_secret)
    if stream.kvs_stream_name is not None:
        check_kvs_stream_name(stream.kvs_stream_name)
    elif not stream.record_enabled:
        raise InvalidInput("a stream relays to KVS, records, or both")
    check_health(_health_of(stream))
    from reelay.catalogue._stream_recording import check_stream_recording

    check_stream_recording(stream)
    if stream.lease_token < 0:
        raise InvalidInput("leaseToken must not be negative")


def check_stream_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > STREAM_NAME_MAX:
        raise InvalidInput(f"name must be 1 to {STREAM_NAME_MAX} characters")
    return name


def check_source(url: str, secret: str | None) -> None:
    _check_text("sourceUrl", url, SOURCE_URL_MAX)
    if secret is not None and (
        not isinstance(secret, str) or len(secret) > SOURCE_SECRET_MAX or not _SECRET_CHARS.match(secret)
    ):
        raise InvalidInput(
            f"the source secret must be 1 to {SOURCE_SECRET_MAX} ASCII characters (ciphertext)"
        )


def check_kvs_stream_name(name: str) -> str:
    if not isinstance(name, str) or not KVS_STREAM_NAME.match(name):
        raise InvalidInput("kvsStreamName must be 1 to 256 letters, digits, '_', '.' or '-'")
    return name


def check_task_id(task_id: str) -> str:
    _check_text("task_id", task_id, WORKER_ID_MAX)
    return task_id


def check_token(token: int) -> int:
    if isinstance(token, bool) or not isinstance(token, int) or token < 1:
        raise InvalidInput("a lease token is a positive integer (from claim_stream_lease)")
    return token


def check_health(health: StreamHealth) -> StreamHealth:
    """The health report as stored: times in naive UTC milliseconds, the cause clipped."""
    if not isinstance(health, StreamHealth):
        raise InvalidInput("health must be a StreamHealth")
    try:
        state = StreamState(health.state)
    except ValueError:
        raise InvalidInput(f"state must be one of {', '.join(s.value for s in StreamState)}") from None
    for name in ("reconnects", "slate_fragments_persisted", "input_bitrate_bps", "last_fragment_timecode"):
        value = getattr(health, name)
        if name in ("input_bitrate_bps", "last_fragment_timecode") and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
            raise InvalidInput(f"{name} must be a non-negative integer")
    number = health.last_fragment_number
    if number is not None and (
        not isinstance(number, str) or len(number) > FRAGMENT_NUMBER_MAX or not _SECRET_CHARS.match(number)
    ):
        raise InvalidInput(
            f"last_fragment_number must be 1 to {FRAGMENT_NUMBER_MAX} printable ASCII characters"
        )
    cause = health.outage_cause
    if cause is not None and not isinstance(cause, str):
        raise InvalidInput("outage_cause must be text")
    return replace(
        health,
        state=state,
        outage_cause=cause[:OUTAGE_CAUSE_MAX] if cause else None,
        outage_since=_db_time_or_none("outage_since", health.outage_since),
        last_fragment_ack_at=_db_time_or_none("last_fragment_ack_at", health.last_fragment_ack_at),
        credentials_expire_at=_db_time_or_none("credentials_expire_at", health.credentials_expire_at),
        slate_since=_db_time_or_none("slate_since", health.slate_since),
    )


def _db_time_or_none(name: str, value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidInput(f"{name} must be a datetime")
    return to_db_time(value)


def _health_of(stream: Stream) -> StreamHealth:
    return StreamHealth(
        state=stream.state,
        outage_cause=stream.outage_cause,
        outage_since=stream.outage_since,
        reconnects=stream.reconnects,
        input_bitrate_bps=stream.input_bitrate_bps,
        last_fragment_number=stream.last_fragment_number,
        last_fragment_timecode=stream.last_fragment_timecode,
        last_fragment_ack_at=stream.last_fragment_ack_at,
        credentials_expire_at=stream.credentials_expire_at,
        slate_since=stream.slate_since,
        slate_fragments_persisted=stream.slate_fragments_persisted,
    )


def stream_changes(
    *,
    name: str | None,
    source_url: str | None,
    source_protocol: SourceProtocol | None,
    source_secret: str | None,
    kvs_stream_name: str | None,
    video_mode: VideoMode | None,
    record_enabled: bool | None = None,
) -> dict[str, object]:
    """The checked changes of ``update_stream``, by field. The secret goes with the URL (see the port)."""
    changes: dict[str, object] = {}
    if name is not None:
        changes["name"] = check_stream_name(name)
    if source_url is not None:
        check_source(source_url, source_secret)
        changes["source_url"] = source_url
        changes["source_secret"] = source_secret
        if source_protocol is None:
            raise InvalidInput("a new sourceUrl needs its protocol")
    if source_protocol is not None:
        changes["source_protocol"] = _enum(SourceProtocol, source_protocol, "sourceProtocol")
    if kvs_stream_name is not None:
        changes["kvs_stream_name"] = check_kvs_stream_name(kvs_stream_name)
    if video_mode is not None:
        changes["video_mode"] = _enum(VideoMode, video_mode, "video")
    if record_enabled is not None:
        changes["record_enabled"] = bool(record_enabled)
    return changes


def _enum(kind: type[E], value: object, name: str) -> E:
    try:
        return kind(value)
    except ValueError:
        raise InvalidInput(f"{name} must be one of {', '.join(str(v.value) for v in kind)}") from None
