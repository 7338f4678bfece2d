"""The one boto3 client factory. Everything that talks to AWS (or moto) gets its clients here."""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from reelay.settings import Settings, get_settings

# Standard retry mode backs off on throttling; the read timeout stays above SQS's 20 s long poll.
_RETRIES = {"max_attempts": 5, "mode": "standard"}
_CONNECT_TIMEOUT = 5
_READ_TIMEOUT = 60
# An SNS publish answers in milliseconds: a short read timeout keeps the worst case (6 attempts with
# back-off, about 2 minutes) at half the event outbox's lease, so a slow publish is not claimed twice.
_READ_TIMEOUTS = {"sns": 10}

# boto3 sessions are not thread-safe to create clients from; clients themselves are.
_lock = threading.Lock()


def client(
    service: str,
    settings: Settings | None = None,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
) -> Any:
    """A boto3 client for ``service``, cached per (service, endpoint, region, credentials).

    ``endpoint_url``/``region`` override the settings (``aws_endpoint_url`` points at moto locally).
    Without ``access_key``/``secret_key`` the ambient credential chain is used.
    """
    s = settings or get_settings()
    return _cached_client(
        service,
        endpoint_url or s.aws_endpoint_url,
        region or s.aws_region,
        access_key,
        secret_key,
    )


def error_code(err: BaseException) -> str:
    """An AWS error's code (``ThrottlingException``); for connection and credential problems the
    class name, as botocore's messages may echo URLs."""
    if isinstance(err, ClientError):
        return str(err.response.get("Error", {}).get("Code", ""))
    return type(err).__name__


def clear_cache() -> None:
    """Forget cached clients (tests that start and stop moto between cases need this)."""
    _cached_client.cache_clear()


@lru_cache(maxsize=64)
def _cached_client(
    service: str,
    endpoint_url: str | None,
    region: str,
    access_key: str | None,
    secret_key: str | None,
) -> Any:
    extra: dict[str, Any] = {}
    if service == "s3":
        # Path-style works with every S3-compatible store and moto; SigV4 is required for presigning.
        extra["signature_version"] = "s3v4"
        if endpoint_url:
            extra["s3"] = {"addressing_style": "path"}
    config = Config(
        region_name=region,
        retries=_RETRIES,  # type: ignore[arg-type]
        connect_timeout=_CONNECT_TIMEOUT,
        read_timeout=_READ_TIMEOUTS.get(service, _READ_TIMEOUT),
        **extra,
    )
    with _lock:
        session = boto3.session.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
        )
        return session.client(service, endpoint_url=endpoint_url, config=config)


__all__ = ["clear_cache", "client", "error_code"]
