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
MONITORING_STACK = "ReelayMonitoring"
RECORDING_STACK = "ReelayRecording"

# The media bucket has a predictable name, so IAM grants on its prefixes need no cross-stack ARN.
MEDIA_BUCKET_NAME = "reelay-{stage}-media-{account}-{region}"

# Singleton helper functions CDK adds at stack level (their construct ids are fixed by CDK).
LOG_RETENTION_SINGLETON = "LogRetentionaae0aa3c5b4d4f87b02d85b201efdd8a"
BUCKET_NOTIFICATIONS_SINGLETON = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"

# Object layout inside the media bucket (reelay.settings.Settings upload_prefix/output_prefix).
UPLOAD_PREFIX = "uploads/"
OUTPUT_PREFIX = "outputs/"
PLAYBACK_PATH = "/outputs"

# Lambda handlers ("module.function" inside the shared code asset).
API_HANDLER = "lambdas.api.handler.lambda_handler"
UPLOAD_EVENTS_HANDLER = "lambdas.upload_events.handler.lambda_handler"
MIGRATE_HANDLER = "lambdas.migrate.handler.lambda_handler"
DEAD_JOBS_HANDLER = "lambdas.dead_jobs.handler.lambda_handler"
OUTBOX_SWEEP_HANDLER = "lambdas.outbox_sweep.handler.lambda_handler"

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
    "web/node_modules",
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
