"""Catalogue entities shared by every part of Reelay."""

from __future__ import annotations

import uuid
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
    content_type: str | None = None
    size_bytes: int | None = None
    attempts: int = 0  # transcode attempts started
    upload_time: datetime = Field(default_factory=utcnow)  # seed column uploadTime
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


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
    and published afterwards (``reelay.events.EventRelay``), so a crash or an SNS outage between the
    two delays an event instead of losing it. Delivery is at least once: ``event_id`` is in every
    published detail so subscribers can drop a repeat, and ``occurredAt`` the time of the change.
    """

    event_type: str
    video_id: str
    detail: dict[str, Any]
    # Published as ``eventId``: a UUID, so ids stay unique across a database restore.
    event_key: str = Field(default_factory=lambda: uuid.uuid4().hex)
    event_id: int | None = None  # the outbox row, assigned by the catalogue when recorded
    created_at: datetime | None = None  # naive UTC, set by the catalogue when recorded
    attempts: int = 0  # publish attempts started (claims), including the current one
