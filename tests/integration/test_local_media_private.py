"""The local media endpoint enforces private playback as CloudFront's paths do in AWS, by prefix: every
playlist and segment under the private output prefix needs a signature for the video's prefix that has
not expired; media under the public output prefix needs none. A video that turns private has its media
moved off the public prefix (reelay.media_location), so its old unsigned URLs find nothing. A real
FileStore on disk."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Request

from local.media import MediaEndpoint
from reelay.catalogue.memory import MemoryCatalogue
from reelay.media_location import MediaRelocator
from reelay.models import Video, VideoStatus, VideoVisibility
from reelay.playback import HmacPlaybackSigner
from reelay.settings import Settings
from reelay.storage.file import FileStore
from tests.unit.recording_helpers import finalized_recording, playlist_targets

KEY = "playback-test-key-0123456789abcdef"
FILES = ("master.m3u8", "360p/index.m3u8", "360p/seg_00000.ts", "poster.jpg")
PREFIXES = {"pub": "outputs/", "priv": "private-outputs/", "other": "private-outputs/"}


def _store(root: Path) -> FileStore:
    return FileStore(root, public_url="http://localhost/media", signing_key=KEY)


def _client(store: FileStore | None) -> Client:
    endpoint = MediaEndpoint(
        output_prefix="outputs/", private_output_prefix="private-outputs/", store=store, signing_key=KEY
    )

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        return endpoint.handle(request, request.path.removeprefix("/media/"))(environ, start_response)

    return Client(app)


@pytest.fixture
def client(tmp_path: Path) -> Client:
    store = _store(tmp_path / "media")
    for video, prefix in PREFIXES.items():
        for name in FILES:
            store.put_bytes(f"{prefix}{video}/{name}", f"{video}/{name}".encode(), content_type="text/plain")
    return _client(store)


def signed(video_id: str, expires_in: int = 60, key: str = KEY) -> dict[str, str]:
    signer = HmacPlaybackSigner(
        key, base_url="http://localhost/media/private-outputs", output_prefix="private-outputs/"
    )
    return dict(parse_qsl(signer.signed_query(video_id, expires_in)))


@pytest.mark.parametrize("name", FILES)
def test_every_file_of_a_private_video_plays_with_its_signature_and_no_other_way(
    client: Client, name: str
) -> None:
    path = f"/media/private-outputs/priv/{name}"
    # With the video's signature: served, and no shared cache may keep it
    r = client.get(path, query_string=signed("priv"))
    assert r.status_code == 200 and r.get_data() == f"priv/{name}".encode()
    assert r.headers["Cache-Control"].startswith("private")
    # Without one (a direct fetch of the segment URL found in the playlist): 403 with a reason
    r = client.get(path)
    assert r.status_code == 403 and r.json == {
        "error": "forbidden",
        "message": "This video is private: its media needs a signed link.",
    }
    # With another private video's signature, an expired one, one made with another key, a tampered one
    for query, reason in (
        (signed("other"), "not valid"),
        (signed("priv", expires_in=-5), "expired"),
        (signed("priv", key="another-key-0123456789abcdef0123"), "not valid"),
        ({**signed("priv"), "exp": str(int(time.time()) + 10**6)}, "not valid"),
        ({"exp": "12x", "sig": "ab"}, "malformed"),
    ):
        r = client.get(path, query_string=query)
        assert r.status_code == 403 and reason in r.json["message"], (query, r.json)
    # HEAD as GET
    assert client.head(path).status_code == 403
    assert client.head(path, query_string=signed("priv")).status_code == 200


def test_public_media_needs_no_signature_and_stays_cacheable(client: Client) -> None:
    r = client.get("/media/outputs/pub/360p/seg_00000.ts")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "max-age=86400"
    assert client.get("/media/outputs/pub/master.m3u8").headers["Cache-Control"] == "no-cache"


def test_a_signature_opens_nothing_under_the_public_prefix_it_was_not_made_for(client: Client) -> None:
    # A private video's signature is for private-outputs/<id>/ only: the same id's public path is just a
    # public path (nothing there once its media moved), and another video's signature opens nothing
    assert client.get("/media/outputs/priv/master.m3u8", query_string=signed("priv")).status_code == 404
    r = client.get("/media/private-outputs/pub/master.m3u8", query_string=signed("priv"))
    assert r.status_code == 403


def test_media_of_a_missing_video_is_404(client: Client) -> None:
    r = client.get("/media/private-outputs/gone/master.m3u8", query_string=signed("gone"))
    assert r.status_code == 404 and r.json["error"] == "not_found"
    assert client.get("/media/outputs/gone/master.m3u8").status_code == 404


def test_before_the_store_is_wired_nothing_is_served(tmp_path: Path) -> None:
    assert _client(None).get("/media/outputs/pub/master.m3u8").status_code == 503


def test_a_video_made_private_moves_off_the_public_path_and_plays_signed_only(tmp_path: Path) -> None:
    # Given a ready public video whose output is in a real file store, served by the endpoint
    store = _store(tmp_path / "media")
    catalogue = MemoryCatalogue()
    video = catalogue.create(
        Video(video_id="v1", video_key="uploads/v1", display_name="v", owner_id="alice", email="a@x.io")
    )
    catalogue.mark_uploaded(video.video_id, size_bytes=10, content_type="video/mp4")
    catalogue.claim(video.video_id, "w", 60)
    catalogue.complete(video.video_id, "w", duration_seconds=1.0, renditions=[])
    for name in FILES:
        store.put_bytes(
            f"outputs/v1/{name}", name.encode(), content_type="text/plain", cache_control="max-age=1"
        )
    client = _client(store)
    assert client.get("/media/outputs/v1/360p/seg_00000.ts").status_code == 200
    relocator = MediaRelocator(catalogue, store, Settings())
    # When its owner makes it private and the move is acted on
    catalogue.set_visibility("v1", VideoVisibility.PRIVATE)
    assert relocator.reconcile("v1") == len(FILES)
    assert relocator.reconcile("v1") == 0  # again: nothing left to move (idempotent)
    # Then the old unsigned URLs find nothing, and the signed private path serves every file,
    # with the headers it was written with
    for name in FILES:
        assert client.get(f"/media/outputs/v1/{name}").status_code == 404
        assert client.get(f"/media/private-outputs/v1/{name}").status_code == 403
        r = client.get(f"/media/private-outputs/v1/{name}", query_string=signed("v1"))
        assert r.status_code == 200 and r.get_data() == name.encode()
    assert store.head("private-outputs/v1/poster.jpg").content_type == "text/plain"  # type: ignore[union-attr]
    assert store.cache_control("private-outputs/v1/poster.jpg") == "max-age=1"
    assert not (tmp_path / "media" / "outputs" / "v1").exists()  # no empty directories left behind
    # When it turns public again, the media comes back to the public path
    catalogue.set_visibility("v1", VideoVisibility.PUBLIC)
    assert relocator.reconcile("v1") == len(FILES)
    assert client.get("/media/outputs/v1/master.m3u8").status_code == 200
    assert catalogue.get("v1").status == VideoStatus.READY


def test_a_private_recordings_segments_and_exports_play_signed_only(tmp_path: Path) -> None:
    # Given a finalized recording in a real file store, served by the endpoint: its playlists,
    # segments (where the recorder wrote them) and export all play unsigned
    store = _store(tmp_path / "media")
    catalogue, sid, vid = finalized_recording(store)
    client = _client(store)
    segments = playlist_targets(store, f"outputs/{vid}/source/index.m3u8")
    export = f"exports/{sid}/e1.mp4"
    for key in (f"outputs/{vid}/master.m3u8", *segments, f"outputs/{export}"):
        assert client.get(f"/media/{key}").status_code == 200, key
    # When its owner makes it private and the move is acted on
    catalogue.set_visibility(vid, VideoVisibility.PRIVATE)
    MediaRelocator(catalogue, store, Settings()).reconcile(vid)
    # Then no segment answers on an unsigned path: not where the recorder wrote it, nor where it is now
    private = f"private-outputs/{vid}/"
    moved = playlist_targets(store, f"{private}source/index.m3u8")
    assert moved == [private + key for key in segments]
    for old, new in zip(segments, moved, strict=True):
        assert client.get(f"/media/{old}").status_code == 404
        assert client.get(f"/media/{new}").status_code == 403
        assert client.get(f"/media/{new}", query_string=signed("another-video")).status_code == 403
    # And the owner's signed link plays every playlist and segment, as a player resolves them
    query = signed(vid)
    for key in (f"{private}master.m3u8", f"{private}source/index.m3u8", *moved):
        r = client.get(f"/media/{key}", query_string=query)
        assert r.status_code == 200 and r.headers["Cache-Control"].startswith("private"), key
    # And the export downloads only with its own signature
    assert client.get(f"/media/outputs/{export}").status_code == 404
    assert client.get(f"/media/private-outputs/{export}").status_code == 403
    assert client.get(f"/media/private-outputs/{export}", query_string=query).status_code == 403
    r = client.get(f"/media/private-outputs/{export}", query_string=signed(f"exports/{sid}"))
    assert r.status_code == 200 and r.get_data() == b"mp4"
    # When it turns public again, its segments play unsigned where the recorder wrote them
    catalogue.set_visibility(vid, VideoVisibility.PUBLIC)
    MediaRelocator(catalogue, store, Settings()).reconcile(vid)
    for key in (f"outputs/{vid}/source/index.m3u8", *segments, f"outputs/{export}"):
        assert client.get(f"/media/{key}").status_code == 200, key
    assert client.get(f"/media/{moved[0]}", query_string=query).status_code == 404
