"""The app's configuration: one typed model read from cdk context.

cdk.json holds the defaults under the "reelay" key; any field can be overridden on the command
line with a flat key, e.g. ``cdk synth -c stage=prod -c transcoder_max_tasks=8``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError, field_validator, model_validator

from infra.constants import CONTEXT_KEY, KVS_STREAM_PREFIX

_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    731: logs.RetentionDays.TWO_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


# Fargate task sizes: CPU units -> the memory sizes (MiB) Fargate accepts with it.
_FARGATE_MEMORY = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
}


class ConfigError(ValueError):
    """The cdk context does not describe a valid Reelay deployment."""


class ReelayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: str = Field(default="dev", pattern=r"^[a-z][a-z0-9-]{0,15}$")
    account: str | None = Field(default=None, pattern=r"^\d{12}$")
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")

    vpc_cidr: str = "10.40.0.0/16"
    max_azs: int = Field(default=2, ge=2, le=3)  # RDS subnet groups need two AZs
    nat_gateways: int = Field(default=1, ge=1, le=3)  # Lambdas reach Cognito through NAT

    mysql_version: str = "8.0.39"
    db_instance_type: str = "t4g.small"
    db_allocated_storage_gib: int = Field(default=20, ge=20, le=1000)
    db_multi_az: bool = False
    db_backup_retention_days: int = Field(default=7, ge=7, le=35)
    db_name: str = Field(default="reelay", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
    # The server refuses unencrypted connections; the Lambdas and the worker connect with TLS.
    db_require_tls: bool = True

    # Reserved Lambda concurrency bounds MySQL connections; accounts still on the initial quota of
    # 10 concurrent executions cannot reserve any, so they turn this off.
    reserve_concurrency: bool = True

    alarm_email: EmailStr | None = None
    # Cognito's own sender allows 50 emails a day (sign-up codes): set a sender verified in SES to send
    # through SES instead. ses_region is the SES identity's region (default: the deployment's region).
    ses_from_email: EmailStr | None = None
    ses_from_name: str = Field(default="Reelay", min_length=1, max_length=64)
    ses_region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    log_retention_days: int = 30

    transcoder_min_tasks: int = Field(default=0, ge=0)
    transcoder_max_tasks: int = Field(default=4, ge=1, le=50)
    # A task works one job at a time: one task per job in flight, plus one per this many queued jobs.
    transcoder_jobs_per_task: int = Field(default=1, ge=1, le=100)
    transcoder_spot: bool = True
    transcode_queue_visibility_seconds: int = Field(default=300, ge=30, le=43200)
    worker_lease_seconds: int = Field(default=120, ge=10)  # reelay.settings lease_seconds
    max_receive_count: int = Field(default=3, ge=1, le=10)  # reelay.settings max_attempts
    oldest_message_alarm_seconds: int = Field(default=1800, ge=60)

    # Live relay: one Fargate task per stream (see infra/constructs/relay.py).
    relay_cpu: int = 1024
    relay_memory_mib: int = 2048
    # The relay task's role may use only KVS streams whose names start with this (reelay-<stage>- when
    # unset); the API names every stream's KVS stream under it (REELAY_KVS_STREAM_PREFIX).
    kvs_stream_prefix: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")

    # Unset (the default): the storage stack makes the key pair that signs private playback at deploy
    # time (the private half in its PlaybackSigningKey secret). To bring your own key instead, the path
    # (from the repository root) of its public half as PEM; its private half then goes into that
    # secret by hand: `python -m infra.playback_keys`.
    playback_public_key_path: str | None = None
    playback_url_expires_seconds: int = Field(default=4 * 3600, ge=60, le=7 * 24 * 3600)

    api_throttle_rate: float = Field(default=50, gt=0)
    api_throttle_burst: int = Field(default=100, ge=1)
    # Tighter method throttles on the unauthenticated /auth/* routes (sign-up, login, codes: each a
    # Cognito call, some an email). Per stage, for all clients together; WAF's rate rules are per IP.
    api_auth_throttle_rate: float = Field(default=5, gt=0)
    api_auth_throttle_burst: int = Field(default=10, ge=1)
    cors_allowed_origins: tuple[str, ...] = ("*",)

    # WAF web ACLs with rate-based rules per client IP (requests per 5 minutes): a regional one on the
    # API (all routes, and tighter on /auth/*), and one in us-east-1 on the CloudFront distributions.
    waf_enabled: bool = True
    waf_api_rate_limit: int = Field(default=1000, ge=10, le=2_000_000_000)
    waf_auth_rate_limit: int = Field(default=100, ge=10, le=2_000_000_000)
    # A viewer fetches a segment per rendition every couple of seconds, and many share one NAT address.
    waf_cdn_rate_limit: int = Field(default=6000, ge=10, le=2_000_000_000)

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        net = ipaddress.ip_network(value, strict=True)
        if net.version != 4 or not 16 <= net.prefixlen <= 20:
            raise ValueError("vpc_cidr must be an IPv4 network between /16 and /20")
        return value

    @field_validator("mysql_version")
    @classmethod
    def _mysql(cls, value: str) -> str:
        if not hasattr(rds.MysqlEngineVersion, "VER_" + value.replace(".", "_")):
            raise ValueError(f"MySQL {value} is not an engine version aws-cdk-lib knows (e.g. 8.0.39)")
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in _RETENTION:
            raise ValueError("log_retention_days must be a CloudWatch Logs retention value, e.g. 30")
        return value

    @model_validator(mode="after")
    def _fargate_size(self) -> ReelayConfig:
        memory = _FARGATE_MEMORY.get(self.relay_cpu)
        if memory is None:
            raise ValueError(f"relay_cpu must be a Fargate CPU value: {sorted(_FARGATE_MEMORY)}")
        if self.relay_memory_mib not in memory:
            raise ValueError(
                f"relay_memory_mib must be one of {memory[0]}..{memory[-1]} MiB that Fargate pairs with "
                f"relay_cpu {self.relay_cpu}"
            )
        return self

    @model_validator(mode="after")
    def _consistent(self) -> ReelayConfig:
        if self.transcoder_min_tasks > self.transcoder_max_tasks:
            raise ValueError("transcoder_min_tasks must not exceed transcoder_max_tasks")
        if self.ses_from_email is not None and self.ses_region is None and self.region is None:
            raise ValueError("ses_region (or region) is needed to send Cognito email through SES")
        if (
            self.api_auth_throttle_rate > self.api_throttle_rate
            or self.api_auth_throttle_burst > self.api_throttle_burst
        ):
            raise ValueError("api_auth_throttle_rate/burst must not exceed api_throttle_rate/burst")
        if self.transcode_queue_visibility_seconds <= self.worker_lease_seconds:
            raise ValueError("transcode_queue_visibility_seconds must exceed worker_lease_seconds")
        return self

    def reserved(self, executions: int) -> int | None:
        return executions if self.reserve_concurrency else None

    @property
    def playback_public_key(self) -> str | None:
        """The PEM text at playback_public_key_path (None when unset: the stack makes the key pair);
        ConfigError if it is not a PEM public key."""
        from pathlib import Path

        if self.playback_public_key_path is None:
            return None
        path = Path(__file__).resolve().parents[1] / self.playback_public_key_path
        try:
            text = path.read_text().strip()
        except OSError:
            raise ConfigError(
                f"playback_public_key_path: {path} is missing; run python -m infra.playback_keys"
            ) from None
        if not text.startswith("-----BEGIN PUBLIC KEY-----") or not text.endswith("-----END PUBLIC KEY-----"):
            raise ConfigError(f"playback_public_key_path: {path} is not a PEM public key")
        return text + "\n"

    @property
    def kvs_prefix(self) -> str:
        return self.kvs_stream_prefix or KVS_STREAM_PREFIX.format(stage=self.stage)

    @property
    def log_retention(self) -> logs.RetentionDays:
        return _RETENTION[self.log_retention_days]

    @property
    def mysql_engine_version(self) -> rds.MysqlEngineVersion:
        return getattr(rds.MysqlEngineVersion, "VER_" + self.mysql_version.replace(".", "_"))

    @property
    def env(self) -> cdk.Environment | None:
        """Explicit account/region when configured; otherwise env-agnostic (synth stays offline)."""
        if self.account is None and self.region is None:
            return None
        return cdk.Environment(account=self.account, region=self.region)

    @classmethod
    def from_context(
        cls, values: dict[str, Any] | None, overrides: dict[str, Any] | None = None
    ) -> ReelayConfig:
        merged: dict[str, Any] = dict(values or {})
        for key, value in (overrides or {}).items():
            if key in cls.model_fields:
                merged[key] = value
        try:
            return cls.model_validate(merged)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"invalid Reelay config in cdk context: {problems}") from None

    @classmethod
    def from_app(cls, app: cdk.App) -> ReelayConfig:
        base = app.node.try_get_context(CONTEXT_KEY)
        if base is not None and not isinstance(base, dict):
            raise ConfigError(f"cdk context '{CONTEXT_KEY}' must be an object")
        overrides = {key: app.node.try_get_context(key) for key in cls.model_fields}
        return cls.from_context(base, {k: v for k, v in overrides.items() if v is not None})
