"""The API Lambda's cold start and its warm latencies.

Cold start: the time ``import lambdas.api.handler`` takes in a fresh interpreter (timed inside the
child around the import, so interpreter start-up is left out), over several processes, next to an
empty Powertools handler (Logger, Metrics and a one-route APIGatewayRestResolver) measured in the
same run, interleaved with it, as the floor. Twice: as run here and in tests (tracing off), and as
in AWS (LAMBDA_TASK_ROOT set, tracing on, so the X-Ray SDK is part of the price).

Warm latencies: p50 and p99 of ``GET /videos``, ``GET /videos/{id}`` and ``POST /videos/upload``
through the real handler (logger, metrics and resolver), in this process, against a migrated
scratch MariaDB database and a file:// store.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.bench.registry import ROOT, BenchContext, Row
from tests.conftest import scratch_database

BENCH = "api"
PROCESSES = 15
ITERATIONS = 300
P99_TARGET_MS = 20.0
IMPORT_TARGET_S = 0.4
CLAIMS = {"sub": "user-bench", "email": "bench@example.com"}  # what the Cognito authorizer verified

FLOOR_HANDLER = '''\
"""An empty Powertools handler: what any API Lambda pays before its own code."""
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver

logger = Logger()
metrics = Metrics(namespace="Floor")
app = APIGatewayRestResolver()


@app.get("/ping")
def ping():
    return {"ok": True}


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event, context):
    return app.resolve(event, context)
'''

# The child times the import alone (not the interpreter's start-up), then one first request: the
# cold start a user waits through is both. Its figures are the last line it prints.
CHILD = """\
import json, sys, time
started = time.perf_counter()
import {module} as handler
imported = time.perf_counter()

class Context:
    function_name = "bench-api"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench-api"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    def get_remaining_time_in_millis(self):
        return 30000

response = handler.lambda_handler(json.loads(sys.argv[1]), Context())
answered = time.perf_counter()
if response["statusCode"] != 200:
    raise SystemExit(f"first request answered {{response}}")
print(json.dumps({{"import": imported - started, "first": answered - imported}}))
"""


def run(ctx: BenchContext) -> list[Row]:
    from tests.fakes import api_event

    with (
        scratch_database(prefix="reelay_bench_api") as db_url,
        tempfile.TemporaryDirectory(prefix="reelay-bench-api-") as media,
    ):
        with _logs_to(io.StringIO()):  # "upload created" per seeded video
            settings, seeded = _seed(db_url, Path(media))
        reelay_env = {
            "REELAY_DATABASE_URL": db_url, "REELAY_DB_NAME": settings.db_name,
            "REELAY_MEDIA_STORE_URL": settings.media_store_url,
            "REELAY_FILE_STORE_SIGNING_KEY": str(settings.file_store_signing_key),
            "REELAY_PLAYBACK_BASE_URL": settings.playback_base_url,
        }  # fmt: skip
        rows = _cold_start_rows(reelay_env, api_event("GET", "/videos"), api_event("GET", "/ping"))
        rows += _latency_rows(settings, seeded)
    return rows


# --- cold start ---------------------------------------------------------------------------------
def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "LAMBDA_", "REELAY_"))}
    env.update({
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_SERVICE_NAME": "api",
        "POWERTOOLS_METRICS_NAMESPACE": "Reelay",
    })  # fmt: skip
    env.update(extra)
    return env


def _cold_start(module: str, path: Path, env: dict[str, str], event: dict[str, Any]) -> tuple[float, float]:
    """(import seconds, first request seconds) of one fresh process."""
    env = {**env, "PYTHONPATH": os.pathsep.join([str(path), str(ROOT)])}
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(module=module), json.dumps(event)],
        cwd=path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if out.returncode:
        raise RuntimeError(f"{module} failed its cold start:\n{out.stderr[-3000:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    return figures["import"], figures["first"]


def _cold_start_rows(
    reelay_env: dict[str, str], api_event: dict[str, Any], floor_event: dict[str, Any]
) -> list[Row]:
    modes = {
        "tracing off": {"POWERTOOLS_TRACE_DISABLED": "true"},
        # What a Lambda instance in AWS pays: Powertools turns tracing on there, X-Ray SDK included.
        "as in AWS, tracing on": {
            "LAMBDA_TASK_ROOT": str(ROOT), "AWS_LAMBDA_FUNCTION_NAME": "bench-api",
            "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
        },
    }  # fmt: skip
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="reelay-bench-floor-") as tmp:
        floor_dir = Path(tmp)
        (floor_dir / "floor_handler.py").write_text(FLOOR_HANDLER)
        subjects = {
            "lambdas.api.handler": ("lambdas.api.handler", ROOT, api_event, "GET /videos"),
            "empty Powertools handler": ("floor_handler", floor_dir, floor_event, "GET /ping"),
        }
        for mode, extra in modes.items():
            env = _child_env({**reelay_env, **extra})
            # Warm the disk cache and the .pyc files once, so every measured run starts alike.
            for module, path, event, _ in subjects.values():
                _cold_start(module, path, env, event)
            imports: dict[str, list[float]] = {name: [] for name in subjects}
            firsts: dict[str, list[float]] = {name: [] for name in subjects}
            for _ in range(PROCESSES):  # interleaved, so load from other work hits both alike
                for name, (module, path, event, _) in subjects.items():
                    took_import, took_first = _cold_start(module, path, env, event)
                    imports[name].append(took_import)
                    firsts[name].append(took_first)
            note = f"{PROCESSES} fresh processes, {mode}"
            for name, (_, _, _, request) in subjects.items():
                target = f"target < {IMPORT_TARGET_S} s" if name == "lambdas.api.handler" else note
                first_ms = statistics.median(firsts[name]) * 1000
                rows += [
                    Row(
                        BENCH, name, f"import median ({mode})", statistics.median(imports[name]), "s", target
                    ),
                    Row(BENCH, name, f"import min ({mode})", min(imports[name]), "s", note),
                    Row(
                        BENCH,
                        name,
                        f"first {request} median ({mode})",
                        first_ms,
                        "ms",
                        "right after the import",
                    ),
                ]
            api, floor = imports["lambdas.api.handler"], imports["empty Powertools handler"]
            rows += [
                Row(BENCH, "lambdas.api.handler", f"import median / floor ({mode})",
                    statistics.median(api) / statistics.median(floor), "x"),
                Row(BENCH, "lambdas.api.handler", f"import min / floor ({mode})", min(api) / min(floor), "x"),
            ]  # fmt: skip
    return rows


# --- warm latencies -----------------------------------------------------------------------------
@contextlib.contextmanager
def _logs_to(stream: io.StringIO) -> Iterator[None]:
    from reelay.observability import logger

    handler = logger.registered_handler
    previous = handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]


def _seed(db_url: str, media: Path) -> tuple[Any, list[str]]:
    """Migrate the scratch database and add a first page's worth of ready videos (and one more)."""
    from reelay.catalogue import ConnectionProvider, MySQLCatalogue, migrate
    from reelay.models import Rendition
    from reelay.settings import Settings
    from reelay.videos import VideoService

    provider = ConnectionProvider.from_url(db_url)
    try:
        migrate(provider)
        settings = Settings(
            media_store_url=f"file://{media}", database_url=db_url, db_name=db_url.rsplit("/", 1)[1],
            file_store_signing_key="bench-signing-key-" + uuid.uuid4().hex,
            playback_base_url="https://cdn.example/outputs",
        )  # fmt: skip
        from reelay.storage import open_store

        catalogue = MySQLCatalogue(provider)
        videos = VideoService(catalogue, open_store(settings.media_store_url, settings=settings), settings)
        ready = []
        for i in range(25):
            video, _ = videos.create_upload(
                CLAIMS["sub"], CLAIMS["email"], f"clip {i}", "", "video/mp4", 100, None
            )
            catalogue.mark_uploaded(video.video_id, size_bytes=100, content_type="video/mp4")
            catalogue.claim(video.video_id, "bench", 60)
            rendition = Rendition(
                name="360p", width=640, height=360, bandwidth=800_000, codecs="avc1.4d401e",
                playlist="360p/index.m3u8",
            )  # fmt: skip
            catalogue.complete(video.video_id, "bench", duration_seconds=3.0, renditions=[rendition])
            ready.append(video.video_id)
        return settings, ready
    finally:
        provider.close()


def _latency_rows(settings: Any, ready: list[str]) -> list[Row]:
    from lambdas.api.handler import lambda_handler
    from reelay.catalogue import ConnectionProvider, MySQLCatalogue
    from reelay.observability import metrics
    from reelay.wiring import Services, set_services
    from tests.fakes import FakeLambdaContext, api_event

    provider = ConnectionProvider.from_url(str(settings.database_url))
    set_services(Services(settings, catalogue=MySQLCatalogue(provider)))
    try:
        context = FakeLambdaContext()
        upload = {"displayName": "Bench", "contentType": "video/mp4", "sizeBytes": 1000}
        uploaders = ({**CLAIMS, "sub": f"bench-uploader-{i}"} for i in itertools.count())
        cases: dict[str, tuple[Callable[[], dict[str, Any]], int]] = {
            "GET /videos": (lambda: api_event("GET", "/videos"), 200),
            "GET /videos/{id}": (lambda: api_event("GET", f"/videos/{ready[7]}"), 200),
            # Each upload by a user of its own: one user would reach the videos-in-flight quota (429) after
            # ten, and the quota's checks still run on every request.
            "POST /videos/upload": (
                lambda: api_event("POST", "/videos/upload", body=upload, claims=next(uploaders)),
                201,
            ),
        }
        rows: list[Row] = []
        for name, (make_event, expected) in cases.items():
            samples = []
            # Metrics flush an EMF line per call and the logger an info line per upload, both to stdout:
            # still written (their cost counts), but not onto the bench's table.
            with (
                contextlib.redirect_stdout(io.StringIO()),
                _logs_to(io.StringIO()),
                warnings.catch_warnings(),
            ):
                warnings.filterwarnings("ignore", "No application metrics", UserWarning)
                for i in range(ITERATIONS + 20):
                    event = make_event()
                    started = time.perf_counter()
                    response = lambda_handler(event, context)
                    elapsed = time.perf_counter() - started
                    if response["statusCode"] != expected:
                        status, body = response["statusCode"], response.get("body")
                        raise RuntimeError(f"{name} answered {status}: {body}")
                    if i >= 20:  # the first calls open the connection and warm the caches
                        samples.append(elapsed * 1000)
            metrics.clear_metrics()
            samples.sort()
            p50 = statistics.median(samples)
            p99 = samples[min(len(samples) - 1, round(0.99 * len(samples)) - 1)]
            note = f"{ITERATIONS} calls, real MariaDB"
            rows += [
                Row(BENCH, name, "p50 latency", p50, "ms", note),
                Row(BENCH, name, "p99 latency", p99, "ms", f"target < {P99_TARGET_MS:.0f} ms"),
            ]
        return rows
    finally:
        set_services(None)
        provider.close()
