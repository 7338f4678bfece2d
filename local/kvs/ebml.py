"""A small incremental EBML/Matroska reader: just enough to split a PutMedia body into fragments.

A KVS PutMedia body is an MKV stream: an EBML header, a Segment of unknown size, its Info and Tracks,
then one Cluster per fragment (also of unknown size, so a Cluster ends where the next level-1 element
starts) and, at EOS, a Tags element holding ``AWS_KINESISVIDEO_END_OF_FRAGMENT``. After a reconnect the
same body may start over with a new EBML header.

:class:`MkvSplitter` is fed bytes as they arrive and returns events; it never needs the whole body.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EBML = 0x1A45DFA3
SEGMENT = 0x18538067
CLUSTER = 0x1F43B675
TIMECODE = 0xE7
TAGS = 0x1254C367
# Level-1 (Segment children) element ids: seeing one ends an unknown-size Cluster.
LEVEL1 = {
    0x114D9B74,  # SeekHead
    0x1549A966,  # Info
    0x1654AE6B,  # Tracks
    CLUSTER,
    0x1C53BB6B,  # Cues
    0x1941A469,  # Attachments
    0x1043A770,  # Chapters
    TAGS,
}
UNKNOWN_SIZE = -1
END_OF_FRAGMENT_TAG = b"AWS_KINESISVIDEO_END_OF_FRAGMENT"
# A Segment of unknown size, as the stored headers use it (so header + clusters concatenate).
SEGMENT_UNKNOWN_SIZE = bytes.fromhex("18538067") + bytes.fromhex("01FFFFFFFFFFFFFF")
MAX_ELEMENT = 64 * 1024 * 1024  # anything bigger than this in one element is garbage, not video


class InvalidMkv(ValueError):
    """The body is not MKV as KVS accepts it (KVS answers ErrorId 4006)."""


def read_id(buf: bytes | memoryview, pos: int) -> tuple[int, int] | None:
    """An element id (marker bits kept, as ids are written) and its length; None if more bytes needed."""
    if pos >= len(buf):
        return None
    first = buf[pos]
    length = _vint_length(first, max_length=4)
    if pos + length > len(buf):
        return None
    return int.from_bytes(buf[pos : pos + length], "big"), length


def read_size(buf: bytes | memoryview, pos: int) -> tuple[int, int] | None:
    """An element data size (UNKNOWN_SIZE when all value bits are 1) and its length; None if short."""
    if pos >= len(buf):
        return None
    first = buf[pos]
    length = _vint_length(first, max_length=8)
    if pos + length > len(buf):
        return None
    value = int.from_bytes(buf[pos : pos + length], "big") & ((1 << (7 * length)) - 1)
    if value == (1 << (7 * length)) - 1:
        return UNKNOWN_SIZE, length
    return value, length


def _vint_length(first: int, *, max_length: int) -> int:
    for length in range(1, max_length + 1):
        if first & (0x80 >> (length - 1)):
            return length
    raise InvalidMkv(f"invalid EBML variable-size integer starting with 0x{first:02x}")


def read_uint(data: bytes) -> int:
    return int.from_bytes(data, "big") if data else 0


def is_end_of_fragment(tags_payload: bytes) -> bool:
    """Whether a Tags element carries kvssink's AWS_KINESISVIDEO_END_OF_FRAGMENT (sent at EOS)."""
    return END_OF_FRAGMENT_TAG in tags_payload


# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """A complete stream header: EBML header + Segment (re-sized to unknown) + Info/Tracks/..."""

    data: bytes


@dataclass(frozen=True)
class ClusterStarted:
    """A Cluster's Timecode has been read: KVS answers BUFFERING for it."""

    timecode: int


@dataclass(frozen=True)
class ClusterEnded:
    """A whole Cluster (one fragment), raw bytes as received."""

    timecode: int
    data: bytes


@dataclass(frozen=True)
class EndOfFragment:
    """The Tags element kvssink sends at EOS, after the last Cluster."""


Event = Header | ClusterStarted | ClusterEnded | EndOfFragment


@dataclass
class _Cluster:
    raw: bytearray
    remaining: int | None  # bytes of payload left for a sized cluster; None for unknown size
    timecode: int | None = None


@dataclass
class MkvSplitter:
    """Feed bytes with :meth:`feed`; get :data:`Event` lists back. :meth:`close` flushes the last Cluster.

    Raises :class:`InvalidMkv` when the body does not start with an EBML header or is malformed."""

    _buf: bytearray = field(default_factory=bytearray)
    _started: bool = False
    _in_segment: bool = False
    _header: bytearray | None = None  # being assembled until the first Cluster
    _cluster: _Cluster | None = None

    def feed(self, data: bytes) -> list[Event]:
        self._buf += data
        events: list[Event] = []
        while self._step(events):
            pass
        return events

    def close(self) -> list[Event]:
        """End of body: a Cluster still open (unknown size) is complete now."""
        events: list[Event] = []
        if self._cluster is not None and self._cluster.remaining is None:
            self._end_cluster(events)
        return events

    def _step(self, events: list[Event]) -> bool:
        buf = self._buf
        got_id = read_id(buf, 0)
        if got_id is None:
            return False
        element_id, id_len = got_id
        if not self._started and element_id != EBML:
            raise InvalidMkv(f"the body does not start with an EBML header (0x{element_id:x})")
        got_size = read_size(buf, id_len)
        if got_size is None:
            return False
        size, size_len = got_size
        head = id_len + size_len
        if size > MAX_ELEMENT:
            raise InvalidMkv(f"element 0x{element_id:x} claims {size} bytes")

        cluster = self._cluster
        if cluster is not None:
            ends_here = cluster.remaining == 0 or (
                cluster.remaining is None and (element_id in LEVEL1 or element_id == EBML)
            )
            if ends_here:
                self._end_cluster(events)
                return True
            # A child of the Cluster: wait for all of it, keep its bytes.
            if size == UNKNOWN_SIZE:
                raise InvalidMkv(f"unsized element 0x{element_id:x} inside a Cluster")
            if len(buf) < head + size:
                return False
            chunk = bytes(buf[: head + size])
            del buf[: head + size]
            cluster.raw += chunk
            if cluster.remaining is not None:
                cluster.remaining -= len(chunk)
                if cluster.remaining < 0:
                    raise InvalidMkv("a Cluster child overruns its Cluster")
            if element_id == TIMECODE and cluster.timecode is None:
                cluster.timecode = read_uint(chunk[head:])
                events.append(ClusterStarted(cluster.timecode))
            if cluster.remaining == 0:
                self._end_cluster(events)
            return True

        if element_id == EBML:
            if size == UNKNOWN_SIZE:
                raise InvalidMkv("an EBML header of unknown size")
            if len(buf) < head + size:
                return False
            self._started, self._in_segment = True, False
            self._header = bytearray(buf[: head + size])
            del buf[: head + size]
            return True
        if element_id == SEGMENT:
            if self._header is None:
                raise InvalidMkv("a Segment without an EBML header")
            # Enter it without reading it: its children follow at level 1.
            self._header += SEGMENT_UNKNOWN_SIZE
            self._in_segment = True
            del buf[:head]
            return True
        if not self._in_segment:
            raise InvalidMkv(f"element 0x{element_id:x} outside a Segment")
        if element_id == CLUSTER:
            if self._header is not None:
                events.append(Header(bytes(self._header)))
                self._header = None
            self._cluster = _Cluster(
                raw=bytearray(buf[:head]), remaining=None if size == UNKNOWN_SIZE else size
            )
            del buf[:head]
            return True
        # Any other level-1 element: read it whole.
        if size == UNKNOWN_SIZE:
            raise InvalidMkv(f"unsized element 0x{element_id:x} in the Segment")
        if len(buf) < head + size:
            return False
        chunk = bytes(buf[: head + size])
        del buf[: head + size]
        if self._header is not None:
            self._header += chunk
        elif element_id == TAGS and is_end_of_fragment(chunk[head:]):
            events.append(EndOfFragment())
        return True

    def _end_cluster(self, events: list[Event]) -> None:
        cluster = self._cluster
        self._cluster = None
        if cluster is None:
            return
        if cluster.timecode is None:
            raise InvalidMkv("a Cluster without a Timecode")
        events.append(ClusterEnded(cluster.timecode, bytes(cluster.raw)))
