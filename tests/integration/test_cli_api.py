"""The `reelay` CLI against a small fake of the HTTP API, over real sockets.

Tokens, retries, uploads (single, multipart, resumed), --wait, videos, streams, exit codes and
--json. The end-to-end suite runs the same commands against the real platform.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reelay_cli.config import ConfigStore
from reelay_cli.main import main
from tests.integration.fake_reelay_api import PASSWORD, FakeApi, serve

EMAIL = "ada@example.com"


class Cli:
    def __init__(
        self, api: FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, home: Path
    ):
        self.api = api
        self.capsys = capsys
        self.monkeypatch = monkeypatch
        self.home = home

    def __call__(self, *args: str, stdin: str = "") -> tuple[int, str, str]:
        self.capsys.readouterr()
        self.monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(["--api", self.api.url, *args])
        out, err = self.capsys.readouterr()
        assert "Traceback" not in err
        return code, out, err

    def json(self, *args: str, code: int = 0) -> dict:
        got, out, err = self("--json", *args)
        assert got == code, err
        return json.loads(out)  # exactly one document: json.loads refuses anything after it

    def login(self, email: str = EMAIL) -> None:
        code, _, err = self("login", "--email", email, "--password-stdin", stdin=PASSWORD + "\n")
        assert code == 0, err

    @property
    def store(self) -> ConfigStore:
        return ConfigStore(self.home / "config")

    def resume_files(self) -> list[Path]:
        return sorted((self.home / "cache" / "uploads").glob("*.json"))


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with serve(FakeApi(multipart_threshold=100, part_size=40)) as fake:
        fake.add_user(EMAIL)
        yield fake


@pytest.fixture
def cli(
    api: FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Cli:
    monkeypatch.setenv("REELAY_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("REELAY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("REELAY_HTTP_RETRIES", "2")
    monkeypatch.setenv("REELAY_HTTP_BACKOFF", "0.01")
    for name in ("REELAY_API", "REELAY_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return Cli(api, capsys, monkeypatch, tmp_path)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- account -------------------------------------------------------------------------------------
def test_register_confirm_login_whoami_logout(cli: Cli, api: FakeApi) -> None:
    code, out, _ = cli("register", "--email", "new@example.com", "--password-stdin", stdin="Pw-123456789!\n")
    assert (code, out.strip()) == (
        0,
        "Registered new@example.com. Enter the emailed code with: reelay confirm",
    )
    assert cli.json("confirm", "--code", "123456") == {"message": "account confirmed; you can log in"}
    code, out, _ = cli("login", "--password-stdin", stdin="Pw-123456789!\n")  # the email is remembered
    assert code == 0 and "as new@example.com" in out

    assert stat.S_IMODE(cli.store.path.stat().st_mode) == 0o600
    me = cli.json("whoami")
    assert (me["email"], me["userId"], me["api"], me["groups"]) == (
        "new@example.com",
        "sub-new@example.com",
        api.url,
        [],
    )
    assert cli.json("logout") == {"profile": "default", "loggedOut": True}
    assert cli("whoami")[0] == 3


def test_a_wrong_password_or_code_is_said_in_words(cli: Cli) -> None:
    code, out, err = cli("login", "--email", EMAIL, "--password-stdin", stdin="nope\n")
    assert (code, out) == (3, "")
    assert "error: wrong email or password" in err
    code, _, err = cli("confirm", "--email", EMAIL, "--code", "000000")
    assert code == 1 and "the code is wrong or has expired" in err


def test_an_expired_token_is_refreshed_before_the_call(cli: Cli, api: FakeApi) -> None:
    cli.login()
    profile = cli.store.profile("default")
    assert profile.tokens is not None
    refresh_token, old_id = profile.tokens.refresh_token, profile.tokens.id_token
    profile.tokens.expires_at = 0  # as if an hour had passed
    cli.store.save(profile)

    assert cli.json("videos", "list", "--mine") == {"items": [], "nextCursor": None}

    assert api.count("POST", "/auth/refresh") == 1
    assert api.count("GET", "/me/videos") == 1  # no 401 first: refreshed ahead of time
    renewed = cli.store.profile("default").tokens
    assert renewed is not None and renewed.id_token != old_id
    assert renewed.refresh_token == refresh_token  # the refresh answer had none: ours is kept
    assert stat.S_IMODE(cli.store.path.stat().st_mode) == 0o600


def test_a_401_refreshes_once_and_retries(cli: Cli, api: FakeApi) -> None:
    cli.login()
    api.expire_tokens()  # the server says no, though the client thinks the token is fresh

    assert cli.json("videos", "list", "--mine")["items"] == []
    assert api.count("GET", "/me/videos") == 2
    assert api.count("POST", "/auth/refresh") == 1


def test_a_refused_refresh_asks_to_log_in_again(cli: Cli, api: FakeApi) -> None:
    cli.login()
    api.expire_tokens()
    api.refresh_tokens.clear()

    code, out, err = cli("--json", "videos", "list", "--mine")
    assert code == 3
    assert json.loads(out)["error"] == "session_expired"
    assert "your session has expired" in err and "reelay login" in err


# --- errors, retries, exit codes -----------------------------------------------------------------
def test_5xx_answers_are_retried_with_backoff(cli: Cli, api: FakeApi) -> None:
    api.fail_next("GET", r"^/videos$", 503, 502)
    assert cli.json("videos", "list") == {"items": [], "nextCursor": None}
    assert api.count("GET", r"^/videos\?") == 3


def test_a_server_that_keeps_failing_is_exit_5_in_words(cli: Cli, api: FakeApi) -> None:
    api.fail_next("GET", r"^/videos$", 500, 500, 500)
    code, out, err = cli("--json", "videos", "list")
    assert code == 5
    assert json.loads(out) == {"error": "injected", "message": "injected 500", "exitCode": 5, "status": 500}
    assert "error: injected 500" in err


def test_a_post_that_creates_is_not_repeated_after_a_5xx(cli: Cli, api: FakeApi, tmp_path: Path) -> None:
    cli.login()
    api.fail_next("POST", r"^/videos/upload$", 503)
    code, _, err = cli("upload", str(write(tmp_path / "a.mp4", b"v" * 10)))
    assert code == 5 and "injected 503" in err
    assert api.count("POST", "/videos/upload") == 1


def test_an_unreachable_api_is_exit_5(cli: Cli) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    code, out, err = cli("--api", closed, "videos", "list")
    assert (code, out) == (5, "")
    assert f"cannot reach {closed}" in err and "refused" in err


def test_not_found_and_forbidden(cli: Cli, api: FakeApi, tmp_path: Path) -> None:
    api.add_user("eve@example.com")
    cli.login()
    vid = cli.json("upload", str(write(tmp_path / "a.mp4", b"v" * 10)))["videoId"]
    cli.login("eve@example.com")

    code, _, err = cli("videos", "show", "nope")
    assert code == 4 and "error: video nope not found" in err
    code, _, err = cli("videos", "rename", vid, "mine now")
    assert code == 6 and f"video {vid} is not yours" in err


# --- uploads -------------------------------------------------------------------------------------
def test_upload_wait_json_is_one_document_with_the_ready_video(
    cli: Cli, api: FakeApi, tmp_path: Path
) -> None:
    cli.login()
    clip = write(tmp_path / "clip.mp4", b"v" * 50)

    doc = cli.json("upload", str(clip), "--name", "Bars", "--description", "six seconds", "--wait")

    assert doc["video"]["status"] == "ready" and doc["video"]["displayName"] == "Bars"
    assert doc["upload"] == {
        "resumed": False,
        "multipart": False,
        "partsTotal": 1,
        "partsSkipped": 0,
        "partsSent": 1,
        "bytesSent": 50,
    }
    assert api.videos[doc["videoId"]].data == clip.read_bytes()
    assert api.videos[doc["videoId"]].description == "six seconds"
    assert cli.resume_files() == []  # a finished upload leaves no state behind


def test_a_failed_video_exits_1_with_its_reason(cli: Cli, tmp_path: Path) -> None:
    cli.login()
    code, out, err = cli("--json", "upload", str(write(tmp_path / "notes.mp4", b"NOTVIDEO" * 4)), "--wait")
    assert code == 1
    assert json.loads(out)["video"]["failureReason"] == "not a recognised video file"
    assert "failed: not a recognised video file" in err


def test_multipart_parts_go_in_parallel_and_are_completed(cli: Cli, api: FakeApi, tmp_path: Path) -> None:
    cli.login()
    data = bytes(range(256)) * 2  # 512 bytes: 13 parts of 40
    doc = cli.json("upload", str(write(tmp_path / "big.mp4", data)), "--parallel", "4")

    assert doc["upload"]["multipart"] and doc["upload"]["partsSent"] == 13
    assert doc["video"]["status"] == "queued"
    assert api.videos[doc["videoId"]].data == data
    assert api.count("PUT", r"partNumber=") == 13


def test_a_failed_upload_is_continued_on_the_same_video_by_a_rerun(
    cli: Cli, api: FakeApi, tmp_path: Path
) -> None:
    cli.login()
    data = bytes(range(200))  # 5 parts of 40
    big = write(tmp_path / "big.mp4", data)
    # The first part fails on every try of the first run (1 + 2 retries).
    api.fail_next("PUT", r"^/media/\w+$", 500, 500, 500)

    code, _, err = cli("upload", str(big), "--parallel", "1")
    assert code == 5 and "run the same command again to resume" in err
    [state_file] = cli.resume_files()
    state = json.loads(state_file.read_text())
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert "1" not in state["done"]  # the part that failed (the next one may have gone meanwhile)
    puts = {n: api.count("PUT", rf"partNumber={n}$") for n in range(1, 6)}

    doc = cli.json("upload", str(big), "--parallel", "2")

    assert doc["videoId"] == state["videoId"]  # the same video, not a second one
    assert doc["upload"]["resumed"] is True
    assert doc["upload"]["partsSkipped"] == len(state["done"])
    assert api.videos[doc["videoId"]].data == data
    resent = {n: api.count("PUT", rf"partNumber={n}$") - puts[n] for n in range(1, 6)}
    assert resent == {n: 0 if str(n) in state["done"] else 1 for n in range(1, 6)}
    assert cli.resume_files() == []


def test_a_single_put_whose_answer_was_lost_is_not_sent_again_once_it_landed(
    cli: Cli, api: FakeApi, tmp_path: Path
) -> None:
    cli.login()
    small = write(tmp_path / "small.mp4", b"v" * 50)  # under the multipart threshold: one PUT
    # Given a PUT that lands but whose answer is lost (a 502 after the object was stored)
    api.lose_put_answers = 1
    doc = cli.json("upload", str(small))
    # Then the retry meets the create-only URL's 412, which means the upload is there: done
    assert [status for method, _, status in api.log if method == "PUT"] == [502, 412]
    assert api.videos[doc["videoId"]].data == b"v" * 50
    assert cli.resume_files() == []


def test_a_rerun_sends_only_the_parts_that_are_missing(cli: Cli, api: FakeApi, tmp_path: Path) -> None:
    cli.login()
    data = bytes(range(200))  # 5 parts of 40
    big = write(tmp_path / "big.mp4", data)
    # The complete call fails for good on the first run, after every part has landed...
    api.fail_next("POST", r"/upload/complete$", 500, 500, 500)
    code, _, _ = cli("upload", str(big))
    assert code == 5
    [state_file] = cli.resume_files()
    assert sorted(json.loads(state_file.read_text())["done"]) == ["1", "2", "3", "4", "5"]
    # ...then one part is forgotten, as if the process had died while sending it.
    state = json.loads(state_file.read_text())
    del state["done"]["3"]
    state_file.write_text(json.dumps(state))
    puts = {n: api.count("PUT", rf"partNumber={n}$") for n in range(1, 6)}

    doc = cli.json("upload", str(big))

    assert doc["upload"] | {"bytesSent": None} == {
        "resumed": True,
        "multipart": True,
        "partsTotal": 5,
        "partsSkipped": 4,
        "partsSent": 1,
        "bytesSent": None,
    }
    assert {n: api.count("PUT", rf"partNumber={n}$") - puts[n] for n in range(1, 6)} == {
        1: 0,
        2: 0,
        3: 1,
        4: 0,
        5: 0,
    }
    assert api.videos[doc["videoId"]].status == "queued"


def test_a_changed_file_is_a_new_upload(cli: Cli, api: FakeApi, tmp_path: Path) -> None:
    cli.login()
    big = write(tmp_path / "big.mp4", bytes(200))
    api.fail_next("POST", r"/upload/complete$", 500, 500, 500)
    assert cli("upload", str(big))[0] == 5
    write(big, bytes(240))

    doc = cli.json("upload", str(big))

    assert doc["upload"]["resumed"] is False
    assert len(api.videos) == 2


def test_an_unsupported_type_is_refused_in_words(cli: Cli, tmp_path: Path) -> None:
    cli.login()
    code, _, err = cli("upload", str(write(tmp_path / "notes.txt", b"hello")))
    assert code == 1 and "contentType 'text/plain' is not supported" in err


# --- videos --------------------------------------------------------------------------------------
def test_videos_list_show_rename_describe_delete(cli: Cli, api: FakeApi, tmp_path: Path) -> None:
    cli.login()
    vid = cli.json("upload", str(write(tmp_path / "a.mp4", b"v" * 10)), "--wait")["videoId"]

    code, out, _ = cli("videos", "list")
    assert code == 0 and vid in out and "ready" in out and "2.5 s" in out
    assert [v["videoId"] for v in cli.json("videos", "list", "--mine")["items"]] == [vid]
    assert cli.json("videos", "rename", vid, "New name")["displayName"] == "New name"
    assert cli.json("videos", "describe", vid, "Two\nlines")["description"] == "Two\nlines"
    # A private video is its owner's alone: `show` reads the owner's view when logged in
    assert cli.json("videos", "visibility", vid, "private")["visibility"] == "private"
    assert api.videos[vid].visibility == "private"
    assert cli.json("videos", "show", vid)["visibility"] == "private"
    assert cli("videos", "visibility", vid, "secret")[0] != 0  # not a choice: refused before any call
    assert cli.json("videos", "visibility", vid, "public")["visibility"] == "public"
    code, out, _ = cli("videos", "show", vid)
    assert "name:        New name" in out and "status:      ready" in out
    assert cli.json("videos", "delete", vid) == {"videoId": vid, "deleted": True}
    assert cli("videos", "show", vid)[0] == 4


# --- streams -------------------------------------------------------------------------------------
def test_streams_lifecycle_for_an_operator(cli: Cli, api: FakeApi) -> None:
    api.add_user("ops@example.com", operator=True)
    cli.login("ops@example.com")

    created = cli.json("streams", "create", "Lobby", "rtsp://cam/lobby", "--video", "passthrough")
    sid = created["streamId"]
    assert (created["name"], created["sourceUrl"], created["video"]) == (
        "Lobby",
        "rtsp://cam/lobby",
        "passthrough",
    )
    assert [s["streamId"] for s in cli.json("streams", "list")["items"]] == [sid]
    code, out, _ = cli("streams", "list")
    assert sid in out and "stopped" in out

    assert cli.json("streams", "start", sid) == {"streamId": sid, "desiredState": "running"}
    # Wanted running, still starting: status says so and exits 1.
    code, out, _ = cli("streams", "status", sid)
    assert (code, out.strip()) == (1, "Lobby: starting (wants running)")
    api.streams[sid].update(
        state="running", inputBitrateBps=2_500_000, reconnects=2, stateSince="2026-12-01T10:00:00Z"
    )
    code, out, _ = cli("streams", "status", sid)
    assert (code, out.strip()) == (0, "Lobby: running, 2.50 Mbit/s, 2 reconnects")
    code, out, _ = cli("streams", "show", sid)
    assert "source:     rtsp://cam/lobby" in out and "input:      2.50 Mbit/s" in out
    assert "slate" not in out  # never shown: no slate line
    # The camera is down and KVS is fed the slate: show, status and list say so, with since when
    api.streams[sid].update(
        state="reconnecting",
        outageCause="source stalled",
        slateOn=True,
        slateSince="2026-12-01T10:05:00Z",
        slateFragmentsPersisted=3,
    )
    code, out, _ = cli("streams", "show", sid)
    assert "slate:      on since 2026-12-01T10:05:00Z (" in out and ", 3 slate fragments persisted" in out
    code, out, _ = cli("streams", "status", sid)
    assert code == 1 and out.startswith(
        "Lobby: reconnecting (wants running): source stalled, KVS gets the slate (started "
    )
    assert "slate on" in cli("streams", "list")[1]
    # Back to the camera: the slate is off, its fragments still counted
    api.streams[sid].update(state="running", outageCause=None, slateOn=False, slateSince=None)
    code, out, _ = cli("streams", "show", sid)
    assert "slate:      off, 3 slate fragments persisted" in out

    code, out, _ = cli("--json", "streams", "watch", sid, "--interval", "0.1", "--count", "3")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert all(json.loads(line)["state"] == "running" for line in lines)

    assert cli.json("streams", "stop", sid)["desiredState"] == "stopped"
    assert cli.json("streams", "delete", sid) == {"streamId": sid, "deleted": True}
    code, _, err = cli("streams", "show", sid)
    assert code == 4 and f"stream {sid} not found" in err


def test_streams_create_sends_the_contract_body(cli: Cli, api: FakeApi) -> None:
    api.add_user("ops@example.com", operator=True)
    cli.login("ops@example.com")
    doc = cli.json("streams", "create", "Gate", "srt://cam:9000", "--kvs-stream-name", "gate-kvs")
    assert (doc["kvsStreamName"], doc["video"]) == ("gate-kvs", "auto")
    code, _, err = cli("streams", "create", "Gate", "srt://cam:9000", "--video", "magic")
    assert code == 2 and "'magic' is not one of" in err


def test_streams_refuse_non_operators_clearly(cli: Cli) -> None:
    cli.login()
    code, out, err = cli("--json", "streams", "list")
    assert code == 6
    assert json.loads(out)["error"] == "forbidden"
    assert "only operators can manage streams" in err and EMAIL in err


def test_streams_watch_prints_the_table_until_stopped(cli: Cli, api: FakeApi) -> None:
    api.add_user("ops@example.com", operator=True)
    cli.login("ops@example.com")
    sid = cli.json("streams", "create", "Dock", "hls://cam/dock.m3u8")["streamId"]

    code, out, _ = cli("streams", "watch", "--interval", "0.1", "--count", "2")

    assert code == 0
    assert out.count(sid) == 2 and out.count("Dock") == 2


def test_wait_gives_up_after_the_timeout(cli: Cli, api: FakeApi, tmp_path: Path) -> None:
    cli.login()
    api.transcode_script = [("processing", 10, None)] * 1000

    code, out, err = cli(
        "--json", "upload", str(write(tmp_path / "a.mp4", b"v" * 10)), "--wait", "--timeout", "0.3"
    )

    assert code == 5
    assert json.loads(out)["error"] == "timeout"
    assert "is still processing after 0.3 s" in err


def test_ctrl_c_stops_an_upload_that_the_next_run_resumes(cli: Cli, api: FakeApi, tmp_path: Path) -> None:
    cli.login()
    data = bytes(range(256)) * 40  # 10 kB: 256 parts of 40 bytes, sent slowly
    big = write(tmp_path / "big.mp4", data)
    env = dict(os.environ)  # the fixture's config, cache and retry settings
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reelay_cli",
            "--api",
            api.url,
            "upload",
            str(big),
            "--parallel",
            "2",
            "--limit-rate",
            "2K",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(
        json.loads(p.read_text())["done"] for p in cli.resume_files()
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)

    assert proc.returncode == 130
    assert "upload interrupted; run the same command again to resume it" in err and "Traceback" not in err
    [state_file] = cli.resume_files()
    done = json.loads(state_file.read_text())["done"]
    assert 0 < len(done) < 256

    doc = cli.json("upload", str(big))
    assert doc["upload"]["partsSkipped"] == len(done)
    assert api.videos[doc["videoId"]].data == data


def test_names_are_printed_as_they_are_never_as_markup(cli: Cli, tmp_path: Path) -> None:
    cli.login()
    cli.json("upload", str(write(tmp_path / "a.mp4", b"v" * 10)), "--name", "[bold red]loud[/]", "--wait")

    code, out, _ = cli("videos", "list")

    assert code == 0 and "[bold red]loud[/]" in out


# --- recordings ----------------------------------------------------------------------------------
def fields(out: str) -> dict[str, str]:
    """The ``key: value`` lines of a human answer."""
    pairs = (line.split(":", 1) for line in out.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


@pytest.fixture
def operator_cli(cli: Cli, api: FakeApi) -> Cli:
    api.add_user("ops@example.com", operator=True)
    cli.login("ops@example.com")
    return cli


def test_recordings_list_show_finalize_and_export_to_a_file(
    operator_cli: Cli, api: FakeApi, tmp_path: Path
) -> None:
    cli = operator_cli
    sid = cli.json("streams", "create", "Lobby", "rtsp://cam/lobby", "--record")["streamId"]
    live = api.add_session(sid, state="recording", duration=4.0)
    ended = api.add_session(sid, state="ended", duration=12.0)

    # list: newest first, in words and as JSON
    assert [s["sessionId"] for s in cli.json("recordings", "list", sid)["items"]] == [ended, live]
    code, out, _ = cli("recordings", "list", sid)
    assert code == 0
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [(r[0], r[1]) for r in rows] == [(ended, "ended"), (live, "recording")]
    assert "0:12" in out and "0:04" in out
    # show: the live playlist while recording, none once ended
    shown = cli.json("recordings", "show", sid, live)
    assert shown["livePlaylistUrl"].endswith(f"/live/{live}.m3u8?token=t")
    code, out, _ = cli("recordings", "show", sid, live)
    assert code == 0 and fields(out)["live playlist"] == f"{api.url}/live/{live}.m3u8?token=t"
    assert cli.json("recordings", "show", sid, ended)["livePlaylistUrl"] is None

    # finalize --wait: follows the session to ready and shows the video it became
    code, out, err = cli("recordings", "finalize", sid, ended, "--wait")
    assert code == 0, err
    assert "finalize started" in err and f"session {ended}: ready" in err
    video_id = api.sessions[ended]["videoId"]
    assert fields(out)["video"] == video_id
    assert fields(out)["playback"] == f"http://media/{video_id}/master.m3u8"
    # finalizing again is a no-op that answers the ready session
    again = cli.json("recordings", "finalize", sid, ended)
    assert (again["state"], again["videoId"], again["video"]["status"]) == ("ready", video_id, "ready")

    # export -o: waits for the MP4 and downloads it
    target = tmp_path / "clip.mp4"
    doc = cli.json("recordings", "export", sid, ended, "--start", "2", "--end", "0:04.5", "-o", str(target))
    assert (doc["state"], doc["start"], doc["end"], doc["file"]) == ("ready", 2.0, 4.5, str(target))
    assert target.read_bytes() == api.export_bytes
    assert doc["bytesWritten"] == doc["sizeBytes"] == len(api.export_bytes)
    assert list(tmp_path.glob("*.part")) == []
    # without -o or --wait: the export as it was accepted
    code, out, _ = cli("recordings", "export", sid, ended, "--start", "0", "--end", "12")
    assert code == 0 and (fields(out)["state"], fields(out)["range"]) == ("running", "0:00 to 0:12")


def test_finalize_says_why_it_failed_or_was_refused(operator_cli: Cli, api: FakeApi) -> None:
    cli = operator_cli
    sid = cli.json("streams", "create", "Dock", "rtsp://cam/dock")["streamId"]
    broken = api.add_session(sid, state="failed", failure="no segments were stored")
    recording = api.add_session(sid, state="recording")

    # A session that fails again: exit 1 with its reason, and the JSON document says so too
    code, out, err = cli("--json", "recordings", "finalize", sid, broken, "--wait")
    assert code == 1
    assert json.loads(out)["state"] == "failed"
    assert f"session {broken} failed: no segments were stored" in err
    # Still recording: the API's 409 in words, exit 1
    code, out, err = cli("--json", "recordings", "finalize", sid, recording)
    assert code == 1
    assert json.loads(out) == {
        "error": "conflict",
        "message": "the session is still recording: stop the stream first",
        "exitCode": 1,
        "status": 409,
    }
    # Unknown session, unknown stream: exit 4
    code, _, err = cli("recordings", "show", sid, "nope")
    assert code == 4 and "recording session nope not found" in err
    assert cli("recordings", "list", "st-nope")[0] == 4
    # A 5xx on finalize (idempotent) is retried and recovers
    api.fail_next("POST", r"/finalize$", 503)
    ended = api.add_session(sid, state="ended")
    assert cli.json("recordings", "finalize", sid, ended)["state"] in ("finalizing", "ready")
    assert api.count("POST", rf"/sessions/{ended}/finalize") == 2


def test_recordings_refuse_non_operators(cli: Cli, api: FakeApi) -> None:
    cli.login()
    code, out, err = cli("--json", "recordings", "list", "st-any")
    assert code == 6 and json.loads(out)["error"] == "forbidden"
    assert "only operators" in err


def test_export_ranges_are_checked_and_failures_explained(
    operator_cli: Cli, api: FakeApi, tmp_path: Path
) -> None:
    cli = operator_cli
    sid = cli.json("streams", "create", "Yard", "rtsp://cam/yard")["streamId"]
    ready = api.add_session(sid, state="ready", duration=10.0)
    ended = api.add_session(sid, state="ended", duration=10.0)
    before = api.count("POST", r"/exports$")

    # Refused before any request: a malformed time, an end before the start
    code, _, err = cli("recordings", "export", sid, ready, "--start", "1:7", "--end", "5")
    assert code == 2 and "'1:7' is not a time" in err
    code, _, err = cli("recordings", "export", sid, ready, "--start", "5", "--end", "5")
    assert code == 2 and "must come after the start" in err
    assert api.count("POST", r"/exports$") == before
    # Refused by the API: past the duration (400), a session that is not ready (409)
    code, _, err = cli("recordings", "export", sid, ready, "--start", "0", "--end", "11")
    assert code == 1 and "end <= 10.0 (the duration)" in err
    code, _, err = cli("recordings", "export", sid, ended, "--start", "0", "--end", "5")
    assert code == 1 and "the session is ended, not ready" in err
    # An export the API could not start (Step Functions refused it): its 503 in its words, exit 5, once
    api.exports_available = False
    code, _, err = cli("recordings", "export", sid, ready, "--start", "0", "--end", "5")
    assert code == 5 and "the export could not be started; try again" in err
    assert api.count("POST", r"/exports$") == before + 3  # the 400, the 409 and this one, once each
    api.exports_available = True
    # An export that fails: exit 1 with its reason, nothing written
    api.export_failure = "the store refused the read"
    target = tmp_path / "x.mp4"
    code, out, err = cli(
        "--json", "recordings", "export", sid, ready, "--start", "0", "--end", "5", "-o", str(target)
    )
    assert code == 1 and json.loads(out)["failureReason"] == "the store refused the read"
    assert "failed: the store refused the read" in err and not target.exists()


def test_a_download_that_keeps_failing_is_exit_5_and_leaves_no_file(
    operator_cli: Cli, api: FakeApi, tmp_path: Path
) -> None:
    cli = operator_cli
    sid = cli.json("streams", "create", "Yard", "rtsp://cam/yard")["streamId"]
    ready = api.add_session(sid, state="ready", duration=10.0)
    api.fail_next("GET", r"/downloads/", 502, 502, 502)  # the client tries 1 + 2 times
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "x.mp4"

    code, _, err = cli("recordings", "export", sid, ready, "--start", "0", "--end", "5", "-o", str(target))

    assert code == 5 and "cannot download x.mp4: injected 502" in err
    assert list((tmp_path / "out").iterdir()) == []


def test_streams_create_and_update_send_the_recording_settings(operator_cli: Cli, api: FakeApi) -> None:
    cli = operator_cli
    code, out, _ = cli(
        "streams", "create", "Gate", "rtsp://cam/gate", "--record", "--rendition", "720p",
        "--rendition", "360p", "--retention-days", "30", "--record-store",
        "s3://AKIAX:topsecret@eu-west-1/bucket", "--record-webhook", "https://hooks.example/reelay",
    )  # fmt: skip
    assert code == 0
    sid = out.split()[2]
    stream = api.streams[sid]
    assert (stream["record"], stream["recordRenditions"], stream["retentionDays"]) == (
        True,
        ["720p", "360p"],
        30,
    )
    assert "Webhook signing secret (shown once): whsec_" in out
    code, out, _ = cli("streams", "show", sid)
    assert fields(out)["recording"] == "on (source, 720p, 360p; kept 30 days)"
    assert fields(out)["record store"] == "s3://AKIAX:***@eu-west-1/bucket" and "topsecret" not in out
    assert "webhook secret" not in out  # only in the answer that set the URL

    doc = cli.json("streams", "update", sid, "--source-only", "--retention-days", "0", "--record-store", "")
    assert (doc["recordRenditions"], doc["retentionDays"], doc["recordObjectStore"]) == ([], None, None)
    assert cli.json("streams", "update", sid, "--no-record")["record"] is False
    # Contradictions and empty updates are usage errors; the API's refusals are said in words
    assert cli("streams", "update", sid, "--source-only", "--rendition", "720p")[0] == 2
    assert cli("streams", "update", sid)[0] == 2
    cli.json("streams", "start", sid)
    code, _, err = cli("streams", "update", sid, "--rendition", "480p")
    assert code == 1 and "only while the stream is stopped" in err
