"""The recordings domain behind the /streams/{streamId}/sessions routes (docs/recordings-api.md).

Ownership is the stream's: the stream service answers another operator's stream as unknown (404),
and a session of another stream is unknown too, so session ids say nothing about other feeds.

- Listing and reading sessions; a session's duration while it records is its media so far.
- Finalize by hand: ``reelay.recording.sweep.trigger`` (idempotent) with the process's starter.
- The live EVENT playlist: built on request from the session's chunk manifests
  (``manifests.live_playlist``: bytes read per request grow with the session, bytes WRITTEN per
  segment do not). Players fetch it without an Authorization header, so its URL carries a token:
  ``<expires unix>.<hex>``, HMAC-SHA256 under a key derived from the stream secret keys, over
  ``live:<sessionId>:<expires>``. Segments are absolute URLs on the playback path.
- Exports: a time range of a ready recording as MP4. The export's state is a small JSON object in the
  media store (``recording-exports/{sessionId}/{exportId}.json``: no table, the lifecycle rule expires
  it with the MP4), written running here; an ``ExportLauncher`` starts the export workflow
  (``reelay.recording.workflow.RECORDING_EXPORT_WORKFLOW``: Step Functions in AWS, the local runner
  in a background thread under ``make up``), whose steps run ``transcoder.export`` and record the
  export ready or failed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from reelay.catalogue._recordings import last_media
from reelay.errors import Conflict, Forbidden, InvalidInput, NotFound, ReelayError
from reelay.models import RecordingSession, RecordingState, utcnow
from reelay.observability import logger
from reelay.ports import ObjectStore, PlaybackSigner, SessionPage
from reelay.recording import layout
from reelay.recording.layout import EXPORT_STATE_PREFIX
from reelay.recording.manifests import live_playlist
from reelay.recording.steps import DEFAULT_STORE, PLAYLIST_TYPE, iso_now, put_export_record
from reelay.relay.streams import StreamService
from reelay.settings import Settings

LIVE_TOKEN_SECONDS = 3600
MAX_EXPORT_SECONDS = 6 * 3600
LIVE_RENDITION = "source"


class ExportsUnavailable(ReelayError):
    code = "exports_unavailable"
    status = 503


class NotLive(ReelayError):
    code = "not_live"
    status = 409


class ExportLauncher(Protocol):
    def launch(self, state: dict[str, Any]) -> str:
        """Start the export workflow (``RECORDING_EXPORT_WORKFLOW``) with ``state``; returns the
        execution id. Idempotent per ``state["exportId"]`` (the execution's name). The workflow's own
        steps record the export ready or failed."""
        ...


@dataclass(frozen=True)
class SessionView:
    """A session and what the API says about it beyond its row."""

    session: RecordingSession
    duration_seconds: float | None
    live_playlist_url: str | None = None
    live_expires_at: datetime | None = None


class RecordingService:
    def __init__(
        self,
        catalogue: Any,
        streams: StreamService,
        media_store: ObjectStore,
        settings: Settings,
        *,
        starter: Callable[[], Any],  # -> reelay.recording.sweep.WorkflowStarter, built when first needed
        exports: ExportLauncher | None = None,
        signer: PlaybackSigner | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.catalogue = catalogue
        self.streams = streams
        self.media_store = media_store
        self.settings = settings
        self._starter = starter
        self.exports = exports
        self.signer = signer  # signs a private recording's export downloads; None: none offered
        self.clock = clock

    # --- sessions ------------------------------------------------------------------------------
    def list(self, owner_id: str, stream_id: str, limit: int, cursor: str | None = None) -> SessionPage:
        self.streams.get(owner_id, stream_id)
        return self.catalogue.list_recording_sessions_page(stream_id, limit=limit, cursor=cursor)

    def get(self, owner_id: str, stream_id: str, session_id: str) -> RecordingSession:
        self.streams.get(owner_id, stream_id)
        try:
            session = self.catalogue.get_recording_session(session_id)
        except (NotFound, InvalidInput):
            raise NotFound(f"recording session {session_id} not found") from None
        if session.stream_id != stream_id:
            raise NotFound(f"recording session {session_id} not found")
        return session

    def view(self, session: RecordingSession, *, api_base: str | None = None) -> SessionView:
        duration = session.duration_seconds
        if duration is None:  # not finalized: its media so far (while recording, until now)
            live = session.state == RecordingState.RECORDING
            until = utcnow() if live else session.ended_at or last_media(session)
            duration = max(0.0, round((until - session.started_at).total_seconds(), 3))
        if session.state != RecordingState.RECORDING or api_base is None:
            return SessionView(session, duration)
        expires = int(self.clock()) + LIVE_TOKEN_SECONDS
        url = (
            f"{api_base.rstrip('/')}/streams/{session.stream_id}/sessions/{session.session_id}/live.m3u8"
            f"?token={self.live_token(session.session_id, expires)}"
        )
        return SessionView(session, duration, url, datetime.utcfromtimestamp(expires))

    def finalize(self, owner_id: str, stream_id: str, session_id: str) -> dict[str, Any]:
        """Start the finalize (or fixup) workflow by hand; idempotent (``sweep.trigger``)."""
        from reelay.recording.sweep import trigger

        session = self.get(owner_id, stream_id, session_id)
        if session.state == RecordingState.EXPIRED:
            raise Conflict(f"session {session_id} has expired: its stream's retention removed it")
        return trigger(self.catalogue, self._starter(), session_id, mp4=False)

    # --- the live playlist -------------------------------------------------------------------------
    def _live_key(self) -> bytes:
        return self.streams.secrets.derive("live-playlist").encode()

    def live_token(self, session_id: str, expires: int) -> str:
        mac = hmac.new(self._live_key(), f"live:{session_id}:{expires}".encode(), hashlib.sha256).hexdigest()
        return f"{expires}.{mac}"

    def check_live_token(self, session_id: str, token: str | None) -> None:
        expires_text, _, mac = (token or "").partition(".")
        if not (expires_text.isascii() and expires_text.isdigit() and len(expires_text) <= 12 and mac):
            raise Forbidden("this playlist needs the token of its livePlaylistUrl")
        expires = int(expires_text)
        if not hmac.compare_digest(self.live_token(session_id, expires), f"{expires_text}.{mac}"):
            raise Forbidden("the playlist token is not valid for this session")
        if expires < self.clock():
            raise Forbidden("the playlist token has expired: get the session again for a new URL")

    def live(self, stream_id: str, session_id: str, token: str | None) -> str:
        """The EVENT playlist of a session (ENDLIST once it has ended). No owner: the token says."""
        self.check_live_token(session_id, token)
        try:
            session = self.catalogue.get_recording_session(session_id)
        except (NotFound, InvalidInput):
            raise NotFound(f"recording session {session_id} not found") from None
        if session.stream_id != stream_id:
            raise NotFound(f"recording session {session_id} not found")
        if session.store_ref != DEFAULT_STORE:
            raise NotLive(
                f"session {session_id} records to the stream's own store ({session.store_url}), which the "
                "playback path does not serve; it plays once finalized"
            )
        body = live_playlist(
            self.media_store,
            stream_id,
            session_id,
            LIVE_RENDITION,
            target=max(1, round(self.settings.recording_segment_seconds)),
            segment_uri=lambda seg: f"{self._media_root()}/{seg.key()}",
            ended=session.state != RecordingState.RECORDING,
        )
        if body is None:
            raise NotFound(f"session {session_id} has no segment stored yet; try again in a few seconds")
        return body

    def _media_root(self) -> str:
        """Where the playback path serves store keys: the playback base without its output prefix."""
        base = self.settings.playback_base_url.rstrip("/")
        prefix = self.settings.output_prefix.strip("/")
        return base[: -len(prefix) - 1] if prefix and base.endswith("/" + prefix) else base

    # --- exports ---------------------------------------------------------------------------------
    def create_export(
        self, owner_id: str, stream_id: str, session_id: str, start: float, end: float
    ) -> dict[str, Any]:
        session = self.get(owner_id, stream_id, session_id)
        if session.state != RecordingState.READY or not session.video_id:
            raise Conflict(
                f"session {session_id} is {session.state.value}: only a finalized (ready) recording exports"
            )
        duration = float(session.duration_seconds or 0.0)
        if not (0 <= start < end):
            raise InvalidInput("the range must satisfy 0 <= start < end (seconds into the recording)")
        if end > duration + 1e-6:
            raise InvalidInput(f"end ({end:g} s) is past the recording's end ({duration:g} s)")
        if end - start > MAX_EXPORT_SECONDS:
            raise InvalidInput(f"an export is at most {MAX_EXPORT_SECONDS} seconds long")
        if self.exports is None:
            raise ExportsUnavailable("MP4 exports are not configured for this deployment")
        export_id = uuid.uuid4().hex
        now = iso_now()
        record: dict[str, Any] = {
            "exportId": export_id,
            "sessionId": session_id,
            "streamId": stream_id,
            "videoId": session.video_id,
            "state": "running",
            "start": float(start),
            "end": float(end),
            "createdAt": now,
            "updatedAt": now,
        }
        put_export_record(self.media_store, record)
        state = {
            "exportId": export_id,
            "sessionId": session_id,
            "videoId": session.video_id,
            # A private recording's MP4 goes where only a signature reaches (reelay.media_location).
            "mp4Key": layout.export_media_key(self._export_root(session.video_id), session_id, export_id),
            "exportRendition": "source"
            if any(r.name == "source" for r in session.renditions)
            else max(session.renditions, key=lambda r: r.bandwidth).name,
            "exportStart": float(start),
            "exportEnd": float(end),
            "export": record,
        }
        try:
            execution = self.exports.launch(state)
        except Exception as exc:
            logger.exception("recording export not started", extra={"exportId": export_id})
            reason = "the export could not be started; try again"
            put_export_record(
                self.media_store,
                dict(
                    record,
                    state="failed",
                    failureReason=f"{reason} ({type(exc).__name__})",
                    updatedAt=iso_now(),
                ),
            )
            raise ExportsUnavailable(reason) from None
        logger.info(
            "recording export started",
            extra={"sessionId": session_id, "exportId": export_id, "execution": execution},
        )
        return record

    def get_export(self, owner_id: str, stream_id: str, session_id: str, export_id: str) -> dict[str, Any]:
        self.get(owner_id, stream_id, session_id)
        if not (export_id.isascii() and export_id.isalnum() and len(export_id) <= 64):
            raise NotFound(f"export {export_id} not found")
        key = layout.export_state_key(session_id, export_id)
        if self.media_store.head(key) is None:
            raise NotFound(f"export {export_id} not found")
        record = json.loads(self.media_store.get_bytes(key))
        if record.get("state") == "ready" and record.get("key"):
            url = self._download_url(session_id, export_id, str(record.get("videoId") or ""))
            if url is not None:
                record["downloadUrl"] = url
        record.pop("key", None)
        return dict(record)

    def _owner_only(self, video_id: str) -> bool:
        try:
            return bool(self.catalogue.get(video_id).owner_only)
        except NotFound:  # deleted: nothing to protect, and nothing left to download
            return False

    def _export_root(self, video_id: str) -> str:
        """The output prefix a recording's exports belong under: the private one while it is private."""
        s = self.settings
        return s.private_output_prefix if self._owner_only(video_id) else s.output_prefix

    def _download_url(self, session_id: str, export_id: str, video_id: str) -> str | None:
        """Where the MP4 is now (its recording's visibility moves it): the public playback path, or a
        signed link on the private one (the owner's; None when private playback cannot be signed)."""
        name = layout.export_media_key("", session_id, export_id)
        if not self._owner_only(video_id):
            return f"{self.settings.playback_base_url.rstrip('/')}/{name}"
        if self.signer is None:
            return None
        scope = layout.export_media_prefix("", session_id).rstrip("/")
        try:
            query = self.signer.signed_query(scope, self.settings.playback_url_expires_seconds)
        except ReelayError as exc:  # the export still answers, without its link; the log says why
            logger.error("private export not signed", extra={"exportId": export_id, "error": exc.message})
            return None
        return f"{self.signer.base_url}/{name}?{query}"


__all__ = [
    "EXPORT_STATE_PREFIX",
    "LIVE_TOKEN_SECONDS",
    "PLAYLIST_TYPE",
    "ExportLauncher",
    "ExportsUnavailable",
    "NotLive",
    "RecordingService",
    "SessionView",
    "layout",
]
