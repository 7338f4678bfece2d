"""The local media endpoint over a real socket: a client going away mid-upload gets a 400 (logged as
the client's doing, not a server error) and nothing is stored; a part URL takes only its signed size."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request

from local.media import MediaEndpoint
from reelay.storage.file import FileStore


def test_an_upload_cut_short_stores_nothing_and_is_no_server_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FileStore(tmp_path / "media", public_url="http://localhost/media", signing_key="k" * 32)
    endpoint = MediaEndpoint(output_prefix="outputs/", store=store)
    answers: list[int] = []

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        response = endpoint.handle(request, request.path.removeprefix("/media/"))
        answers.append(response.status_code)
        return response(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = urlsplit(
            store.presign_put("uploads/v1", content_type="video/mp4", expires_in=60, content_length=100_000)
        )
        # Given a client that declares 100 kB, sends 1 kB and hangs up
        with caplog.at_level(logging.INFO), socket.create_connection(("127.0.0.1", server.server_port)) as s:
            s.sendall(
                f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: localhost\r\nContent-Type: video/mp4\r\n"
                f"Content-Length: 100000\r\n\r\n".encode()
                + b"x" * 1000
            )
            s.shutdown(socket.SHUT_WR)
            s.recv(4096)
        deadline = time.monotonic() + 5
        while not answers and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.shutdown()
    # Then the endpoint answered a client error, logged no error, and stored nothing
    assert answers and 400 <= answers[0] < 500
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert store.head("uploads/v1") is None and list(store.list("uploads/")) == []


def test_a_part_url_takes_only_the_size_it_was_signed_for(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "media", public_url="http://localhost/media", signing_key="k" * 32)
    endpoint = MediaEndpoint(output_prefix="outputs/", store=store)

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        return endpoint.handle(request, request.path.removeprefix("/media/"))(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        upload_id = store.create_multipart("uploads/v2", content_type="video/mp4")
        url = urlsplit(store.presign_part("uploads/v2", upload_id, 1, expires_in=60, content_length=1000))
        target = f"http://127.0.0.1:{server.server_port}{url.path}?{url.query}"
        # Given a part URL signed for 1000 bytes: a bigger or a smaller body is a 400 naming the size
        for body in (b"x" * 1001, b"x" * 6_000_000, b"x" * 999):
            answer = requests.put(target, data=body, timeout=30)
            assert answer.status_code == 400, answer.text
            assert "1000 bytes" in answer.json()["message"]
        # And exactly 1000 bytes is taken, with the ETag the completion needs
        answer = requests.put(target, data=b"y" * 1000, timeout=30)
        assert answer.status_code == 200, answer.text
        store.complete_multipart("uploads/v2", upload_id, [(1, answer.headers["ETag"])])
    finally:
        server.shutdown()
    assert store.get_bytes("uploads/v2") == b"y" * 1000
