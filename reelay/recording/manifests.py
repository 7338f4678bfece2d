"""Rolling chunk manifests: what a writer appends after each closed segment, and the live playlist.

Why chunks: rewriting one manifest of the whole session after every segment writes bytes that grow
with the session (72 bytes x 1800 segments/h x 5 renditions x 48 h: 16 MB per push by hour 48), and
writing one only at the end loses the recording when the writer crashes. A writer instead keeps a
chunk of at most ``chunk_size`` entries (JSON, ``layout.manifest_key``) and rewrites only that chunk;
every ``chunk_size`` segments a new chunk object begins. Bytes written per segment are bounded by
``chunk_size`` x one entry, whatever the session's length.

Live-to-VOD: ``live_playlist`` builds an EVENT playlist on request, from the chunk manifests of every
writer (merged the way finalize merges segments). Nothing that grows with the session is ever written:
the playlist exists only in the answer to a request. Full chunks never change again, so a server may
cache them; only the last chunk of each writer is re-read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from reelay.observability import logger
from reelay.ports import ObjectStore
from reelay.recording import layout
from reelay.recording.layout import ManifestKey, SegmentKey
from reelay.recording.merge import SegmentRow, merge_segments, render_playlist

DEFAULT_CHUNK_SIZE = 100
MANIFEST_VERSION = 1


class UploadFailed(Exception):
    """An upload still failed after its retries. What was not written is kept and written next time."""


@dataclass(frozen=True)
class Retry:
    """Bounded retry with exponential backoff: ``attempts`` tries, sleeping base x 2^n, at most ``cap``."""

    attempts: int = 5
    base_seconds: float = 0.2
    cap_seconds: float = 5.0

    def run(self, what: str, action: Callable[[], None], sleep: Callable[[float], None] = time.sleep) -> None:
        for attempt in range(1, self.attempts + 1):
            try:
                action()
                return
            except Exception as exc:
                if attempt == self.attempts:
                    raise UploadFailed(
                        f"{what}: {exc or type(exc).__name__} (after {attempt} tries)"
                    ) from exc
                delay = min(self.cap_seconds, self.base_seconds * 2 ** (attempt - 1))
                logger.warning(
                    "upload failed; retrying",
                    extra={"what": what, "attempt": attempt, "delaySeconds": delay, "error": str(exc)},
                )
                sleep(delay)


DEFAULT_RETRY = Retry()


def entry(seg: SegmentKey) -> str:
    """One manifest entry: the segment's file name, which carries its sequence number, duration,
    program date-time and discontinuity flag (see ``layout``). About 35 bytes."""
    return seg.name()


def encode_chunk(key: ManifestKey, entries: list[str]) -> bytes:
    doc = {
        "version": MANIFEST_VERSION,
        "streamId": key.stream_id,
        "sessionId": key.session_id,
        "writerId": key.writer_id,
        "rendition": key.rendition,
        "chunk": key.chunk,
        "segments": entries,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def decode_chunk(data: bytes, key: ManifestKey) -> list[SegmentKey]:
    """The segments a chunk lists; malformed entries are dropped (the listing still has them)."""
    try:
        doc = json.loads(data)
        entries = doc["segments"] if isinstance(doc, dict) else []
    except (ValueError, KeyError, TypeError):
        return []
    prefix = layout.rendition_prefix(key.stream_id, key.session_id, key.writer_id, key.rendition)
    out: list[SegmentKey] = []
    for e in entries if isinstance(entries, list) else []:
        seg = layout.parse_key(prefix + e) if isinstance(e, str) else None
        if isinstance(seg, SegmentKey) and seg.duration_ms is not None:
            out.append(seg)
    return out


class ManifestWriter:
    """One writer's rolling manifest of one rendition. Not thread-safe: one per recording branch.

    ``append`` after each segment is written to the store. It rewrites the current chunk (at most
    ``chunk_size`` entries) with bounded retries; when they all fail it raises ``UploadFailed`` and
    keeps the entry, so the next successful write carries it (delayed, not lost).
    """

    def __init__(
        self,
        store: ObjectStore,
        stream_id: str,
        session_id: str,
        writer_id: str,
        rendition: str,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        *,
        retry: Retry = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        first_chunk: int = 0,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        layout.rendition_prefix(stream_id, session_id, writer_id, rendition)  # checks the ids
        self.store = store
        self.ids = (stream_id, session_id, writer_id, rendition)
        self.chunk_size = chunk_size
        self.retry = retry
        self.sleep = sleep
        self.chunk = first_chunk
        self._entries: list[str] = []
        self._dirty = False
        self.bytes_written = 0  # manifest bytes written so far (the benchmark's figure)
        self.writes = 0

    @property
    def key(self) -> str:
        return layout.manifest_key(*self.ids, self.chunk)

    def append(self, segment: SegmentKey) -> int:
        """Add a written segment; returns the manifest bytes written by this call."""
        if (segment.stream_id, segment.session_id, segment.writer_id, segment.rendition) != self.ids:
            raise ValueError(f"segment {segment.key()} is not this writer's")
        if len(self._entries) >= self.chunk_size:
            self.flush()  # the full chunk must be safely written before we move on
            self.chunk += 1
            self._entries = []
        self._entries.append(entry(segment))
        self._dirty = True
        return self.flush()

    def flush(self) -> int:
        """Write the current chunk if it changed since its last write. Raises ``UploadFailed``."""
        if not self._dirty:
            return 0
        key = ManifestKey(*self.ids, self.chunk)
        body = encode_chunk(key, self._entries)
        self.retry.run(
            f"manifest {self.key}",
            lambda: self.store.put_bytes(self.key, body, content_type=layout.MANIFEST_CONTENT_TYPE),
            self.sleep,
        )
        self._dirty = False
        self.bytes_written += len(body)
        self.writes += 1
        return len(body)


def write_segment(
    store: ObjectStore,
    segment: SegmentKey,
    data: bytes,
    *,
    retry: Retry = DEFAULT_RETRY,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Write a closed segment once, under its key, with its metadata (bounded retries)."""
    retry.run(
        f"segment {segment.key()}",
        lambda: store.put_bytes(
            segment.key(), data, content_type=layout.SEGMENT_CONTENT_TYPE, metadata=segment.metadata()
        ),
        sleep,
    )


def naive_manifest_bytes(segments_so_far: int, entry_bytes: int = 72) -> int:
    """What the naive design writes for one push: the whole playlist again (the seed's 72 B/entry)."""
    return segments_so_far * entry_bytes


def read_manifests(store: ObjectStore, stream_id: str, session_id: str, rendition: str) -> list[SegmentKey]:
    """Every segment the chunk manifests of one rendition list, across writers (unmerged)."""
    out: list[SegmentKey] = []
    for info in store.list(layout.manifest_session_prefix(stream_id, session_id)):
        parsed = layout.parse_key(info.key)
        if isinstance(parsed, ManifestKey) and parsed.rendition == rendition:
            out.extend(decode_chunk(store.get_bytes(info.key), parsed))
    return out


def live_playlist(
    store: ObjectStore,
    stream_id: str,
    session_id: str,
    rendition: str,
    *,
    target: int,
    segment_uri: Callable[[SegmentKey], str],
    ended: bool = False,
) -> str | None:
    """The EVENT playlist of a session being recorded, built now from the chunk manifests.

    ``segment_uri`` turns a segment into the URI a player fetches (relative to where the playlist is
    served). None while no segment is listed yet. Merging is the finalize merge, so the live playlist
    only ever grows (EVENT's append-only rule) as segments arrive, and agrees with the final one.
    """
    merged = merge_segments(_as_rows(read_manifests(store, stream_id, session_id, rendition)))
    if not merged.entries:
        return None
    writers = merged.writers
    return render_playlist(
        merged.entries,
        lambda row: segment_uri(_row_key(stream_id, session_id, rendition, writers, row)),
        target=target,
        playlist_type="EVENT",
        ended=ended,
    )


def _as_rows(segments: Iterable[SegmentKey]) -> Iterator[SegmentRow]:
    for s in segments:
        yield SegmentRow(s.writer_id, s.seq, s.duration_ms or 0, s.pdt_ms or 0, s.discontinuity, 0)


def _row_key(stream_id: str, session_id: str, rendition: str, writers: list[str], row: tuple) -> SegmentKey:
    seq, dur, pdt, _merged_disc, writer, _size, disc = row
    return SegmentKey(stream_id, session_id, writers[writer], rendition, seq, dur, pdt, bool(disc))


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_RETRY",
    "ManifestWriter",
    "Retry",
    "UploadFailed",
    "decode_chunk",
    "encode_chunk",
    "live_playlist",
    "naive_manifest_bytes",
    "read_manifests",
    "write_segment",
]
