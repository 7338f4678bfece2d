"""Recording-session rules both catalogues share (memory and MySQL apply the same transitions).

Each method of ``RecordingCatalogue`` reads the rows it needs (MySQL: ``FOR UPDATE`` in one
transaction; memory: under its lock), asks a function here what to write and which outbox events to
record, and writes that. So the fake and MySQL cannot drift.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reelay.catalogue._common import clip_reason, is_video_id, to_db_time
from reelay.errors import InvalidInput
from reelay.models import OutboxEvent, RecordingSession, RecordingState, Rendition, recording_subject

DEFAULT_RECONNECT_WINDOW = 60  # seconds, as Mux and Livepeer default; 0 disables reconnects
MAX_RECONNECT_WINDOW = 1800
# A session whose window is 0 still needs some heartbeat slack before it counts as stale.
STALE_FLOOR_SECONDS = 30
STORE_URL_MAX = 2048
STORE_REF_MAX = 256
MAX_WRITERS = 64
EXECUTION_ID_MAX = 256
STORE_SOURCES = ("default", "stream", "webhook")
STORE_SECRET_MAX = 16384
RESTARTABLE = (RecordingState.RECORDING, RecordingState.ENDED, RecordingState.FAILED)


def check_window(seconds: int) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 <= seconds <= MAX_RECONNECT_WINDOW:
        raise InvalidInput(f"the reconnect window must be 0 to {MAX_RECONNECT_WINDOW} seconds")
    return seconds


def check_session_id(session_id: str) -> str:
    if not is_video_id(session_id) or "/" in session_id:
        raise InvalidInput("a session id must be 1 to 64 printable ASCII characters without '/'")
    return session_id


def check_writer(writer_id: str) -> str:
    if not isinstance(writer_id, str) or not 1 <= len(writer_id) <= 64 or not writer_id.isascii():
        raise InvalidInput("a writer id must be 1 to 64 ASCII characters")
    return writer_id


def recording_event(kind: str, session: RecordingSession, **extra: object) -> OutboxEvent:
    """``recording.<kind>`` about a session (subject ``recording:<sessionId>``)."""
    detail: dict[str, object] = {
        "sessionId": session.session_id,
        "streamId": session.stream_id,
        "state": session.state.value,
        **extra,
    }
    return OutboxEvent(
        event_type=f"recording.{kind}", subject=recording_subject(session.session_id), detail=detail
    )


@dataclass
class Change:
    """What a transition writes: rows (inserted or replaced) and events, and its answer."""

    rows: list[RecordingSession] = field(default_factory=list)
    events: list[OutboxEvent] = field(default_factory=list)
    changed: bool = False


def last_media(s: RecordingSession) -> datetime:
    return s.last_segment_at or s.heartbeat_at or s.started_at


def merge_renditions(known: Sequence[Rendition], seen: Sequence[Rendition]) -> list[Rendition]:
    """A continued session's renditions: each as the writer that saw its largest picture described it.
    A camera whose size changed across a reconnect (HLS allows that after EXT-X-DISCONTINUITY) gets
    the master playlist's RESOLUTION of its largest picture, and the codec level that size needs, not
    the first one's. Renditions a later writer adds are added; none is removed."""
    out = {r.name: r for r in known}
    for r in seen:
        old = out.get(r.name)
        if old is None or r.width * r.height > old.width * old.height:
            out[r.name] = r
    return list(out.values())


def start(
    latest: RecordingSession | None,
    *,
    stream_id: str,
    writer_id: str,
    now: datetime,
    window: int,
    session_id: str | None,
    store_url: str | None,
    store_ref: str,
    renditions: Sequence[Rendition],
    store_secret: str | None = None,
    store_source: str = "default",
    store_fallback: str | None = None,
) -> tuple[Change, RecordingSession, bool]:
    """Start or continue the stream's session: (change, the session, continued?).

    ``latest`` is the stream's newest session still recording. Media that returns within its window
    continues it (one more discontinuity, the writer added); later, it is ended (reason
    ``reconnect-window-passed``) and a new session starts.
    """
    check_writer(writer_id)
    check_window(window)
    if store_url is not None and len(store_url) > STORE_URL_MAX:
        raise InvalidInput("the store URL is too long")
    if not store_ref or len(store_ref) > STORE_REF_MAX:
        raise InvalidInput(f"the store reference must be 1 to {STORE_REF_MAX} characters")
    if store_source not in STORE_SOURCES:
        raise InvalidInput(f"the store source must be one of {', '.join(STORE_SOURCES)}")
    if store_secret is not None and (not store_secret.isascii() or len(store_secret) > STORE_SECRET_MAX):
        raise InvalidInput("the sealed store URL is too long")
    now = to_db_time(now)
    change = Change(changed=True)
    if latest is not None and latest.state == RecordingState.RECORDING:
        gap = (now - last_media(latest)).total_seconds()
        if latest.reconnect_window_seconds > 0 and gap <= latest.reconnect_window_seconds:
            writers = latest.writers if writer_id in latest.writers else [*latest.writers, writer_id]
            if len(writers) > MAX_WRITERS:
                raise InvalidInput(f"a session has at most {MAX_WRITERS} writers")
            cont = latest.model_copy(
                update={
                    "writers": writers,
                    "discontinuities": latest.discontinuities + 1,
                    "heartbeat_at": now,
                    "updated_at": now,
                    "renditions": merge_renditions(latest.renditions, renditions),
                }
            )
            change.rows.append(cont)
            return change, cont, True
        ended = latest.model_copy(
            update={
                "state": RecordingState.ENDED,
                "ended_at": last_media(latest),
                "end_reason": "reconnect-window-passed",
                "updated_at": now,
            }
        )
        change.rows.append(ended)
        change.events.append(recording_event("ended", ended, reason="reconnect-window-passed"))
    new = RecordingSession(
        session_id=check_session_id(session_id or uuid.uuid4().hex),
        stream_id=stream_id,
        writers=[writer_id],
        store_url=store_url,
        store_ref=store_ref,
        store_secret=store_secret,
        store_source=store_source,
        store_fallback=clip_reason(store_fallback) if store_fallback else None,
        reconnect_window_seconds=window,
        started_at=now,
        heartbeat_at=now,
        renditions=list(renditions),
        created_at=now,
        updated_at=now,
    )
    change.rows.append(new)
    change.events.append(recording_event("started", new, writerId=writer_id, storeUrl=store_url))
    return change, new, False


def heartbeat(s: RecordingSession, writer_id: str, now: datetime, media_at: datetime | None) -> Change:
    if s.state != RecordingState.RECORDING or writer_id not in s.writers:
        return Change()
    update: dict[str, object] = {"heartbeat_at": to_db_time(now), "updated_at": to_db_time(now)}
    if media_at is not None:
        update["last_segment_at"] = to_db_time(media_at)
    return Change([s.model_copy(update=update)], changed=True)


def end(s: RecordingSession, now: datetime, reason: str) -> Change:
    if s.state != RecordingState.RECORDING:
        return Change()
    ended = s.model_copy(
        update={
            "state": RecordingState.ENDED,
            "ended_at": to_db_time(now),
            "end_reason": clip_reason(reason)[:64],
            "updated_at": to_db_time(now),
        }
    )
    return Change([ended], [recording_event("ended", ended, reason=ended.end_reason)], True)


def begin_workflow(s: RecordingSession, execution_id: str, now: datetime, mode: str) -> Change:
    """-> finalizing under ``execution_id``. True again for the same execution (a retried step);
    False when another execution holds it or the session is ready."""
    if not execution_id or len(execution_id) > EXECUTION_ID_MAX:
        raise InvalidInput(f"an execution id must be 1 to {EXECUTION_ID_MAX} characters")
    if s.state == RecordingState.FINALIZING:
        return Change(changed=s.execution_id == execution_id)
    if s.state not in RESTARTABLE:
        return Change()
    update: dict[str, object] = {
        "state": RecordingState.FINALIZING,
        "execution_id": execution_id,
        "workflow_state": mode,
        "failure_reason": None,
        "updated_at": to_db_time(now),
    }
    if s.ended_at is None:  # fixup of a writer that died: it ended when its media did
        update["ended_at"] = last_media(s)
        update["end_reason"] = "writer-lost"
    return Change([s.model_copy(update=update)], [], True)


def step(s: RecordingSession, execution_id: str, workflow_state: str, now: datetime) -> Change:
    if s.state != RecordingState.FINALIZING or s.execution_id != execution_id:
        return Change()
    return Change(
        [s.model_copy(update={"workflow_state": workflow_state[:32], "updated_at": to_db_time(now)})],
        changed=True,
    )


def complete(
    s: RecordingSession,
    *,
    execution_id: str,
    video_id: str,
    duration_seconds: float,
    renditions: Sequence[Rendition],
    discontinuities: int,
    now: datetime,
) -> Change:
    if (
        s.state == RecordingState.READY
        or s.state != RecordingState.FINALIZING
        or s.execution_id != execution_id
    ):
        return Change()
    ready = s.model_copy(
        update={
            "state": RecordingState.READY,
            "video_id": video_id,
            "duration_seconds": float(duration_seconds),
            "renditions": list(renditions),
            "discontinuities": int(discontinuities),
            "workflow_state": "ready",
            "failure_reason": None,
            "updated_at": to_db_time(now),
        }
    )
    event = recording_event("ready", ready, videoId=video_id, durationSeconds=ready.duration_seconds)
    return Change([ready], [event], True)


def fail(s: RecordingSession, reason: str, now: datetime, execution_id: str | None) -> Change:
    if s.state in (RecordingState.READY, RecordingState.FAILED):
        return Change()
    if execution_id is not None and s.state == RecordingState.FINALIZING and s.execution_id != execution_id:
        return Change()
    failed = s.model_copy(
        update={
            "state": RecordingState.FAILED,
            "failure_reason": clip_reason(reason),
            "workflow_state": "failed",
            "updated_at": to_db_time(now),
        }
    )
    return Change([failed], [recording_event("failed", failed, reason=failed.failure_reason)], True)


EXPIRABLE = (RecordingState.ENDED, RecordingState.READY, RecordingState.FAILED)


def expire(s: RecordingSession, now: datetime) -> Change:
    """ended / ready / failed -> expired (its stream's retention removed its media). A session still
    recording or being finalized is left alone: its next sweep expires it."""
    if s.state not in EXPIRABLE:
        return Change()
    gone = s.model_copy(
        update={"state": RecordingState.EXPIRED, "workflow_state": "expired", "updated_at": to_db_time(now)}
    )
    return Change([gone], [recording_event("expired", gone, videoId=s.video_id)], True)


def is_stale(s: RecordingSession, now: datetime) -> bool:
    slack = max(s.reconnect_window_seconds, STALE_FLOOR_SECONDS)
    seen = s.heartbeat_at or s.started_at
    return s.state == RecordingState.RECORDING and seen < to_db_time(now) - timedelta(seconds=slack)
