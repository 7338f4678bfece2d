"""The CLI's local bookkeeping: profiles and tokens on disk, resume state, exit codes, rates."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import click
import pytest

from reelay_cli.config import ConfigStore, Profile, Tokens
from reelay_cli.errors import ApiError, CliError, ExitCode, exit_code_for
from reelay_cli.main import ByteRate, main
from reelay_cli.upload import PartReader, RateLimit, ResumeStore, UploadState, file_identity, state_key

NOW = 1_800_000_000.0


def tokens(expires_at: float = NOW + 3600, refresh: str | None = "r-1") -> Tokens:
    return Tokens(id_token="id-1", access_token="ac-1", refresh_token=refresh, expires_at=expires_at)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- profiles and tokens -------------------------------------------------------------------------
def test_tokens_are_saved_readable_by_the_owner_only(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "cfg")
    store.save(
        Profile(name="default", api="http://api", email="a@b.c", tokens=tokens(), token_api="http://api")
    )

    assert mode(store.path) == 0o600
    assert mode(store.directory) == 0o700
    again = store.profile("default")
    assert again.tokens == tokens()
    assert (again.api, again.email, again.token_api) == ("http://api", "a@b.c", "http://api")
    # No temporary file is left next to it.
    assert [p.name for p in store.directory.iterdir()] == ["config.json"]


def test_a_loosened_config_file_is_tightened_when_read(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    store.save(Profile(name="default", tokens=tokens(), token_api="http://api"))
    os.chmod(store.path, 0o644)

    store.profile("default")

    assert mode(store.path) == 0o600


def test_profiles_are_kept_apart_and_unknown_keys_survive(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    store.save(Profile(name="prod", api="https://api.example/prod", email="ops@example.com"))
    store.save(Profile(name="default", email="dev@example.com", extra={"note": "kept"}))
    store.save(Profile(name="default", email="dev2@example.com", extra=store.profile("default").extra))

    assert [p.name for p in store.profiles()] == ["default", "prod"]
    assert store.profile("prod").api == "https://api.example/prod"
    assert store.profile("default").email == "dev2@example.com"
    assert json.loads(store.path.read_text())["profiles"]["default"]["note"] == "kept"
    assert store.profile("missing") == Profile(name="missing")


def test_a_broken_config_file_is_an_error_in_words(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    store.path.write_text("{not json")

    with pytest.raises(CliError, match="is not valid JSON") as raised:
        store.profile("default")
    assert raised.value.code == ExitCode.FAILED


def test_tokens_expire_a_minute_early_and_a_refresh_keeps_the_refresh_token() -> None:
    t = Tokens.from_api({"idToken": "i", "accessToken": "a", "refreshToken": "r", "expiresIn": 3600}, now=NOW)
    assert not t.expired(NOW + 3539)
    assert t.expired(NOW + 3541)  # 60 s of skew: a slow request must not straddle the expiry

    renewed = Tokens.from_api(
        {"idToken": "i2", "accessToken": "a2", "expiresIn": 600}, now=NOW + 10, previous=t
    )
    assert (renewed.id_token, renewed.refresh_token, renewed.expires_at) == ("i2", "r", NOW + 610)


# --- resume state --------------------------------------------------------------------------------
MULTIPART_ANSWER = {
    "videoId": "v1",
    "multipart": {
        "uploadId": "u1",
        "partSizeBytes": 10,
        "parts": [{"partNumber": n, "url": f"http://media/v1?partNumber={n}"} for n in (1, 2, 3)],
        "completePath": "videos/v1/upload/complete",
        "expiresIn": 3600,
    },
}


def fresh_state(path: Path) -> UploadState:
    real, size, mtime = file_identity(path)
    return UploadState.from_upload_answer(
        MULTIPART_ANSWER, api="http://api", path=real, size=size, mtime_ns=mtime, now=NOW
    )


def test_multipart_state_knows_its_parts_and_what_is_left(tmp_path: Path) -> None:
    f = tmp_path / "clip.mp4"
    f.write_bytes(b"x" * 25)
    state = fresh_state(f)

    assert state.multipart and state.part_numbers == [1, 2, 3]
    assert [state.part_range(n) for n in (1, 2, 3)] == [(0, 10), (10, 10), (20, 5)]
    state.done[2] = '"e2"'
    assert state.pending() == [1, 3]
    assert state.bytes_done() == 10
    assert state.expires_at == NOW + 3600


def test_single_upload_state_is_one_part_of_the_whole_file(tmp_path: Path) -> None:
    f = tmp_path / "clip.mp4"
    f.write_bytes(b"x" * 7)
    real, size, mtime = file_identity(f)
    answer = {
        "videoId": "v2",
        "upload": {"url": "http://media/v2", "headers": {"Content-Type": "video/mp4"}, "expiresIn": 60},
    }

    state = UploadState.from_upload_answer(
        answer, api="http://api", path=real, size=size, mtime_ns=mtime, now=NOW
    )

    assert not state.multipart
    assert (state.part_numbers, state.part_range(1), state.single_headers) == (
        [1],
        (0, 7),
        {"Content-Type": "video/mp4"},
    )


def test_finished_parts_are_persisted_and_found_again_for_the_same_file(tmp_path: Path) -> None:
    f = tmp_path / "clip.mp4"
    f.write_bytes(b"x" * 25)
    store = ResumeStore(tmp_path / "uploads", clock=lambda: NOW)
    state = fresh_state(f)
    store.save(state)
    store.record_part(state, 1, '"etag-1"')
    store.record_part(state, 3, '"etag-3"')

    real, size, mtime = file_identity(f)
    again = store.load("http://api/", real, size, mtime)  # a trailing slash is the same API

    assert again is not None and again.done == {1: '"etag-1"', 3: '"etag-3"'}
    assert again.pending() == [2]
    assert (again.video_id, again.upload_id) == ("v1", "u1")
    assert mode(store.path_for("http://api", real, size, mtime)) == 0o600


def test_a_changed_file_or_another_api_is_a_new_upload(tmp_path: Path) -> None:
    f = tmp_path / "clip.mp4"
    f.write_bytes(b"x" * 25)
    store = ResumeStore(tmp_path / "uploads", clock=lambda: NOW)
    store.save(fresh_state(f))
    real, size, mtime = file_identity(f)

    assert store.load("http://other", real, size, mtime) is None
    f.write_bytes(b"y" * 26)
    real2, size2, mtime2 = file_identity(f)
    assert state_key("http://api", real, size, mtime) != state_key("http://api", real2, size2, mtime2)
    assert store.load("http://api", real2, size2, mtime2) is None


def test_completed_unreadable_and_expired_states_are_removed(tmp_path: Path) -> None:
    f = tmp_path / "clip.mp4"
    f.write_bytes(b"x" * 25)
    now = [NOW]
    store = ResumeStore(tmp_path / "uploads", clock=lambda: now[0])
    state = fresh_state(f)
    store.save(state)
    real, size, mtime = file_identity(f)

    store.discard(state)
    assert store.load("http://api", real, size, mtime) is None

    store.save(state)
    store.path_for("http://api", real, size, mtime).write_text("{broken")
    assert store.load("http://api", real, size, mtime) is None
    assert not store.path_for("http://api", real, size, mtime).exists()

    store.save(state)
    assert store.prune() == 0
    now[0] = NOW + 3601
    assert store.prune() == 1
    assert list(store.directory.glob("*.json")) == []


def test_a_part_reader_sends_its_window_and_takes_back_progress_on_a_rewind(tmp_path: Path) -> None:
    f = tmp_path / "data"
    f.write_bytes(bytes(range(100)))
    progress: list[int] = []
    reader = PartReader(f, 10, 30, progress=progress.append)

    assert len(reader) == 30
    first = reader.read(20)
    assert first == bytes(range(10, 30)) and reader.tell() == 20
    reader.seek(0)  # urllib3 rewinds the body before a retry
    assert reader.read() == bytes(range(10, 40))
    assert reader.read() == b""
    reader.close()
    assert progress == [20, -20, 30]
    assert sum(progress) == 30


def test_the_rate_limit_spreads_bytes_over_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import reelay_cli.upload as upload

    slept: list[float] = []
    monkeypatch.setattr(upload.time, "sleep", slept.append)
    limit = RateLimit(1000, clock=lambda: 0.0)

    limit.take(500)
    limit.take(500)

    assert slept == [0.5, 1.0]


# --- exit codes and words ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (400, "invalid_input", ExitCode.FAILED),
        (409, "conflict", ExitCode.FAILED),
        (401, "unauthorized", ExitCode.AUTH),
        (403, "user_not_confirmed", ExitCode.AUTH),
        (400, "invalid_credentials", ExitCode.AUTH),
        (403, "forbidden", ExitCode.FORBIDDEN),
        (404, "not_found", ExitCode.NOT_FOUND),
        (429, "throttled", ExitCode.UNAVAILABLE),
        (502, "bad_gateway", ExitCode.UNAVAILABLE),
    ],
)
def test_api_errors_map_to_exit_codes(status: int, error: str, code: ExitCode) -> None:
    assert exit_code_for(status, error) == code
    e = ApiError(status, error, "words")
    assert (e.code, e.as_json()) == (
        code,
        {"error": error, "message": "words", "exitCode": int(code), "status": status},
    )


def test_exit_codes_are_the_documented_numbers() -> None:
    assert {c.name: int(c) for c in ExitCode} == {
        "OK": 0,
        "FAILED": 1,
        "USAGE": 2,
        "AUTH": 3,
        "NOT_FOUND": 4,
        "UNAVAILABLE": 5,
        "FORBIDDEN": 6,
        "INTERRUPTED": 130,
    }


def test_usage_errors_exit_2_with_words(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["videos", "frobnicate"]) == 2
    assert main(["upload", "/no/such/file.mp4"]) == 2
    err = capsys.readouterr().err
    assert "No such command 'frobnicate'" in err
    assert "does not exist" in err
    assert "Traceback" not in err


def test_not_logged_in_is_exit_3_and_json_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REELAY_CONFIG_DIR", str(tmp_path))
    assert main(["--json", "--api", "http://127.0.0.1:9", "whoami"]) == ExitCode.AUTH
    out, err = capsys.readouterr()
    assert json.loads(out) == {
        "error": "not_logged_in",
        "message": "not logged in to http://127.0.0.1:9 (profile 'default'): run `reelay login`",
        "exitCode": 3,
    }
    assert "error: not logged in" in err


def test_tokens_of_another_api_are_not_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REELAY_CONFIG_DIR", str(tmp_path))
    ConfigStore(tmp_path).save(Profile(name="default", api="http://a", tokens=tokens(), token_api="http://a"))

    assert main(["--api", "http://b", "whoami"]) == ExitCode.AUTH
    assert "not logged in to http://b" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "rate"), [("500K", 512_000), ("2M", 2 * 1024**2), ("1.5MiB/s", 1.5 * 1024**2), ("100", 100)]
)
def test_rates_read_like_curl(text: str, rate: float) -> None:
    assert ByteRate().convert(text, None, None) == rate


@pytest.mark.parametrize("text", ["fast", "0", "-1M"])
def test_bad_rates_are_usage_errors(text: str) -> None:
    with pytest.raises(click.BadParameter):
        ByteRate().convert(text, None, None)


@pytest.mark.parametrize(
    ("base", "path", "url"),
    [
        ("http://127.0.0.1:8080", "/videos", "http://127.0.0.1:8080/videos"),
        (
            "https://abc.execute-api.eu-west-1.amazonaws.com/prod",
            "/videos/v1",
            "https://abc.execute-api.eu-west-1.amazonaws.com/prod/videos/v1",
        ),
        (
            "https://abc.execute-api.eu-west-1.amazonaws.com/prod/",
            "videos/v1/upload/complete",
            "https://abc.execute-api.eu-west-1.amazonaws.com/prod/videos/v1/upload/complete",
        ),
    ],
)
def test_paths_resolve_under_the_api_stage(base: str, path: str, url: str) -> None:
    from reelay_cli.client import ApiClient

    assert ApiClient(base).url(path) == url
