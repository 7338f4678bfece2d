# ruff: noqa: F811  (the world and migrated_url fixtures are imported from the video contract)
"""A stream's store webhook, called for real when a session starts: it is told the session's real id,
signed with the stream's own secret (as shown once by the API), and the workflow's resolver later
opens the store it answered. On the memory catalogue and on MySQL."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from reelay.recording.resolver import SessionStoreResolver
from reelay.recording.stores import SIGNATURE_HEADER, verify_signature
from reelay.relay.secrets import SourceSecrets
from reelay.relay.streams import StreamService
from reelay.settings import Settings
from reelay.storage import open_store
from tests.fakes import FakeLauncher
from tests.integration.test_catalogue_contract import World, migrated_url, world  # noqa: F401
from transcoder.relay import recorder_factory

KEY = "webhook-session-test-key-0123456789abcdef"


class Hook:
    def __init__(self, answer_store: str) -> None:
        self.calls: list[tuple[bytes, str | None]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.calls.append((body, self.headers.get(SIGNATURE_HEADER)))
                answer = json.dumps({"recordObjectStore": answer_store}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@contextlib.contextmanager
def serving(hook: Hook) -> Iterator[Hook]:
    thread = threading.Thread(target=hook.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        hook.server.shutdown()
        hook.server.server_close()


def test_the_webhook_is_told_the_real_session_and_the_workflow_finds_its_store(
    world: World, tmp_path: Path
) -> None:
    hooked = tmp_path / "hooked"
    settings = Settings(
        allow_loopback_sources=True,
        recording_webhook_timeout_seconds=3,
        recording_store_url=f"file://{tmp_path / 'default'}",
        media_store_url=f"file://{tmp_path / 'media'}",
        stream_secret_keys=KEY,
    )
    catalogue: Any = world.catalogue
    secrets = SourceSecrets([KEY])
    streams = StreamService(catalogue, FakeLauncher(), secrets, settings)
    with serving(Hook(f"file://{hooked}")) as hook:
        stream = streams.create(
            "op-1", "Gate", "rtsp://10.0.0.5/x", record=True, relay=False,
            recording={"record_webhook_url": hook.url},
        )  # fmt: skip
        recorder = recorder_factory(catalogue, settings, "task-1", tmp_path / "work", streams)(stream)
        try:
            session, continued = recorder.writer.start()
            recorder.writer.segment("source", b"\x47" * 188, duration_ms=2000, pdt_ms=1_796_000_000_000)
        finally:
            recorder.close(2)
    assert not continued
    (body, signature), *more = hook.calls
    assert more == []
    sent = json.loads(body)
    assert sent["sessionId"] == session.session_id and sent["streamId"] == stream.stream_id
    secret = streams.webhook_secret(stream)
    assert secret is not None and verify_signature(secret, signature, body)
    assert not verify_signature(KEY, signature, body)  # not the deployment's key itself

    row = catalogue.get_recording_session(session.session_id)
    assert (row.store_source, row.store_ref) == ("webhook", f"webhook:{stream.stream_id}")
    assert row.store_url == f"file://{hooked}" and row.store_fallback is None
    resolver = SessionStoreResolver(
        catalogue, secrets, open_store(settings.media_store_url), lambda url: open_store(url)
    )
    store = resolver(row.store_ref, row.session_id)
    keys = [o.key for o in store.list(f"recordings/{stream.stream_id}/{session.session_id}/")]
    assert len(keys) == 1 and keys[0].endswith(".ts")
