"""The `reelay` console script against the one-machine platform, as a user would run it.

The platform here has its own database and splits multipart uploads into 5 MiB parts (the least
S3 allows) above 400 kB, so a 7.5 MB file goes in two parts and an upload can be killed between them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import PASSWORD, PlatformProcess, new_email, own_platform

PART_BYTES = 5 * 1024 * 1024
REELAY = Path(sys.executable).with_name("reelay")  # installed by `make bootstrap` (pip install -e .)


@pytest.fixture(scope="module")
def cli_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    env = {"REELAY_MULTIPART_THRESHOLD_BYTES": "400000", "REELAY_MULTIPART_PART_BYTES": str(PART_BYTES)}
    with own_platform(tmp_path_factory, "reelay_cli", env=env) as p:
        yield p


class Reelay:
    """Runs the installed `reelay` script with its own config and cache directories."""

    def __init__(self, platform: PlatformProcess, home: Path) -> None:
        self.platform = platform
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("REELAY_")}
        self.env |= {"REELAY_CONFIG_DIR": str(home / "config"), "REELAY_CACHE_DIR": str(home / "cache")}
        self.home = home

    def args(self, *args: str) -> list[str]:
        return [str(REELAY), "--api", self.platform.url, *args]

    def run(self, *args: str, stdin: str = "", timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.args(*args), input=stdin, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    def json(self, *args: str, code: int = 0) -> dict:
        proc = self.run("--json", *args)
        assert proc.returncode == code, proc.stderr
        return json.loads(proc.stdout)  # exactly one JSON document on stdout

    def sign_up(self, email: str) -> None:
        mark = len(self.platform.lines)
        proc = self.run("register", "--email", email, "--password-stdin", stdin=PASSWORD + "\n")
        assert proc.returncode == 0, proc.stderr
        code = self.platform.code_for(email, after=mark)
        assert self.json("confirm", "--email", email, "--code", code)["message"].startswith(
            "account confirmed"
        )
        proc = self.run("login", "--password-stdin", stdin=PASSWORD + "\n")
        assert proc.returncode == 0, proc.stderr

    def resume_states(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in (self.home / "cache" / "uploads").glob("*.json")]


@pytest.fixture
def reelay(cli_platform: PlatformProcess, tmp_path: Path) -> Reelay:
    cli = Reelay(cli_platform, tmp_path)
    cli.sign_up(new_email())
    return cli


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.media_fixtures import make_clip

    return make_clip(
        tmp_path_factory.mktemp("cli-clips") / "clip.mp4", seconds=2, width=320, height=180, fps=15
    )


@pytest.fixture(scope="module")
def two_part_clip(small_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small clip plus a 7 MiB top-level MP4 `free` box: a real video that needs two parts,
    without the cost of transcoding 7 MB of pictures (demuxers skip `free` boxes)."""
    path = tmp_path_factory.mktemp("cli-clips") / "padded.mp4"
    shutil.copy(small_clip, path)
    pad = 7 * 1024 * 1024
    with open(path, "ab") as f:
        f.write(struct.pack(">I", pad) + b"free" + bytes(pad - 8))
    assert PART_BYTES < path.stat().st_size < 2 * PART_BYTES
    return path


def test_register_upload_wait_and_manage_a_video(reelay: Reelay, small_clip: Path) -> None:
    whoami = reelay.json("whoami")
    assert whoami["api"] == reelay.platform.url and whoami["email"].endswith("@example.com")

    doc = reelay.json("upload", str(small_clip), "--name", "Test pattern", "--description", "bars", "--wait")

    vid = doc["videoId"]
    video = doc["video"]
    assert (video["status"], video["progress"], video["playable"]) == ("ready", 100, True)
    assert (video["displayName"], video["description"]) == ("Test pattern", "bars")
    assert video["playbackUrl"].endswith(f"/media/outputs/{vid}/master.m3u8")
    assert doc["upload"]["multipart"] is False and doc["upload"]["bytesSent"] == small_clip.stat().st_size

    listing = reelay.run("videos", "list", "--mine")
    assert listing.returncode == 0 and vid in listing.stdout and "Test pattern" in listing.stdout
    assert reelay.json("videos", "rename", vid, "Colour bars")["displayName"] == "Colour bars"
    assert reelay.json("videos", "describe", vid, "Two seconds")["description"] == "Two seconds"
    assert vid in [v["videoId"] for v in reelay.json("videos", "list")["items"]]
    assert reelay.json("videos", "delete", vid) == {"videoId": vid, "deleted": True}
    gone = reelay.run("videos", "show", vid)
    assert gone.returncode == 4 and f"video {vid} not found" in gone.stderr


def test_a_file_that_is_not_a_video_fails_with_its_reason(reelay: Reelay, tmp_path: Path) -> None:
    junk = tmp_path / "holiday.mp4"
    junk.write_bytes(b"these are my holiday notes, not a video\n" * 200)

    proc = reelay.run("--json", "upload", str(junk), "--wait")

    assert proc.returncode == 1
    video = json.loads(proc.stdout)["video"]
    assert video["status"] == "failed" and video["failureReason"]
    assert f"failed: {video['failureReason']}" in proc.stderr
    assert "not a recognised video file" in video["failureReason"]


def part_puts(platform: PlatformProcess, video_id: str) -> dict[int, int]:
    """Part PUTs the gateway answered 200, per part number, from its request log."""
    log = (platform.state_dir / "reelay.log").read_text()
    pattern = re.compile(rf'"PUT /media/uploads/{video_id}\?[^"]*partNumber=(\d+)[^"]*" 200 ')
    counts: dict[int, int] = {}
    for m in pattern.finditer(log):
        counts[int(m.group(1))] = counts.get(int(m.group(1)), 0) + 1
    return counts


def test_a_killed_multipart_upload_resumes_without_resending_parts(
    reelay: Reelay, two_part_clip: Path
) -> None:
    # Given an upload slowed to 2 MiB/s, one part at a time, killed once its first part is in
    proc = subprocess.Popen(
        reelay.args("upload", str(two_part_clip), "--parallel", "1", "--limit-rate", "2M"),
        env=reelay.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    states: list[dict] = []
    while time.monotonic() < deadline and proc.poll() is None:
        states = reelay.resume_states()
        if states and states[0]["done"]:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    [state] = reelay.resume_states()
    assert list(state["done"]) == ["1"]
    vid = state["videoId"]
    assert reelay.json("videos", "show", vid)["status"] == "awaiting_upload"

    # When the same command runs again
    doc = reelay.json("upload", str(two_part_clip), "--wait")

    # Then it finished the same video, sending only the second part, and the video plays
    assert doc["videoId"] == vid
    assert doc["upload"] == {
        "resumed": True,
        "multipart": True,
        "partsTotal": 2,
        "partsSkipped": 1,
        "partsSent": 1,
        "bytesSent": two_part_clip.stat().st_size - PART_BYTES,
    }
    assert doc["video"]["status"] == "ready"
    assert part_puts(reelay.platform, vid) == {1: 1, 2: 1}
    assert reelay.resume_states() == []


def test_an_expired_session_is_renewed_with_the_refresh_token(reelay: Reelay) -> None:
    config = reelay.home / "config" / "config.json"
    data = json.loads(config.read_text())
    tokens = data["profiles"]["default"]["tokens"]
    old_id = tokens["idToken"]
    tokens["expiresAt"] = 0  # as if the hour had passed
    config.write_text(json.dumps(data))

    assert reelay.json("videos", "list", "--mine") == {"items": [], "nextCursor": None}

    renewed = json.loads(config.read_text())["profiles"]["default"]["tokens"]
    assert renewed["idToken"] != old_id and renewed["expiresAt"] > time.time() + 600
    assert renewed["refreshToken"] == tokens["refreshToken"]
    assert oct(config.stat().st_mode & 0o777) == "0o600"
