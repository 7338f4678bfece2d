"""Bad requests get clear 4xx JSON errors from the gateway and the API, never a 5xx."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
import requests

from tests.e2e.conftest import PASSWORD, Api, PlatformProcess, new_email

pytestmark = [pytest.mark.mysql]


def assert_error(r: requests.Response, status: int, code: str | None = None) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "message"}, body
    assert body["message"]
    if code:
        assert body["error"] == code, body


def test_missing_or_invalid_token_is_401(platform: PlatformProcess) -> None:
    api = Api(platform)
    body = {"displayName": "x", "contentType": "video/mp4", "sizeBytes": 10}
    # Given no token, malformed ones, an HMAC forgery, and a real token with an edited payload
    forged = jwt.encode({"sub": "x", "token_use": "id", "exp": time.time() + 60}, "s" * 32, algorithm="HS256")
    real = api.sign_up(new_email())
    claims = jwt.decode(real, options={"verify_signature": False})
    confused = jwt.encode(
        {**claims, "sub": "someone-else"}, "x" * 32, algorithm="HS256", headers={"kid": "dummy"}
    )
    header, _, signature = real.split(".")
    edited = base64.urlsafe_b64encode(json.dumps({**claims, "sub": "someone-else"}).encode()).rstrip(b"=")
    tampered = f"{header}.{edited.decode()}.{signature}"
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": f"Bearer {forged}"},
        {"Authorization": f"Bearer {confused}"},
        {"Authorization": f"Bearer {tampered}"},
        {"Authorization": f"Bearer {real}x"},
    ):
        # When they call an authenticated route, Then it is 401 with the error shape
        r = api.call("POST", "/videos/upload", json=body, headers=headers)
        assert_error(r, 401, "unauthorized")
    # And the same caller with the real token gets through
    assert api.call("GET", "/me/videos", token=real).status_code == 200


def test_access_token_is_refused_as_api_gateway_does(platform: PlatformProcess) -> None:
    # Given a user's access token (not the ID token)
    api = Api(platform)
    email = new_email()
    api.sign_up(email)
    tokens = api.call("POST", "/auth/login", json={"email": email, "password": PASSWORD}).json()
    # When they list their videos with it, Then 401 telling them to send the ID token
    # (API Gateway's Cognito authorizer without OAuth scopes accepts ID tokens only)
    r = api.call("GET", "/me/videos", token=tokens["accessToken"])
    assert_error(r, 401, "unauthorized")
    assert "ID token" in r.json()["message"]
    # And the ID token from the same login gets through
    assert api.call("GET", "/me/videos", token=tokens["idToken"]).status_code == 200


def test_garbage_bodies_are_400(platform: PlatformProcess) -> None:
    api = Api(platform)
    token = api.sign_up(new_email())
    # Given bodies that are not JSON, JSON of the wrong shape, or binary junk
    for data in (b"{not json", b"[1,2,3]", b'{"displayName": 5}', bytes(range(256)), b""):
        # When posted to an authenticated route, Then 400 with {"error","message"}
        r = api.call(
            "POST", "/videos/upload", token=token, data=data, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 400, (data, r.text)
        assert set(r.json()) == {"error", "message"}
    r = api.call("POST", "/auth/register", data=b"\xff\xfe", headers={"Content-Type": "application/json"})
    assert_error(r, 400)


def test_oversized_body_is_413(platform: PlatformProcess) -> None:
    # Given a body over the gateway's limit, Then 413 before the API runs
    r = Api(platform).call("POST", "/auth/login", data=b"x" * (1024 * 1024 + 1))
    assert_error(r, 413, "payload_too_large")


def test_unknown_routes_and_methods(platform: PlatformProcess) -> None:
    api = Api(platform)
    assert_error(api.call("GET", "/nope"), 404, "not_found")
    refused = api.call("PUT", "/videos")
    assert_error(refused, 405, "method_not_allowed")
    assert refused.headers["Allow"] == "GET, OPTIONS"  # what /videos does serve (RFC 9110 15.5.6)
    assert_error(api.call("GET", "/videos/a/b/c"), 404, "not_found")


def test_cors_preflight(platform: PlatformProcess) -> None:
    # Given a browser preflight for an authenticated route
    r = Api(platform).call(
        "OPTIONS",
        "/videos/upload",
        headers={
            "Origin": "http://example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    # Then it is allowed without a token
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    # And normal responses carry CORS headers too
    assert Api(platform).call("GET", "/videos").headers["Access-Control-Allow-Origin"] == "*"


def test_sign_up_failures(platform: PlatformProcess) -> None:
    api = Api(platform)
    email = new_email()
    # Given passwords that break the pool's policy (length, symbol, digit, case), Then 400 weak_password
    for weak in ("Sh0rt-pw", "NoSymbols1234", "No-Digits-Here", "all-lower-1234"):
        r = api.call("POST", "/auth/register", json={"email": email, "password": weak})
        assert_error(r, 400, "weak_password")
    # Given a registered but unconfirmed user
    mark = len(platform.lines)
    r = api.call("POST", "/auth/register", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text
    code = platform.code_for(email, after=mark)
    # When they log in before confirming, Then 403 user_not_confirmed
    r = api.call("POST", "/auth/login", json={"email": email, "password": PASSWORD})
    assert_error(r, 403, "user_not_confirmed")
    # But with a wrong password, 401: "not confirmed" is only for whoever knows the password
    r = api.call("POST", "/auth/login", json={"email": email, "password": "Wr0ng-Password-1"})
    assert_error(r, 401, "invalid_credentials")
    # When they confirm with a wrong code, Then 400 invalid_code and they are still unconfirmed
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    r = api.call("POST", "/auth/confirm-register", json={"email": email, "code": wrong})
    assert_error(r, 400, "invalid_code")
    assert api.call("POST", "/auth/login", json={"email": email, "password": PASSWORD}).status_code == 403
    # When the same email registers again, Then 409
    r = api.call("POST", "/auth/register", json={"email": email, "password": PASSWORD})
    assert r.status_code == 409, r.text
    # When they ask for a new code, the old one stops working and the new one confirms
    mark = len(platform.lines)
    assert api.call("POST", "/auth/resend-code", json={"email": email}).status_code == 200
    new_code = platform.code_for(email, after=mark)
    if new_code != code:
        r = api.call("POST", "/auth/confirm-register", json={"email": email, "code": code})
        assert_error(r, 400, "invalid_code")
    r = api.call("POST", "/auth/confirm-register", json={"email": email, "code": new_code})
    assert r.status_code == 200, r.text
    # And a second confirmation is a clear 409
    r = api.call("POST", "/auth/confirm-register", json={"email": email, "code": new_code})
    assert_error(r, 409, "already_confirmed")
    # And unknown emails are not revealed (the app client prevents user existence errors):
    # resend answers as if a code was sent, and confirm says the code is wrong
    stranger = new_email()
    mark = len(platform.lines)
    r = api.call("POST", "/auth/resend-code", json={"email": stranger})
    assert r.status_code == 200, r.text
    assert not [line for line in platform.lines[mark:] if f"confirmation code for {stranger}" in line]
    r = api.call("POST", "/auth/confirm-register", json={"email": stranger, "code": "123456"})
    assert_error(r, 400, "invalid_code")
    # Then they can log in, and a wrong password is refused without a 5xx
    assert api.login(email)
    r = api.call("POST", "/auth/login", json={"email": email, "password": "Wr0ngPassword"})
    assert r.status_code in (400, 401), r.text


def test_other_users_cannot_touch_a_video(platform: PlatformProcess) -> None:
    # Given Alice's video (still awaiting its upload) and Bob, another user
    api = Api(platform)
    alice = api.sign_up(new_email())
    bob = api.sign_up(new_email())
    video_id = api.start_upload(alice, "mine", 1000)["videoId"]
    # When Bob tries to rename, patch or delete it, Then each is 403 and nothing changed
    r = api.call("POST", "/videos/metadata", token=bob, json={"videoId": video_id, "displayName": "stolen"})
    assert_error(r, 403)
    assert_error(api.call("PATCH", f"/videos/{video_id}", token=bob, json={"displayName": "stolen"}), 403)
    assert_error(api.call("DELETE", f"/videos/{video_id}", token=bob), 403)
    mine = api.call("GET", "/me/videos", token=alice).json()["items"]
    assert [v["displayName"] for v in mine if v["videoId"] == video_id] == ["mine"]
    # And an unknown video is 404 for everyone
    assert_error(api.call("DELETE", "/videos/does-not-exist", token=bob), 404)


def test_upload_rejects_bad_declarations(platform: PlatformProcess) -> None:
    api = Api(platform)
    token = api.sign_up(new_email())
    for body in (
        {"displayName": "x", "contentType": "text/plain", "sizeBytes": 10},
        {"displayName": "x", "contentType": "video/mp4", "sizeBytes": -1},
        {"displayName": "", "contentType": "video/mp4", "sizeBytes": 10},
        {"displayName": "x", "contentType": "video/mp4", "sizeBytes": 10, "extra": 1},
    ):
        r = api.call("POST", "/videos/upload", token=token, json=body)
        assert r.status_code in (400, 413), (body, r.text)
        assert set(r.json()) == {"error", "message"}


def test_concurrent_callers_never_see_each_others_identity(platform: PlatformProcess) -> None:
    from concurrent.futures import ThreadPoolExecutor

    # Given two users, each with one video of their own
    api = Api(platform)
    users = []
    for name in ("first", "second"):
        token = api.sign_up(new_email())
        api.start_upload(token, name, 1000)
        users.append((name, token))

    def mine(user: tuple[str, str]) -> list[str]:
        return [v["displayName"] for v in api.call("GET", "/me/videos", token=user[1]).json()["items"]]

    # When both list their own videos many times at once through the threaded gateway
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: (users[i % 2][0], mine(users[i % 2])), range(60)))
    # Then every answer belongs to the caller who asked
    assert all(names == [who] for who, names in results), [r for r in results if r[1] != [r[0]]][:3]
