"""The local platform serves API requests concurrently, each with its own caller; it stays on loopback.

The gateway is a threaded WSGI server. It once took one lock around every Lambda call, because the
Powertools resolver keeps the current event in class state; now the resolver keeps it per thread.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from local.config import REMOTE_WARNING, LocalSettings, is_loopback, parse_args
from local.gateway import Gateway
from local.media import MediaEndpoint
from local.platform import Platform, StartupError
from reelay.api.app import caller
from reelay.catalogue.memory import MemoryCatalogue
from reelay.ports import Page
from reelay.settings import Settings
from reelay.wiring import Services
from tests.fakes import installed_services
from tests.unit.test_api import make_ready, settings  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")]

CALLERS = {
    "Bearer alice": {"sub": "user-alice", "email": "alice@example.com"},
    "Bearer bob": {"sub": "user-bob", "email": "bob@example.com"},
}


class Tokens:
    """The authorizer's contract (claims of a bearer token) without a user pool."""

    def claims(self, authorization: str | None) -> dict[str, Any]:
        from local.auth import InvalidToken

        if authorization not in CALLERS:
            raise InvalidToken("unknown token")
        return CALLERS[authorization]


class SlowCatalogue(MemoryCatalogue):
    """Listing a user's videos waits until two listings are in flight at once, and records when."""

    def __init__(self) -> None:
        super().__init__()
        self.both_inside = threading.Barrier(2, timeout=5)
        self.spans: list[tuple[float, float]] = []
        self.callers: list[tuple[str, str]] = []  # (owner asked for, caller the resolver sees now)

    def list_by_owner(self, owner_id: str, *, limit: int, cursor: str | None = None) -> Page:
        start = time.monotonic()
        self.both_inside.wait()  # serialised calls never get here together: BrokenBarrierError
        time.sleep(0.2)  # each request stays slow after the other arrived
        # Both events are in the resolver by now: each thread must still see its own caller.
        self.callers.append((owner_id, caller().user_id))
        page = super().list_by_owner(owner_id, limit=limit, cursor=cursor)
        self.spans.append((start, time.monotonic()))
        return page


@pytest.fixture
def slow_services(settings: Settings) -> Iterator[Services]:  # noqa: F811
    with installed_services(settings, SlowCatalogue()) as svc:
        yield svc


@pytest.fixture
def platform_gateway(slow_services: Services, tmp_path: Path) -> tuple[Gateway, SlowCatalogue]:
    catalogue = slow_services.catalogue
    assert isinstance(catalogue, SlowCatalogue)
    # The platform's own API handler behind the gateway, as `make up` runs it. The threaded WSGI
    # server calls the gateway on one thread per request; the test's threads do the same.
    platform = Platform(LocalSettings(state_dir=tmp_path))
    gateway = Gateway(
        api_handler=platform._api_handler,
        authorizer=Tokens(),  # type: ignore[arg-type]
        media=MediaEndpoint(output_prefix="outputs/"),
        static_dir=tmp_path,
        max_body_bytes=1 << 20,
    )
    return gateway, catalogue


def test_two_slow_requests_overlap_and_each_sees_only_its_own_caller(
    slow_services: Services, platform_gateway: tuple[str, SlowCatalogue]
) -> None:
    gateway, catalogue = platform_gateway
    mine = {
        "Bearer alice": make_ready(slow_services, owner=CALLERS["Bearer alice"]).video_id,
        "Bearer bob": make_ready(slow_services, owner=CALLERS["Bearer bob"]).video_id,
    }
    answers: dict[str, Any] = {}

    def list_mine(token: str) -> None:
        r = Client(gateway).get("/me/videos", headers={"Authorization": token})
        answers[token] = (r.status_code, r.get_json())

    # When Alice and Bob list their videos at the same time
    threads = [threading.Thread(target=list_mine, args=(token,)) for token in CALLERS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    # Then both answered, each with only their own video (no caller leaked across threads)
    for token, (status, body) in answers.items():
        assert status == 200, json.dumps(body)
        assert [v["videoId"] for v in body["items"]] == [mine[token]]
    assert len(answers) == 2
    assert sorted(catalogue.callers) == [("user-alice", "user-alice"), ("user-bob", "user-bob")]
    # And the two slow calls overlapped in time
    (a_start, a_end), (b_start, b_end) = catalogue.spans
    assert max(a_start, b_start) < min(a_end, b_end)


def test_the_openapi_document_asked_by_many_at_once_is_built_for_each(
    platform_gateway: tuple[Gateway, SlowCatalogue],
) -> None:
    # Powertools builds the document in the resolver's shared state: built by several threads at
    # once it raised KeyError (500). Found by the e2e authorization matrix, whose cells run at once.
    gateway, _ = platform_gateway
    go = threading.Barrier(8, timeout=5)

    def fetch(_: int) -> tuple[int, str]:
        go.wait()
        r = Client(gateway).get("/openapi.json")
        return r.status_code, r.get_data(as_text=True)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(fetch, range(8)))
    # Then every answer is the same, whole document
    assert {status for status, _ in answers} == {200}, [body[:200] for _, body in answers]
    assert len({body for _, body in answers}) == 1 and "/streams/{streamId}" in answers[0][1]


def test_other_functions_still_take_one_event_at_a_time(tmp_path: Path) -> None:
    # Given a function invoked from two threads at once through the platform
    platform = Platform(LocalSettings(state_dir=tmp_path))
    inside = 0
    most = 0
    guard = threading.Lock()

    def handler(event: dict[str, Any], context: Any) -> None:
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
        time.sleep(0.1)
        with guard:
            inside -= 1

    threads = [threading.Thread(target=platform._invoke, args=(handler, {}, None)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    # Then it ran one event at a time, as one Lambda instance does
    assert most == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_hosts_need_no_flag(host: str) -> None:
    assert is_loopback(host)
    assert parse_args(["--host", host]).host == host


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::"])
def test_a_non_loopback_host_is_refused_unless_allowed(host: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as refused:
        parse_args(["--host", host])
    assert refused.value.code == 2
    assert "--allow-remote" in capsys.readouterr().err
    assert parse_args(["--host", host, "--allow-remote"]).allow_remote is True


def test_the_platform_refuses_a_remote_host_and_warns_when_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, "us-east-1")  # restored afterwards; _start only sets defaults
    # Given a platform asked for 0.0.0.0 without the flag, Then it refuses before starting anything
    said: list[str] = []
    refused = Platform(LocalSettings(state_dir=tmp_path, host="0.0.0.0"), announce=said.append)
    with pytest.raises(RuntimeError, match="--allow-remote"):
        refused._start()
    assert said == [] and refused.moto is None
    # Given the flag, Then it warns that this is a development server and goes on (to a busy port here)
    import socket

    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        opts = LocalSettings(
            state_dir=tmp_path, host="0.0.0.0", allow_remote=True, port=busy.getsockname()[1]
        )
        allowed = Platform(opts, announce=said.append)
        with pytest.raises(StartupError, match="in use"):
            allowed._start()
    assert said == [REMOTE_WARNING.format(host="0.0.0.0")]
    assert "development server" in said[0]
