"""Recordings as an operator meets them, against a real platform recording the demo RTSP camera:
the web pages (Playwright driving Debian's Chromium) and the `reelay recordings` commands.

One platform for the module (starting one is the slow part). Its recording sweep is set to an hour,
so a session that ends stays ``ended`` until the test finalizes it by hand: the click, not the sweep,
turns it into a video.
"""

# ruff: noqa: F811  (the test functions take the imported fixtures as parameters)
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.e2e.conftest import PASSWORD, ROOT, Api, PlatformProcess, own_platform
from tests.e2e.test_relay_platform import endpoints, operator_token
from tests.e2e.test_web import PHONE, SCREENSHOTS, browser, page, phone, playwright  # noqa: F401
from tests.e2e.test_web_streams import log_in
from tests.media_fixtures import ffprobe_json
from tests.relay_fixtures import wait_until as poll

pytestmark = [pytest.mark.media, pytest.mark.mysql]
REELAY = Path(sys.executable).with_name("reelay")
# The README's picture of a recording's page: refreshed with REELAY_DOCS_SCREENSHOTS=1.
DOCS_SCREENSHOT = ROOT / "docs" / "web-recordings.png"
PLAYS = (
    "() => { const v = document.querySelector('video'); if (!v) return false; v.muted = true;"
    " if (v.paused) v.play().catch(() => {}); return v.currentTime > 1.0; }"
)


@pytest.fixture(scope="module")
def rec_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    with own_platform(
        tmp_path_factory,
        "reelay_rec_ui",
        env={"REELAY_RELAY_METRICS_SECONDS": "5", "REELAY_RECORDING_SWEEP_SECONDS": "3600"},
        extra_args=("--camera", "rtsp"),
    ) as p:
        # The URL alone: another thread's print can share the "Reelay is up: <url>" line.
        p.url = re.match(r"http://[\w.\-]+:\d+", p.url).group(0)  # type: ignore[union-attr]
        yield p


def sessions(api: Api, token: str, stream_id: str) -> list[dict[str, Any]]:
    r = api.call("GET", f"/streams/{stream_id}/sessions", token=token)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def recorded_for(api: Api, token: str, stream_id: str, seconds: float) -> dict[str, Any] | None:
    items = sessions(api, token, stream_id)
    if items and items[0]["state"] == "recording" and (items[0]["durationSeconds"] or 0) >= seconds:
        return items[0]
    return None


def video_plays(page: Page, timeout: float = 45_000) -> None:
    page.wait_for_function(PLAYS, timeout=timeout, polling=250)
    assert page.get_by_test_id("player").evaluate("v => v.videoWidth") > 0


# --- the web pages -------------------------------------------------------------------------------
def test_an_operator_records_the_camera_watches_it_live_finalizes_plays_and_exports(
    page: Page, rec_platform: PlatformProcess
) -> None:
    api = Api(rec_platform)
    email, token = operator_token(rec_platform, api)
    log_in(page, rec_platform, email)
    camera = endpoints(rec_platform)["demoCamera"]

    # Given a stream added with recording on, from the form, by label and keyboard
    page.goto(rec_platform.url + "/live/new")
    page.get_by_label("Name", exact=True).fill("Recorded camera")
    page.get_by_label("Source URL", exact=True).fill(camera)
    page.get_by_role("radio", name=re.compile("^Passthrough")).check()
    record = page.get_by_role("checkbox", name=re.compile("^Record this stream"))
    record.focus()
    page.keyboard.press("Space")
    expect(record).to_be_checked()
    # (a bad retention is refused next to its field, before any request)
    retention = page.get_by_label("Retention (days)")
    retention.fill("0")
    page.get_by_role("button", name="Create stream").click()
    expect(retention).to_have_attribute("aria-invalid", "true")
    expect(retention).to_be_focused()
    expect(retention).to_have_accessible_description(re.compile("whole number of days from 1 to 3650"))
    retention.fill("7")
    page.get_by_role("button", name="Create stream").click()
    expect(page.get_by_role("heading", name="Recorded camera", exact=True)).to_be_visible()
    stream_id = page.url.rsplit("/", 1)[1]
    stream = api.call("GET", f"/streams/{stream_id}", token=token).json()
    assert (stream["record"], stream["retentionDays"], stream["recordRenditions"]) == (True, 7, [])
    recordings = page.get_by_role("region", name="Recordings")
    expect(recordings).to_contain_text("No recordings yet.")
    settings = page.get_by_role("region", name="Recording settings")
    expect(settings.get_by_role("checkbox", name=re.compile("^Record this stream"))).to_be_checked()
    expect(settings.get_by_label("Retention (days)")).to_have_value("7")

    # When they start it, a session appears in the list, recording
    page.get_by_role("button", name="Start", exact=True).click()
    row = recordings.locator("tbody tr").first
    expect(row.get_by_test_id("session-state")).to_have_text("●recording", timeout=60_000)
    # And its page plays the live playlist
    row.get_by_role("link", name="Watch live").click()
    expect(page.get_by_role("heading", name=re.compile("^Recording from"))).to_be_visible()
    expect(page.get_by_role("region", name="Live")).to_be_visible(timeout=30_000)
    video_plays(page)
    session_id = page.url.rsplit("/", 1)[1]
    session_url = page.url

    # When the stream is stopped (after a few seconds of media) the session ends
    poll(lambda: recorded_for(api, token, stream_id, 6), 60, "six seconds of recording")
    page.get_by_role("link", name="← Recorded camera").click()
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(page.get_by_test_id("stream-state")).to_have_text("■stopped", timeout=30_000)
    expect(row.get_by_test_id("session-state")).to_have_text("■ended", timeout=30_000)
    expect(row.get_by_test_id("duration")).to_have_text(re.compile(r"^0:\d\d$"))
    expect(row.get_by_role("cell", name="not yet")).to_be_visible()

    # And "Finalize now" on its page turns it into a video that plays
    page.goto(session_url)
    badge = page.get_by_test_id("session-state")
    expect(badge).to_have_text("■ended")
    page.get_by_role("button", name="Finalize now").click()
    expect(badge).to_have_text("✓ready", timeout=120_000)
    shown = api.call("GET", f"/streams/{stream_id}/sessions/{session_id}", token=token).json()
    assert shown["state"] == "ready" and shown["videoId"] and shown["livePlaylistUrl"] is None
    expect(page.get_by_role("region", name="Video")).to_be_visible()
    video_plays(page)
    expect(page.get_by_role("button", name=re.compile("^Finali"))).to_have_count(0)

    # When they ask for an export past the end, the page says why, next to the field
    export = page.get_by_role("region", name="Export an MP4")
    duration = float(shown["durationSeconds"])
    end = export.get_by_label("End", exact=True)
    end.fill(str(int(duration) + 5))
    export.get_by_role("button", name="Export").click()
    expect(end).to_have_attribute("aria-invalid", "true")
    expect(end).to_have_accessible_description(re.compile("the end must be within it"))
    # And a valid range exports, the page polling until the download link shows
    export.get_by_label("Start", exact=True).fill("0")
    end.fill("0:02")
    export.get_by_role("button", name="Export").click()
    link = export.get_by_role("link", name="Download the MP4")
    expect(link).to_be_visible(timeout=120_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = page.screenshot(path=str(SCREENSHOTS / DOCS_SCREENSHOT.name), full_page=True)
    if os.environ.get("REELAY_DOCS_SCREENSHOTS") == "1":
        DOCS_SCREENSHOT.write_bytes(shot)
    mp4 = requests.get(str(link.get_attribute("href")), timeout=30)
    assert mp4.status_code == 200 and mp4.content[4:8] == b"ftyp", mp4.content[:16]

    # And the stream page lists the session ready, with a link to its video
    page.get_by_role("link", name="← Recorded camera").click()
    expect(row.get_by_test_id("session-state")).to_have_text("✓ready")
    row.get_by_role("link", name="Watch the video").click()
    expect(page).to_have_url(re.compile(f"/watch/{shown['videoId']}$"))


def test_recordings_pages_at_phone_width_and_in_words_when_things_fail(
    phone: Page, rec_platform: PlatformProcess
) -> None:
    # Given an operator with a stream (through the API: this test is about the pages)
    api = Api(rec_platform)
    email, token = operator_token(rec_platform, api)
    log_in(phone, rec_platform, email)
    r = api.call(
        "POST", "/streams", token=token, json={"name": "Phone cam", "sourceUrl": "rtsp://cam.example/x"}
    )
    assert r.status_code == 201, r.text
    stream_id = r.json()["streamId"]

    # When the recording settings change while stopped, only what changed is sent
    phone.goto(f"{rec_platform.url}/live/{stream_id}")
    settings = phone.get_by_role("region", name="Recording settings")
    settings.get_by_role("checkbox", name=re.compile("^Record this stream")).check()
    settings.get_by_role("checkbox", name="720p").check()
    settings.get_by_label("Object store URL (optional)").fill("ftp://nowhere")
    settings.get_by_role("button", name="Save recording settings").click()
    store = settings.get_by_label("Object store URL (optional)")
    expect(store).to_have_attribute("aria-invalid", "true")
    store.fill("")
    settings.get_by_role("button", name="Save recording settings").click()
    expect(settings.get_by_role("status")).to_have_text("Recording settings saved.")
    stream = api.call("GET", f"/streams/{stream_id}", token=token).json()
    assert (stream["record"], stream["recordRenditions"]) == (True, ["720p"])
    # And the page fits the phone
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    phone.screenshot(path=str(SCREENSHOTS / "web-recordings-phone.png"), full_page=True)
    width = phone.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width

    # When a session does not exist, the page says so (a real page, not a blank one)
    phone.goto(f"{rec_platform.url}/live/{stream_id}/recordings/no-such-session")
    expect(phone.get_by_role("heading", name="No such recording")).to_be_visible()
    # And when the sessions call fails hard, the stream page says it in words and offers a retry
    phone.route(re.compile(r".*/sessions\?limit=.*"), lambda route: route.fulfill(status=503, body="down"))
    phone.goto(f"{rec_platform.url}/live/{stream_id}")
    alert = phone.get_by_role("region", name="Recordings").get_by_role("alert")
    expect(alert).to_contain_text("The recordings could not be loaded.", timeout=30_000)
    expect(alert).to_contain_text("Reelay is having trouble right now (error 503)")
    phone.unroute(re.compile(r".*/sessions\?limit=.*"))
    alert.get_by_role("button", name="Try again").click()
    expect(phone.get_by_role("region", name="Recordings")).to_contain_text("No recordings yet.")


# --- the CLI -------------------------------------------------------------------------------------
def test_the_cli_records_finalizes_and_exports(rec_platform: PlatformProcess, tmp_path: Path) -> None:
    api = Api(rec_platform)
    email, token = operator_token(rec_platform, api)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELAY_")}
    env |= {"REELAY_CONFIG_DIR": str(tmp_path / "config"), "REELAY_CACHE_DIR": str(tmp_path / "cache")}

    def reelay(*args: str, stdin: str = "", timeout: float = 180) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(REELAY), "--api", rec_platform.url, *args],
            input=stdin,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def as_json(*args: str, code: int = 0) -> Any:
        done = reelay("--json", *args)
        assert done.returncode == code, done.stderr
        return json.loads(done.stdout)

    assert reelay("login", "--email", email, "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    camera = endpoints(rec_platform)["demoCamera"]
    stream = as_json("streams", "create", "CLI camera", camera, "--record", "--retention-days", "3")
    sid = stream["streamId"]
    assert (stream["record"], stream["retentionDays"]) == (True, 3)
    assert as_json("recordings", "list", sid)["items"] == []
    as_json("streams", "start", sid)

    # A session records; `show` gives its live playlist, which plays without a token header
    live = poll(lambda: recorded_for(api, token, sid, 6), 90, "six seconds of recording")
    shown = as_json("recordings", "show", sid, live["sessionId"])
    playlist = requests.get(shown["livePlaylistUrl"], timeout=10)
    assert playlist.status_code == 200 and "#EXTINF" in playlist.text
    # Finalizing while it records is refused in words, exit 1
    refused = reelay("recordings", "finalize", sid, live["sessionId"])
    assert refused.returncode == 1 and "stop the stream" in refused.stderr.lower()

    as_json("streams", "stop", sid)
    poll(lambda: sessions(api, token, sid)[0]["state"] == "ended", 60, "the session to end")
    listed = reelay("recordings", "list", sid)
    assert listed.returncode == 0 and live["sessionId"] in listed.stdout and "ended" in listed.stdout

    # finalize --wait follows it to ready and shows the video's playback URL
    done = reelay("recordings", "finalize", sid, live["sessionId"], "--wait", "--timeout", "150")
    assert done.returncode == 0, done.stderr
    assert re.search(r"^playback:\s+http\S+\.m3u8$", done.stdout, re.M), done.stdout
    ready = as_json("recordings", "show", sid, live["sessionId"])
    assert ready["state"] == "ready" and ready["video"]["status"] == "ready"

    # An export past the end: the API's 400, exit 1; a good one downloads a real MP4
    too_far = reelay("recordings", "export", sid, live["sessionId"], "--start", "0", "--end", "9999")
    assert too_far.returncode == 1 and "error:" in too_far.stderr
    target = tmp_path / "clip.mp4"
    started = time.monotonic()
    doc = as_json(
        "recordings", "export", sid, live["sessionId"], "--start", "0", "--end", "2", "-o", str(target)
    )
    assert doc["state"] == "ready" and doc["bytesWritten"] == target.stat().st_size > 0, doc
    probe = ffprobe_json(target)
    assert probe["streams"][0]["codec_name"] == "h264"
    assert float(probe["format"]["duration"]) > 0.5, (probe["format"], time.monotonic() - started)


def test_every_session_state_is_in_words_and_a_failed_one_says_why(
    page: Page, rec_platform: PlatformProcess
) -> None:
    # Given a stream whose sessions are in every state (the answers are stubbed: the words are the page's)
    api = Api(rec_platform)
    email, token = operator_token(rec_platform, api)
    log_in(page, rec_platform, email)
    r = api.call(
        "POST", "/streams", token=token, json={"name": "Stub cam", "sourceUrl": "rtsp://cam.example/x"}
    )
    stream_id = r.json()["streamId"]
    states = ["recording", "ended", "finalizing", "ready", "failed", "expired"]

    def session(n: int, state: str) -> dict[str, Any]:
        return {
            "sessionId": f"s{n}",
            "streamId": stream_id,
            "state": state,
            "startedAt": f"2026-01-02T03:0{n}:00.000Z",
            "endedAt": None if state == "recording" else "2026-01-02T03:30:00.000Z",
            "endReason": None,
            "durationSeconds": 65.0 + n,
            "store": "file:///media",
            "storeSource": "default",
            "storeFallbackReason": None,
            "writerCount": 1,
            "discontinuities": 0,
            "renditions": [],
            "videoId": "rec-v3" if state == "ready" else None,
            "failureReason": "no segments were stored" if state == "failed" else None,
            "workflowState": "merge" if state == "failed" else None,
            "createdAt": "2026-01-02T03:00:00.000Z",
            "updatedAt": "2026-01-02T03:00:00.000Z",
        }

    items = [session(n, state) for n, state in enumerate(states)]
    page.route(
        re.compile(r".*/sessions\?limit=.*"),
        lambda route: route.fulfill(json={"items": items, "nextCursor": None}),
    )
    page.route(
        re.compile(r".*/sessions/s4$"),
        lambda route: route.fulfill(json=items[4] | {"livePlaylistUrl": None}),
    )
    finalized: list[str] = []

    def finalize(route: Any) -> None:
        finalized.append(route.request.method)
        route.fulfill(
            status=409, json={"error": "conflict", "message": "the store is unreachable; try later"}
        )

    page.route(re.compile(r".*/sessions/s4/finalize$"), finalize)

    # When the stream's page opens
    page.goto(f"{rec_platform.url}/live/{stream_id}")
    table = page.get_by_role("table", name="Recordings")
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(6)
    # Then each state has its word and shape, the duration, and what can be watched
    words = ["●recording", "■ended", "◔finalizing", "✓ready", "✕failed", "⌛expired"]
    for n, word in enumerate(words):
        expect(rows.nth(n).get_by_test_id("session-state")).to_have_text(word)
        expect(rows.nth(n).get_by_test_id("duration")).to_have_text(f"1:{5 + n:02d}")
    expect(rows.nth(0).get_by_role("link", name="Watch live")).to_be_visible()
    expect(rows.nth(3).get_by_role("link", name="Watch the video")).to_have_attribute("href", "/watch/rec-v3")
    expect(rows.nth(5)).to_contain_text("deleted by retention")
    # And the failed one says why, in the list and on its page
    expect(rows.nth(4).get_by_test_id("failure-reason")).to_have_text("no segments were stored")
    rows.nth(4).get_by_role("link").first.click()
    expect(page.get_by_role("alert")).to_contain_text("no segments were stored")
    expect(page.get_by_role("region", name="Export an MP4")).to_contain_text("once it is ready")
    # And finalizing it again, refused, is said in words (by keyboard)
    again = page.get_by_role("button", name="Finalize again")
    again.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_text("the store is unreachable; try later")).to_be_visible()
    assert finalized == ["POST"]
    # And the session's page fits a phone's width
    page.set_viewport_size(PHONE)
    expect(page.get_by_role("button", name="Finalize again")).to_be_in_viewport()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width

    # And a session recording to a store its webhook chose says why it does not play live
    page.route(
        re.compile(r".*/sessions/s0$"),
        lambda route: route.fulfill(json=items[0] | {"storeSource": "webhook", "livePlaylistUrl": None}),
    )
    page.goto(f"{rec_platform.url}/live/{stream_id}/recordings/s0")
    live = page.get_by_role("region", name="Live")
    expect(live).to_contain_text("chosen by its webhook")
    expect(live).to_contain_text("plays here once it is finalized")
    expect(page.get_by_test_id("player")).to_have_count(0)
