"""A ready video really plays in a browser: headless Chromium, hls.js from the gateway, our HLS.

The probe page is served from another origin on purpose, as a web front end would be: playlists
and segments must come through the media endpoint's CORS for every segment, not only the master.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from tests.e2e.conftest import Api, PlatformProcess, new_email
from tests.e2e.test_upload_to_playback import upload, wait_until_ready

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"

PAGE = """<!doctype html><html><body><video id="v" muted playsinline></video>
<script src="{gateway}/static/hls.js"></script>
<script>
const v = document.getElementById("v"), errors = [];
const hls = new Hls();
hls.on(Hls.Events.ERROR, (_, d) => errors.push(d.details));
hls.on(Hls.Events.MANIFEST_PARSED, () => v.play().catch(e => errors.push("play:" + e.name)));
hls.loadSource("{master}");
hls.attachMedia(v);
function report() {{
  fetch("/report?" + encodeURIComponent(JSON.stringify({{
    currentTime: v.currentTime, readyState: v.readyState, width: v.videoWidth, height: v.videoHeight,
    levels: hls.levels.length, errors: errors}})));
}}
v.addEventListener("ended", report);
setTimeout(report, 2500);
</script></body></html>"""


class ProbeServer(ThreadingHTTPServer):
    """Serves the probe page and collects what the page reports."""

    def __init__(self, page: str) -> None:
        self.page = page.encode()
        self.reports: list[dict] = []
        self.reported = threading.Event()
        super().__init__(("127.0.0.1", 0), ProbeHandler)


class ProbeHandler(BaseHTTPRequestHandler):
    server: ProbeServer

    def do_GET(self) -> None:
        if self.path.startswith("/report?"):
            self.server.reports.append(json.loads(unquote(self.path.split("?", 1)[1])))
            self.server.reported.set()
            body = b""
        else:
            body = self.server.page
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


def play_in_chromium(page: str, timeout: float = 45) -> dict:
    server = ProbeServer(page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    profile = Path(tempfile.mkdtemp(prefix="reelay-chromium-"))
    browser = subprocess.Popen(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={profile}",
            "--remote-debugging-port=0",  # keeps the headless browser running until we stop it
            f"http://127.0.0.1:{server.server_address[1]}/",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert server.reported.wait(timeout), "the page never reported (hls.js or the browser failed)"
        return server.reports[0]
    finally:
        browser.kill()
        browser.wait()
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)


def test_a_ready_video_plays_in_chromium_through_hls_js(platform: PlatformProcess, clip: Path) -> None:
    # Given a video uploaded through the API and transcoded to HLS
    api = Api(platform)
    token = api.sign_up(new_email())
    video = wait_until_ready(api, upload(api, token, clip, name="Browser check"))

    # When a page on another origin plays its playback URL with hls.js in headless Chromium
    report = play_in_chromium(PAGE.format(gateway=api.url, master=video["playbackUrl"]))

    # Then the browser decoded real frames of the rendition and played on, with no hls.js error
    assert report["errors"] == [], report
    assert report["levels"] == len(video["renditions"]) >= 1, report
    assert report["readyState"] >= 2 and report["currentTime"] > 0.5, report
    sizes = {(r["width"], r["height"]) for r in video["renditions"]}
    assert (report["width"], report["height"]) in sizes, report
