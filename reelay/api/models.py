"""Request and response bodies of the HTTP API. camelCase on the wire, snake_case in Python.

The resolver validates requests and writes the OpenAPI document from these same models.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from reelay.models import (
    DesiredState,
    ModerationAction,
    ModerationRecord,
    RecordingSession,
    RecordingState,
    SourceProtocol,
    Stream,
    StreamState,
    Video,
    VideoMode,
    VideoSource,
    VideoStatus,
    VideoVisibility,
)

# Names are shown in lists and titles: no control characters at all (NUL, escape sequences, line
# breaks). Descriptions may keep line breaks and tabs.
_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LAYOUT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _no_control(pattern: re.Pattern[str], allowed: str) -> AfterValidator:
    def check(value: str) -> str:
        if pattern.search(value):
            raise ValueError(f"must not contain control characters{allowed}")
        return value

    return AfterValidator(check)


_PLAIN_TEXT = _no_control(_ANY_CONTROL, "")
# The schema says what the checks do: some character other than whitespace, and no control character.
_NO_CONTROL = r"\u0000-\u001f\u007f-\u009f"
NAME_PATTERN = rf"^[^{_NO_CONTROL}]*[^\s{_NO_CONTROL}][^{_NO_CONTROL}]*$"
DisplayName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    _PLAIN_TEXT,
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 200, "pattern": NAME_PATTERN}),
]
Description = Annotated[
    str,
    StringConstraints(max_length=5000),
    _no_control(_CONTROL_BUT_LAYOUT, " other than line breaks and tabs"),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 5000,
            "pattern": r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$",
        }
    ),
]
FileName = Annotated[
    str,
    StringConstraints(max_length=1024),
    _PLAIN_TEXT,
    WithJsonSchema({"type": "string", "maxLength": 1024, "pattern": rf"^[^{_NO_CONTROL}]*$"}),
]
Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]
# The user pool's password policy (infra/constructs/user_pool.py, local/aws.py PASSWORD_POLICY), stated
# in the document; Cognito enforces it (400 weak_password, with the rule that failed).
_SYMBOLS = r"\^$*.\[\]{}()?\"!@#%&/\\,><':;|_~`=+\- "
PASSWORD_POLICY_PATTERN = (
    # Cognito also refuses whitespace at either end.
    rf"^(?=.*[a-z])(?=.*[A-Z])(?=.*[0-9])(?=.*[{_SYMBOLS}])\S[^\n\r\u2028\u2029]{{10,254}}\S$"
)
NewPassword = Annotated[
    str,
    StringConstraints(min_length=1, max_length=256),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 12,
            "maxLength": 256,
            "pattern": PASSWORD_POLICY_PATTERN,
            "description": "At least 12 characters, with a lowercase and an uppercase letter (A-Z), a digit "
            "and a symbol",
        }
    ),
]
# The catalogue stores naive UTC; the wire says so explicitly (RFC 3339 with Z).
UtcDateTime = Annotated[
    datetime,
    PlainSerializer(
        lambda d: (
            (d if d.tzinfo else d.replace(tzinfo=UTC))
            .astimezone(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        ),
        return_type=str,
        when_used="json",
    ),
]


def _whole_number(value: object) -> object:
    """JSON Schema counts 1.0 as an integer, so the API does too; true, "1" and 1.5 stay refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WholeNumber = Annotated[StrictInt, BeforeValidator(_whole_number)]
# An id, stripped of whitespace at either end. In a body the schema says it needs some character other
# than whitespace; not in a path, where a fuzzer cannot send the whitespace-only ids that would break it.
Identifier = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
BodyIdentifier = Annotated[
    Identifier, WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"\S"})
]
VideoId = Identifier


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, defer_build=True)


class _Request(BaseModel):
    # Requests accept only the camelCase names; anything else is an error, not silently dropped.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=False, extra="forbid", defer_build=True
    )


# --- auth ------------------------------------------------------------------------------------
class RegisterIn(_Request):
    email: EmailStr
    password: NewPassword


class ConfirmIn(_Request):
    email: EmailStr
    code: BodyIdentifier


class ResendCodeIn(_Request):
    email: EmailStr


class LoginIn(_Request):
    email: EmailStr
    password: Password


class RefreshIn(_Request):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=8192)]


class RegisterOut(_Wire):
    user_id: str
    confirmation_required: bool = True


class MessageOut(_Wire):
    message: str


class TokensOut(_Wire):
    id_token: str
    access_token: str
    refresh_token: str | None = None
    expires_in: int
    token_type: str = "Bearer"


# --- videos ----------------------------------------------------------------------------------
class UploadIn(_Request):
    display_name: DisplayName
    description: Description = ""
    content_type: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    size_bytes: WholeNumber = Field(description="Exact size of the file in bytes")
    file_name: FileName | None = None
    visibility: VideoVisibility = Field(
        default=VideoVisibility.PUBLIC,
        description=(
            "public (the default): listed and playable by anyone; unlisted: playable by whoever has "
            "the link, not listed; private: you only (its media is served with a signed link)"
        ),
    )


class PartIn(_Request):
    part_number: WholeNumber = Field(ge=1, le=10_000)
    etag: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class CompleteUploadIn(_Request):
    upload_id: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    parts: list[PartIn] = Field(min_length=1, max_length=10_000)


# At least one field to change, as a string (null means "leave it"): 400 otherwise, and the schema says so.
_SOME_METADATA: dict[str, Any] = {
    "anyOf": [
        {"required": [name], "properties": {name: {"type": "string"}}}
        for name in ("displayName", "description")
    ]
}


class MetadataIn(_Request):
    model_config = ConfigDict(json_schema_extra=_SOME_METADATA)

    video_id: BodyIdentifier
    display_name: DisplayName | None = None
    description: Description | None = None


class PatchVideoIn(_Request):
    model_config = ConfigDict(json_schema_extra=_SOME_METADATA)

    display_name: DisplayName | None = None
    description: Description | None = None
    visibility: VideoVisibility | None = Field(
        default=None, description="public: listed; unlisted: playable with the link; private: you only"
    )


_LAYOUT_ONLY = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f"
ModerationReason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=1000),
    _no_control(_CONTROL_BUT_LAYOUT, " other than line breaks and tabs"),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": 1000,
            # Some character other than whitespace; no control character but line breaks and tabs.
            "pattern": rf"^[^{_LAYOUT_ONLY}]*[^\s{_LAYOUT_ONLY}][^{_LAYOUT_ONLY}]*$",
            "description": "Why: kept in the moderation audit log",
        }
    ),
]


class ModerationIn(_Request):
    reason: ModerationReason


class RenditionOut(_Wire):
    name: str
    width: int
    height: int
    bandwidth: int
    codecs: str


class VideoOut(_Wire):
    video_id: str
    display_name: str
    description: str
    status: VideoStatus
    failure_reason: str | None = None
    progress: int
    playable: bool
    is_transcoded: bool
    duration_seconds: float | None = None
    renditions: list[RenditionOut]
    source: VideoSource
    visibility: VideoVisibility
    unpublished: bool = Field(description="A moderator unpublished it: only its owner can see it")
    upload_time: UtcDateTime
    created_at: UtcDateTime
    updated_at: UtcDateTime
    playback_url: str | None = Field(
        default=None,
        description=(
            "The master playlist. A private video's URL carries a signed query that authorizes every "
            "playlist and segment under the same directory until it expires: send the same query "
            "with each of those requests"
        ),
    )
    thumbnail_url: str | None = None

    @classmethod
    def of(cls, video: Video, *, playback_url: str | None, thumbnail_url: str | None) -> VideoOut:
        return cls(
            video_id=video.video_id,
            display_name=video.display_name,
            description=video.description,
            status=video.status,
            failure_reason=video.failure_reason,
            progress=video.progress,
            playable=video.playable,
            is_transcoded=video.is_transcoded,
            duration_seconds=video.duration_seconds,
            renditions=[
                RenditionOut(
                    name=r.name, width=r.width, height=r.height, bandwidth=r.bandwidth, codecs=r.codecs
                )
                for r in video.renditions
            ],
            source=video.source,
            visibility=video.visibility,
            unpublished=video.unpublished,
            upload_time=video.upload_time,
            created_at=video.created_at,
            updated_at=video.updated_at,
            playback_url=playback_url,
            thumbnail_url=thumbnail_url,
        )


class OwnerVideoOut(VideoOut):
    """The owner's view of a video: adds the uploader's email, which public views never show."""

    email: str

    @classmethod
    def of_owner(cls, video: Video, *, playback_url: str | None, thumbnail_url: str | None) -> OwnerVideoOut:
        public = VideoOut.of(video, playback_url=playback_url, thumbnail_url=thumbnail_url)
        return cls(**public.model_dump(), email=video.email)


class VideoPageOut(_Wire):
    items: list[VideoOut]
    next_cursor: str | None = None


class OwnerVideoPageOut(_Wire):
    items: list[OwnerVideoOut]
    next_cursor: str | None = None


class ModerationOut(_Wire):
    audit_id: int
    moderator_id: str
    moderator_email: str
    action: ModerationAction
    video_id: str
    owner_id: str
    reason: str
    created_at: UtcDateTime

    @classmethod
    def of(cls, record: ModerationRecord) -> ModerationOut:
        return cls(
            audit_id=record.audit_id or 0,
            moderator_id=record.moderator_id,
            moderator_email=record.moderator_email,
            action=record.action,
            video_id=record.video_id,
            owner_id=record.owner_id,
            reason=record.reason,
            created_at=record.created_at,
        )


class ModerationPageOut(_Wire):
    items: list[ModerationOut]
    next_cursor: str | None = None


class SingleUploadOut(_Wire):
    method: Literal["PUT"] = "PUT"
    url: str
    headers: dict[str, str] = Field(
        description="Send exactly these headers; the body must be exactly sizeBytes long (it is signed)"
    )
    expires_in: int


class PartUrlOut(_Wire):
    part_number: int
    url: str


class MultipartUploadOut(_Wire):
    upload_id: str
    part_size_bytes: int
    parts: list[PartUrlOut]
    complete_path: str = Field(
        description=(
            "Where to POST the part ETags, relative to the API base URL including its stage and "
            "without a leading slash: resolve it against e.g. https://api.example/prod/ (note the "
            "trailing slash), giving https://api.example/prod/videos/{videoId}/upload/complete"
        ),
        examples=["videos/0123abcd/upload/complete"],
    )
    expires_in: int


class LimitsOut(_Wire):
    max_bytes: int
    allowed_content_types: list[str]


class UploadOut(_Wire):
    video_id: str
    video: OwnerVideoOut
    upload: SingleUploadOut | None = None
    multipart: MultipartUploadOut | None = None
    limits: LimitsOut


# --- streams (operators only) -------------------------------------------------------------------
StreamName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    _PLAIN_TEXT,
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 200, "pattern": NAME_PATTERN}),
]
SourceUrl = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2048),
    Field(
        description=(
            "http(s)://host/….m3u8, rtsp(s)://[user:password@]host[:port]/… or srt://host:port?…; "
            "credentials and secret parameters are stored encrypted and never returned"
        ),
        examples=["rtsp://viewer:secret@10.0.0.20:554/stream1"],
    ),
]
KvsStreamName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-zA-Z0-9_.\-]{1,256}$"),
    Field(description="The Kinesis Video Streams stream; must start with the deployment's prefix (reelay-)"),
]
StreamId = Identifier
StoreUrl = Annotated[
    str,
    StringConstraints(max_length=2048),
    Field(
        description=(
            "s3://KEY:SECRET@region/bucket[/prefix], s3://region/bucket, "
            "s3+http(s)://KEY:SECRET@host:port/bucket[/prefix] or file:///abs/path (local platform only); "
            'the secret is stored encrypted and never returned. "" or null clears it'
        ),
        examples=["s3://AKIAEXAMPLE:secret@eu-west-1/my-bucket/cams"],
    ),
]
WebhookUrl = Annotated[
    str,
    StringConstraints(max_length=2048),
    Field(
        description='http(s) URL POSTed, signed, when a session starts; "" or null clears it',
        examples=["https://hooks.example.com/reelay"],
    ),
]
# The bounds go on the integer itself, inside the 1.0 validator: outside it the document said "ge"/"le"
# (no JSON Schema keywords) instead of minimum/maximum.
RetentionDays = Annotated[
    StrictInt,
    Field(ge=1, le=3650),
    BeforeValidator(_whole_number),
    Field(description="Keep recordings this many days"),
]
ReconnectWindow = Annotated[
    StrictInt,
    Field(ge=0, le=1800),
    BeforeValidator(_whole_number),
    Field(description="Seconds a source may be down and continue the same session"),
]
# The ladder's names, each once (reelay.catalogue._stream_recording.check_renditions): the document
# states them (reelay.api.app._state_rendition_names), which keeps the ladder out of this import.
RenditionName = Annotated[str, StringConstraints(min_length=1, max_length=16)]
RecordRenditions = Annotated[
    list[RenditionName],
    Field(
        max_length=5,
        description="Encoded renditions to record besides source: 1080p, 720p, 480p, 360p, 240p",
        examples=[["720p", "360p"]],
    ),
]


class _RecordingSettingsIn(_Request):
    """The recording settings of a stream (docs/recordings-api.md); given fields only are applied."""

    record_object_store: StoreUrl | None = None
    record_webhook_url: WebhookUrl | None = None
    retention_days: RetentionDays | None = None
    reconnect_window_seconds: ReconnectWindow | None = None
    record_renditions: RecordRenditions | None = None

    def recording(self) -> dict[str, object]:
        """The recording settings the request names (null included: it clears)."""
        names = (
            "record_object_store",
            "record_webhook_url",
            "retention_days",
            "reconnect_window_seconds",
            "record_renditions",
        )
        return {n: getattr(self, n) for n in names if n in self.model_fields_set}


class StreamIn(_RecordingSettingsIn):
    name: StreamName
    source_url: SourceUrl
    kvs_stream_name: KvsStreamName | None = None
    video: VideoMode = Field(
        default=VideoMode.AUTO,
        description="auto: relay H.264 as it comes, transcode other codecs; passthrough; transcode",
    )
    record: StrictBool = Field(
        default=False,
        description="Also record the feed to the stream's object store (HLS segments, finalized to a video)",
    )
    relay: StrictBool = Field(
        default=True,
        description="Relay the feed to Kinesis Video Streams; false records only (record must then be true)",
    )


# Something to change (400 otherwise): a stream field that is not null, or any recording setting (null
# clears one). The schema says so.
_SOME_STREAM_CHANGE: dict[str, Any] = {
    "anyOf": [
        *(
            {"required": [name], "properties": {name: {"not": {"type": "null"}}}}
            for name in ("name", "sourceUrl", "kvsStreamName", "video", "record")
        ),
        *(
            {"required": [name]}
            for name in (
                "recordObjectStore",
                "recordWebhookUrl",
                "retentionDays",
                "reconnectWindowSeconds",
                "recordRenditions",
            )
        ),
    ]
}


class PatchStreamIn(_RecordingSettingsIn):
    model_config = ConfigDict(json_schema_extra=_SOME_STREAM_CHANGE)

    name: StreamName | None = None
    source_url: SourceUrl | None = None
    kvs_stream_name: KvsStreamName | None = None
    video: VideoMode | None = None
    record: StrictBool | None = Field(default=None, description="Record the feed, or stop recording it")


class RelayTaskOut(_Wire):
    """The relay task holding the stream's lease."""

    task_id: str
    started_at: UtcDateTime | None = None
    heartbeat_at: UtcDateTime | None = None
    lease_expires_at: UtcDateTime | None = None


class StreamOut(_Wire):
    stream_id: str
    name: str
    source_url: str = Field(description="The source without its secrets")
    source_protocol: SourceProtocol
    source_secrets: list[str] = Field(
        description="Which secrets the source has (e.g. password, passphrase); their values are never shown"
    )
    kvs_stream_name: str | None = Field(description="The KVS stream; null when the stream only records")
    video: VideoMode
    record: bool = Field(description="Whether the relay task also records the feed")
    record_object_store: str | None = Field(default=None, description="The stream's own store, redacted")
    record_webhook_url: str | None = None
    record_webhook_secret: str | None = Field(
        default=None,
        description="Only in the answer that set recordWebhookUrl: the HMAC key of X-Reelay-Signature",
    )
    retention_days: int | None = None
    reconnect_window_seconds: int | None = Field(default=None, description="null: the platform default")
    record_renditions: list[str] = Field(default_factory=list)
    desired_state: DesiredState
    state: StreamState
    state_since: UtcDateTime
    outage_cause: str | None = None
    outage_since: UtcDateTime | None = None
    reconnects: int
    input_bitrate_bps: int | None = None
    last_fragment_number: str | None = Field(default=None, description="The last fragment KVS acknowledged")
    last_fragment_timecode: int | None = None
    last_fragment_acked_at: UtcDateTime | None = None
    credentials_expire_at: UtcDateTime | None = Field(
        default=None, description="When the relay task's AWS credentials expire"
    )
    slate_on: bool = Field(
        default=False,
        description='Whether KVS is being fed the "camera offline" slate now (transcode mode, camera down)',
    )
    slate_since: UtcDateTime | None = Field(
        default=None, description="Since when KVS is fed the slate; null while it is not"
    )
    slate_fragments_persisted: int = Field(
        default=0, description="Fragments of the slate KVS persisted since the relay task started"
    )
    task: RelayTaskOut | None = None
    created_at: UtcDateTime
    updated_at: UtcDateTime

    @classmethod
    def of(cls, stream: Stream, *, secret_names: list[str], webhook_secret: str | None = None) -> StreamOut:
        task = None
        if stream.lease_owner is not None:
            task = RelayTaskOut(
                task_id=stream.lease_owner,
                started_at=stream.task_started_at,
                heartbeat_at=stream.heartbeat_at,
                lease_expires_at=stream.lease_expires_at,
            )
        return cls(
            stream_id=stream.stream_id,
            name=stream.name,
            source_url=stream.source_url,
            source_protocol=stream.source_protocol,
            source_secrets=[n.removeprefix("query:") for n in secret_names],
            kvs_stream_name=stream.kvs_stream_name,
            video=stream.video_mode,
            record=stream.record_enabled,
            record_object_store=stream.record_object_store_url,
            record_webhook_url=stream.webhook_url,
            record_webhook_secret=webhook_secret,
            retention_days=stream.retention_days,
            reconnect_window_seconds=stream.reconnect_window_seconds,
            record_renditions=list(stream.record_renditions),
            desired_state=stream.desired_state,
            state=stream.state,
            state_since=stream.state_since,
            outage_cause=stream.outage_cause,
            outage_since=stream.outage_since,
            reconnects=stream.reconnects,
            input_bitrate_bps=stream.input_bitrate_bps,
            last_fragment_number=stream.last_fragment_number,
            last_fragment_timecode=stream.last_fragment_timecode,
            last_fragment_acked_at=stream.last_fragment_ack_at,
            credentials_expire_at=stream.credentials_expire_at,
            slate_on=stream.slate_since is not None,
            slate_since=stream.slate_since,
            slate_fragments_persisted=stream.slate_fragments_persisted,
            task=task,
            created_at=stream.created_at,
            updated_at=stream.updated_at,
        )


class StreamPageOut(_Wire):
    items: list[StreamOut]
    next_cursor: str | None = None


class ErrorOut(_Wire):
    error: str
    message: str


# --- recording sessions (operators only; docs/recordings-api.md) ---------------------------------
SessionId = Identifier
ExportId = Identifier
Seconds = Annotated[float, Field(strict=True, ge=0, le=10_000_000, allow_inf_nan=False)]


class SessionRenditionOut(_Wire):
    name: str
    width: int
    height: int
    bandwidth: int
    codecs: str


class SessionOut(_Wire):
    session_id: str
    stream_id: str
    state: RecordingState
    started_at: UtcDateTime
    ended_at: UtcDateTime | None = None
    end_reason: str | None = None
    duration_seconds: float | None = Field(
        default=None, description="Media so far while recording; the finalized duration once ready"
    )
    store: str | None = Field(default=None, description="The store recorded to, redacted")
    store_source: str = Field(description="default, stream (its recordObjectStore) or webhook")
    store_fallback_reason: str | None = Field(
        default=None, description="Why an earlier store was passed over"
    )
    writer_count: int
    discontinuities: int
    renditions: list[SessionRenditionOut]
    video_id: str | None = Field(default=None, description="The recording's video, once ready")
    failure_reason: str | None = None
    workflow_state: str | None = None
    live_playlist_url: str | None = Field(
        default=None, description="While recording: the EVENT playlist, playable without a bearer token"
    )
    live_playlist_expires_at: UtcDateTime | None = None
    created_at: UtcDateTime
    updated_at: UtcDateTime

    @classmethod
    def of(
        cls,
        s: RecordingSession,
        *,
        duration_seconds: float | None,
        live_playlist_url: str | None = None,
        live_playlist_expires_at: datetime | None = None,
    ) -> SessionOut:
        return cls(
            session_id=s.session_id,
            stream_id=s.stream_id,
            state=s.state,
            started_at=s.started_at,
            ended_at=s.ended_at,
            end_reason=s.end_reason,
            duration_seconds=duration_seconds,
            store=s.store_url,
            store_source=s.store_source,
            store_fallback_reason=s.store_fallback,
            writer_count=len(s.writers),
            discontinuities=s.discontinuities,
            renditions=[
                SessionRenditionOut(
                    name=r.name, width=r.width, height=r.height, bandwidth=r.bandwidth, codecs=r.codecs
                )
                for r in s.renditions
            ],
            video_id=s.video_id,
            failure_reason=s.failure_reason,
            workflow_state=s.workflow_state,
            live_playlist_url=live_playlist_url,
            live_playlist_expires_at=live_playlist_expires_at,
            created_at=s.created_at,
            updated_at=s.updated_at,
        )


class SessionPageOut(_Wire):
    items: list[SessionOut]
    next_cursor: str | None = None


class FinalizeOut(_Wire):
    session_id: str
    state: str
    started: bool = Field(description="True when this call started a workflow")
    mode: str | None = Field(default=None, description="finalize, or fixup for a writer that died")
    video_id: str | None = None


class ExportIn(_Request):
    start: Seconds = Field(description="Seconds from the recording's start")
    end: Seconds = Field(description="Seconds from the recording's start; after start, within the duration")


class ExportOut(_Wire):
    export_id: str
    session_id: str
    state: Literal["running", "ready", "failed"]
    start: float
    end: float
    created_at: str
    updated_at: str
    duration_seconds: float | None = Field(default=None, description="The MP4's (whole segments)")
    size_bytes: int | None = None
    download_url: str | None = Field(default=None, description="The MP4, once ready")
    failure_reason: str | None = None
