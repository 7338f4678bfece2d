"""The catalogue, media and users survive a restart; work that was in flight is picked up again."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import jwt
import pytest
import requests

from tests.e2e.conftest import PASSWORD, Api, PlatformProcess, new_email
from tests.e2e.test_upload_to_playback import upload, wait_until_ready

pytestmark = [pytest.mark.mysql, pytest.mark.media]


def catalogue_status(state: Path, video_id: str) -> str:
    """A video's status as the running platform's catalogue holds it. The API shows a video that is
    not ready to its owner only, and users do not outlive a restart (moto), so the tests look here."""
    from urllib.parse import urlsplit

    import pymysql

    url = urlsplit(json.loads((state / "endpoints.json").read_text())["database"])
    conn = pymysql.connect(
        host=url.hostname, port=url.port or 3306, user=url.username or "root", password=url.password or "",
        database=url.path.lstrip("/"), autocommit=True,
    )  # fmt: skip
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT status FROM videos WHERE videoId = %s", (video_id,))
            (status,) = cur.fetchone()
            return str(status)
    finally:
        conn.close()


def test_restart_keeps_catalogue_and_media_and_finishes_in_flight_work(tmp_path: Path, clip: Path) -> None:
    state = tmp_path / "state"
    # Given the platform on its own private MariaDB, with the workers off so the job stays queued
    first = PlatformProcess(state, database_url=None, extra_args=("--no-workers",))
    try:
        first.start(timeout=120)
        endpoints = json.loads((state / "endpoints.json").read_text())
        assert endpoints["api"] == first.url
        assert endpoints["database"].startswith("mysql://root@127.0.0.1:")
        api = Api(first)
        email = new_email()
        token = api.sign_up(email)
        owner = jwt.decode(token, options={"verify_signature": False})["sub"]
        video_id = upload(api, token, clip, name="Survivor")
        assert api.call("GET", f"/me/videos/{video_id}", token=token).json()["status"] == "queued"
    finally:
        # When it is stopped with Ctrl-C, Then it exits cleanly
        assert first.stop() == 0, first.output()[-4000:]
    assert (state / "mysql").is_dir()
    uploads = [p for p in (state / "media" / "uploads").rglob("*") if p.is_file()]
    assert [p.stat().st_size for p in uploads] == [clip.stat().st_size]

    # When it starts again on the same state directory, with the workers on
    second = PlatformProcess(state, database_url=None)
    try:
        second.start(timeout=120)
        # Then the in-flight video is re-enqueued from the catalogue and completes
        second.wait_for(re.compile(rf"re-enqueued 1 in-flight video\(s\): {video_id}"), timeout=5)
        api = Api(second)
        video = wait_until_ready(api, video_id)
        assert video["displayName"] == "Survivor"
        master = requests.get(video["playbackUrl"], timeout=10)
        assert master.status_code == 200 and "#EXT-X-STREAM-INF" in master.text
        # And the user outlived moto: the same login owns the same video, under the same user id
        assert "confirmed users (users.json" in second.output()
        again = api.login(email, PASSWORD)
        assert jwt.decode(again, options={"verify_signature": False})["sub"] == owner
        mine = api.call("GET", "/me/videos", token=again).json()["items"]
        assert [v["videoId"] for v in mine] == [video_id]
        renamed = api.call("PATCH", f"/videos/{video_id}", token=again, json={"displayName": "Survivor"})
        assert renamed.status_code == 200, renamed.text
        # And the email stays taken, and a wrong password is still refused
        r = api.call("POST", "/auth/register", json={"email": email, "password": PASSWORD})
        assert r.status_code == 409 and r.json()["error"] == "email_taken", r.text
        r = api.call("POST", "/auth/login", json={"email": email, "password": PASSWORD + "x"})
        assert r.status_code == 401, r.text
    finally:
        assert second.stop() == 0, second.output()[-4000:]
    # And the private MariaDB was shut down with the platform
    assert not (state / "mysqld.sock").exists()

    # When it starts a third time (workers off: nothing should need them)
    third = PlatformProcess(state, database_url=None, extra_args=("--no-workers",))
    try:
        third.start(timeout=120)
        api = Api(third)
        # Then the ready video is still ready, listed, and its HLS is served from the kept media
        assert "in-flight video(s)" not in third.output()
        got = api.call("GET", f"/videos/{video_id}")
        assert got.status_code == 200, (got.status_code, got.text)
        video = got.json()
        assert video["status"] == "ready", video
        assert video_id in [v["videoId"] for v in api.call("GET", "/videos").json()["items"]]
        master = requests.get(video["playbackUrl"], timeout=10)
        assert master.status_code == 200 and "#EXT-X-STREAM-INF" in master.text
        variant = next(line for line in master.text.splitlines() if line and not line.startswith("#"))
        assert (
            requests.get(requests.compat.urljoin(video["playbackUrl"], variant), timeout=10).status_code
            == 200
        )
    finally:
        assert third.stop() == 0, third.output()[-4000:]


def test_a_platform_killed_mid_transcode_finishes_the_job_after_restart(tmp_path: Path) -> None:
    from tests.media_fixtures import make_clip

    state = tmp_path / "state"
    clip = make_clip(tmp_path / "longer.mp4", seconds=8, width=640, height=360)
    # Given a platform transcoding a video
    first = PlatformProcess(state, database_url=None)
    first.start(timeout=120)
    try:
        api = Api(first)
        token = api.sign_up(new_email())
        video_id = upload(api, token, clip, name="Interrupted")
        deadline = time.monotonic() + 60
        status = ""
        while time.monotonic() < deadline and status != "processing":
            status = api.call("GET", f"/me/videos/{video_id}", token=token).json()["status"]
            time.sleep(0.05)
        assert status == "processing"
    finally:
        # When the whole platform is killed without warning
        assert first.proc is not None
        first.proc.kill()
        first.proc.wait(30)
    # Then its private MariaDB does not outlive it (it would hold the datadir)
    deadline = time.monotonic() + 30
    while (state / "mysqld.sock").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not (state / "mysqld.sock").exists()

    # When it starts again, Then the same worker takes its own job back at once and finishes it
    second = PlatformProcess(state, database_url=None)
    try:
        second.start(timeout=120)
        second.wait_for(re.compile(rf"re-enqueued 1 in-flight video\(s\): {video_id}"), timeout=5)
        video = wait_until_ready(Api(second), video_id)
        assert video["durationSeconds"] == pytest.approx(8, abs=0.6)
    finally:
        assert second.stop() == 0, second.output()[-4000:]


def test_an_upload_whose_event_was_lost_is_queued_at_the_next_start(tmp_path: Path, clip: Path) -> None:
    state = tmp_path / "state"
    # Given a video awaiting its upload (workers off: nothing else moves it)
    first = PlatformProcess(state, database_url=None, extra_args=("--no-workers",))
    try:
        first.start(timeout=120)
        api = Api(first)
        token = api.sign_up(new_email())
        body = api.start_upload(token, "Orphaned PUT", clip.stat().st_size)
        video_id = body["videoId"]
        # And a signed URL made before the restart
        url, headers = body["upload"]["url"], body["upload"]["headers"]
    finally:
        assert first.stop() == 0, first.output()[-4000:]
    # And its bytes reached the store while the platform was down (it died between PUT and event)
    (state / "media" / "uploads").mkdir(parents=True, exist_ok=True)
    (state / "media" / "uploads" / video_id).write_bytes(clip.read_bytes())

    # When the platform starts again
    second = PlatformProcess(state, database_url=None, extra_args=("--no-workers",))
    try:
        second.start(timeout=120)
        # Then the upload event is delivered again and the video is queued for transcoding
        second.wait_for(re.compile(rf"re-delivered the upload event of 1 video\(s\): {video_id}"), timeout=5)
        assert catalogue_status(state, video_id) == "queued"
        # And URLs signed before the restart still verify (the signing key is kept in the state dir):
        # past the signature check, the create-only URL meets the object it would replace (412)
        r = requests.put(
            url.replace(first.url, second.url), data=clip.read_bytes(), headers=headers, timeout=30
        )
        assert r.status_code == 412, r.text
        assert r.json()["error"] == "precondition_failed"
    finally:
        assert second.stop() == 0, second.output()[-4000:]
    assert (state / "signing-key").stat().st_mode & 0o777 == 0o600
