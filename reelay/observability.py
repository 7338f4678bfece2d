"""Powertools logger, tracer and metrics, created once and shared by every handler and the worker.

The service name comes from POWERTOOLS_SERVICE_NAME (set per function by the stacks); the metrics
namespace is fixed so every part of Reelay lands on one CloudWatch dashboard.
"""

from __future__ import annotations

import numbers
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

METRICS_NAMESPACE = "Reelay"


def tracing_on() -> bool:
    """Powertools' own rule: traces are sent only from Lambda, unless POWERTOOLS_TRACE_DISABLED says no.

    SAM CLI and Chalice's local modes set LAMBDA_TASK_ROOT too, but no X-Ray daemon listens there.
    """
    if resolve_truthy_env_var_choice(env=os.getenv(constants.TRACER_DISABLED_ENV, "false")):
        return False
    in_lambda = bool(os.getenv(constants.LAMBDA_TASK_ROOT_ENV))
    emulated = bool(os.getenv(constants.SAM_LOCAL_ENV) or os.getenv(constants.CHALICE_LOCAL_ENV))
    return in_lambda and not emulated


class _Unrecorded(BaseSegment):
    """A subsegment nobody sends: what the Tracer's decorators annotate where tracing is off."""

    def close(self, end_time: int | None = None) -> None:
        pass

    def add_subsegment(self, subsegment: Any) -> None:
        pass

    def remove_subsegment(self, subsegment: Any) -> None:
        pass

    def put_annotation(self, key: str, value: str | numbers.Number | bool) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        pass


class NoTracing(BaseProvider):
    """The Tracer's provider where tracing is off: records nothing and imports nothing.

    Powertools' Tracer, even disabled, imports the X-Ray SDK (aws_xray_sdk.core and botocore with it,
    about 0.4 s) as its default provider: the cold start of every Lambda run locally and in tests.
    """

    @contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Iterator[BaseSegment]:
        yield _Unrecorded()

    @asynccontextmanager
    async def in_subsegment_async(self, name: str | None = None, **kwargs: Any) -> AsyncIterator[BaseSegment]:
        yield _Unrecorded()

    def put_annotation(self, key: str, value: str | numbers.Number | bool) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def patch(self, modules: Sequence[str]) -> None:
        pass

    def patch_all(self) -> None:
        pass


# What Reelay calls out through, so X-Ray traces each call: every AWS API (botocore), the catalogue
# (pymysql) and plain HTTP (http.client). Not Powertools' default of patching every library the X-Ray
# SDK knows: that imports each one installed (requests, sqlite3, ...) at every cold start, ~60 ms.
TRACED_LIBRARIES = ("botocore", "pymysql", "httplib")


def _tracer() -> Tracer:
    if tracing_on():
        return Tracer(patch_modules=TRACED_LIBRARIES)  # X-Ray, as Powertools sets it up in Lambda
    # Not Tracer(disabled=True): that switches the X-Ray SDK off, importing it; this one records nothing.
    return Tracer(provider=NoTracing(), auto_patch=False, disabled=False)


class CurrentStdout:
    """Writes to whatever ``sys.stdout`` is at the time of writing, not at the logger's creation.

    Powertools' handler keeps the stream it was given when ``logger`` is built, at the first import of
    this module. The local platform copies stdout to ``.state/reelay.log`` by replacing ``sys.stdout``;
    without this, whether the API's logs reached that file depended on which module imported this one
    first (a start-up import in ``local/media.py`` once lost them).
    """

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


class ThreadLogger(Logger):
    """Powertools' Logger whose appended keys (the Lambda context, the correlation id) belong to the
    thread that appended them.

    Lambda runs one invocation at a time per process, so this changes nothing there. The local
    platform runs the same handlers on many threads at once (the gateway serves requests
    concurrently, sweeps and workers have their own threads): with Powertools' process-wide keys, one
    request's log lines carried another's request and correlation ids.
    """

    def append_keys(self, **additional_keys: object) -> None:
        self.thread_safe_append_keys(**additional_keys)

    def get_correlation_id(self) -> str | None:
        value = self.thread_safe_get_current_keys().get("correlation_id")
        return None if value is None else str(value)


logger = ThreadLogger(stream=CurrentStdout())  # type: ignore[arg-type]  # a text stream in all but name
tracer = _tracer()
metrics = Metrics(namespace=METRICS_NAMESPACE)


def _one_at_a_time(method: Callable[..., Any], lock: threading.RLock) -> Callable[..., Any]:
    def locked(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return method(*args, **kwargs)

    return locked


# Lambda runs one event per instance, but the local platform runs the handlers and the worker on
# threads of one process: a flush iterating the (class-wide) metric set while another thread adds
# to it would raise "dictionary changed size during iteration".
_metrics_lock = threading.RLock()
for _name in ("add_metric", "add_dimension", "add_metadata", "flush_metrics", "clear_metrics"):
    setattr(metrics.provider, _name, _one_at_a_time(getattr(metrics.provider, _name), _metrics_lock))

__all__ = [
    "METRICS_NAMESPACE",
    "TRACED_LIBRARIES",
    "MetricUnit",
    "NoTracing",
    "logger",
    "metrics",
    "tracer",
    "tracing_on",
]
