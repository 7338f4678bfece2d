"""`make up` relays its demo camera to the local KVS, as the README walks an operator through it:
sign up, become an operator, register the demo camera, start it, watch it at the stand-in, kill the
relay task with SIGKILL and see it come back, stop it. Part of it goes through the `reelay` CLI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import PASSWORD, Api, PlatformProcess, new_email, own_platform
from tests.media_fixtures import ffprobe_json
from tests.relay_fixtures import wait_until as poll

pytestmark = [pytest.mark.media, pytest.mark.mysql]
REELAY = Path(sys.executable).with_name("reelay")


@pytest.fixture(scope="module")
def live_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    with own_platform(
        tmp_path_factory,
        "reelay_live",
        env={"REELAY_RELAY_METRICS_SECONDS": "5"},
        extra_args=("--camera", "rtsp"),
    ) as p:
        yield p


def endpoints(platform: PlatformProcess) -> dict[str, str]:
    return json.loads((platform.state_dir / "endpoints.json").read_text())


def operator_token(platform: PlatformProcess, api: Api) -> tuple[str, str]:
    email = new_email()
    token = api.sign_up(email)
    assert api.call("GET", "/streams", token=token).status_code == 403
    done = subprocess.run(
        [sys.executable, "-m", "local", "make-operator", email, "--state-dir", str(platform.state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return email, api.login(email)  # the group travels in the next ID token


def relay_pid(stream_id: str) -> int | None:
    out = subprocess.run(
        ["pgrep", "-f", f"transcoder.relay --stream-id {stream_id}"], capture_output=True, text=True
    )
    pids = [int(p) for p in out.stdout.split()]
    return pids[0] if pids else None


def test_the_demo_camera_is_relayed_to_the_local_kvs(live_platform: PlatformProcess, tmp_path: Path) -> None:
    api = Api(live_platform)
    _email, token = operator_token(live_platform, api)
    ends = endpoints(live_platform)
    camera, kvs = ends["demoCamera"], ends["kvs"]
    assert camera.startswith("rtsp://127.0.0.1:")

    # Register the demo camera and start it
    r = api.call("POST", "/streams", token=token, json={"name": "Demo camera", "sourceUrl": camera})
    assert r.status_code == 201, r.text
    stream = r.json()
    sid, kvs_name = stream["streamId"], stream["kvsStreamName"]
    assert api.call("POST", f"/streams/{sid}/start", token=token).status_code == 202

    # The operator sees it running, with the last fragment KVS acknowledged
    def running() -> dict | None:
        s = api.call("GET", f"/streams/{sid}", token=token).json()
        return s if s["state"] == "running" and s.get("lastFragmentAckedAt") else None

    up = poll(running, 60, "the stream to run")
    assert up["desiredState"] == "running" and up["inputBitrateBps"] > 0 and up["task"]["taskId"]

    # ...and can watch the feed at the stand-in
    fragments = requests.get(f"{kvs}/_reelay/streams/{kvs_name}/fragments", timeout=10).json()
    assert len(fragments["fragments"] if isinstance(fragments, dict) else fragments) >= 1
    media = tmp_path / "live.mkv"
    media.write_bytes(requests.get(f"{kvs}/_reelay/streams/{kvs_name}/live.mkv?last=3", timeout=10).content)
    assert ffprobe_json(media)["streams"][0]["codec_name"] == "h264"

    # kill -9 the relay task: the platform starts another, which relays again
    pid = poll(lambda: relay_pid(sid), 10, "the relay task's pid")
    os.kill(pid, signal.SIGKILL)
    poll(lambda: relay_pid(sid) not in (None, pid) and relay_pid(sid), 20, "a new relay task")
    before = up["lastFragmentAckedAt"]
    poll(
        lambda: (
            (s := api.call("GET", f"/streams/{sid}", token=token).json())["state"] == "running"
            and s["lastFragmentAckedAt"] != before
        ),
        60,
        "fragments from the new task",
    )

    # Stop: the task drains and exits; the stream shows stopped
    assert api.call("POST", f"/streams/{sid}/stop", token=token).status_code == 202
    poll(lambda: api.call("GET", f"/streams/{sid}", token=token).json()["state"] == "stopped", 30, "stopped")
    poll(lambda: relay_pid(sid) is None, 30, "the relay task to exit")
    assert api.call("DELETE", f"/streams/{sid}", token=token).status_code == 204


def test_the_cli_manages_a_stream(live_platform: PlatformProcess, tmp_path: Path) -> None:
    api = Api(live_platform)
    email, _token = operator_token(live_platform, api)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELAY_")}
    env |= {"REELAY_CONFIG_DIR": str(tmp_path / "config"), "REELAY_CACHE_DIR": str(tmp_path / "cache")}

    def reelay(*args: str, stdin: str = "", code: int = 0) -> Any:
        proc = subprocess.run(
            [str(REELAY), "--api", live_platform.url, "--json", *args],
            input=stdin, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == code, proc.stdout + proc.stderr
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    reelay("login", "--email", email, "--password-stdin", stdin=PASSWORD + "\n")
    camera = endpoints(live_platform)["demoCamera"]
    created = reelay("streams", "create", "CLI camera", camera)
    sid = created["streamId"]
    reelay("streams", "start", sid)
    poll(lambda: reelay("streams", "show", sid)["state"] == "running", 60, "running")
    assert sid in [s["streamId"] for s in reelay("streams", "list")["items"]]
    reelay("streams", "stop", sid)
    poll(lambda: reelay("streams", "show", sid)["state"] == "stopped", 30, "stopped")
    reelay("streams", "delete", sid)
