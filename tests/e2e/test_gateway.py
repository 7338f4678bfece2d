"""The local gateway in-process: the API Gateway REST event it builds and the JWT checks it makes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import jwt
import pytest
import requests
from moto.utilities.utils import load_resource
from werkzeug.serving import make_server

from local.auth import InvalidToken, JwtAuthorizer
from local.aws import AwsResources, MotoServer, provision
from local.gateway import Gateway
from local.media import MediaEndpoint
from reelay.api.routes import ROUTES
from tests.e2e.conftest import PASSWORD


@dataclass
class Recorder:
    """Stands in for the API Lambda: remembers each event and answers with a fixed response."""

    events: list[dict[str, Any]] = field(default_factory=list)
    response: dict[str, Any] = field(
        default_factory=lambda: {
            "statusCode": 200,
            "headers": {"Content-Type": "application/json"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
            "body": '{"ok": true}',
            "isBase64Encoded": False,
        }
    )

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        assert context.get_remaining_time_in_millis() > 0
        self.events.append(event)
        return self.response


@pytest.fixture(scope="module")
def aws() -> Iterator[AwsResources]:
    moto = MotoServer("127.0.0.1", 0)
    url = moto.start()
    try:
        yield provision(url, "us-east-1", max_attempts=3, visibility_seconds=30)
    finally:
        moto.stop()


@pytest.fixture(scope="module")
def gateway(aws: AwsResources) -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()
    app = Gateway(
        api_handler=lambda: recorder,
        authorizer=JwtAuthorizer(aws.jwks_url, aws.issuer, aws.user_pool_client_id),
        media=MediaEndpoint(output_prefix="outputs/"),
        static_dir=Path("/nonexistent"),
        max_body_bytes=1000,
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", recorder
    finally:
        server.shutdown()
        server.server_close()


def tokens(aws: AwsResources, email: str, password: str = PASSWORD) -> dict[str, str]:
    idp = boto3.client("cognito-idp", endpoint_url=aws.endpoint_url, region_name=aws.region)
    idp.sign_up(ClientId=aws.user_pool_client_id, Username=email, Password=password)
    idp.admin_confirm_sign_up(UserPoolId=aws.user_pool_id, Username=email)
    return idp.initiate_auth(
        ClientId=aws.user_pool_client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": email, "PASSWORD": password},
    )["AuthenticationResult"]


def test_every_route_of_the_table_reaches_the_handler(
    gateway: tuple[str, Recorder], aws: AwsResources
) -> None:
    url, recorder = gateway
    token = tokens(aws, "every@example.com")["IdToken"]
    for route in ROUTES:
        # Given a request for each route of the shared table (path parameters filled in)
        path = route.path.replace("{videoId}", "vid123")
        # When it is sent with a valid token, Then the handler sees that route's resource
        r = requests.request(
            route.method, url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert r.status_code == 200, (route, r.text)
        assert recorder.events[-1]["resource"] == route.path
        assert recorder.events[-1]["httpMethod"] == route.method


def test_event_has_the_api_gateway_rest_shape(gateway: tuple[str, Recorder], aws: AwsResources) -> None:
    url, recorder = gateway
    token = tokens(aws, "shape@example.com")["IdToken"]
    # When an authenticated PATCH with a query string and a JSON body arrives
    r = requests.patch(
        f"{url}/videos/abc-1?x=1&x=2&y=z",
        headers={"Authorization": f"Bearer {token}", "X-Custom": "v"},
        json={"displayName": "n"},
        timeout=10,
    )
    assert r.status_code == 200
    event = recorder.events[-1]
    # Then the event carries what API Gateway would put in it
    assert event["resource"] == "/videos/{videoId}"
    assert event["path"] == "/videos/abc-1"
    assert event["pathParameters"] == {"videoId": "abc-1"}
    assert event["queryStringParameters"] == {"x": "2", "y": "z"}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": ["z"]}
    assert event["headers"]["X-Custom"] == "v"
    assert event["multiValueHeaders"]["X-Custom"] == ["v"]
    assert json.loads(event["body"]) == {"displayName": "n"}
    assert event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["resourcePath"] == "/videos/{videoId}" and ctx["httpMethod"] == "PATCH"
    assert ctx["stage"] == "local" and ctx["requestId"] and ctx["identity"]["sourceIp"] == "127.0.0.1"
    claims = ctx["authorizer"]["claims"]
    assert claims["email"] == "shape@example.com" and claims["token_use"] == "id" and claims["sub"]
    # And the handler's response comes back with its headers, multi-value ones and CORS
    assert r.json() == {"ok": True}
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]


def test_public_routes_need_no_token_and_get_no_claims(gateway: tuple[str, Recorder]) -> None:
    url, recorder = gateway
    r = requests.get(f"{url}/videos", timeout=10)
    assert r.status_code == 200
    event = recorder.events[-1]
    assert event["requestContext"]["authorizer"] is None
    assert (
        event["body"] is None and event["queryStringParameters"] is None and event["pathParameters"] is None
    )


def test_binary_body_is_base64(gateway: tuple[str, Recorder]) -> None:
    url, recorder = gateway
    requests.post(f"{url}/auth/login", data=b"\xff\x00\xfe", timeout=10)
    event = recorder.events[-1]
    assert event["isBase64Encoded"] is True and event["body"] == "/wD+"


def test_tokens_from_another_client_or_expired_are_refused(
    gateway: tuple[str, Recorder], aws: AwsResources
) -> None:
    url, recorder = gateway
    good = tokens(aws, "client@example.com")
    # Given tokens from another app client of the same pool
    idp = boto3.client("cognito-idp", endpoint_url=aws.endpoint_url, region_name=aws.region)
    other = idp.create_user_pool_client(
        UserPoolId=aws.user_pool_id, ClientName="other", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    foreign = idp.initiate_auth(
        ClientId=other,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "client@example.com", "PASSWORD": PASSWORD},
    )["AuthenticationResult"]
    before = len(recorder.events)
    for token in (foreign["IdToken"], foreign["AccessToken"]):
        r = requests.get(f"{url}/me/videos", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        # Then they are 401 and the handler never runs
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "unauthorized"
    assert len(recorder.events) == before
    # And even the right client's access token is refused, as API Gateway's Cognito authorizer
    # (no OAuth scopes) refuses it, with a message that says what to send instead
    r = requests.get(
        f"{url}/me/videos", headers={"Authorization": f"Bearer {good['AccessToken']}"}, timeout=10
    )
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    assert "send the ID token" in r.json()["message"]
    assert len(recorder.events) == before
    # While its ID token passes
    r = requests.get(f"{url}/me/videos", headers={"Authorization": f"Bearer {good['IdToken']}"}, timeout=10)
    assert r.status_code == 200
    assert recorder.events[-1]["requestContext"]["authorizer"]["claims"]["token_use"] == "id"


def test_expired_token_is_refused(aws: AwsResources) -> None:
    # Given a token signed with moto's own key, for the right pool and client, but expired
    private = load_resource("cognitoidp/resources/jwks-private.json")
    key = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(private))
    claims = {"iss": aws.issuer, "sub": "s", "aud": aws.user_pool_client_id, "token_use": "id"}
    authorizer = JwtAuthorizer(aws.jwks_url, aws.issuer, aws.user_pool_client_id)
    fresh = jwt.encode(
        {**claims, "exp": int(time.time()) + 60}, key, algorithm="RS256", headers={"kid": "dummy"}
    )
    assert authorizer.claims(f"Bearer {fresh}")["sub"] == "s"
    expired = jwt.encode(
        {**claims, "exp": int(time.time()) - 5}, key, algorithm="RS256", headers={"kid": "dummy"}
    )
    # When it is checked, Then it is refused as expired
    with pytest.raises(InvalidToken, match="expired"):
        authorizer.claims(f"Bearer {expired}")
    # And a token for another pool (wrong issuer) is refused too
    other = jwt.encode(
        {**claims, "iss": aws.issuer + "x", "exp": int(time.time()) + 60},
        key,
        algorithm="RS256",
        headers={"kid": "dummy"},
    )
    with pytest.raises(InvalidToken):
        authorizer.claims(f"Bearer {other}")


def test_body_limit_and_unknown_routes(gateway: tuple[str, Recorder]) -> None:
    url, recorder = gateway
    before = len(recorder.events)
    r = requests.post(f"{url}/auth/login", data=b"x" * 1001, timeout=10)
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
    r = requests.get(f"{url}/nope", timeout=10)
    assert r.status_code == 404 and set(r.json()) == {"error", "message"}
    r = requests.options(f"{url}/nope", timeout=10)
    assert r.status_code == 404
    assert len(recorder.events) == before


def test_trailing_slash_reaches_the_same_route(gateway: tuple[str, Recorder]) -> None:
    url, recorder = gateway
    r = requests.get(f"{url}/videos/abc/", timeout=10)
    assert r.status_code == 200
    assert recorder.events[-1]["path"] == "/videos/abc"
    assert recorder.events[-1]["pathParameters"] == {"videoId": "abc"}
