# ruff: noqa: F811  (the world and migrated_url fixtures are imported from the video contract)
"""The StreamCatalogue contract, on MemoryCatalogue and on MySQLCatalogue against the real server.

Covers the relay's lease with fencing: one task wins a race for a stream, and a task whose token is
stale (its lease expired and another task claimed) can no longer renew, release or report.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from reelay.errors import Conflict, InvalidInput, NotFound
from reelay.models import (
    DesiredState,
    OutboxEvent,
    SourceProtocol,
    Stream,
    StreamHealth,
    StreamState,
    VideoMode,
    stream_subject,
    utcnow,
)
from tests.integration.test_catalogue_contract import World, _root, migrated_url, world  # noqa: F401

T0 = datetime(2026, 3, 4, 5, 6, 7, 891000)


@pytest.fixture
def cat(world: World) -> Any:
    return world.catalogue


def new_stream(**overrides: Any) -> Stream:
    stream_id = uuid.uuid4().hex
    fields: dict[str, Any] = {
        "stream_id": stream_id,
        "owner_id": "operator-1",
        "name": "Gate camera",
        "source_url": "rtsp://cam.example:8554/live",
        "source_protocol": SourceProtocol.RTSP,
        "source_secret": "gAAAAB-ciphertext",
        "kvs_stream_name": f"reelay-{stream_id}",
    }
    fields.update(overrides)
    return Stream(**fields)


def running(cat: Any, **overrides: Any) -> Stream:
    stream = cat.create_stream(new_stream(**overrides))
    assert cat.set_desired_state(stream.stream_id, DesiredState.RUNNING)
    return cat.get_stream(stream.stream_id)


# --- CRUD -------------------------------------------------------------------------------------
def test_create_then_get_returns_every_field(cat: Any) -> None:
    # Given a stream with every field set
    stream = new_stream(
        source_protocol=SourceProtocol.SRT,
        source_url="srt://cam.example:9000?latency=200",
        video_mode=VideoMode.TRANSCODE,
        state_since=T0,
        created_at=T0,
        updated_at=T0,
    )
    # When it is stored and read back
    created = cat.create_stream(stream)
    # Then it comes back as stored, stopped, with no lease and no health yet
    assert created == stream
    assert cat.get_stream(stream.stream_id) == stream
    assert (created.desired_state, created.state, created.lease_token) == (
        DesiredState.STOPPED,
        StreamState.STOPPED,
        0,
    )


def test_unknown_streams_are_not_found_and_duplicates_conflict(cat: Any) -> None:
    with pytest.raises(NotFound):
        cat.get_stream("nope")
    with pytest.raises(NotFound):
        cat.get_stream("bad id with spaces")
    stream = cat.create_stream(new_stream())
    # The same id, or another stream relaying into the same KVS stream, is a conflict
    with pytest.raises(Conflict, match="already exists"):
        cat.create_stream(new_stream(stream_id=stream.stream_id, kvs_stream_name="other"))
    with pytest.raises(Conflict, match="kvsStreamName"):
        cat.create_stream(new_stream(kvs_stream_name=stream.kvs_stream_name))


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": " "},
        {"name": "x" * 256},
        {"kvs_stream_name": "has space"},
        {"kvs_stream_name": "x" * 257},
        {"source_url": ""},
        {"source_secret": "not ascii é"},
        {"stream_id": "x" * 65},
        {"owner_id": ""},
        {"reconnects": -1},
    ],
)
def test_create_rejects_bad_values_and_stores_nothing(cat: Any, overrides: dict[str, Any]) -> None:
    stream = new_stream(**overrides)
    with pytest.raises(InvalidInput):
        cat.create_stream(stream)
    assert cat.list_streams_by_owner(stream.owner_id, limit=10).items == []


def test_list_by_owner_pages_newest_first_and_shows_only_that_owner(cat: Any) -> None:
    # Given five streams of one operator (two created at the same instant) and one of another
    times = [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=1), T0 + timedelta(seconds=2), T0]
    mine = [cat.create_stream(new_stream(created_at=t)) for t in times]
    cat.create_stream(new_stream(owner_id="operator-2"))
    # When the operator pages through two at a time
    seen, cursor = [], None
    while True:
        page = cat.list_streams_by_owner("operator-1", limit=2, cursor=cursor)
        assert len(page.items) <= 2
        seen += [s.stream_id for s in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    # Then every stream of theirs appears once, newest first, ties by id descending
    expected = sorted(mine, key=lambda s: (s.created_at, s.stream_id), reverse=True)
    assert seen == [s.stream_id for s in expected]
    with pytest.raises(InvalidInput):
        cat.list_streams_by_owner("operator-1", limit=2, cursor="garbage!")


def test_update_changes_only_what_is_given_and_the_secret_goes_with_the_url(cat: Any) -> None:
    stream = cat.create_stream(new_stream())
    # When only the name changes, Then the source and its secret stay
    renamed = cat.update_stream(stream.stream_id, name="Back gate")
    assert (renamed.name, renamed.source_url, renamed.source_secret) == (
        "Back gate",
        stream.source_url,
        stream.source_secret,
    )
    # When the URL changes without a secret, Then the old secret is gone with the old URL
    moved = cat.update_stream(
        stream.stream_id, source_url="https://cdn.example/live.m3u8", source_protocol=SourceProtocol.HLS
    )
    assert (moved.source_url, moved.source_protocol, moved.source_secret) == (
        "https://cdn.example/live.m3u8",
        SourceProtocol.HLS,
        None,
    )
    changed = cat.update_stream(stream.stream_id, video_mode=VideoMode.PASSTHROUGH, kvs_stream_name="gate-2")
    assert (changed.video_mode, changed.kvs_stream_name) == (VideoMode.PASSTHROUGH, "gate-2")
    assert cat.get_stream(stream.stream_id) == changed
    # And a KVS name another stream uses, an unknown stream and a bad value are refused
    other = cat.create_stream(new_stream())
    with pytest.raises(Conflict):
        cat.update_stream(other.stream_id, kvs_stream_name="gate-2")
    with pytest.raises(NotFound):
        cat.update_stream("unknown", name="x")
    with pytest.raises(InvalidInput):
        cat.update_stream(stream.stream_id, name="")


def test_desired_state_changes_once_and_records_its_event_once(world: World) -> None:
    cat = world.catalogue
    stream = cat.create_stream(new_stream())
    subject = stream_subject(stream.stream_id)

    def started() -> OutboxEvent:
        return OutboxEvent(
            event_type="stream.started", subject=subject, detail={"streamId": stream.stream_id}
        )

    # When the stream is started twice, Then only the first call changes it and records its event
    assert cat.set_desired_state(stream.stream_id, DesiredState.RUNNING, event=started())
    assert not cat.set_desired_state(stream.stream_id, DesiredState.RUNNING, event=started())
    assert cat.get_stream(stream.stream_id).desired_state == DesiredState.RUNNING
    (event,) = world.other.claim_events(limit=10, lease_seconds=60, subject=subject)
    assert (event.event_type, event.subject, event.video_id) == ("stream.started", subject, None)
    assert event.detail == {"streamId": stream.stream_id}
    # And an event about something else is refused, and unknown streams are not found
    wrong = OutboxEvent(event_type="stream.stopped", subject="stream:other", detail={})
    with pytest.raises(InvalidInput):
        cat.set_desired_state(stream.stream_id, DesiredState.STOPPED, event=wrong)
    assert cat.get_stream(stream.stream_id).desired_state == DesiredState.RUNNING
    with pytest.raises(NotFound):
        cat.set_desired_state("unknown", DesiredState.RUNNING)


# --- the lease with fencing -----------------------------------------------------------------
def test_a_claim_needs_a_started_stream_and_each_claim_gets_a_new_token(cat: Any) -> None:
    stream = cat.create_stream(new_stream())
    # A stopped stream cannot be claimed
    assert cat.claim_stream_lease(stream.stream_id, "task-a", 30) is None
    assert cat.set_desired_state(stream.stream_id, DesiredState.RUNNING)
    first = cat.claim_stream_lease(stream.stream_id, "task-a", 30)
    assert first == 1
    held = cat.get_stream(stream.stream_id)
    assert (held.lease_owner, held.lease_token, held.state) == ("task-a", 1, StreamState.STARTING)
    assert held.task_started_at is not None and held.lease_expires_at is not None
    # Another task is refused while the lease lives; the same task (restarted) re-claims at once
    assert cat.claim_stream_lease(stream.stream_id, "task-b", 30) is None
    again = cat.claim_stream_lease(stream.stream_id, "task-a", 30)
    assert again == 2
    assert cat.get_stream(stream.stream_id).task_started_at == held.task_started_at
    # The old token is stale now: it cannot renew
    assert not cat.renew_stream_lease(stream.stream_id, "task-a", 1, 30)
    assert cat.renew_stream_lease(stream.stream_id, "task-a", 2, 30)
    assert cat.claim_stream_lease("unknown", "task-a", 30) is None
    with pytest.raises(InvalidInput):
        cat.claim_stream_lease(stream.stream_id, "", 30)
    with pytest.raises(InvalidInput):
        cat.renew_stream_lease(stream.stream_id, "task-a", 0, 30)


def test_two_tasks_racing_for_a_stream_have_one_winner_and_the_stale_token_writes_nothing(
    world: World,
) -> None:
    # Given a started stream, and two tasks on separate connections
    stream = running(world.catalogue)
    barrier = threading.Barrier(2)
    tokens: dict[str, int | None] = {}

    def task(name: str, cat: Any) -> None:
        barrier.wait()
        tokens[name] = cat.claim_stream_lease(stream.stream_id, name, 1)

    threads = [
        threading.Thread(target=task, args=(n, c)) for n, c in (("a", world.catalogue), ("b", world.other))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # Then exactly one won, with token 1
    winners = {n: t for n, t in tokens.items() if t is not None}
    assert len(winners) == 1 and list(winners.values()) == [1]
    (winner,) = winners
    loser = "b" if winner == "a" else "a"
    up = StreamHealth(state=StreamState.RUNNING, reconnects=0, input_bitrate_bps=2_000_000)
    assert world.other.report_stream_health(stream.stream_id, 1, up)
    # When the winner stalls past its lease and the loser claims
    time.sleep(1.3)
    token = world.other.claim_stream_lease(stream.stream_id, loser, 30)
    assert token == 2
    # Then the stalled winner's renew, health report and release are all refused, and change nothing
    stale = StreamHealth(state=StreamState.FAILED, outage_cause="stale writer", reconnects=99)
    assert not world.catalogue.renew_stream_lease(stream.stream_id, winner, 1, 30)
    assert not world.catalogue.report_stream_health(stream.stream_id, 1, stale)
    assert not world.catalogue.release_stream_lease(stream.stream_id, winner, 1)
    now = world.other.get_stream(stream.stream_id)
    assert (now.lease_owner, now.lease_token, now.state, now.outage_cause, now.reconnects) == (
        loser,
        2,
        StreamState.STARTING,
        None,
        0,
    )


def test_health_reports_are_stored_and_the_last_ack_survives_a_report_without_one(cat: Any) -> None:
    stream = running(cat)
    token = cat.claim_stream_lease(stream.stream_id, "task-a", 30)
    expires = utcnow() + timedelta(minutes=40)
    acked = utcnow()
    # When the task reports a running feed with an ack
    assert cat.report_stream_health(
        stream.stream_id,
        token,
        StreamHealth(
            state=StreamState.RUNNING,
            reconnects=2,
            input_bitrate_bps=4_000_000,
            last_fragment_number="91343852333181432392682062607743920146264440000",
            last_fragment_timecode=1_767_000_000_123,
            last_fragment_ack_at=acked,
            credentials_expire_at=expires,
        ),
    )
    up = cat.get_stream(stream.stream_id)
    assert (up.state, up.reconnects, up.input_bitrate_bps, up.last_fragment_timecode) == (
        StreamState.RUNNING,
        2,
        4_000_000,
        1_767_000_000_123,
    )
    assert up.last_fragment_ack_at is not None and abs(up.last_fragment_ack_at - acked) < timedelta(seconds=1)
    assert up.credentials_expire_at is not None
    # When it then reports an outage with no new ack
    since = utcnow()
    assert cat.report_stream_health(
        stream.stream_id,
        token,
        StreamHealth(
            state=StreamState.RECONNECTING, outage_cause="source stalled", outage_since=since, reconnects=3
        ),
    )
    down = cat.get_stream(stream.stream_id)
    # Then the outage shows, the last ack stays, and the state's since moved
    assert (down.state, down.outage_cause, down.reconnects, down.input_bitrate_bps) == (
        StreamState.RECONNECTING,
        "source stalled",
        3,
        None,
    )
    assert down.last_fragment_number == up.last_fragment_number
    assert down.last_fragment_timecode == up.last_fragment_timecode
    assert down.state_since >= up.state_since
    # And the same state reported again keeps its since
    time.sleep(0.01)
    assert cat.report_stream_health(
        stream.stream_id,
        token,
        StreamHealth(state=StreamState.RECONNECTING, outage_cause="x" * 600, reconnects=4),
    )
    again = cat.get_stream(stream.stream_id)
    assert again.state_since == down.state_since and again.outage_cause == "x" * 512
    for bad in (
        StreamHealth(state="dancing", reconnects=0),  # type: ignore[arg-type]
        StreamHealth(state=StreamState.RUNNING, reconnects=-1),
        StreamHealth(state=StreamState.RUNNING, input_bitrate_bps=True),  # type: ignore[arg-type]
        StreamHealth(state=StreamState.RUNNING, last_fragment_number="a b"),
    ):
        with pytest.raises(InvalidInput):
            cat.report_stream_health(stream.stream_id, token, bad)


def test_the_slate_is_reported_with_its_since_and_fragments_and_ends_with_the_task(cat: Any) -> None:
    # Given a stream whose relay task runs in transcode mode
    stream = running(cat, video_mode=VideoMode.TRANSCODE)
    assert (stream.slate_since, stream.slate_fragments_persisted) == (None, 0)
    token = cat.claim_stream_lease(stream.stream_id, "task-a", 30)
    since = T0 + timedelta(microseconds=456_789)
    # When it reports that KVS is fed the slate, the camera being down
    assert cat.report_stream_health(
        stream.stream_id,
        token,
        StreamHealth(
            state=StreamState.RECONNECTING,
            outage_cause="source stalled",
            outage_since=since,
            reconnects=1,
            slate_since=since,
            slate_fragments_persisted=2**40,
        ),
    )
    # Then the catalogue shows the slate on since then (to the millisecond), and its fragments
    on = cat.get_stream(stream.stream_id)
    assert (on.slate_since, on.slate_fragments_persisted) == (T0 + timedelta(milliseconds=456), 2**40)
    # When the camera is back: the slate is off, its count stays as reported
    assert cat.report_stream_health(
        stream.stream_id,
        token,
        StreamHealth(state=StreamState.RUNNING, reconnects=1, slate_fragments_persisted=2**40 + 1),
    )
    off = cat.get_stream(stream.stream_id)
    assert (off.slate_since, off.slate_fragments_persisted) == (None, 2**40 + 1)
    # And a task that goes away with the slate on leaves no slate showing on the stopped stream
    assert cat.report_stream_health(
        stream.stream_id, token, StreamHealth(state=StreamState.RECONNECTING, slate_since=T0)
    )
    assert cat.set_desired_state(stream.stream_id, DesiredState.STOPPED)
    assert cat.release_stream_lease(stream.stream_id, "task-a", token)
    assert cat.get_stream(stream.stream_id).slate_since is None
    # And a bad slate report is refused with a clear error
    token = _restart(cat, stream, "task-b")
    bad_reports: list[tuple[dict[str, Any], str]] = [
        ({"slate_fragments_persisted": -1}, "slate_fragments_persisted"),
        ({"slate_fragments_persisted": True}, "slate_fragments_persisted"),
        ({"slate_since": "now"}, "slate_since"),
    ]
    for bad, field in bad_reports:
        with pytest.raises(InvalidInput, match=field):
            cat.report_stream_health(stream.stream_id, token, StreamHealth(state=StreamState.RUNNING, **bad))


def _restart(cat: Any, stream: Stream, task_id: str) -> int:
    assert cat.set_desired_state(stream.stream_id, DesiredState.RUNNING)
    token = cat.claim_stream_lease(stream.stream_id, task_id, 30)
    assert token is not None
    return int(token)


def test_stopping_makes_renew_fail_and_release_clears_the_task(cat: Any) -> None:
    stream = running(cat)
    token = cat.claim_stream_lease(stream.stream_id, "task-a", 30)
    assert cat.report_stream_health(
        stream.stream_id, token, StreamHealth(state=StreamState.RECONNECTING, outage_cause="kvs unreachable")
    )
    # When the operator stops it, Then the task's next renew says stop
    assert cat.set_desired_state(stream.stream_id, DesiredState.STOPPED)
    assert not cat.renew_stream_lease(stream.stream_id, "task-a", token, 30)
    # When the task releases, Then the stream is stopped with no task and no outage, and claims are refused
    assert cat.release_stream_lease(stream.stream_id, "task-a", token)
    assert not cat.release_stream_lease(stream.stream_id, "task-a", token)
    done = cat.get_stream(stream.stream_id)
    assert (done.state, done.lease_owner, done.task_started_at, done.outage_cause) == (
        StreamState.STOPPED,
        None,
        None,
        None,
    )
    assert done.lease_token == token  # the fencing counter never goes back
    assert cat.claim_stream_lease(stream.stream_id, "task-b", 30) is None


def test_streams_to_reconcile_lists_what_must_start_or_stop(world: World) -> None:
    cat = world.catalogue
    idle = cat.create_stream(new_stream())  # stopped, no task: nothing to do
    orphan = running(cat)  # started, no task yet: start one
    healthy = running(cat)  # started, task holds a live lease: nothing to do
    assert cat.claim_stream_lease(healthy.stream_id, "task-h", 60)
    dying = running(cat)  # started, its task's lease ran out: replace it
    assert cat.claim_stream_lease(dying.stream_id, "task-d", 1)
    stopped = running(cat)  # stopped while its task runs: stop the task
    assert cat.claim_stream_lease(stopped.stream_id, "task-s", 60)
    assert cat.set_desired_state(stopped.stream_id, DesiredState.STOPPED)
    deleted = running(cat)  # deleted while its task runs: stop the task
    assert cat.claim_stream_lease(deleted.stream_id, "task-x", 60)
    cat.delete_stream(deleted.stream_id)
    time.sleep(1.2)
    due = {s.stream_id: s for s in world.other.streams_to_reconcile()}
    assert set(due) == {orphan.stream_id, dying.stream_id, stopped.stream_id, deleted.stream_id}
    assert idle.stream_id not in due
    assert due[stopped.stream_id].lease_owner == "task-s"
    assert (due[deleted.stream_id].lease_owner, due[deleted.stream_id].deleted_at is not None) == (
        "task-x",
        True,
    )
    # With an explicit time an hour on, every lease has run out: only the started ones need a task
    later = {s.stream_id for s in world.other.streams_to_reconcile(utcnow() + timedelta(hours=1))}
    assert later == {orphan.stream_id, dying.stream_id, healthy.stream_id}


def test_deleting_a_stream_its_task_still_holds_keeps_it_until_the_task_lets_go(cat: Any) -> None:
    # Given a stream with no task, When it is deleted, Then it is gone at once
    plain = cat.create_stream(new_stream())
    cat.delete_stream(plain.stream_id)
    with pytest.raises(NotFound):
        cat.get_stream(plain.stream_id)
    with pytest.raises(NotFound):
        cat.delete_stream(plain.stream_id)
    # Given a stream whose task holds the lease, When it is deleted
    held = running(cat)
    token = cat.claim_stream_lease(held.stream_id, "task-a", 60)
    cat.delete_stream(held.stream_id)
    # Then it is gone for the API, its name stays reserved, and the task can neither renew nor re-claim
    with pytest.raises(NotFound):
        cat.get_stream(held.stream_id)
    assert cat.list_streams_by_owner(held.owner_id, limit=10).items == []
    with pytest.raises(Conflict):
        cat.create_stream(new_stream(kvs_stream_name=held.kvs_stream_name))
    assert not cat.renew_stream_lease(held.stream_id, "task-a", token, 60)
    assert cat.claim_stream_lease(held.stream_id, "task-a", 60) is None
    # When the task releases, Then the row is gone and the name is free again
    assert cat.release_stream_lease(held.stream_id, "task-a", token)
    assert cat.streams_to_reconcile() == []
    assert (
        cat.create_stream(new_stream(kvs_stream_name=held.kvs_stream_name)).kvs_stream_name
        == held.kvs_stream_name
    )


def test_returned_streams_are_copies(cat: Any) -> None:
    stream = cat.create_stream(new_stream())
    got = cat.get_stream(stream.stream_id)
    got.name = "changed"
    assert cat.get_stream(stream.stream_id).name == "Gate camera"


@pytest.mark.mysql
def test_the_relay_migrations_can_run_again_after_a_run_that_died_half_way(migrated_url: str) -> None:
    # MySQL 8 has no ADD COLUMN IF NOT EXISTS: 0004 to 0007 add theirs only when missing, so a
    # migration that died after its DDL but before it was recorded can simply run again.
    from reelay.catalogue.migrations import load_migrations

    conn = _root(migrated_url)
    with conn.cursor() as cur:
        for migration in load_migrations():
            if migration.version in ("0004", "0005", "0006", "0007"):
                for statement in migration.statements:
                    cur.execute(statement)
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
            " AND TABLE_NAME = 'event_outbox' AND COLUMN_NAME = 'subject'"
        )
        assert cur.fetchone() == (1,)
        cur.execute(
            "SELECT IS_NULLABLE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
            " AND TABLE_NAME = 'event_outbox' AND COLUMN_NAME = 'videoId'"
        )
        assert cur.fetchone() == ("YES",)
    conn.close()
