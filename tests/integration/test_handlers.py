"""The API and upload-event Lambdas end to end over the real adapters.

moto's server stands in for Cognito, S3 and SQS (a real HTTP endpoint, so presigned URLs are really
PUT to), and the catalogue is the real MariaDB. Nothing here is faked above the AWS APIs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import jwt
import pytest
import requests

from lambdas.api.handler import lambda_handler as api_handler
from lambdas.upload_events.handler import lambda_handler as upload_events_handler
from reelay.catalogue import ConnectionProvider, migrate
from reelay.models import VideoStatus
from reelay.settings import Settings
from reelay.wiring import Services, set_services
from tests.fakes import FakeLambdaContext, api_event, s3_event

pytestmark = [pytest.mark.mysql, pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")]

REGION = "us-east-1"
PASSWORD = "Corr3ct-Horse-battery"


@pytest.fixture(scope="module")
def aws(moto_url: str) -> dict[str, Any]:
    """A user pool with a USER_PASSWORD_AUTH client, a media bucket and a transcode queue."""
    kw = {"endpoint_url": moto_url, "region_name": REGION}
    idp = boto3.client("cognito-idp", **kw)
    pool = idp.create_user_pool(
        PoolName=f"reelay-{uuid.uuid4().hex[:6]}",
        AutoVerifiedAttributes=["email"],
        UsernameAttributes=["email"],
        Policies={"PasswordPolicy": {"MinimumLength": 8, "RequireNumbers": True}},
    )["UserPool"]
    app_client = idp.create_user_pool_client(
        UserPoolId=pool["Id"],
        ClientName="web",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]
    bucket = f"media-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", **kw).create_bucket(Bucket=bucket)
    queue_url = boto3.client("sqs", **kw).create_queue(QueueName=f"transcode-{uuid.uuid4().hex[:6]}")[
        "QueueUrl"
    ]
    return {
        "pool_id": pool["Id"],
        "client_id": app_client["ClientId"],
        "bucket": bucket,
        "queue_url": queue_url,
    }


@pytest.fixture(scope="module")
def settings(moto_url: str, aws: dict[str, Any], database_url: str) -> Settings:
    return Settings(
        media_store_url=f"s3://{REGION}/{aws['bucket']}",
        aws_endpoint_url=moto_url,
        user_pool_id=aws["pool_id"],
        user_pool_client_id=aws["client_id"],
        transcode_queue_url=aws["queue_url"],
        events_topic_arn=None,
        database_url=database_url,
        playback_base_url="https://d123.cloudfront.net",
        multipart_threshold_bytes=6 * 1024**2,
        multipart_part_bytes=5 * 1024**2,
        max_upload_bytes=50 * 1024**2,
    )


@pytest.fixture(scope="module")
def services(settings: Settings) -> Iterator[Services]:
    migrate(ConnectionProvider.from_settings(settings))
    svc = Services(settings)  # the real composition root: MySQL, S3, SQS, Cognito
    set_services(svc)
    yield svc
    set_services(None)


def call(event: dict[str, Any]) -> tuple[int, Any]:
    response = api_handler(event, FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


def s3(settings: Settings):
    return boto3.client("s3", endpoint_url=settings.aws_endpoint_url, region_name=REGION)


def bucket_keys(settings: Settings, bucket: str) -> list[str]:
    listing = s3(settings).list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def notify(settings: Settings, bucket: str, key: str) -> dict[str, Any]:
    """What S3 would send the upload-events Lambda for the object as it now is."""
    size = s3(settings).head_object(Bucket=bucket, Key=key)["ContentLength"]
    return upload_events_handler(s3_event((key, size), bucket=bucket), FakeLambdaContext())


def sign_up_and_log_in(email: str) -> dict[str, str]:
    status, body = call(api_event("POST", "/auth/register", body={"email": email, "password": PASSWORD}))
    assert status == 201, body
    user_id = body["userId"]
    status, body = call(api_event("POST", "/auth/login", body={"email": email, "password": PASSWORD}))
    assert status == 403 and body["error"] == "user_not_confirmed", body
    status, body = call(api_event("POST", "/auth/confirm-register", body={"email": email, "code": "123456"}))
    assert status == 200, body
    status, tokens = call(api_event("POST", "/auth/login", body={"email": email, "password": PASSWORD}))
    assert status == 200, tokens
    assert tokens["idToken"] and tokens["accessToken"] and tokens["refreshToken"]
    status, again = call(api_event("POST", "/auth/refresh", body={"refreshToken": tokens["refreshToken"]}))
    assert status == 200 and again["idToken"], again
    # API Gateway's Cognito authorizer verifies the ID token and hands the resolver its claims
    # (the signature is its job, and the local gateway's; here we only read them).
    claims = jwt.decode(tokens["idToken"], options={"verify_signature": False})
    assert claims["sub"] == user_id and claims["email"] == email
    return {k: str(v) for k, v in claims.items()}


def test_sign_up_upload_queue_and_delete(services: Services, settings: Settings, aws: dict[str, Any]) -> None:
    # Given a user who signed up, confirmed and logged in through the API
    claims = sign_up_and_log_in(f"u{uuid.uuid4().hex[:8]}@example.com")
    # When they ask to upload a small clip
    data = b"\x00\x00\x00\x18ftypmp42" + b"x" * 2000
    body = {"displayName": "Beach", "contentType": "video/mp4", "sizeBytes": len(data)}
    status, created = call(api_event("POST", "/videos/upload", body=body, claims=claims))
    assert status == 201, created
    video_id = created["videoId"]
    key = f"{settings.upload_prefix}{video_id}"
    # And PUT the bytes through the presigned URL with the headers they were given
    put = requests.put(created["upload"]["url"], data=data, headers=created["upload"]["headers"], timeout=10)
    assert put.status_code == 200, put.text
    assert bucket_keys(settings, aws["bucket"]) == [key]
    # And S3 notifies the upload-events Lambda (twice, as S3 may)
    assert notify(settings, aws["bucket"], key) == {"outcomes": {"queued": 1}}
    assert notify(settings, aws["bucket"], key) == {"outcomes": {"duplicate": 1}}
    # Then exactly one transcode job is on the queue, and the catalogue says queued
    sqs = boto3.client("sqs", endpoint_url=settings.aws_endpoint_url, region_name=REGION)
    messages = sqs.receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10, WaitTimeSeconds=1)
    jobs = [json.loads(m["Body"]) for m in messages.get("Messages", [])]
    assert len(jobs) == 1 and jobs[0]["videoId"] == video_id and jobs[0]["sourceKey"] == key
    status, video = call(api_event("GET", f"/me/videos/{video_id}", claims=claims))
    assert status == 200 and video["status"] == VideoStatus.QUEUED and video["email"] == claims["email"]
    # (until it is ready it is its owner's alone: the public view does not show it)
    assert call(api_event("GET", f"/videos/{video_id}"))[0] == 404
    assert services.catalogue.get(video_id).size_bytes == len(data)

    # Given the transcoder published outputs for it
    for name in ("master.m3u8", "poster.jpg", "360p/index.m3u8", "360p/seg00000.ts"):
        s3(settings).put_object(
            Bucket=aws["bucket"], Key=f"{settings.output_prefix}{video_id}/{name}", Body=b"x"
        )
    # When another user tries to delete it, Then 403 and nothing is touched
    status, out = call(
        api_event("DELETE", f"/videos/{video_id}", claims={"sub": "someone-else", "email": "e@x.io"})
    )
    assert status == 403 and out["error"] == "forbidden"
    assert len(bucket_keys(settings, aws["bucket"])) == 5
    # When the owner deletes it
    status, _ = call(api_event("DELETE", f"/videos/{video_id}", claims=claims))
    # Then the upload, every output and the row are gone
    assert status == 204
    assert bucket_keys(settings, aws["bucket"]) == []
    status, out = call(api_event("GET", f"/videos/{video_id}"))
    assert status == 404 and out == {"error": "not_found", "message": out["message"]}


def test_multipart_upload_through_presigned_part_urls(services: Services, settings: Settings, aws) -> None:
    claims = {"sub": f"user-{uuid.uuid4().hex[:6]}", "email": "mp@example.com"}
    size = 7 * 1024**2  # over the 6 MiB threshold: two parts of 5 MiB and 2 MiB
    body = {"displayName": "Long", "contentType": "video/webm", "sizeBytes": size}
    status, created = call(api_event("POST", "/videos/upload", body=body, claims=claims))
    assert status == 201, created
    multipart = created["multipart"]
    assert [p["partNumber"] for p in multipart["parts"]] == [1, 2]
    # When the client PUTs each part and reports the ETags
    chunk = multipart["partSizeBytes"]
    data = bytes(range(256)) * (size // 256)
    parts = []
    for p in multipart["parts"]:
        n = p["partNumber"]
        r = requests.put(p["url"], data=data[(n - 1) * chunk : n * chunk], timeout=30)
        assert r.status_code == 200, r.text
        parts.append({"partNumber": n, "etag": r.headers["ETag"]})
    # completePath is relative to the API base URL (stage included); the event path starts at the stage
    path = "/" + multipart["completePath"]
    status, out = call(
        api_event("POST", path, body={"uploadId": multipart["uploadId"], "parts": parts}, claims=claims)
    )
    # Then the object is whole in the bucket
    assert status == 200, out
    key = f"{settings.upload_prefix}{created['videoId']}"
    assert s3(settings).get_object(Bucket=aws["bucket"], Key=key)["Body"].read() == data
    assert notify(settings, aws["bucket"], key) == {"outcomes": {"queued": 1}}


def test_a_multipart_upload_short_of_its_declared_size_is_failed_and_deleted(
    services: Services, settings: Settings, aws
) -> None:
    claims = {"sub": f"user-{uuid.uuid4().hex[:6]}", "email": "mp@example.com"}
    size = 7 * 1024**2
    body = {"displayName": "Short", "contentType": "video/webm", "sizeBytes": size}
    status, created = call(api_event("POST", "/videos/upload", body=body, claims=claims))
    assert status == 201, created
    multipart = created["multipart"]
    # Given the client sends a last part shorter than the declared size allows
    chunk = multipart["partSizeBytes"]
    parts = []
    for p, length in zip(multipart["parts"], (chunk, size - chunk - 1000), strict=True):
        r = requests.put(p["url"], data=b"v" * length, timeout=30)
        assert r.status_code == 200, r.text
        parts.append({"partNumber": p["partNumber"], "etag": r.headers["ETag"]})
    status, out = call(
        api_event(
            "POST",
            "/" + multipart["completePath"],
            body={"uploadId": multipart["uploadId"], "parts": parts},
            claims=claims,
        )
    )
    assert status == 200, out
    key = f"{settings.upload_prefix}{created['videoId']}"
    # When S3 notifies the upload
    assert notify(settings, aws["bucket"], key) == {"outcomes": {"rejected": 1}}
    # Then the video failed naming both sizes, the row keeps the declared size, and the object is gone
    video = services.catalogue.get(created["videoId"])
    assert video.status == VideoStatus.FAILED and video.size_bytes == size
    assert str(size) in (video.failure_reason or "") and str(size - 1000) in (video.failure_reason or "")
    assert key not in bucket_keys(settings, aws["bucket"])


def test_an_upload_nobody_can_use_is_deleted_from_the_bucket(settings: Settings, aws) -> None:
    # Given an object under uploads/ for a video the catalogue does not know
    key = f"{settings.upload_prefix}{uuid.uuid4().hex}"
    s3(settings).put_object(Bucket=aws["bucket"], Key=key, Body=b"orphan")
    # When S3 notifies it, Then it is reported unknown and deleted
    assert notify(settings, aws["bucket"], key) == {"outcomes": {"unknown": 1}}
    assert key not in bucket_keys(settings, aws["bucket"])


def test_identity_errors_from_cognito_are_4xx(services: Services) -> None:
    email = f"w{uuid.uuid4().hex[:8]}@example.com"
    # A password the pool's policy refuses
    status, body = call(api_event("POST", "/auth/register", body={"email": email, "password": "short"}))
    assert (status, body["error"]) == (400, "weak_password") and set(body) == {"error", "message"}, body
    # A duplicate sign-up
    assert call(api_event("POST", "/auth/register", body={"email": email, "password": PASSWORD}))[0] == 201
    status, body = call(api_event("POST", "/auth/register", body={"email": email, "password": PASSWORD}))
    assert (status, body["error"]) == (409, "email_taken") and set(body) == {"error", "message"}, body
    # A wrong password
    status, body = call(api_event("POST", "/auth/login", body={"email": email, "password": "Wr0ng-password"}))
    assert (status, body["error"]) == (401, "invalid_credentials") and set(body) == {"error", "message"}, body
    # A forged refresh token
    status, body = call(api_event("POST", "/auth/refresh", body={"refreshToken": "forged"}))
    assert (status, body["error"]) == (401, "invalid_refresh_token"), body


def test_listing_and_bad_cursor_against_mariadb(services: Services) -> None:
    status, body = call(api_event("GET", "/videos", query={"limit": "5"}))
    assert status == 200 and isinstance(body["items"], list)
    status, body = call(api_event("GET", "/videos", query={"cursor": "garbage!"}))
    assert status == 400 and body["error"] == "invalid_input"
