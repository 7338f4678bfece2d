"""The recorder inside the relay task: hands closed segment files to a ``SessionWriter``, off the
GStreamer threads, and rides out store outages on local disk.

The pipeline's recording branch (``reelay.relay.pipelines``) writes keyframe-aligned MPEG-TS segment
files into ``spool_dir`` and calls, from its streaming threads or the GLib loop:

    recorder.media_started()                       # a (re)built pipeline opened its first segment
    recorder.segment_closed(path, duration_ms)     # a segment file is complete
    recorder.segment_closed(path, duration_ms, rendition="720p", pdt_ms=...)   # with encoded renditions
    recorder.describe_rendition(name, width, height, codecs)   # a rendition's first keyframe is out
    recorder.drop_rendition(name)                  # a rung not encoded: the source's size already
    recorder.frames_dropped(count)                 # encoders that cannot keep up lost frames

Both only append to an in-memory queue: they never wait on the store or the catalogue. One worker
thread works through the queue in order: ``writer.start()`` (a new session, or the same one continued
after a reconnect inside the window: the catalogue decides), then each segment through
``writer.segment`` (segment object, then its rolling manifest, each with bounded retries). When an
upload still fails, the worker keeps the segment at the head of the queue and tries again later: a
store outage delays segments, it does not lose them, while the spool holds at most
``max_spool_bytes``. Beyond that the OLDEST waiting segments are dropped, counted, logged and shown in
``health()``: the newest media is what an operator wants when the store comes back.

Encoded renditions (``renditions``: ladder rungs, see ``reelay.media.ladder.rungs``) are made by the
pipeline's recording branch from the same decode; ``encoded`` is what the branch builds. The session's
renditions (what finalize writes into the master playlist) start from the rungs' nominal sizes and
codecs and are corrected by ``describe_rendition`` from the real streams; a session start waits up to
``describe_seconds`` for them, so its first row already carries the real values. An encoded rendition
that comes out the same size as the source (a 720p rung on a 720p camera: rungs are never upscaled)
or as a better encoded one is dropped at that point (``redundant_renditions``): the session does not
list it and its segments are not stored. The source always stays.

The relay task calls ``heartbeat()`` on its lease beat, ``source_down(seconds)`` with the age of a
source outage (past the reconnect window the session ends, and the next media starts a new one), and
``end("stopped")`` then ``close()`` when the stream stops.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reelay.errors import describe
from reelay.media import h264
from reelay.media.ladder import RenditionSpec
from reelay.models import Rendition
from reelay.recording.writer import SessionWriter

log = logging.getLogger(__name__)

SOURCE_RENDITION = "source"
DEFAULT_MAX_SPOOL_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class RecorderHealth:
    session_id: str | None
    recording: bool  # a session is open
    segments_written: int
    segments_dropped: int  # dropped from a full spool (the oldest first)
    spool_bytes: int  # closed segments waiting for the store
    pending: int
    store_failing: bool  # the last upload attempt failed
    last_error: str | None
    sessions_started: int
    discontinuities: int  # starts that continued an earlier session
    frames_dropped: int = 0  # frames the encoded renditions lost to encoders that could not keep up
    store: str | None = None  # the store, redacted
    store_fallback: str | None = None  # why the webhook's or the stream's store was passed over


@dataclass
class _Segment:
    path: Path
    size: int
    duration_ms: int
    pdt_ms: int
    rendition: str = SOURCE_RENDITION


@dataclass
class _Command:
    kind: str  # "start" | "end"
    reason: str = ""


class Recorder:
    def __init__(
        self,
        writer: SessionWriter,
        spool_dir: Path,
        *,
        max_spool_bytes: int = DEFAULT_MAX_SPOOL_BYTES,
        rendition: str = SOURCE_RENDITION,
        retry_seconds: float = 1.0,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        on_dropped: Callable[[int], None] | None = None,
        store: str | None = None,
        store_fallback: str | None = None,
        renditions: Sequence[RenditionSpec] = (),
        describe_seconds: float = 5.0,
        x264_preset: str = "veryfast",
    ) -> None:
        self.writer = writer
        self.spool_dir = Path(spool_dir)
        self.spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Files a previous task left (killed before uploading them) carry no duration or time of their
        # own: fixup already has every segment that reached the store, so these only take up disk.
        left = self._sweep_spool(set())
        if left:
            log.warning("discarded %d segment file(s) a previous relay task left in the spool", left)
        self.max_spool_bytes = max_spool_bytes
        self.rendition = rendition
        self.retry_seconds = retry_seconds
        self._wall_ms = wall_ms
        self.on_dropped = on_dropped  # the task's metric hook (count of segments just dropped)
        self.store, self.store_fallback = store, store_fallback
        self.encoded: tuple[RenditionSpec, ...] = tuple(renditions)  # what the pipeline's branch encodes
        self.describe_seconds = describe_seconds
        self.x264_preset = x264_preset
        self._undescribed = {r.name for r in writer.renditions}
        self._redundant: set[str] = set()  # renditions dropped as the same size as another
        self._described = threading.Event()
        if not self.encoded:
            self._described.set()  # nothing to wait for: the passthrough source alone
        self._frames_dropped = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: deque[_Segment | _Command] = deque()
        self._in_flight: _Segment | _Command | None = None
        self._spool_bytes = 0
        self._written = 0
        self._dropped = 0
        self._started = 0
        self._continued = 0
        self._open = False  # a session is open, as far as the queue's order goes
        self._failing = False
        self._last_error: str | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._work, name="recorder", daemon=True)
        self._thread.start()

    # --- called from the pipeline (never blocks) ------------------------------------------------
    def media_started(self) -> None:
        """Media flows (again) through a freshly built pipeline: start or continue the session."""
        with self._lock:
            self._queue.append(_Command("start"))
            self._open = True
            self._wake.notify()

    def segment_closed(
        self, path: str | Path, duration_ms: int, *, rendition: str | None = None, pdt_ms: int | None = None
    ) -> None:
        """A complete segment file of ``rendition`` (the passthrough one by default). Its first frame
        was at ``pdt_ms`` (wall clock), or, when not given, ``duration_ms`` before now."""
        path = Path(path)
        if (rendition or self.rendition) in self._redundant:
            path.unlink(missing_ok=True)
            return
        try:
            size = path.stat().st_size
        except OSError:
            log.warning("a closed segment file is missing: %s", path.name)
            return
        duration_ms = max(1, int(duration_ms))
        pdt = pdt_ms if pdt_ms is not None else self._wall_ms() - duration_ms
        seg = _Segment(path, size, duration_ms, max(0, pdt), rendition or self.rendition)
        dropped: list[_Segment] = []
        with self._lock:
            if not self._open:  # the pipeline posted a segment before media_started: start now
                self._queue.append(_Command("start"))
                self._open = True
            self._queue.append(seg)
            self._spool_bytes += size
            # Over the limit: drop the oldest waiting segments (never the one being uploaded now).
            while self._spool_bytes > self.max_spool_bytes:
                oldest = next(
                    (s for s in self._queue if isinstance(s, _Segment) and s not in (seg, self._in_flight)),
                    None,
                )
                if oldest is None:
                    break
                self._queue.remove(oldest)
                self._spool_bytes -= oldest.size
                self._dropped += 1
                dropped.append(oldest)
            self._wake.notify()
        for old in dropped:
            old.path.unlink(missing_ok=True)
        if dropped:
            log.error(
                "recording spool full: dropped the %d oldest segment(s) waiting for the store",
                len(dropped),
                extra={"segmentsDropped": self._dropped, "spoolBytes": self._spool_bytes,
                       "maxSpoolBytes": self.max_spool_bytes},
            )  # fmt: skip
            if self.on_dropped is not None:
                with contextlib.suppress(Exception):
                    self.on_dropped(len(dropped))

    def describe_rendition(self, name: str, width: int, height: int, codecs: str) -> None:
        """A rendition's real picture size and RFC 6381 codec (from its first keyframe), for the
        session's renditions: finalize writes them into the master playlist's RESOLUTION and CODECS."""
        with self._lock:
            facts = {"width": width, "height": height, "codecs": codecs}
            self.writer.renditions = [
                r.model_copy(update=facts) if r.name == name else r for r in self.writer.renditions
            ]
            self._undescribed.discard(name)
            if not self._undescribed:
                self._described.set()

    def drop_rendition(self, name: str) -> None:
        """The pipeline does not encode ``name`` (it would come out the size of the source or of a
        better rung): not listed, not waited for, never stored."""
        with self._lock:
            self._redundant.add(name)
            self.writer.renditions = [r for r in self.writer.renditions if r.name != name]
            self._undescribed.discard(name)
            if not self._undescribed:
                self._described.set()
        log.info("recording: rendition %s is not recorded (the same picture as another)", name)

    def frames_dropped(self, count: int) -> None:
        """Encoders that could not keep up lost ``count`` frames (the recording branch dropped them)."""
        with self._lock:
            self._frames_dropped += count
            total = self._frames_dropped
        if total == count or total // 1000 != (total - count) // 1000:  # the first, then every 1000th
            log.warning("recording: encoders cannot keep up; %d frame(s) dropped so far", total)

    # --- called by the relay task ---------------------------------------------------------------
    def source_down(self, seconds: float) -> bool:
        """The source has been down ``seconds``: past the reconnect window the session ends (the next
        media starts a new one). True when this call ended it."""
        window = self.writer.window
        if window <= 0 or seconds <= window:
            return False
        with self._lock:
            if not self._open:
                return False
            self._queue.append(_Command("end", f"source down longer than the reconnect window ({window} s)"))
            self._open = False
            self._wake.notify()
        return True

    def end(self, reason: str = "stopped") -> None:
        """End the session after every segment already closed is written (when the store allows)."""
        with self._lock:
            if self._open:
                self._queue.append(_Command("end", reason))
                self._open = False
                self._wake.notify()

    def heartbeat(self) -> bool:
        """The session's writer heartbeat (the lease beat's thread). Never raises."""
        try:
            return bool(self.writer.heartbeat())
        except Exception as exc:
            log.warning("recording heartbeat failed: %s", type(exc).__name__)
            return False

    def close(self, timeout: float = 30.0) -> bool:
        """Stop the worker once its queue is empty, or after ``timeout``. True when it was emptied;
        what is left stays in the spool directory (counted in ``health``)."""
        with self._lock:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        self._sweep_spool(set())  # unfinished files of pipelines that dropped mid-segment
        return True

    def _sweep_spool(self, keep: set[Path]) -> int:
        removed = 0
        for path in self.spool_dir.glob("*.ts"):
            if path not in keep:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def health(self) -> RecorderHealth:
        with self._lock:
            pending = sum(1 for s in self._queue if isinstance(s, _Segment))
            session = self.writer.session
            return RecorderHealth(
                session_id=session.session_id if session is not None else None,
                recording=self._open,
                segments_written=self._written,
                segments_dropped=self._dropped,
                spool_bytes=self._spool_bytes,
                pending=pending,
                store_failing=self._failing,
                last_error=self._last_error,
                sessions_started=self._started,
                discontinuities=self._continued,
                frames_dropped=self._frames_dropped,
                # The writer's, once it chose one for a session (a store webhook answers per session).
                store=getattr(self.writer, "store_url", None) or self.store,
                store_fallback=getattr(self.writer, "store_fallback", None) or self.store_fallback,
            )

    # --- the worker -----------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._wake.wait()
                if not self._queue:
                    return  # closing, and nothing left
                item = self._in_flight = self._queue[0]
            ok = self._do(item)
            with self._lock:
                self._in_flight = None
                if ok:
                    if self._queue and self._queue[0] is item:
                        self._queue.popleft()
                    if isinstance(item, _Segment):
                        self._spool_bytes -= item.size
                        self._written += 1
                    self._failing = False
                    continue
                self._failing = True
                self._wake.wait(self.retry_seconds)  # close() joins with a timeout; we keep trying

    def _do(self, item: _Segment | _Command) -> bool:
        try:
            if isinstance(item, _Command):
                if item.kind == "start":
                    # The session's first row should carry the renditions' real sizes and codecs.
                    if not self._described.wait(self.describe_seconds):
                        log.warning("recording starts before every rendition described itself")
                    self._drop_redundant()
                    session, continued = self.writer.start()
                    self._started += 1
                    self._continued += 1 if continued else 0
                    log.info(
                        "recording session %s", "continued" if continued else "started",
                        extra={"sessionId": session.session_id, "streamId": self.writer.stream_id},
                    )  # fmt: skip
                else:
                    self.writer.end(item.reason)
                    log.info("recording session ended: %s", item.reason,
                             extra={"streamId": self.writer.stream_id})  # fmt: skip
                return True
            try:
                data = item.path.read_bytes()
            except FileNotFoundError:
                log.error("a spooled segment vanished before upload: %s", item.path.name)
                return True  # nothing to retry
            # The writer's own record of what it wrote: a segment object written whose manifest update
            # failed is written (the manifest keeps the entry for its next write); never write it twice.
            seqs: dict[str, int] = getattr(self.writer, "_last_seq", {})
            before = seqs.get(item.rendition)
            try:
                self.writer.segment(item.rendition, data, duration_ms=item.duration_ms, pdt_ms=item.pdt_ms)
            except Exception:
                if seqs is getattr(self.writer, "_last_seq", None) and seqs.get(item.rendition) != before:
                    log.warning("segment written; its manifest update will be retried with the next one")
                else:
                    raise
            item.path.unlink(missing_ok=True)
            return True
        except Exception as exc:
            self._last_error = describe(exc)
            log.warning("recording upload failed; will retry: %s", self._last_error)
            return False

    def _drop_redundant(self) -> None:
        """Drop the encoded renditions the same size as another (once described), and their segments
        already waiting in the queue."""
        gone: list[_Segment] = []
        with self._lock:
            described = [r for r in self.writer.renditions if r.name not in self._undescribed]
            dropped = redundant_renditions(described) - self._redundant
            if not dropped:
                return
            self._redundant |= dropped
            self.writer.renditions = [r for r in self.writer.renditions if r.name not in dropped]
            for item in list(self._queue):
                if isinstance(item, _Segment) and item.rendition in dropped and item is not self._in_flight:
                    self._queue.remove(item)
                    self._spool_bytes -= item.size
                    gone.append(item)
        for item in gone:
            item.path.unlink(missing_ok=True)
        log.info(
            "recording: renditions the same size as another are not recorded",
            extra={"renditions": sorted(dropped), "streamId": self.writer.stream_id},
        )


def redundant_renditions(renditions: Sequence[Rendition]) -> set[str]:
    """The encoded renditions whose picture is the same size as the source's, or as an encoded one of
    higher bandwidth (the first listed on a tie): recording them again adds bytes, not a choice for the
    player. The source is never one of them; a rendition of unknown size (0) never is either."""

    def known(r: Rendition) -> bool:
        return r.width > 0 and r.height > 0

    seen = {(r.width, r.height) for r in renditions if r.name == SOURCE_RENDITION and known(r)}
    out: set[str] = set()
    encoded = sorted((r for r in renditions if r.name != SOURCE_RENDITION), key=lambda r: -r.bandwidth)
    for r in filter(known, encoded):
        if (r.width, r.height) in seen:
            out.add(r.name)
        seen.add((r.width, r.height))
    return out


def planned_renditions(encoded: Sequence[RenditionSpec], fps: float = 30) -> list[Rendition]:
    """Encoded renditions as a session first records them: the rungs' box sizes and nominal codecs
    (the level x264 picks for that size at ``fps``), corrected from the real streams once they flow
    (``Recorder.describe_rendition``)."""
    return [
        Rendition(
            name=r.name,
            width=r.width,
            height=r.height,
            bandwidth=r.max_kbps * 1000,
            codecs=h264.avc1(r.profile, h264.level_idc(r.width, r.height, fps, r.max_kbps, r.profile)),
            playlist=f"{r.name}/index.m3u8",
        )
        for r in encoded
    ]


__all__ = [
    "DEFAULT_MAX_SPOOL_BYTES",
    "SOURCE_RENDITION",
    "Recorder",
    "RecorderHealth",
    "planned_renditions",
    "redundant_renditions",
]
