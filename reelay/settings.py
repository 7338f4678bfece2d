"""Typed configuration. Code never reads os.environ ad hoc: it asks for Settings.

Every variable is prefixed ``REELAY_``. The CDK stacks and the local platform set the same names.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REELAY_", extra="ignore")

    # Object store holding uploads (under upload_prefix) and HLS output (under output_prefix).
    # See reelay.storage for the URL forms: s3://region/bucket, file:///abs/path, ...
    media_store_url: str = "file:///tmp/reelay-media"
    upload_prefix: str = "uploads/"
    output_prefix: str = "outputs/"
    # Where the HLS output of private (and unpublished) videos lives instead: a prefix the public,
    # unsigned playback path cannot reach (reelay.media_location moves a video's objects between them).
    private_output_prefix: str = "private-outputs/"
    # Public base URL that serves output_prefix (CloudFront domain, or the local gateway's /media).
    playback_base_url: str = "http://localhost:8080/media/outputs"
    # Private videos' media: the base URL of the signed path that serves private_output_prefix
    # (CloudFront's /private-outputs, which trusts the playback key group; unset: playback_base_url
    # with its output prefix replaced, where the local gateway checks the signatures).
    playback_signed_base_url: str | None = None
    # CloudFront signing (AWS): the public key's id, and the secret holding the private key's PEM.
    playback_key_pair_id: str | None = None
    playback_signing_secret_arn: str | None = None
    playback_url_expires_seconds: int = Field(default=4 * 3600, ge=60, le=7 * 24 * 3600)
    # Base URL that file:// stores put in presigned URLs (the local gateway's /media).
    file_store_public_url: str = "http://localhost:8080/media"
    # No default: a guessable key would let anyone presign uploads. The local platform makes one.
    file_store_signing_key: str | None = None

    # Catalogue database: a DSN (local) or a Secrets Manager secret (AWS, rotated).
    database_url: str | None = None  # mysql://user:pass@host:port/db
    db_secret_arn: str | None = None
    # The application user's secret: read only by the migration, which creates that user.
    app_db_secret_arn: str | None = None
    db_name: str = "reelay"
    db_secret_max_age: int = 300  # seconds the secret is cached by Powertools parameters
    db_tls: bool = False  # encrypt catalogue connections (on in AWS: RDS requires secure transport)
    db_tls_ca_file: str | None = None  # verify the server against this CA bundle when given

    # AWS resources. aws_endpoint_url points every client at moto in the local platform.
    aws_region: str = Field(default="us-east-1", validation_alias="AWS_REGION")
    aws_endpoint_url: str | None = None
    # Injected by the ECS agent into every task; absent elsewhere (task scale-in protection is a no-op).
    ecs_agent_uri: str | None = Field(default=None, validation_alias="ECS_AGENT_URI")
    user_pool_id: str | None = None
    user_pool_client_id: str | None = None
    transcode_queue_url: str | None = None
    events_topic_arn: str | None = None
    cdn_distribution_id: str | None = None  # CloudFront serving output_prefix; unset locally
    # Relay tasks on ECS (reelay.adapters.ecs.EcsRelayLauncher): the cluster, the task definition the
    # reconciler runs once per stream, the container whose command it overrides, and the task's
    # network (lists are JSON in the environment, e.g. REELAY_RELAY_SUBNETS='["subnet-1"]').
    relay_cluster_arn: str | None = None
    relay_task_definition_arn: str | None = None
    relay_container_name: str = "Relay"
    relay_subnets: tuple[str, ...] = ()
    relay_security_groups: tuple[str, ...] = ()
    relay_assign_public_ip: bool = False  # private subnets with NAT in the CDK app

    # Upload limits, declared to clients by POST /videos/upload.
    max_upload_bytes: int = 5 * 1024**3
    multipart_threshold_bytes: int = 100 * 1024**2
    multipart_part_bytes: int = 64 * 1024**2
    upload_url_expires_seconds: int = 3600
    # Per-user upload quotas (reelay.quotas), refused with 429 naming the quota; 0 turns one off.
    quota_videos_in_flight: int = Field(default=10, ge=0)
    quota_upload_bytes_per_day: int = Field(default=50 * 1024**3, ge=0)
    quota_stored_bytes: int = Field(default=200 * 1024**3, ge=0)
    allowed_content_types: tuple[str, ...] = (
        "video/mp4",
        "video/quicktime",
        "video/webm",
        "video/x-matroska",
        "video/x-msvideo",
        "video/mpeg",
        "video/mp2t",
        "video/3gpp",
        "video/ogg",
    )

    # Transcoding.
    segment_seconds: int = 2
    ladder: str = "1080p,720p,480p,360p"  # names from reelay.media.ladder.PRESETS
    # Per-preset bitrates in kbps, "name=video:max:audio" comma-separated, e.g.
    # "720p=2500:3750:128,360p=700:1050:96"; unnamed presets keep their built-in rates.
    # Checked by reelay.media.ladder.parse_overrides (InvalidInput for bad values).
    ladder_overrides: str = ""
    x264_preset: str = "veryfast"
    max_attempts: int = 3  # also the DLQ maxReceiveCount
    lease_seconds: int = 120
    work_dir: str = "/tmp/reelay-work"
    # Probe limits (README "Limits"): a source over any of them fails with a reason naming the limit.
    max_source_duration_seconds: float = Field(default=4 * 3600, gt=0)
    max_source_dimension: int = Field(default=4096, gt=0)  # pixels on the longer side, as displayed
    max_source_fps: float = Field(default=120.0, gt=0)
    # Wall-clock deadline of one transcode, from its claim: max(floor, factor x the source's duration)
    # (the longest allowed duration when the source does not say). Past it the pipeline is stopped and
    # the video fails with a reason, instead of holding a worker for hours.
    transcode_deadline_floor_seconds: float = Field(default=900.0, gt=0)
    transcode_deadline_factor: float = Field(default=2.5, ge=0)  # keeps it under SQS's 12 h
    # Work disk: a job starts only when the work dir's disk has room for the source, its renditions
    # and the muxers' temporaries: factor x the source's size, plus a reserve. Else it fails (no retry).
    work_disk_factor: float = Field(default=3.0, ge=1)
    work_disk_reserve_bytes: int = Field(default=256 * 1024**2, ge=0)
    # The stuck-video sweep (reelay.stuck): a queued video untouched this long, or a processing one
    # this long past its lease, is re-enqueued (or failed once max_attempts are spent).
    stuck_queued_seconds: int = Field(default=1800, gt=0)
    stuck_grace_seconds: int = Field(default=120, ge=0)

    # Live relay (streams).
    # Who may manage streams: members of this Cognito group (claim cognito:groups of the ID token).
    operators_group: str = "operators"
    # Who may unpublish and delete any video (with an audit record): members of this Cognito group.
    moderators_group: str = "moderators"
    # Loopback sources (localhost, 127.0.0.0/8, ::1): only the one-machine platform allows them.
    # Link-local hosts (169.254.0.0/16: the task's credential and metadata endpoints) never are.
    allow_loopback_sources: bool = False
    # Keys that encrypt source secrets (camera passwords, SRT passphrases): comma-separated, each at
    # least 32 characters, the first encrypts (see reelay.relay.secrets). In AWS, the secret below.
    stream_secret_keys: SecretStr | None = None
    stream_secret_arn: str | None = None
    # The relay task's role may write only KVS streams with this prefix, so every stream's name has it.
    kvs_stream_prefix: str = "reelay-"

    # Live relay: one task per stream, holding the stream's fenced lease (reelay.relay.task).
    # The relay task's lease on its stream (renewed by the task, well within it).
    relay_lease_seconds: int = 20
    relay_stall_seconds: float = 2.0  # no media this long is a drop (HLS adapts to its segment gaps)
    relay_start_seconds: float = 10.0  # a pipeline not playing by then is a drop
    relay_ack_timeout_seconds: float = 6.0  # media flowing and no ack from KVS this long: KVS unreachable
    relay_stop_seconds: float = 10.0  # EOS drain on stop, so kvssink sends its last fragment
    relay_metrics_seconds: float = 60.0
    relay_recycle_after_rebuilds: int = 500  # then the task re-executes itself during an outage; 0: never
    relay_work_dir: str = "/tmp/reelay-relay"  # kvssink's credential file, one per stream
    # Transcode mode (video "transcode", or a source that is not H.264): while the source is down, KVS
    # is fed a slate with this text from the same encoder, so its timeline has no hole. Passthrough has
    # no encoder and no slate; nor has a stream that records (its branch needs the source's H.264).
    relay_slate: bool = True
    relay_slate_text: str = Field(default="camera offline", min_length=1, max_length=80)
    relay_slate_after_seconds: float = Field(default=1.0, gt=0, le=30)  # no camera frame this long

    # Recording: where sessions go (reelay.recording.stores). A stream's own store, or one its store
    # webhook names, wins; else this store (URL forms as for media_store_url; None: the media store).
    recording_store_url: str | None = Field(default=None, repr=False)  # may hold a store's secret
    # A store webhook that has not answered in this many seconds is given up (the fallback store is
    # used), so a slow webhook never delays a recording's start by more.
    recording_webhook_timeout_seconds: float = 3.0
    # Signs store webhook calls (X-Reelay-Signature: t=<unix>,v1=<HMAC-SHA256 hex of "t.body">), one
    # per deployment; receivers verify with it. Unset: webhooks are not called (the fallback says so).
    webhook_signing_key: SecretStr | None = None

    # Recording (reelay.recording).
    recording_chunk_size: int = 100  # entries per rolling chunk manifest
    recording_reconnect_window_seconds: int = 60  # 0 disables: every reconnect starts a new session
    recording_mp4: bool = False  # the workflow also makes an MP4 of every finished session
    # The relay task's local spool of closed segments waiting for the store (an outage): past this,
    # the oldest are dropped and counted. The spool lives under relay_work_dir/<streamId>/spool.
    recording_spool_max_bytes: int = 512 * 1024 * 1024
    recording_segment_seconds: float = 2.0  # segments split at the first keyframe after this long
    # The recording workflow's state machine; unset locally, where the workflow runs in-process.
    recording_state_machine_arn: str | None = None
    # The MP4 range export workflow's state machine (AWS); unset locally (the local runner runs it).
    recording_export_state_machine_arn: str | None = None

    @model_validator(mode="after")
    def _output_prefixes_apart(self) -> Settings:
        # Neither output prefix may hold the other: the public path would then reach private media.
        public, private = self.output_prefix, self.private_output_prefix
        if (
            not public.endswith("/")
            or not private.endswith("/")
            or public.startswith(private)
            or private.startswith(public)
        ):
            raise ValueError(
                "REELAY_OUTPUT_PREFIX and REELAY_PRIVATE_OUTPUT_PREFIX must end with '/' and neither may"
                " contain the other"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
