"""Where a recording's objects live, and what their key names carry.

DESIGN's contract is ``recordings/{streamId}/{sessionId}/{writerId}/{rendition}/{seq}.ts`` with the
segment's duration in object metadata. Listing returns no user metadata (S3's ListObjectsV2 gives key,
size and date only), and fixup must rebuild a session from the listing alone: one HEAD per segment is
432,000 requests for 48 h x 5 renditions. So the key name carries, after the sequence number, what the
playlists need:

    recordings/{streamId}/{sessionId}/{writerId}/{rendition}/{seq:010d}_{durationMs}_{pdtMs}[_d].ts

- ``seq``: the segment's sequence number in the session, zero-padded to 10 digits and first, so keys
  of one writer and rendition sort by sequence in S3's lexicographic order;
- ``durationMs``: the segment's duration in milliseconds;
- ``pdtMs``: the wall-clock time of its first frame (``EXT-X-PROGRAM-DATE-TIME``) in epoch ms;
- ``_d``: present when the segment follows a discontinuity (a reconnect, new timestamps or codecs).

The same values also go in the object's metadata (``SEGMENT_METADATA`` keys), for tools that HEAD.
The plain ``{seq}.ts`` form of the contract is still parsed (duration then unknown): fixup counts
such keys, and any key it cannot parse, as skipped rather than failing.

Chunk manifests (rolling, see ``reelay.recording.manifests``) live under a prefix of their own, so
one S3 lifecycle rule (prefix ``recordings/_manifests/``) removes abandoned ones, and a session's
listing of segments never pages through them (no id starts with '_', so none can collide):

    recordings/_manifests/{streamId}/{sessionId}/{writerId}/{rendition}/{chunk:06d}.json
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A recording's MP4 exports: outputs/<EXPORT_MEDIA_DIR>/<sessionId>/<exportId>.mp4, beside the videos'
# outputs, so the playback path serves them; a private recording's under the private output prefix
# (private-outputs/<EXPORT_MEDIA_DIR>/<sessionId>/...), served signed only (reelay.media_location).
EXPORT_MEDIA_DIR = "exports"
# An export's state: a small JSON object per export (no table; the lifecycle rule expires it with the
# MP4). The API writes it running; the export workflow's last step writes it ready or failed.
EXPORT_STATE_PREFIX = "recording-exports/"
# The MP4's object metadata, written by the export task, read (one HEAD) by the workflow's next step.
EXPORT_METADATA = ("duration-ms", "segments")

ROOT = "recordings/"
SEGMENT_EXT = ".ts"
MANIFEST_ROOT = f"{ROOT}_manifests/"
SEQ_DIGITS = 10
CHUNK_DIGITS = 6
SEGMENT_CONTENT_TYPE = "video/mp2t"
MANIFEST_CONTENT_TYPE = "application/json"
# Object metadata keys (S3 lower-cases user metadata names).
SEGMENT_METADATA = ("duration-ms", "pdt-ms", "discontinuity")

# Ids become path components: no '/', no '_' needed to be excluded (segment names split on '_' only).
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-_]{0,63}$")
_SEGMENT = re.compile(r"^(?P<seq>\d{1,19})(?:_(?P<dur>\d{1,9})_(?P<pdt>\d{1,15})(?P<disc>_d)?)?\.ts$")
_CHUNK = re.compile(r"^(?P<chunk>\d{1,12})\.json$")


def check_id(kind: str, value: str) -> str:
    """A stream, session, writer or rendition id that is safe as one key component."""
    if not isinstance(value, str) or not _ID.match(value) or value in {".", ".."}:
        raise ValueError(f"{kind} {value!r} must be 1-64 letters, digits, '.', '-' or '_'")
    return value


@dataclass(frozen=True, slots=True)
class SegmentKey:
    """One segment as its key names it. ``duration_ms``/``pdt_ms`` are None for a plain ``{seq}.ts``."""

    stream_id: str
    session_id: str
    writer_id: str
    rendition: str
    seq: int
    duration_ms: int | None = None
    pdt_ms: int | None = None
    discontinuity: bool = False

    @property
    def duration(self) -> float | None:
        return None if self.duration_ms is None else self.duration_ms / 1000

    def name(self) -> str:
        return segment_name(self.seq, self.duration_ms, self.pdt_ms, self.discontinuity)

    def key(self) -> str:
        return rendition_prefix(self.stream_id, self.session_id, self.writer_id, self.rendition) + self.name()

    def metadata(self) -> dict[str, str]:
        """The object metadata a writer stores with the segment (the same facts as its name)."""
        meta = {"discontinuity": "1" if self.discontinuity else "0"}
        if self.duration_ms is not None:
            meta["duration-ms"] = str(self.duration_ms)
        if self.pdt_ms is not None:
            meta["pdt-ms"] = str(self.pdt_ms)
        return meta


def export_state_key(session_id: str, export_id: str) -> str:
    return f"{EXPORT_STATE_PREFIX}{check_id('sessionId', session_id)}/{check_id('exportId', export_id)}.json"


def export_media_prefix(output_prefix: str, session_id: str) -> str:
    """Where a session's MP4 exports live under an output prefix (public or private)."""
    return f"{output_prefix}{EXPORT_MEDIA_DIR}/{check_id('sessionId', session_id)}/"


def export_media_key(output_prefix: str, session_id: str, export_id: str) -> str:
    return f"{export_media_prefix(output_prefix, session_id)}{check_id('exportId', export_id)}.mp4"


def stream_prefix(stream_id: str) -> str:
    return f"{ROOT}{check_id('streamId', stream_id)}/"


def session_prefix(stream_id: str, session_id: str) -> str:
    return f"{stream_prefix(stream_id)}{check_id('sessionId', session_id)}/"


def writer_prefix(stream_id: str, session_id: str, writer_id: str) -> str:
    return f"{session_prefix(stream_id, session_id)}{check_id('writerId', writer_id)}/"


def rendition_prefix(stream_id: str, session_id: str, writer_id: str, rendition: str) -> str:
    return f"{writer_prefix(stream_id, session_id, writer_id)}{check_id('rendition', rendition)}/"


def manifest_session_prefix(stream_id: str, session_id: str) -> str:
    """Where every chunk manifest of a session lives (all writers, all renditions)."""
    return f"{MANIFEST_ROOT}{session_prefix(stream_id, session_id)[len(ROOT) :]}"


def manifest_key(stream_id: str, session_id: str, writer_id: str, rendition: str, chunk: int) -> str:
    if chunk < 0:
        raise ValueError("a chunk number is not negative")
    base = rendition_prefix(stream_id, session_id, writer_id, rendition)[len(ROOT) :]
    return f"{MANIFEST_ROOT}{base}{chunk:0{CHUNK_DIGITS}d}.json"


def segment_name(seq: int, duration_ms: int | None, pdt_ms: int | None, discontinuity: bool = False) -> str:
    if seq < 0 or seq >= 10**SEQ_DIGITS:
        raise ValueError(f"segment sequence {seq} is out of range")
    if duration_ms is None or pdt_ms is None:
        if discontinuity:
            raise ValueError("a discontinuity needs the extended name (duration and program date-time)")
        return f"{seq:0{SEQ_DIGITS}d}{SEGMENT_EXT}"
    if not 0 < duration_ms < 10**9 or not 0 <= pdt_ms < 10**15:
        raise ValueError(f"segment duration {duration_ms} ms or time {pdt_ms} ms is out of range")
    return f"{seq:0{SEQ_DIGITS}d}_{duration_ms}_{pdt_ms}{'_d' if discontinuity else ''}{SEGMENT_EXT}"


def segment_key(
    stream_id: str,
    session_id: str,
    writer_id: str,
    rendition: str,
    seq: int,
    *,
    duration_ms: int,
    pdt_ms: int,
    discontinuity: bool = False,
) -> SegmentKey:
    seg = SegmentKey(stream_id, session_id, writer_id, rendition, seq, duration_ms, pdt_ms, discontinuity)
    seg.key()  # checks every part
    return seg


@dataclass(frozen=True, slots=True)
class ManifestKey:
    stream_id: str
    session_id: str
    writer_id: str
    rendition: str
    chunk: int


def parse_key(key: str) -> SegmentKey | ManifestKey | None:
    """A recording key -> what it names; None for anything else (fixup skips and counts those)."""
    if key.startswith(MANIFEST_ROOT):
        parts = key[len(MANIFEST_ROOT) :].split("/")
        m = _CHUNK.match(parts[-1]) if len(parts) == 5 else None
        if not m or not _ids_ok(*parts[:4]):
            return None
        return ManifestKey(parts[0], parts[1], parts[2], parts[3], int(m["chunk"]))
    if not key.startswith(ROOT):
        return None
    parts = key[len(ROOT) :].split("/")
    if len(parts) == 5:
        stream_id, session_id, writer_id, rendition, name = parts
        m = _SEGMENT.match(name)
        if not m or not _ids_ok(stream_id, session_id, writer_id, rendition):
            return None
        seq = int(m["seq"])
        if seq >= 10**SEQ_DIGITS:
            return None
        dur = int(m["dur"]) if m["dur"] is not None else None
        if dur == 0:
            return None
        pdt = int(m["pdt"]) if m["pdt"] is not None else None
        return SegmentKey(stream_id, session_id, writer_id, rendition, seq, dur, pdt, bool(m["disc"]))
    return None


def parse_segment_name(name: str) -> tuple[int, int | None, int | None, bool] | None:
    """A segment's file name -> (seq, durationMs, pdtMs, discontinuity); None when malformed.

    The fast path of ``parse_key`` for listings of one known session prefix."""
    m = _SEGMENT.match(name)
    if not m:
        return None
    seq = int(m["seq"])
    dur = m["dur"]
    if seq >= 10**SEQ_DIGITS or dur == "0" or (dur is not None and not dur.strip("0")):
        return None
    return (
        seq,
        int(dur) if dur is not None else None,
        int(m["pdt"]) if m["pdt"] is not None else None,
        bool(m["disc"]),
    )


def _ids_ok(*ids: str) -> bool:
    return all(_ID.match(i) and i not in {".", ".."} for i in ids)


__all__ = [
    "EXPORT_MEDIA_DIR",
    "EXPORT_METADATA",
    "EXPORT_STATE_PREFIX",
    "MANIFEST_CONTENT_TYPE",
    "ROOT",
    "SEGMENT_CONTENT_TYPE",
    "ManifestKey",
    "SegmentKey",
    "check_id",
    "export_media_key",
    "export_media_prefix",
    "export_state_key",
    "manifest_key",
    "manifest_session_prefix",
    "parse_key",
    "parse_segment_name",
    "rendition_prefix",
    "segment_key",
    "segment_name",
    "session_prefix",
    "stream_prefix",
    "writer_prefix",
]
