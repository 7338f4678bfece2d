# ruff: noqa: F811  (the world and migrated_url fixtures are imported from the video contract)
"""The RecordingCatalogue contract, on MemoryCatalogue and on MySQLCatalogue against the real server."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from reelay.errors import NotFound
from reelay.models import RecordingState, Rendition, recording_subject
from tests.integration.test_catalogue_contract import World, migrated_url, world  # noqa: F401

T0 = datetime(2026, 3, 4, 5, 6, 7, 891000)
R360 = Rendition(
    name="360p", width=640, height=360, bandwidth=0, codecs="avc1.4d401e", playlist="360p/index.m3u8"
)


@pytest.fixture
def cat(world: World) -> Any:
    return world.catalogue  # every test uses its own stream ids, so leftovers do not matter


def events(cat: Any, session_id: str) -> list[str]:
    claimed = cat.claim_events(limit=50, lease_seconds=60, subject=recording_subject(session_id))
    return [e.event_type for e in claimed]


def stream() -> str:
    return uuid.uuid4().hex


def test_start_heartbeat_end_and_events(cat: Any) -> None:
    sid = stream()
    s, continued = cat.start_recording_session(
        sid, "w1", store_url="s3://us-east-1/b", renditions=[R360], now=T0
    )
    assert not continued and s.state == RecordingState.RECORDING and s.writers == ["w1"]
    assert cat.get_recording_session(s.session_id).renditions == [R360]
    assert cat.heartbeat_recording_session(
        s.session_id, "w1", media_at=T0 + timedelta(seconds=5), now=T0 + timedelta(seconds=5)
    )
    assert not cat.heartbeat_recording_session(s.session_id, "stranger", now=T0 + timedelta(seconds=6))
    assert cat.end_recording_session(s.session_id, now=T0 + timedelta(seconds=9))
    assert not cat.end_recording_session(s.session_id)  # idempotent
    got = cat.get_recording_session(s.session_id)
    assert got.state == RecordingState.ENDED and got.end_reason == "stopped"
    assert got.ended_at == T0 + timedelta(seconds=9)
    assert sorted(events(cat, s.session_id)) == ["recording.ended", "recording.started"]
    assert s.session_id in [x.session_id for x in cat.ended_recording_sessions()]


def test_reconnect_inside_the_window_continues_with_a_discontinuity(cat: Any) -> None:
    sid = stream()
    s, _ = cat.start_recording_session(sid, "w1", now=T0)
    cat.heartbeat_recording_session(
        s.session_id, "w1", media_at=T0 + timedelta(seconds=10), now=T0 + timedelta(seconds=10)
    )
    again, continued = cat.start_recording_session(sid, "w2", now=T0 + timedelta(seconds=50))
    assert continued and again.session_id == s.session_id
    assert again.writers == ["w1", "w2"] and again.discontinuities == 1
    assert len(cat.list_recording_sessions(sid)) == 1


def test_a_reconnect_at_a_larger_picture_keeps_the_largest_size(cat: Any) -> None:
    # The camera comes back from a reconnect at 1280x720, then at 640x360 again: the stored session
    # states the largest (the master playlist's RESOLUTION), and a rendition first seen later is added
    sid = stream()
    s, _ = cat.start_recording_session(sid, "w1", renditions=[R360], now=T0)
    big = R360.model_copy(update={"width": 1280, "height": 720, "codecs": "avc1.4d401f"})
    extra = R360.model_copy(update={"name": "240p", "width": 426, "height": 240})
    for n, seen in enumerate(([big], [R360, extra]), start=1):
        at = T0 + timedelta(seconds=10 * n)
        _, continued = cat.start_recording_session(sid, "w1", renditions=seen, now=at)
        assert continued
    assert cat.get_recording_session(s.session_id).renditions == [big, extra]


def test_reconnect_outside_the_window_starts_a_new_session(cat: Any) -> None:
    sid = stream()
    s, _ = cat.start_recording_session(sid, "w1", reconnect_window_seconds=60, now=T0)
    later, continued = cat.start_recording_session(sid, "w1", now=T0 + timedelta(seconds=61))
    assert not continued and later.session_id != s.session_id
    old = cat.get_recording_session(s.session_id)
    assert old.state == RecordingState.ENDED and old.end_reason == "reconnect-window-passed"
    assert [x.session_id for x in cat.list_recording_sessions(sid)] == [later.session_id, s.session_id]


def test_window_zero_never_continues(cat: Any) -> None:
    sid = stream()
    s, _ = cat.start_recording_session(sid, "w1", reconnect_window_seconds=0, now=T0)
    again, continued = cat.start_recording_session(sid, "w1", now=T0)
    assert not continued and again.session_id != s.session_id


def test_stale_sessions(cat: Any) -> None:
    sid = stream()
    s, _ = cat.start_recording_session(sid, "w1", reconnect_window_seconds=60, now=T0)
    assert s.session_id not in [
        x.session_id for x in cat.stale_recording_sessions(T0 + timedelta(seconds=59))
    ]
    assert s.session_id in [x.session_id for x in cat.stale_recording_sessions(T0 + timedelta(seconds=61))]


def test_workflow_transitions_are_idempotent(cat: Any) -> None:
    s, _ = cat.start_recording_session(stream(), "w1", now=T0)
    assert cat.begin_recording_workflow(s.session_id, "exec-1", mode="fixup")
    assert cat.begin_recording_workflow(s.session_id, "exec-1")  # the same execution, retried
    assert not cat.begin_recording_workflow(s.session_id, "exec-2")  # another one
    got = cat.get_recording_session(s.session_id)
    assert got.state == RecordingState.FINALIZING and got.end_reason == "writer-lost"
    assert cat.set_recording_workflow_state(s.session_id, "exec-1", "merge")
    assert cat.get_recording_session(s.session_id).workflow_state == "merge"
    done = dict(video_id="rec-x", duration_seconds=12.5, renditions=[R360], discontinuities=1)
    assert cat.complete_recording_session(s.session_id, "exec-1", **done)
    assert not cat.complete_recording_session(s.session_id, "exec-1", **done)
    assert not cat.fail_recording_session(s.session_id, "late")
    got = cat.get_recording_session(s.session_id)
    assert (got.state, got.video_id, got.duration_seconds) == (RecordingState.READY, "rec-x", 12.5)
    assert events(cat, s.session_id).count("recording.ready") == 1


def test_failed_then_retried(cat: Any) -> None:
    s, _ = cat.start_recording_session(stream(), "w1", now=T0)
    cat.end_recording_session(s.session_id)
    assert cat.begin_recording_workflow(s.session_id, "e1")
    assert not cat.fail_recording_session(s.session_id, "boom", execution_id="other")
    assert cat.fail_recording_session(s.session_id, "boom", execution_id="e1")
    assert not cat.fail_recording_session(s.session_id, "again")
    assert cat.get_recording_session(s.session_id).failure_reason == "boom"
    assert cat.begin_recording_workflow(s.session_id, "e2")  # a failed session may be finalized again
    assert "recording.failed" in events(cat, s.session_id)


def test_unknown_session(cat: Any) -> None:
    with pytest.raises(NotFound):
        cat.get_recording_session("nope")
    with pytest.raises(NotFound):
        cat.end_recording_session("nope")
