"""ECS task scale-in protection: a worker holding a job asks the container agent to protect its task.

The agent is played by a tiny HTTP server on a free local port that answers as the ECS agent does.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from reelay.adapters.ecs import TaskProtection
from reelay.models import TranscodeJob
from reelay.settings import Settings
from reelay.transcode import Outcome
from tests.fakes import FakeEvents
from tests.unit.test_transcode import (
    SOURCE_KEY,
    VIDEO_ID,
    FakeEncoder,
    make_service,
    new_catalogue,
    new_store,
)
from tests.unit.test_transcode_worker import Ports, RecordingQueue
from transcoder.worker import Worker


class FakeAgent(ThreadingHTTPServer):
    """Records every request; ``answer`` is (status, body) for the next PUTs."""

    daemon_threads = True

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.answer: tuple[int, bytes] = (200, b'{"protection": {"ProtectionEnabled": true}}')
        self.delay = 0.0
        self.protected = False
        self.timeline: list[str] = []
        super().__init__(("127.0.0.1", 0), _AgentHandler)

    @property
    def uri(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/api/task-1"


class _AgentHandler(BaseHTTPRequestHandler):
    server: FakeAgent

    def do_PUT(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.command, self.path, body))
        time.sleep(self.server.delay)
        status, payload = self.server.answer
        if status == 200 and b"failure" not in payload:
            self.server.protected = bool(body["ProtectionEnabled"])
            self.server.timeline.append("protect" if self.server.protected else "unprotect")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture(autouse=True)
def _block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Overrides the unit suite's guard: the fake agent on 127.0.0.1 is reachable, nothing else is."""

    def guard(self: socket.socket, address: Any) -> Any:
        if self.family == socket.AF_UNIX or (isinstance(address, tuple) and address[0] == "127.0.0.1"):
            return real_connect(self, address)
        raise RuntimeError(f"unit tests must not use the network (tried {address!r})")

    def guard_ex(self: socket.socket, address: Any) -> Any:
        if self.family == socket.AF_UNIX or (isinstance(address, tuple) and address[0] == "127.0.0.1"):
            return real_connect_ex(self, address)
        raise RuntimeError(f"unit tests must not use the network (tried {address!r})")

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    monkeypatch.setattr(socket.socket, "connect", guard)
    monkeypatch.setattr(socket.socket, "connect_ex", guard_ex)


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    server = FakeAgent()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_protect_and_unprotect_put_the_agents_state(agent: FakeAgent):
    # Given the agent's URI as ECS injects it
    protection = TaskProtection(agent.uri, expires_minutes=90)

    # When the task is protected and then released
    assert protection.protect() is True
    assert agent.protected
    assert protection.unprotect() is True

    # Then both went to the task-protection endpoint as the agent expects them
    assert agent.requests == [
        ("PUT", "/api/task-1/task-protection/v1/state", {"ProtectionEnabled": True, "ExpiresInMinutes": 90}),
        ("PUT", "/api/task-1/task-protection/v1/state", {"ProtectionEnabled": False}),
    ]
    assert not agent.protected


def test_without_an_agent_every_call_is_a_no_op():
    # Given no ECS agent (local platform, tests, a laptop)
    protection = TaskProtection(None)

    # When it is used, Then nothing is attempted and nothing fails
    assert not protection.enabled
    assert (protection.protect(), protection.keep(), protection.unprotect()) == (False, False, False)


@pytest.mark.parametrize(
    "answer",
    [
        (500, b'{"error": {"Code": "ServerException"}}'),
        (400, b'{"error": {"Code": "InvalidParameterException"}}'),
        (200, b'{"failure": {"Arn": "arn:task", "Reason": "TASK_NOT_VALID"}}'),
        (200, b"not json"),
    ],
    ids=["server-error", "bad-request", "ecs-refused", "garbage"],
)
def test_an_agent_that_refuses_is_logged_not_raised(agent: FakeAgent, answer):
    # Given an agent that refuses or answers nonsense
    agent.answer = answer

    # When the task asks for protection, Then the call reports False and raises nothing
    assert TaskProtection(agent.uri).protect() is False
    assert len(agent.requests) == 1


def test_an_unreachable_or_slow_agent_costs_at_most_the_timeout(agent: FakeAgent):
    # Given a URI nobody listens on, and an agent that takes far longer than the timeout
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_uri = f"http://127.0.0.1:{s.getsockname()[1]}/api/t"
    agent.delay = 3.0

    # When the task asks both for protection
    started = time.monotonic()
    results = (
        TaskProtection(dead_uri, timeout=0.5).protect(),
        TaskProtection(agent.uri, timeout=0.5).protect(),
    )

    # Then both report False quickly instead of hanging the job
    assert results == (False, False)
    assert time.monotonic() - started < 2.5


def test_keep_renews_only_once_half_the_protection_has_run_out(agent: FakeAgent):
    # Given a task protected for 2 minutes
    protection = TaskProtection(agent.uri, expires_minutes=2)
    assert protection.protect()

    # When keep() is called soon after, Then nothing is sent
    assert protection.keep() and len(agent.requests) == 1

    # When a minute has passed (half the period), Then keep() renews it
    protection._protected_at = time.monotonic() - 61
    assert protection.keep()
    assert [body for _, _, body in agent.requests][-1] == {"ProtectionEnabled": True, "ExpiresInMinutes": 2}
    assert len(agent.requests) == 2


@pytest.mark.parametrize("minutes", [0, 2881])
def test_protection_periods_outside_what_the_agent_accepts_are_refused(minutes):
    with pytest.raises(ValueError, match="between 1 and 2880"):
        TaskProtection("http://127.0.0.1:1", expires_minutes=minutes)


def test_the_agent_uri_comes_from_the_environment_ecs_sets(monkeypatch):
    # Given the variable the ECS agent injects (without the REELAY_ prefix)
    monkeypatch.setenv("ECS_AGENT_URI", "http://169.254.170.2/api/abc")

    # Then Settings carries it, and without it there is none
    assert Settings().ecs_agent_uri == "http://169.254.170.2/api/abc"
    monkeypatch.delenv("ECS_AGENT_URI")
    assert Settings().ecs_agent_uri is None


class TimelineQueue(RecordingQueue):
    def __init__(self, agent: FakeAgent) -> None:
        super().__init__()
        self.agent = agent

    def delete(self, message) -> None:
        self.agent.timeline.append("delete message")
        super().delete(message)


def test_a_worker_is_protected_exactly_while_it_holds_a_job(agent: FakeAgent, tmp_path: Path):
    # Given a worker in an ECS task, and a job that checks the protection while it runs
    settings = Settings(work_dir=str(tmp_path / "work"), ladder="360p,240p", lease_seconds=60)
    queue = TimelineQueue(agent)
    queue.send(TranscodeJob(videoId=VIDEO_ID, sourceKey=SOURCE_KEY, jobId="job-1"))
    ports = Ports(new_catalogue(), new_store(), queue, FakeEvents())
    seen: dict[str, bool] = {}
    encoder = FakeEncoder(during=lambda out: seen.setdefault("protected", agent.protected))
    service = make_service(ports.catalogue, ports.store, ports.events, settings, encoder)
    worker = Worker(
        ports,
        settings,
        threading.Event(),
        worker_id="w1",
        service=service,
        protection=TaskProtection(agent.uri),
    )

    # When it runs the job
    assert worker.run_once(wait_seconds=0) is Outcome.DONE

    # Then the task was protected during the job, and released only after its message was settled
    assert seen == {"protected": True}
    assert agent.timeline == ["protect", "delete message", "unprotect"]
    assert not agent.protected


def test_a_worker_without_an_agent_runs_its_job_as_before(tmp_path: Path):
    # Given a worker outside ECS (no ECS_AGENT_URI)
    settings = Settings(work_dir=str(tmp_path / "work"), ladder="360p,240p", lease_seconds=60)
    assert settings.ecs_agent_uri is None
    queue = RecordingQueue()
    queue.send(TranscodeJob(videoId=VIDEO_ID, sourceKey=SOURCE_KEY, jobId="job-1"))
    ports = Ports(new_catalogue(), new_store(), queue, FakeEvents())
    service = make_service(ports.catalogue, ports.store, ports.events, settings, FakeEncoder())
    worker = Worker(ports, settings, threading.Event(), worker_id="w1", service=service)

    # When it runs the job, Then it completes as usual
    assert not worker.protection.enabled
    assert worker.run_once(wait_seconds=0) is Outcome.DONE and queue.deleted == ["job-1"]
