"""In-memory fakes of the ports in reelay.ports, for unit tests ("fakes over mocks").

They behave like the real adapters where the domain can tell the difference: missing objects,
multipart bookkeeping, Cognito's error codes.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reelay.errors import AuthError, InvalidInput, NotFound
from reelay.models import TranscodeJob
from reelay.ports import ObjectInfo, QueueMessage, Tokens


class FakeStore:
    """An ObjectStore in a dict. Presigned URLs are recognisable strings, not real signatures."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str | None, dict[str, str]]] = {}
        self.multipart: dict[str, dict[str, Any]] = {}  # upload id -> {key, content_type}
        self.aborted: list[str] = []
        self.tags: dict[str, dict[str, str]] = {}

    def put_bytes(self, key, data, *, content_type=None, metadata=None, cache_control=None) -> None:
        self.objects[key] = (bytes(data), content_type, dict(metadata or {}))

    def put_file(self, key, path: Path, *, content_type=None, metadata=None, cache_control=None) -> None:
        self.put_bytes(key, Path(path).read_bytes(), content_type=content_type, metadata=metadata)

    def get_bytes(self, key: str) -> bytes:
        if key not in self.objects:
            raise NotFound(f"object {key} not found")
        return self.objects[key][0]

    def download(self, key: str, dest: Path) -> None:
        Path(dest).write_bytes(self.get_bytes(key))

    def head(self, key: str) -> ObjectInfo | None:
        if key not in self.objects:
            return None
        data, content_type, metadata = self.objects[key]
        return ObjectInfo(
            key=key,
            size=len(data),
            content_type=content_type,
            metadata=metadata,
            last_modified=datetime.now(UTC),
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for key in sorted(self.objects):
            if key.startswith(prefix):
                info = self.head(key)
                assert info is not None
                yield info

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)
        self.tags.pop(key, None)

    def copy(self, src_key: str, dst_key: str) -> None:
        if src_key not in self.objects:
            raise NotFound(f"object {src_key!r} does not exist")
        self.objects[dst_key] = self.objects[src_key]

    def set_tags(self, key: str, tags: Mapping[str, str]) -> None:
        if key not in self.objects:
            raise NotFound(f"object {key!r} does not exist")
        self.tags[key] = dict(tags)

    def delete_prefix(self, prefix: str) -> int:
        doomed = [k for k in self.objects if k.startswith(prefix)]
        for key in doomed:
            del self.objects[key]
        return len(doomed)

    def presign_put(
        self,
        key: str,
        *,
        content_type: str,
        expires_in: int,
        content_length: int | None = None,
        create_only: bool = False,
    ) -> str:
        length = "" if content_length is None else f"&len={content_length}"
        once = "&create-only" if create_only else ""
        return f"https://fake-store.invalid/{key}?put&ct={content_type}&exp={expires_in}{length}{once}"

    def create_multipart(self, key: str, *, content_type: str) -> str:
        upload_id = uuid.uuid4().hex
        self.multipart[upload_id] = {"key": key, "content_type": content_type}
        return upload_id

    def presign_part(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        *,
        expires_in: int,
        content_length: int | None = None,
    ) -> str:
        length = "" if content_length is None else f"&len={content_length}"
        return f"https://fake-store.invalid/{key}?uploadId={upload_id}&partNumber={part_number}{length}"

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> None:
        upload = self.multipart.get(upload_id)
        if upload is None or upload["key"] != key:
            raise InvalidInput("uploadId does not match an upload in progress for this video")
        del self.multipart[upload_id]
        body = b"".join(f"{n}:{etag};".encode() for n, etag in sorted(parts))
        self.objects[key] = (body, upload["content_type"], {})

    def abort_multipart(self, key: str, upload_id: str) -> None:
        self.multipart.pop(upload_id, None)
        self.aborted.append(upload_id)


class FakeCdn:
    """A CdnInvalidator that remembers what it was asked to drop."""

    def __init__(self) -> None:
        self.invalidated: list[list[str]] = []

    def invalidate(self, paths: list[str]) -> None:
        self.invalidated.append(list(paths))


class FakeQueue:
    def __init__(self) -> None:
        self.sent: list[TranscodeJob] = []
        self._receipts = itertools.count(1)

    def send(self, job: TranscodeJob) -> None:
        self.sent.append(job)

    def receive(self, *, max_messages: int = 1, wait_seconds: int = 20) -> list[QueueMessage]:
        taken, self.sent = self.sent[:max_messages], self.sent[max_messages:]
        return [QueueMessage(job=j, receipt=str(next(self._receipts)), receive_count=1) for j in taken]

    def delete(self, message: QueueMessage) -> None:
        return None

    def extend(self, message: QueueMessage, seconds: int) -> None:
        return None

    def release(self, message: QueueMessage) -> None:
        self.sent.append(message.job)


class FakeEvents:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, event_type: str, detail: dict[str, Any]) -> None:
        self.published.append((event_type, dict(detail)))


def event_body(detail: dict[str, Any]) -> dict[str, Any]:
    """A published event's detail without what the outbox adds, after checking that it added it: a
    UUID ``eventId`` and an RFC 3339 UTC ``occurredAt``."""
    body = dict(detail)
    event_id, occurred = body.pop("eventId"), body.pop("occurredAt")
    assert re.fullmatch(r"[0-9a-f]{32}", event_id), event_id
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", occurred), occurred
    return body


class DownEvents(FakeEvents):
    """SNS during an outage: every publish raises (and is counted) until ``up`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.up = False
        self.attempts = 0

    def publish(self, event_type: str, detail: dict[str, Any]) -> None:
        self.attempts += 1
        if not self.up:
            raise ConnectionError("SNS unreachable")
        super().publish(event_type, detail)


class ManualClock:
    """Naive-UTC time that moves only when told: pass it as a MemoryCatalogue's clock."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2030, 1, 1, 12, 0, 0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakeIdentity:
    """Cognito's behaviour with its error codes: passwords need 8+ chars with a digit."""

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}  # email -> {sub, password, confirmed, code}
        self.refresh_tokens: dict[str, str] = {}  # token -> email
        self.codes_sent: list[tuple[str, str]] = []

    def _user(self, email: str) -> dict[str, Any]:
        user = self.users.get(email.lower())
        if user is None:
            raise AuthError("user_not_found", "no account with that email", 404)
        return user

    def register(self, email: str, password: str) -> str:
        if email.lower() in self.users:
            raise AuthError("email_taken", "an account with that email already exists", 409)
        if len(password) < 8 or not any(c.isdigit() for c in password):
            raise AuthError("weak_password", "password must be at least 8 characters with a digit", 400)
        sub = str(uuid.uuid4())
        code = f"{len(self.users) + 100000}"
        self.users[email.lower()] = {"sub": sub, "password": password, "confirmed": False, "code": code}
        self.codes_sent.append((email, code))
        return sub

    def confirm(self, email: str, code: str) -> None:
        user = self._user(email)
        if code != user["code"]:
            raise AuthError("invalid_code", "the confirmation code is wrong", 400)
        user["confirmed"] = True

    def resend_code(self, email: str) -> None:
        user = self._user(email)
        self.codes_sent.append((email, user["code"]))

    def _tokens(self, email: str) -> Tokens:
        user = self.users[email.lower()]
        refresh = uuid.uuid4().hex
        self.refresh_tokens[refresh] = email.lower()
        return Tokens(
            id_token=f"id.{user['sub']}",
            access_token=f"access.{user['sub']}",
            refresh_token=refresh,
            expires_in=3600,
        )

    def login(self, email: str, password: str) -> Tokens:
        user = self.users.get(email.lower())
        if user is None or user["password"] != password:
            raise AuthError("invalid_credentials", "email or password is wrong", 401)
        if not user["confirmed"]:
            raise AuthError("user_not_confirmed", "confirm your email before logging in", 403)
        return self._tokens(email)

    def refresh(self, refresh_token: str) -> Tokens:
        email = self.refresh_tokens.get(refresh_token)
        if email is None:
            raise AuthError("invalid_token", "the refresh token is not valid", 401)
        tokens = self._tokens(email)
        return Tokens(
            id_token=tokens.id_token,
            access_token=tokens.access_token,
            refresh_token=None,
            expires_in=tokens.expires_in,
        )


# --- Lambda stand-ins (Powertools' testing style) --------------------------------------------
class FakeLambdaContext:
    function_name = "reelay-test"
    function_version = "$LATEST"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:reelay-test"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/reelay-test"
    log_stream_name = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def api_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    raw_body: str | None = None,
    claims: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A minimal API Gateway REST (v1) proxy event. ``claims`` are what the Cognito authorizer verified."""
    import json

    if raw_body is None and body is not None:
        raw_body = json.dumps(body)
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json", "Origin": "https://app.example"},
        "multiValueHeaders": {},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "requestId": uuid.uuid4().hex,
            "stage": "prod",
            "httpMethod": method,
            "path": f"/prod{path}",
            "authorizer": {"claims": claims} if claims else None,
        },
        "body": raw_body,
        "isBase64Encoded": False,
    }


def s3_event(*records: tuple[str, int], event_name: str = "ObjectCreated:Put", bucket: str = "media") -> dict:
    """An S3 notification as delivered straight to Lambda; keys are given already URL-encoded."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-01-01T00:00:00.000Z",
                "eventName": event_name,
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": key, "size": size, "eTag": "e", "sequencer": "1"},
                },
            }
            for key, size in records
        ]
    }


class FakeLauncher:
    """A RelayLauncher that records what it was asked; ``fail`` makes every call raise."""

    def __init__(self) -> None:
        self.launched: list[str] = []
        self.stopped: list[tuple[str, str]] = []
        self.fail = False

    def launch(self, stream_id: str) -> None:
        if self.fail:
            raise ConnectionError("ECS is unreachable")
        self.launched.append(stream_id)

    def stop(self, stream_id: str, task_id: str) -> None:
        if self.fail:
            raise ConnectionError("ECS is unreachable")
        self.stopped.append((stream_id, task_id))


@contextlib.contextmanager
def installed_services(settings: Any, catalogue: Any = None) -> Iterator[Any]:
    """Services on the fakes (the memory catalogue unless given), installed for the API handlers."""
    from reelay.catalogue.memory import MemoryCatalogue
    from reelay.observability import metrics
    from reelay.wiring import Services, set_services

    svc = Services(
        settings,
        catalogue=catalogue if catalogue is not None else MemoryCatalogue(),
        store=FakeStore(),
        queue=FakeQueue(),
        events=FakeEvents(),
        identity=FakeIdentity(),
        launcher=FakeLauncher(),
    )
    set_services(svc)
    try:
        yield svc
    finally:
        set_services(None)
        metrics.clear_metrics()
