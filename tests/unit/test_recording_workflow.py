from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from reelay.catalogue.memory import MemoryCatalogue
from reelay.media.hls import parse_master_playlist, parse_media_playlist
from reelay.models import (
    RecordingState,
    Rendition,
    VideoSource,
    VideoStatus,
    VideoVisibility,
    recording_subject,
)
from reelay.recording import steps
from reelay.recording.runner import WorkflowRunner
from reelay.recording.steps import StepContext, TransientStepError
from reelay.recording.workflow import RECORDING_WORKFLOW
from tests.fakes import FakeStore
from tests.unit.recording_helpers import record, stream

T0 = datetime(2026, 5, 28, 20, 0, 0)
R = (
    Rendition(
        name="source", width=640, height=360, bandwidth=0, codecs="avc1.64001e", playlist="source/index.m3u8"
    ),
    Rendition(
        name="360p", width=640, height=360, bandwidth=0, codecs="avc1.4d401e", playlist="360p/index.m3u8"
    ),
)


@pytest.fixture
def world() -> tuple[MemoryCatalogue, FakeStore, StepContext]:
    cat = MemoryCatalogue()
    store = FakeStore()
    cat.create_stream(stream("cam1"))
    return cat, store, StepContext(catalogue=cat, media_store=store)


def session(cat: MemoryCatalogue, writer: str = "w1", at: datetime = T0, **kw: Any) -> str:
    s, _ = cat.start_recording_session("cam1", writer, renditions=R, now=at, **kw)
    return s.session_id


def test_finalize_two_overlapping_writers(world) -> None:
    cat, store, ctx = world
    sid = session(cat)
    session(cat, "w2", at=T0 + timedelta(seconds=10))
    record(store, "cam1", sid, "w1", ("source", "360p"), range(0, 12))
    record(store, "cam1", sid, "w2", ("source", "360p"), range(8, 20), discontinuity_at=(8,))
    cat.end_recording_session(sid)
    out = WorkflowRunner(ctx).start(sid)
    assert out["status"] == "ready", out
    assert out["segments"] == 40 and out["duplicates"] == 8 and out["writers"] == 2
    video = cat.get(out["videoId"])
    assert (video.source, video.status, video.owner_id) == (VideoSource.RECORDING, VideoStatus.READY, "op-1")
    assert video.duration_seconds == 40.0
    # a camera's recording plays by its link but is not published in the public list
    assert video.visibility is VideoVisibility.UNLISTED
    prefix = f"outputs/{out['videoId']}/"
    master = parse_master_playlist(store.get_bytes(prefix + "master.m3u8").decode())
    assert sorted(v.uri for v in master) == ["360p/index.m3u8", "source/index.m3u8"]
    assert all(v.resolution == (640, 360) and v.bandwidth > 0 and "CODECS" in v.attributes for v in master)
    media = store.get_bytes(prefix + "source/index.m3u8").decode()
    pl = parse_media_playlist(media)
    assert len(pl.segments) == 20 and len({u for u, _ in pl.segments}) == 20 and pl.ended
    assert media.count("#EXT-X-DISCONTINUITY") == 1
    assert all(
        u.startswith("../../../recordings/cam1/") and u[len("../../../") :] in store.objects
        for u, _ in pl.segments
    )
    # Cleanup: no manifests, no losing copies; every kept segment is still there.
    left = [k for k in store.objects if k.startswith("recordings/")]
    assert not [k for k in left if "/_manifests/" in k] and len(left) == 40
    got = cat.get_recording_session(sid)
    assert got.state == RecordingState.READY and got.video_id == out["videoId"]
    kinds = [
        e.event_type for e in cat.claim_events(limit=20, lease_seconds=9, subject=recording_subject(sid))
    ]
    assert kinds.count("recording.ready") == 1


def test_fixup_from_the_listing_alone_gives_the_same_video(world) -> None:
    cat, store, ctx = world
    sid = session(cat)
    record(store, "cam1", sid, "w1", ("source",), range(0, 9))
    for key in [k for k in store.objects if "/_manifests/" in k]:
        del store.objects[key]  # the writer died before any manifest survived
    store.put_bytes(f"recordings/cam1/{sid}/w1/source/garbage.ts", b"x")
    stale = cat.stale_recording_sessions(T0 + timedelta(minutes=5))
    assert [s.session_id for s in stale] == [sid]
    out = WorkflowRunner(ctx).start(sid, mode="fixup")
    assert out["status"] == "ready" and out["segments"] == 9 and out["skipped"] == 1
    assert cat.get_recording_session(sid).end_reason == "writer-lost"


def test_rerun_is_idempotent(world) -> None:
    cat, store, ctx = world
    sid = session(cat)
    record(store, "cam1", sid, "w1", ("source",), range(0, 5))
    cat.end_recording_session(sid)
    first = WorkflowRunner(ctx).start(sid)
    again = WorkflowRunner(ctx).start(sid)
    assert first["status"] == "ready" and again.get("done") and again["videoId"] == first["videoId"]
    assert len(cat.list_by_owner("op-1", limit=10).items) == 1


def test_retry_then_success_and_catch_to_failed(world) -> None:
    cat, store, ctx = world
    sid = session(cat)
    record(store, "cam1", sid, "w1", ("source",), range(0, 3))
    cat.end_recording_session(sid)
    calls = {"n": 0}

    def flaky_merge(state, ctx):
        calls["n"] += 1
        if calls["n"] < 3:
            raise TransientStepError("store blip")
        return steps.merge(state, ctx)

    sleeps: list[float] = []
    out = WorkflowRunner(ctx, handlers={**steps.HANDLERS, "merge": flaky_merge}, sleep=sleeps.append).start(
        sid
    )
    assert out["status"] == "ready" and sleeps == [2, 4]

    sid2 = session(cat, at=T0 + timedelta(hours=1))
    cat.end_recording_session(sid2)  # no segments at all: a permanent failure, not retried
    sleeps.clear()
    out = WorkflowRunner(ctx, sleep=sleeps.append).start(sid2)
    assert out["status"] == "failed" and "no segments" in out["failureReason"] and sleeps == []
    got = cat.get_recording_session(sid2)
    assert got.state == RecordingState.FAILED and "PermanentStepError" in (got.failure_reason or "")
    kinds = [
        e.event_type for e in cat.claim_events(limit=20, lease_seconds=9, subject=recording_subject(sid2))
    ]
    assert "recording.failed" in kinds


def test_retries_run_out_then_failed(world) -> None:
    cat, _store, ctx = world
    sid = session(cat)
    cat.end_recording_session(sid)

    def down(state, ctx):
        raise TransientStepError("still down")

    sleeps: list[float] = []
    out = WorkflowRunner(ctx, handlers={**steps.HANDLERS, "merge": down}, sleep=sleeps.append).start(sid)
    assert out["status"] == "failed" and len(sleeps) == RECORDING_WORKFLOW.step("Merge").retry.max_attempts


def test_mp4_step_runs_only_when_asked(world) -> None:
    cat, store, ctx = world
    seen: list[str] = []
    ctx.export = lambda state: seen.append(state["videoId"]) or {**state, "mp4Bytes": 7}
    sid = session(cat)
    record(store, "cam1", sid, "w1", ("source",), range(0, 3))
    cat.end_recording_session(sid)
    assert "mp4Bytes" not in WorkflowRunner(ctx).start(sid)
    assert seen == []
    sid2 = session(cat, at=T0 + timedelta(hours=2))
    record(store, "cam1", sid2, "w1", ("source",), range(0, 3))
    cat.end_recording_session(sid2)
    assert WorkflowRunner(ctx).start(sid2, mp4=True)["mp4Bytes"] == 7
    assert seen == [steps.video_id_for(sid2)]


def test_a_reconnect_inside_the_window_is_one_video_with_a_discontinuity(world) -> None:
    cat, store, ctx = world
    sid = session(cat)
    cat.heartbeat_recording_session(
        sid, "w1", media_at=T0 + timedelta(seconds=10), now=T0 + timedelta(seconds=10)
    )
    again, continued = cat.start_recording_session("cam1", "w1", now=T0 + timedelta(seconds=40))
    assert continued and again.session_id == sid
    record(store, "cam1", sid, "w1", ("source",), range(0, 5))
    record(
        store, "cam1", sid, "w1", ("source",), range(5, 10), discontinuity_at=(5,), t0_ms=1_780_000_030_000
    )
    cat.end_recording_session(sid)
    out = WorkflowRunner(ctx).start(sid)
    media = store.get_bytes(f"outputs/{out['videoId']}/source/index.m3u8").decode()
    assert out["discontinuities"] == 1 and media.count("#EXT-X-DISCONTINUITY\n") == 1
    assert media.count("#EXT-X-PROGRAM-DATE-TIME") == 2


def test_a_camera_whose_size_changes_after_a_reconnect_gets_its_largest_resolution(world) -> None:
    # Given a 640x360 camera that comes back from a reconnect inside the window at 1280x720
    cat, store, ctx = world
    sid = session(cat)
    cat.heartbeat_recording_session(
        sid, "w1", media_at=T0 + timedelta(seconds=10), now=T0 + timedelta(seconds=10)
    )
    big = R[0].model_copy(update={"width": 1280, "height": 720, "codecs": "avc1.64001f"})
    again, continued = cat.start_recording_session(
        "cam1", "w1", renditions=[big], now=T0 + timedelta(seconds=20)
    )
    assert continued and again.session_id == sid
    # and later comes back small again (a second writer, after a task restart, at 640x360)
    small, _ = cat.start_recording_session("cam1", "w2", renditions=R, now=T0 + timedelta(seconds=30))
    assert small.session_id == sid
    record(store, "cam1", sid, "w1", ("source", "360p"), range(0, 5))
    record(
        store, "cam1", sid, "w1", ("source",), range(5, 10), discontinuity_at=(5,), t0_ms=1_780_000_030_000
    )
    cat.end_recording_session(sid)
    # When it is finalized
    out = WorkflowRunner(ctx).start(sid)
    assert out["status"] == "ready", out
    # Then the master states the source's largest picture and the codec level it needs; 360p stays
    master = parse_master_playlist(store.get_bytes(f"outputs/{out['videoId']}/master.m3u8").decode())
    by_uri = {v.uri: v for v in master}
    assert by_uri["source/index.m3u8"].resolution == (1280, 720)
    assert by_uri["source/index.m3u8"].attributes["CODECS"].startswith("avc1.64001f")
    assert by_uri["360p/index.m3u8"].resolution == (640, 360)
    # And the size changes after a discontinuity in the source's playlist
    media = store.get_bytes(f"outputs/{out['videoId']}/source/index.m3u8").decode()
    assert media.count("#EXT-X-DISCONTINUITY\n") == 1


def test_merged_renditions_keep_the_largest_picture_and_add_new_ones() -> None:
    from reelay.catalogue._recordings import merge_renditions

    big = R[0].model_copy(update={"width": 1920, "height": 1080})
    extra = R[1].model_copy(update={"name": "240p", "width": 426, "height": 240})
    assert merge_renditions(R, [big]) == [big, R[1]]
    assert merge_renditions([big, R[1]], R) == [big, R[1]]  # a smaller picture later changes nothing
    assert merge_renditions(R, [extra]) == [*R, extra]
    assert merge_renditions(R, []) == list(R) and merge_renditions([], R) == list(R)


def test_a_per_stream_store_is_opened_by_reference_and_copied_for_playback(world) -> None:
    cat, media, ctx = world
    other = FakeStore()
    sid = session(cat, store_ref="stream:cam1", store_url="s3+https://***@minio.example:9000/rec")
    record(other, "cam1", sid, "w1", ("source",), range(0, 3))
    cat.end_recording_session(sid)
    assert WorkflowRunner(ctx).start(sid)["status"] == "failed"  # no resolver: said, not guessed
    ctx.open_store = lambda ref, session_id: {("stream:cam1", sid): other}[(ref, session_id)]
    out = WorkflowRunner(ctx).start(sid)
    assert out["status"] == "ready"
    # The kept segments were copied into the media store, where the playback path serves them.
    assert len([k for k in media.objects if k.startswith(f"recordings/cam1/{sid}/")]) == 3
