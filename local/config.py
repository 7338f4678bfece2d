"""Options of the local platform: flags, with defaults taken from the environment."""

from __future__ import annotations

import argparse
import ipaddress
import socket
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LocalSettings(BaseSettings):
    """Environment defaults for the flags (REELAY_LOCAL_*, plus DATABASE_URL)."""

    model_config = SettingsConfigDict(env_prefix="REELAY_LOCAL_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    moto_port: int = 5055
    db_port: int = 3307
    state_dir: Path = Path(".state")
    # An existing database to use instead of the private MariaDB.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "REELAY_LOCAL_DATABASE_URL")
    )
    db_name: str = "reelay"
    max_body_bytes: int = 1024 * 1024  # API requests; media uploads go to /media, not the API
    worker_id: str | None = None
    no_workers: bool = False
    kvs_port: int = 4567  # the local Kinesis Video Streams stand-in
    camera: str = "rtsp"  # the demo camera: rtsp, hls, srt or none
    camera_port: int = 8554
    # The gateway's test-only fault hook (local/gateway_faults.py); the browser tests turn it on.
    faults: bool = False
    # Serve on a non-loopback --host: off, since this is a development server (no TLS, test hooks).
    allow_remote: bool = False


REMOTE_WARNING = (
    "WARNING: Reelay's local platform is a development server: no TLS, a file store with "
    "local signing keys, and moto for AWS. It now listens on {host}, reachable from other machines."
)


def is_loopback(host: str) -> bool:
    """Whether every address the host name stands for is a loopback one (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos
    )


def remote_refusal(host: str) -> str:
    return (
        f"--host {host} is not a loopback address: the local platform is a development server and "
        "only listens on loopback unless you pass --allow-remote [REELAY_LOCAL_ALLOW_REMOTE=1]"
    )


def parse_args(argv: list[str] | None = None) -> LocalSettings:
    env = LocalSettings()
    p = argparse.ArgumentParser(
        prog="python -m local",
        description=(
            "Run all of Reelay on this machine in the foreground until Ctrl-C: moto for the AWS APIs, "
            "a private MariaDB (or DATABASE_URL), media in a file:// store, the API gateway, the "
            "player page and the background workers. Each flag defaults to the environment variable "
            "named in brackets."
        ),
    )
    p.add_argument("--host", default=env.host, help="interface for every server [REELAY_LOCAL_HOST]")
    p.add_argument(
        "--port", type=int, default=env.port, help="API gateway port, 0 = free [REELAY_LOCAL_PORT]"
    )
    p.add_argument(
        "--moto-port",
        type=int,
        default=env.moto_port,
        help="moto server port, 0 = free [REELAY_LOCAL_MOTO_PORT]",
    )
    p.add_argument(
        "--db-port",
        type=int,
        default=env.db_port,
        help="private MariaDB port, 0 = free; unused with DATABASE_URL [REELAY_LOCAL_DB_PORT]",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=env.state_dir,
        help="where the database, media, logs and endpoints.json live [REELAY_LOCAL_STATE_DIR]",
    )
    p.add_argument(
        "--database-url",
        default=env.database_url,
        help="use this database (mysql://user:pass@host:port/db) instead of a private MariaDB [DATABASE_URL]",
    )
    p.add_argument(
        "--db-name", default=env.db_name, help="database name in the private MariaDB [REELAY_LOCAL_DB_NAME]"
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=env.max_body_bytes,
        help="largest API request body accepted [REELAY_LOCAL_MAX_BODY_BYTES]",
    )
    p.add_argument(
        "--worker-id",
        default=env.worker_id,
        help="transcode worker id, stable across restarts; default local-<hostname> [REELAY_LOCAL_WORKER_ID]",
    )
    p.add_argument(
        "--no-workers",
        action="store_true",
        default=env.no_workers,
        help="do not start the background workers [REELAY_LOCAL_NO_WORKERS]",
    )
    p.add_argument(
        "--kvs-port",
        type=int,
        default=env.kvs_port,
        help="the Kinesis Video Streams stand-in's port, 0 = free [REELAY_LOCAL_KVS_PORT]",
    )
    p.add_argument(
        "--camera",
        choices=("rtsp", "hls", "srt", "none"),
        default=env.camera,
        help="a demo camera to relay without hardware [REELAY_LOCAL_CAMERA]",
    )
    p.add_argument(
        "--camera-port",
        type=int,
        default=env.camera_port,
        help="the demo camera's port, 0 = free [REELAY_LOCAL_CAMERA_PORT]",
    )
    p.add_argument(
        "--allow-remote",
        action="store_true",
        default=env.allow_remote,
        help="allow a non-loopback --host; this is a development server [REELAY_LOCAL_ALLOW_REMOTE]",
    )
    ns = p.parse_args(argv)
    if not ns.allow_remote and not is_loopback(ns.host):
        p.error(remote_refusal(ns.host))
    return env.model_copy(update=vars(ns))
