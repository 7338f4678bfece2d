"""Tighter throttles on the unauthenticated /auth/* routes: the local gateway's bucket per client IP, and
the route table's split that API Gateway's method throttles use too."""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.test import Client

from local.auth import JwtAuthorizer
from local.gateway import Gateway
from local.media import MediaEndpoint
from local.throttle import ClientBuckets
from reelay.api.routes import LOCAL_AUTH_THROTTLE, ROUTES, Throttle, auth_routes


class _Api:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.calls += 1
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}


def gateway(tmp_path, api: _Api, throttle: Throttle | None) -> Client:
    return Client(
        Gateway(
            api_handler=lambda: api,
            authorizer=JwtAuthorizer("http://127.0.0.1:1/jwks.json", "issuer", "client"),  # never called
            media=MediaEndpoint(output_prefix="outputs/"),
            static_dir=tmp_path,
            max_body_bytes=1000,
            auth_throttle=throttle,
        )
    )


def test_the_auth_throttle_covers_exactly_the_unauthenticated_auth_routes():
    covered = {(r.method, r.path) for r in auth_routes()}
    assert covered == {(r.method, r.path) for r in ROUTES if r.path.startswith("/auth/")}
    assert ("GET", "/videos") not in covered and all(not r.auth for r in auth_routes())


def test_a_client_over_its_auth_burst_gets_429_json_with_retry_after(tmp_path):
    # Given a gateway allowing 3 /auth/* calls at once per client, refilling one every 10 s
    api = _Api()
    client = gateway(tmp_path, api, Throttle(rate_per_second=0.1, burst=3))
    body = {"email": "a@example.com", "password": "x"}

    # When one client makes four login calls in a row
    answers = [
        client.post("/auth/login", json=body, environ_base={"REMOTE_ADDR": "203.0.113.7"}) for _ in range(4)
    ]

    # Then the first three reach the API and the fourth is refused in the error shape, with Retry-After
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused.json == {
        "error": "throttled",
        "message": "Too many requests to /auth/login; retry in 10 s.",
    }
    assert refused.headers["Retry-After"] == "10"
    assert api.calls == 3

    # And every /auth/* route shares the client's bucket, while other clients and other routes are not slowed
    again = client.post("/auth/register", json=body, environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert again.status_code == 429
    other = client.post("/auth/login", json=body, environ_base={"REMOTE_ADDR": "198.51.100.2"})
    assert other.status_code == 200
    listing = [client.get("/videos", environ_base={"REMOTE_ADDR": "203.0.113.7"}) for _ in range(10)]
    assert {r.status_code for r in listing} == {200}


def test_no_auth_throttle_lets_every_call_through(tmp_path):
    api = _Api()
    client = gateway(tmp_path, api, None)
    codes = {client.post("/auth/login", json={}).status_code for _ in range(20)}
    assert codes == {200}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_refills_at_its_rate_up_to_its_burst():
    clock = Clock()
    buckets = ClientBuckets(Throttle(rate_per_second=2.0, burst=2), clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 1]
    clock.now += 0.5  # one token back
    assert (buckets.take("a"), buckets.take("a")) == (0, 1)
    clock.now += 60  # never more than the burst
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 1]


def test_a_bucket_forgets_the_least_recent_clients_past_its_limit():
    clock = Clock()
    buckets = ClientBuckets(Throttle(rate_per_second=0.001, burst=1), clock=clock, max_clients=2)
    assert buckets.take("a") == 0 and buckets.take("b") == 0
    assert buckets.take("c") == 0  # "a" is forgotten: its next call starts with a full bucket
    assert buckets.take("a") == 0
    assert buckets.take("c") > 0


@pytest.mark.parametrize("bad", [Throttle(0, 5), Throttle(1.0, 0)])
def test_a_throttle_that_lets_nothing_through_is_refused(bad):
    with pytest.raises(ValueError):
        ClientBuckets(bad)


def test_the_local_default_leaves_room_for_a_person_and_stops_a_script():
    assert 10 <= LOCAL_AUTH_THROTTLE.burst <= 100
    assert LOCAL_AUTH_THROTTLE.rate_per_second <= 5
