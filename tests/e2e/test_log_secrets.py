"""No secret reaches a log: the full upload -> playback path, then every log under the state dir is scanned.

Secrets: the signing keys in the state dir, the database password (if the URL has one), every
presigned signature handed out (single PUT and multipart parts), the ID, access and refresh tokens,
and the store's credentials in the platform's settings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests

from tests.e2e.conftest import MULTIPART_THRESHOLD, PASSWORD, Api, PlatformProcess, new_email, own_platform
from tests.e2e.test_upload_to_playback import wait_until_ready

pytestmark = [pytest.mark.mysql, pytest.mark.media]

SIGNATURE_PARAMS = ("sig", "X-Amz-Signature", "Signature", "X-Amz-Security-Token")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    # A platform of its own: its logs hold this test's requests and nothing else's.
    # With the Lambda events logged too (headers, bodies: tokens and passwords), the harder case.
    env = {
        "REELAY_MULTIPART_THRESHOLD_BYTES": str(MULTIPART_THRESHOLD),
        "POWERTOOLS_LOGGER_LOG_EVENT": "true",
    }
    with own_platform(tmp_path_factory, "logscan", env=env) as p:
        yield p


def signatures(url: str) -> list[str]:
    query = parse_qs(urlsplit(url).query)
    return [v for name in SIGNATURE_PARAMS for v in query.get(name, [])]


def upload(api: Api, token: str, clip: Path, found: list[str]) -> str:
    body = api.start_upload(token, clip.name, clip.stat().st_size, fileName=clip.name)
    data = clip.read_bytes()
    if body.get("upload"):
        put = body["upload"]
        found += signatures(put["url"])
        r = requests.put(put["url"], data=data, headers=put["headers"], timeout=30)
        assert r.status_code == 200, r.text
        return str(body["videoId"])
    multipart = body["multipart"]
    size = multipart["partSizeBytes"]
    parts = []
    for part in multipart["parts"]:
        found += signatures(part["url"])
        n = part["partNumber"]
        r = requests.put(part["url"], data=data[(n - 1) * size : n * size], timeout=30)
        assert r.status_code == 200, r.text
        parts.append({"partNumber": n, "etag": r.headers["ETag"]})
    r = api.call(
        "POST",
        f"/{multipart['completePath']}",
        token=token,
        json={"uploadId": multipart["uploadId"], "parts": parts},
    )
    assert r.status_code == 200, r.text
    return str(body["videoId"])


def logs(state_dir: Path) -> dict[Path, str]:
    return {
        path: path.read_text(errors="replace")
        for path in state_dir.rglob("*")
        if path.is_file() and (path.suffix == ".log" or "log" in path.name)
    }


def test_no_secret_reaches_any_log(platform: PlatformProcess, clip: Path, large_clip: Path) -> None:
    api = Api(platform)
    secrets: dict[str, str] = {}
    # Given a user who signs up, logs in and refreshes their tokens
    email = new_email()
    api.sign_up(email)
    r = api.call("POST", "/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    tokens = r.json()
    r = api.call("POST", "/auth/refresh", json={"refreshToken": tokens["refreshToken"]})
    assert r.status_code == 200, r.text
    for name, value in (tokens | {f"refreshed {k}": v for k, v in r.json().items()}).items():
        if name.endswith(("idToken", "accessToken", "refreshToken")) and value:
            secrets[name] = value
    secrets["password"] = PASSWORD
    token = tokens["idToken"]
    # And uploads a small clip (one presigned PUT) and a large one (presigned parts), and watches them
    found: list[str] = []
    video_ids = [upload(api, token, clip, found), upload(api, token, large_clip, found)]
    assert found, "no presigned signature was handed out"
    secrets |= {f"signature {i}": sig for i, sig in enumerate(found)}
    for video_id in video_ids:
        master_url = wait_until_ready(api, video_id)["playbackUrl"]
        assert requests.get(master_url, timeout=10).status_code == 200
        secrets |= {f"playback signature {video_id}": s for s in signatures(master_url)}
    r = api.call("GET", "/me/videos", token=token)
    assert r.status_code == 200 and len(r.json()["items"]) == 2
    # And the platform's own secrets
    state = platform.state_dir
    for key_file in ("signing-key", "stream-secret-key"):
        secrets[key_file] = (state / key_file).read_text().strip()
    password = urlsplit(platform.database_url or "").password
    if password:
        secrets["database password"] = unquote(password)
    endpoints = json.loads((state / "endpoints.json").read_text())
    for name, value in endpoints.items():
        if isinstance(value, str) and (password := urlsplit(value).password):
            secrets[f"{name} password"] = unquote(password)
    assert all(len(v) >= 8 for v in secrets.values()), "a secret too short to scan for"

    # Then no log under the state dir holds any of them
    found_logs = logs(state)
    assert state / "reelay.log" in found_logs and found_logs[state / "reelay.log"].strip()
    leaks = [
        f"{name} in {path.relative_to(state)}: ...{text[max(0, text.find(value) - 80) : text.find(value)]}"
        for path, text in found_logs.items()
        for name, value in secrets.items()
        if value in text
    ]
    assert not leaks, "\n".join(leaks)
    # And the request log still shows the requests, with their secrets redacted
    request_log = found_logs[state / "reelay.log"]
    assert re.search(r"PUT /media/\S+sig=(\[redacted\]|%5Bredacted%5D)", request_log), request_log[-3000:]
    # And the API's logged events are there too (so their headers and bodies were scanned)
    assert '"httpMethod":"POST"' in request_log.replace(" ", "") and '"Authorization"' in request_log
