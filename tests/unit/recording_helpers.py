"""Synthetic recordings for the recording tests: segments written as the recorder writes them."""

from __future__ import annotations

from reelay.models import SourceProtocol, Stream
from reelay.ports import ObjectStore
from reelay.recording import layout
from reelay.recording.manifests import ManifestWriter, write_segment

T0_MS = 1_780_000_000_000  # 2026-05-28 in epoch ms


def record(
    store: ObjectStore,
    stream_id: str,
    session_id: str,
    writer_id: str,
    renditions: tuple[str, ...],
    seqs: range,
    *,
    duration_ms: int = 2000,
    discontinuity_at: tuple[int, ...] = (),
    t0_ms: int = T0_MS,
    chunk_size: int = 4,
    payload: bytes = b"x" * 188,
) -> list[layout.SegmentKey]:
    """Write segments ``seqs`` of every rendition as one writer would, with its rolling manifests."""
    out = []
    writers = {r: ManifestWriter(store, stream_id, session_id, writer_id, r, chunk_size) for r in renditions}
    for seq in seqs:
        for r in renditions:
            seg = layout.segment_key(
                stream_id,
                session_id,
                writer_id,
                r,
                seq,
                duration_ms=duration_ms,
                pdt_ms=t0_ms + seq * duration_ms,
                discontinuity=seq in discontinuity_at,
            )
            write_segment(store, seg, payload)
            writers[r].append(seg)
            out.append(seg)
    return out


def stream(stream_id: str, owner: str = "op-1") -> Stream:
    return Stream(
        stream_id=stream_id,
        owner_id=owner,
        name="Gate camera",
        source_url="rtsp://cam/live",
        source_protocol=SourceProtocol.RTSP,
        kvs_stream_name=f"reelay-{stream_id}",
    )
