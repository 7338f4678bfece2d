"""The operator's live-stream pages in a real browser: Playwright drives Debian's Chromium against a
platform with the demo RTSP camera (``--camera rtsp``), as an operator would use them.

The browser fixtures come from ``test_web`` (a fresh context per test, a screenshot on failure); the
platform and the operator set-up from ``test_relay_platform`` (sign up, ``python -m local
make-operator``, log in again).
"""

# ruff: noqa: F811  (the test functions take the imported fixtures as parameters)
from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import PASSWORD, ROOT, Api, PlatformProcess, new_email
from tests.e2e.test_relay_platform import endpoints, live_platform, operator_token  # noqa: F401

# test_web's browser fixtures, registered here by their import (hence the file's F811 waiver).
from tests.e2e.test_web import PHONE, SCREENSHOTS, browser, page, phone, playwright  # noqa: F401

pytestmark = [pytest.mark.media, pytest.mark.mysql]
# The README's picture: refreshed with REELAY_DOCS_SCREENSHOTS=1, so a plain test run leaves the
# tracked file alone (it keeps its copy in .state/screenshots).
DOCS_SCREENSHOT = ROOT / "docs" / "web-streams.png"
AGO = re.compile(r"(just now|\d+ (s|min) ago)")


@pytest.fixture(scope="module")
def live_web(live_platform: PlatformProcess) -> PlatformProcess:
    """test_relay_platform's platform (the demo RTSP camera, relay metrics every 5 s), its URL kept
    alone: another thread's print can share the "Reelay is up: <url>" line."""
    live_platform.url = re.match(r"http://[\w.\-]+:\d+", live_platform.url).group(0)  # type: ignore[union-attr]
    return live_platform


def log_in(page: Page, platform: PlatformProcess, email: str) -> None:
    page.goto(platform.url + "/login")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="My videos")).to_be_visible()


def operator(page: Page, platform: PlatformProcess) -> tuple[Api, str]:
    """A new operator, logged in in the page; the API client and their token for checks."""
    api = Api(platform)
    email, token = operator_token(platform, api)
    log_in(page, platform, email)
    return api, token


def fact(page: Page, term: str):  # type: ignore[no-untyped-def]
    return page.locator(f'dd[data-fact="{term}"]')


def test_an_operator_creates_starts_stops_and_deletes_the_demo_camera(
    page: Page, live_web: PlatformProcess
) -> None:
    # Given an operator, logged in again after joining the group
    api, token = operator(page, live_web)
    camera = endpoints(live_web)["demoCamera"]

    # When they open Streams from the navigation: none yet
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Streams").click()
    expect(page.get_by_role("heading", name="Live streams")).to_be_visible()
    expect(page.get_by_text("No streams yet.")).to_be_visible()

    # And add the demo camera, picking the video mode by its label
    page.get_by_role("link", name="Add a stream").click()
    page.get_by_label("Name", exact=True).fill("Demo camera")
    page.get_by_label("Source URL", exact=True).fill(camera)
    page.get_by_role("radio", name=re.compile("^Passthrough")).check()
    page.get_by_role("button", name="Create stream").click()
    # Then its page shows it stopped, with its source, mode and a place for recordings
    expect(page.get_by_role("heading", name="Demo camera", exact=True)).to_be_visible()
    badge = page.get_by_test_id("stream-state")
    expect(badge).to_have_text("■stopped")
    expect(fact(page, "URL")).to_have_text(camera)
    expect(fact(page, "Video")).to_have_text("passthrough")
    expect(fact(page, "Stored secrets")).to_have_text("none")
    recordings = page.get_by_role("region", name="Recordings")
    expect(recordings).to_contain_text("Recording is off for this stream.")
    expect(recordings).to_contain_text("No recordings yet.")
    stream_id = page.url.rsplit("/", 1)[1]

    # When they start it from the keyboard
    start = page.get_by_role("button", name="Start", exact=True)
    start.focus()
    page.keyboard.press("Enter")
    # Then the page says so at once (announced: the badge is a live region), keeping the focus where it was
    expect(page.get_by_role("status").filter(has=badge)).to_contain_text("starting")
    expect(start).to_be_focused()
    expect(start).to_be_disabled()
    # And it follows the relay until it runs, with its health
    expect(badge).to_have_text("●running", timeout=60_000)
    expect(fact(page, "Desired state")).to_have_text("running")
    expect(fact(page, "Input bitrate")).to_have_text(re.compile(r"^\d+(\.\d)? (k|M)bit/s$"), timeout=30_000)
    expect(fact(page, "Last fragment acknowledged")).to_contain_text(AGO, timeout=30_000)
    expect(fact(page, "Last fragment number")).to_have_text(re.compile(r"\d+"))
    expect(fact(page, "Task id")).not_to_be_empty()
    expect(fact(page, "Last heartbeat")).to_contain_text(AGO)
    expect(fact(page, "Current outage")).to_have_text("none")
    shown = api.call("GET", f"/streams/{stream_id}", token=token).json()
    assert shown["state"] == "running" and shown["inputBitrateBps"] > 0
    expect(fact(page, "Task id")).to_have_text(shown["task"]["taskId"])
    # (the README's picture of the stream page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = page.screenshot(path=str(SCREENSHOTS / DOCS_SCREENSHOT.name), full_page=True)
    if os.environ.get("REELAY_DOCS_SCREENSHOTS") == "1":
        DOCS_SCREENSHOT.write_bytes(shot)

    # And the list shows it running with its bitrate and last acknowledgement
    page.get_by_role("link", name="← Live streams").click()
    row = page.get_by_role("row", name="Demo camera")
    expect(row.get_by_test_id("stream-state")).to_have_text("●running")
    expect(row.get_by_test_id("bitrate")).to_have_text(re.compile(r"bit/s$"))
    expect(row.get_by_test_id("last-ack")).to_contain_text(AGO)
    expect(row.get_by_role("cell").first).to_have_text(camera)

    # When they stop it
    row.get_by_role("link", name="Demo camera").click()
    page.get_by_role("button", name="Stop", exact=True).click()
    # Then it shows stopping, then stopped, and the task is gone
    expect(badge).to_have_text(re.compile("stopping"))
    expect(badge).to_have_text("■stopped", timeout=30_000)
    expect(page.get_by_text("No relay task holds this stream.")).to_be_visible()

    # When they rename it
    page.get_by_label("Stream name", exact=True).fill("Front door")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("heading", name="Front door", exact=True)).to_be_visible()

    # And delete it, confirming
    page.get_by_role("button", name="Delete stream").click()
    page.get_by_role("button", name="Yes, delete it").click()
    # Then they are back on an empty list, and the stream is gone
    expect(page.get_by_role("heading", name="Live streams")).to_be_visible()
    expect(page.get_by_text("No streams yet.")).to_be_visible()
    assert api.call("GET", f"/streams/{stream_id}", token=token).status_code == 404


def test_a_person_who_is_not_an_operator_gets_the_operators_only_page(
    page: Page, live_web: PlatformProcess
) -> None:
    # Given a signed-in person who is not an operator
    email = new_email()
    Api(live_web).sign_up(email)
    log_in(page, live_web, email)
    # Then the navigation offers no Streams entry
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="My videos")).to_be_visible()
    expect(nav.get_by_role("link", name="Streams")).to_have_count(0)
    # And a direct visit to any stream page says operators only, in words
    for path in ("/live", "/live/new", "/live/some-stream"):
        answer = page.goto(live_web.url + path)
        assert answer is not None and answer.status == 200, path
        expect(page.get_by_role("heading", name="Operators only")).to_be_visible()
        expect(page.get_by_text("log out and log in again")).to_be_visible()
        expect(page.get_by_role("alert")).to_have_count(0)


def test_a_bad_source_url_is_explained_next_to_the_field_and_creates_nothing(
    page: Page, live_web: PlatformProcess
) -> None:
    # Given an operator on the form
    api, token = operator(page, live_web)
    page.goto(live_web.url + "/live/new")
    page.get_by_label("Name", exact=True).fill("Bad source")
    source = page.get_by_label("Source URL", exact=True)

    for bad in ("ftp://x", "rtsp://169.254.169.254/x"):
        # When they give a source the API refuses
        source.fill(bad)
        page.get_by_role("button", name="Create stream").click()
        # Then the API's own message shows next to the field, which is marked invalid
        said = api.call("POST", "/streams", token=token, json={"name": "Bad source", "sourceUrl": bad})
        assert said.status_code == 400, said.text
        message = said.json()["message"]
        assert message.startswith("sourceUrl"), message
        expect(source).to_have_attribute("aria-invalid", "true")
        expect(source).to_be_focused()
        expect(source).to_have_accessible_description(re.compile(re.escape(message)))
        expect(page.locator(".field-error")).to_have_text(message)
        assert "/live/new" in page.url

    # And a password typed into an rtsp URL is flagged as stored encrypted, never shown again
    source.fill("rtsp://viewer:s3cret@camera.example/stream1")
    expect(page.get_by_role("status")).to_contain_text("stored encrypted")
    expect(page.get_by_role("status")).to_contain_text("never shown")
    # And nothing was created
    assert api.call("GET", "/streams", token=token).json()["items"] == []


def test_the_streams_list_at_phone_width_and_its_polling(phone: Page, live_web: PlatformProcess) -> None:
    # Given an operator with two streams (made through the API: this test is about the page)
    api, token = operator(phone, live_web)
    for name, url in (
        (
            "Lobby camera with a rather long name",
            "rtsp://viewer:s3cret@camera-lobby.example:8554/streams/main",
        ),
        ("Roof", "srt://roof.example:9000?latency=200&passphrase=0123456789abcdef"),
    ):
        r = api.call("POST", "/streams", token=token, json={"name": name, "sourceUrl": url})
        assert r.status_code == 201, r.text
        assert r.json()["sourceSecrets"]  # the secrets went into the vault, not the URL
    asked: list[str] = []
    phone.on("request", lambda r: asked.append(r.url) if re.search(r"/streams\?", r.url) else None)

    # When the list opens on a phone
    phone.get_by_role("navigation", name="Main").get_by_role("link", name="Streams").click()
    rows = phone.get_by_role("table", name="Live streams").get_by_role("row")
    expect(rows.filter(has_text="Roof")).to_be_visible()
    # Then the redacted sources and states show, and nothing overflows sideways
    expect(phone.get_by_text("s3cret")).to_have_count(0)
    expect(phone.get_by_text("passphrase")).to_have_count(0)
    expect(rows.filter(has_text="Roof").get_by_test_id("stream-state")).to_have_text("■stopped")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    phone.screenshot(path=str(SCREENSHOTS / "web-streams-phone.png"), full_page=True)
    width = phone.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    for link in phone.get_by_role("navigation", name="Main").get_by_role("link").all():
        box = link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]

    # And the list refreshes itself while visible...
    phone.wait_for_timeout(6_500)  # a little over two polling periods (3 s)
    assert len(asked) >= 3, asked
    # ...and not at all while the tab is hidden
    phone.evaluate(
        """() => {
            Object.defineProperty(document, "visibilityState", {value: "hidden", configurable: true});
            document.dispatchEvent(new Event("visibilitychange"));
        }"""
    )
    hidden_from = len(asked)
    phone.wait_for_timeout(6_500)
    assert len(asked) == hidden_from, asked[hidden_from:]

    # And a stream's page fits the phone too, naming the secrets without showing them
    phone.goto(live_web.url + "/live")
    phone.get_by_role("link", name="Lobby camera with a rather long name").click()
    expect(fact(phone, "Stored secrets")).to_contain_text("password")
    width = phone.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width


def stubbed_stream(n: int, state: str, **overrides: Any) -> dict[str, Any]:
    """A stream as the API answers it, for pages whose answers a test stubs."""
    return {
        "streamId": f"s{n:02d}",
        "name": f"Camera {n:02d}",
        "sourceUrl": f"rtsp://cam{n}.example/live",
        "sourceProtocol": "rtsp",
        "sourceSecrets": [],
        "kvsStreamName": f"reelay-s{n:02d}",
        "video": "auto",
        "desiredState": "stopped" if state in ("stopped", "stopping") else "running",
        "state": state,
        "stateSince": "2026-01-02T03:04:05.000Z",
        "outageCause": "the camera stopped answering (RTSP timeout)" if state == "reconnecting" else None,
        "outageSince": "2026-01-02T03:04:05.000Z" if state == "reconnecting" else None,
        "reconnects": n,
        "inputBitrateBps": 1_250_000 if state == "running" else None,
        "lastFragmentNumber": None,
        "lastFragmentTimecode": None,
        "lastFragmentAckedAt": None,
        "credentialsExpireAt": None,
        "slateOn": False,
        "slateSince": None,
        "slateFragmentsPersisted": 0,
        "task": None,
        "createdAt": "2026-01-02T03:04:05.000Z",
        "updatedAt": "2026-01-02T03:04:05.000Z",
    } | overrides


def test_the_stream_page_and_the_list_show_the_slate_on_since_when_then_off(
    page: Page, live_web: PlatformProcess
) -> None:
    # Given a transcoded camera that is down, KVS fed the slate for a minute (the answers are stubbed:
    # the real slate, through the real relay, is tests/integration/test_relay_slate.py)
    since = (datetime.now(UTC) - timedelta(seconds=70)).isoformat(timespec="milliseconds")
    since = since.replace("+00:00", "Z")
    slate = {"video": "transcode", "slateOn": True, "slateSince": since, "slateFragmentsPersisted": 35}
    answers = {"s01": stubbed_stream(1, "reconnecting", **slate), "s02": stubbed_stream(2, "running")}
    page.route(
        re.compile(r".*/streams/s0[12]$"), lambda route: route.fulfill(json=answers[route.request.url[-3:]])
    )
    page.route(
        re.compile(r".*/streams\?limit=.*"),
        lambda route: route.fulfill(json={"items": list(answers.values()), "nextCursor": None}),
    )
    email = new_email()
    Api(live_web).sign_up(email)
    log_in(page, live_web, email)

    # When the list opens, Then the slate is tagged on that stream's state, and on no other
    page.goto(live_web.url + "/live")
    expect(page.get_by_role("row", name="Camera 01").get_by_test_id("slate")).to_have_text("▨slate")
    expect(page.get_by_role("row", name="Camera 02").get_by_test_id("slate")).to_have_count(0)

    # When its page opens, Then the health says the slate is on, since when, and its fragments
    page.get_by_role("link", name="Camera 01").click()
    expect(page.get_by_role("status").get_by_test_id("slate")).to_be_visible()
    shown = fact(page, "Slate to KVS")
    expect(shown).to_contain_text(re.compile(r"^“camera offline” since 1 min ago "))
    expect(shown.locator("time")).to_have_attribute("datetime", since)
    expect(shown).to_contain_text("35 slate fragments persisted")

    # When the camera is back (the page polls), Then the slate is off and its fragments still counted
    answers["s01"] = stubbed_stream(1, "running", **(slate | {"slateOn": False, "slateSince": None}))
    expect(shown).to_have_text("off · 35 slate fragments persisted", timeout=10_000)
    expect(page.get_by_test_id("slate")).to_have_count(0)
    # And a stream that never had the slate says off, and nothing more
    page.goto(live_web.url + "/live/s02")
    expect(fact(page, "Slate to KVS")).to_have_text("off")


def test_the_list_pages_through_streams_and_names_every_state(page: Page, live_web: PlatformProcess) -> None:
    # Given 25 streams in every state (the list answers are stubbed: paging and badges are the page's)
    states = ["running", "starting", "reconnecting", "stopping", "stopped", "failed"]

    def stream(n: int) -> dict[str, Any]:
        return stubbed_stream(n, states[n % len(states)])

    asked: list[str] = []

    def answer(route: Any) -> None:
        asked.append(route.request.url)
        second = "cursor=after-20" in route.request.url
        items = [stream(n) for n in (range(20, 25) if second else range(20))]
        route.fulfill(json={"items": items, "nextCursor": None if second else "after-20"})

    email = new_email()
    Api(live_web).sign_up(email)
    log_in(page, live_web, email)
    page.route(re.compile(r".*/streams\?limit=.*"), answer)
    # When the list opens
    page.goto(live_web.url + "/live")
    rows = page.get_by_role("table", name="Live streams").locator("tbody tr")
    # Then it shows the first twenty, each state in words with its own shape
    expect(rows).to_have_count(20)

    def badge(name: str):  # type: ignore[no-untyped-def]
        return page.get_by_role("row", name=name).get_by_test_id("stream-state")

    expect(badge("Camera 00")).to_have_text("●running")
    expect(badge("Camera 01")).to_have_text("◔starting")
    expect(badge("Camera 02")).to_have_text("↻reconnecting: the camera stopped answering (RTSP timeout)")
    expect(badge("Camera 03")).to_have_text("◕stopping")
    expect(badge("Camera 04")).to_have_text("■stopped")
    expect(badge("Camera 05")).to_have_text("✕failed")
    expect(page.get_by_role("row", name="Camera 00").get_by_test_id("bitrate")).to_have_text("1.3 Mbit/s")
    expect(page.get_by_role("button", name="← Newer")).to_be_disabled()
    # When they go older, the next page comes from the cursor, and older is the end
    page.get_by_role("button", name="Older →").click()
    expect(rows).to_have_count(5)
    expect(page.get_by_role("row", name="Camera 24")).to_be_visible()
    expect(page.get_by_role("button", name="Older →")).to_be_disabled()
    assert "cursor=after-20" in asked[-1]
    # And back and newer return to the first page
    page.go_back()
    expect(rows).to_have_count(20)
    page.go_forward()
    expect(rows).to_have_count(5)
    page.get_by_role("button", name="← Newer").click()
    expect(rows).to_have_count(20)
