"""What the recorder (inside the relay task) calls: one ``SessionWriter`` per recording branch.

    writer = SessionWriter(store, catalogue, stream_id, writer_id, renditions, ...)
    writer.start()                         # when media first flows (and after each reconnect)
    writer.segment(rendition, data, duration_ms=..., pdt_ms=...)   # each closed segment, each rendition
    writer.heartbeat(media_at=...)         # every few seconds, while the writer lives
    writer.end("stopped")                  # stream stopped, or source down longer than the window

``start`` starts the stream's session or continues it (a reconnect inside the reconnect window: the
next segment is marked as a discontinuity). Sequence numbers come from the wall clock
(``sequence_for``), so two writers recording the same stream give the same segment the same number,
and finalize keeps one copy.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from reelay.models import RecordingSession, Rendition, utcnow
from reelay.ports import ObjectStore
from reelay.recording import layout
from reelay.recording.manifests import DEFAULT_CHUNK_SIZE, DEFAULT_RETRY, ManifestWriter, Retry, write_segment


@dataclass(frozen=True)
class PickedStore:
    """The store a new session records to (``reelay.recording.stores.resolve_store``, opened), and what
    its row keeps: the redacted URL, the reference, the full URL sealed (None when it has no secret),
    where it came from and why an earlier choice fell back."""

    store: ObjectStore
    url: str
    ref: str
    secret: str | None = None
    source: str = "default"
    fallback: str | None = None


# (the new session's id, its start) -> its store. Called before the session exists, so a store
# webhook is told the real session id.
PickStore = Callable[[str, datetime], PickedStore]
# A session another writer started (this one continues it after a restart): the store it records to.
ReopenStore = Callable[[RecordingSession], ObjectStore]


def sequence_for(pdt_ms: int, started_at: datetime, segment_ms: int) -> int:
    """A segment's number in its session: its wall-clock start over the segment length, rounded, so
    writers agree on it without talking to each other (segments start on keyframes at that cadence)."""
    start_ms = (
        int(started_at.timestamp() * 1000)
        if started_at.tzinfo
        else int((started_at - datetime(1970, 1, 1)).total_seconds() * 1000)
    )
    return max(0, round((pdt_ms - start_ms) / segment_ms))


class SessionWriter:
    def __init__(
        self,
        store: ObjectStore,
        catalogue: object,
        stream_id: str,
        writer_id: str,
        renditions: Sequence[Rendition],
        *,
        segment_ms: int = 2000,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        reconnect_window_seconds: int = 60,
        store_url: str | None = None,
        store_ref: str = "default",
        retry: Retry = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        pick_store: PickStore | None = None,
        reopen_store: ReopenStore | None = None,
    ) -> None:
        self.store = store
        self.catalogue = catalogue
        self.stream_id = stream_id
        self.writer_id = writer_id
        self.renditions = list(renditions)
        self.segment_ms = segment_ms
        self.chunk_size = chunk_size
        self.window = reconnect_window_seconds
        self.store_url = store_url
        self.store_ref = store_ref
        self.store_secret: str | None = None
        self.store_source = "default"
        self.store_fallback: str | None = None
        self.pick_store = pick_store
        self.reopen_store = reopen_store
        self.retry = retry
        self.sleep = sleep
        self.session: RecordingSession | None = None
        self._manifests: dict[str, ManifestWriter] = {}
        self._discontinuity: set[str] = set()
        self._last_seq: dict[str, int] = {}

    def start(self, now: datetime | None = None) -> tuple[RecordingSession, bool]:
        """Media flows (again): the session to write to, and whether it continues an earlier one.

        With ``pick_store``, a session about to start new gets its store chosen first, under the id it
        will have (the webhook is told that id); one about to be continued keeps its store."""
        proposed = None
        if self.pick_store is not None and self._continuable(now) is None:
            proposed = uuid.uuid4().hex
            self._use(self.pick_store(proposed, now or utcnow()))
        session, continued = self.catalogue.start_recording_session(  # type: ignore[attr-defined]
            self.stream_id,
            self.writer_id,
            reconnect_window_seconds=self.window,
            store_url=self.store_url,
            store_ref=self.store_ref,
            renditions=self.renditions,
            session_id=proposed,
            store_secret=self.store_secret,
            store_source=self.store_source,
            store_fallback=self.store_fallback,
            now=now,
        )
        mine = self.session is not None and self.session.session_id == session.session_id
        if continued and not mine and self.reopen_store is not None:
            # Another writer's session (this task restarted inside the window): write where it does.
            self.store = self.reopen_store(session)
            self.store_url, self.store_ref = session.store_url, session.store_ref
            self.store_secret, self.store_source = session.store_secret, session.store_source
            self.store_fallback = session.store_fallback
        if self.session is None or session.session_id != self.session.session_id:
            self._manifests = {}
            self._last_seq = {}
        self.session = session
        # After any (re)start the next segment of each rendition follows a break in the timestamps.
        self._discontinuity = {r.name for r in self.renditions} if continued or self._last_seq else set()
        return session, continued

    def _use(self, picked: PickedStore) -> None:
        self.store, self.store_url, self.store_ref = picked.store, picked.url, picked.ref
        self.store_secret, self.store_source, self.store_fallback = (
            picked.secret,
            picked.source,
            picked.fallback,
        )

    def _continuable(self, now: datetime | None) -> RecordingSession | None:
        """The stream's session that a start now would continue (as the catalogue decides it)."""
        from reelay.catalogue._recordings import last_media
        from reelay.models import RecordingState

        latest = self.catalogue.list_recording_sessions(self.stream_id, limit=1)  # type: ignore[attr-defined]
        if not latest or latest[0].state != RecordingState.RECORDING:
            return None
        s = latest[0]
        gap = ((now or utcnow()) - last_media(s)).total_seconds()
        return s if s.reconnect_window_seconds > 0 and gap <= s.reconnect_window_seconds else None

    def segment(self, rendition: str, data: bytes, *, duration_ms: int, pdt_ms: int) -> layout.SegmentKey:
        """Write a closed segment once, then append it to its rendition's chunk manifest."""
        if self.session is None:
            raise RuntimeError("start() the session first")
        seq = sequence_for(pdt_ms, self.session.started_at, self.segment_ms)
        seq = max(seq, self._last_seq.get(rendition, -1) + 1)  # never reuse a number of our own
        seg = layout.segment_key(
            self.stream_id,
            self.session.session_id,
            self.writer_id,
            rendition,
            seq,
            duration_ms=duration_ms,
            pdt_ms=pdt_ms,
            discontinuity=rendition in self._discontinuity,
        )
        write_segment(self.store, seg, data, retry=self.retry, sleep=self.sleep)
        self._last_seq[rendition] = seq
        self._discontinuity.discard(rendition)
        manifest = self._manifests.get(rendition)
        if manifest is None:
            manifest = self._manifests[rendition] = ManifestWriter(
                self.store,
                self.stream_id,
                self.session.session_id,
                self.writer_id,
                rendition,
                self.chunk_size,
                retry=self.retry,
                sleep=self.sleep,
                first_chunk=seq // self.chunk_size,  # a restarted writer never overwrites its older chunks
            )
        manifest.append(seg)
        return seg

    def heartbeat(self, *, media_at: datetime | None = None) -> bool:
        if self.session is None:
            return False
        return self.catalogue.heartbeat_recording_session(  # type: ignore[attr-defined]
            self.session.session_id, self.writer_id, media_at=media_at or utcnow()
        )

    def end(self, reason: str = "stopped") -> bool:
        if self.session is None:
            return False
        for manifest in self._manifests.values():
            manifest.flush()
        return self.catalogue.end_recording_session(self.session.session_id, reason=reason)  # type: ignore[attr-defined]
