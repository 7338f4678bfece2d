"""The per-stream store webhook against a real HTTP server on loopback: each answer, each fallback.

The receiver verifies every call's signature with ``verify_signature``, as a customer's would.
"""

from __future__ import annotations

import contextlib
import json
import logging
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from reelay.recording.stores import (
    SIGNATURE_HEADER,
    RequestsPoster,
    StoreChoice,
    resolve_store,
    verify_signature,
)
from reelay.relay.sources import Resolver
from reelay.settings import Settings
from tests.store_streams import StoreCam

SIGNING_KEY = "whsec-test-0123456789abcdef0123456789abcdef"
STORE_SECRET = "St0re/Secret+Value"
STORE_SECRET_ENC = "St0re%2FSecret%2BValue"
GOOD_STORE = f"s3+http://CUSTKEY:{STORE_SECRET_ENC}@127.0.0.1:9000/customer-bucket/rec"
OWN_STORE = "s3://eu-west-1/own-bucket/rec"
DEFAULT_STORE = "file:///tmp/reelay-test-recordings"
TIMEOUT = 0.5
STARTED = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


@dataclass
class Received:
    path: str
    host: str | None
    body: bytes
    signature: str | None
    signature_ok: bool


class Receiver:
    """A customer's webhook endpoint. The path picks the behaviour."""

    def __init__(self) -> None:
        self.calls: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                signature = self.headers.get(SIGNATURE_HEADER)
                receiver.calls.append(
                    Received(
                        self.path,
                        self.headers.get("Host"),
                        body,
                        signature,
                        verify_signature(SIGNING_KEY, signature, body),
                    )
                )
                if self.path == "/trickle":
                    self.trickle()
                    return
                status, answer = receiver.answer(self.path)
                if self.path == "/slow":
                    time.sleep(TIMEOUT * 4)
                self.send_response(status)
                if self.path == "/redirect":
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the caller gave up (the timeout case)
                    self.wfile.write(answer)

            def trickle(self) -> None:
                """Headers at once, then a byte at a time, each within any socket timeout."""
                body = json.dumps({"recordObjectStore": GOOD_STORE}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    for byte in body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(TIMEOUT / 5)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @staticmethod
    def answer(path: str) -> tuple[int, bytes]:
        return {
            "/good": (200, json.dumps({"objectStore": OWN_STORE, "recordObjectStore": GOOD_STORE}).encode()),
            "/object-store-only": (200, json.dumps({"objectStore": GOOD_STORE}).encode()),
            "/empty": (204, b""),
            "/slow": (200, json.dumps({"recordObjectStore": GOOD_STORE}).encode()),
            "/error": (500, b'{"recordObjectStore": "s3://us-east-1/never-used"}'),
            "/garbage": (200, b"{not json"),
            "/bad-url": (
                200,
                json.dumps({"recordObjectStore": f"s3://KEY:{STORE_SECRET_ENC}@nowhere/b"}).encode(),
            ),
            "/link-local": (
                200,
                json.dumps(
                    {"recordObjectStore": f"s3+http://K:{STORE_SECRET_ENC}@169.254.169.254:80/creds"}
                ).encode(),
            ),
            "/redirect": (302, b""),
            "/huge": (200, json.dumps({"recordObjectStore": GOOD_STORE, "pad": "x" * 70_000}).encode()),
        }[path]


@contextlib.contextmanager
def serving(r: Receiver) -> Iterator[Receiver]:
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with serving(Receiver()) as r:
        yield r


@pytest.fixture
def settings() -> Settings:
    return Settings(
        allow_loopback_sources=True,
        webhook_signing_key=SecretStr(SIGNING_KEY),
        recording_webhook_timeout_seconds=TIMEOUT,
        recording_store_url=DEFAULT_STORE,
    )


def choose(
    receiver: Receiver,
    settings: Settings,
    path: str,
    *,
    base: str | None = None,
    post: RequestsPoster | None = None,
    resolve: Resolver | None = None,
    **stream: str | None,
) -> StoreChoice:
    receiver.calls.clear()
    cam = StoreCam(webhook_url=(base or receiver.url) + path, **stream)  # type: ignore[arg-type]
    return resolve_store(cam, settings, session_id="se-1", started_at=STARTED, post=post, resolve=resolve)


def test_a_good_answer_picks_record_object_store_and_the_call_is_signed(
    receiver: Receiver, settings: Settings
) -> None:
    # When a session starts for a stream whose webhook answers both stores
    choice = choose(receiver, settings, "/good", record_object_store_url=OWN_STORE)
    # Then recordObjectStore wins over objectStore and over the stream's own store
    assert (choice.url, choice.source, choice.fallback_reason) == (GOOD_STORE, "webhook", None)
    assert choice.redacted == "s3+http://CUSTKEY:***@127.0.0.1:9000/customer-bucket/rec"
    # And the receiver got the stream's details, and verified the signature
    (call,) = receiver.calls
    assert json.loads(call.body) == {
        "streamId": "st-1",
        "name": "Front door",
        "kvsStreamName": "reelay-front-door",
        "ownerId": "owner-1",
        "sessionId": "se-1",
        "startedAt": "2026-12-01T12:00:00.000Z",
    }
    assert call.signature_ok and call.signature is not None and call.signature.startswith("t=")
    # And the signature is bound to the body, the key, and the time
    assert not verify_signature(SIGNING_KEY, call.signature, call.body + b" ")
    assert not verify_signature("another-key", call.signature, call.body)
    assert not verify_signature(SIGNING_KEY, call.signature, call.body, now=time.time() + 301)


def test_object_store_alone_is_used_and_an_empty_answer_means_the_defaults(
    receiver: Receiver, settings: Settings
) -> None:
    assert choose(receiver, settings, "/object-store-only").url == GOOD_STORE
    # A 204 names no store: the stream's own store, with nothing to report
    choice = choose(receiver, settings, "/empty", record_object_store_url=OWN_STORE)
    assert (choice.url, choice.source, choice.fallback_reason) == (OWN_STORE, "stream", None)
    choice = choose(receiver, settings, "/empty")
    assert (choice.url, choice.source, choice.fallback_reason) == (DEFAULT_STORE, "default", None)


def test_a_webhook_that_trickles_its_answer_is_cut_off_at_the_timeout(
    receiver: Receiver, settings: Settings
) -> None:
    # Each byte arrives within the socket timeout, the whole answer long after the total one
    started = time.monotonic()
    choice = choose(receiver, settings, "/trickle", record_object_store_url=OWN_STORE)
    elapsed = time.monotonic() - started
    assert (choice.url, choice.source) == (OWN_STORE, "stream")
    assert choice.fallback_reason is not None and "no answer within" in choice.fallback_reason
    assert elapsed < TIMEOUT + 0.5, elapsed


def test_a_webhook_slower_than_the_timeout_falls_back_in_time(
    receiver: Receiver, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # When the webhook sleeps well past the timeout
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="reelay.recording.stores"):
        choice = choose(receiver, settings, "/slow", record_object_store_url=OWN_STORE)
    elapsed = time.monotonic() - started
    # Then the stream's own store is used, without waiting for the webhook
    assert (choice.url, choice.source) == (OWN_STORE, "stream")
    assert choice.fallback_reason is not None and f"no answer within {TIMEOUT:g} s" in choice.fallback_reason
    assert elapsed < TIMEOUT + 0.5, elapsed
    # And the fallback is logged with its reason
    assert "no answer within" in caplog.text and "fell back to the stream store" in caplog.text


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/error", "answered HTTP 500"),
        ("/redirect", "answered HTTP 302"),  # never followed: it points at the metadata service
        ("/garbage", "the answer is not JSON"),
        ("/huge", "the webhook's answer is larger than 65536 bytes"),
        ("/bad-url", "unusable store URL"),
        ("/link-local", "store host of s3+http://K:***@169.254.169.254:80/creds refused"),
    ],
)
def test_bad_answers_fall_back_to_the_streams_store_then_the_default(
    receiver: Receiver, settings: Settings, path: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="reelay.recording.stores"):
        # With a store of its own, the stream falls back to it
        own = choose(receiver, settings, path, record_object_store_url=OWN_STORE)
        # Without, the platform default
        default = choose(receiver, settings, path)
    assert (own.url, own.source) == (OWN_STORE, "stream")
    assert (default.url, default.source) == (DEFAULT_STORE, "default")
    for choice in (own, default):
        assert choice.fallback_reason is not None and reason in choice.fallback_reason
        assert choice.fallback_reason.startswith(f"store webhook {receiver.url}{path}: ")
    # And the reason is logged, and no secret shows anywhere
    assert reason in caplog.text
    for text in (caplog.text, repr(own), repr(default), str(own.fallback_reason)):
        assert STORE_SECRET not in text and STORE_SECRET_ENC not in text
    if path == "/link-local":
        assert "link-local" in str(own.fallback_reason)


def test_a_loopback_webhook_is_refused_where_loopback_is_not_allowed(
    receiver: Receiver, settings: Settings
) -> None:
    # Given the AWS settings (no loopback targets)
    aws = settings.model_copy(update={"allow_loopback_sources": False})
    # When the stream's webhook is on this machine
    choice = choose(receiver, aws, "/good", record_object_store_url=OWN_STORE)
    # Then it is never called, and the stream's own store is used
    assert receiver.calls == []
    assert (choice.url, choice.source) == (OWN_STORE, "stream")
    assert choice.fallback_reason is not None and "loopback" in choice.fallback_reason


# --- the call goes to the address that was checked ---------------------------------------------------
HOOK_NAME = "hooks.reelay.test"  # .test never resolves in real DNS: only the checked address can be reached


def pinned(name: str) -> list[str]:
    """The resolver the check uses: the webhook's name is this machine."""
    if name != HOOK_NAME:
        raise OSError(f"{name} does not resolve")
    return ["127.0.0.1"]


def test_the_call_connects_to_the_checked_address_and_names_the_host(
    receiver: Receiver, settings: Settings
) -> None:
    port = receiver.server.server_address[1]
    choice = choose(receiver, settings, "/good", base=f"http://{HOOK_NAME}:{port}", resolve=pinned)
    assert (choice.url, choice.source, choice.fallback_reason) == (GOOD_STORE, "webhook", None)
    (call,) = receiver.calls
    assert call.host == f"{HOOK_NAME}:{port}" and call.signature_ok


def self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    """A certificate for ``name`` (its own CA) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize(("cert_name", "works"), [(HOOK_NAME, True), ("someone-else.test", False)])
def test_https_to_the_checked_address_still_checks_the_certificate_for_the_name(
    settings: Settings, tmp_path: Path, cert_name: str, works: bool
) -> None:
    # Given a TLS webhook whose certificate is for cert_name, and a client trusting that certificate
    cert, key = self_signed(tmp_path, cert_name)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    r = Receiver()
    r.server.socket = tls.wrap_socket(r.server.socket, server_side=True)
    with serving(r):
        port = r.server.server_address[1]
        choice = choose(
            r,
            settings,
            "/good",
            base=f"https://{HOOK_NAME}:{port}",
            post=RequestsPoster(verify=str(cert)),
            resolve=pinned,
            record_object_store_url=OWN_STORE,
        )
    if works:
        # Then SNI and the check used the name, while the connection went to the checked address
        assert (choice.url, choice.source, choice.fallback_reason) == (GOOD_STORE, "webhook", None)
        assert [c.host for c in r.calls] == [f"{HOOK_NAME}:{port}"]
    else:
        # A certificate for another name is refused: the stream's own store, and why
        assert (choice.url, choice.source) == (OWN_STORE, "stream")
        assert choice.fallback_reason is not None and "the call failed (SSLError)" in choice.fallback_reason
        assert r.calls == []
