# ruff: noqa: F811  (the world and migrated_url fixtures are imported from the video contract)
"""What the recordings API needs of the catalogue, on MemoryCatalogue and on MySQL (the real server):
a stream's recording settings, the session's store facts, paging sessions, retention and expiry."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from reelay.errors import InvalidInput, NotFound
from reelay.models import RecordingState, recording_subject
from tests.integration.test_catalogue_contract import World, migrated_url, world  # noqa: F401
from tests.integration.test_stream_catalogue_contract import new_stream

T0 = datetime(2026, 3, 4, 5, 6, 7, 891000)


@pytest.fixture
def cat(world: World) -> Any:
    return world.catalogue


def test_recording_settings_round_trip_and_clear(cat: Any) -> None:
    created = cat.create_stream(
        new_stream(
            record_enabled=True,
            record_object_store_url="s3://AKIA:***@eu-west-1/bucket",
            record_store_secret="gAAAAB-sealed",
            webhook_url="https://hooks.example/reelay",
            retention_days=30,
            reconnect_window_seconds=0,
            record_renditions=["720p", "360p"],
        )
    )
    again = cat.get_stream(created.stream_id)
    assert again.record_object_store_url == "s3://AKIA:***@eu-west-1/bucket"
    assert again.record_store_secret == "gAAAAB-sealed"
    assert again.webhook_url == "https://hooks.example/reelay"
    assert (again.retention_days, again.reconnect_window_seconds) == (30, 0)
    assert again.record_renditions == ["720p", "360p"]

    changed = cat.update_stream_recording(
        created.stream_id, {"retention_days": None, "record_renditions": ["360p", "1080p"]}
    )
    assert changed.retention_days is None
    assert changed.record_renditions == ["1080p", "360p"]  # ladder order
    assert changed.webhook_url == "https://hooks.example/reelay"  # untouched
    cleared = cat.update_stream_recording(
        created.stream_id, {"record_object_store_url": None, "record_store_secret": None}
    )
    assert cleared.record_object_store_url is None and cleared.record_store_secret is None


@pytest.mark.parametrize(
    "changes",
    [
        {"retention_days": 0},
        {"retention_days": 3651},
        {"retention_days": True},
        {"reconnect_window_seconds": -1},
        {"reconnect_window_seconds": 1801},
        {"record_renditions": ["4k"]},
        {"record_renditions": ["720p", "720p"]},
        {"webhook_url": "x" * 2049},
        {"not_a_setting": 1},
    ],
)
def test_bad_recording_settings_are_refused(cat: Any, changes: dict[str, object]) -> None:
    stream = cat.create_stream(new_stream())
    with pytest.raises(InvalidInput):
        cat.update_stream_recording(stream.stream_id, changes)
    assert cat.get_stream(stream.stream_id).retention_days is None


def test_recording_settings_of_an_unknown_stream(cat: Any) -> None:
    with pytest.raises(NotFound):
        cat.update_stream_recording("no-such-stream", {"retention_days": 3})


def test_session_keeps_its_store_facts(cat: Any) -> None:
    stream = cat.create_stream(new_stream(record_enabled=True))
    session, _ = cat.start_recording_session(
        stream.stream_id,
        "w1",
        store_url="s3://AKIA:***@eu-west-1/b",
        store_ref="webhook:x",
        store_secret="gAAAAB-sealed-url",
        store_source="webhook",
        store_fallback=None,
        now=T0,
    )
    got = cat.get_recording_session(session.session_id)
    assert (got.store_source, got.store_secret, got.store_fallback) == ("webhook", "gAAAAB-sealed-url", None)
    with pytest.raises(InvalidInput):
        cat.start_recording_session(stream.stream_id, "w2", store_source="elsewhere", now=T0)


def test_sessions_page_newest_first(cat: Any) -> None:
    stream = cat.create_stream(new_stream(record_enabled=True))
    ids = []
    for n in range(5):
        s, _ = cat.start_recording_session(
            stream.stream_id, "w1", reconnect_window_seconds=0, now=T0 + timedelta(minutes=n)
        )
        ids.append(s.session_id)
    first = cat.list_recording_sessions_page(stream.stream_id, limit=2)
    assert [s.session_id for s in first.items] == ids[::-1][:2] and first.next_cursor
    second = cat.list_recording_sessions_page(stream.stream_id, limit=2, cursor=first.next_cursor)
    third = cat.list_recording_sessions_page(stream.stream_id, limit=2, cursor=second.next_cursor)
    assert [s.session_id for s in second.items + third.items] == ids[::-1][2:]
    assert third.next_cursor is None
    with pytest.raises(InvalidInput):
        cat.list_recording_sessions_page(stream.stream_id, limit=2, cursor="garbage")


def test_retention_lists_old_finished_sessions_and_expires_them(cat: Any) -> None:
    kept = cat.create_stream(new_stream(record_enabled=True))
    short = cat.create_stream(new_stream(record_enabled=True, retention_days=2))
    old, _ = cat.start_recording_session(short.stream_id, "w", reconnect_window_seconds=0, now=T0)
    cat.end_recording_session(old.session_id, now=T0 + timedelta(minutes=1))
    other = cat.create_stream(new_stream(record_enabled=True, retention_days=1))
    live, _ = cat.start_recording_session(
        other.stream_id, "w", reconnect_window_seconds=0, now=T0
    )  # still recording: never expired
    recent, _ = cat.start_recording_session(
        short.stream_id, "v", reconnect_window_seconds=0, now=T0 + timedelta(days=3)
    )
    cat.end_recording_session(recent.session_id, now=T0 + timedelta(days=3, minutes=1))
    forever, _ = cat.start_recording_session(kept.stream_id, "w", reconnect_window_seconds=0, now=T0)
    cat.end_recording_session(forever.session_id, now=T0 + timedelta(minutes=1))

    due = cat.recording_sessions_past_retention(T0 + timedelta(days=4))
    ids = {s.session_id for s in due}
    assert old.session_id in ids
    assert not ids & {live.session_id, recent.session_id, forever.session_id}

    for e in cat.claim_events(limit=50, lease_seconds=60, subject=recording_subject(old.session_id)):
        cat.delete_event(e.event_id)
    assert cat.expire_recording_session(old.session_id)
    assert cat.get_recording_session(old.session_id).state == RecordingState.EXPIRED
    assert not cat.expire_recording_session(old.session_id)  # idempotent
    kinds = [
        e.event_type
        for e in cat.claim_events(limit=50, lease_seconds=60, subject=recording_subject(old.session_id))
    ]
    assert "recording.expired" in kinds
    assert old.session_id not in {
        s.session_id for s in cat.recording_sessions_past_retention(T0 + timedelta(days=4))
    }
    assert not cat.expire_recording_session(live.session_id)  # recording: left alone
