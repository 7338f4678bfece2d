"""A private video in a real browser: Playwright drives Debian's Chromium against the platform.

Its owner uploads it as private through the web front end and watches it: hls.js carries the signed
query to every playlist and segment, and the clock advances. Another signed-in user and an anonymous
visitor get "No such video", and the media endpoint answers 403 to a direct fetch of a segment without
the signature (or with an expired one). Made public and then private again, its old unsigned URLs find
nothing: its media moved off the public path. A moderator, made with ``make-moderator``, unpublishes and
deletes it, each step in the audit log.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Api, PlatformProcess, new_email
from tests.e2e.test_upload_to_playback import wait_until_ready
from tests.e2e.test_web import (  # noqa: F401  (fixtures)
    _new_page,
    browser,
    choose_file,
    my_item,
    playwright,
    sign_up_in_browser,
    small_clip,
    web,
)

pytestmark = [pytest.mark.mysql, pytest.mark.media]


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:  # noqa: F811
    yield from _new_page(browser, request)


@pytest.fixture
def stranger(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:  # noqa: F811
    yield from _new_page(browser, request)


def plays(page: Page) -> bool:
    """Whether the page's video plays on: its clock passes half a second within 30 s."""
    try:
        page.wait_for_function(
            "() => { const v = document.querySelector('video'); if (!v) return false; v.muted = true;"
            " if (v.paused) v.play().catch(() => {}); return v.currentTime > 0.5; }",
            timeout=30_000,
            polling=200,
        )
    except Exception:
        return False
    return True


def media_files(master_url: str) -> tuple[str, str]:
    """A variant playlist and a segment of a signed master, as URLs without the signature."""
    master = requests.get(master_url, timeout=10)
    assert master.status_code == 200, master.text
    base = master_url.split("?", 1)[0]
    variant = requests.compat.urljoin(base, next(x for x in master.text.splitlines() if x and x[0] != "#"))
    listing = requests.get(variant, params=dict(parse_qsl(urlsplit(master_url).query)), timeout=10)
    assert listing.status_code == 200, listing.text
    segment = requests.compat.urljoin(
        variant, next(x for x in listing.text.splitlines() if x and x[0] != "#")
    )
    return variant, segment


def test_a_private_video_plays_for_its_owner_only(
    page: Page,
    stranger: Page,
    web: PlatformProcess,  # noqa: F811
    small_clip: Path,  # noqa: F811
) -> None:
    # Given an owner who uploads a clip as private through the upload page
    email = new_email()
    sign_up_in_browser(page, web, email)
    choose_file(page, small_clip, "Only mine")
    page.get_by_label("Visibility", exact=True).select_option("private")
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Upload complete")).to_be_visible()
    page.get_by_role("link", name="Go to my videos").click()
    item = my_item(page, "Only mine")
    expect(item.get_by_label("Who can watch Only mine")).to_have_value("private")
    expect(item.locator(".badge")).to_have_text("ready", timeout=90_000)
    video_id = item.get_attribute("data-video-id")
    assert video_id

    # When the owner watches it, Then it plays: every playlist and segment was fetched signed
    signed: list[str] = []
    page.on(
        "request",
        lambda r: signed.append(r.url) if f"/media/private-outputs/{video_id}/" in r.url else None,
    )
    item.get_by_role("link", name="Watch now").click()
    expect(page.get_by_role("heading", name="Only mine")).to_be_visible()
    assert plays(page)
    assert any(u.split("?")[0].endswith(".ts") for u in signed), signed
    assert signed and all("sig=" in u and "exp=" in u for u in signed), signed

    # And it is not in the public list
    api = Api(web)
    listed = api.call("GET", "/videos", params={"limit": 100}).json()["items"]
    assert video_id not in [v["videoId"] for v in listed]

    # When another signed-in user opens its page, Then there is no such video, and nothing plays
    sign_up_in_browser(stranger, web, new_email())
    answer = stranger.goto(f"{web.url}/watch/{video_id}")
    assert answer is not None and answer.status == 404
    expect(stranger.get_by_role("heading", name="No such video")).to_be_visible()
    assert stranger.locator("video").count() == 0
    # Nor for an anonymous visitor (a fresh context: no session at all)
    stranger.context.clear_cookies()
    stranger.evaluate("localStorage.clear()")
    answer = stranger.goto(f"{web.url}/watch/{video_id}")
    assert answer is not None and answer.status == 404
    expect(stranger.get_by_role("heading", name="No such video")).to_be_visible()

    # And a direct fetch of a playlist or segment without the signature is refused (403), in the
    # browser as with any client, while the owner's signed query opens the same segment
    token = api.login(email)
    master_url = api.call("GET", f"/me/videos/{video_id}", token=token).json()["playbackUrl"]
    variant, segment = media_files(master_url)
    status = stranger.evaluate("async (u) => (await fetch(u)).status", segment)
    assert status == 403
    for url in (master_url.split("?", 1)[0], variant, segment):
        r = requests.get(url, timeout=10)
        assert r.status_code == 403 and r.json()["error"] == "forbidden", (url, r.text)
    query = dict(parse_qsl(urlsplit(master_url).query))
    assert requests.get(segment, params=query, timeout=10).status_code == 200
    # An expired or edited signature opens nothing either
    expired = {**query, "exp": str(int(time.time()) - 10)}
    assert requests.get(segment, params=expired, timeout=10).status_code == 403
    assert requests.get(f"{segment}?{urlencode({**query, 'sig': '0' * 64})}", timeout=10).status_code == 403

    # When the owner makes it public on "my videos", Then anyone plays it, unsigned
    page.get_by_role("link", name="My videos").click()
    my_item(page, "Only mine").get_by_label("Who can watch Only mine").select_option("public")
    expect(my_item(page, "Only mine").get_by_label("Who can watch Only mine")).to_have_value("public")
    public = api.call("GET", f"/videos/{video_id}").json()
    assert "?" not in public["playbackUrl"]
    assert f"/media/outputs/{video_id}/" in public["playbackUrl"]
    open_segment = segment.replace("/media/private-outputs/", "/media/outputs/")
    assert requests.get(open_segment, timeout=10).status_code == 200
    # (its media moved back to the public prefix: the signed private path has nothing left)
    assert requests.get(segment, params=query, timeout=10).status_code == 404
    stranger.goto(f"{web.url}/watch/{video_id}")
    expect(stranger.get_by_role("heading", name="Only mine")).to_be_visible()
    assert plays(stranger)

    # When the owner makes it private again (after anyone could learn its id and media URLs)
    r = api.call("PATCH", f"/videos/{video_id}", token=token, json={"visibility": "private"})
    assert r.status_code == 200 and r.json()["visibility"] == "private", r.text
    # Then the unsigned URLs that worked while it was public open nothing: its media left that path
    public_master = public["playbackUrl"]
    open_variant = variant.replace("/media/private-outputs/", "/media/outputs/")
    for url in (public_master, open_variant, open_segment):
        r = requests.get(url, timeout=10)
        assert r.status_code in (403, 404) and r.json()["error"] in ("forbidden", "not_found"), (url, r.text)
    assert requests.get(open_segment, timeout=10).status_code == 404
    # And its owner's new signed link plays it from the private path
    again = api.call("GET", f"/me/videos/{video_id}", token=token).json()["playbackUrl"]
    assert f"/media/private-outputs/{video_id}/" in again
    _, private_segment = media_files(again)
    assert requests.get(private_segment, params=dict(parse_qsl(urlsplit(again).query)), timeout=10).ok
    assert requests.get(private_segment, timeout=10).status_code == 403


def test_a_moderator_unpublishes_and_deletes_with_an_audit_record(
    web: PlatformProcess,  # noqa: F811
    small_clip: Path,  # noqa: F811
) -> None:
    # Given Alice's ready public video and Mo, made a moderator with the documented command
    api = Api(web)
    alice = api.sign_up(new_email())
    body = api.start_upload(alice, "Reported", small_clip.stat().st_size)
    put = requests.put(
        body["upload"]["url"], data=small_clip.read_bytes(), headers=body["upload"]["headers"], timeout=30
    )
    assert put.status_code == 200
    video_id = body["videoId"]
    video = wait_until_ready(api, video_id, token=alice)
    mo_email = new_email()
    mo = api.sign_up(mo_email)
    assert api.call("GET", "/moderation/audit", token=mo).status_code == 403
    done = subprocess.run(
        [sys.executable, "-m", "local", "make-moderator", mo_email, "--state-dir", str(web.state_dir)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    mo = api.login(mo_email)  # the group travels in the next ID token

    # When Mo unpublishes it
    r = api.call(
        "POST", f"/moderation/videos/{video_id}/unpublish", token=mo, json={"reason": "reported spam"}
    )
    assert r.status_code == 200 and r.json()["unpublished"] is True, r.text
    # Then the public sees nothing, its old unsigned URL opens nothing (its media left the public
    # path), and Alice still plays it signed, from the private path
    assert api.call("GET", f"/videos/{video_id}").status_code == 404
    assert requests.get(video["playbackUrl"], timeout=10).status_code == 404
    mine = api.call("GET", f"/me/videos/{video_id}", token=alice).json()
    assert f"/media/private-outputs/{video_id}/" in mine["playbackUrl"]
    assert mine["unpublished"] is True and requests.get(mine["playbackUrl"], timeout=10).status_code == 200
    assert requests.get(mine["playbackUrl"].split("?", 1)[0], timeout=10).status_code == 403

    # When Mo deletes it, Then it and its media are gone
    r = api.call("POST", f"/moderation/videos/{video_id}/delete", token=mo, json={"reason": "repeat offence"})
    assert r.status_code == 204, r.text
    assert api.call("GET", f"/me/videos/{video_id}", token=alice).status_code == 404
    assert requests.get(mine["playbackUrl"], timeout=10).status_code == 404
    # And the audit log says who did what, to which video, why and when
    log = api.call("GET", "/moderation/audit", token=mo, params={"limit": 100}).json()["items"]
    mine_rows = [(r["action"], r["reason"], r["moderatorEmail"]) for r in log if r["videoId"] == video_id]
    assert mine_rows == [("delete", "repeat offence", mo_email), ("unpublish", "reported spam", mo_email)]
    assert all(re.match(r"^\d{4}-\d\d-\d\dT.*Z$", r["createdAt"]) for r in log)
