"""Catalogue entities shared by every part of Reelay."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    """Current UTC time truncated to milliseconds (MySQL DATETIME(3) precision)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


class VideoStatus(StrEnum):
    AWAITING_UPLOAD = "awaiting_upload"
    QUEUED = "queued"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class VideoSource(StrEnum):
    UPLOAD = "upload"
    RECORDING = "recording"


class VideoVisibility(StrEnum):
    """public: listed and playable by anyone; unlisted: playable by whoever has the link, not listed;
    private: the owner only (its media is served only with a signature, see reelay.playback)."""

    PUBLIC = "public"
    UNLISTED = "unlisted"
    PRIVATE = "private"


class ModerationAction(StrEnum):
    UNPUBLISH = "unpublish"
    REPUBLISH = "republish"
    DELETE = "delete"


class Rendition(BaseModel):
    """One HLS variant of a video, as written to the master playlist."""

    model_config = ConfigDict(frozen=True)

    name: str  # e.g. "720p" or "audio"
    width: int = 0
    height: int = 0
    bandwidth: int  # peak bits per second, as in EXT-X-STREAM-INF BANDWIDTH
    average_bandwidth: int | None = None
    codecs: str  # RFC 6381, e.g. 'avc1.64001f,mp4a.40.2'
    playlist: str  # path relative to the video's output prefix, e.g. "720p/index.m3u8"


class Video(BaseModel):
    """A catalogue row. Field names are snake_case here and camelCase in MySQL and the API."""

    video_id: str
    video_key: str  # object key of the uploaded source (seed column videoKey)
    display_name: str
    description: str = ""
    owner_id: str
    email: str
    status: VideoStatus = VideoStatus.AWAITING_UPLOAD
    failure_reason: str | None = None
    progress: int = 0  # percent, while processing
    playable: bool = False  # first segments are published and play before the job ends
    is_transcoded: bool = False
    duration_seconds: float | None = None
    renditions: list[Rendition] = Field(default_factory=list)
    source: VideoSource = VideoSource.UPLOAD
    visibility: VideoVisibility = VideoVisibility.PUBLIC
    # Set by a moderator: the video is treated as private (owner only) whatever its visibility, and
    # only a moderator lifts it.
    unpublished: bool = False
    content_type: str | None = None
    size_bytes: int | None = None
    attempts: int = 0  # transcode attempts started
    upload_time: datetime = Field(default_factory=utcnow)  # seed column uploadTime
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def owner_only(self) -> bool:
        """Only its owner (and moderators) may see and play it."""
        return self.unpublished or self.visibility == VideoVisibility.PRIVATE

    @property
    def listed(self) -> bool:
        """Shown in the public list (GET /videos)."""
        return (
            self.status == VideoStatus.READY
            and self.visibility == VideoVisibility.PUBLIC
            and not self.unpublished
        )


class ModerationRecord(BaseModel):
    """One moderation audit entry: who did what to which video, when and why."""

    moderator_id: str
    moderator_email: str
    action: ModerationAction
    video_id: str
    owner_id: str
    reason: str
    audit_id: int | None = None  # assigned by the catalogue
    created_at: datetime = Field(default_factory=utcnow)


class TranscodeJob(BaseModel):
    """The message on the transcode queue. One job id follows a video from upload to ready."""

    model_config = ConfigDict(populate_by_name=True)

    video_id: str = Field(alias="videoId")
    source_key: str = Field(alias="sourceKey")
    job_id: str = Field(alias="jobId")

    @classmethod
    def for_video(cls, video: Video) -> TranscodeJob:
        """A new job (fresh job id) for a video's uploaded source."""
        return cls(videoId=video.video_id, sourceKey=video.video_key, jobId=uuid.uuid4().hex)


class OutboxEvent(BaseModel):
    """An event recorded in the catalogue in the same transaction as the change it announces.

    The transactional outbox: ``video.ready`` and ``video.failed`` are written with the status change
    and published afterwards (``reelay.events.OutboxSweep``), so a crash or an SNS outage between the
    two delays an event instead of losing it. Delivery is at least once: ``event_id`` is in every
    published detail so subscribers can drop a repeat, and ``occurredAt`` the time of the change.
    """

    event_type: str
    video_id: str | None = None  # the video it is about; None for stream and recording events
    detail: dict[str, Any] = Field(default_factory=dict)
    # What a video-less event is about, e.g. "stream:<streamId>" (see ``stream_subject``): lets whoever
    # made the change flush just its own events.
    subject: str | None = None
    # Published as ``eventId``: a UUID, so ids stay unique across a database restore.
    event_key: str = Field(default_factory=lambda: uuid.uuid4().hex)
    event_id: int | None = None  # the outbox row, assigned by the catalogue when recorded
    created_at: datetime | None = None  # naive UTC, set by the catalogue when recorded
    attempts: int = 0  # publish attempts started (claims), including the current one


# --- live relay streams -------------------------------------------------------------------------
class SourceProtocol(StrEnum):
    HLS = "hls"
    RTSP = "rtsp"
    SRT = "srt"


class VideoMode(StrEnum):
    """auto: relay H.264 as it comes, transcode anything else; passthrough: never re-encode;
    transcode: always decode and encode."""

    AUTO = "auto"
    PASSTHROUGH = "passthrough"
    TRANSCODE = "transcode"


class DesiredState(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"


class StreamState(StrEnum):
    """What the relay task reports (the catalogue sets starting on a claim, stopped on a release)."""

    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    STOPPING = "stopping"
    FAILED = "failed"


def stream_subject(stream_id: str) -> str:
    """The outbox subject of a stream's events."""
    return f"stream:{stream_id}"


class Stream(BaseModel):
    """A camera feed relayed to Kinesis Video Streams. snake_case here, camelCase in MySQL and the API.

    ``source_url`` never holds a secret: camera credentials, SRT passphrases and the like are in
    ``source_secret``, encrypted by the stream service (``reelay.relay.streams``); the catalogue only
    stores the ciphertext.
    """

    stream_id: str
    owner_id: str
    name: str
    source_url: str
    source_protocol: SourceProtocol
    source_secret: str | None = None  # ciphertext, or None when the source needs no secret
    kvs_stream_name: str | None  # None: the stream only records (it must then record)
    video_mode: VideoMode = VideoMode.AUTO
    record_enabled: bool = False  # the relay task also records the feed (reelay.recording.recorder)
    # Recording settings (reelay.relay.streams checks them; the API shows them, the store redacted).
    record_object_store_url: str | None = None  # the stream's own store, REDACTED (for answers)
    record_store_secret: str | None = None  # the same store's full URL, sealed like source secrets
    webhook_url: str | None = None  # the store webhook (reelay.recording.stores)
    retention_days: int | None = None  # recordings older than this are removed (None: kept)
    reconnect_window_seconds: int | None = None  # None: the platform's default
    record_renditions: list[str] = Field(default_factory=list)  # encoded ladder rungs besides "source"
    desired_state: DesiredState = DesiredState.STOPPED
    state: StreamState = StreamState.STOPPED
    state_since: datetime = Field(default_factory=utcnow)
    outage_cause: str | None = None
    outage_since: datetime | None = None
    reconnects: int = 0
    input_bitrate_bps: int | None = None
    last_fragment_number: str | None = None
    last_fragment_timecode: int | None = None  # ms, the acked Cluster's timecode
    last_fragment_ack_at: datetime | None = None
    credentials_expire_at: datetime | None = None
    slate_since: datetime | None = None  # KVS is fed the "camera offline" slate since then (None: not)
    slate_fragments_persisted: int = 0  # fragments of the slate KVS persisted, since the task started
    lease_owner: str | None = None  # the relay task's id (ECS task ARN, or the local child's id)
    lease_expires_at: datetime | None = None
    lease_token: int = 0  # fencing counter: +1 on every successful claim
    task_started_at: datetime | None = None
    heartbeat_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    deleted_at: datetime | None = None  # set while a deleted stream's task still holds the lease

    def lease_live(self, now: datetime) -> bool:
        return (
            self.lease_owner is not None
            and self.lease_expires_at is not None
            and self.lease_expires_at >= now
        )


@dataclass(frozen=True)
class StreamHealth:
    """What a relay task reports about its stream (``StreamCatalogue.report_stream_health``).

    Times are naive UTC (or aware, converted). ``outage_cause`` and ``outage_since`` are None while the
    feed is up; ``reconnects`` counts pipeline rebuilds since the task started. ``slate_since`` is when
    the relay began feeding KVS its "camera offline" slate (transcode mode), None while it does not;
    ``slate_fragments_persisted`` counts the slate's fragments KVS persisted since the task started.
    """

    state: StreamState
    outage_cause: str | None = None
    outage_since: datetime | None = None
    reconnects: int = 0
    input_bitrate_bps: int | None = None
    last_fragment_number: str | None = None
    last_fragment_timecode: int | None = None
    last_fragment_ack_at: datetime | None = None
    credentials_expire_at: datetime | None = None
    slate_since: datetime | None = None
    slate_fragments_persisted: int = 0


# --- recording sessions -----------------------------------------------------------------------------
class RecordingState(StrEnum):
    """recording -> ended -> finalizing -> ready | failed. A stale recording (no heartbeat for longer
    than its reconnect window) goes to finalizing through fixup; a failed one may be finalized again."""

    RECORDING = "recording"
    ENDED = "ended"
    FINALIZING = "finalizing"
    READY = "ready"
    FAILED = "failed"
    EXPIRED = "expired"  # removed by its stream's retentionDays: media deleted, the row kept


def recording_subject(session_id: str) -> str:
    """The outbox subject of a recording session's events."""
    return f"recording:{session_id}"


class RecordingSession(BaseModel):
    """One continuous recording of a stream (reconnects inside the window included), by any writers.

    ``store_url`` is the store's URL with its secret redacted (what the API shows); ``store_ref`` is
    how the workflow finds the store again ("default": the platform's media store; see
    ``reelay.recording.steps.StoreResolver``). ``renditions`` carry name, size and codecs as the
    recorder knows them; their bandwidth is measured by finalize.
    """

    session_id: str
    stream_id: str
    state: RecordingState = RecordingState.RECORDING
    writers: list[str] = Field(default_factory=list)
    store_url: str | None = None
    store_ref: str = "default"
    store_secret: str | None = None  # the store's full URL, sealed (a webhook's answer); never shown
    store_source: str = "default"  # "default" | "stream" | "webhook"
    store_fallback: str | None = None  # why an earlier choice was passed over (no secret in it)
    reconnect_window_seconds: int = 60
    started_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    end_reason: str | None = None
    last_segment_at: datetime | None = None
    heartbeat_at: datetime | None = None
    renditions: list[Rendition] = Field(default_factory=list)
    discontinuities: int = 0
    duration_seconds: float | None = None
    video_id: str | None = None
    failure_reason: str | None = None
    workflow_state: str | None = None  # the workflow step last reached, e.g. "merge"
    execution_id: str | None = None  # the Step Functions execution (or local run) finalizing it
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
