"""Ports: what the domain needs from the outside world. Adapters implement these.

Services receive their ports by constructor; tests pass in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from reelay.models import (
    DesiredState,
    ModerationRecord,
    OutboxEvent,
    RecordingSession,
    Rendition,
    SourceProtocol,
    Stream,
    StreamHealth,
    TranscodeJob,
    Video,
    VideoMode,
    VideoStatus,
    VideoVisibility,
)
from reelay.quotas import UploadQuota


# --- catalogue -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Page:
    items: list[Video]
    next_cursor: str | None


@dataclass(frozen=True)
class ModerationPage:
    items: list[ModerationRecord]
    next_cursor: str | None


class VideoCatalogue(Protocol):
    """The video catalogue. Raises ``reelay.errors.NotFound`` for unknown ids."""

    def create(self, video: Video, *, quota: UploadQuota | None = None) -> Video:
        """Insert a new video. With a quota, first check the owner's usage against it under a lock
        on the owner, and count the video's size into today's uploads: QuotaExceeded otherwise."""
        ...

    def get(self, video_id: str) -> Video: ...

    def record_event(self, event: OutboxEvent) -> None:
        """Put an event in the outbox on its own, with no change beside it (a CDN invalidation that
        must happen at least once: ``reelay.events.cdn_invalidation``). It needs a ``subject``."""
        ...

    def list_ready(self, *, limit: int, cursor: str | None = None) -> Page:
        """Listed videos (ready, public, not unpublished), newest first, stable order
        (uploadTime DESC, videoId DESC), keyset cursor."""
        ...

    def list_by_owner(self, owner_id: str, *, limit: int, cursor: str | None = None) -> Page:
        """All of one owner's videos, any status, same order and cursor scheme as list_ready."""
        ...

    def update_metadata(
        self, video_id: str, *, display_name: str | None = None, description: str | None = None
    ) -> Video: ...

    def delete(self, video_id: str) -> None: ...

    def set_visibility(
        self, video_id: str, visibility: VideoVisibility, *, event: OutboxEvent | None = None
    ) -> Video:
        """Set the visibility; ``event`` (about a subject only: ``media.relocate``) is recorded in the
        outbox in the same transaction."""
        ...

    def moderate(
        self, record: ModerationRecord, *, unpublished: bool | None = None, event: OutboxEvent | None = None
    ) -> ModerationRecord:
        """Record a moderation in the audit log and, when ``unpublished`` is given, set the video's
        flag, in one transaction, with ``event`` (about a subject only) in the outbox. NotFound for an
        unknown video. Returns the record with its id."""
        ...

    def list_moderation(self, *, limit: int, cursor: str | None = None) -> ModerationPage:
        """The moderation audit log, newest first."""
        ...

    def mark_uploaded(self, video_id: str, *, size_bytes: int, content_type: str | None) -> bool:
        """awaiting_upload -> queued. False when the video is not awaiting its upload: a queued,
        processing or ready video is not queued again, and a failed one stays failed (an upload onto
        a failed video must not reset its attempts and run it again)."""
        ...

    def reopen_upload(self, video_id: str) -> bool:
        """queued (never claimed, no lease) -> awaiting_upload: undo ``mark_uploaded`` when its job
        could not be sent, so the retried upload notification queues it again. False otherwise."""
        ...

    def claim(self, video_id: str, worker_id: str, lease_seconds: int) -> Video | None:
        """queued (or processing with an expired lease) -> processing, owned by worker_id.

        Returns None when the video is ready, failed, deleted or leased by another live worker.
        Increments ``attempts``.
        """
        ...

    def heartbeat(
        self, video_id: str, worker_id: str, *, lease_seconds: int, progress: int, playable: bool
    ) -> bool:
        """Extend the lease and record progress. False when the lease was lost."""
        ...

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
        """processing -> ready (isTranscoded=1, progress=100). True only for the call that did it.

        ``event`` is recorded in the outbox in the same transaction, and only if the transition took;
        so is ``relocation``, an event about a subject (the video's ``media.relocate``).
        """
        ...

    def fail(
        self, video_id: str, reason: str, *, worker_id: str | None = None, event: OutboxEvent | None = None
    ) -> bool:
        """-> failed with a reason. With worker_id, only while that worker holds the lease.

        ``event`` is recorded in the outbox in the same transaction, and only if the transition took.
        """
        ...

    def release(self, video_id: str, worker_id: str) -> bool:
        """Hand a claimed job back: processing -> queued, lease cleared (SIGTERM path)."""
        ...

    def in_flight(self) -> list[Video]:
        """Videos queued or processing: re-enqueued when the local platform starts."""
        ...

    # --- event outbox ---------------------------------------------------------------------------
    def claim_events(
        self, *, limit: int, lease_seconds: int, video_id: str | None = None, subject: str | None = None
    ) -> list[OutboxEvent]:
        """Up to ``limit`` due outbox events (optionally of one video, or one subject such as
        ``stream:<id>``), oldest first, each leased.

        A claimed event is not due again for ``lease_seconds`` (a publisher that dies mid-way is
        retried then) and its ``attempts`` counts this claim. Concurrent callers never get the same
        event while its lease runs.
        """
        ...

    def delete_event(self, event_id: int) -> None:
        """Forget a published event. An unknown id is not an error (already deleted)."""
        ...

    def pending_events(self) -> tuple[int, float]:
        """How many outbox events wait, and the age in seconds of the oldest (0.0 when none)."""
        ...

    # --- the media mover's lease (reelay.media_location) ------------------------------------------
    def claim_media_move(self, video_id: str, mover_id: str, lease_seconds: int) -> bool:
        """Take the lease on moving ``video_id``'s media for ``mover_id`` (unique per claim): True when
        no one holds a live one. Any video id, deleted or not (a deleted video's media is deleted
        under it)."""
        ...

    def renew_media_move(self, video_id: str, mover_id: str, lease_seconds: int) -> bool:
        """Extend ``mover_id``'s lease by ``lease_seconds`` from now. False when it no longer holds a
        live one (it ran out, and may have passed to another mover): it must then delete nothing."""
        ...

    def release_media_move(self, video_id: str, mover_id: str) -> None:
        """Let the lease go, if ``mover_id`` still holds it (otherwise nothing happens)."""
        ...


class EventOutbox(Protocol):
    """The outbox part of the catalogue, all that ``reelay.events.OutboxSweep`` needs."""

    def claim_events(
        self, *, limit: int, lease_seconds: int, video_id: str | None = None, subject: str | None = None
    ) -> list[OutboxEvent]: ...

    def delete_event(self, event_id: int) -> None: ...

    def pending_events(self) -> tuple[int, float]: ...


# --- streams (the live relay) -------------------------------------------------------------------
@dataclass(frozen=True)
class StreamPage:
    items: list[Stream]
    next_cursor: str | None


class StreamCatalogue(Protocol):
    """Live relay streams and their relay tasks' leases. Raises ``NotFound`` for unknown or deleted ids.

    Lease with fencing: a relay task claims a stream's lease and gets a token (a counter that grows by
    one on every successful claim). Renewing, releasing and reporting health all carry the token, so a
    task that lost its lease (it stalled, the lease expired, another task claimed) writes nothing.
    Lease times are the catalogue's clock (the database server's for MySQL).
    """

    def create_stream(self, stream: Stream) -> Stream:
        """Conflict if the id, or the kvsStreamName, is already used by another stream."""
        ...

    def get_stream(self, stream_id: str) -> Stream: ...

    def list_streams_by_owner(self, owner_id: str, *, limit: int, cursor: str | None = None) -> StreamPage:
        """One owner's streams, newest first (createdAt DESC, streamId DESC), keyset cursor."""
        ...

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
        """Change what is given. ``source_secret`` goes with ``source_url``: it replaces the stored
        secret (None clears it) when, and only when, ``source_url`` is given."""
        ...

    def update_stream_recording(self, stream_id: str, changes: Mapping[str, object]) -> Stream:
        """Change a stream's recording settings (``reelay.catalogue._stream_recording``): exactly the
        keys given, None clearing one. InvalidInput for a value out of range."""
        ...

    def delete_stream(self, stream_id: str) -> None:
        """Forget a stream. One whose relay task still holds a live lease is marked deleted (desired
        stopped) instead: ``streams_to_reconcile`` lists it and ``release_stream_lease`` removes it."""
        ...

    def set_desired_state(
        self, stream_id: str, desired: DesiredState, *, event: OutboxEvent | None = None
    ) -> bool:
        """True when this call changed the desired state; ``event`` is recorded in the outbox in the
        same transaction, and only then. False when it already was ``desired`` (idempotent)."""
        ...

    def claim_stream_lease(self, stream_id: str, task_id: str, lease_seconds: int) -> int | None:
        """Take the relay lease for ``task_id``: the new fencing token, or None.

        Succeeds when no task holds a live lease, the lease expired, or ``task_id`` holds it already
        (a restarted task re-claims at once); never for a deleted stream or one whose desired state
        is stopped. Sets state ``starting`` and taskStartedAt (unless the same task re-claims).
        """
        ...

    def renew_stream_lease(self, stream_id: str, task_id: str, token: int, lease_seconds: int) -> bool:
        """Extend the lease. False means stop relaying: the lease was lost (another token), or the stream
        was stopped or deleted meanwhile. Release the lease after stopping."""
        ...

    def release_stream_lease(self, stream_id: str, task_id: str, token: int) -> bool:
        """Give the lease up (the task stops): state ``stopped``, the task identity and outage cleared.
        Removes a stream deleted meanwhile. False when ``token`` no longer holds the lease."""
        ...

    def report_stream_health(self, stream_id: str, token: int, health: StreamHealth) -> bool:
        """Record what the task sees. Fenced: False, and nothing written, unless ``token`` is the token
        of the current lease. None for the last-fragment fields keeps the earlier values (the last ack
        stays visible across task restarts); None for the others clears them."""
        ...

    def streams_to_reconcile(self, now: datetime | None = None) -> list[Stream]:
        """Streams whose relay task must be started or stopped, by streamId: desired running without a
        live lease, and desired stopped or deleted with a live lease (``lease_owner`` is the task to
        stop). ``now`` defaults to the catalogue's clock."""
        ...


class RelayLauncher(Protocol):
    """Starts and stops relay tasks (ECS RunTask/StopTask in AWS, child processes locally).

    Both are asynchronous and idempotent: the task itself claims the stream's lease, so launching a
    stream that already has a task starts one that finds the lease taken and exits.
    """

    def launch(self, stream_id: str) -> None:
        """Start a relay task for the stream."""
        ...

    def stop(self, stream_id: str, task_id: str) -> None:
        """Ask the task holding the stream's lease (``lease_owner``) to stop: SIGTERM, then it
        flushes kvssink and releases the lease."""
        ...


# --- recording sessions -----------------------------------------------------------------------
@dataclass(frozen=True)
class SessionPage:
    items: list[RecordingSession]
    next_cursor: str | None


class RecordingCatalogue(Protocol):
    """Recording sessions (``reelay.catalogue._recordings`` has the rules). Raises ``NotFound`` for
    unknown sessions. Each transition records its outbox event (subject ``recording:<sessionId>``)
    in the same transaction: recording.started, .ended, .ready, .failed. ``now`` defaults to the
    catalogue's clock."""

    def start_recording_session(
        self,
        stream_id: str,
        writer_id: str,
        *,
        reconnect_window_seconds: int = 60,
        store_url: str | None = None,
        store_ref: str = "default",
        renditions: Sequence[Rendition] = (),
        session_id: str | None = None,
        store_secret: str | None = None,
        store_source: str = "default",
        store_fallback: str | None = None,
        now: datetime | None = None,
    ) -> tuple[RecordingSession, bool]:
        """Start a session, or continue the stream's recording one when its media stopped no longer
        than its window ago (True: continued, one more discontinuity, the writer added)."""
        ...

    def heartbeat_recording_session(
        self,
        session_id: str,
        writer_id: str,
        *,
        media_at: datetime | None = None,
        now: datetime | None = None,
    ) -> bool:
        """A writer is alive (and wrote media at ``media_at``). False unless recording with that writer."""
        ...

    def end_recording_session(
        self, session_id: str, *, reason: str = "stopped", now: datetime | None = None
    ) -> bool:
        """recording -> ended. False when it was not recording (idempotent)."""
        ...

    def get_recording_session(self, session_id: str) -> RecordingSession: ...

    def list_recording_sessions(self, stream_id: str, *, limit: int = 100) -> list[RecordingSession]:
        """A stream's sessions, newest first."""
        ...

    def list_recording_sessions_page(
        self, stream_id: str, *, limit: int, cursor: str | None = None
    ) -> SessionPage:
        """A stream's sessions, newest first (startedAt DESC, sessionId DESC), keyset cursor."""
        ...

    def recording_sessions_past_retention(self, now: datetime | None = None) -> list[RecordingSession]:
        """Ended, ready or failed sessions of streams with retentionDays, that ended longer ago."""
        ...

    def expire_recording_session(self, session_id: str, *, now: datetime | None = None) -> bool:
        """ended / ready / failed -> expired; emits recording.expired. False otherwise."""
        ...

    def stale_recording_sessions(self, now: datetime | None = None) -> list[RecordingSession]:
        """Recording sessions with no heartbeat for longer than their reconnect window: fixup them."""
        ...

    def ended_recording_sessions(self) -> list[RecordingSession]:
        """Ended sessions no workflow has taken yet: finalize them."""
        ...

    def begin_recording_workflow(
        self, session_id: str, execution_id: str, *, mode: str = "finalize", now: datetime | None = None
    ) -> bool:
        """-> finalizing, held by ``execution_id``; True again for that execution (a retried step)."""
        ...

    def set_recording_workflow_state(
        self, session_id: str, execution_id: str, workflow_state: str
    ) -> bool: ...

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
        """finalizing -> ready with its video; emits recording.ready. False if already done."""
        ...

    def fail_recording_session(
        self, session_id: str, reason: str, *, execution_id: str | None = None
    ) -> bool:
        """-> failed with a reason; emits recording.failed. False when ready or failed already."""
        ...


# --- object stores ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    last_modified: datetime | None = None


@dataclass(frozen=True)
class PresignedPart:
    part_number: int
    url: str


class ObjectStore(Protocol):
    """One bucket (or directory) plus an optional key prefix. Keys are relative to the prefix."""

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        cache_control: str | None = None,
    ) -> None: ...

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        cache_control: str | None = None,
    ) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...

    def download(self, key: str, dest: Path) -> None: ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def delete(self, key: str) -> None: ...

    def copy(self, src_key: str, dst_key: str) -> None:
        """Copy one object inside the store, its content type, metadata and cache control kept.
        NotFound when ``src_key`` does not exist."""
        ...

    def delete_prefix(self, prefix: str) -> int: ...

    def set_tags(self, key: str, tags: Mapping[str, str]) -> None:
        """Replace the object's tags (lifecycle rules act on them). NotFound for a missing key."""
        ...

    def presign_put(
        self,
        key: str,
        *,
        content_type: str,
        expires_in: int,
        content_length: int | None = None,
        create_only: bool = False,
    ) -> str:
        """With content_length, the URL accepts a body of exactly that many bytes (it is signed).
        With create_only, the client must send ``If-None-Match: *`` (a signed header too), and the
        PUT is refused with 412 once the object exists: the URL cannot replace what it uploaded."""
        ...

    def create_multipart(self, key: str, *, content_type: str) -> str: ...

    def presign_part(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        *,
        expires_in: int,
        content_length: int | None = None,
    ) -> str:
        """With content_length, the part URL accepts a body of exactly that many bytes (it is signed)."""
        ...

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> None:
        """parts: (part_number, etag) in any order."""
        ...

    def abort_multipart(self, key: str, upload_id: str) -> None: ...


# --- queue, events, identity -----------------------------------------------------------------
@dataclass
class QueueMessage:
    job: TranscodeJob
    receipt: str
    receive_count: int
    raw: dict[str, Any] = field(default_factory=dict)


class JobQueue(Protocol):
    def send(self, job: TranscodeJob) -> None: ...

    def receive(self, *, max_messages: int = 1, wait_seconds: int = 20) -> list[QueueMessage]:
        """Long poll. Messages whose body is not a valid job are deleted and logged, not returned."""
        ...

    def delete(self, message: QueueMessage) -> None: ...

    def extend(self, message: QueueMessage, seconds: int) -> None:
        """Extend visibility while the job runs."""
        ...

    def release(self, message: QueueMessage) -> None:
        """Make the message visible again now (hand the job back)."""
        ...


class PlaybackSigner(Protocol):
    """Signs access to one video's media (every playlist and segment under its prefix) for a while.

    ``base_url`` is where the signed media is served (CloudFront's /private-outputs path, or the local
    gateway's /media/private-outputs: private videos' own prefix); the query goes on the master
    playlist's URL and the player repeats it on every request under ``{base_url}/{video_id}/``.
    """

    base_url: str

    def signed_query(self, video_id: str, expires_in: int) -> str:
        """The query string (no leading ``?``) that authorizes ``{base_url}/{video_id}/*``."""
        ...


class CdnInvalidator(Protocol):
    """Drops cached copies of published media (CloudFront). Raises when the CDN refused or was not
    reached: call it through the outbox (``cdn.invalidate`` events, reelay.events), which retries."""

    def invalidate(self, paths: list[str]) -> None:
        """paths: URL paths on the distribution, e.g. ``/outputs/{videoId}/*``."""
        ...


class EventPublisher(Protocol):
    def publish(self, event_type: str, detail: dict[str, Any]) -> None:
        """Publish e.g. ``video.ready`` / ``video.failed``."""
        ...


@dataclass(frozen=True)
class Tokens:
    id_token: str
    access_token: str
    refresh_token: str | None
    expires_in: int
    token_type: str = "Bearer"


class IdentityProvider(Protocol):
    """Raises ``reelay.errors.AuthError`` with a stable code for each failure."""

    def register(self, email: str, password: str) -> str:
        """Returns the new user's id (Cognito sub)."""
        ...

    def confirm(self, email: str, code: str) -> None: ...

    def resend_code(self, email: str) -> None: ...

    def login(self, email: str, password: str) -> Tokens: ...

    def refresh(self, refresh_token: str) -> Tokens: ...


__all__ = [
    "CdnInvalidator",
    "EventOutbox",
    "EventPublisher",
    "IdentityProvider",
    "JobQueue",
    "ObjectInfo",
    "ObjectStore",
    "Page",
    "PresignedPart",
    "QueueMessage",
    "RecordingCatalogue",
    "RelayLauncher",
    "StreamCatalogue",
    "StreamPage",
    "Tokens",
    "VideoCatalogue",
    "VideoStatus",
]
