"""The relay task's entry point: ``python -m transcoder.relay --stream-id ID``.

ECS runs it from the media image (one task per stream, started by the API and the reconciler); the
local platform runs it as a child process. SIGTERM (ECS stop, scale-in, ``make up`` stopping) drains
the pipeline with EOS, so kvssink sends its last fragment, releases the lease and exits 0.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import secrets
import signal
import socket
import sys
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reelay.errors import InvalidInput
from reelay.media.ladder import RenditionSpec, rungs
from reelay.models import Rendition, Stream, utcnow
from reelay.observability import logger
from reelay.recording.recorder import SOURCE_RENDITION, Recorder, planned_renditions
from reelay.recording.stores import resolve_store
from reelay.recording.writer import PickedStore, SessionWriter
from reelay.relay.credentials import CredentialFile, botocore_provider
from reelay.relay.slate import SlateSpec
from reelay.relay.sources import check_resolved_host
from reelay.relay.supervisor import RelayPolicy
from reelay.relay.task import RelayTask, RelayTaskConfig, kvssink_factory
from reelay.settings import Settings, get_settings


def task_identity() -> str:
    """The ECS task ARN when running on ECS (task metadata endpoint v4), else host and pid."""
    uri = os.environ.get("ECS_CONTAINER_METADATA_URI_V4")
    if uri:
        try:
            with urllib.request.urlopen(f"{uri}/task", timeout=2) as response:
                arn = json.load(response).get("TaskARN")
                if isinstance(arn, str) and arn:
                    return arn
        except (OSError, ValueError):
            logger.warning("could not read the ECS task metadata; using the host name as task id")
    return f"{socket.gethostname()}-{os.getpid()}"


def check_source_host(url: str, *, allow_loopback: bool) -> None:
    """Every address the source's host resolves to must be allowed (never link-local, where ECS
    serves the task's credentials; loopback only where the platform allows it)."""
    host = urlsplit(url).hostname
    if not host:
        raise ValueError("the source URL has no host")
    check_resolved_host(host, allow_loopback=allow_loopback)


def config_from(settings: Settings) -> RelayTaskConfig:
    return RelayTaskConfig(
        lease_seconds=settings.relay_lease_seconds,
        metrics_seconds=settings.relay_metrics_seconds,
        recycle_after_rebuilds=settings.relay_recycle_after_rebuilds,
        slate=SlateSpec(settings.relay_slate_text, settings.relay_slate_after_seconds)
        if settings.relay_slate
        else None,
        policy=RelayPolicy(
            stall_seconds=settings.relay_stall_seconds,
            start_seconds=settings.relay_start_seconds,
            ack_timeout=settings.relay_ack_timeout_seconds,
            stop_seconds=settings.relay_stop_seconds,
        ),
    )


def store_ref(stream: Stream, source: str) -> str:
    """How the recording workflow finds the session's store again, with no secret in the catalogue:
    the platform default, or the stream's own store / webhook answer, looked up by stream."""
    return "default" if source == "default" else f"{source}:{stream.stream_id}"


def recorder_factory(
    catalogue: object, settings: Settings, task_id: str, work: Path, streams: Any = None
) -> Any:
    """Recorders for one relay task, the writer id being the task id. The store: the stream's own
    (``streams`` opens its sealed URL) or the default, chosen now; a stream with a store webhook has
    it asked when each session starts, with that session's id (``SessionWriter.pick_store``). A
    fallback is logged and kept on the session."""
    from reelay.storage import open_store

    def picked(stream: Stream, session_id: str, started_at: Any, *, ask_webhook: bool) -> PickedStore:
        own = streams.record_store_url(stream) if streams is not None else stream.record_object_store_url
        view = stream.model_copy(
            update={
                "record_object_store_url": own,
                "webhook_url": stream.webhook_url if ask_webhook else None,
            }
        )
        key = streams.webhook_secret(stream) if streams is not None and ask_webhook else None
        choice = resolve_store(view, settings, session_id=session_id, started_at=started_at, signing_key=key)
        if choice.fallback_reason:
            logger.warning(
                "recording to a fallback store",
                extra={
                    "streamId": stream.stream_id,
                    "store": choice.redacted,
                    "reason": choice.fallback_reason,
                },
            )
        sealed = (
            streams.secrets.seal({"url": choice.url})
            if streams is not None and choice.redacted != choice.url
            else None
        )
        return PickedStore(
            open_store(choice.url, settings=settings),
            choice.redacted,
            store_ref(stream, choice.source),
            sealed,
            choice.source,
            choice.fallback_reason,
        )

    def make(stream: Stream) -> Recorder:
        encoded = recording_rungs(stream, settings)
        first = picked(stream, f"task-{task_id}"[-64:], utcnow(), ask_webhook=False)
        window = stream.reconnect_window_seconds
        if window is None:
            window = settings.recording_reconnect_window_seconds
        writer = SessionWriter(
            first.store,
            catalogue,
            stream.stream_id,
            writer_id(task_id, secrets.token_hex(3)),
            [
                Rendition(
                    name=SOURCE_RENDITION, bandwidth=0, codecs="avc1.640028", playlist="source/index.m3u8"
                ),
                *planned_renditions(encoded),
            ],
            segment_ms=int(settings.recording_segment_seconds * 1000),
            chunk_size=settings.recording_chunk_size,
            reconnect_window_seconds=settings.recording_reconnect_window_seconds
            if window is None
            else window,
            pick_store=(
                (lambda session_id, at: picked(stream, session_id, at, ask_webhook=True))
                if stream.webhook_url
                else None
            ),
            reopen_store=_reopen(catalogue, streams, settings) if streams is not None else None,
        )
        writer._use(first)
        return Recorder(
            writer,
            work / "spool",
            max_spool_bytes=settings.recording_spool_max_bytes,
            store=first.url,
            store_fallback=first.fallback,
            renditions=encoded,
            x264_preset=settings.x264_preset,
        )

    return make


def recording_rungs(stream: Stream, settings: Settings) -> list[RenditionSpec]:
    """The encoded renditions a stream records beside its source: ladder rung names (the stream's
    ``record_renditions``; a catalogue without that field records the source alone). Names the ladder
    does not know are logged and the source is recorded alone: a bad list never stops the relay."""
    names = [n for n in (getattr(stream, "record_renditions", None) or []) if n != SOURCE_RENDITION]
    if not names:
        return []
    try:
        return rungs(names, settings.ladder_overrides)
    except InvalidInput as exc:
        logger.error(
            "recording the source alone: the stream's renditions are not valid",
            extra={"streamId": stream.stream_id, "reason": exc.message},
        )
        return []


def _reopen(catalogue: object, streams: Any, settings: Settings) -> Any:
    """A continued session's store, from its row (the workflow's resolver, with the task's keys)."""
    from reelay.recording.resolver import SessionStoreResolver
    from reelay.storage import open_store

    def reopen(session: Any) -> Any:
        resolver = SessionStoreResolver(
            catalogue,
            streams.secrets,
            open_store(settings.media_store_url, settings=settings),
            lambda url: open_store(url, settings=settings),
        )
        return resolver(session.store_ref, session.session_id)

    return reopen


def writer_id(task_id: str, instance: str | None = None) -> str:
    """The task id as a key component (an ECS task ARN has ':' and '/'): its last part, cleaned, and
    this process's ``instance`` tag. The tag matters where task ids repeat (the local launcher names a
    stream's tasks alike): a restarted writer reusing its predecessor's id would rewrite that one's
    chunk manifests and could reuse its sequence numbers."""
    tail = task_id.rsplit("/", 1)[-1]
    cleaned = "".join(c if c.isalnum() or c in ".-_" else "-" for c in tail).strip("-._") or "writer"
    if instance is None:
        return cleaned[:64]
    return f"{cleaned[: 63 - len(instance)]}-{instance}"


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (as MALLOC_ARENA_MAX would), before any thread starts.

    Every pipeline rebuild starts new threads (kvssink's SDK client, curl, GStreamer's streaming
    threads), and glibc gives threads arenas of their own, up to 8 per core; what they leave behind
    fragments. Measured with the relay bench's memory part: about 20-45 kB of RSS per rebuild with the
    default arenas, about 4 kB with two. The relay allocates little, so contention does not matter.
    False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False


_M_ARENA_MAX = -8  # glibc's malloc.h


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                     "fordblks", "keepcost")
    ]  # fmt: skip


def malloc_in_use() -> int | None:
    """Bytes of C heap the process holds (glibc's mallinfo2: allocated blocks plus mmapped ones). A leak
    grows it one for one, where RSS also counts what the allocator keeps free for reuse. None where the
    C library is not glibc 2.33 or later."""
    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return int(info.uordblks + info.hblkhd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m transcoder.relay", description=__doc__.splitlines()[0])
    parser.add_argument("--stream-id", default=os.environ.get("REELAY_STREAM_ID"), help="the stream to relay")
    parser.add_argument("--task-id", default=None, help="this task's identity (default: the ECS task ARN)")
    args = parser.parse_args(argv)
    if not args.stream_id:
        parser.error("--stream-id (or REELAY_STREAM_ID) is required")

    limit_malloc_arenas()
    from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

    from reelay.wiring import Services

    # The relay's module loggers log as the service logger does: JSON lines, to CloudWatch Logs.
    copy_config_to_registered_loggers(source_logger=logger, include={"reelay"})
    settings = get_settings()
    services = Services(settings)
    task_id = args.task_id or task_identity()
    work = Path(settings.relay_work_dir) / args.stream_id
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    credential_path = work / "credentials"
    region = settings.aws_region

    task = RelayTask(
        services.catalogue,  # type: ignore[arg-type]
        args.stream_id,
        task_id,
        reveal_source=services.streams.source_url_for_relay,
        make_sink=lambda stream: (
            kvssink_factory(
                stream_name=stream.kvs_stream_name, region=region, credential_path=credential_path
            )
            if stream.kvs_stream_name
            else None
        ),  # a stream that only records
        credentials=CredentialFile(credential_path, botocore_provider()),
        check_source=lambda url: check_source_host(url, allow_loopback=settings.allow_loopback_sources),
        config=config_from(settings),
        make_recorder=recorder_factory(services.catalogue, settings, task_id, work, services.streams),
    )

    def on_signal(signum: int, _frame: Any) -> None:
        logger.info("signal received: draining", extra={"signal": signal.Signals(signum).name})
        task.stop(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code = task.run()
    if task.recycle:
        # Start afresh in the same process (same pid, same ECS task), pinned to the same task id so the
        # lease it kept is re-claimed at once.
        logger.info("relay task recycling: exec", extra={"streamId": args.stream_id, "taskId": task_id})
        sys.stdout.flush()
        argv_again = [
            sys.executable,
            "-m",
            "transcoder.relay",
            "--stream-id",
            args.stream_id,
            "--task-id",
            task_id,
        ]
        os.execv(sys.executable, argv_again)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
