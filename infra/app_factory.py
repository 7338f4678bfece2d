"""Builds every Reelay stack into an app: used by app.py and by the infra tests."""

from __future__ import annotations

from dataclasses import dataclass, fields

import aws_cdk as cdk

from infra.config import ReelayConfig
from infra.constants import (
    API_STACK,
    AUTH_STACK,
    DATA_STACK,
    MONITORING_STACK,
    NETWORK_STACK,
    QUEUE_STACK,
    RECORDING_STACK,
    RELAY_STACK,
    STORAGE_STACK,
    TAGS,
    TRANSCODER_STACK,
    WEB_STACK,
)
from infra.environment import PlatformRefs
from infra.nag import acknowledge_cdk_helpers, enable_nag
from infra.stacks.api_stack import ApiStack
from infra.stacks.auth_stack import AuthStack
from infra.stacks.data_stack import DataStack
from infra.stacks.monitoring_stack import MonitoringStack
from infra.stacks.network_stack import NetworkStack
from infra.stacks.queue_stack import QueueStack
from infra.stacks.recording_stack import RecordingStack
from infra.stacks.relay_stack import RelayStack
from infra.stacks.storage_stack import StorageStack
from infra.stacks.transcoder_stack import TranscoderStack
from infra.stacks.web_stack import WebStack


@dataclass(frozen=True)
class ReelayStacks:
    network: NetworkStack
    data: DataStack
    storage: StorageStack
    auth: AuthStack
    queue: QueueStack
    api: ApiStack
    transcoder: TranscoderStack
    monitoring: MonitoringStack
    relay: RelayStack
    web: WebStack
    recording: RecordingStack

    def all(self) -> list[cdk.Stack]:
        return [getattr(self, field.name) for field in fields(self)]


def build_app(app: cdk.App, config: ReelayConfig | None = None, *, nag: bool = True) -> ReelayStacks:
    config = config or ReelayConfig.from_app(app)
    env = config.env

    def name(stack_id: str) -> str:
        return f"{config.stage}-{stack_id}"

    network = NetworkStack(app, name(NETWORK_STACK), config=config, env=env)
    data = DataStack(
        app,
        name(DATA_STACK),
        config=config,
        vpc=network.vpc,
        secrets_endpoint=network.network.endpoints["SecretsManager"],
        env=env,
    )
    storage = StorageStack(app, name(STORAGE_STACK), config=config, env=env)
    auth = AuthStack(app, name(AUTH_STACK), config=config, env=env)
    database = data.database

    def refs(queue, dead_letters, topic) -> PlatformRefs:  # type: ignore[no-untyped-def]
        return PlatformRefs(
            config=config,
            vpc=network.vpc,
            db_clients=database.client_security_group,
            db_secret=database.secret,
            media_bucket=storage.media.bucket,
            playback_base_url=storage.media.playback_base_url,
            cdn_distribution_id=storage.media.distribution.distribution_id,
            user_pool=auth.users.pool,
            user_pool_client=auth.users.client,
            transcode_queue=queue,
            dead_letters=dead_letters,
            events_topic=topic,
        )

    queue = QueueStack(app, name(QUEUE_STACK), config=config, refs=refs, env=env)
    api = ApiStack(app, name(API_STACK), refs=queue.refs, env=env)
    transcoder = TranscoderStack(
        app, name(TRANSCODER_STACK), refs=queue.refs, alarm_topic=queue.alarms.topic, env=env
    )
    worker = transcoder.transcoder
    relay = RelayStack(
        app,
        name(RELAY_STACK),
        refs=queue.refs,
        alarm_topic=queue.alarms.topic,
        stream_secret=api.rest.stream_secret,  # the task opens its camera's sealed password
        env=env,
    )
    recording = RecordingStack(
        app,
        name(RECORDING_STACK),
        refs=queue.refs,
        cluster=worker.cluster,
        stream_secret=api.rest.stream_secret,  # opens the sealed store a session recorded to
        env=env,
    )
    monitoring = MonitoringStack(
        app,
        name(MONITORING_STACK),
        stage=config.stage,
        api=api.rest.api,
        functions=[
            api.rest.handler.function,
            queue.upload_trigger.handler.function,
            worker.dead_jobs.function,
            worker.outbox_sweep.function,
            relay.relay.reconciler.function,
        ],
        queue=queue.transcode.queue,
        dead_letters=queue.transcode.dead_letters,
        service=worker.service,
        database=database.instance,
        alarm_topic=queue.alarms.topic,
        env=env,
    )
    web = WebStack(
        app,
        name(WEB_STACK),
        stage=config.stage,
        api_url=api.rest.api.url,
        api_id=api.rest.api.rest_api_id,
        media_domain=storage.media.distribution.distribution_domain_name,
        user_pool_id=auth.users.pool.user_pool_id,
        user_pool_client_id=auth.users.client.user_pool_client_id,
        env=env,
    )
    stacks = ReelayStacks(
        network, data, storage, auth, queue, api, transcoder, monitoring, relay, web, recording
    )
    for key, value in {**TAGS, "stage": config.stage}.items():
        cdk.Tags.of(app).add(key, value)
    if nag:
        for stack in stacks.all():
            acknowledge_cdk_helpers(stack)
        enable_nag(app)
    return stacks
