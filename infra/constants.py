"""Every name and constant the CDK app uses, in one place."""

from __future__ import annotations

SERVICE_NAME = "reelay"
METRICS_NAMESPACE = "Reelay"
CONTEXT_KEY = "reelay"  # cdk.json context holding the typed config (infra/config.py)

# Stack ids (the stage name is prefixed: e.g. dev-ReelayNetwork).
NETWORK_STACK = "ReelayNetwork"
DATA_STACK = "ReelayData"
STORAGE_STACK = "ReelayStorage"
AUTH_STACK = "ReelayAuth"
QUEUE_STACK = "ReelayQueue"
API_STACK = "ReelayApi"
TRANSCODER_STACK = "ReelayTranscoder"
RELAY_STACK = "ReelayRelay"
MONITORING_STACK = "ReelayMonitoring"
WEB_STACK = "ReelayWeb"
RECORDING_STACK = "ReelayRecording"
EDGE_STACK = "ReelayEdge"  # us-east-1 only: the CloudFront web ACL

# The media bucket has a predictable name, so IAM grants on its prefixes need no cross-stack ARN.
MEDIA_BUCKET_NAME = "reelay-{stage}-media-{account}-{region}"

# Singleton helper functions CDK adds at stack level (their construct ids are fixed by CDK).
LOG_RETENTION_SINGLETON = "LogRetentionaae0aa3c5b4d4f87b02d85b201efdd8a"
BUCKET_NOTIFICATIONS_SINGLETON = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"

# The web front end: the production build (scripts/bootstrap.sh makes it), its layout, and the cache
# headers the local gateway and the web stack both give it.
WEB_DIST = "web/dist"
WEB_ASSETS_DIR = "assets"  # content-hashed file names: cached for good
WEB_CONFIG_FILE = "config.json"  # generated per deployment: the API URL and Cognito ids
WEB_ASSETS_CACHE_CONTROL = "public, max-age=31536000, immutable"
WEB_PAGES_CACHE_CONTROL = "no-cache"
# CDK's BucketDeployment singleton function (its construct id is fixed by CDK).
BUCKET_DEPLOYMENT_SINGLETON = "Custom::CDKBucketDeployment8693BB64968944B69AAFB0CC9EB8756C"

# Object layout inside the media bucket (reelay.settings.Settings upload_prefix/output_prefix).
UPLOAD_PREFIX = "uploads/"
OUTPUT_PREFIX = "outputs/"
PLAYBACK_PATH = "/outputs"
# Private and unpublished videos' media (Settings.private_output_prefix): served only on the signed
# path below, never by the public one (reelay.media_location).
PRIVATE_OUTPUT_PREFIX = "private-outputs/"

# Lambda handlers ("module.function" inside the shared code asset).
API_HANDLER = "lambdas.api.handler.lambda_handler"
UPLOAD_EVENTS_HANDLER = "lambdas.upload_events.handler.lambda_handler"
MIGRATE_HANDLER = "lambdas.migrate.handler.lambda_handler"
PLAYBACK_KEYS_HANDLER = "lambdas.playback_keys.handler.lambda_handler"
DEAD_JOBS_HANDLER = "lambdas.dead_jobs.handler.lambda_handler"
OUTBOX_SWEEP_HANDLER = "lambdas.outbox_sweep.handler.lambda_handler"
STUCK_SWEEP_HANDLER = "lambdas.stuck_sweep.handler.lambda_handler"
RELAY_RECONCILER_HANDLER = "lambdas.relay_reconciler.handler.lambda_handler"

# Lambda packaging: what goes into the one shared code asset, and the wheels' target.
LAMBDA_SOURCE_DIRS = ("reelay", "lambdas")
LAMBDA_PYTHON_VERSION = "3.11"
LAMBDA_PIP_PLATFORM = "manylinux2014_x86_64"
BUILD_CACHE_DIR = ".build"
MIGRATIONS_GLOB = "reelay/catalogue/migrations/*.sql"

# Transcoder container.
TRANSCODER_DOCKERFILE = "transcoder/Dockerfile"
TRANSCODER_COMMAND = ("python3", "-m", "transcoder.worker")
TRANSCODER_CPU = 2048
TRANSCODER_MEMORY_MIB = 4096
TRANSCODER_STOP_TIMEOUT_SECONDS = 120
TRANSCODER_SERVICE_DIMENSION = "transcoder"  # dimension service=transcoder of the worker's metrics
# The Docker build context is the repository root: keep the fingerprint to what the image needs.
DOCKER_EXCLUDES = (
    ".git",
    ".venv",
    "node_modules",
    "cdk.out",
    ".state",
    ".build",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    "web",  # the front end (its build is the web stack's asset): not in the worker image
    "**/__pycache__",
    "*.pyc",
    "tests/bench/output",
)
# Lambda code asset: only what the handlers import, never tooling or state.
LAMBDA_EXCLUDES = (
    ".git",
    ".venv",
    "node_modules",
    "cdk.out",
    ".state",
    ".build",
    "web",
    "tests",
    "**/__pycache__",
)

# Live relay tasks: the media image under the relay entry point, one Fargate task per stream. The
# reconciler (reelay.adapters.ecs.EcsRelayLauncher) overrides the command with --stream-id <id>.
RELAY_CONTAINER_NAME = "Relay"  # reelay.settings relay_container_name
RELAY_COMMAND = ("python3", "-m", "transcoder.relay")
RELAY_FAMILY = "reelay-{stage}-relay"  # the task definition family: ECS events are matched on it
RELAY_STOP_TIMEOUT_SECONDS = 30  # SIGTERM -> EOS, kvssink sends its last fragment and gets the ack
RELAY_SERVICE_DIMENSION = "relay"  # the relay task's POWERTOOLS_SERVICE_NAME: its metrics' service
RELAY_RECONCILER_SERVICE = "relay-reconciler"  # ReelayFunction service: reelay-relay-reconciler
RELAY_RECONCILE_RATE_MINUTES = 1
# Events-topic messages (attribute "type") that make the reconciler look at their stream at once.
STREAM_EVENT_TYPES = ("stream.started", "stream.stopped")
# What kvssink calls on the control plane and the data plane, on streams under the stage's prefix only.
KVS_RELAY_ACTIONS = (
    "kinesisvideo:DescribeStream",
    "kinesisvideo:CreateStream",
    "kinesisvideo:GetDataEndpoint",
    "kinesisvideo:PutMedia",
    "kinesisvideo:TagStream",
)
KVS_STREAM_PREFIX = "reelay-{stage}-"  # the default of ReelayConfig.kvs_stream_prefix

# Metrics the relay task emits per stream (EMF, dimensions service=relay and StreamId).
RELAY_STREAM_DIMENSION = "StreamId"
METRIC_STREAM_UP = "StreamUp"
METRIC_RECONNECTS = "Reconnects"
METRIC_OUTAGE_SECONDS = "OutageSeconds"
METRIC_INPUT_BITRATE = "InputBitrate"
METRIC_FRAGMENTS_PERSISTED = "FragmentsPersisted"
METRIC_FRAGMENT_ERRORS = "FragmentErrors"
METRIC_CREDENTIAL_SECONDS_LEFT = "CredentialSecondsLeft"
# Transcode mode: 1 while KVS is fed the "camera offline" slate; the slate's fragments KVS persisted.
METRIC_SLATE_ON = "SlateOn"
METRIC_SLATE_FRAGMENTS_PERSISTED = "SlateFragmentsPersisted"
# Metrics the reconciler emits (reelay.relay.reconciler).
METRIC_STREAMS_DOWN = "StreamsDown"
METRIC_RELAY_TASKS_STARTED = "RelayTasksStarted"
METRIC_RELAY_TASKS_STOPPED = "RelayTasksStopped"
METRIC_RECONCILE_ERRORS = "ReconcileErrors"
CREDENTIAL_ALARM_SECONDS = 300  # credentials within 5 minutes of expiry: the task's refresh is failing

# Metrics the worker emits (Powertools EMF).
METRIC_JOBS_SUCCEEDED = "TranscodeJobsSucceeded"
METRIC_JOBS_FAILED = "TranscodeJobsFailed"
METRIC_JOB_SECONDS = "TranscodeSeconds"

# The event outbox (reelay.events): publishes counted by whoever flushes (the worker, the sweep), the
# backlog reported by the scheduled sweep (lambdas/outbox_sweep) under its own service dimension.
METRIC_EVENTS_PUBLISHED = "EventsPublished"
METRIC_EVENT_PUBLISH_FAILED = "EventPublishFailed"
METRIC_OUTBOX_PENDING = "OutboxPending"
METRIC_OUTBOX_OLDEST_AGE = "OutboxOldestAgeSeconds"
OUTBOX_SWEEP_SERVICE = "outbox-sweep"  # ReelayFunction service: POWERTOOLS_SERVICE_NAME reelay-outbox-sweep
OUTBOX_SWEEP_RATE_MINUTES = 1
OUTBOX_AGE_ALARM_SECONDS = 600  # an event unpublished for 10 minutes: the sweep is not getting it out

# The stuck-video sweep (reelay.stuck, lambdas/stuck_sweep): videos past their deadline in queued or
# processing, counted each run under its own service dimension; the alarm fires on any that recur.
METRIC_STUCK_VIDEOS = "StuckVideos"
METRIC_STUCK_VIDEOS_FAILED = "StuckVideosFailed"
STUCK_SWEEP_SERVICE = "stuck-sweep"  # POWERTOOLS_SERVICE_NAME reelay-stuck-sweep
STUCK_SWEEP_RATE_MINUTES = 5

# Events on the events topic.
EVENT_VIDEO_READY = "video.ready"
EVENT_VIDEO_FAILED = "video.failed"

# MIME types CloudFront forces for HLS media, whatever the object metadata says.
HLS_CONTENT_TYPES = {
    "m3u8": "application/vnd.apple.mpegurl",
    "ts": "video/mp2t",
    "m4s": "video/iso.segment",
    "mp4": "video/mp4",
    "jpg": "image/jpeg",
    "vtt": "text/vtt",
}

# API Gateway responses made by the gateway itself, in the API's error shape.
GATEWAY_ERROR_CODES = {
    "UNAUTHORIZED": "unauthorized",
    "ACCESS_DENIED": "forbidden",
    "DEFAULT_4XX": "bad_request",
    "DEFAULT_5XX": "internal_error",
    "THROTTLED": "throttled",
}

TAGS = {"project": "reelay", "managed-by": "cdk"}

# The Cognito group whose members manage live relay streams (REELAY_OPERATORS_GROUP, same default).
OPERATORS_GROUP = "operators"
# The Cognito group whose members may unpublish and delete any video (REELAY_MODERATORS_GROUP).
MODERATORS_GROUP = "moderators"
# Private videos' media is served at this path of the playback distribution, which only serves
# requests signed with a key of the playback key group. The path is the objects' own prefix (no
# rewrite), and the public behaviours refuse it however it is spelt (media_storage.py).
SIGNED_PLAYBACK_PATH = "/" + PRIVATE_OUTPUT_PREFIX.rstrip("/")


def recording_state_machine_name(stage: str) -> str:
    """The recording workflow's state machine, named so the API (an earlier stack) can start it."""
    return f"reelay-{stage}-recording"


def recording_export_state_machine_name(stage: str) -> str:
    """The MP4 range export workflow's state machine, named for the same reason."""
    return f"reelay-{stage}-recording-export"
