"""Composition root: builds the adapters and services from Settings, once per process.

Each port is built on first use and cached, so a Lambda builds only what its route needs and
reuses it across warm starts. Tests and the local platform pass ready-made ports instead.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from reelay.settings import Settings, get_settings

if TYPE_CHECKING:  # the services are imported where built: each Lambda loads only what its routes use
    from reelay.ports import (
        CdnInvalidator,
        EventPublisher,
        IdentityProvider,
        JobQueue,
        ObjectStore,
        PlaybackSigner,
        RelayLauncher,
        VideoCatalogue,
    )
    from reelay.recording.service import ExportLauncher, RecordingService
    from reelay.recording.sweep import WorkflowStarter
    from reelay.relay.reconciler import RelayLauncher as RelayTaskLauncher
    from reelay.relay.secrets import SourceSecrets
    from reelay.relay.streams import StreamService
    from reelay.uploads import UploadEventService
    from reelay.videos import VideoService

_PORTS = (
    "catalogue",
    "store",
    "queue",
    "events",
    "identity",
    "cdn",
    "launcher",
    "source_secrets",
    "relay_launcher",
    "playback_signer",
    "recording_starter",
    "export_launcher",
)


class Services:
    """Lazily built ports and services. Keyword arguments replace a port (fakes, local platform)."""

    def __init__(self, settings: Settings | None = None, **ports: Any) -> None:
        unknown = set(ports) - set(_PORTS)
        if unknown:
            raise TypeError(f"unknown ports: {', '.join(sorted(unknown))}")
        self.settings = settings or get_settings()
        # cached_property reads the instance dict first, so a given port is simply pre-cached.
        self.__dict__.update(ports)

    @cached_property
    def catalogue(self) -> VideoCatalogue:
        from reelay.catalogue.connection import ConnectionProvider
        from reelay.catalogue.mysql import MySQLCatalogue

        return MySQLCatalogue(ConnectionProvider.from_settings(self.settings))

    @cached_property
    def store(self) -> ObjectStore:
        from reelay.storage import open_store

        return open_store(self.settings.media_store_url, settings=self.settings)

    @cached_property
    def queue(self) -> JobQueue:
        from reelay.adapters.sqs import SqsJobQueue

        if not self.settings.transcode_queue_url:
            raise RuntimeError("REELAY_TRANSCODE_QUEUE_URL is not set")
        return SqsJobQueue(self.settings.transcode_queue_url, settings=self.settings)

    @cached_property
    def events(self) -> EventPublisher:
        from reelay.adapters.sns import LogEventPublisher, SnsEventPublisher

        if not self.settings.events_topic_arn:
            return LogEventPublisher()
        return SnsEventPublisher(self.settings.events_topic_arn, settings=self.settings)

    @cached_property
    def identity(self) -> IdentityProvider:
        from reelay.adapters.cognito import CognitoIdentity

        if not self.settings.user_pool_id or not self.settings.user_pool_client_id:
            raise RuntimeError("REELAY_USER_POOL_ID and REELAY_USER_POOL_CLIENT_ID must be set")
        return CognitoIdentity(
            self.settings.user_pool_id, self.settings.user_pool_client_id, settings=self.settings
        )

    @cached_property
    def cdn(self) -> CdnInvalidator:
        from reelay.adapters.cloudfront import CloudFrontInvalidator, NoCdnInvalidator

        if not self.settings.cdn_distribution_id:
            return NoCdnInvalidator()
        return CloudFrontInvalidator(self.settings.cdn_distribution_id, settings=self.settings)

    @cached_property
    def playback_signer(self) -> PlaybackSigner:
        """CloudFront signed URLs in AWS (key from Secrets Manager); the local gateway's HMAC elsewhere."""
        s = self.settings
        base = s.playback_signed_base_url or _private_base(s)
        if s.playback_signing_secret_arn and s.playback_key_pair_id:
            from reelay.adapters.cloudfront_signing import CloudFrontPlaybackSigner, secret_pem

            pem = secret_pem(
                s.playback_signing_secret_arn,
                endpoint_url=s.aws_endpoint_url,
                region=s.aws_region,
                max_age=s.db_secret_max_age,
            )
            return CloudFrontPlaybackSigner(base, s.playback_key_pair_id, pem)
        from reelay.playback import HmacPlaybackSigner

        return HmacPlaybackSigner(
            s.file_store_signing_key, base_url=base, output_prefix=s.private_output_prefix
        )

    @cached_property
    def launcher(self) -> RelayLauncher:
        # Until a process is given a launcher (ECS, local children), the reconciler does the work.
        from reelay.relay.streams import LeaveToReconciler

        return LeaveToReconciler()

    @cached_property
    def source_secrets(self) -> SourceSecrets:
        """Keys from REELAY_STREAM_SECRET_KEYS, or in AWS from the Secrets Manager secret (cached)."""
        from reelay.relay.secrets import SourceSecrets, parse_keys

        if self.settings.stream_secret_keys is not None:
            return SourceSecrets(parse_keys(self.settings.stream_secret_keys.get_secret_value()))
        if self.settings.stream_secret_arn:
            from reelay.catalogue.connection import default_secrets_provider

            provider = default_secrets_provider(
                endpoint_url=self.settings.aws_endpoint_url, region=self.settings.aws_region
            )
            value = provider.get(self.settings.stream_secret_arn, max_age=self.settings.db_secret_max_age)
            return SourceSecrets(parse_keys(str(value)))
        return SourceSecrets([])  # streams without secrets still work; sealing one says what is missing

    @cached_property
    def streams(self) -> StreamService:
        from reelay.relay.streams import StreamService

        catalogue: Any = self.catalogue  # the MySQL (and memory) catalogue is also the StreamCatalogue
        return StreamService(
            catalogue, self.launcher, self.source_secrets, self.settings, outbox=catalogue, events=self.events
        )

    @cached_property
    def videos(self) -> VideoService:
        from reelay.videos import VideoService

        return VideoService(self.catalogue, self.store, self.settings, self.cdn, signer=self.playback_signer)

    @cached_property
    def uploads(self) -> UploadEventService:
        from reelay.uploads import UploadEventService

        return UploadEventService(self.catalogue, self.store, self.queue, self.events, self.settings)

    @cached_property
    def relay_launcher(self) -> RelayTaskLauncher:
        """Relay tasks on ECS (the reconciler's); from the REELAY_RELAY_* settings."""
        from reelay.adapters.ecs import EcsRelayLauncher

        return EcsRelayLauncher.from_settings(self.settings)

    @cached_property
    def recording_starter(self) -> WorkflowStarter:
        """Step Functions when the state machine is configured (AWS); else the local runner, in the
        background (the local platform)."""
        arn = self.settings.recording_state_machine_arn
        if arn:
            from reelay.adapters.stepfunctions import StepFunctionsStarter

            return StepFunctionsStarter(arn, settings=self.settings)
        from reelay.recording.sweep import BackgroundStarter, step_context

        return BackgroundStarter(step_context(self))

    @cached_property
    def export_launcher(self) -> ExportLauncher | None:
        """The export workflow: on Step Functions when its state machine is configured (AWS); on the
        local runner, in the background, where the recording workflow runs locally too; else None
        (exports answer 503: a deployment with the finalize state machine but not the export one)."""
        arn = self.settings.recording_export_state_machine_arn
        if arn:
            from reelay.adapters.stepfunctions import StepFunctionsExportLauncher

            return StepFunctionsExportLauncher(arn, settings=self.settings)
        if self.settings.recording_state_machine_arn:
            return None
        from reelay.recording.sweep import LocalExportLauncher, step_context

        return LocalExportLauncher(step_context(self))

    @cached_property
    def recordings(self) -> RecordingService:
        from reelay.recording.service import RecordingService

        return RecordingService(
            self.catalogue,
            self.streams,
            self.store,
            self.settings,
            starter=lambda: self.recording_starter,
            exports=self.export_launcher,
            signer=self.playback_signer,
        )


def _private_base(settings: Settings) -> str:
    """The signed media's base URL by default: the public one's, at the private output prefix."""
    base = settings.playback_base_url.rstrip("/")
    public = "/" + settings.output_prefix.strip("/")
    # Served at the output prefix's place; a base that does not end with it gets a sibling path.
    root = base[: -len(public)] if base.endswith(public) else base.rsplit("/", 1)[0]
    return root + "/" + settings.private_output_prefix.strip("/")


_services: Services | None = None


def get_services() -> Services:
    """The process-wide Services, built on first call (kept across Lambda warm starts)."""
    global _services
    if _services is None:
        _services = Services()
    return _services


def set_services(services: Services | None) -> None:
    """Install Services (tests, the local platform); None drops them so the next call rebuilds."""
    global _services
    _services = services
