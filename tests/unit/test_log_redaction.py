"""The log file's filter: request lines keep their shape, their secrets do not survive."""

from __future__ import annotations

import logging

import pytest

from local.gateway import REDACTED, RedactSecrets, redact_secrets

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl-_x"


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ('"PUT /media/uploads/v1?expires=17&sig=0123abcd HTTP/1.1" 200 -', "0123abcd"),
        ('"PUT /media/uploads/v1?uploadId=u&partNumber=2&expires=17&sig=ffee99 HTTP/1.1" 200 -', "ffee99"),
        ("GET /o/k?X-Amz-Credential=AKIA%2Fx&X-Amz-Signature=deadbeef HTTP/1.1", "deadbeef"),
        ("GET /o/k?X-Amz-Security-Token=FwoGZX&X-Amz-Signature=aa HTTP/1.1", "FwoGZX"),
        ("GET /hls/m.m3u8?Policy=eyJwb2xpY3k&Signature=Zm9v~&Key-Pair-Id=K2 HTTP/1.1", "Zm9v~"),
        ("Authorization: Bearer opaque-token-value", "opaque-token-value"),
        (f"refresh with {JWT} now", JWT),
        ("GET /cb?id_token=abc.def&refresh_token=r3fr3sh HTTP/1.1", "r3fr3sh"),
    ],
)
def test_secrets_are_redacted_and_the_rest_kept(line: str, secret: str) -> None:
    redacted = redact_secrets(line)
    assert secret not in redacted and REDACTED in redacted
    assert redacted.split(" ")[0] == line.split(" ")[0]  # the method (or first word) stays


def test_the_filter_rewrites_werkzeug_style_records_and_passes_clean_ones() -> None:
    record = logging.LogRecord(
        "werkzeug", logging.INFO, "", 0, '"%s" %s %s', ("PUT /m?sig=abc HTTP/1.1", 200, "-"), None
    )
    assert RedactSecrets().filter(record)
    assert record.getMessage() == f'"PUT /m?sig={REDACTED} HTTP/1.1" 200 -'
    clean = logging.LogRecord("local", logging.INFO, "", 0, "started %s", ("moto",), None)
    assert RedactSecrets().filter(clean) and clean.args == ("moto",)


def test_json_fields_of_a_logged_event_are_redacted() -> None:
    event = (
        '{"headers":{"Authorization":"Bearer opaque"},'
        '"body":"{\\"email\\": \\"a@example.com\\", \\"password\\": \\"Pa55-word!\\", '
        '\\"refreshToken\\": \\"r-1\\"}"}'
    )
    redacted = redact_secrets(event)
    for secret in ("opaque", "Pa55-word!", "r-1"):
        assert secret not in redacted
    assert "a@example.com" in redacted and redacted.count(REDACTED) == 3
