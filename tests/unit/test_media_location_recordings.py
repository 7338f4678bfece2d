"""A private recording's media is private, all of it (reelay.media_location): its segments, which stay
where the recorder wrote them while the recording is public, move with its playlists (rewritten to
name where the segments now are) and its MP4 exports; making it public brings every object back as it
was. Deleting a video waits for a move under way, so the move's copies cannot outlive the delete.

The real finalize workflow and relocator, on the in-memory store and on a real file store."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from reelay.errors import Conflict
from reelay.media_location import MediaRelocator, media_places, rewrite_playlist
from reelay.models import ModerationAction, ModerationRecord, VideoVisibility
from reelay.ports import ObjectStore
from reelay.settings import Settings
from reelay.storage.file import FileStore
from reelay.videos import VideoService
from tests.fakes import FakeCdn, FakeStore
from tests.unit.recording_helpers import finalized_recording, playlist_targets
from tests.unit.test_media_location import _publish, _ready

RENDITIONS = ("360p", "source")


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "memory":
        return FakeStore()
    return FileStore(tmp_path / "media", public_url=None, signing_key=None)


def snapshot(store: ObjectStore) -> dict[str, bytes]:
    return {info.key: store.get_bytes(info.key) for info in store.list("")}


def under(store: ObjectStore, prefix: str) -> list[str]:
    return sorted(info.key for info in store.list(prefix))


def test_a_private_recording_takes_its_segments_playlists_and_exports_off_the_public_paths(
    store: ObjectStore,
) -> None:
    # Given a finalized recording: its playlists under outputs/, naming segments under recordings/
    catalogue, sid, vid = finalized_recording(store)
    segments = under(store, f"recordings/cam1/{sid}/")
    assert len(segments) == 12
    for rendition in RENDITIONS:
        named = playlist_targets(store, f"outputs/{vid}/{rendition}/index.m3u8")
        assert named and all(key.startswith(f"recordings/cam1/{sid}/") for key in named)
    before = snapshot(store)
    cdn = FakeCdn()
    relocator = MediaRelocator(catalogue, store, Settings(), cdn)
    # When its owner makes it private and the move is acted on
    catalogue.set_visibility(vid, VideoVisibility.PRIVATE)
    moved = relocator.reconcile(vid)
    # Then nothing of it is left on a public path: not a segment, a playlist, nor an export
    assert moved == len(segments) + 3 + 1  # segments, 2 renditions' playlists and the master, the MP4
    assert under(store, f"recordings/cam1/{sid}/") == []
    assert under(store, f"outputs/{vid}/") == [] and under(store, f"outputs/exports/{sid}/") == []
    # And every segment is inside the video's private prefix (one signature covers it), bytes kept
    private = f"private-outputs/{vid}/"
    for key in segments:
        assert store.get_bytes(private + key) == before[key]
    assert store.get_bytes(f"private-outputs/exports/{sid}/e1.mp4") == b"mp4"
    # And the playlists name exactly those segments, in order, where they now are
    for rendition in RENDITIONS:
        named = playlist_targets(store, f"{private}{rendition}/index.m3u8")
        public_named = playlist_targets_of(before, f"outputs/{vid}/{rendition}/index.m3u8")
        assert named == [private + key for key in public_named]
        assert all(store.head(key) is not None for key in named)
    assert playlist_targets(store, f"{private}master.m3u8") == [
        f"{private}{r}/index.m3u8" for r in ("360p", "source")
    ]
    # And the CDN drops every public path the media left
    assert sorted(cdn.invalidated[0]) == sorted(
        [f"/recordings/cam1/{sid}/*", f"/outputs/exports/{sid}/*", f"/outputs/{vid}/*"]
    )
    # When it turns public again, every object is back where it was, byte for byte
    catalogue.set_visibility(vid, VideoVisibility.PUBLIC)
    assert relocator.reconcile(vid) == moved
    assert snapshot(store) == before
    assert relocator.reconcile(vid) == 0  # a retried event: nothing left to move


def playlist_targets_of(objects: dict[str, bytes], key: str) -> list[str]:
    store = FakeStore()
    store.put_bytes(key, objects[key])
    return playlist_targets(store, key)


def test_an_unpublished_recording_is_private_too(store: ObjectStore) -> None:
    catalogue, sid, vid = finalized_recording(store)
    video = catalogue.get(vid)
    assert video.visibility == VideoVisibility.UNLISTED
    catalogue.moderate(
        ModerationRecord(
            moderator_id="m",
            moderator_email="m@x.io",
            action=ModerationAction.UNPUBLISH,
            video_id=vid,
            owner_id=video.owner_id,
            reason="test",
        ),
        unpublished=True,
    )
    MediaRelocator(catalogue, store, Settings()).reconcile(vid)
    assert under(store, f"recordings/cam1/{sid}/") == []
    assert len(under(store, f"private-outputs/{vid}/recordings/cam1/{sid}/")) == 12


def test_an_uploaded_video_has_one_place_and_a_recording_three() -> None:
    catalogue, _, vid = finalized_recording(FakeStore())
    sid = vid.removeprefix("rec-")
    assert media_places(Settings(), catalogue.get(vid)) == [
        (f"recordings/cam1/{sid}/", f"private-outputs/{vid}/recordings/cam1/{sid}/"),
        (f"outputs/exports/{sid}/", f"private-outputs/exports/{sid}/"),
        (f"outputs/{vid}/", f"private-outputs/{vid}/"),
    ]
    _ready(catalogue, "up1")
    assert media_places(Settings(), catalogue.get("up1")) == [("outputs/up1/", "private-outputs/up1/")]


def test_rewriting_a_playlist_keeps_tags_and_absolute_uris() -> None:
    body = "#EXTM3U\n#EXTINF:2.000,\n../../../recordings/a/b/w/r/1.ts\n#EXTINF:2.0,\nhttps://cdn/x.ts\n"
    out = rewrite_playlist(
        body, "outputs/v/r/index.m3u8", "private-outputs/v/r/index.m3u8", lambda k: "private-outputs/v/" + k
    )
    assert out == "#EXTM3U\n#EXTINF:2.000,\n../recordings/a/b/w/r/1.ts\n#EXTINF:2.0,\nhttps://cdn/x.ts\n"


# --- deleting a video while its media moves ---------------------------------------------------------
class InFlightCopies(FakeStore):
    """A store whose copies read their source, then land only once ``land`` is set (or after 0.5 s): a
    copy in flight. The delete's last prefix delete lets them land and lets the mover finish before
    the delete goes on: the interleaving that left a move's copies behind a deleted video."""

    def __init__(self) -> None:
        super().__init__()
        self.land = threading.Event()
        self.mover: threading.Thread | None = None

    def copy(self, src_key: str, dst_key: str) -> None:
        data, content_type, metadata = self.objects[src_key]
        self.land.wait(0.5)
        self.put_bytes(dst_key, data, content_type=content_type, metadata=metadata)

    def delete_prefix(self, prefix: str) -> int:
        removed = super().delete_prefix(prefix)
        if prefix.startswith("private-outputs/") and self.mover is not None:
            self.land.set()
            self.mover.join(10)
        return removed


def test_a_delete_during_a_move_leaves_no_object_behind() -> None:
    from reelay.catalogue.memory import MemoryCatalogue

    catalogue, store = MemoryCatalogue(), InFlightCopies()
    _ready(catalogue)
    _publish(store, "outputs/")
    catalogue.set_visibility("v1", VideoVisibility.PRIVATE)
    relocator = MediaRelocator(catalogue, store, Settings(), workers=1)
    store.mover = threading.Thread(target=relocator.reconcile, args=("v1",))
    store.mover.start()
    while not catalogue._media_moves:  # the move holds its lease and has a copy in flight
        threading.Event().wait(0.01)
    VideoService(catalogue, store, Settings()).delete("o", "v1")
    store.mover.join(10)
    assert not store.mover.is_alive()
    assert [k for k in store.objects if "/v1/" in k] == []


def test_a_delete_that_cannot_get_the_move_lease_answers_409(monkeypatch: pytest.MonkeyPatch) -> None:
    from reelay import videos
    from reelay.catalogue.memory import MemoryCatalogue

    monkeypatch.setattr(videos, "DELETE_WAIT_SECONDS", 0.2)
    catalogue, store = MemoryCatalogue(), FakeStore()
    _ready(catalogue)
    _publish(store, "outputs/")
    assert catalogue.claim_media_move("v1", "a-stuck-mover", 120)
    with pytest.raises(Conflict) as caught:
        VideoService(catalogue, store, Settings()).delete("o", "v1")
    assert caught.value.status == 409 and "being moved" in caught.value.message
    assert catalogue.get("v1") and len([k for k in store.objects if k.startswith("outputs/v1/")]) == 5


def test_the_api_documents_the_409_of_a_delete_during_a_move() -> None:
    from reelay.api.app import openapi_document

    spec = openapi_document()
    for path, method in (("/videos/{videoId}", "delete"), ("/moderation/videos/{videoId}/delete", "post")):
        assert "409" in {str(code) for code in spec["paths"][path][method]["responses"]}
