"""Property-based fuzzing of the HTTP API, driven by its own OpenAPI document (schemathesis).

Schemathesis reads ``GET /openapi.json`` from the app and generates requests for every operation
in it, valid ones and ones that break the schema, without a token and with a live ID token of a
signed-up (fake) user, against video ids that exist (the caller's, another user's, one awaiting a
multipart upload) and ids that do not. They reach the real resolver in-process, through the API
Lambda handler behind a small WSGI stand-in for API Gateway, with the in-memory fakes of
tests/unit/test_api.py behind it. A second property sends bodies no schema describes (garbage,
deep nesting, huge numbers, other content types) to every operation that takes a body.

Every answer must be below 500, every 4xx must be JSON ``{"error": str, "message": str}``, and
every 2xx must match the response schema the document declares (with schemathesis' other
response checks). Generation is derandomized and keeps no example database.
"""

from __future__ import annotations

import base64
import json
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import email_validator
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis import APIOperation, GenerationMode
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from lambdas.api.handler import lambda_handler
from reelay.models import VideoVisibility
from reelay.wiring import Services, set_services
from tests import recording_api_helpers as recording_helpers
from tests.fakes import FakeIdentity, FakeLambdaContext, api_event
from tests.unit.test_api import MiB, api_settings, make_ready, services, settings  # noqa: F401  (fixtures)

pytestmark = [
    pytest.mark.filterwarnings("ignore:No application metrics:UserWarning"),
    pytest.mark.filterwarnings("ignore:Received multipart:UserWarning"),
]

# Hypothesis keeps caches (unicode tables, collected constants) in ./.hypothesis unless told otherwise.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "reelay-hypothesis")

EXAMPLES = 15  # per operation, caller and generation mode: 96 x 15 = 1440 schema-driven requests a run
RAW_EXAMPLES = 30  # per operation that takes a body: 9 x 30 = 270 raw-body requests a run
FUZZ_SETTINGS = hypothesis.settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    # The services fixture lives for the whole test; each example adds its own users and videos.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- API Gateway in front of the handler -----------------------------------------------------------
class Gateway:
    """What API Gateway does before the Lambda: verify the bearer token, build the REST proxy event."""

    def __init__(self) -> None:
        self.identity: FakeIdentity | None = None
        self.operators: set[str] = set()  # subs in the Cognito group "operators"
        self.moderators: set[str] = set()  # subs in the Cognito group "moderators"

    def claims(self, authorization: str | None) -> dict[str, str] | None:
        # FakeIdentity's ID tokens are "id.<sub>"; any other token is one the authorizer turns away.
        if self.identity is None or not authorization or not authorization.startswith("Bearer id."):
            return None
        sub = authorization.removeprefix("Bearer id.")
        for email, user in self.identity.users.items():
            if user["sub"] == sub:
                claims = {"sub": sub, "email": email}
                if sub in self.operators:  # API Gateway hands the group list over as a string
                    claims["cognito:groups"] = "operators"
                if sub in self.moderators:
                    claims["cognito:groups"] = "moderators"
                return claims
        return None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        data = request.get_data()
        try:
            raw, encoded = data.decode("utf-8"), False
        except UnicodeDecodeError:  # API Gateway hands binary bodies over in base64
            raw, encoded = base64.b64encode(data).decode("ascii"), True
        event = api_event(
            request.method,
            request.path,
            raw_body=raw if data else None,
            claims=self.claims(request.headers.get("Authorization")),
        )
        event["headers"] = dict(request.headers.items())
        event["multiValueHeaders"] = {k: request.headers.getlist(k) for k, _ in request.headers.items()}
        event["queryStringParameters"] = {k: vs[-1] for k, vs in request.args.lists()} or None
        event["multiValueQueryStringParameters"] = dict(request.args.lists()) or None
        event["isBase64Encoded"] = encoded
        result = lambda_handler(event, FakeLambdaContext())
        body = result.get("body") or ""
        response = Response(base64.b64decode(body) if result.get("isBase64Encoded") else body)
        response.status_code = result["statusCode"]
        response.headers.clear()
        for name, value in (result.get("headers") or {}).items():
            response.headers[name] = str(value)
        for name, values in (result.get("multiValueHeaders") or {}).items():
            for value in values:
                response.headers.add(name, str(value))
        return response(environ, start_response)


GATEWAY = Gateway()
# The document states the upload limits of the settings in force: those the services fixture runs with.
set_services(Services(api_settings()))
try:
    with warnings.catch_warnings():  # the handler flushes no metrics for this read
        warnings.filterwarnings("ignore", "No application metrics", UserWarning)
        SCHEMA = schemathesis.openapi.from_wsgi("/openapi.json", GATEWAY, config=schemathesis.Config())
finally:
    set_services(None)
# Every operation of the document: get_all_operations() leaves out the one that serves the document.
OPERATIONS = [
    SCHEMA[path][method.upper()] for path, item in SCHEMA.raw_schema["paths"].items() for method in item
]


def _has_inputs(operation: APIOperation) -> bool:
    return bool(operation.body) or any(True for _ in operation.iter_parameters())


SCHEMA_CASES = [
    pytest.param(operation, mode, id=f"{operation.label}-{mode.value}")
    for operation in OPERATIONS
    # Negative data needs something to break: GET /openapi.json takes no input at all.
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or _has_inputs(operation)
]
BODY_OPERATIONS = [pytest.param(op, id=op.label) for op in OPERATIONS if op.body]


# --- the world each example runs in --------------------------------------------------------------
class World:
    """A signed-up caller with a live ID token, their videos, another user's video; an operator with a
    live ID token, their streams (one started, its task holding the lease), another operator's."""

    def __init__(self, svc: Services) -> None:
        identity: FakeIdentity = svc.identity  # type: ignore[assignment]
        self.token, sub, email = self._sign_up(identity)
        owner = {"sub": sub, "email": email}
        mine = make_ready(svc, owner=owner)
        theirs = make_ready(svc, owner={"sub": "user-other", "email": "other@example.com"})
        pending, _ = svc.videos.create_upload(sub, email, "big", "", "video/mp4", 12 * MiB, None)
        hidden = make_ready(svc, owner=owner, name="hidden")
        svc.videos.set_visibility(sub, hidden.video_id, VideoVisibility.PRIVATE)
        self.video_ids = [mine.video_id, theirs.video_id, pending.video_id, hidden.video_id]
        self.moderator_token, moderator, _ = self._sign_up(identity)
        GATEWAY.moderators.add(moderator)
        self.operator_token, operator, _ = self._sign_up(identity)
        GATEWAY.operators.add(operator)
        streams = svc.streams
        idle = streams.create(operator, "idle", "rtsp://cam:pw-0123456789@10.0.0.5/x")
        live = streams.start(operator, streams.create(operator, "live", "srt://10.0.0.6:9000").stream_id)
        catalogue: Any = svc.catalogue
        catalogue.claim_stream_lease(live.stream_id, "task-live", 300)
        other = streams.create("operator-other", "other", "https://cdn.example/x.m3u8")
        self.stream_ids = [idle.stream_id, live.stream_id, other.stream_id]
        # Recording sessions of the idle stream: one finalized (with an export), one recording now.
        recording_helpers.install(svc)
        ready_id, _ = recording_helpers.ready_session(svc, idle.stream_id)
        self.session_ids = [ready_id, recording_helpers.live_session(svc, idle.stream_id, segments=1)]
        self.export_ids = [svc.recordings.create_export(operator, idle.stream_id, ready_id, 0, 2)["exportId"]]

    @staticmethod
    def _sign_up(identity: FakeIdentity) -> tuple[str, str, str]:
        email = f"caller{len(identity.users)}@example.com"
        sub = identity.register(email, "Correct-Horse-9")
        identity.confirm(email, identity.users[email]["code"])
        return identity.login(email, "Correct-Horse-9").id_token, sub, email

    def aim(self, data: st.DataObject, path_parameters: dict[str, Any], body: Any) -> None:
        """Point the request at a video or stream that exists, or leave the generated (unknown) id alone."""
        if "streamId" in path_parameters:
            known = data.draw(st.sampled_from([None, *self.stream_ids]), label="known streamId")
            if known is not None:
                path_parameters["streamId"] = known
            for name, ids in (("sessionId", self.session_ids), ("exportId", self.export_ids)):
                if name in path_parameters:
                    known = data.draw(st.sampled_from([None, *ids]), label=f"known {name}")
                    if known is not None:
                        path_parameters[name] = known
            return
        known = data.draw(st.sampled_from([None, *self.video_ids]), label="known videoId")
        if known is None:
            return
        if "videoId" in path_parameters:
            path_parameters["videoId"] = known
        if isinstance(body, dict) and "videoId" in body:
            body["videoId"] = known


@pytest.fixture
def world(services: Services) -> Iterator[Callable[[], World]]:  # noqa: F811  (the imported fixture)
    GATEWAY.identity = services.identity  # type: ignore[assignment]
    yield lambda: World(services)
    GATEWAY.identity = None
    GATEWAY.operators.clear()
    GATEWAY.moderators.clear()


def assert_answer_shape(operation: APIOperation, response: schemathesis.Response) -> None:
    """Below 500; a 4xx is exactly {"error": str, "message": str} as JSON; a 2xx fits its schema."""
    status, text = response.status_code, response.text
    assert status < 500, f"{operation.label} answered {status}: {text}"
    if 400 <= status < 500:
        assert response.headers.get("content-type") == ["application/json"], (status, response.headers)
        body = json.loads(text)
        assert isinstance(body, dict) and set(body) == {"error", "message"}, body
        assert isinstance(body["error"], str) and isinstance(body["message"], str), body
    elif 200 <= status < 300:
        operation.validate_response(response)


# --- the properties ------------------------------------------------------------------------------
def test_the_fuzzer_sees_every_route_of_the_table() -> None:
    from reelay.api.routes import ROUTES

    assert {op.label for op in OPERATIONS} == {f"{r.method} {r.path}" for r in ROUTES}
    assert len(SCHEMA_CASES) == 2 * len(ROUTES) - 1  # all but GET /openapi.json in both modes
    # And the operators' routes are fuzzed with an operator's token too, in both modes
    streams = [r for r in ROUTES if r.path.startswith("/streams") and r.auth]
    assert (
        len(streams) == 12
    )  # the streams' 7 and the recording sessions' 5 (the live playlist has no bearer)
    assert sum(1 for c in CALLERS if c.values[2] == "operator") == 2 * len(streams)
    # And the moderators' routes, and any video's view and delete, with a moderator's token
    moderated = [r for r in ROUTES if r.path.startswith("/moderation")]
    assert len(moderated) == 4
    assert sum(1 for c in CALLERS if c.values[2] == "moderator") == 2 * (len(moderated) + 1)


def _operators_only(operation: APIOperation) -> bool:
    # The live playlist is under /streams but takes a token in its URL instead of a bearer.
    return operation.path.startswith("/streams") and not operation.path.endswith("/live.m3u8")


def _moderators_only(operation: APIOperation) -> bool:
    return operation.path.startswith("/moderation")


def _moderated(operation: APIOperation) -> bool:
    """Where a moderator's token changes the answer: the /moderation routes and any video's view or delete."""
    return _moderators_only(operation) or operation.label == "GET /me/videos/{videoId}"


# Who calls: nobody, a signed-in user, and (for the operators' routes) an operator.
CALLERS = [
    pytest.param(operation, mode, caller, id=f"{operation.label}-{mode.value}-{caller}")
    for operation, mode in ((p.values[0], p.values[1]) for p in SCHEMA_CASES)
    for caller in ("no-token", "token", "operator", "moderator")
    if (caller != "operator" or _operators_only(operation))
    and (caller != "moderator" or _moderated(operation))
]


@pytest.mark.parametrize(("operation", "mode", "caller"), CALLERS)
@hypothesis.settings(FUZZ_SETTINGS, max_examples=EXAMPLES)
@given(data=st.data())
def test_generated_requests_get_no_5xx_and_answers_in_their_declared_shapes(
    world: Callable[[], World],
    operation: APIOperation,
    mode: GenerationMode,
    caller: str,
    data: st.DataObject,
) -> None:
    here = world()
    case = data.draw(operation.as_strategy(generation_mode=mode), label="case")
    # A negative case's body may break the schema in its videoId: aiming it at a real video would mend it.
    here.aim(data, case.path_parameters or {}, case.body if mode is GenerationMode.POSITIVE else None)
    # The caller is set here, not generated: no Authorization header, or a live ID token.
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    token = {
        "no-token": None,
        "token": here.token,
        "operator": here.operator_token,
        "moderator": here.moderator_token,
    }[caller]
    if token is not None:
        case.headers["Authorization"] = f"Bearer {token}"
    response = case.call()
    assert_answer_shape(operation, response)
    if operation.definition.raw.get("security") and token is None:
        assert not 200 <= response.status_code < 300, f"{operation.label} served a caller without a token"
    if _operators_only(operation) and caller == "token":
        # 403, or 400/404 for a request no route or schema takes: never served
        assert response.status_code in (400, 403, 404), f"{operation.label} let a non-operator through"
    if _moderators_only(operation) and caller in ("token", "operator"):
        assert response.status_code in (400, 403, 404), f"{operation.label} let a non-moderator through"
    # Schemathesis' other response checks: status codes and content types as documented, schemas,
    # schema-breaking data rejected, schema-valid data accepted. ignored_auth does not apply here: it
    # assumes the generated Authorization header was sent; this test replaces it with a real token or none.
    excluded = [ignored_auth]
    if _unstated_rule_applies(case):
        excluded.append(positive_data_acceptance)
    case.validate_response(response, excluded_checks=excluded)


# Rules no JSON schema can state, which answer 400 to a schema-valid request by design. Positive data
# acceptance is off for a request only where one of them applies; every other rule is in the document.
# email-validator's special-use domains (its own list) for "format": "email".
_SPECIAL_USE_DOMAINS = tuple(email_validator.SPECIAL_USE_DOMAIN_NAMES)


def _unstated_rule_applies(case: schemathesis.Case) -> bool:
    body = case.body if isinstance(case.body, dict) else {}
    # A cursor is opaque: only one the API issued is taken.
    if "cursor" in (case.query or {}):
        return True
    email = body.get("email")
    if isinstance(email, str):
        domain = email.rsplit("@", 1)[-1].lower().rstrip(".")
        if any(domain == name or domain.endswith("." + name) for name in _SPECIAL_USE_DOMAINS):
            return True
    # A stream source's URL, a recording's object store and webhook URLs are parsed for their form
    # (scheme, host, port, path, credentials, loopback); a KVS stream's name must start with the
    # deployment's prefix (a setting).
    urls = ("sourceUrl", "kvsStreamName", "recordObjectStore", "recordWebhookUrl")
    if any(isinstance(body.get(name), str) for name in urls):
        return True
    # Ids in the path are stripped: a blank one is no id (the path's schema cannot say so, see models).
    # (schemathesis holds them percent-encoded)
    if any(isinstance(v, str) and not unquote(v).strip() for v in (case.path_parameters or {}).values()):
        return True
    # Rules on other resources' state: the upload id must be the video's upload in progress, an export's
    # range must lie within its recording.
    return case.operation.label in (
        "POST /videos/{videoId}/upload/complete",
        "POST /streams/{streamId}/sessions/{sessionId}/exports",
    )


CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xx",
    "",
]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
RAW_BODIES = st.one_of(
    st.binary(max_size=64),  # mostly not UTF-8
    st.text(max_size=64),
    JSON_VALUES.map(json.dumps),
    st.integers(1, 20_000).map(lambda depth: "[" * depth + "]" * depth),  # past the recursion limit
    st.integers(1, 10_000).map(lambda digits: '{"sizeBytes": ' + "7" * digits + "}"),  # past 4300 digits
    st.integers(1, 3_000).map(lambda depth: '{"email": ' + "{" * depth + "}" * depth + "}"),
)


@pytest.mark.parametrize("operation", BODY_OPERATIONS)
@hypothesis.settings(FUZZ_SETTINGS, max_examples=RAW_EXAMPLES)
@given(data=st.data())
def test_bodies_no_schema_describes_get_no_5xx(
    world: Callable[[], World], operation: APIOperation, data: st.DataObject
) -> None:
    here = world()
    path_parameters = {"videoId": "unknown-video"} if "{videoId}" in operation.path else {}
    if "{streamId}" in operation.path:
        path_parameters = {"streamId": "unknown-stream"}
        for name in ("sessionId", "exportId"):
            if "{" + name + "}" in operation.path:
                path_parameters[name] = f"unknown-{name}"
    here.aim(data, path_parameters, None)
    body = data.draw(RAW_BODIES, label="body")
    token = here.operator_token if _operators_only(operation) else here.token
    headers = {"Authorization": f"Bearer {token}"}
    content_type = data.draw(st.sampled_from(CONTENT_TYPES), label="content type")
    if content_type:
        headers["Content-Type"] = content_type
    path = operation.path.format(**path_parameters)
    sent = Client(GATEWAY).open(path, method=operation.method.upper(), data=body, headers=headers)
    assert_answer_shape(operation, schemathesis.Response.from_any(sent))


# --- what the fuzzers found, by hand -------------------------------------------------------------
def _send(operation_label: str, path: str, body: str | bytes | None, token: str | None = None) -> Any:
    method = operation_label.split(" ", 1)[0]
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    return Client(GATEWAY).open(path, method=method, data=body, headers=headers)


@pytest.mark.parametrize(
    "raw",
    [
        '{"displayName": "a", "contentType": "video/mp4", "sizeBytes": ' + "9" * 5000 + "}",
        "[" * 100_000 + "]" * 100_000,
        '{"displayName": ' + "[" * 5000 + "]" * 5000 + "}",
    ],
    ids=["integer-over-4300-digits", "nesting-past-the-recursion-limit", "nested-field"],
)
def test_json_that_python_cannot_read_is_400_invalid_json_not_500(world: Callable[[], World], raw) -> None:
    # Defect: json.loads raises ValueError (integer digits limit) or RecursionError for these, which
    # the resolver took for bugs and answered 500 internal_error.
    here = world()
    sent = _send("POST /videos/upload", "/videos/upload", raw, here.token)
    assert sent.status_code == 400, sent.get_data(as_text=True)
    assert sent.get_json() == {"error": "invalid_json", "message": "the request body is not valid JSON"}


def test_delete_is_documented_as_204_without_a_body_and_answers_so(world: Callable[[], World]) -> None:
    # Defect: the document declared a JSON string body for DELETE's 204, which never has one.
    no_content = SCHEMA.raw_schema["paths"]["/videos/{videoId}"]["delete"]["responses"]["204"]
    assert no_content.get("content", {}) == {}
    here = world()
    video: str = here.video_ids[0]
    sent = _send("DELETE /videos/{videoId}", f"/videos/{video}", None, here.token)
    assert sent.status_code == 204 and sent.get_data() == b"" and "Content-Type" not in sent.headers
    response = schemathesis.Response.from_any(sent)
    SCHEMA["/videos/{videoId}"]["DELETE"].validate_response(response)


def test_the_document_declares_the_4xx_the_routes_answer_with() -> None:
    # Defect: POST /videos/{videoId}/upload/complete answers 409 when the video is past awaiting
    # its upload, and every route with a body answers 415 to a body not sent as JSON; neither was
    # in the document.
    paths = SCHEMA.raw_schema["paths"]
    assert "409" in paths["/videos/{videoId}/upload/complete"]["post"]["responses"]
    for path, item in paths.items():
        for method, operation in item.items():
            assert ("415" in operation["responses"]) == (method in ("post", "patch")), (method, path)
