"""The local gateway's web side, in process: the build with its cache headers, client routes and
404s, /config.json, the old player address, and the test-only fault hook."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client, EnvironBuilder
from werkzeug.wrappers import Request

from infra.constants import WEB_ASSETS_CACHE_CONTROL, WEB_PAGES_CACHE_CONTROL
from local.auth import JwtAuthorizer
from local.gateway import Gateway
from local.gateway_faults import CONTROL_PATH, DroppedConnection, Faults
from local.media import MediaEndpoint
from local.web import WebApp, web_config

INDEX = b'<!doctype html><div id="root"></div>'
CONFIG = web_config(
    api_url="http://127.0.0.1:1", region="us-east-1", user_pool_id="p", user_pool_client_id="c"
)


class Api:
    """Stands in for the API Lambda: /videos/known exists, every other id is a 404."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        found = event["path"] in ("/videos", "/videos/known")
        body = {"items": []} if found else {"error": "not_found", "message": "no such video"}
        return {"statusCode": 200 if found else 404, "body": json.dumps(body), "headers": {}}


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log('reelay')")
    (tmp_path / "favicon.svg").write_text("<svg/>")
    (tmp_path / "index.html").write_bytes(INDEX)
    return tmp_path


def gateway(dist: Path, faults: Faults | None = None) -> tuple[Client, Api]:
    api = Api()
    app = Gateway(
        api_handler=lambda: api,
        authorizer=JwtAuthorizer("http://127.0.0.1:1/jwks.json", "issuer", "client"),  # never called here
        media=MediaEndpoint(output_prefix="outputs/"),
        static_dir=dist / "nothing",
        max_body_bytes=1000,
        web=WebApp(dist, config=lambda: CONFIG),
        faults=faults,
    )
    return Client(app), api


def test_client_routes_get_the_app_and_unknown_pages_a_404_with_it(dist: Path) -> None:
    client, _ = gateway(dist)
    # Given the SPA's routes, When a browser opens them, Then each gets index.html, never cached
    for path in (
        "/",
        "/login",
        "/register",
        "/confirm",
        "/my",
        "/upload",
        "/watch/known",
        "/live/s1/recordings/r1",
    ):
        r = client.get(path, headers={"Accept": "text/html"})
        assert (r.status_code, r.data) == (200, INDEX), path
        assert r.headers["Cache-Control"] == WEB_PAGES_CACHE_CONTROL
    # And an unknown page or video still gets the app (which shows "not found"), with a real 404
    for path in ("/nope", "/watch/unknown", "/my/extra/parts", "/live/s1/recordings/r1/more"):
        r = client.get(path, headers={"Accept": "text/html"})
        assert (r.status_code, r.data) == (404, INDEX), path


def test_pages_carry_the_web_stacks_security_headers(dist: Path) -> None:
    client, _ = gateway(dist)
    r = client.get("/", headers={"Accept": "text/html"})
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "connect-src 'self' http://127.0.0.1:1" in csp  # the API origin from config.json
    assert "upgrade-insecure-requests" not in csp  # plain http on this machine
    assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["X-Frame-Options"] == "DENY"


def test_api_paths_stay_the_api_and_api_clients_get_json_404s(dist: Path) -> None:
    client, api = gateway(dist)
    # Given an API route, When a browser asks for it, Then the API answers, not the app
    r = client.get("/videos", headers={"Accept": "text/html"})
    assert json.loads(r.data) == {"items": []} and api.events[-1]["path"] == "/videos"
    # And a path that is neither, asked for without text/html, gets the API's JSON 404
    r = client.get("/nope", headers={"Accept": "application/json"})
    assert r.status_code == 404 and r.json["error"] == "not_found"


def test_assets_are_cached_for_good_and_other_files_revalidated(dist: Path) -> None:
    client, _ = gateway(dist)
    asset = client.get("/assets/index-abc123.js")
    assert asset.status_code == 200 and asset.headers["Cache-Control"] == WEB_ASSETS_CACHE_CONTROL
    assert "javascript" in asset.headers["Content-Type"]
    icon = client.get("/favicon.svg")
    assert icon.status_code == 200 and icon.headers["Cache-Control"] == WEB_PAGES_CACHE_CONTROL
    # And nothing outside the build can be reached
    assert client.get("/assets/../../etc/passwd", headers={"Accept": "text/html"}).data in (INDEX, b"")


def test_config_json_carries_the_api_url_and_cognito_ids(dist: Path) -> None:
    client, _ = gateway(dist)
    r = client.get("/config.json")
    assert r.json == CONFIG and r.headers["Cache-Control"] == WEB_PAGES_CACHE_CONTROL
    assert set(CONFIG) == {"apiUrl", "region", "userPoolId", "userPoolClientId"}


def test_the_old_player_address_redirects_to_the_video_page(dist: Path) -> None:
    client, _ = gateway(dist)
    r = client.get("/play/abc-123")
    assert r.status_code == 301 and r.headers["Location"] == "/watch/abc-123"
    assert client.get("/play/..%2Fetc").status_code == 404


def test_a_missing_build_says_how_to_make_it(tmp_path: Path) -> None:
    client, _ = gateway(tmp_path)
    r = client.get("/", headers={"Accept": "text/html"})
    assert r.status_code == 503 and b"make bootstrap" in r.data


def test_the_fault_hook_is_off_unless_given(dist: Path) -> None:
    client, _ = gateway(dist)
    assert client.post(CONTROL_PATH, json={"pattern": "."}).status_code in (404, 405)


def test_faults_fail_the_next_n_matching_requests_then_let_them_through(dist: Path) -> None:
    faults = Faults()
    client, api = gateway(dist, faults)
    # Given a rule failing the next two GET /videos with a 503
    r = client.post(CONTROL_PATH, json={"method": "GET", "pattern": r"^/videos\?", "times": 2, "status": 503})
    assert r.status_code == 201
    # When the list is asked for three times (and another path in between)
    answers = [client.get("/videos?limit=1").status_code for _ in range(2)]
    assert client.get("/videos/known").status_code == 200  # does not match: untouched
    answers.append(client.get("/videos?limit=1").status_code)
    # Then the first two fail without reaching the API, the third goes through
    assert answers == [503, 503, 200]
    assert [e["path"] for e in api.events] == ["/videos/known", "/videos"]
    # And the hook reports its rule and every request it saw
    state = client.get(CONTROL_PATH).json
    assert state["rules"][0]["hits"] == 2 and state["rules"][0]["times"] == 0
    assert [r["fault"] for r in state["requests"]] == [1, 1, None, None]
    # And DELETE clears both
    assert client.delete(CONTROL_PATH).status_code == 204
    assert client.get(CONTROL_PATH).json == {"rules": [], "requests": []}


def test_a_drop_rule_raises_through_to_the_server_as_a_dropped_connection() -> None:
    # Given a rule with no status on part 2 of any upload
    faults = Faults()
    rule = faults.add("PUT", r"partNumber=2(&|$)", times=1)
    request = Request(
        EnvironBuilder(path="/media/uploads/v", method="PUT", query_string="partNumber=2").get_environ()
    )
    # When a matching request comes, Then the hook takes it and dropping it raises a ConnectionError
    taken = faults.take(request)
    assert taken is rule
    with pytest.raises(DroppedConnection):
        faults.fail(request, rule)
    assert isinstance(DroppedConnection("x"), ConnectionError)  # what werkzeug treats as a dropped client
    # And the rule is spent: the next one passes
    assert faults.take(request) is None
    other = Request(
        EnvironBuilder(path="/media/uploads/v", method="PUT", query_string="partNumber=12").get_environ()
    )
    faults.add("PUT", r"partNumber=2(&|$)", times=1)
    assert faults.take(other) is None
