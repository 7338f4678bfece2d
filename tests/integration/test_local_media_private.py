"""The local media endpoint enforces private playback as CloudFront's signed path does in AWS: every
playlist and segment of a private video needs a signature for the video's prefix that has not expired;
public media needs none; a video not in the catalogue serves nothing. A real FileStore on disk."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Request

from local.media import Access, MediaEndpoint
from reelay.playback import HmacPlaybackSigner
from reelay.storage.file import FileStore

KEY = "playback-test-key-0123456789abcdef"
FILES = ("master.m3u8", "360p/index.m3u8", "360p/seg_00000.ts", "poster.jpg")
ACCESS: dict[str, Access] = {"pub": "public", "priv": "signed", "other": "signed"}


@pytest.fixture
def client(tmp_path: Path) -> Client:
    store = FileStore(tmp_path / "media", public_url="http://localhost/media", signing_key=KEY)
    for video in ACCESS:
        for name in FILES:
            store.put_bytes(f"outputs/{video}/{name}", f"{video}/{name}".encode(), content_type="text/plain")
    endpoint = MediaEndpoint(
        output_prefix="outputs/",
        store=store,
        access=lambda video_id: ACCESS.get(video_id, "missing"),
        signing_key=KEY,
    )

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        return endpoint.handle(request, request.path.removeprefix("/media/"))(environ, start_response)

    return Client(app)


def signed(video_id: str, expires_in: int = 60, key: str = KEY) -> dict[str, str]:
    signer = HmacPlaybackSigner(key, base_url="http://localhost/media/outputs", output_prefix="outputs/")
    return dict(parse_qsl(signer.signed_query(video_id, expires_in)))


@pytest.mark.parametrize("name", FILES)
def test_every_file_of_a_private_video_plays_with_its_signature_and_no_other_way(
    client: Client, name: str
) -> None:
    path = f"/media/outputs/priv/{name}"
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


def test_media_of_a_video_not_in_the_catalogue_is_not_served(client: Client) -> None:
    r = client.get("/media/outputs/gone/master.m3u8", query_string=signed("gone"))
    assert r.status_code == 404 and r.json["error"] == "not_found"


def test_without_the_catalogue_no_output_is_served(tmp_path: Path) -> None:
    # Before the platform has wired the catalogue in, nothing under outputs/ is served (fail closed)
    store = FileStore(tmp_path / "m", public_url="http://localhost/media", signing_key=KEY)
    store.put_bytes("outputs/pub/master.m3u8", b"#EXTM3U", content_type="application/vnd.apple.mpegurl")
    endpoint = MediaEndpoint(output_prefix="outputs/", store=store)

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        return endpoint.handle(request, request.path.removeprefix("/media/"))(environ, start_response)

    assert Client(app).get("/media/outputs/pub/master.m3u8").status_code == 503
