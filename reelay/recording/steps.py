"""The finalize/fixup steps: each a function of (state dict, context) -> state dict.

Step Functions passes the JSON state between Lambda invocations; the local runner passes the same
dict in-process. The state stays small (ids and counts, never segment lists): Step Functions caps it
at 256 KB. Every step is idempotent, so a retried step or a re-run workflow is safe:

- ``begin``: session -> finalizing under this execution (``done`` when it is already ready);
- ``merge``: list the session's segments (every writer, the listing alone: the key names carry
  duration and time, see ``layout``), merge them, write the VOD playlists and the master;
- ``export_mp4``: optional, the MP4 of the recording (an ECS task in AWS, a subprocess locally);
- ``register``: the catalogue video, ``source: recording``, owned by the stream's owner;
- ``cleanup``: delete the chunk manifests and the segments duplicate writers made;
- ``ready``: session -> ready with its video; emits recording.ready;
- ``failed``: the catch target: session -> failed with the reason; emits recording.failed.

The export workflow (``RECORDING_EXPORT_WORKFLOW``, a time range of a ready recording as MP4):

- ``export_range``: the MP4 (an ECS task in AWS, a subprocess locally); its output is not kept, as
  the ECS step's is not (``ResultPath: DISCARD``);
- ``export_ready``: one HEAD of the MP4 (size, and the duration the task put in its metadata) ->
  the export's state JSON says ready;
- ``export_failed``: the catch target: the export's state JSON says failed, with the reason.

Fixup is the same steps with ``mode: fixup``: nothing here reads a manifest, so a session whose
writer died mid-way gives the same video as a clean finalize.

Where the VOD lives: playlists go to the media store at ``outputs/{videoId}/`` (the playback path
of uploads, so ``GET /videos/{id}`` gives the same kind of playback URL); the segments stay where the
recorder wrote them, in the media store's ``recordings/`` prefix, referenced by relative URIs
(``../../../recordings/...``), which the playback path also serves. Copying 432,000 segments would
cost hours of requests; referencing them costs nothing. A session recorded to another store (a
per-stream store) has its kept segments copied into the media store under the same keys first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reelay.errors import Conflict, NotFound, ReelayError
from reelay.events import media_relocation
from reelay.media import hls
from reelay.models import (
    RecordingState,
    Rendition,
    Video,
    VideoSource,
    VideoStatus,
    VideoVisibility,
    utcnow,
)
from reelay.observability import logger
from reelay.ports import ObjectStore
from reelay.recording import layout
from reelay.recording.layout import SegmentKey
from reelay.recording.merge import (
    Entry,
    Merged,
    Row,
    merge_entries,
    peak_bit_rate,
    render_playlist,
    target_duration,
)

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
PLAYLIST_CACHE = "public, max-age=60"
DEFAULT_STORE = "default"
# What the recorder writes unless told otherwise (H.264 High + AAC-LC), for renditions it did not name.
DEFAULT_CODECS = "avc1.640028,mp4a.40.2"

State = dict[str, Any]
# (store_ref, session id) -> the store the session recorded to (``reelay.recording.resolver``)
StoreResolver = Callable[[str, str], ObjectStore]


class PermanentStepError(ReelayError):
    """A step that retrying cannot fix: straight to ``failed``."""

    status, code = 422, "recording_failed"


class TransientStepError(ReelayError):
    """A step worth retrying (the workflow's Retry matches this name)."""

    status, code = 503, "recording_retry"


@dataclass
class StepContext:
    """What the steps need, built by the Lambda handler or the local platform."""

    catalogue: Any  # RecordingCatalogue + VideoCatalogue + StreamCatalogue
    media_store: ObjectStore
    output_prefix: str = "outputs/"
    segment_seconds: int = 2
    open_store: StoreResolver | None = None  # store_ref -> store; "default" is the media store
    export: Callable[[State], State] | None = None  # the MP4 export (subprocess or ECS), see export_mp4
    flush_events: Callable[[str], None] | None = None  # publish a subject's outbox events now
    extras: dict[str, Any] = field(default_factory=dict)

    def store_for(self, ref: str, session_id: str) -> ObjectStore:
        if ref == DEFAULT_STORE:
            return self.media_store
        if self.open_store is None:
            raise PermanentStepError(f"no resolver for the recording store {ref!r} is configured")
        return self.open_store(ref, session_id)


def video_id_for(session_id: str) -> str:
    """The recording's video id, derived so a re-run registers the same video."""
    vid = f"rec-{session_id}"
    return vid if len(vid) <= 64 else "rec-" + hashlib.sha256(session_id.encode()).hexdigest()[:40]


def _live(state: State) -> bool:
    return not state.get("done")


# --- listing ---------------------------------------------------------------------------------------
class Columns:
    """One rendition's listed rows as parallel arrays: ~34 bytes a segment instead of ~200 as tuples."""

    def __init__(self) -> None:
        self.seq = array("q")
        self.dur = array("q")
        self.pdt = array("q")
        self.size = array("q")
        self.flags = array("B")  # the key's discontinuity flag
        self.writer = array("H")

    def add(self, seq: int, dur: int, pdt: int, disc: bool, writer: int, size: int) -> None:
        self.seq.append(seq)
        self.dur.append(dur)
        self.pdt.append(pdt)
        self.flags.append(1 if disc else 0)
        self.writer.append(writer)
        self.size.append(size)

    def rows(self) -> list[Row]:
        return list(zip(self.seq, self.dur, self.pdt, self.flags, self.writer, self.size, strict=True))

    def __len__(self) -> int:
        return len(self.seq)


@dataclass
class Listing:
    """A session's segments per rendition in compact arrays (a 48 h x 5 session fits in tens of MB)."""

    writers: list[str] = field(default_factory=list)
    columns: dict[str, Columns] = field(default_factory=dict)
    skipped: int = 0
    plain: int = 0  # contract keys without duration (``{seq}.ts``): kept out, counted
    requests: int = 0  # S3 ListObjectsV2 requests this listing costs (1000 keys each)

    def merged(self, rendition: str) -> Merged:
        return merge_entries(self.columns[rendition].rows(), self.writers)


def list_session(store: ObjectStore, stream_id: str, session_id: str) -> Listing:
    """One listing of the session prefix; key names alone give every segment's facts."""
    out = Listing()
    prefix = layout.session_prefix(stream_id, session_id)
    places: dict[str, tuple[int, Columns] | None] = {}  # "writer/rendition/" -> where its rows go
    seen = 0
    for info in store.list(prefix):
        seen += 1
        rest = info.key[len(prefix) :]
        cut = rest.rfind("/") + 1
        place = rest[:cut]
        if place in places:
            target = places[place]
        else:
            target = places[place] = _place(out, stream_id, session_id, place)
        parsed = layout.parse_segment_name(rest[cut:]) if target is not None else None
        if parsed is None:
            out.skipped += 1
            continue
        seq, dur, pdt, disc = parsed
        if dur is None or pdt is None:
            out.plain += 1
            continue
        assert target is not None
        target[1].add(seq, dur, pdt, disc, target[0], info.size)
    out.requests = max(1, -(-seen // 1000))
    return out


def _place(out: Listing, stream_id: str, session_id: str, place: str) -> tuple[int, Columns] | None:
    parts = place.split("/")
    if len(parts) != 3:
        return None
    writer, rendition = parts[0], parts[1]
    try:
        layout.rendition_prefix(stream_id, session_id, writer, rendition)
    except ValueError:
        return None
    if writer not in out.writers:
        out.writers.append(writer)
    return out.writers.index(writer), out.columns.setdefault(rendition, Columns())


def _segment_key(state: State, rendition: str, writers: list[str], e: Entry) -> str:
    seg = SegmentKey(
        state["streamId"], state["sessionId"], writers[e[4]], rendition, e[0], e[1], e[2], bool(e[6])
    )
    return seg.key()


# --- the steps ---------------------------------------------------------------------------------------
def begin(state: State, ctx: StepContext) -> State:
    session_id = state["sessionId"]
    execution = state["executionId"]
    mode = state.get("mode", "finalize")
    session = ctx.catalogue.get_recording_session(session_id)
    if session.state == RecordingState.READY:
        return {**state, "done": True, "videoId": session.video_id, "streamId": session.stream_id}
    if not ctx.catalogue.begin_recording_workflow(session_id, execution, mode=mode):
        raise PermanentStepError(f"session {session_id} is being finalized by another execution")
    try:
        owner = ctx.catalogue.get_stream(session.stream_id).owner_id
        name = ctx.catalogue.get_stream(session.stream_id).name
    except NotFound:
        owner, name = state.get("ownerId") or "unknown", "deleted stream"
    return {
        **state,
        "mode": mode,
        "streamId": session.stream_id,
        "storeRef": session.store_ref,
        "ownerId": owner,
        "streamName": name,
        "startedAt": session.started_at.isoformat(timespec="milliseconds") + "Z",
        "videoId": video_id_for(session_id),
        "mp4Key": f"{ctx.output_prefix}{video_id_for(session_id)}/recording.mp4",
        "known": [r.model_dump() for r in session.renditions],
    }


def merge(state: State, ctx: StepContext) -> State:
    if not _live(state):
        return state
    _mark(ctx, state, "merge")
    store = ctx.store_for(state["storeRef"], state["sessionId"])
    listing = list_session(store, state["streamId"], state["sessionId"])
    if not any(len(c) for c in listing.columns.values()):
        raise PermanentStepError(f"session {state['sessionId']} has no segments in its store")
    known = {r["name"]: Rendition(**r) for r in state.get("known", [])}
    prefix = f"{ctx.output_prefix}{state['videoId']}/"
    up = "../" * (prefix.count("/") + 1)
    renditions: list[Rendition] = []
    totals = {"segments": 0, "duplicates": 0, "gaps": 0}
    longest = (0, 0)  # (duration ms, discontinuities) of the longest rendition
    for name in sorted(listing.columns):
        m = listing.merged(name)
        listing.columns.pop(name)  # one rendition in memory at a time
        bases = [layout.rendition_prefix(state["streamId"], state["sessionId"], w, name) for w in m.writers]

        def key_of(e: Entry, bases: list[str] = bases) -> str:
            return bases[e[4]] + layout.segment_name(e[0], e[1], e[2], bool(e[6]))

        if store is not ctx.media_store:
            _copy(store, ctx.media_store, [key_of(e) for e in m.entries])

        def uri(e: Entry, key_of: Callable[[Entry], str] = key_of) -> str:
            return up + key_of(e)

        body = render_playlist(m.entries, uri, target=ctx.segment_seconds)
        ctx.media_store.put_bytes(
            f"{prefix}{name}/index.m3u8",
            body.encode(),
            content_type=PLAYLIST_TYPE,
            cache_control=PLAYLIST_CACHE,
        )
        target = target_duration(m.entries, ctx.segment_seconds)
        peak = peak_bit_rate(m.entries, target)
        seconds = m.duration_ms / 1000
        average = int(sum(e[5] for e in m.entries) * 8 / seconds) if seconds else 0
        base = known.get(name)
        renditions.append(
            Rendition(
                name=name,
                width=base.width if base else 0,
                height=base.height if base else 0,
                bandwidth=max(peak, 1),
                average_bandwidth=max(average, 1),
                codecs=base.codecs if base and base.codecs else DEFAULT_CODECS,
                playlist=f"{name}/index.m3u8",
            )
        )
        totals["segments"] += len(m.entries)
        totals["duplicates"] += len(m.duplicates)
        totals["gaps"] += m.gaps
        longest = max(longest, (m.duration_ms, m.discontinuities))
    ctx.media_store.put_bytes(
        f"{prefix}master.m3u8",
        hls.write_master(renditions).encode(),
        content_type=PLAYLIST_TYPE,
        cache_control=PLAYLIST_CACHE,
    )
    return {
        **state,
        "renditions": [r.model_dump() for r in renditions],
        "durationSeconds": longest[0] / 1000,
        **totals,
        "discontinuities": longest[1],
        "skipped": listing.skipped + listing.plain,
        "listRequests": listing.requests,
        "writers": len(listing.writers),
        "writerIds": listing.writers,
        "renditionNames": [r.name for r in renditions],
        # The MP4 is made from the passthrough rendition when there is one, else the best.
        "exportRendition": "source"
        if any(r.name == "source" for r in renditions)
        else max(renditions, key=lambda r: r.bandwidth).name,
    }


def _copy(src: ObjectStore, dst: ObjectStore, keys: list[str]) -> None:
    for key in keys:
        if dst.head(key) is None:
            dst.put_bytes(key, src.get_bytes(key), content_type=layout.SEGMENT_CONTENT_TYPE)


def export_mp4(state: State, ctx: StepContext) -> State:
    if not _live(state) or not state.get("mp4"):
        return state
    _mark(ctx, state, "export_mp4")
    if ctx.export is None:
        raise PermanentStepError("no MP4 exporter is configured")
    return ctx.export(state)


def subprocess_exporter(
    *, env: dict[str, str] | None = None, timeout_seconds: float = 6 * 3600
) -> Callable[[State], State]:
    """The local ``ExportMp4``: the ECS task's entry point (``transcoder/export.py``) as a child process."""

    def run(state: State) -> State:
        argv = [sys.executable, "-m", "transcoder.export", "--state", json.dumps(state)]
        done = subprocess.run(
            argv, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout_seconds
        )
        if done.returncode != 0:
            raise PermanentStepError((done.stderr.strip().splitlines() or ["MP4 export failed"])[-1])
        result = json.loads(done.stdout.strip().splitlines()[-1])
        return {**state, "mp4Key": result["key"], "mp4Bytes": result["sizeBytes"]}

    return run


def register(state: State, ctx: StepContext) -> State:
    if not _live(state):
        return state
    _mark(ctx, state, "register")
    video = Video(
        video_id=state["videoId"],
        video_key=layout.session_prefix(state["streamId"], state["sessionId"]),
        display_name=f"{state.get('streamName') or 'Stream'} recording {state.get('startedAt', '')}"[:255],
        description=f"Recorded from stream {state['streamId']} (session {state['sessionId']}).",
        owner_id=state["ownerId"],
        # The seed's email column is required; a stream carries no email, so the owner stands in.
        email=f"{state['ownerId']}@recordings.invalid"[:320],
        status=VideoStatus.READY,
        progress=100,
        playable=True,
        is_transcoded=True,
        duration_seconds=state["durationSeconds"],
        renditions=[Rendition(**r) for r in state["renditions"]],
        source=VideoSource.RECORDING,
        # A camera's recording is not published to everyone: playable by whoever has its link (the
        # operator, who may make it private or public like any video), and not in the public list.
        visibility=VideoVisibility.UNLISTED,
        content_type="application/vnd.apple.mpegurl",
    )
    with contextlib.suppress(Conflict):  # registered by an earlier run of this workflow
        ctx.catalogue.create(video)
    return state


def cleanup(state: State, ctx: StepContext) -> State:
    """Chunk manifests and duplicate writers' segments go; the kept segments stay (they are the video).

    Manifests go by their session's prefix. Duplicates need the merge again, recomputed from the
    listing only when merge found some: its choice of copies does not change when losing copies are
    deleted, so this is safe to repeat."""
    if not _live(state):
        return state
    _mark(ctx, state, "cleanup")
    store = ctx.store_for(state["storeRef"], state["sessionId"])
    deleted = 0
    deleted += store.delete_prefix(layout.manifest_session_prefix(state["streamId"], state["sessionId"]))
    if state.get("duplicates"):
        listing = list_session(store, state["streamId"], state["sessionId"])
        for name in list(listing.columns):
            m = listing.merged(name)
            losing = set(m.duplicates)
            for e in listing.columns[name].rows():
                if (e[4], e[0]) in losing:
                    losing.discard((e[4], e[0]))
                    store.delete(_segment_key(state, name, listing.writers, (*e, e[3])))
                    deleted += 1
    return {**state, "deleted": state.get("deleted", 0) + deleted}


def ready(state: State, ctx: StepContext) -> State:
    if not _live(state):
        return state
    ctx.catalogue.complete_recording_session(
        state["sessionId"],
        state["executionId"],
        video_id=state["videoId"],
        duration_seconds=state["durationSeconds"],
        renditions=[Rendition(**r) for r in state["renditions"]],
        discontinuities=state.get("discontinuities", 0),
    )
    _flush(ctx, state)
    return {**state, "status": "ready"}


def failed(state: State, ctx: StepContext) -> State:
    error = state.get("error") or {}
    reason = f"{error.get('Error', 'Error')}: {error.get('Cause', 'the workflow failed')}"[:2000]
    with contextlib.suppress(NotFound):
        ctx.catalogue.fail_recording_session(
            state["sessionId"], reason, execution_id=state.get("executionId")
        )
    _flush(ctx, state)
    logger.error("recording workflow failed", extra={"sessionId": state.get("sessionId"), "reason": reason})
    return {**state, "status": "failed", "failureReason": reason}


def _mark(ctx: StepContext, state: State, step: str) -> None:
    ctx.catalogue.set_recording_workflow_state(state["sessionId"], state["executionId"], step)


def _flush(ctx: StepContext, state: State) -> None:
    if ctx.flush_events is not None:
        ctx.flush_events(f"recording:{state['sessionId']}")


# --- the export workflow ------------------------------------------------------------------------------
def iso_now() -> str:
    return utcnow().isoformat(timespec="milliseconds") + "Z"


def put_export_record(store: ObjectStore, record: dict[str, Any]) -> None:
    """An export's state JSON (``layout.export_state_key``): what ``GET …/exports/{id}`` answers."""
    store.put_bytes(
        layout.export_state_key(record["sessionId"], record["exportId"]),
        json.dumps(record).encode(),
        content_type="application/json",
    )


def export_range(state: State, ctx: StepContext) -> State:
    if ctx.export is None:
        raise PermanentStepError("no MP4 exporter is configured")
    ctx.export(state)
    return state  # as Step Functions passes it on: the task's output is discarded


def export_ready(state: State, ctx: StepContext) -> State:
    info = ctx.media_store.head(state["mp4Key"])
    if info is None:
        raise PermanentStepError("the export task ended without writing the MP4")
    # The recording turned private (or public) while it exported: the MP4 is where its visibility
    # was. The move that follows its visibility finds it there (reelay.media_location); this asks
    # for one, acted on by the outbox sweep.
    with contextlib.suppress(NotFound):
        private = ctx.catalogue.get(state["videoId"]).owner_only
        if state["mp4Key"].startswith(ctx.output_prefix) == private:
            ctx.catalogue.record_event(media_relocation(state["videoId"]))
    duration_ms = info.metadata.get("duration-ms", "")
    seconds = int(duration_ms) / 1000 if duration_ms.isdigit() else None
    put_export_record(
        ctx.media_store,
        {
            **state["export"],
            "state": "ready",
            "key": state["mp4Key"],
            "durationSeconds": seconds,
            "sizeBytes": info.size,
            "updatedAt": iso_now(),
        },
    )
    logger.info("recording export ready", extra={"exportId": state["exportId"], "sizeBytes": info.size})
    return {**state, "status": "ready"}


def export_failed(state: State, ctx: StepContext) -> State:
    # The export task writes its own reason when it fails (transcoder/export.py): Step Functions only
    # knows that its container exited. Otherwise (the task never ran, a Lambda step failed) the error.
    reason = _reason_written(ctx.media_store, state) or failure_reason(state.get("error") or {})
    put_export_record(
        ctx.media_store,
        {**state["export"], "state": "failed", "failureReason": reason, "updatedAt": iso_now()},
    )
    logger.error("recording export failed", extra={"exportId": state.get("exportId"), "reason": reason})
    return {**state, "status": "failed", "failureReason": reason}


def _reason_written(store: ObjectStore, state: State) -> str | None:
    key = layout.export_state_key(state["sessionId"], state["exportId"])
    try:
        if store.head(key) is None:
            return None
        record = json.loads(store.get_bytes(key))
    except Exception:  # an unreadable record: the error's reason will do
        logger.warning("export state not read", extra={"exportId": state["exportId"]})
        return None
    told = (
        record.get("failureReason") if isinstance(record, dict) and record.get("state") == "failed" else None
    )
    return str(told) if told else None


def failure_reason(error: dict[str, Any]) -> str:
    """A caught error as one line. Step Functions gives an ECS task's failure as the stopped task's
    description (JSON) under Cause: that says which container stopped, why and with what exit code
    (the export's own message is in its log); a Lambda step's Cause is its error's JSON."""
    name = str(error.get("Error") or "Error")
    cause = str(error.get("Cause") or "the export failed")
    try:
        parsed = json.loads(cause)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and "Containers" in parsed:
        parts = [str(parsed.get("StoppedReason") or "the export task stopped")]
        for c in parsed.get("Containers") or []:
            if c.get("ExitCode") not in (None, 0):
                parts.append(f"exit code {c['ExitCode']}")
            if c.get("Reason"):
                parts.append(str(c["Reason"]))
        cause = "; ".join(parts) + " (the export task's log has its message)"
    elif isinstance(parsed, dict) and parsed.get("errorMessage"):
        cause = str(parsed["errorMessage"])
    return f"{name}: {cause}"[:2000]


HANDLERS: dict[str, Callable[[State, StepContext], State]] = {
    "begin": begin,
    "merge": merge,
    "export_mp4": export_mp4,
    "register": register,
    "cleanup": cleanup,
    "ready": ready,
    "failed": failed,
    "export_range": export_range,
    "export_ready": export_ready,
    "export_failed": export_failed,
}
