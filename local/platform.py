"""The one-machine platform: start every part in order, stop them in reverse."""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from local.auth import JwtAuthorizer
from local.aws import AwsResources, MotoServer, SqsRecords, provision
from local.aws import client as aws_client
from local.config import REMOTE_WARNING, LocalSettings, is_loopback, remote_refusal
from local.database import PrivateMariaDB
from local.gateway import Gateway, LambdaContext, RedactSecrets
from local.gateway_faults import Faults
from local.identity import LocalConfirmationIdentity
from local.media import MediaEndpoint
from local.users import DurableUsers
from local.web import WebApp, web_config
from local.workers import Background, SqsEventSource, deliver_with_retries
from reelay.errors import NotFound
from reelay.ports import ObjectInfo
from reelay.settings import Settings, get_settings
from reelay.storage.url import redact_url

log = logging.getLogger("local")

PROJECT_ROOT = Path(__file__).resolve().parent.parent

PERSISTENCE = """\
What persists across restarts (in the state directory): the catalogue (MariaDB), the media, and
confirmed users (users.json: email, user id, a password hash; restored at their next login).
What does not: tokens (log in again after a restart), queue contents
(in-flight videos are re-enqueued from the catalogue at start, and uploads that landed without
their event get it again) and SNS events."""


class StartupError(RuntimeError):
    """A reason the platform cannot start, worded for the person running it."""


def ensure_port_free(host: str, port: int, what: str, flag: str) -> None:
    # werkzeug exits the process (or silently kills moto's thread) on a busy port: check first.
    if port == 0:
        return
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise StartupError(
                f"{what} port {host}:{port} is in use ({e.strerror}); "
                f"stop that program or pass {flag} (0 = free)"
            ) from e


def say(line: str) -> None:
    print(line, flush=True)


class Platform:
    def __init__(self, opts: LocalSettings, *, announce: Callable[[str], None] = say) -> None:
        self.opts = opts
        self.state_dir = opts.state_dir.resolve()
        self.announce = announce
        self._stops: list[tuple[str, Callable[[], None]]] = []  # run in reverse at stop()
        self.moto: MotoServer | None = None
        self.aws: AwsResources | None = None
        self.database: PrivateMariaDB | None = None
        self.server: BaseWSGIServer | None = None
        self.settings: Settings | None = None
        self.services: Any = None
        self.api_url = ""
        self.workers: list[Background] = []
        # One lock per Lambda function that is not safe to run concurrently (see _invoke).
        self._lambda_locks: dict[Callable[..., Any], threading.RLock] = {}
        self._locks_lock = threading.Lock()

    # --- start -------------------------------------------------------------------------------
    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._setup_logging()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        opts = self.opts
        # moto accepts any credentials; boto3 only needs some to sign with.
        for k, v in (
            ("AWS_ACCESS_KEY_ID", "local"),
            ("AWS_SECRET_ACCESS_KEY", "local"),
            ("AWS_REGION", "us-east-1"),
        ):
            os.environ.setdefault(k, v)
        os.environ.setdefault("AWS_DEFAULT_REGION", os.environ["AWS_REGION"])
        base = Settings()

        if not is_loopback(opts.host):
            if not opts.allow_remote:
                raise RuntimeError(remote_refusal(opts.host))
            self.announce(REMOTE_WARNING.format(host=opts.host))
        ensure_port_free(opts.host, opts.port, "the gateway", "--port")
        ensure_port_free(opts.host, opts.moto_port, "the moto", "--moto-port")
        self.moto = MotoServer(opts.host, opts.moto_port)
        moto_url = self.moto.start()
        self._stops.append(("moto", self.moto.stop))
        self.aws = provision(
            moto_url,
            base.aws_region,
            max_attempts=base.max_attempts,
            # Longer than a lease, as in the deployed stack, so a live job is never redelivered.
            visibility_seconds=max(300, 2 * base.lease_seconds),
        )

        if opts.database_url:
            database_url = opts.database_url
        else:
            ensure_port_free(opts.host, opts.db_port, "the private MariaDB", "--db-port")
            self.database = PrivateMariaDB(self.state_dir, host=opts.host, port=opts.db_port)
            self.database.start()
            self._stops.append(("MariaDB", self.database.stop))
            self.database.create_database(opts.db_name)
            database_url = self.database.url(opts.db_name)

        media_root = self.state_dir / "media"
        media_root.mkdir(parents=True, exist_ok=True)
        self.media = MediaEndpoint(
            output_prefix=base.output_prefix, private_output_prefix=base.private_output_prefix
        )
        self._start_live_parts()

        # Bind first: with --port 0 the URLs in the settings need the port the OS picked.
        self.gateway = Gateway(
            api_handler=self._api_handler,
            authorizer=JwtAuthorizer(self.aws.jwks_url, self.aws.issuer, self.aws.user_pool_client_id),
            media=self.media,
            static_dir=PROJECT_ROOT / "node_modules" / "hls.js" / "dist",
            max_body_bytes=opts.max_body_bytes,
            web=WebApp(PROJECT_ROOT / "web" / "dist", config=self._web_config),
            faults=Faults() if opts.faults else None,
        )
        self.server = make_server(opts.host, opts.port, self.gateway, threaded=True)
        self._stops.append(("gateway socket", self.server.server_close))
        self.api_url = f"http://{opts.host}:{self.server.server_port}"

        self.settings = self._export_settings(
            media_store_url=f"file://{media_root}",
            database_url=database_url,
            user_pool_id=self.aws.user_pool_id,
            user_pool_client_id=self.aws.user_pool_client_id,
            transcode_queue_url=self.aws.transcode_queue_url,
            events_topic_arn=self.aws.events_topic_arn,
            aws_endpoint_url=moto_url,
            playback_base_url=f"{self.api_url}/media/{base.output_prefix.strip('/')}",
            playback_signed_base_url=f"{self.api_url}/media/{base.private_output_prefix.strip('/')}",
            file_store_public_url=f"{self.api_url}/media",
            # A key from the environment wins; else one made once and kept, so URLs survive restarts.
            file_store_signing_key=base.file_store_signing_key or self._signing_key(),
            # The demo camera (and any camera on this machine) is on loopback: allowed here only.
            allow_loopback_sources="true",
            stream_secret_keys=(
                base.stream_secret_keys.get_secret_value()
                if base.stream_secret_keys
                else self._signing_key("stream-secret-key")
            ),
            relay_work_dir=str(self.state_dir / "relays" / "work"),
        )

        self._migrate()
        self.services = self._build_services()
        self.media.store = self.services.store
        self.media.signing_key = self.settings.file_store_signing_key
        self._reenqueue_in_flight()
        self._redeliver_landed_uploads()
        if not opts.no_workers:
            self._start_workers()

        thread = threading.Thread(target=self.server.serve_forever, name="gateway", daemon=True)
        thread.start()
        self._stops.append(("gateway", self.server.shutdown))
        self._write_endpoints(database_url)

    def _web_config(self) -> dict[str, str]:
        assert self.aws is not None
        return web_config(
            api_url=self.api_url,
            region=self.aws.region,
            user_pool_id=self.aws.user_pool_id,
            user_pool_client_id=self.aws.user_pool_client_id,
        )

    def _setup_logging(self) -> None:
        self.log_file = self.state_dir / "reelay.log"
        root = logging.getLogger()
        if not any(getattr(h, "_reelay_local", False) for h in root.handlers):
            handler = logging.FileHandler(self.log_file)
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s %(threadName)s: %(message)s")
            )
            handler._reelay_local = True  # type: ignore[attr-defined]
            handler.addFilter(RedactSecrets())  # presigned signatures and tokens stay out of the log
            root.addHandler(handler)
            root.setLevel(logging.INFO)
        # Request lines from moto and the gateway go to the log file only.
        logging.getLogger("werkzeug").propagate = True
        for h in logging.getLogger("werkzeug").handlers:
            logging.getLogger("werkzeug").removeHandler(h)

    def _signing_key(self, name: str = "signing-key") -> str:
        path = self.state_dir / name
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def _export_settings(self, **values: str) -> Settings:
        """Every component reads Settings from REELAY_* variables: set them once, here."""
        for name, value in values.items():
            os.environ[f"REELAY_{name.upper()}"] = value
        get_settings.cache_clear()
        return get_settings()

    def _migrate(self) -> None:
        from reelay.catalogue import ConnectionProvider, migrate

        assert self.settings is not None and self.settings.database_url
        migrate(ConnectionProvider.from_url(self.settings.database_url))

    def _build_services(self) -> Any:
        from reelay.storage import open_store
        from reelay.wiring import Services, set_services

        assert self.settings is not None
        cloud = Services(self.settings)
        store = open_store(
            self.settings.media_store_url, settings=self.settings, on_created=self._object_created
        )
        assert self.aws is not None
        # Users outlive moto: recorded in the state dir, restored with their sub at their next login.
        users = DurableUsers(
            cloud.identity,
            self.state_dir / "users.json",
            idp=aws_client("cognito-idp", self.aws.endpoint_url, self.aws.region),
            user_pool_id=self.aws.user_pool_id,
        )
        identity = LocalConfirmationIdentity(
            users, self.state_dir / "confirmation-codes.json", announce=self.announce
        )
        self.relays = self._relay_launcher(cloud)
        services = Services(self.settings, store=store, identity=identity, launcher=self.relays)
        set_services(services)
        return services

    # --- live: the KVS stand-in, the demo camera, the relay tasks ----------------------------------
    def _start_live_parts(self) -> None:
        from local.kvs import KvsStandIn

        opts = self.opts
        ensure_port_free(opts.host, opts.kvs_port, "the KVS stand-in", "--kvs-port")
        self.kvs = KvsStandIn(self.state_dir / "kvs", host=opts.host, port=opts.kvs_port).start()
        self._stops.append(("KVS stand-in", self.kvs.stop))
        self.camera = None
        if opts.camera != "none":
            from local.cameras import HlsCamera, RtspCamera, SrtCamera

            ensure_port_free(opts.host, opts.camera_port, "the demo camera", "--camera-port")
            kinds = {
                "rtsp": lambda: RtspCamera(port=opts.camera_port),
                "srt": lambda: SrtCamera(port=opts.camera_port),
                "hls": lambda: HlsCamera(self.state_dir / "camera", port=opts.camera_port),
            }
            self.camera = kinds[opts.camera]().start()
            self._stops.append(("demo camera", self.camera.stop))

    def _relay_launcher(self, cloud: Any) -> Any:
        """Relay tasks run as child processes, talking to the stand-in as ECS tasks talk to KVS: the
        control plane at CONTROL_PLANE_URI, credentials from a container-credentials endpoint."""
        from local.relays import LocalRelays

        env = dict(os.environ)
        env.update(
            {
                "CONTROL_PLANE_URI": self.kvs.url,
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": self.kvs.credentials_url,
                "POWERTOOLS_SERVICE_NAME": "reelay-relay",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return LocalRelays(cloud.catalogue, log_dir=self.state_dir / "relays", env=env)

    def _object_created(self, info: ObjectInfo) -> None:
        """The file store's stand-in for S3's ObjectCreated notification.

        The first delivery is synchronous, so the upload's response already finds the video
        queued. A failed delivery is retried in the background, as Lambda retries an async event.
        """
        from lambdas.upload_events.handler import lambda_handler

        event = s3_event(self.settings, info.key, info.size)

        def deliver() -> None:
            self._invoke(lambda_handler, event, LambdaContext("reelay-upload-events"))

        deliver_with_retries(deliver, what=f"upload event for {info.key}")

    def _api_handler(self) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        from lambdas.api.handler import lambda_handler

        # No lock: the resolver keeps each thread's event apart (reelay.api.app.ThreadSafeResolver),
        # so the threaded gateway serves API requests concurrently, like many Lambda instances.
        return lambda_handler  # type: ignore[no-any-return]

    def _invoke(
        self, handler: Callable[[dict[str, Any], Any], Any], event: dict[str, Any], context: Any
    ) -> Any:
        # A Lambda instance serves one event at a time, and these handlers may rely on it (module
        # state): each function's invocations take turns, as with one instance. Functions still
        # run alongside one another and alongside the API.
        with self._locks_lock:
            lock = self._lambda_locks.setdefault(handler, threading.RLock())
        with lock:
            return handler(event, context)

    def _reenqueue_in_flight(self) -> None:
        from reelay.models import TranscodeJob

        videos = self.services.catalogue.in_flight()
        for v in videos:
            self.services.queue.send(TranscodeJob.for_video(v))
        if videos:
            log.info("re-enqueued %d in-flight videos", len(videos))
            self.announce(
                f"re-enqueued {len(videos)} in-flight video(s): {', '.join(v.video_id for v in videos)}"
            )

    def _redeliver_landed_uploads(self) -> None:
        """Uploads that landed while their event was lost (the platform died between the PUT and
        the event) would wait forever: deliver their event again, as S3 would have."""
        from reelay.models import VideoStatus

        assert self.settings is not None
        store, catalogue = self.services.store, self.services.catalogue
        uploads = self.services.uploads
        redelivered = []
        for info in list(store.list(self.settings.upload_prefix)):
            video_id = uploads.video_id_for(info.key)
            if video_id is None:
                continue
            try:
                video = catalogue.get(video_id)
            except NotFound:
                continue  # the event would only delete it; leave that to a real notification
            if video.status != VideoStatus.AWAITING_UPLOAD or video.video_key != info.key:
                continue
            self._object_created(info)
            redelivered.append(video_id)
        if redelivered:
            log.info("re-delivered %d upload event(s)", len(redelivered))
            self.announce(
                f"re-delivered the upload event of {len(redelivered)} video(s): {', '.join(redelivered)}"
            )

    def _start_workers(self) -> None:
        self.workers = [Background(spec.name, spec.build(self)) for spec in BACKGROUND_WORKERS]
        for w in self.workers:
            w.start()
            self._stops.append((w.name, w.stop))

    def worker_id(self) -> str:
        # Stable across restarts, so the worker's own leases from a previous run are recognisable.
        return self.opts.worker_id or f"local-{socket.gethostname()}"

    def _write_endpoints(self, database_url: str) -> None:
        assert self.aws is not None
        self.endpoints = {
            "api": self.api_url,
            "web": f"{self.api_url}/",
            "media": f"{self.api_url}/media",
            "moto": self.aws.endpoint_url,
            "userPoolId": self.aws.user_pool_id,
            "userPoolClientId": self.aws.user_pool_client_id,
            "transcodeQueueUrl": self.aws.transcode_queue_url,
            "deadLetterQueueUrl": self.aws.dead_letter_queue_url,
            "eventsTopicArn": self.aws.events_topic_arn,
            "database": redact_url(database_url),
            "stateDir": str(self.state_dir),
            "logFile": str(self.log_file),
            "kvs": self.kvs.url,
            "kvsViewer": f"{self.kvs.url}/_reelay/streams",
            "demoCamera": self.camera.url if self.camera is not None else "none",
            "relayLogs": str(self.state_dir / "relays"),
        }
        (self.state_dir / "endpoints.json").write_text(json.dumps(self.endpoints, indent=2) + "\n")

    def banner(self) -> str:
        e = self.endpoints
        width = max(len(k) for k in e)
        lines = [f"  {k.ljust(width)}  {v}" for k, v in e.items()]
        return "\n".join(["", "Reelay on this machine:", *lines, "", PERSISTENCE, ""])

    # --- stop --------------------------------------------------------------------------------
    def stop(self) -> None:
        while self._stops:
            name, stop = self._stops.pop()
            try:
                stop()
                log.info("stopped %s", name)
            except Exception:
                log.exception("stopping %s failed", name)


# The outbox_sweep rule runs every minute in AWS; the same here (each sweep prints its metrics line).
# The worker and the dead-jobs handler publish their own events at once; the sweep only catches up.
OUTBOX_SWEEP_EVERY_SECONDS = 60.0


class Schedule:
    """What an EventBridge schedule rule does: invoke a handler with a scheduled event, then again
    every ``every_seconds`` until stopped. A failed run is logged; the next one is the retry."""

    def __init__(
        self,
        *,
        name: str,
        every_seconds: float,
        region: str,
        handler: Callable[[dict[str, Any], Any], Any],
        timeout_seconds: int = 60,
    ) -> None:
        self.name = name
        self.every_seconds = every_seconds
        self.region = region
        self.timeout_seconds = timeout_seconds
        self._handler = handler

    def __call__(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self._handler(
                    scheduled_event(self.region, f"{self.name}-schedule"),
                    LambdaContext(self.name, timeout_seconds=self.timeout_seconds),
                )
            except Exception:
                log.exception("%s failed; the next scheduled run retries", self.name)
            stop.wait(self.every_seconds)  # returns at once on stop()


def scheduled_event(region: str, rule: str) -> dict[str, Any]:
    """An EventBridge ``Scheduled Event``, as a schedule rule delivers it to its Lambda target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:000000000000:rule/{rule}"],
        "detail": {},
    }


def s3_event(settings: Any, key: str, size: int) -> dict[str, Any]:
    """An S3 ObjectCreated:Put notification for one object of the media store."""
    from urllib.parse import quote_plus

    bucket = Path(settings.media_store_url.removeprefix("file://")).name or "media"
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": settings.aws_region,
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    # S3 URL-encodes keys in notifications (spaces as '+').
                    "object": {"key": quote_plus(key, safe="/"), "size": size, "eTag": ""},
                },
            }
        ]
    }


# --- the background work: what AWS runs as ECS services, Lambda event sources and schedules ---------
# One row each; Platform._start_workers starts them in this order and stops them in reverse.
@dataclass(frozen=True)
class WorkerSpec:
    name: str
    build: Callable[[Platform], Callable[[threading.Event], None]]


def _transcode_worker(platform: Platform) -> Callable[[threading.Event], None]:
    from transcoder.worker import Worker

    settings, worker_id = platform.settings, platform.worker_id()
    assert settings is not None

    def run(stop: threading.Event) -> None:
        Worker(platform.services, settings, stop, worker_id=worker_id, wait_seconds=2).run_forever()

    return run


def _dead_jobs(platform: Platform) -> Callable[[threading.Event], None]:
    from lambdas.dead_jobs.handler import lambda_handler as dead_jobs

    assert platform.aws is not None
    dlq = SqsRecords(platform.aws.endpoint_url, platform.aws.region, platform.aws.dead_letter_queue_url)
    return SqsEventSource(
        name="reelay-dead-jobs",
        poll=dlq.poll,
        delete=dlq.delete,
        handler=lambda event, context: platform._invoke(dead_jobs, event, context),
    )


def _outbox_sweep(platform: Platform) -> Callable[[threading.Event], None]:
    # The EventBridge schedule of the outbox sweep, every minute as in AWS: the worker publishes right
    # away; this catches what a crash or an unreachable moto left behind.
    from lambdas.outbox_sweep.handler import lambda_handler as outbox_sweep

    assert platform.settings is not None
    return Schedule(
        name="reelay-outbox-sweep",
        every_seconds=OUTBOX_SWEEP_EVERY_SECONDS,
        region=platform.settings.aws_region,
        handler=lambda event, context: platform._invoke(outbox_sweep, event, context),
    )


def _stuck_sweep(platform: Platform) -> Callable[[threading.Event], None]:
    # The stuck-video sweep's EventBridge schedule (reelay.stuck): re-enqueues videos left queued or
    # processing past their deadline, or fails them once their attempts are spent.
    from lambdas.stuck_sweep.handler import lambda_handler as stuck_sweep

    assert platform.settings is not None
    return Schedule(
        name="reelay-stuck-sweep",
        every_seconds=STUCK_SWEEP_EVERY_SECONDS,
        region=platform.settings.aws_region,
        handler=lambda event, context: platform._invoke(stuck_sweep, event, context),
    )


STUCK_SWEEP_EVERY_SECONDS = 60.0


def _relay_tasks(platform: Platform) -> Callable[[threading.Event], None]:
    # ECS RunTask plus the reconciler: a child process per started stream, replaced if it dies.
    return platform.relays  # type: ignore[no-any-return]


def _recording_sweep(platform: Platform) -> Callable[[threading.Event], None]:
    # The recording sweep's EventBridge schedule: ended sessions -> finalize, stale ones -> fixup, the
    # workflow run in-process by the local runner (the same definition as the state machine). Not
    # through platform._invoke: a workflow (an MP4 export) may run for minutes, the Lambda lock must not.
    from reelay.recording.retention import expire_recordings
    from reelay.recording.sweep import LocalStarter, step_context, sweep

    def run(stop: threading.Event) -> None:
        starter = LocalStarter(step_context(platform.services))
        while not stop.is_set():
            sweep(platform.services.catalogue, starter, mp4=platform.services.settings.recording_mp4)
            expire_recordings(platform.services)  # each stream's retentionDays
            stop.wait(RECORDING_SWEEP_EVERY_SECONDS)

    return run


# A test that finalizes by hand sets it long, so the sweep does not race the click.
RECORDING_SWEEP_EVERY_SECONDS = float(os.environ.get("REELAY_RECORDING_SWEEP_SECONDS", "15"))

BACKGROUND_WORKERS: tuple[WorkerSpec, ...] = (
    WorkerSpec("transcode-worker", _transcode_worker),
    WorkerSpec("dead-jobs", _dead_jobs),
    WorkerSpec("outbox-sweep", _outbox_sweep),
    WorkerSpec("stuck-sweep", _stuck_sweep),
    WorkerSpec("relay-tasks", _relay_tasks),
    WorkerSpec("recording-sweep", _recording_sweep),
)
