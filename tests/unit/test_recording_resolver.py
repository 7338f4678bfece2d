"""The workflow's store resolver (the store a session recorded to) and the writer choosing a new
session's store under its real id, on the in-memory catalogue."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from reelay.catalogue.memory import MemoryCatalogue
from reelay.models import SourceProtocol, Stream, utcnow
from reelay.recording.resolver import SessionStoreResolver
from reelay.recording.steps import PermanentStepError
from reelay.recording.writer import PickedStore, SessionWriter
from reelay.relay.secrets import SourceSecrets
from tests.fakes import FakeStore
from tests.recording_api_helpers import SOURCE

KEYS = SourceSecrets(["resolver-test-key-0123456789abcdefghijkl"])
SECRET_URL = "s3+http://AKIA:very-secret@minio.example:9000/recordings"


class Opened:
    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, url: str) -> FakeStore:
        self.urls.append(url)
        return FakeStore()


@pytest.fixture
def world() -> tuple[MemoryCatalogue, FakeStore, Opened, SessionStoreResolver]:
    cat = MemoryCatalogue()
    media, opened = FakeStore(), Opened()
    return cat, media, opened, SessionStoreResolver(cat, KEYS, media, opened)


def stream(cat: MemoryCatalogue, **fields: Any) -> Stream:
    return cat.create_stream(
        Stream(
            stream_id=f"s-{len(cat._streams)}",
            owner_id="op",
            name="Gate",
            source_url="rtsp://10.0.0.5/x",
            source_protocol=SourceProtocol.RTSP,
            kvs_stream_name=None,
            record_enabled=True,
            **fields,
        )
    )


def test_the_default_store_is_the_media_store(world: Any) -> None:
    _, media, opened, resolve = world
    assert resolve("default", "any-session") is media and opened.urls == []


def test_a_sealed_session_store_is_opened_with_its_secret_once(world: Any) -> None:
    cat, _, opened, resolve = world
    s = stream(cat)
    session, _ = cat.start_recording_session(
        s.stream_id,
        "w",
        store_url="s3+http://AKIA:***@minio.example:9000/recordings",
        store_ref=f"webhook:{s.stream_id}",
        store_secret=KEYS.seal({"url": SECRET_URL}),
        store_source="webhook",
    )
    first = resolve(f"webhook:{s.stream_id}", session.session_id)
    assert resolve(f"webhook:{s.stream_id}", session.session_id) is first
    assert opened.urls == [SECRET_URL]


def test_a_store_without_secret_is_its_redacted_url(world: Any) -> None:
    cat, _, opened, resolve = world
    s = stream(cat)
    session, _ = cat.start_recording_session(
        s.stream_id, "w", store_url="s3://eu-west-1/bucket/cams", store_ref=f"webhook:{s.stream_id}"
    )
    resolve(f"webhook:{s.stream_id}", session.session_id)
    assert opened.urls == ["s3://eu-west-1/bucket/cams"]


def test_an_older_session_falls_back_to_the_stream_s_own_store(world: Any) -> None:
    cat, _, opened, resolve = world
    s = stream(cat, record_object_store_url="s3+http://AKIA:***@minio.example:9000/recordings",
               record_store_secret=KEYS.seal({"url": SECRET_URL}))  # fmt: skip
    session, _ = cat.start_recording_session(s.stream_id, "w", store_ref=f"stream:{s.stream_id}")
    resolve(f"stream:{s.stream_id}", session.session_id)
    assert opened.urls == [SECRET_URL]
    cat.delete_stream(s.stream_id)
    fresh = SessionStoreResolver(cat, KEYS, FakeStore(), Opened())
    with pytest.raises(PermanentStepError, match="gone"):
        fresh(f"stream:{s.stream_id}", session.session_id)


@pytest.mark.parametrize("ref", ["elsewhere:x", "stream:", "webhook", "s3://bucket"])
def test_unknown_references_fail_permanently(world: Any, ref: str) -> None:
    cat, _, _, resolve = world
    s = stream(cat)
    session, _ = cat.start_recording_session(s.stream_id, "w")
    with pytest.raises(PermanentStepError, match="reference"):
        resolve(ref, session.session_id)


def test_a_webhook_store_nobody_kept_or_keys_that_do_not_open_it_fail_with_the_reason(world: Any) -> None:
    cat, _, _, resolve = world
    s = stream(cat)
    lost, _ = cat.start_recording_session(
        s.stream_id, "w", store_url="s3+http://AKIA:***@m.example:9000/r", store_ref=f"webhook:{s.stream_id}"
    )
    with pytest.raises(PermanentStepError, match="not known"):
        resolve(f"webhook:{s.stream_id}", lost.session_id)
    other = stream(cat)
    sealed, _ = cat.start_recording_session(
        other.stream_id,
        "w",
        store_ref=f"webhook:{other.stream_id}",
        store_secret=SourceSecrets(["another-key-0123456789abcdefghijklmnop"]).seal({"url": SECRET_URL}),
    )
    with pytest.raises(PermanentStepError, match="key"):
        resolve(f"webhook:{other.stream_id}", sealed.session_id)


# --- the writer picks a new session's store under the session's real id ---------------------------------
def test_the_store_is_picked_with_the_real_session_id_and_kept_on_a_reconnect() -> None:
    cat = MemoryCatalogue()
    s = stream(cat)
    asked: list[str] = []
    store = FakeStore()

    def pick(session_id: str, started_at: Any) -> PickedStore:
        asked.append(session_id)
        return PickedStore(
            store, "s3://AKIA:***@eu-west-1/b", f"webhook:{s.stream_id}", "sealed", "webhook", None
        )

    writer = SessionWriter(FakeStore(), cat, s.stream_id, "w1", [SOURCE], pick_store=pick)
    session, continued = writer.start()
    assert not continued and asked == [session.session_id]  # the webhook was told the real id
    got = cat.get_recording_session(session.session_id)
    assert (got.store_source, got.store_secret, got.store_ref) == (
        "webhook",
        "sealed",
        f"webhook:{s.stream_id}",
    )
    assert writer.store is store
    again, continued = writer.start()  # a reconnect inside the window: same session, no new question
    assert continued and again.session_id == session.session_id and len(asked) == 1


def test_a_restarted_writer_continues_the_session_in_its_store() -> None:
    cat = MemoryCatalogue()
    s = stream(cat)
    theirs = FakeStore()
    first, _ = cat.start_recording_session(
        s.stream_id, "old-task", store_ref=f"webhook:{s.stream_id}", store_source="webhook", store_secret="x"
    )
    reopened: list[str] = []

    def reopen(session: Any) -> FakeStore:
        reopened.append(session.session_id)
        return theirs

    def pick(session_id: str, started_at: Any) -> PickedStore:
        raise AssertionError("a continued session keeps its store")

    writer = SessionWriter(
        FakeStore(), cat, s.stream_id, "new-task", [SOURCE], pick_store=pick, reopen_store=reopen
    )
    session, continued = writer.start()
    assert continued and session.session_id == first.session_id and reopened == [first.session_id]
    assert writer.store is theirs and writer.store_ref == f"webhook:{s.stream_id}"

    # past the window, the next session asks again
    def pick_default(session_id: str, started_at: Any) -> PickedStore:
        return PickedStore(FakeStore(), "file:///x", "default")

    later = SessionWriter(FakeStore(), cat, s.stream_id, "w3", [SOURCE], pick_store=pick_default)
    new, continued = later.start(now=utcnow() + timedelta(minutes=5))
    assert not continued and new.session_id != first.session_id
