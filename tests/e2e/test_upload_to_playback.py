"""A user signs up, uploads a real clip, watches it through the gateway, and deletes it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import Api, PlatformProcess, new_email

pytestmark = [pytest.mark.mysql, pytest.mark.media]


def wait_until_ready(api: Api, video_id: str, timeout: float = 120, *, token: str | None = None) -> dict:
    """The video once ready. With the owner's token it follows the owner's view (any status, a failure
    seen at once); without one, the public view, where a video not ready yet answers 404."""
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        r = api.call("GET", f"/me/videos/{video_id}" if token else f"/videos/{video_id}", token=token)
        if r.status_code == 404 and token is None:
            time.sleep(1)
            continue
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] != "failed", (body["failureReason"], api.platform.output()[-6000:])
        if body["status"] == "ready":
            return body
        time.sleep(1)
    raise AssertionError(
        f"video {video_id} not ready after {timeout}s: {body}\n{api.platform.output()[-6000:]}"
    )


def upload(api: Api, token: str, clip: Path, name: str = "My clip") -> str:
    body = api.start_upload(token, name, clip.stat().st_size, fileName=clip.name)
    put = body["upload"]
    assert put["url"].startswith(api.url + "/media/"), put["url"]
    r = requests.put(put["url"], data=clip.read_bytes(), headers=put["headers"], timeout=30)
    assert r.status_code == 200, r.text
    return body["videoId"]


def test_upload_watch_list_and_delete(platform: PlatformProcess, clip: Path) -> None:
    # Given a confirmed, logged-in user
    api = Api(platform)
    token = api.sign_up(new_email())

    # When they upload a real clip through the presigned URL and name it
    video_id = upload(api, token, clip)
    r = api.call(
        "POST",
        "/videos/metadata",
        token=token,
        json={"videoId": video_id, "displayName": "Beach day", "description": "waves"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["displayName"] == "Beach day"

    # Then the worker transcodes it and the video becomes ready with a playback URL
    video = wait_until_ready(api, video_id, token=token)
    assert video["displayName"] == "Beach day"
    assert video["durationSeconds"] == pytest.approx(2.5, abs=0.6)
    master_url = video["playbackUrl"]
    assert master_url.startswith(api.url + "/media/")

    # And the master playlist and a segment play through the gateway, as hls.js would fetch them
    master = requests.get(master_url, timeout=10)
    assert master.status_code == 200
    assert master.headers["Content-Type"].startswith("application/vnd.apple.mpegurl")
    assert master.headers["Access-Control-Allow-Origin"] == "*"
    assert "#EXT-X-STREAM-INF" in master.text
    variant_path = next(line for line in master.text.splitlines() if line and not line.startswith("#"))
    variant_url = requests.compat.urljoin(master_url, variant_path)
    variant = requests.get(variant_url, timeout=10)
    assert variant.status_code == 200, variant_url
    segment_path = next(line for line in variant.text.splitlines() if line and not line.startswith("#"))
    segment_url = requests.compat.urljoin(variant_url, segment_path)
    segment = requests.get(segment_url, timeout=10)
    assert segment.status_code == 200
    assert segment.headers["Content-Type"] == "video/mp2t"
    assert segment.content[0] == 0x47  # MPEG-TS sync byte
    partial = requests.get(segment_url, headers={"Range": "bytes=0-187"}, timeout=10)
    assert partial.status_code == 206
    assert partial.content == segment.content[:188]

    head = requests.head(segment_url, timeout=10)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(segment.content)
    # And the poster image is served as a JPEG
    poster = requests.get(video["thumbnailUrl"], timeout=10)
    assert poster.status_code == 200, video["thumbnailUrl"]
    assert poster.headers["Content-Type"] == "image/jpeg" and poster.content[:3] == b"\xff\xd8\xff"

    # And the old player address leads to the web front end's video page, and hls.js is still served
    page = requests.get(f"{api.url}/play/{video_id}", timeout=10)
    assert page.status_code == 200 and page.url == f"{api.url}/watch/{video_id}"
    assert '<div id="root">' in page.text
    assert requests.get(f"{api.url}/static/hls.js", timeout=10).status_code == 200

    # And the public list contains it
    listed = api.call("GET", "/videos", params={"limit": 100}).json()["items"]
    assert video_id in [v["videoId"] for v in listed]

    # When the owner deletes it
    r = api.call("DELETE", f"/videos/{video_id}", token=token)
    assert r.status_code == 204, r.text

    # Then it is gone from the API and its media is gone from the gateway
    assert api.call("GET", f"/videos/{video_id}").status_code == 404
    assert requests.get(master_url, timeout=10).status_code == 404
    assert requests.get(segment_url, timeout=10).status_code == 404


def test_upload_key_is_private_and_bad_signatures_are_refused(platform: PlatformProcess, clip: Path) -> None:
    # Given a user with a presigned upload URL
    api = Api(platform)
    token = api.sign_up(new_email())
    put = api.start_upload(token, "x", clip.stat().st_size)["upload"]

    # When someone tampers with the signature, Then the upload is refused with a JSON error
    tampered = put["url"].replace("sig=", "sig=0")
    r = requests.put(tampered, data=clip.read_bytes(), headers=put["headers"], timeout=30)
    assert r.status_code == 403, r.text
    assert set(r.json()) == {"error", "message"}

    # When they upload properly, Then nobody can read the private upload back
    r = requests.put(put["url"], data=clip.read_bytes(), headers=put["headers"], timeout=30)
    assert r.status_code == 200, r.text
    # And once the upload landed, its URL cannot replace it: a second PUT is a 412
    again = requests.put(put["url"], data=b"\0" * clip.stat().st_size, headers=put["headers"], timeout=30)
    assert again.status_code == 412, again.text
    assert again.json()["error"] == "precondition_failed"
    key = put["url"].split("/media/", 1)[1].split("?", 1)[0]
    r = requests.get(f"{api.url}/media/{key}", timeout=10)
    assert r.status_code == 403
    assert r.json()["error"] == "forbidden"

    # And path tricks are rejected
    r = requests.get(f"{api.url}/media/outputs/..%2F{key}", timeout=10)
    assert r.status_code in (400, 404)


def test_multipart_upload_through_the_gateway(platform: PlatformProcess, large_clip: Path) -> None:
    # Given a user declaring a file over the multipart threshold
    api = Api(platform)
    token = api.sign_up(new_email())
    body = api.start_upload(token, "Big one", large_clip.stat().st_size)
    assert body["upload"] is None
    multipart = body["multipart"]
    video_id = body["videoId"]
    data = large_clip.read_bytes()
    step = multipart["partSizeBytes"]

    # When each part goes to its presigned URL (as a browser would, reading the exposed ETag)
    parts = []
    for part in multipart["parts"]:
        n = part["partNumber"]
        chunk = data[(n - 1) * step : n * step]
        r = requests.put(part["url"], data=chunk, timeout=30)
        assert r.status_code == 200, r.text
        assert "ETag" in r.headers["Access-Control-Expose-Headers"]
        parts.append({"partNumber": n, "etag": r.headers["ETag"]})
    # And completePath resolves against the API base URL (no leading slash: the stage is kept)
    assert not multipart["completePath"].startswith("/")
    complete_url = requests.compat.urljoin(api.url + "/", multipart["completePath"])
    # And a wrong ETag is refused when completing
    bad = [{"partNumber": p["partNumber"], "etag": '"0123"'} for p in parts]
    r = requests.post(
        complete_url,
        headers={"Authorization": f"Bearer {token}"},
        json={"uploadId": multipart["uploadId"], "parts": bad},
        timeout=30,
    )
    assert 400 <= r.status_code < 500, r.text
    assert set(r.json()) == {"error", "message"}
    assert api.call("GET", f"/me/videos/{video_id}", token=token).json()["status"] == "awaiting_upload"
    # When the upload is completed with the right ETags
    r = requests.post(
        complete_url,
        headers={"Authorization": f"Bearer {token}"},
        json={"uploadId": multipart["uploadId"], "parts": parts},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    # Then the answer already shows what the object-created event did: queued for transcoding
    assert r.json()["status"] in ("queued", "processing", "ready"), r.json()
    status = api.call("GET", f"/me/videos/{video_id}", token=token).json()["status"]
    assert status in ("queued", "processing", "ready"), status


def test_a_put_of_another_size_than_declared_is_refused(platform: PlatformProcess) -> None:
    # Given an upload declared at 1000 bytes
    api = Api(platform)
    token = api.sign_up(new_email())
    body = api.start_upload(token, "Exact", 1000)
    put, video_id = body["upload"], body["videoId"]
    # When fewer or more bytes are PUT to its URL, Then 400 naming the size, and nothing lands
    for size in (999, 1001, 0):
        r = requests.put(put["url"], data=b"x" * size, headers=put["headers"], timeout=30)
        assert r.status_code == 400, r.text
        assert set(r.json()) == {"error", "message"} and "1000 bytes" in r.json()["message"]
    assert api.call("GET", f"/me/videos/{video_id}", token=token).json()["status"] == "awaiting_upload"
    # And a URL edited to allow another size is refused outright
    r = requests.put(
        put["url"].replace("length=1000", "length=999"), data=b"x" * 999, headers=put["headers"], timeout=30
    )
    assert r.status_code == 403, r.text


def test_a_file_that_is_not_a_video_fails_with_a_reason(platform: PlatformProcess, tmp_path: Path) -> None:
    from tests.media_fixtures import make_text_file_named_mp4

    # Given a user who uploads a text file named .mp4
    api = Api(platform)
    token = api.sign_up(new_email())
    video_id = upload(api, token, make_text_file_named_mp4(tmp_path / "list.mp4"), name="Not a video")
    # When the worker gets to it, Then the video fails with a reason the owner can read
    deadline = time.monotonic() + 60
    video: dict = {}
    while time.monotonic() < deadline:
        video = api.call("GET", f"/me/videos/{video_id}", token=token).json()
        if video["status"] == "failed":
            break
        time.sleep(1)
    assert video["status"] == "failed", video
    assert video["failureReason"]
    assert video["playbackUrl"] is None
    # And it is not in the public list, but the owner still sees it
    public = api.call("GET", "/videos", params={"limit": 100}).json()["items"]
    assert video_id not in [v["videoId"] for v in public]
    mine = api.call("GET", "/me/videos", token=token).json()["items"]
    assert [v["status"] for v in mine if v["videoId"] == video_id] == ["failed"]


def test_media_endpoint_refuses_what_s3_and_cloudfront_would(platform: PlatformProcess) -> None:
    url = platform.url
    # Given no signature, Then a PUT is 403 and nothing is written
    r = requests.put(
        f"{url}/media/uploads/x/y.mp4", data=b"x", headers={"Content-Type": "video/mp4"}, timeout=10
    )
    assert r.status_code == 403 and set(r.json()) == {"error", "message"}
    assert requests.get(f"{url}/media/uploads/x/y.mp4", timeout=10).status_code == 403
    # Given a bogus expiry or signature, Then 403 as well
    for query in ("expires=abc&sig=00", "expires=1&sig=" + "0" * 64, "sig=zz"):
        r = requests.put(f"{url}/media/outputs/x/master.m3u8?{query}", data=b"#EXTM3U", timeout=10)
        assert r.status_code == 403, (query, r.text)
    assert requests.get(f"{url}/media/outputs/x/master.m3u8", timeout=10).status_code == 404
    # Missing objects, odd keys and methods get clear answers
    assert requests.get(f"{url}/media/outputs/nope/master.m3u8", timeout=10).status_code == 404
    assert requests.get(f"{url}/media/", timeout=10).status_code == 400
    assert requests.get(f"{url}/media/outputs//x.ts", timeout=10).status_code == 400
    assert requests.delete(f"{url}/media/outputs/x.ts", timeout=10).status_code == 405
    preflight = requests.options(f"{url}/media/uploads/a.mp4", timeout=10)
    assert preflight.status_code == 204 and "PUT" in preflight.headers["Access-Control-Allow-Methods"]
    # And the player page only exists for plausible ids
    assert requests.get(f"{url}/play/..%2F..%2Fetc", timeout=10).status_code == 404
