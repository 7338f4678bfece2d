"""The streams domain behind the /streams routes: register a camera feed, start, stop, delete.

Only operators reach this service (the API checks the group); each operator sees and manages their
own streams. A stream of another operator is answered as unknown (404): stream ids are not shared,
and a 404 tells nothing about someone else's feeds.

Start and stop set the desired state (recording ``stream.started`` / ``stream.stopped`` in the outbox
with the change) and then ask the ``RelayLauncher`` to start or stop a task. Both are idempotent. The
desired state is what counts: if the launcher fails, the reconciler (``streams_to_reconcile``) starts
or stops the task on its next pass, so the call still succeeds (202) and the failure is logged.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from reelay.errors import Conflict, InvalidInput, NotFound
from reelay.events import OutboxSweep
from reelay.models import DesiredState, OutboxEvent, Stream, VideoMode, stream_subject, utcnow
from reelay.observability import logger
from reelay.ports import EventOutbox, EventPublisher, RelayLauncher, StreamCatalogue, StreamPage
from reelay.relay.secrets import SourceSecrets
from reelay.relay.sources import Source, compose_source, parse_source
from reelay.settings import Settings

# The recording settings an API call may give (``recording`` of create and update), by name.
RECORDING_SETTINGS = (
    "record_object_store",
    "record_webhook_url",
    "retention_days",
    "reconnect_window_seconds",
    "record_renditions",
)
WEBHOOK_SECRET_PREFIX = "whsec_"


class StreamService:
    def __init__(
        self,
        catalogue: StreamCatalogue,
        launcher: RelayLauncher,
        secrets: SourceSecrets,
        settings: Settings,
        *,
        outbox: EventOutbox | None = None,
        events: EventPublisher | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.launcher = launcher
        self.secrets = secrets
        self.settings = settings
        # Both or neither: whoever changes a stream publishes its events right away; the sweep
        # publishes what this leaves behind.
        self._sweep = OutboxSweep(outbox, events) if outbox is not None and events is not None else None

    # --- reading -----------------------------------------------------------------------------
    def get(self, owner_id: str, stream_id: str) -> Stream:
        stream = self.catalogue.get_stream(stream_id)
        if stream.owner_id != owner_id:
            raise NotFound(f"stream {stream_id} not found")
        return stream

    def list_mine(self, owner_id: str, limit: int, cursor: str | None = None) -> StreamPage:
        return self.catalogue.list_streams_by_owner(owner_id, limit=limit, cursor=cursor)

    def secret_names(self, stream: Stream) -> list[str]:
        """Which secrets the source has (``password``, ``query:passphrase``...), never their values."""
        return sorted(self.secrets.open(stream.source_secret))

    def source_url_for_relay(self, stream: Stream) -> str:
        """The full source URL, secrets included, for the relay pipeline only. Never log it."""
        return compose_source(stream.source_url, self.secrets.open(stream.source_secret))

    # --- changing ----------------------------------------------------------------------------
    def create(
        self,
        owner_id: str,
        name: str,
        source_url: str,
        kvs_stream_name: str | None = None,
        video: VideoMode = VideoMode.AUTO,
        record: bool = False,
        relay: bool = True,
        recording: Mapping[str, object] | None = None,
    ) -> Stream:
        """``relay``: to KVS (under ``kvs_stream_name`` or a name of its own); ``record``: to the
        stream's store. One of them at least."""
        if not relay and not record:
            raise InvalidInput("a stream relays to KVS, records, or both: set relay or record")
        if not relay and kvs_stream_name is not None:
            raise InvalidInput("kvsStreamName is for a stream that relays to KVS")
        source = self._source(source_url)
        settings = self._recording(recording or {})
        stream_id = uuid.uuid4().hex
        stream = Stream(
            stream_id=stream_id,
            owner_id=owner_id,
            name=_name(name),
            source_url=source.url,
            source_protocol=source.protocol,
            source_secret=self.secrets.seal(source.secrets),
            kvs_stream_name=(
                self._kvs_name(kvs_stream_name) or f"{self.settings.kvs_stream_prefix}{stream_id}"
            )
            if relay
            else None,
            video_mode=VideoMode(video),
            record_enabled=bool(record),
            **settings,
        )
        created = self.catalogue.create_stream(stream)
        logger.info(
            "stream created",
            extra={"streamId": stream_id, "sourceUrl": source.url, "secrets": source.secret_names},
        )
        return created

    def update(
        self,
        owner_id: str,
        stream_id: str,
        *,
        name: str | None = None,
        source_url: str | None = None,
        kvs_stream_name: str | None = None,
        video: VideoMode | None = None,
        record: bool | None = None,
        recording: Mapping[str, object] | None = None,
    ) -> Stream:
        recording = dict(recording or {})
        if all(v is None for v in (name, source_url, kvs_stream_name, video, record)) and not recording:
            raise InvalidInput(
                "give name, sourceUrl, kvsStreamName, video, record or a recording setting "
                "(recordObjectStore, recordWebhookUrl, retentionDays, reconnectWindowSeconds, "
                "recordRenditions)"
            )
        stream = self.get(owner_id, stream_id)
        if record is False and stream.kvs_stream_name is None:
            raise InvalidInput("this stream only records: it cannot stop recording")
        relaying = any(v is not None for v in (source_url, kvs_stream_name, video, record)) or any(
            k != "retention_days" for k in recording
        )
        if relaying and (stream.desired_state == DesiredState.RUNNING or stream.lease_live(utcnow())):
            # A running task keeps what it started with; changing it under the task would only mislead.
            raise Conflict(
                f"stream {stream_id} is running: stop it before changing its source, KVS stream, video "
                "or recording (retentionDays may change at any time)"
            )
        source = self._source(source_url) if source_url is not None else None
        changes = self._recording(recording)
        if changes:
            self.catalogue.update_stream_recording(stream_id, changes)
            if all(v is None for v in (name, source_url, kvs_stream_name, video, record)):
                return self.catalogue.get_stream(stream_id)
        return self.catalogue.update_stream(
            stream_id,
            name=_name(name) if name is not None else None,
            source_url=source.url if source else None,
            source_protocol=source.protocol if source else None,
            source_secret=self.secrets.seal(source.secrets) if source else None,
            kvs_stream_name=self._kvs_name(kvs_stream_name),
            video_mode=VideoMode(video) if video is not None else None,
            record_enabled=record,
        )

    def start(self, owner_id: str, stream_id: str) -> Stream:
        """Desired running, then a task. Idempotent; a stream whose task died gets a new one."""
        stream = self.get(owner_id, stream_id)
        changed = self.catalogue.set_desired_state(
            stream_id, DesiredState.RUNNING, event=self._event("stream.started", stream)
        )
        self._flush(stream_id)
        stream = self.catalogue.get_stream(stream_id)
        if changed or not stream.lease_live(utcnow()):
            self._launch(stream_id)
        return stream

    def stop(self, owner_id: str, stream_id: str) -> Stream:
        """Desired stopped, then the task is asked to stop (it flushes kvssink and releases). Idempotent."""
        self.get(owner_id, stream_id)
        return self._stop(stream_id)

    def delete(self, owner_id: str, stream_id: str) -> None:
        """Stop first, then forget the stream (the catalogue keeps it until its task lets go)."""
        self.get(owner_id, stream_id)
        self._stop(stream_id)
        self.catalogue.delete_stream(stream_id)
        logger.info("stream deleted", extra={"streamId": stream_id})

    def webhook_secret(self, stream: Stream) -> str | None:
        """The stream's webhook signing secret (``whsec_…``), derived from the first stream secret key:
        None when the stream has no webhook. See docs/recordings-api.md for how a receiver verifies."""
        if not stream.webhook_url:
            return None
        return WEBHOOK_SECRET_PREFIX + self.secrets.derive(f"webhook:{stream.stream_id}")

    def record_store_url(self, stream: Stream) -> str | None:
        """The stream's own recording store, secret included, for the recorder and the workflow only."""
        if stream.record_store_secret:
            return self.secrets.open(stream.record_store_secret).get("url")
        return stream.record_object_store_url

    # --- helpers -----------------------------------------------------------------------------
    def _recording(self, given: Mapping[str, object]) -> dict[str, Any]:
        """API recording settings -> the stream's fields: the store sealed (only its redacted URL kept
        in the clear), hosts checked like sources'. Ranges are the catalogue's checks."""
        from reelay.recording.stores import check_store_url, check_webhook_url

        unknown = set(given) - set(RECORDING_SETTINGS)
        if unknown:
            raise InvalidInput(f"not recording settings: {', '.join(sorted(unknown))}")
        loopback = self.settings.allow_loopback_sources
        out: dict[str, object] = {}
        if "record_object_store" in given:
            url = given["record_object_store"]
            if url is None or (isinstance(url, str) and not url.strip()):
                out["record_object_store_url"] = out["record_store_secret"] = None
            elif isinstance(url, str):
                location = check_store_url(url.strip(), allow_loopback=loopback)
                redacted = location.redacted()
                out["record_object_store_url"] = redacted
                out["record_store_secret"] = (
                    self.secrets.seal({"url": url.strip()}) if location.secret_key else None
                )
            else:
                raise InvalidInput("recordObjectStore must be a store URL or null")
        if "record_webhook_url" in given:
            url = given["record_webhook_url"]
            if url is None or (isinstance(url, str) and not url.strip()):
                out["webhook_url"] = None
            elif isinstance(url, str):
                check_webhook_url(url.strip(), allow_loopback=loopback)
                if urlsplit(url.strip()).username is not None:
                    raise InvalidInput(
                        "recordWebhookUrl must not carry credentials: verify the X-Reelay-Signature instead"
                    )
                out["webhook_url"] = url.strip()
            else:
                raise InvalidInput("recordWebhookUrl must be an http(s) URL or null")
        for name in ("retention_days", "reconnect_window_seconds", "record_renditions"):
            if name in given:
                out[name] = given[name] if name != "record_renditions" else list(given[name] or [])  # type: ignore[call-overload]
        from reelay.catalogue._stream_recording import recording_changes

        return recording_changes(out)

    def _stop(self, stream_id: str) -> Stream:
        stream = self.catalogue.get_stream(stream_id)
        self.catalogue.set_desired_state(
            stream_id, DesiredState.STOPPED, event=self._event("stream.stopped", stream)
        )
        self._flush(stream_id)
        stream = self.catalogue.get_stream(stream_id)
        if stream.lease_owner is not None:
            try:
                self.launcher.stop(stream_id, stream.lease_owner)
            except Exception as exc:  # the reconciler stops it on its next pass
                logger.error(
                    "relay task not stopped: the reconciler will",
                    extra={"streamId": stream_id, "taskId": stream.lease_owner, "error": str(exc)},
                )
        return stream

    def _launch(self, stream_id: str) -> None:
        try:
            self.launcher.launch(stream_id)
        except Exception as exc:  # the desired state is recorded: the reconciler launches it
            logger.error(
                "relay task not launched: the reconciler will",
                extra={"streamId": stream_id, "error": str(exc)},
            )

    def _event(self, kind: str, stream: Stream) -> OutboxEvent:
        return OutboxEvent(
            event_type=kind,
            subject=stream_subject(stream.stream_id),
            detail={
                "streamId": stream.stream_id,
                "ownerId": stream.owner_id,
                "kvsStreamName": stream.kvs_stream_name,
            },
        )

    def _flush(self, stream_id: str) -> None:
        if self._sweep is not None:
            self._sweep.flush_quietly(subject=stream_subject(stream_id))

    def _source(self, url: str) -> Source:
        return parse_source(url, allow_loopback=self.settings.allow_loopback_sources)

    def _kvs_name(self, name: str | None) -> str | None:
        prefix = self.settings.kvs_stream_prefix
        if name is not None and not name.startswith(prefix):
            raise InvalidInput(
                f"kvsStreamName must start with {prefix!r}: the relay may only write KVS streams named so"
            )
        return name


class LeaveToReconciler:
    """A RelayLauncher for a process that may not start tasks itself: it does nothing now, and the
    reconciler's next pass (``streams_to_reconcile``) starts or stops the task from the desired state."""

    def launch(self, stream_id: str) -> None:
        logger.info("relay task left to the reconciler", extra={"streamId": stream_id, "action": "launch"})

    def stop(self, stream_id: str, task_id: str) -> None:
        logger.info(
            "relay task left to the reconciler",
            extra={"streamId": stream_id, "taskId": task_id, "action": "stop"},
        )


def _name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("name must not be empty")
    return name
