"""Pagination cursors: any cursor the API did not issue answers 400, never 500.

A fuzzer once found a cursor whose time, once turned into UTC, overflowed ``datetime``: the
OverflowError escaped cursor decoding and GET /videos answered 500. These properties feed every
listing route arbitrary cursors: random text, base64 of random bytes, base64 of arbitrary JSON,
and well-formed cursors carrying extreme dates, offsets and numbers.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdas.api.handler import lambda_handler
from reelay.catalogue._common import decode_cursor, encode_cursor
from reelay.errors import InvalidInput
from reelay.settings import Settings
from tests.fakes import FakeLambdaContext, api_event, installed_services

pytestmark = [pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")]

OPERATOR = {"sub": "user-op", "email": "op@example.com", "cognito:groups": "operators"}
LISTINGS = (("/videos", None), ("/me/videos", OPERATOR), ("/streams", OPERATOR))


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_offsets = st.sampled_from(["", "Z", "+00:00", "-23:59", "+23:59", "+14:00", "-12:00"])
_extreme_times = st.builds(
    lambda when, offset: when.isoformat() + offset,
    st.datetimes(min_value=datetime.min, max_value=datetime.max),
    _offsets,
) | st.sampled_from(
    [
        "9999-12-31T23:59:59.999-23:59",
        "0001-01-01T00:00:00+23:59",
        "9999-12-31T23:59:59.999999",
        "0001-01-01T00:00:00",
        "0999-12-31T23:59:59.999",
        "2024-01-01",
        "2024-01-01T00:00:00",
        "2024-01-01T00:00:00.000000",
        "2024-01-01 00:00:00.000",
    ]
)
_video_ids = st.text(max_size=70) | st.sampled_from(["v1", "x" * 64, "x" * 65, ""])
_foreign_cursors = st.one_of(
    st.text(min_size=1, max_size=600),
    st.binary(min_size=1, max_size=300).map(b64),
    _json.map(lambda v: b64(json.dumps(v).encode())),
    st.tuples(_extreme_times | _json, _video_ids | _json).map(lambda p: b64(json.dumps(list(p)).encode())),
)


@pytest.fixture(scope="module")
def services():
    with installed_services(Settings(stream_secret_keys="test-stream-secret-key-0123456789abcdef")) as svc:
        yield svc


def list_with(path: str, claims: dict[str, str] | None, cursor: str) -> tuple[int, Any]:
    response = lambda_handler(
        api_event("GET", path, query={"cursor": cursor}, claims=claims), FakeLambdaContext()
    )
    return response["statusCode"], json.loads(response["body"])


def issued(cursor: str) -> bool:
    """Whether the API could have issued this cursor (then it must decode, not fail)."""
    try:
        when, video_id = decode_cursor(cursor)
    except InvalidInput:
        return False
    return encode_cursor(when, video_id) == cursor.rstrip("=")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cursor=_foreign_cursors)
def test_any_cursor_decodes_or_is_invalid_input(cursor: str) -> None:
    try:
        when, video_id = decode_cursor(cursor)
    except InvalidInput as exc:
        assert "cursor" in exc.message
        return
    # Whatever decodes is exactly what encode_cursor would have issued.
    assert encode_cursor(when, video_id) == cursor.rstrip("=")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cursor=_foreign_cursors, which=st.sampled_from(LISTINGS))
def test_listing_routes_answer_400_to_a_cursor_they_did_not_issue(services, cursor, which) -> None:
    path, claims = which
    status, body = list_with(path, claims, cursor)
    if issued(cursor) and len(cursor) <= 512:
        assert status == 200, body
    else:
        assert status == 400, body
        assert body["error"] == "invalid_input" and "cursor" in body["message"]


@pytest.mark.parametrize(
    "upload_time",
    ["9999-12-31T23:59:59.999-23:59", "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59+-00:01"],
)
@pytest.mark.parametrize(("path", "claims"), LISTINGS)
def test_the_overflowing_cursor_the_fuzzer_found_is_400(services, upload_time, path, claims) -> None:
    status, body = list_with(path, claims, b64(json.dumps([upload_time, "v1"]).encode()))
    assert status == 400 and body["error"] == "invalid_input", body


@settings(max_examples=200)
@given(
    when=st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    video_id=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64),
)
def test_every_cursor_the_api_issues_decodes_to_what_it_encoded(when: datetime, video_id: str) -> None:
    at_ms = when - timedelta(microseconds=when.microsecond % 1000)
    assert decode_cursor(encode_cursor(when, video_id)) == (at_ms, video_id)
