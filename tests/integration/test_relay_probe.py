"""The source probe the supervisor runs during a backoff: does an RTSP or HLS source answer again?"""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reelay.relay.probe import hls_answers, probe_for, rtsp_answers


class _Origin(BaseHTTPRequestHandler):
    status = 200
    body = b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n"
    location: str | None = None
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(self.status)
        if self.location:
            self.send_header("Location", self.location)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def origin() -> Iterator[tuple[type[_Origin], int]]:
    handler = type("Origin", (_Origin,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield handler, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rtsp_answers_when_the_server_accepts_a_connection() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert rtsp_answers(f"rtsp://user:secret@127.0.0.1:{port}/cam", 1.0) is True
    assert rtsp_answers(f"rtsp://127.0.0.1:{_closed_port()}/cam", 1.0) is False
    assert rtsp_answers("rtsp:///cam", 1.0) is False


def test_hls_answers_only_with_a_playlist(origin: tuple[type[_Origin], int]) -> None:
    handler, port = origin
    url = f"http://127.0.0.1:{port}/live.m3u8"
    assert hls_answers(url, 1.0) is True
    handler.status = 404  # a restarting origin, before its first segment
    assert hls_answers(url, 1.0) is False
    handler.status, handler.body = 200, b"<html>maintenance</html>"
    assert hls_answers(url, 1.0) is False
    assert hls_answers(f"http://127.0.0.1:{_closed_port()}/live.m3u8", 1.0) is False


def test_hls_probe_sends_the_url_credentials_as_basic_auth(origin: tuple[type[_Origin], int]) -> None:
    handler, port = origin
    assert hls_answers(f"http://cam%40site:p%3Ass@127.0.0.1:{port}/live.m3u8?token=1", 1.0) is True
    path, auth = handler.seen[-1]
    assert path == "/live.m3u8?token=1"
    assert auth == "Basic " + base64.b64encode(b"cam@site:p:ss").decode()


def test_hls_probe_does_not_follow_a_redirect(origin: tuple[type[_Origin], int]) -> None:
    # A redirect says the origin is up, but the probe only ever contacts the host that was checked
    handler, port = origin
    handler.status, handler.location = 302, f"http://127.0.0.1:{port}/elsewhere.m3u8"
    assert hls_answers(f"http://127.0.0.1:{port}/live.m3u8", 1.0) is True
    assert [path for path, _ in handler.seen] == ["/live.m3u8"]


def test_only_rtsp_and_hls_are_probed() -> None:
    assert probe_for("rtsp") is rtsp_answers
    assert probe_for("hls") is hls_answers
    assert probe_for("srt") is None
