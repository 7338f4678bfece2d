"""Fixtures for the KVS tests: the stand-in, and the real kvssink relaying a test source to it.

kvssink reads ``CONTROL_PLANE_URI`` and the ``AWS_*`` keys from the process environment (and prefers
static keys to its credential file), while the test process has fake ``AWS_*`` keys set by conftest.
So the pipeline runs in a child process with an environment of its own: this module is also that
child (``python -m tests.kvs_fixtures``), printing one JSON line per event (acks, bus messages,
stream errors, credential writes, the stop).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from local.kvs import KvsStandIn

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def kvs(tmp_path: Path) -> Iterator[KvsStandIn]:
    """A KVS stand-in on a free port, storing under tmp_path/kvs."""
    standin = KvsStandIn(tmp_path / "kvs").start()
    try:
        yield standin
    finally:
        standin.stop()


class RelayChild:
    """The child process running videotestsrc -> x264enc -> kvssink against a stand-in."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.stderr_lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def of(self, event: str, **match: Any) -> list[dict[str, Any]]:
        """Events of one type (ack, bus, stream-error, credentials, ...) whose fields match."""
        with self._cond:
            return [
                e for e in self.events if e["event"] == event and all(e.get(k) == v for k, v in match.items())
            ]

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], Any], timeout: float, what: str = "event"
    ) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = predicate(self.events)
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not result):
                    tail = "".join(self.stderr_lines[-15:])
                    raise AssertionError(f"timed out waiting for {what}; events: {self.events[-8:]}\n{tail}")
                self._cond.wait(min(left, 0.2))

    def wait_acks(self, kind: str, count: int, timeout: float, *, after: float = 0.0) -> list[dict[str, Any]]:
        def enough(events: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
            got = [e for e in events if e["event"] == "ack" and e["kind"] == kind and e["t"] > after]
            return got if len(got) >= count else None

        return self.wait_for(enough, timeout, f"{count} {kind} acks after {after}")

    def stop(self, timeout: float = 20) -> dict[str, Any]:
        """SIGTERM (the child sends EOS and waits for kvssink to finish). Returns the 'stopped' event."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        stopped = self.of("stopped")
        assert stopped, f"the child exited without stopping cleanly: {''.join(self.stderr_lines[-20:])}"
        return stopped[-1]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Callable[..., RelayChild]]:
    """Start a relay child: ``relay(standin, stream_name, **options)``. Killed at teardown."""
    children: list[RelayChild] = []

    def start(standin: KvsStandIn, stream: str, *, stop_timeout: int = 3, **extra: str) -> RelayChild:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            CONTROL_PLANE_URI=standin.url,
            AWS_CONTAINER_CREDENTIALS_FULL_URI=standin.credentials_url,
            PYTHONPATH=str(ROOT),
            # GStreamer must not take the test's own debug settings or a stale registry.
            GST_DEBUG="0",
        )
        env.update(extra)
        args = [
            sys.executable,
            "-m",
            "tests.kvs_fixtures",
            "--stream",
            stream,
            "--credential-path",
            str(tmp_path / f"{stream}.credentials"),
            "--stop-timeout",
            str(stop_timeout),
        ]
        proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
        )
        child = RelayChild(proc)
        children.append(child)
        return child

    yield start
    for child in children:
        child.kill()


# --- the child process ----------------------------------------------------------------------------


def _emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": time.time(), **fields}), flush=True)


def _child(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--stream", required=True)
    p.add_argument("--credential-path", required=True)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--stop-timeout", type=int, default=3)
    args = p.parse_args(argv)

    from reelay.media._gst import Gst, ensure_init
    from reelay.relay.credentials import CredentialFile, botocore_provider
    from reelay.relay.kvssink import connect_acks, connect_stream_error, make_kvssink

    ensure_init()
    creds = CredentialFile(args.credential_path, botocore_provider(), poll_seconds=0.5)
    first = creds.write_now()
    _emit("credentials", key=first.access_key_id, expires=first.expires_at.isoformat())
    stop_refresh = threading.Event()

    def refresh() -> None:
        while not stop_refresh.wait(0.5):
            try:
                if creds.refresh_if_due():
                    _emit("credentials", key=creds.access_key_id, expires=str(creds.expires_at))
            except Exception as exc:
                _emit("credentials-error", error=str(exc))

    threading.Thread(target=refresh, daemon=True).start()

    pipeline = Gst.parse_launch(
        "videotestsrc is-live=true pattern=ball "
        "! video/x-raw,width=320,height=240,framerate=15/1,format=I420 "
        "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 bitrate=300 "
        "! video/x-h264,profile=main ! h264parse "
        '! capsfilter name=caps caps="video/x-h264,stream-format=avc,alignment=au"'
    )
    sink = make_kvssink(
        stream_name=args.stream,
        region=args.region,
        credential_path=args.credential_path,
        name="kvs",
        stop_stream_timeout=args.stop_timeout,
    )
    pipeline.add(sink)
    pipeline.get_by_name("caps").link(sink)
    connect_acks(
        sink,
        lambda a: _emit(
            "ack", kind=a.kind, timecode_ms=a.timecode_ms, fragment_number=a.fragment_number, result=a.result
        ),
    )
    connect_stream_error(sink, lambda status: _emit("stream-error", status=status))

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    pipeline.set_state(Gst.State.PLAYING)
    _emit("started")
    bus = pipeline.get_bus()
    types = Gst.MessageType.ERROR | Gst.MessageType.WARNING | Gst.MessageType.EOS
    types |= Gst.MessageType.STATE_CHANGED
    stop_started: float | None = None
    while True:
        msg = bus.timed_pop_filtered(100 * Gst.MSECOND, types)
        if stopping.is_set() and stop_started is None:
            stop_started = time.monotonic()
            pipeline.send_event(Gst.Event.new_eos())
        if stop_started is not None and time.monotonic() - stop_started > 30:
            break
        if msg is None:
            continue
        if msg.type == Gst.MessageType.STATE_CHANGED:
            if msg.src == pipeline:
                _old, new, _pending = msg.parse_state_changed()
                _emit("state", state=new.value_nick)
            continue
        if msg.type == Gst.MessageType.EOS:
            break
        err, debug = msg.parse_error() if msg.type == Gst.MessageType.ERROR else msg.parse_warning()
        _emit("bus", type=msg.type.first_value_nick, src=msg.src.get_name(), text=err.message, debug=debug)
    eos_at = time.monotonic()
    pipeline.set_state(Gst.State.NULL)
    stop_refresh.set()
    done = time.monotonic()
    _emit(
        "stopped",
        seconds=done - (stop_started or eos_at),
        eos_seconds=eos_at - (stop_started or eos_at),
        null_seconds=done - eos_at,
    )
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
