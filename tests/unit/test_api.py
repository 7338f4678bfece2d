"""The HTTP API through the API Lambda handler, with fakes behind the composition root."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambdas.api.handler import lambda_handler
from reelay.api.app import app
from reelay.api.routes import ROUTES
from reelay.models import Rendition, Video, VideoStatus
from reelay.settings import Settings
from reelay.wiring import Services
from tests.fakes import (
    FakeIdentity,
    FakeLambdaContext,
    FakeStore,
    api_event,
    installed_services,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore:No application metrics:UserWarning"),
    pytest.mark.filterwarnings("ignore:Received multipart:UserWarning"),
]

MiB = 1024**2
ALICE = {"sub": "user-alice", "email": "alice@example.com"}
BOB = {"sub": "user-bob", "email": "bob@example.com"}


def api_settings() -> Settings:
    """The settings these tests run the API with (the fuzz test's document states their upload rules)."""
    return Settings(
        playback_base_url="https://cdn.example/outputs",
        max_upload_bytes=100 * MiB,
        multipart_threshold_bytes=10 * MiB,
        multipart_part_bytes=5 * MiB,
        stream_secret_keys="test-stream-secret-key-0123456789abcdef",
        file_store_signing_key="test-playback-signing-key-0123456789",
    )


@pytest.fixture
def settings() -> Settings:
    return api_settings()


@pytest.fixture
def services(settings: Settings):
    with installed_services(settings) as svc:
        yield svc


def call(event: dict[str, Any]) -> tuple[int, Any, dict[str, Any]]:
    response = lambda_handler(event, FakeLambdaContext())
    body = json.loads(response["body"]) if response.get("body") else None
    headers = dict(response.get("headers") or {})
    headers |= {k: ",".join(v) for k, v in (response.get("multiValueHeaders") or {}).items()}
    return response["statusCode"], body, headers


def assert_error(status: int, body: Any, expected_status: int, code: str, *words: str) -> None:
    assert status == expected_status, body
    assert set(body) == {"error", "message"}
    assert body["error"] == code
    for word in words:
        assert word in body["message"]


def upload(claims=ALICE, **overrides: Any) -> tuple[int, Any]:
    body = {"displayName": "Holiday", "contentType": "video/mp4", "sizeBytes": 1000} | overrides
    status, out, _ = call(api_event("POST", "/videos/upload", body=body, claims=claims))
    return status, out


def make_ready(services: Services, owner: dict[str, str] = ALICE, name: str = "clip") -> Video:
    """A video that went the whole way: created, uploaded, transcoded."""
    video, _ = services.videos.create_upload(owner["sub"], owner["email"], name, "", "video/mp4", 100, None)
    cat = services.catalogue
    assert cat.mark_uploaded(video.video_id, size_bytes=100, content_type="video/mp4")
    assert cat.claim(video.video_id, "w1", 60)
    rendition = Rendition(
        name="360p",
        width=640,
        height=360,
        bandwidth=800_000,
        codecs="avc1.4d401e",
        playlist="360p/index.m3u8",
    )
    assert cat.complete(video.video_id, "w1", duration_seconds=3.0, renditions=[rendition])
    return cat.get(video.video_id)


# --- the route table ------------------------------------------------------------------------------
def test_every_route_in_the_table_is_served_and_nothing_else() -> None:
    # Given the resolver's registered routes
    served = {
        (r.method, r.path.replace("<", "{").replace(">", "}"))
        for r in app._static_routes + app._dynamic_routes
    }
    # Then they are exactly the shared route table
    assert served == {(r.method, r.path) for r in ROUTES}


def test_unknown_route_is_404_and_wrong_method_405_in_the_error_shape(services: Services) -> None:
    status, body, _ = call(api_event("GET", "/nope"))
    assert_error(status, body, 404, "not_found", "/nope")
    status, body, headers = call(api_event("PUT", "/videos/abc"))
    assert_error(status, body, 405, "method_not_allowed", "PUT")
    assert headers["Allow"] == "DELETE, GET, PATCH, OPTIONS"


# --- auth ---------------------------------------------------------------------------------------------
def test_register_confirm_login_refresh(services: Services) -> None:
    identity: FakeIdentity = services.identity  # type: ignore[assignment]
    # Given a new user registers
    status, body, _ = call(
        api_event("POST", "/auth/register", body={"email": "a@x.com", "password": "secret123"})
    )
    assert status == 201
    assert body == {"userId": identity.users["a@x.com"]["sub"], "confirmationRequired": True}
    # When they log in before confirming, Then Cognito's answer comes through as 403
    status, body, _ = call(
        api_event("POST", "/auth/login", body={"email": "a@x.com", "password": "secret123"})
    )
    assert_error(status, body, 403, "user_not_confirmed")
    # When they confirm with a wrong code, Then 400 invalid_code
    status, body, _ = call(
        api_event("POST", "/auth/confirm-register", body={"email": "a@x.com", "code": "1"})
    )
    assert_error(status, body, 400, "invalid_code")
    # When they confirm with the right code and log in
    code = identity.users["a@x.com"]["code"]
    status, body, _ = call(
        api_event("POST", "/auth/confirm-register", body={"email": "a@x.com", "code": code})
    )
    assert status == 200 and "confirmed" in body["message"]
    status, tokens, _ = call(
        api_event("POST", "/auth/login", body={"email": "a@x.com", "password": "secret123"})
    )
    # Then they get tokens
    assert status == 200
    assert set(tokens) == {"idToken", "accessToken", "refreshToken", "expiresIn", "tokenType"}
    assert tokens["tokenType"] == "Bearer" and tokens["expiresIn"] == 3600
    # And the refresh token buys new tokens
    status, again, _ = call(api_event("POST", "/auth/refresh", body={"refreshToken": tokens["refreshToken"]}))
    assert status == 200 and again["idToken"].startswith("id.") and again["refreshToken"] is None


def test_identity_errors_map_to_their_4xx(services: Services) -> None:
    # Given an existing account
    call(api_event("POST", "/auth/register", body={"email": "a@x.com", "password": "secret123"}))
    cases = [
        ("/auth/register", {"email": "a@x.com", "password": "secret123"}, 409, "email_taken"),
        ("/auth/register", {"email": "b@x.com", "password": "short"}, 400, "weak_password"),
        ("/auth/login", {"email": "a@x.com", "password": "wrong-pass1"}, 401, "invalid_credentials"),
        ("/auth/resend-code", {"email": "nobody@x.com"}, 404, "user_not_found"),
        ("/auth/refresh", {"refreshToken": "forged"}, 401, "invalid_token"),
    ]
    for path, body, expected, code in cases:
        # When the call breaks an identity rule, Then the provider's code and status come back
        status, out, _ = call(api_event("POST", path, body=body))
        assert_error(status, out, expected, code)


def test_bodies_that_cannot_be_decoded_are_4xx_not_500(services: Services) -> None:
    body = '{"email": "a@x.com", "password": "secret123"}'
    # Given a base64 body that is not base64, or not UTF-8 once decoded
    for raw in ("!!!not-base64", "/w=="):
        event = api_event("POST", "/auth/register", raw_body=raw)
        event["isBase64Encoded"] = True
        status, out, _ = call(event)
        assert_error(status, out, 400, "invalid_json", "decoded")
    # Given a body that is not sent as JSON
    for content_type, raw in [
        ("text/plain", body),
        ("multipart/form-data", "garbage"),
        (
            "multipart/form-data; boundary=xx",
            '--xx\r\nContent-Disposition: form-data; name="email"\r\n\r\na@x.com\r\n--xx--',
        ),
        ("application/x-www-form-urlencoded", "email=a%40x.com&password=secret123"),
    ]:
        event = api_event("POST", "/auth/register", raw_body=raw)
        event["headers"]["Content-Type"] = content_type
        status, out, _ = call(event)
        # Then 415 says to send JSON
        assert_error(status, out, 415, "unsupported_media_type", "application/json")
    # And JSON with a charset, or with no Content-Type at all, is fine
    for headers in ({"Content-Type": "application/json; charset=utf-8"}, {}):
        event = api_event(
            "POST", "/auth/register", body={"email": f"{len(headers)}@x.com", "password": "secret123"}
        )
        event["headers"] = headers
        assert call(event)[0] == 201


def test_resend_code_for_a_known_user(services: Services) -> None:
    call(api_event("POST", "/auth/register", body={"email": "a@x.com", "password": "secret123"}))
    status, body, _ = call(api_event("POST", "/auth/resend-code", body={"email": "a@x.com"}))
    assert status == 200 and body["message"]
    assert len(services.identity.codes_sent) == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("path", "raw", "code", "words"),
    [
        ("/auth/register", "{not json", "invalid_json", ["JSON"]),
        ("/auth/login", "", "invalid_input", ["required"]),
        ("/auth/register", "[1, 2]", "invalid_input", []),
        ("/auth/register", '{"email": "a@x.com"}', "invalid_input", ["password is required"]),
        ("/auth/register", '{"email": "not-an-email", "password": "secret123"}', "invalid_input", ["email"]),
        ("/auth/register", '{"email": "a@x.com", "password": 12345678}', "invalid_input", ["password"]),
        (
            "/auth/register",
            '{"email": "a@x.com", "password": "p1", "admin": true}',
            "invalid_input",
            ["admin"],
        ),
        (
            "/auth/register",
            json.dumps({"email": "a@x.com", "password": "x" * 257}),
            "invalid_input",
            ["password"],
        ),
        ("/auth/confirm-register", '{"email": "a@x.com", "code": ""}', "invalid_input", ["code"]),
        ("/auth/refresh", '{"refresh_token": "t"}', "invalid_input", ["refreshToken is required"]),
    ],
)
def test_bad_auth_bodies_are_400_naming_the_field(services: Services, path, raw, code, words) -> None:
    # When the body is garbage, the wrong type, or carries extra fields
    status, body, _ = call(api_event("POST", path, raw_body=raw))
    # Then 400 with a message that says what is wrong, and the identity provider is never asked
    assert_error(status, body, 400, code, *words)
    assert services.identity.users == {}  # type: ignore[attr-defined]


# --- upload -------------------------------------------------------------------------------------------
def test_small_upload_gets_one_presigned_put(services: Services, settings: Settings) -> None:
    # When Alice asks to upload a small file
    status, body = upload(description="at the beach")
    # Then a video row awaits the upload and she gets one PUT URL with the content type to send
    assert status == 201
    video_id = body["videoId"]
    assert body["upload"]["method"] == "PUT"
    assert body["upload"]["headers"] == {"Content-Type": "video/mp4", "If-None-Match": "*"}
    assert body["upload"]["expiresIn"] == settings.upload_url_expires_seconds
    assert f"uploads/{video_id}" in body["upload"]["url"]
    # And the URL is bound to the declared size
    assert body["upload"]["url"].endswith("&len=1000&create-only")
    assert body["multipart"] is None
    assert body["limits"] == {
        "maxBytes": 100 * MiB,
        "allowedContentTypes": list(settings.allowed_content_types),
    }
    video = body["video"]
    assert video["status"] == "awaiting_upload" and video["email"] == "alice@example.com"
    assert video["description"] == "at the beach" and video["playbackUrl"] is None
    stored = services.catalogue.get(video_id)
    assert stored.owner_id == "user-alice" and stored.video_key == f"uploads/{video_id}"


def test_large_upload_gets_multipart_part_urls(services: Services) -> None:
    # When the file is over the multipart threshold
    status, body = upload(sizeBytes=23 * MiB)
    # Then it is split in 5 MiB parts (5 of them), each with its own URL, and a path to complete it
    assert status == 201
    multipart = body["multipart"]
    assert body["upload"] is None
    assert multipart["partSizeBytes"] == 5 * MiB
    assert [p["partNumber"] for p in multipart["parts"]] == [1, 2, 3, 4, 5]
    # Relative to the API base URL with its stage: no leading slash, which would drop the stage
    assert multipart["completePath"] == f"videos/{body['videoId']}/upload/complete"
    assert multipart["uploadId"] in services.store.multipart  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"contentType": "application/pdf"}, ["application/pdf", "video/mp4"]),
        ({"sizeBytes": 0}, ["sizeBytes", str(100 * MiB)]),
        ({"sizeBytes": -5}, ["sizeBytes"]),
        ({"sizeBytes": 100 * MiB + 1}, ["limit", str(100 * MiB)]),
        ({"sizeBytes": "lots"}, ["sizeBytes"]),
        ({"sizeBytes": 1.5}, ["sizeBytes"]),
        ({"sizeBytes": True}, ["sizeBytes"]),
        ({"sizeBytes": "1000"}, ["sizeBytes"]),
        ({"sizeBytes": 1e30}, ["sizeBytes"]),
        ({"displayName": ""}, ["displayName"]),
        ({"displayName": "   "}, ["displayName"]),
        ({"displayName": "x" * 201}, ["displayName"]),
        ({"description": "x" * 5001}, ["description"]),
        ({"ownerId": "user-bob"}, ["ownerId"]),
    ],
)
def test_bad_uploads_are_rejected_before_anything_is_stored(services: Services, overrides, words) -> None:
    # When the upload request breaks a limit
    status, body = upload(**overrides)
    # Then 400 naming the field or limit, and no video row exists
    assert_error(status, body, 400, "invalid_input", *words)
    assert services.catalogue.list_by_owner("user-alice", limit=10).items == []


def test_upload_without_a_signed_in_caller_is_401(services: Services) -> None:
    status, body = upload(claims=None)
    assert_error(status, body, 401, "unauthorized")
    status, body = upload(claims={"email": "no-sub@example.com"})
    assert_error(status, body, 401, "unauthorized")
    # An access token's claims have no email, which the catalogue records for every upload
    status, body = upload(claims={"sub": "user-alice", "token_use": "access"})
    assert_error(status, body, 401, "unauthorized", "ID token")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/videos/upload", {"displayName": "a", "contentType": "video/mp4", "sizeBytes": 1}),
        ("POST", "/videos/abc/upload/complete", {"uploadId": "u", "parts": [{"partNumber": 1, "etag": "e"}]}),
        ("POST", "/videos/metadata", {"videoId": "abc", "displayName": "x"}),
        ("PATCH", "/videos/abc", {"displayName": "x"}),
        ("DELETE", "/videos/abc", None),
        ("GET", "/me/videos", None),
    ],
)
def test_every_auth_route_without_claims_is_401(services: Services, method, path, body) -> None:
    status, out, _ = call(api_event(method, path, body=body))
    assert_error(status, out, 401, "unauthorized")


def test_complete_multipart_upload(services: Services) -> None:
    # Given a multipart upload in progress
    _, body = upload(sizeBytes=12 * MiB)
    video_id, upload_id = body["videoId"], body["multipart"]["uploadId"]
    parts = [{"partNumber": 2, "etag": "b"}, {"partNumber": 1, "etag": "a"}, {"partNumber": 3, "etag": "c"}]
    path = f"/videos/{video_id}/upload/complete"
    # When Bob tries to complete it, Then 403
    status, out, _ = call(api_event("POST", path, body={"uploadId": upload_id, "parts": parts}, claims=BOB))
    assert_error(status, out, 403, "forbidden")
    # When Alice sends a wrong upload id, Then 400 from the store
    status, out, _ = call(api_event("POST", path, body={"uploadId": "nope", "parts": parts}, claims=ALICE))
    assert_error(status, out, 400, "invalid_input", "uploadId")
    # When Alice sends repeated part numbers, Then 400
    twice = [{"partNumber": 1, "etag": "a"}, {"partNumber": 1, "etag": "b"}]
    status, out, _ = call(api_event("POST", path, body={"uploadId": upload_id, "parts": twice}, claims=ALICE))
    assert_error(status, out, 400, "invalid_input", "partNumber")
    # When Alice completes it properly
    status, out, _ = call(api_event("POST", path, body={"uploadId": upload_id, "parts": parts}, claims=ALICE))
    # Then the store assembled the object from the parts in order
    assert status == 200 and out["videoId"] == video_id and out["email"] == "alice@example.com"
    assert services.store.get_bytes(f"uploads/{video_id}") == b"1:a;2:b;3:c;"


def test_complete_answers_with_the_status_after_completion(services: Services) -> None:
    # Given a store that reports the completed object at once (as the local file store does)
    class NotifyingStore(FakeStore):
        def complete_multipart(self, key, upload_id, parts) -> None:
            super().complete_multipart(key, upload_id, parts)
            services.catalogue.mark_uploaded(key.rsplit("/", 1)[1], size_bytes=12 * MiB, content_type=None)

    services.__dict__["store"] = NotifyingStore()
    services.__dict__.pop("videos", None)
    _, body = upload(sizeBytes=12 * MiB)
    parts = [{"partNumber": 1, "etag": "a"}]
    path = body["multipart"]["completePath"]
    # When Alice completes it at the path she was given
    status, out, _ = call(
        api_event(
            "POST", f"/{path}", body={"uploadId": body["multipart"]["uploadId"], "parts": parts}, claims=ALICE
        )
    )
    # Then the answer shows the video queued, not the awaiting_upload it was before completing
    assert status == 200 and out["status"] == "queued"


def test_the_openapi_document_says_complete_path_is_relative_to_the_stage(services: Services) -> None:
    _, doc, _ = call(api_event("GET", "/openapi.json"))
    described = doc["components"]["schemas"]["MultipartUploadOut"]["properties"]["completePath"]
    assert "relative to the API base URL including its stage" in described["description"]
    assert not described["examples"][0].startswith("/")


@pytest.mark.parametrize(
    "body",
    [
        {"uploadId": "u", "parts": []},
        {"uploadId": "u", "parts": [{"partNumber": 0, "etag": "e"}]},
        {"uploadId": "u", "parts": [{"partNumber": 10001, "etag": "e"}]},
        {"uploadId": "u", "parts": [{"partNumber": 1}]},
        {"uploadId": "", "parts": [{"partNumber": 1, "etag": "e"}]},
        {"parts": [{"partNumber": 1, "etag": "e"}]},
    ],
)
def test_bad_complete_bodies_are_400(services: Services, body) -> None:
    _, created = upload(sizeBytes=12 * MiB)
    path = f"/videos/{created['videoId']}/upload/complete"
    status, out, _ = call(api_event("POST", path, body=body, claims=ALICE))
    assert_error(status, out, 400, "invalid_input")


def test_complete_after_the_upload_already_landed_is_409(services: Services) -> None:
    _, created = upload(sizeBytes=12 * MiB)
    video_id = created["videoId"]
    services.catalogue.mark_uploaded(video_id, size_bytes=12 * MiB, content_type="video/mp4")
    body = {"uploadId": created["multipart"]["uploadId"], "parts": [{"partNumber": 1, "etag": "e"}]}
    status, out, _ = call(api_event("POST", f"/videos/{video_id}/upload/complete", body=body, claims=ALICE))
    assert_error(status, out, 409, "conflict", "queued")


# --- reading ------------------------------------------------------------------------------------------
def test_get_video_public_view_with_playback_urls(services: Services) -> None:
    # Given a ready video and one still awaiting its upload
    ready = make_ready(services)
    _, pending = upload()
    # When anyone fetches the ready one
    status, body, _ = call(api_event("GET", f"/videos/{ready.video_id}"))
    # Then it plays from the CDN master playlist, with a poster, and the owner's email is not shown
    assert status == 200
    assert body["playbackUrl"] == f"https://cdn.example/outputs/{ready.video_id}/master.m3u8"
    assert body["thumbnailUrl"] == f"https://cdn.example/outputs/{ready.video_id}/poster.jpg"
    assert body["status"] == "ready" and body["isTranscoded"] is True and body["durationSeconds"] == 3.0
    assert body["renditions"] == [
        {"name": "360p", "width": 640, "height": 360, "bandwidth": 800000, "codecs": "avc1.4d401e"}
    ]
    assert "email" not in body
    # And the pending one is not there for anyone but its owner, who sees it without playback yet
    status, body, _ = call(api_event("GET", f"/videos/{pending['videoId']}"))
    assert_error(status, body, 404, "not_found", pending["videoId"])
    status, body, _ = call(api_event("GET", f"/me/videos/{pending['videoId']}", claims=ALICE))
    assert status == 200 and body["playbackUrl"] is None and body["thumbnailUrl"] is None
    assert body["status"] == "awaiting_upload" and body["visibility"] == "public"


def test_get_unknown_video_is_404(services: Services) -> None:
    status, body, _ = call(api_event("GET", "/videos/does-not-exist"))
    assert_error(status, body, 404, "not_found", "does-not-exist")
    status, body, _ = call(api_event("GET", f"/videos/{'x' * 65}"))
    assert_error(status, body, 400, "invalid_input", "videoId")


def test_listing_pages_through_ready_videos_only_in_a_stable_order(services: Services) -> None:
    # Given five ready videos and one still uploading
    ready = [make_ready(services, name=f"v{i}") for i in range(5)]
    upload()
    # When a client follows nextCursor two at a time
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        status, body, _ = call(api_event("GET", "/videos", query=query))
        assert status == 200
        pages += 1
        seen += [v["videoId"] for v in body["items"]]
        assert all("email" not in v for v in body["items"])
        cursor = body["nextCursor"]
        if cursor is None:
            break
    # Then it sees every ready video exactly once, newest first, in three pages
    expected = [v.video_id for v in sorted(ready, key=lambda v: (v.upload_time, v.video_id), reverse=True)]
    assert seen == expected and pages == 3
    # And the default page holds them all
    status, body, _ = call(api_event("GET", "/videos"))
    assert [v["videoId"] for v in body["items"]] == expected and body["nextCursor"] is None


@pytest.mark.parametrize(
    ("query", "code", "words"),
    [
        ({"limit": "0"}, "invalid_input", ["limit"]),
        ({"limit": "101"}, "invalid_input", ["limit"]),
        ({"limit": "ten"}, "invalid_input", ["limit"]),
        ({"cursor": "not-a-cursor"}, "invalid_input", ["cursor"]),
        ({"cursor": "x" * 600}, "invalid_input", ["cursor"]),
    ],
)
def test_bad_list_queries_are_400(services: Services, query, code, words) -> None:
    for path, claims in (("/videos", None), ("/me/videos", ALICE)):
        status, body, _ = call(api_event("GET", path, query=query, claims=claims))
        assert_error(status, body, 400, code, *words)


def test_my_videos_lists_every_status_with_my_email_and_nobody_elses(services: Services) -> None:
    # Given Alice has a ready and a pending video, and Bob has one
    ready = make_ready(services)
    _, pending = upload()
    make_ready(services, owner=BOB)
    # When Alice lists her videos
    status, body, _ = call(api_event("GET", "/me/videos", claims=ALICE))
    # Then she sees both of hers, with her email, and not Bob's
    assert status == 200
    assert {v["videoId"] for v in body["items"]} == {ready.video_id, pending["videoId"]}
    assert {v["email"] for v in body["items"]} == {"alice@example.com"}


# --- changing -------------------------------------------------------------------------------------
def test_patch_and_metadata_update_only_the_owners_video(services: Services) -> None:
    video = make_ready(services)
    # When Alice renames her video
    status, body, _ = call(
        api_event("PATCH", f"/videos/{video.video_id}", body={"displayName": "  New name "}, claims=ALICE)
    )
    # Then the new name is stored (trimmed) and the description is untouched
    assert status == 200 and body["displayName"] == "New name" and body["description"] == ""
    # When she sets the description through POST /videos/metadata
    status, body, _ = call(
        api_event(
            "POST", "/videos/metadata", body={"videoId": video.video_id, "description": "d"}, claims=ALICE
        )
    )
    assert status == 200 and body["description"] == "d" and body["displayName"] == "New name"
    assert services.catalogue.get(video.video_id).description == "d"
    # When Bob tries either, Then 403 and nothing changes
    status, out, _ = call(
        api_event("PATCH", f"/videos/{video.video_id}", body={"displayName": "x"}, claims=BOB)
    )
    assert_error(status, out, 403, "forbidden")
    body = {"videoId": video.video_id, "displayName": "x"}
    status, out, _ = call(api_event("POST", "/videos/metadata", body=body, claims=BOB))
    assert_error(status, out, 403, "forbidden")
    assert services.catalogue.get(video.video_id).display_name == "New name"


@pytest.mark.parametrize(
    ("method", "path", "body", "expected", "code"),
    [
        ("PATCH", "/videos/unknown", {"displayName": "x"}, 404, "not_found"),
        ("POST", "/videos/metadata", {"videoId": "unknown", "displayName": "x"}, 404, "not_found"),
        ("PATCH", "/videos/{id}", {}, 400, "invalid_input"),
        ("PATCH", "/videos/{id}", {"displayName": ""}, 400, "invalid_input"),
        ("PATCH", "/videos/{id}", {"displayName": 7}, 400, "invalid_input"),
        ("PATCH", "/videos/{id}", {"status": "ready"}, 400, "invalid_input"),
        ("POST", "/videos/metadata", {"displayName": "x"}, 400, "invalid_input"),
        ("POST", "/videos/metadata", {"videoId": "{id}"}, 400, "invalid_input"),
        ("POST", "/videos/metadata", {"videoId": "{id}", "description": "x" * 5001}, 400, "invalid_input"),
    ],
)
def test_bad_metadata_changes(services: Services, method, path, body, expected, code) -> None:
    video = make_ready(services)
    path = path.replace("{id}", video.video_id)
    body = {k: (v.replace("{id}", video.video_id) if isinstance(v, str) else v) for k, v in body.items()}
    status, out, _ = call(api_event(method, path, body=body, claims=ALICE))
    assert_error(status, out, expected, code)
    assert services.catalogue.get(video.video_id).display_name == "clip"


def test_delete_removes_the_row_the_upload_and_every_output(services: Services) -> None:
    # Given a ready video with its upload and HLS outputs, and another video's outputs nearby
    video = make_ready(services)
    other = make_ready(services, name="other")
    store: FakeStore = services.store  # type: ignore[assignment]
    store.put_bytes(video.video_key, b"source")
    for key in ("master.m3u8", "poster.jpg", "360p/index.m3u8", "360p/seg0.ts"):
        store.put_bytes(f"outputs/{video.video_id}/{key}", b"x")
    store.put_bytes(f"outputs/{other.video_id}/master.m3u8", b"x")
    # When Bob tries to delete it, Then 403 and nothing is removed
    status, out, _ = call(api_event("DELETE", f"/videos/{video.video_id}", claims=BOB))
    assert_error(status, out, 403, "forbidden")
    assert len(store.objects) == 6
    # When Alice deletes it
    status, out, _ = call(api_event("DELETE", f"/videos/{video.video_id}", claims=ALICE))
    # Then 204, the video is gone, and only the other video's media remains
    assert status == 204 and out is None
    assert list(store.objects) == [f"outputs/{other.video_id}/master.m3u8"]
    status, out, _ = call(api_event("GET", f"/videos/{video.video_id}"))
    assert_error(status, out, 404, "not_found")
    # And deleting again is a clean 404
    status, out, _ = call(api_event("DELETE", f"/videos/{video.video_id}", claims=ALICE))
    assert_error(status, out, 404, "not_found")


def test_delete_of_a_video_whose_media_never_arrived(services: Services) -> None:
    _, created = upload()
    status, _, _ = call(api_event("DELETE", f"/videos/{created['videoId']}", claims=ALICE))
    assert status == 204


# --- failures and the document --------------------------------------------------------------------
class ExplodingStore(FakeStore):
    def presign_put(self, key: str, *, content_type: str, expires_in: int) -> str:
        raise RuntimeError("secret internal detail")


def test_an_unexpected_failure_is_a_generic_500_without_internals(services: Services) -> None:
    services.__dict__["store"] = ExplodingStore()
    services.__dict__.pop("videos", None)
    status, body = upload()
    assert_error(status, body, 500, "internal_error")
    assert "secret" not in body["message"] and "Traceback" not in body["message"]
    # And no half-made video is left behind
    assert services.catalogue.list_by_owner("user-alice", limit=10).items == []


def test_cors_headers_are_on_answers_and_preflight_is_answered(services: Services) -> None:
    _, _, headers = call(api_event("GET", "/videos"))
    assert headers.get("Access-Control-Allow-Origin") == "*"
    assert headers["Content-Type"] == "application/json"
    status, _, headers = call(api_event("OPTIONS", "/videos/upload"))
    assert status == 204 and "Authorization" in headers["Access-Control-Allow-Headers"]


def test_openapi_document_lists_every_route_schema_and_security(services: Services) -> None:
    # When the document is fetched
    status, doc, _ = call(api_event("GET", "/openapi.json"))
    assert status == 200 and doc["openapi"].startswith("3.1")
    # Then every route is in it
    for r in ROUTES:
        operation = doc["paths"][r.path][r.method.lower()]
        assert operation["summary"] == r.summary
        # And auth routes declare the Cognito bearer scheme
        assert ("security" in operation) == r.auth, r
    assert doc["components"]["securitySchemes"]["CognitoBearer"]["scheme"] == "bearer"
    # And the error shape is documented on the failures a route can answer with
    delete = doc["paths"]["/videos/{videoId}"]["delete"]["responses"]
    assert {"400", "401", "403", "404", "500"} <= set(delete)
    assert delete["403"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut")
    assert "204" in delete and "201" in doc["paths"]["/videos/upload"]["post"]["responses"]
    # And no route claims Powertools' 422: validation failures answer 400
    assert all("422" not in op["responses"] for ops in doc["paths"].values() for op in ops.values())
    # And the request schemas come from the same models that validate, camelCase on the wire
    schemas = doc["components"]["schemas"]
    assert set(schemas["UploadIn"]["properties"]) == {
        "displayName",
        "description",
        "contentType",
        "sizeBytes",
        "fileName",
        "visibility",
    }
    assert schemas["UploadIn"]["additionalProperties"] is False
    # And the visibility says its default, public, and what each value means
    visibility = schemas["UploadIn"]["properties"]["visibility"]
    assert visibility["default"] == "public" and "unlisted" in visibility["description"]
    assert schemas["RegisterIn"]["properties"]["email"]["format"] == "email"
    assert {"CompleteUploadIn", "MetadataIn", "PatchVideoIn", "LoginIn", "RefreshIn"} <= set(schemas)


def test_playable_video_has_playback_before_it_is_ready(services: Services) -> None:
    # Given a video still processing whose first segments are published
    _, created = upload()
    video_id = created["videoId"]
    cat = services.catalogue
    cat.mark_uploaded(video_id, size_bytes=1000, content_type="video/mp4")
    cat.claim(video_id, "w1", 60)
    cat.heartbeat(video_id, "w1", lease_seconds=60, progress=30, playable=True)
    # When its owner fetches it, Then the master playlist is offered but no poster yet
    _, body, _ = call(api_event("GET", f"/me/videos/{video_id}", claims=ALICE))
    assert body["status"] == VideoStatus.PROCESSING and body["progress"] == 30
    assert body["playbackUrl"].endswith(f"/{video_id}/master.m3u8") and body["thumbnailUrl"] is None


def test_timestamps_are_utc_on_the_wire() -> None:
    # Given a video in the catalogue, When a client reads it, Then its times say UTC explicitly (RFC 3339 'Z')
    from reelay.api.models import VideoOut
    from reelay.models import Video

    video = Video(video_id="v1", video_key="uploads/v1", display_name="d", owner_id="o", email="o@x.io")
    body = VideoOut.of(video, playback_url=None, thumbnail_url=None).model_dump(mode="json", by_alias=True)
    for field in ("uploadTime", "createdAt", "updatedAt"):
        assert body[field].endswith("Z"), body[field]
        assert body[field][:19] == video.upload_time.isoformat()[:19] or field != "uploadTime"


@pytest.mark.parametrize(
    "content_type", ["Application/JSON", "APPLICATION/JSON; charset=UTF-8", "application/json;charset=utf-8"]
)
def test_the_json_media_type_is_case_insensitive(services: Services, content_type: str) -> None:
    # Given a client that spells the media type its own way (RFC 9110: media types are case-insensitive)
    body = {"displayName": "Holiday", "contentType": "video/mp4", "sizeBytes": 1000}
    event = api_event("POST", "/videos/upload", body=body, claims=ALICE)
    event["headers"]["Content-Type"] = content_type
    # When it uploads, Then the body is read as JSON
    status, body, _ = call(event)
    assert status == 201, body


def test_a_body_that_is_really_not_json_is_still_415(services: Services) -> None:
    event = api_event("POST", "/videos/upload", raw_body="displayName=Holiday", claims=ALICE)
    event["headers"]["Content-Type"] = "Application/X-WWW-Form-Urlencoded"
    status, body, _ = call(event)
    assert_error(status, body, 415, "unsupported_media_type", "application/json")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"displayName": "Holi\x00day"}, "displayName"),
        ({"displayName": "\x1b[31mred\x1b[0m"}, "displayName"),
        ({"displayName": "two\nlines"}, "displayName"),
        ({"displayName": "c1\x85mid"}, "displayName"),
        ({"fileName": "clip\r\n.mp4"}, "fileName"),
        ({"description": "nul\x00"}, "description"),
        ({"description": "bell\x07"}, "description"),
    ],
)
def test_control_characters_in_text_fields_are_refused(services: Services, overrides, field) -> None:
    status, body = upload(**overrides)
    assert_error(status, body, 400, "invalid_input", field, "control characters")
    assert services.catalogue.list_by_owner(ALICE["sub"], limit=10).items == []


def test_descriptions_keep_line_breaks_and_tabs(services: Services) -> None:
    status, body = upload(description="line one\nline two\r\n\tindented")
    assert status == 201, body
    video = services.catalogue.get(body["videoId"])
    assert video.description == "line one\nline two\r\n\tindented"


def test_renaming_to_a_name_with_control_characters_is_refused(services: Services) -> None:
    video = make_ready(services)
    event = api_event("PATCH", f"/videos/{video.video_id}", body={"displayName": "bad\x00"}, claims=ALICE)
    status, body, _ = call(event)
    assert_error(status, body, 400, "invalid_input", "displayName", "control characters")
    assert services.catalogue.get(video.video_id).display_name == video.display_name
