"""The web front end in a real browser: Playwright drives Debian's Chromium against the platform.

One platform and one browser for the module. The platform runs with the gateway's fault hook on
(local/gateway_faults.py) and a low multipart threshold, so the tests can drop part uploads and fail list
calls. Each test gets a fresh browser context (no shared session) and leaves a screenshot in
``.state/screenshots`` when it fails.
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from tests.e2e.conftest import MULTIPART_THRESHOLD, PASSWORD, ROOT, Api, PlatformProcess, new_email
from tests.e2e.test_browser_playback import CHROMIUM
from tests.e2e.test_upload_to_playback import wait_until_ready

SCREENSHOTS = ROOT / ".state" / "screenshots"
PART_BYTES = 5 * 1024**2  # S3's smallest part, which the API never goes below
PHONE = {"width": 375, "height": 740}


# --- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def web(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    """A platform of its own: the fault hook on, on a database of its own (another platform's
    start would re-enqueue the session platform's in-flight videos into this one's queue)."""
    from tests.conftest import scratch_database

    with scratch_database(f"{database_url.rsplit('/', 1)[1]}_web") as url:
        p = PlatformProcess(
            tmp_path_factory.mktemp("web-state"),
            database_url=url,
            env={
                "REELAY_LOCAL_FAULTS": "1",
                "REELAY_MULTIPART_THRESHOLD_BYTES": str(MULTIPART_THRESHOLD),
                "REELAY_MULTIPART_PART_BYTES": str(PART_BYTES),
            },
        )
        try:
            p.start()
            # Another thread's print can land on the same output line as "Reelay is up: <url>"
            # (print writes the text and the newline separately): keep the URL alone.
            p.url = re.match(r"http://[\w.\-]+:\d+", p.url).group(0)  # type: ignore[union-attr]
            yield p
        finally:
            if p.proc is not None:
                code = p.stop()
                assert code == 0, f"platform exited {code}:\n{p.output()[-4000:]}"


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--autoplay-policy=no-user-gesture-required",
        ],
    )
    yield b
    b.close()


class Faults:
    """The gateway's fault hook, over HTTP."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/__faults"

    def add(self, method: str, pattern: str, *, times: int, status: int | None = None) -> None:
        spec = {"method": method, "pattern": pattern, "times": times, "status": status}
        requests.post(self.url, json=spec, timeout=10).raise_for_status()

    def clear(self) -> None:
        requests.delete(self.url, timeout=10).raise_for_status()

    def requests(self, method: str, pattern: str) -> list[dict[str, Any]]:
        seen = requests.get(self.url, timeout=10).json()["requests"]
        return [r for r in seen if r["method"] == method and re.search(pattern, r["target"])]


@pytest.fixture
def faults(web: PlatformProcess) -> Iterator[Faults]:
    f = Faults(web.url)
    f.clear()
    yield f
    f.clear()


def _new_page(browser: Browser, request: pytest.FixtureRequest, **options: Any) -> Iterator[Page]:
    context: BrowserContext = browser.new_context(**options)
    context.set_default_timeout(15_000)
    page = context.new_page()
    # The gateway serves the front end under the web stack's content security policy: anything it
    # blocks shows up on the console, and is a bug.
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    failed_before = request.session.testsfailed
    try:
        yield page
        assert blocked == [], blocked
    finally:
        # The call phase's report is counted before fixtures tear down: a failure shows here.
        if request.session.testsfailed > failed_before:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            for i, p in enumerate(context.pages):
                p.screenshot(path=str(SCREENSHOTS / f"{request.node.name}-{i}.png"), full_page=True)
        context.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    yield from _new_page(browser, request, viewport={"width": 1280, "height": 800})


@pytest.fixture
def phone(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    yield from _new_page(browser, request, viewport=PHONE, is_mobile=True, has_touch=True)


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.media_fixtures import make_clip

    return make_clip(
        tmp_path_factory.mktemp("web-clips") / "colour-bars.mp4", seconds=2, width=320, height=180
    )


@pytest.fixture(scope="module")
def three_part_clip(small_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real clip padded with an MP4 ``free`` box (which players skip) to three 5 MiB parts."""
    data = small_clip.read_bytes()
    pad = 2 * PART_BYTES + 1024**2 - len(data)
    path = tmp_path_factory.mktemp("web-clips") / "padded.mp4"
    path.write_bytes(data + struct.pack(">I4s", pad, b"free") + bytes(pad - 8))
    return path


# --- helpers ---------------------------------------------------------------------------------
def sign_up_in_browser(page: Page, web: PlatformProcess, email: str) -> None:
    """Register, confirm with the code the platform prints, log in: all through the pages."""
    page.goto(web.url + "/")
    page.get_by_role("link", name="Sign up", exact=True).click()
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    mark = len(web.lines)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Confirm your email")).to_be_visible()
    code = web.code_for(email, after=mark)
    expect(page.get_by_label("Email", exact=True)).to_have_value(email)
    page.get_by_label("Confirmation code", exact=True).fill(code)
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="confirmed")).to_be_visible()
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="My videos")).to_be_visible()
    expect(page.get_by_text(email)).to_be_visible()


def log_in_in_browser(page: Page, web: PlatformProcess, email: str) -> None:
    page.goto(f"{web.url}/login")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="My videos")).to_be_visible()


def choose_file(page: Page, clip: Path, title: str) -> None:
    page.get_by_role("link", name="Upload", exact=True).click()
    page.get_by_label("Choose a file", exact=True).set_input_files(str(clip))
    expect(page.get_by_text(clip.name)).to_be_visible()
    page.get_by_label("Title", exact=True).fill(title)


def throttle_uploads(page: Page, bytes_per_second: int) -> None:
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": bytes_per_second},
    )


def progress_samples(page: Page, until: str, timeout: float = 30) -> list[int]:
    """The upload bar's values, sampled until the status says ``until``."""
    bar = page.get_by_test_id("upload-progress")
    done = page.get_by_role("status").filter(has_text=until)
    values: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bar.count():
            values.append(int(float(bar.get_attribute("value") or 0)))
        if done.count():
            return values
        page.wait_for_timeout(50)
    raise AssertionError(f"never saw {until!r}; progress went {values}")


def my_item(page: Page, title: str):  # type: ignore[no-untyped-def]
    return page.get_by_role("list", name="My videos").get_by_role("listitem", name=title)


# --- tests -----------------------------------------------------------------------------------
def test_sign_up_upload_watch_rename_delete(
    page: Page, web: PlatformProcess, small_clip: Path, tmp_path: Path
) -> None:
    # Given a newcomer who registers, confirms with the printed code and logs in
    email = new_email()
    sign_up_in_browser(page, web, email)

    # When they upload a small clip on a slow line
    choose_file(page, small_clip, "Colour bars")
    throttle_uploads(page, 60_000)
    page.get_by_role("button", name="Upload", exact=True).click()
    values = progress_samples(page, "Upload complete")
    throttle_uploads(page, -1)
    # Then the progress bar moved through values between empty and full, with speed and time left
    assert values[-1] == 100, values
    assert any(0 < v < 100 for v in values), values
    assert values == sorted(values), values

    # And "my videos" follows the transcode live until the video can be watched
    page.get_by_role("link", name="Go to my videos").click()
    item = my_item(page, "Colour bars")
    expect(item.get_by_role("link", name="Watch now")).to_be_visible(timeout=60_000)
    expect(item.locator(".badge")).to_have_text(re.compile(r"^(processing \d+ %|ready)$"))

    # When they watch it
    item.get_by_role("link", name="Watch now").click()
    expect(page.get_by_role("heading", name="Colour bars")).to_be_visible()
    video_id = page.url.rsplit("/", 1)[1]
    video = page.get_by_test_id("player")
    # Then the video really plays: its clock advances past the start. Play is pressed again if a load
    # interrupted it (the page reloads the source when a still-processing video turns ready).
    page.wait_for_function(
        "() => { const v = document.querySelector('video'); v.muted = true;"
        " if (v.paused) v.play().catch(() => {}); return v.currentTime > 0.5; }",
        timeout=30_000,
        polling=200,
    )
    assert video.evaluate("v => v.videoWidth") > 0
    # And the page shows its poster and duration (once the transcode has measured it)
    expect(video).to_have_attribute("poster", re.compile(r"/poster\.jpg$"))
    expect(page.get_by_test_id("duration")).to_have_text(re.compile(r"^0:0[12]$"), timeout=60_000)

    # When they rename and describe it on "my videos"
    page.get_by_role("link", name="My videos").click()
    item = my_item(page, "Colour bars")
    item.get_by_role("button", name="Edit details").click()
    item.get_by_label("Title", exact=True).fill("Colour bars, renamed")
    item.get_by_label("Description", exact=True).fill("Two seconds of test pattern.")
    item.get_by_role("button", name="Save").click()
    # Then the list shows the new name and description
    renamed = my_item(page, "Colour bars, renamed")
    expect(renamed.get_by_text("Two seconds of test pattern.")).to_be_visible()
    expect(renamed.locator(".badge")).to_have_text("ready", timeout=60_000)

    # When they delete it (a second click confirms)
    renamed.get_by_role("button", name="Delete").click()
    renamed.get_by_role("button", name="Yes, delete it").click()
    # Then it is gone from their list, and its page is a real 404
    expect(page.get_by_text("You have not uploaded anything yet.")).to_be_visible()
    gone = page.goto(f"{web.url}/watch/{video_id}")
    assert gone is not None and gone.status == 404
    expect(page.get_by_role("heading", name="No such video")).to_be_visible()


def test_an_interrupted_multipart_upload_resumes_without_sending_stored_parts_again(
    page: Page, web: PlatformProcess, faults: Faults, three_part_clip: Path
) -> None:
    # Given a signed-in person with a file of three parts, and a network that drops part 2
    sign_up_in_browser(page, web, new_email())
    faults.add("PUT", r"^/media/uploads/.*[?&]partNumber=2(&|$)", times=1000)
    choose_file(page, three_part_clip, "Resumed upload")

    # When they upload it
    page.get_by_role("button", name="Upload", exact=True).click()
    # Then, once part 2's retries are spent, the upload pauses with the other parts kept
    alert = page.get_by_role("alert").filter(has_text="Upload interrupted")
    expect(alert).to_contain_text("2 of 3 parts are safely stored")
    assert len(faults.requests("PUT", r"partNumber=2(&|$)")) == 3  # the first try and two retries

    # When the network comes back and they resume
    faults.clear()
    page.get_by_role("button", name="Resume upload").click()
    # Then the upload completes, sending only the missing part
    expect(page.get_by_role("status").filter(has_text="Upload complete")).to_be_visible()
    expect(page.get_by_test_id("upload-percent")).to_have_text("100 %")
    sent = faults.requests("PUT", r"^/media/uploads/")
    assert [re.search(r"partNumber=(\d+)", r["target"]).group(1) for r in sent] == ["2"]  # type: ignore[union-attr]
    # And the video moves on to processing
    page.get_by_role("link", name="Go to my videos").click()
    badge = my_item(page, "Resumed upload").locator(".badge")
    expect(badge).to_have_text(re.compile(r"^(queued|processing \d+ %|ready)$"))


def test_a_second_user_sees_and_edits_nothing_of_the_first(
    page: Page, web: PlatformProcess, small_clip: Path
) -> None:
    # Given a first user with an uploaded video (through the API: this test is about the pages)
    api = Api(web)
    owner = api.sign_up(new_email())
    body = api.start_upload(owner, "Owner only", small_clip.stat().st_size)
    put = requests.put(
        body["upload"]["url"], data=small_clip.read_bytes(), headers=body["upload"]["headers"], timeout=30
    )
    assert put.status_code == 200
    video_id = body["videoId"]
    wait_until_ready(api, video_id, token=owner)  # until then it is the owner's alone (404 to others)

    # When a second user signs up in their own browser and opens "my videos"
    sign_up_in_browser(page, web, new_email())
    # Then it is empty: nothing of the first user's
    expect(page.get_by_text("You have not uploaded anything yet.")).to_be_visible()
    expect(page.get_by_text("Owner only")).to_have_count(0)
    # And the video's own page offers no editing
    page.goto(f"{web.url}/watch/{video_id}")
    expect(page.get_by_role("heading", name="Owner only")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Edit|Delete"))).to_have_count(0)
    # And the API refuses their edit and delete, made with the token the page holds
    answers = page.evaluate(
        """async (id) => {
            const token = JSON.parse(localStorage.getItem("reelay.session")).idToken;
            const headers = {Authorization: "Bearer " + token, "Content-Type": "application/json"};
            const patch = await fetch("/videos/" + id, {method: "PATCH", headers,
                                      body: JSON.stringify({displayName: "Mine now"})});
            const del = await fetch("/videos/" + id, {method: "DELETE", headers});
            return [patch.status, del.status];
        }""",
        video_id,
    )
    assert answers == [403, 403]
    assert api.call("GET", f"/me/videos/{video_id}", token=owner).json()["displayName"] == "Owner only"


def test_a_failing_list_call_is_retried_and_a_hard_failure_is_explained(
    page: Page, web: PlatformProcess, faults: Faults
) -> None:
    # Given the list call fails twice with a 503
    faults.add("GET", r"^/videos\?", times=2, status=503)
    # When the home page loads
    page.goto(web.url + "/")
    # Then the front end retried and shows the list, with no error
    expect(page.get_by_role("heading", name="Latest videos")).to_be_visible()
    expect(page.get_by_role("list", name="Videos").or_(page.get_by_text("No videos yet"))).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    assert len(faults.requests("GET", r"^/videos\?")) == 3

    # Given the list call now fails every time (a 500, then dropped connections)
    faults.clear()
    faults.add("GET", r"^/videos\?", times=2, status=500)
    faults.add("GET", r"^/videos\?", times=1000)
    # When the page loads
    page.reload()
    # Then it says what went wrong, in words, and offers to try again
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The videos could not be loaded.", timeout=20_000)
    expect(alert).to_contain_text("Could not reach Reelay")
    assert len(faults.requests("GET", r"^/videos\?")) == 4  # every attempt was made
    # When the network recovers and they try again
    faults.clear()
    alert.get_by_role("button", name="Try again").click()
    # Then the page recovers
    expect(page.get_by_role("alert")).to_have_count(0)


def test_unknown_pages_and_videos_are_real_404s(page: Page, web: PlatformProcess) -> None:
    # When a browser opens an unknown video and an unknown page
    video = page.goto(f"{web.url}/watch/no-such-video")
    # Then each answers 404 and shows a page saying so, with a way back
    assert video is not None and video.status == 404
    expect(page.get_by_role("heading", name="No such video")).to_be_visible()
    other = page.goto(f"{web.url}/no/such/page")
    assert other is not None and other.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    # And the old player address leads to the video page
    page.goto(f"{web.url}/play/no-such-video")
    assert page.url.endswith("/watch/no-such-video")


def test_a_failed_video_shows_its_reason_and_the_page_stops_polling(
    page: Page, web: PlatformProcess, faults: Faults
) -> None:
    # Given a video whose upload is not media at all
    api = Api(web)
    email = new_email()
    token = api.sign_up(email)
    junk = b"this is not a video, just some text" * 40
    body = api.start_upload(token, "Not a video", len(junk))
    assert requests.put(body["upload"]["url"], data=junk, headers=body["upload"]["headers"], timeout=30).ok
    video_id = body["videoId"]

    # When its owner has its page open while the transcode gives up (to anyone else it is a 404)
    log_in_in_browser(page, web, email)
    page.goto(f"{web.url}/watch/{video_id}")
    # Then the page says it failed, and why
    alert = page.get_by_role("alert").filter(has_text="Processing failed")
    expect(alert).to_be_visible(timeout=60_000)
    reason = api.call("GET", f"/me/videos/{video_id}", token=token).json()["failureReason"]
    assert reason and len(reason) > 10
    expect(alert).to_contain_text(reason)
    # And it stops asking for news
    path = rf"^/videos/{video_id}$"
    before = len(faults.requests("GET", path))
    page.wait_for_timeout(5000)  # over two polling periods
    assert len(faults.requests("GET", path)) == before

    # And "my videos" shows the same reason, with no "watch now"
    page.get_by_role("link", name="My videos").click()
    item = my_item(page, "Not a video")
    expect(item.locator(".badge")).to_have_text("failed")
    expect(item.get_by_role("note")).to_contain_text(reason)
    expect(item.get_by_role("link", name="Watch now")).to_have_count(0)


def test_an_expiring_token_is_refreshed_without_asking(
    page: Page, web: PlatformProcess, faults: Faults
) -> None:
    # Given a signed-in person whose ID token is about to expire (the refresh token is fine)
    sign_up_in_browser(page, web, new_email())
    page.evaluate(
        """() => {
            const s = JSON.parse(localStorage.getItem("reelay.session"));
            localStorage.setItem("reelay.session", JSON.stringify({...s, expiresAt: Date.now() + 5000}));
        }"""
    )
    # When a page needs the API
    page.goto(f"{web.url}/my")
    # Then the tokens were refreshed first, and the page just works
    expect(page.get_by_text("You have not uploaded anything yet.")).to_be_visible()
    assert len(faults.requests("POST", r"^/auth/refresh$")) == 1
    session = page.evaluate("() => JSON.parse(localStorage.getItem('reelay.session'))")
    assert session["expiresAt"] > time.time() * 1000 + 600_000


def test_cancelling_an_interrupted_upload_removes_the_video(
    page: Page, web: PlatformProcess, faults: Faults, three_part_clip: Path
) -> None:
    # Given an upload stuck on a part that keeps failing
    email = new_email()
    sign_up_in_browser(page, web, email)
    faults.add("PUT", r"^/media/uploads/.*[?&]partNumber=3(&|$)", times=1000, status=503)
    choose_file(page, three_part_clip, "Cancelled upload")
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_role("alert").filter(has_text="Upload interrupted")).to_be_visible()
    # When the person cancels it
    page.get_by_role("button", name="Cancel upload").click()
    # Then the page says so and offers the form again, and the half-sent video is gone
    expect(page.get_by_role("alert")).to_contain_text("Upload cancelled.")
    expect(page.get_by_role("button", name="Upload", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="My videos")).to_be_visible()
    page.get_by_role("link", name="My videos").click()
    expect(page.get_by_text("You have not uploaded anything yet.")).to_be_visible()


def test_the_public_list_pages_forwards_and_back(page: Page, web: PlatformProcess) -> None:
    # Given a catalogue of 15 videos (the list answers are stubbed: paging is the page's logic)
    def video(n: int) -> dict[str, Any]:
        return {
            "videoId": f"v{n:02d}",
            "displayName": f"Video {n:02d}",
            "description": "",
            "status": "ready",
            "failureReason": None,
            "progress": 100,
            "playable": True,
            "isTranscoded": True,
            "durationSeconds": 61.0,
            "renditions": [],
            "uploadTime": "2026-01-02T03:04:05.000Z",
            "createdAt": "2026-01-02T03:04:05.000Z",
            "updatedAt": "2026-01-02T03:04:05.000Z",
            "playbackUrl": None,
            "thumbnailUrl": None,
        }

    asked: list[str] = []

    def answer(route: Any) -> None:
        url = route.request.url
        asked.append(url)
        second = "cursor=after-12" in url
        items = [video(n) for n in (range(13, 16) if second else range(1, 13))]
        route.fulfill(json={"items": items, "nextCursor": None if second else "after-12"})

    page.route(re.compile(r".*/videos\?limit=.*"), answer)
    # When the home page opens
    page.goto(web.url + "/")
    grid = page.get_by_role("list", name="Videos")
    # Then it shows the first twelve, each with its duration, and can only go older
    expect(grid.get_by_role("listitem")).to_have_count(12)
    expect(grid.get_by_role("listitem").first).to_contain_text("1:01")
    expect(page.get_by_role("button", name="← Newer")).to_be_disabled()
    # When they go older
    page.get_by_role("button", name="Older →").click()
    # Then the next page comes from the cursor, and older is the end
    expect(grid.get_by_role("listitem")).to_have_count(3)
    expect(grid).to_contain_text("Video 15")
    expect(page.get_by_role("button", name="Older →")).to_be_disabled()
    assert "cursor=after-12" in asked[-1]
    # And the browser's back and forward buttons move between the pages
    page.go_back()
    expect(grid.get_by_role("listitem")).to_have_count(12)
    page.go_forward()
    expect(grid.get_by_role("listitem")).to_have_count(3)
    # And "newer" goes back to the first page
    page.get_by_role("button", name="← Newer").click()
    expect(grid.get_by_role("listitem")).to_have_count(12)
    expect(page.get_by_role("button", name="← Newer")).to_be_disabled()


def test_a_401_sends_the_person_to_log_in_and_back(page: Page, web: PlatformProcess) -> None:
    # Given a signed-in person whose tokens stop working (expired, refresh token revoked)
    email = new_email()
    sign_up_in_browser(page, web, email)
    page.evaluate(
        """() => {
            const s = JSON.parse(localStorage.getItem("reelay.session"));
            localStorage.setItem("reelay.session", JSON.stringify(
                {...s, idToken: "expired", refreshToken: "revoked", expiresAt: Date.now() + 3600e3}));
        }"""
    )
    # When a page calls the API with them
    page.goto(f"{web.url}/my")
    # Then they are sent to log in and told why
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Your session has ended")
    assert "next=%2Fmy" in page.url
    # And once logged in again they are back where they were
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="My videos")).to_be_visible()
    assert page.url == f"{web.url}/my"


def test_the_site_works_at_phone_width(phone: Page, web: PlatformProcess) -> None:
    # Given a phone-sized screen, and a person with an account
    email = new_email()
    Api(web).sign_up(email)
    # When the pages open
    for path in ("/", "/register", "/login", "/watch/no-such-video"):
        phone.goto(web.url + path)
        expect(phone.locator("main h1")).to_be_visible()
        # Then nothing overflows sideways
        width = phone.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (path, width)
    # And the navigation stays usable: every link is inside the screen
    for link in phone.get_by_role("navigation", name="Main").get_by_role("link").all():
        box = link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]

    # And the keyboard reaches the form in order, past a skip link, with a visible focus ring
    phone.goto(web.url + "/login")
    expect(phone.get_by_role("heading", name="Log in")).to_be_visible()
    phone.keyboard.press("Tab")
    expect(phone.get_by_role("link", name="Skip to content")).to_be_focused()
    phone.keyboard.press("Enter")
    phone.keyboard.press("Tab")
    email_field = phone.get_by_label("Email", exact=True)
    expect(email_field).to_be_focused()
    ring = email_field.evaluate("e => getComputedStyle(e).boxShadow")
    assert ring and ring != "none", ring
    # And a person can log in with the keyboard alone
    phone.keyboard.type(email)
    phone.keyboard.press("Tab")
    expect(phone.get_by_label("Password", exact=True)).to_be_focused()
    phone.keyboard.type(PASSWORD)
    phone.keyboard.press("Enter")
    expect(phone.get_by_role("heading", name="My videos")).to_be_visible()
    width = phone.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
