"""Synthetic recordings for the recording tests: segments written as the recorder writes them."""

from __future__ import annotations

import posixpath

from reelay.catalogue.memory import MemoryCatalogue
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


def finalized_recording(store: ObjectStore, *, seqs: range = range(0, 6)) -> tuple[MemoryCatalogue, str, str]:
    """A recording of stream ``cam1`` finalized by the real workflow into ``store``, with two
    renditions and an MP4 export beside it: (catalogue, session id, video id). The video is unlisted,
    as a recording's video starts."""
    from reelay.recording.runner import WorkflowRunner
    from reelay.recording.steps import StepContext

    catalogue = MemoryCatalogue()
    catalogue.create_stream(stream("cam1"))
    session, _ = catalogue.start_recording_session("cam1", "w1")
    record(store, "cam1", session.session_id, "w1", ("source", "360p"), seqs)
    catalogue.end_recording_session(session.session_id)
    out = WorkflowRunner(StepContext(catalogue=catalogue, media_store=store)).start(session.session_id)
    assert out["status"] == "ready", out
    store.put_bytes(
        layout.export_media_key("outputs/", session.session_id, "e1"), b"mp4", content_type="video/mp4"
    )
    return catalogue, session.session_id, out["videoId"]


def playlist_targets(store: ObjectStore, playlist_key: str) -> list[str]:
    """The store keys a playlist's URIs name, resolved against the playlist as a player resolves them."""
    base = posixpath.dirname(playlist_key)
    return [
        posixpath.normpath(posixpath.join(base, line.strip()))
        for line in store.get_bytes(playlist_key).decode().splitlines()
        if line.strip() and not line.startswith("#")
    ]
