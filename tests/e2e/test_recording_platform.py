"""`make up` records its demo camera, as the README's "Record the demo camera" walks through it:
a stream that records, started for a few seconds, its live playlist played while it records (no
bearer token), stopped, finalized by hand (twice), listed, its video played, and a 2-second MP4
exported and probed. With the bad inputs: unknown ids, bad ranges, exporting a recording still going.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from tests.e2e.conftest import Api, PlatformProcess, own_platform
from tests.e2e.test_browser_playback import PAGE, play_in_chromium
from tests.e2e.test_relay_platform import endpoints, operator_token
from tests.media_fixtures import ffprobe_json
from tests.relay_fixtures import wait_until as poll

pytestmark = [pytest.mark.media, pytest.mark.mysql]


@pytest.fixture(scope="module")
def recording_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    with own_platform(tmp_path_factory, "reelay_rec", extra_args=("--camera", "rtsp")) as p:
        yield p


def test_the_demo_camera_is_recorded_finalized_and_exported(
    recording_platform: PlatformProcess, tmp_path: Path
) -> None:
    api = Api(recording_platform)
    _email, token = operator_token(recording_platform, api)
    camera = endpoints(recording_platform)["demoCamera"]

    def call(method: str, path: str, **kw: object) -> requests.Response:
        return api.call(method, path, token=token, **kw)  # type: ignore[arg-type]

    # A stream that only records, kept 30 days
    r = call("POST", "/streams", json={"name": "Demo camera", "sourceUrl": camera, "record": True,
                                        "relay": False, "retentionDays": 30})  # fmt: skip
    assert r.status_code == 201, r.text
    sid = r.json()["streamId"]
    assert (r.json()["record"], r.json()["kvsStreamName"], r.json()["retentionDays"]) == (True, None, 30)
    assert call("POST", f"/streams/{sid}/start").status_code == 202

    # A session appears, recording, with a live playlist that plays without a bearer token
    def recording() -> dict | None:
        items = call("GET", f"/streams/{sid}/sessions").json()["items"]
        return items[0] if items and items[0]["state"] == "recording" else None

    session = poll(recording, 60, "a recording session")
    rec = session["sessionId"]
    assert session["storeSource"] == "default" and session["writerCount"] == 1
    live_url = call("GET", f"/streams/{sid}/sessions/{rec}").json()["livePlaylistUrl"]
    assert live_url and "token=" in live_url

    def live_segments() -> str | None:
        got = requests.get(live_url, timeout=10)
        return got.text if got.status_code == 200 and got.text.count("#EXTINF:") >= 2 else None

    playlist = poll(live_segments, 60, "two segments in the live playlist")
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in playlist and "#EXT-X-ENDLIST" not in playlist
    segment_url = next(line for line in playlist.splitlines() if line and not line.startswith("#"))
    segment = requests.get(segment_url, timeout=10)
    assert segment.status_code == 200 and segment.content[:1] == b"\x47"  # MPEG-TS
    # ...and hls.js in headless Chromium plays it, from a page of another origin, with no header
    report = play_in_chromium(PAGE.format(gateway=api.url, master=live_url))
    assert report["errors"] == [] and report["readyState"] >= 2, report
    assert report["currentTime"] > 0 and (report["width"], report["height"]) == (320, 240), report
    assert requests.get(live_url.split("?")[0], timeout=10).status_code == 403  # no token
    assert requests.get(live_url[:-3] + "000", timeout=10).status_code == 403  # a bad token

    # While it records: no finalize, no export
    assert call("POST", f"/streams/{sid}/sessions/{rec}/finalize").status_code == 409
    r = call("POST", f"/streams/{sid}/sessions/{rec}/exports", json={"start": 0, "end": 2})
    assert r.status_code == 409 and "recording" in r.json()["message"]

    # A few seconds more, then stop
    time.sleep(4)
    assert call("POST", f"/streams/{sid}/stop").status_code == 202
    poll(lambda: call("GET", f"/streams/{sid}").json()["state"] == "stopped", 60, "the stream to stop")

    # Finalize by hand, twice: both accepted, one workflow
    first = call("POST", f"/streams/{sid}/sessions/{rec}/finalize")
    second = call("POST", f"/streams/{sid}/sessions/{rec}/finalize")
    assert first.status_code in (200, 202), first.text
    assert second.status_code in (200, 202), second.text

    def ready() -> dict | None:
        s = call("GET", f"/streams/{sid}/sessions/{rec}").json()
        assert s["state"] != "failed", s
        return s if s["state"] == "ready" else None

    done = poll(ready, 120, "the session to be finalized")
    video_id = done["videoId"]
    assert video_id and done["durationSeconds"] >= 4 and done["livePlaylistUrl"] is None
    again = call("POST", f"/streams/{sid}/sessions/{rec}/finalize")
    assert again.status_code == 200 and again.json()["videoId"] == video_id

    # The listing shows it; the video plays like an upload
    listed = call("GET", f"/streams/{sid}/sessions", params={"limit": 5}).json()
    assert [s["sessionId"] for s in listed["items"]][:1] == [rec]
    video = api.call("GET", f"/videos/{video_id}").json()
    assert video["source"] == "recording" and video["status"] == "ready"
    master = requests.get(video["playbackUrl"], timeout=10)
    assert master.status_code == 200 and "#EXT-X-STREAM-INF" in master.text

    # Bad exports
    exports = f"/streams/{sid}/sessions/{rec}/exports"
    for body in ({"start": 3, "end": 1}, {"start": -1, "end": 2}, {"start": 0, "end": 99999}, {"start": 0}):
        r = call("POST", exports, json=body)
        assert r.status_code == 400 and set(r.json()) == {"error", "message"}, (body, r.text)
    assert (
        call("POST", f"/streams/{sid}/sessions/nope/exports", json={"start": 0, "end": 2}).status_code == 404
    )
    assert call("GET", f"{exports}/0123456789abcdef").status_code == 404
    assert call("GET", f"/streams/nope/sessions/{rec}").status_code == 404

    # Export 2 seconds and probe the MP4
    r = call("POST", exports, json={"start": 0, "end": 2})
    assert r.status_code == 202, r.text
    export_id = r.json()["exportId"]

    def exported() -> dict | None:
        e = call("GET", f"{exports}/{export_id}").json()
        assert e["state"] != "failed", e["failureReason"]
        return e if e["state"] == "ready" else None

    e = poll(exported, 120, "the MP4 export")
    mp4 = tmp_path / "export.mp4"
    mp4.write_bytes(requests.get(e["downloadUrl"], timeout=30).content)
    probed = ffprobe_json(mp4)
    duration = float(probed["format"]["duration"])
    assert 1.5 <= duration <= 4.5, probed["format"]  # whole segments cover [0, 2)
    assert abs(duration - e["durationSeconds"]) < 0.6
    assert probed["streams"][0]["codec_name"] == "h264"

    # Made private by its operator: every playlist, segment and export leaves the public path
    public_media = _media_urls(video["playbackUrl"], "")
    r = call("PATCH", f"/videos/{video_id}", json={"visibility": "private"})
    assert r.status_code == 200 and r.json()["visibility"] == "private", r.text
    for url in public_media:
        assert requests.get(url, timeout=10).status_code == 404, url
    assert requests.get(e["downloadUrl"], timeout=10).status_code == 404
    # ...and plays only with the owner's signed link, every playlist and segment of it
    signed = call("GET", f"/me/videos/{video_id}").json()["playbackUrl"]
    url, _, query = signed.partition("?")
    assert "/media/private-outputs/" in url and query
    private_media = _media_urls(url, query)
    assert len(private_media) == len(public_media)
    assert all("/private-outputs/" in u for u in private_media)
    for u in private_media:
        assert requests.get(u, timeout=10).status_code == 200, u
        assert requests.get(u.split("?")[0], timeout=10).status_code == 403, u
    # ...its export too, and a new export of it is written and signed where only its owner reaches
    moved = call("GET", f"{exports}/{export_id}").json()["downloadUrl"]
    assert (
        "/private-outputs/exports/" in moved and requests.get(moved, timeout=30).content == mp4.read_bytes()
    )
    assert requests.get(moved.split("?")[0], timeout=10).status_code == 403
    r = call("POST", exports, json={"start": 0, "end": 2})
    assert r.status_code == 202, r.text
    export_id = r.json()["exportId"]
    e = poll(exported, 120, "the private recording's MP4 export")
    assert "/private-outputs/exports/" in e["downloadUrl"]
    assert requests.get(e["downloadUrl"].split("?")[0], timeout=10).status_code == 403
    mp4.write_bytes(requests.get(e["downloadUrl"], timeout=30).content)
    assert ffprobe_json(mp4)["streams"][0]["codec_name"] == "h264"


def _media_urls(master_url: str, query: str) -> list[str]:
    """The master's URL, its renditions' playlists and their segments' URLs, each with ``query`` (the
    web player repeats a private video's signed query on every request under its prefix)."""

    def with_query(url: str) -> str:
        return f"{url}?{query}" if query else url

    def entries(url: str) -> list[str]:
        got = requests.get(with_query(url), timeout=10)
        assert got.status_code == 200, url
        return [urljoin(url, line) for line in got.text.splitlines() if line and not line.startswith("#")]

    urls = [master_url]
    for playlist in entries(master_url):
        urls += [playlist, *entries(playlist)]
    return [with_query(u) for u in urls]
