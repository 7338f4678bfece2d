"""The API Lambda's import graph: what its cold start loads, checked in a fresh interpreter.

A fact about the imports, not a timing: the handler must not pull in GStreamer, the media and
transcode code, the relay's pipelines, boto3's clients, or (where tracing is off) the X-Ray SDK.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Whole packages (the name and everything under it) the API never needs.
MEDIA = (
    "gi",  # PyGObject / GStreamer
    "reelay.media",
    "reelay.transcode",
    "transcoder",
    "reelay.relay.pipelines",
    "reelay.relay.supervisor",
    "reelay.relay.kvssink",
)
# What the first request that needs it loads (X-Ray's patching imports them at once where it traces).
AT_FIRST_USE = (
    "boto3",  # a client built at import would need it; the adapters import it when first used
    "botocore.session",
    "pymysql",  # the catalogue connects on the first request that needs it
)
TRACING_OFF_ONLY = ("aws_xray_sdk",)
# The OpenAPI document's models: only GET /openapi.json needs them.
OPENAPI_MODELS = ("aws_lambda_powertools.event_handler.openapi.models",)

PROBE = """\
import json, sys
import lambdas.api.handler
print(json.dumps(sorted(sys.modules)))
"""


def modules_after_import(**env: str) -> set[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "LAMBDA_", "_X_AMZN"))}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**clean, "PYTHONPATH": str(ROOT), "POWERTOOLS_SERVICE_NAME": "api", **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in packages))


def test_the_api_handler_imports_no_media_relay_pipeline_aws_client_or_xray_when_tracing_is_off() -> None:
    # Given tracing is off (tests, the local platform) When the handler is imported in a fresh process
    modules = modules_after_import(POWERTOOLS_TRACE_DISABLED="true")
    # Then it is loaded, and none of the heavy packages the request path does not use came with it
    assert "lambdas.api.handler" in modules and "reelay.api.app" in modules
    assert loaded(modules, MEDIA + AT_FIRST_USE + TRACING_OFF_ONLY + OPENAPI_MODELS) == []


VIDEOS_PROBE = """\
import json, sys
import lambdas.api.handler
from reelay.catalogue.memory import MemoryCatalogue
from reelay.settings import Settings
from reelay.wiring import Services
settings = Settings(
    cdn_distribution_id="E2QWRUHAPOMQZL",
    playback_key_pair_id="K2JCJMDEHXQW5F",
    playback_signing_secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:key-AbCdEf",
)
services = Services(settings, catalogue=MemoryCatalogue())
assert type(services.cdn).__name__ == "CloudFrontInvalidator"
assert type(services.playback_signer).__name__ == "CloudFrontPlaybackSigner"
services.videos.list_ready(20)
print(json.dumps(sorted(sys.modules)))
"""


def test_the_first_get_videos_builds_the_cdn_invalidator_and_signer_without_boto3() -> None:
    # Given the AWS wiring (a CloudFront distribution and the playback signing key)
    out = subprocess.run(
        [sys.executable, "-c", VIDEOS_PROBE],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "POWERTOOLS_TRACE_DISABLED": "true"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    modules = set(json.loads(out.stdout.strip().splitlines()[-1]))
    # When the VideoService a GET /videos needs is built and used, Then boto3 has not been imported:
    # the invalidator makes its client on its first invalidation, the signer reads its key on first use
    assert "reelay.adapters.cloudfront" in modules and "reelay.adapters.cloudfront_signing" in modules
    assert loaded(modules, AT_FIRST_USE[:2]) == []


def test_outside_lambda_tracing_is_off_even_without_the_switch() -> None:
    # Given no POWERTOOLS_TRACE_DISABLED and no LAMBDA_TASK_ROOT (a developer's shell, the worker)
    modules = modules_after_import()
    # Then Powertools would not trace, so the X-Ray SDK is not imported either
    assert loaded(modules, MEDIA + AT_FIRST_USE + TRACING_OFF_ONLY) == []


def test_in_lambda_with_tracing_on_the_xray_sdk_is_there_and_the_media_code_still_is_not() -> None:
    # Given the environment of the Lambda runtime, where the stacks turn X-Ray tracing on
    modules = modules_after_import(LAMBDA_TASK_ROOT=str(ROOT), AWS_LAMBDA_FUNCTION_NAME="reelay-api")
    # Then the tracer is X-Ray's, with AWS calls and catalogue queries traced (as before, in AWS)
    assert {
        "aws_xray_sdk.core",
        "aws_xray_sdk.ext.botocore.patch",
        "aws_xray_sdk.ext.pymysql.patch",
    } <= modules
    # And GStreamer, media, transcode and the relay's pipelines stay out all the same
    assert loaded(modules, MEDIA) == []


def test_the_tracer_records_nothing_and_still_runs_the_handler_where_tracing_is_off() -> None:
    from reelay.observability import NoTracing, tracer, tracing_on

    # Given the test environment (POWERTOOLS_TRACE_DISABLED=true, as conftest sets)
    assert not tracing_on()
    assert isinstance(tracer.provider, NoTracing)

    # When a handler decorated like the Lambdas' runs, Then its answer and its errors come through
    @tracer.capture_lambda_handler(capture_response=False)
    def handler(event: dict[str, int], context: object) -> int:
        if event["n"] < 0:
            raise ValueError("negative")
        return event["n"] * 2

    assert handler({"n": 21}, None) == 42
    with pytest.raises(ValueError, match="negative"):
        handler({"n": -1}, None)


INVOKE = """\
import json, sys
import lambdas.api.handler as handler

class Context:
    function_name = "reelay-api"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:reelay-api"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    def get_remaining_time_in_millis(self):
        return 30000

event = {"resource": "/nope", "path": "/nope", "httpMethod": "GET", "headers": {}, "requestContext": {}}
print(json.dumps(handler.lambda_handler(event, Context())["statusCode"]))
"""


def test_in_lambda_with_tracing_on_the_handler_sends_its_subsegment_to_the_xray_daemon() -> None:
    # Given a stand-in X-Ray daemon (UDP) and the Lambda runtime's environment with a sampled trace
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(10)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "LAMBDA_", "_X_AMZN"))}
    env |= {
        "PYTHONPATH": str(ROOT), "POWERTOOLS_SERVICE_NAME": "api", "LAMBDA_TASK_ROOT": str(ROOT),
        "AWS_LAMBDA_FUNCTION_NAME": "reelay-api",
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
    }  # fmt: skip
    try:
        # When the handler answers a request
        out = subprocess.run(
            [sys.executable, "-c", INVOKE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().splitlines()[-1] == "404"
        # Then the daemon got the handler's subsegment, in the trace, annotated as Powertools does
        header, _, body = daemon.recv(65536).decode().partition("\n")
    finally:
        daemon.close()
    assert json.loads(header) == {"format": "json", "version": 1}
    segment = json.loads(body)
    assert segment["name"] == "## lambda_handler"
    assert segment["trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert segment["annotations"] == {"ColdStart": True, "Service": "api"}


# Lambdas have no PyGObject (the code asset is requirements.txt on the Lambda platform): whatever a
# handler or the catalogue it builds imports must not reach GStreamer, or the first request fails
# with ModuleNotFoundError: gi. It did: the catalogue's recording checks imported the ladder, which
# imported the prober (and GStreamer) at module level.
NO_GI_PROBE = """\
import importlib, sys
sys.modules["gi"] = None  # import gi now raises, as in Lambda
for name in sys.argv[1:]:
    importlib.import_module(name)
print("ok")
"""
LAMBDA_HANDLERS = sorted(f"lambdas.{p.parent.name}.handler" for p in (ROOT / "lambdas").glob("*/handler.py"))


def test_every_lambda_handler_and_both_catalogues_import_without_gstreamer() -> None:
    modules = [*LAMBDA_HANDLERS, "reelay.catalogue.mysql", "reelay.catalogue.memory", "reelay.api.models"]
    assert "lambdas.api.handler" in modules and len(LAMBDA_HANDLERS) >= 9
    out = subprocess.run(
        [sys.executable, "-c", NO_GI_PROBE, *modules],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "POWERTOOLS_TRACE_DISABLED": "true"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
