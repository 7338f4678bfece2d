"""Choosing a session's store, with a fake webhook call and a fake resolver: every rule, no network.

The real HTTP round trips are in tests/integration/test_store_webhook.py.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import re
from datetime import UTC, datetime

import pytest
import requests
from pydantic import SecretStr

from reelay.errors import InvalidInput
from reelay.models import SourceProtocol, Stream
from reelay.recording.stores import (
    SIGNATURE_HEADER,
    StoreChoice,
    WebhookAnswer,
    WebhookCall,
    check_store_url,
    check_webhook_url,
    resolve_store,
    sign,
    verify_signature,
)
from reelay.settings import Settings
from tests.store_streams import StoreCam

KEY = "deployment-signing-key-0123456789abcdef"
SECRET_ENC = "Very%2FSecret%2BKey"
SECRET = "Very/Secret+Key"
HOOK = "https://hooks.example.com/reelay/store"
OWN = "s3://eu-west-1/own-bucket/rec"
NOW = 1_800_000_000


class FakeWebhook:
    """Answers every call the same way (or raises), and remembers what it was sent."""

    def __init__(self, status: int = 200, answer: object = None, raises: Exception | None = None) -> None:
        self.status = status
        self.body = answer if isinstance(answer, bytes) else json.dumps(answer).encode() if answer else b""
        self.raises = raises
        self.calls: list[WebhookCall] = []

    def __call__(self, call: WebhookCall) -> WebhookAnswer:
        self.calls.append(call)
        if self.raises is not None:
            raise self.raises
        return WebhookAnswer(self.status, self.body)


def Cam(**fields: object) -> StoreCam:
    """This module's stream: a webhook by default."""
    values: dict[str, object] = {"name": "Gate", "kvs_stream_name": "reelay-gate", "webhook_url": HOOK}
    return StoreCam(**{**values, **fields})  # type: ignore[arg-type]


def resolver(table: dict[str, list[str]]):
    def resolve(host: str) -> list[str]:
        with contextlib.suppress(ValueError):
            return [str(ipaddress.ip_address(host))]  # a literal resolves to itself, as getaddrinfo does
        if host not in table:
            raise OSError(f"{host} does not resolve")
        return table[host]

    return resolve


PUBLIC_DNS = resolver({"hooks.example.com": ["93.184.216.34"], "minio.example.com": ["93.184.216.35"]})


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "webhook_signing_key": SecretStr(KEY),
        "recording_webhook_timeout_seconds": 2.0,
        "media_store_url": "s3://us-east-1/media-bucket",
        "allow_loopback_sources": False,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def choose(cam: StoreCam, hook: FakeWebhook, s: Settings | None = None, resolve=PUBLIC_DNS) -> StoreChoice:
    return resolve_store(
        cam,
        s or settings(),
        session_id="se-9",
        started_at=datetime(2026, 12, 1, 8, 30),  # naive: UTC
        post=hook,
        resolve=resolve,
        clock=lambda: NOW,
    )


# --- the signature ----------------------------------------------------------------------------------
def test_the_call_carries_the_streams_details_and_a_verifiable_signature() -> None:
    hook = FakeWebhook(answer={"recordObjectStore": f"s3://AK:{SECRET_ENC}@us-west-2/rec-bucket"})
    choice = choose(Cam(), hook)
    (call,) = hook.calls
    url, body, headers = call.url, call.body, call.headers
    # Sent to the address that was checked
    assert (url, call.timeout, headers["Content-Type"], call.address) == (
        HOOK,
        2.0,
        "application/json",
        "93.184.216.34",
    )
    assert json.loads(body) == {
        "streamId": "st-1",
        "name": "Gate",
        "kvsStreamName": "reelay-gate",
        "ownerId": "owner-1",
        "sessionId": "se-9",
        "startedAt": "2026-12-01T08:30:00.000Z",
    }
    header = headers[SIGNATURE_HEADER]
    assert re.fullmatch(rf"t={NOW},v1=[0-9a-f]{{64}}", header)
    assert verify_signature(KEY, header, body, now=NOW + 10)
    assert verify_signature(SecretStr(KEY), header, body.decode(), now=NOW - 10)
    assert (choice.source, choice.redacted) == ("webhook", "s3://AK:***@us-west-2/rec-bucket")


@pytest.mark.parametrize(
    ("header", "now"),
    [
        (None, NOW),
        ("", NOW),
        ("garbage", NOW),
        (f"v1={'0' * 64}", NOW),  # no timestamp
        (f"t={NOW},t={NOW},v1={'0' * 64}", NOW),  # two timestamps
        (f"t={NOW}", NOW),  # no signature
        (f"t=soon,v1={'0' * 64}", NOW),
        (f"t={NOW},v1=zz", NOW),
        (f"t={NOW},v1={'é' * 64}", NOW),
        ("SIGNED", NOW),
    ],
)
def test_malformed_signature_headers_do_not_verify(header: str | None, now: int) -> None:
    assert verify_signature(KEY, header, b"{}", now=now) is False


def test_a_signature_is_bound_to_key_body_and_time() -> None:
    body = b'{"streamId":"st-1"}'
    header = sign(KEY, body, timestamp=NOW)
    assert verify_signature(KEY, header, body, now=NOW + 300)
    assert not verify_signature(KEY, header, body, now=NOW + 301)  # a replay, later
    assert not verify_signature(KEY, header, body, now=NOW - 301)  # from the future
    assert not verify_signature(KEY, header, body + b" ", now=NOW)
    assert not verify_signature(KEY + "x", header, body, now=NOW)
    # The timestamp is signed: moving it breaks the signature
    moved = header.replace(f"t={NOW}", f"t={NOW + 100}")
    assert not verify_signature(KEY, moved, body, now=NOW + 100)
    # While a key rolls, one matching v1 of several is enough
    rolled = f"{sign('old-key', body, timestamp=NOW)},v1={header.split('v1=')[1]}"
    assert verify_signature(KEY, rolled, body, now=NOW)
    assert verify_signature(b"old-key", rolled, body, now=NOW)
    assert verify_signature(KEY, header, body, tolerance_seconds=5, now=NOW + 5)
    assert not verify_signature(KEY, header, body, tolerance_seconds=5, now=NOW + 6)


# --- answers ----------------------------------------------------------------------------------------
def test_record_object_store_wins_then_object_store_then_nothing() -> None:
    both = FakeWebhook(
        answer={"objectStore": "s3://us-east-1/general", "recordObjectStore": "s3://us-east-1/rec"}
    )
    assert choose(Cam(), both).url == "s3://us-east-1/rec"
    only = FakeWebhook(answer={"objectStore": "s3://us-east-1/general", "recordObjectStore": None})
    assert choose(Cam(), only).url == "s3://us-east-1/general"
    # An answer that names no store keeps the stream's own, with nothing to report
    for answer in ({}, {"other": 1}, b"", b"  \n"):
        choice = choose(Cam(record_object_store_url=OWN), FakeWebhook(answer=answer))
        assert (choice.url, choice.source, choice.fallback_reason) == (OWN, "stream", None)


@pytest.mark.parametrize(
    ("hook", "reason"),
    [
        (FakeWebhook(status=503), "answered HTTP 503"),
        (FakeWebhook(status=301), "answered HTTP 301"),
        (FakeWebhook(answer=b"<html>oops</html>"), "the answer is not JSON"),
        (FakeWebhook(answer=[OWN]), "the answer is not a JSON object"),
        (FakeWebhook(answer={"recordObjectStore": 42}), "recordObjectStore in the answer is not a string"),
        (FakeWebhook(answer={"recordObjectStore": "ftp://x/y"}), "unusable store URL"),
        (FakeWebhook(raises=requests.ReadTimeout("read timed out")), "no answer within 2 s"),
        (FakeWebhook(raises=TimeoutError()), "no answer within 2 s"),
        (
            FakeWebhook(raises=requests.ConnectionError(f"to https://u:{SECRET}@x")),
            "the call failed (ConnectionError)",
        ),
    ],
)
def test_each_failure_falls_back_with_its_reason(hook: FakeWebhook, reason: str) -> None:
    choice = choose(Cam(record_object_store_url=OWN), hook)
    assert (choice.url, choice.source) == (OWN, "stream")
    assert choice.fallback_reason is not None
    assert choice.fallback_reason.startswith(f"store webhook {HOOK}: {reason}")
    assert SECRET not in choice.fallback_reason


def test_without_a_signing_key_the_webhook_is_not_called() -> None:
    hook = FakeWebhook(answer={"recordObjectStore": "s3://us-east-1/rec"})
    choice = choose(Cam(), hook, settings(webhook_signing_key=None))
    assert hook.calls == []
    assert (choice.url, choice.source) == ("s3://us-east-1/media-bucket", "default")
    assert choice.fallback_reason is not None and "REELAY_WEBHOOK_SIGNING_KEY" in choice.fallback_reason


@pytest.mark.parametrize(
    ("webhook", "reason"),
    [
        ("ftp://hooks.example.com/x", "not an http(s) URL"),
        ("hooks.example.com/x", "not an http(s) URL"),
        ("http://[::1/x", "does not parse"),
        ("http://hooks.example.com:99999/x", "does not parse"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/x", "link-local"),
        ("http://metadata.google.internal/x", "metadata service"),
        ("http://127.0.0.1:9000/x", "loopback"),
        ("http://localhost/x", "loopback"),
        ("http://rebind.example.com/x", "link-local"),  # a name that resolves to the metadata service
        ("http://gone.example.com/x", "does not resolve"),
    ],
)
def test_refused_or_broken_webhook_urls_are_never_called(webhook: str, reason: str) -> None:
    hook = FakeWebhook(answer={"recordObjectStore": "s3://us-east-1/rec"})
    resolve = resolver({"rebind.example.com": ["93.184.216.34", "169.254.169.254"]})
    choice = choose(Cam(webhook_url=webhook), hook, resolve=resolve)
    assert hook.calls == []
    assert choice.source == "default"
    assert choice.fallback_reason is not None and reason in choice.fallback_reason
    assert "sourceUrl" not in choice.fallback_reason  # the host check speaks of this host


def test_loopback_webhooks_and_file_stores_only_where_loopback_is_allowed() -> None:
    local = settings(allow_loopback_sources=True)
    hook = FakeWebhook(answer={"recordObjectStore": "file:///srv/recordings"})
    choice = choose(Cam(webhook_url="http://127.0.0.1:9000/x"), hook, local)
    assert (choice.url, choice.source, choice.fallback_reason) == ("file:///srv/recordings", "webhook", None)
    # In AWS a webhook may not point the recorder at the task's own disk
    choice = choose(Cam(), hook)
    assert choice.source == "default"
    assert choice.fallback_reason is not None and "this machine's disk" in choice.fallback_reason


def test_store_hosts_are_checked_after_resolution_but_an_outage_is_not_a_refusal() -> None:
    rebind = resolver({"hooks.example.com": ["93.184.216.34"], "minio.example.com": ["169.254.170.2"]})
    store = f"s3+https://AK:{SECRET_ENC}@minio.example.com:9000/rec"
    choice = choose(
        Cam(record_object_store_url=OWN), FakeWebhook(answer={"recordObjectStore": store}), resolve=rebind
    )
    assert choice.source == "stream"
    assert choice.fallback_reason is not None and "link-local" in choice.fallback_reason
    assert "s3+https://AK:***@minio.example.com:9000/rec" in choice.fallback_reason
    assert SECRET_ENC not in choice.fallback_reason and SECRET not in choice.fallback_reason
    # A store host that does not resolve right now is a store outage: the recorder rides it out
    down = resolver({"hooks.example.com": ["93.184.216.34"]})
    choice = choose(Cam(), FakeWebhook(answer={"recordObjectStore": store}), resolve=down)
    assert (choice.url, choice.source, choice.fallback_reason) == (store, "webhook", None)


# --- the stream's own store and the default ---------------------------------------------------------
def test_without_a_webhook_the_streams_store_then_the_default() -> None:
    hook = FakeWebhook()
    assert choose(Cam(webhook_url=None, record_object_store_url=OWN), hook).source == "stream"
    assert choose(Cam(webhook_url=None, object_store_url=OWN), hook).url == OWN
    recording_default = settings(recording_store_url="s3://us-east-1/recordings")
    choice = choose(Cam(webhook_url=None), hook, recording_default)
    assert (choice.url, choice.source, choice.fallback_reason) == (
        "s3://us-east-1/recordings",
        "default",
        None,
    )
    assert choose(Cam(webhook_url=" "), hook).url == "s3://us-east-1/media-bucket"  # the media store
    assert hook.calls == []


def test_a_bad_stream_store_falls_back_to_the_default_without_showing_its_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cam = Cam(webhook_url=None, record_object_store_url=f"s3://AK:p@ss{SECRET_ENC}@nowhere/bucket")
    with caplog.at_level(logging.INFO, logger="reelay.recording.stores"):
        choice = choose(cam, FakeWebhook())
    assert (choice.source, choice.url) == ("default", "s3://us-east-1/media-bucket")
    assert choice.fallback_reason is not None
    assert choice.fallback_reason.startswith("the stream's store: unusable store URL")
    assert "is not an AWS region" in choice.fallback_reason
    for text in (caplog.text, choice.fallback_reason):
        assert SECRET_ENC not in text and "p@ss" not in text
    assert "fell back to the default store" in caplog.text


def test_both_reasons_are_kept_when_webhook_and_stream_store_fail() -> None:
    cam = Cam(record_object_store_url="file:///srv/own")  # not allowed in AWS
    choice = choose(cam, FakeWebhook(status=500))
    assert choice.source == "default"
    assert choice.fallback_reason == (
        f"store webhook {HOOK}: answered HTTP 500; "
        "the stream's store: store file:///srv/own is this machine's disk, which is not allowed here"
    )


def test_the_platforms_stream_model_works_as_it_is() -> None:
    # A Stream of today's model has no store fields: the default store, no webhook call
    stream = Stream(
        stream_id="st-2",
        owner_id="o",
        name="n",
        source_url="rtsp://cam.example.com/live",
        source_protocol=SourceProtocol.RTSP,
        kvs_stream_name="reelay-n",
    )
    choice = resolve_store(
        stream, settings(), session_id="s", started_at=datetime.now(UTC), post=FakeWebhook()
    )
    assert (choice.url, choice.source, choice.fallback_reason) == (
        "s3://us-east-1/media-bucket",
        "default",
        None,
    )


def test_a_choice_never_shows_its_secret() -> None:
    url = f"s3+https://AK:{SECRET_ENC}@minio.example.com/rec"
    choice = choose(Cam(webhook_url=None, record_object_store_url=url), FakeWebhook())
    assert choice.url == url
    for text in (repr(choice), str(choice), f"{choice}", repr([choice]), choice.redacted):
        assert SECRET_ENC not in text and SECRET not in text
    assert str(choice) == "s3+https://AK:***@minio.example.com/rec"


def test_a_webhook_url_with_credentials_is_redacted_in_reasons() -> None:
    hook = FakeWebhook(status=500)
    choice = choose(Cam(webhook_url=f"https://user:{SECRET_ENC}@hooks.example.com/x"), hook)
    assert hook.calls and hook.calls[0].url == f"https://user:{SECRET_ENC}@hooks.example.com/x"
    assert choice.fallback_reason == "store webhook https://user:***@hooks.example.com/x: answered HTTP 500"


# --- the checks the API runs when a stream names its store or webhook -----------------------------
@pytest.mark.parametrize(
    ("url", "allow_loopback", "complaint"),
    [
        (f"s3://AK:{SECRET_ENC}@nowhere/bkt", False, "is not an AWS region"),
        ("file:///srv/rec", False, "this machine's disk"),
        (f"s3+http://AK:{SECRET_ENC}@169.254.169.254/bkt", True, "link-local"),
        (f"s3+http://AK:{SECRET_ENC}@[::ffff:169.254.169.254]:80/bkt", True, "link-local"),
        (f"s3+https://AK:{SECRET_ENC}@127.0.0.1:9000/bkt", False, "loopback"),
        (f"s3+https://AK:{SECRET_ENC}@localhost:9000/bkt", False, "loopback"),
    ],
)
def test_check_store_url_refuses_with_the_secret_hidden(
    url: str, allow_loopback: bool, complaint: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        check_store_url(url, allow_loopback=allow_loopback)
    assert complaint in err.value.message
    assert SECRET_ENC not in err.value.message and SECRET not in err.value.message
    assert "sourceUrl" not in err.value.message


def test_check_store_url_accepts_every_scheme_where_allowed() -> None:
    assert check_store_url(OWN, allow_loopback=False).bucket == "own-bucket"
    assert (
        check_store_url(f"s3+https://AK:{SECRET_ENC}@minio.example.com/bkt", allow_loopback=False).secret_key
        == SECRET
    )
    assert (
        check_store_url("s3+http://127.0.0.1:9000/bkt", allow_loopback=True).endpoint_url
        == "http://127.0.0.1:9000"
    )
    assert str(check_store_url("file:///srv/rec", allow_loopback=True).root) == "/srv/rec"


@pytest.mark.parametrize(
    ("url", "allow_loopback", "complaint"),
    [
        ("ftp://hooks.example.com/x", True, "not an http(s) URL"),
        ("https:///x", True, "not an http(s) URL"),
        ("http://h:70000/x", True, "does not parse"),
        ("http://" + "a" * 2050 + ".com/", True, "at most 2048"),
        ("http://169.254.170.2/v2/credentials", True, "link-local"),
        ("http://127.0.0.1:8000/x", False, "loopback"),
    ],
)
def test_check_webhook_url_refuses(url: str, allow_loopback: bool, complaint: str) -> None:
    with pytest.raises(InvalidInput) as err:
        check_webhook_url(url, allow_loopback=allow_loopback)
    assert complaint in err.value.message


def test_check_webhook_url_accepts_and_does_not_resolve() -> None:
    # A name is not resolved at registration (the unit tests' network guard would refuse DNS too)
    assert check_webhook_url("https://hooks.example.com/reelay", allow_loopback=False) == "hooks.example.com"
    assert check_webhook_url("http://127.0.0.1:8000/x", allow_loopback=True) == "127.0.0.1"


def test_nothing_raises_whatever_the_resolver_does(caplog: pytest.LogCaptureFixture) -> None:
    # A name the IDNA codec refuses (getaddrinfo raises UnicodeError, not OSError)
    def idna(host: str) -> list[str]:
        raise UnicodeError("label too long")

    cam = Cam(record_object_store_url=f"s3+https://AK:{SECRET_ENC}@minio.example.com/bkt")
    choice = choose(cam, FakeWebhook(answer={"recordObjectStore": OWN}), resolve=idna)
    assert choice.source == "default"
    assert choice.fallback_reason == (
        f"store webhook {HOOK}: webhook host hooks.example.com is not a valid host name; "
        "the stream's store: store host of s3+https://AK:***@minio.example.com/bkt minio.example.com "
        "is not a valid host name"
    )

    # A resolver with a bug: still a store, and the reason names the error's class only
    def broken(host: str) -> list[str]:
        raise RuntimeError(f"boom {SECRET}")

    with caplog.at_level(logging.INFO, logger="reelay.recording.stores"):
        choice = choose(cam, FakeWebhook(answer={"recordObjectStore": OWN}), resolve=broken)
    assert (choice.source, choice.url) == ("default", "s3://us-east-1/media-bucket")
    assert choice.fallback_reason == (
        f"store webhook {HOOK}: failed (RuntimeError); the stream's store: check failed (RuntimeError)"
    )
    assert SECRET not in caplog.text and "RuntimeError" in caplog.text


def test_the_default_recording_store_and_the_signing_key_stay_out_of_the_settings_repr() -> None:
    s = settings(recording_store_url=f"s3://AK:{SECRET_ENC}@us-east-1/rec-bucket")
    assert SECRET_ENC not in repr(s) and KEY not in repr(s) and SECRET_ENC not in str(s)
    choice = choose(Cam(webhook_url=None), FakeWebhook(), s)
    assert (choice.source, choice.redacted) == ("default", "s3://AK:***@us-east-1/rec-bucket")
