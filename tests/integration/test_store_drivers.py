"""Every store URL scheme through ``open_store``, with segment metadata, and secrets never shown.

- ``s3://KEY:SECRET@region/bucket`` and ``s3://region/bucket`` against moto in-process (the AWS path);
- ``s3+http://KEY:SECRET@host:port/bucket`` against a moto server started apart from the platform's,
  on its own port and with its own credentials in the URL: an S3-compatible store such as MinIO;
- ``file:///abs/path``.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from moto import mock_aws

from reelay.adapters.aws import clear_cache
from reelay.errors import InvalidInput, StorageError
from reelay.ports import ObjectStore
from reelay.settings import Settings
from reelay.storage import open_store
from reelay.storage.s3 import S3Store

SECRET = "Seg/ment+Secret@Value"  # '/', '+' and '@': all must be URL-encoded or parse by the last '@'
SECRET_ENC = "Seg%2Fment%2BSecret%40Value"
SEGMENT = b"\x47" + b"\x00" * 187  # one TS packet


class Sent:
    """What a store's boto3 client put on the wire: each request's URL and Authorization header."""

    def __init__(self, store: ObjectStore) -> None:
        assert isinstance(store, S3Store)
        self.client = store.client
        self.requests: list[tuple[str, str]] = []
        self.client.meta.events.register("before-send.s3", self._record)

    def _record(self, request: Any, **_: Any) -> None:
        self.requests.append((request.url, str(request.headers.get("Authorization", b""), "latin-1")))

    def close(self) -> None:
        self.client.meta.events.unregister("before-send.s3", self._record)


def exercise_segments(store: ObjectStore, tmp_path: Path) -> None:
    """What the recorder does: segments with their duration in metadata, from bytes and files."""
    src = tmp_path / "00000002.ts"
    src.write_bytes(SEGMENT * 2)
    store.put_bytes(
        "recordings/st/se/w1/source/00000001",
        SEGMENT,
        content_type="video/mp2t",
        metadata={"duration": "2.002"},
    )
    store.put_file(
        "recordings/st/se/w1/source/00000002", src, content_type="video/mp2t", metadata={"Duration": "1.968"}
    )
    one = store.head("recordings/st/se/w1/source/00000001")
    two = store.head("recordings/st/se/w1/source/00000002")
    assert one is not None and (one.size, one.content_type, one.metadata) == (
        188,
        "video/mp2t",
        {"duration": "2.002"},
    )
    assert two is not None and (two.size, two.content_type, two.metadata) == (
        376,
        "video/mp2t",
        {"duration": "1.968"},
    )
    assert store.get_bytes("recordings/st/se/w1/source/00000002") == SEGMENT * 2
    expected = [("recordings/st/se/w1/source/00000001", 188), ("recordings/st/se/w1/source/00000002", 376)]
    assert [(i.key, i.size) for i in store.list("recordings/st/se/")] == expected
    # Both drivers take the same call; without metadata neither lists any
    bare = list(store.list("recordings/st/se/", metadata=False))  # type: ignore[call-arg]
    assert [(i.key, i.size, i.metadata) for i in bare] == [(k, n, {}) for k, n in expected]


def record_segments(
    url: str, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> tuple[ObjectStore, list[tuple[str, str]]]:
    """Open the URL's store and run ``exercise_segments`` on it, logging everything (botocore's debug
    logs too); returns the store and the requests its client sent."""
    store = open_store(url, settings=settings)
    sent = Sent(store)
    try:
        with caplog.at_level(logging.DEBUG):
            exercise_segments(store, tmp_path)
    finally:
        sent.close()
    return store, sent.requests


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text and SECRET_ENC not in text and "ment+Secret" not in text


# --- s3:// on AWS (moto in-process) ----------------------------------------------------------------
@pytest.fixture
def aws() -> Iterator[Settings]:
    clear_cache()
    with mock_aws():
        yield Settings(aws_endpoint_url=None, aws_region="us-east-1")
    clear_cache()


def test_s3_with_explicit_keys_signs_with_them_in_the_urls_region(
    aws: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a bucket in eu-west-1 and a URL carrying its own keys
    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket="rec-eu", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    url = f"s3://AKIAEXPLICIT:{SECRET_ENC}@eu-west-1/rec-eu/tenant-a"
    # When segments are written, read and listed
    store, sent = record_segments(url, aws, tmp_path, caplog)
    # Then every request was signed with the URL's key for the URL's region, on AWS's endpoint
    assert sent and all("Credential=AKIAEXPLICIT/" in auth and "/eu-west-1/s3/" in auth for _, auth in sent)
    assert all("amazonaws.com" in req_url for req_url, _ in sent)
    # And the objects are under the prefix in the bucket, with their metadata on S3
    raw = boto3.client("s3", region_name="eu-west-1")
    head = raw.head_object(Bucket="rec-eu", Key="tenant-a/recordings/st/se/w1/source/00000001")
    assert head["Metadata"] == {"duration": "2.002"}
    # And the secret was never logged (botocore's debug logs included) nor shown
    assert_no_secret(caplog.text, repr(store), str(store))


def test_s3_with_ambient_credentials_uses_the_credential_chain(
    aws: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given credentials in the environment (as a task role's arrive through the chain)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAAMBIENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ambient-secret")
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="rec-ambient")
    _, sent = record_segments("s3://us-east-1/rec-ambient", aws, tmp_path, caplog)
    # Then the requests were signed with them
    assert sent and all("Credential=AKIAAMBIENT/" in auth for _, auth in sent)


def test_metadata_s3_would_refuse_is_refused_by_both_drivers_alike(aws: Settings, tmp_path: Path) -> None:
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="rec-meta")
    stores = [
        open_store("s3://us-east-1/rec-meta", settings=aws),
        open_store(f"file://{tmp_path}/m", settings=aws),
    ]
    for store in stores:
        for bad in ({"title": "café"}, {"k": "a\nb"}, {"k": "v" * 2048}):
            with pytest.raises(InvalidInput):
                store.put_bytes("recordings/x", b"x", metadata=bad)
        assert list(store.list()) == []


def test_s3_errors_and_logs_never_show_the_secret(aws: Settings, caplog: pytest.LogCaptureFixture) -> None:
    # Given a URL whose bucket does not exist
    store = open_store(f"s3://AKIAEXPLICIT:{SECRET_ENC}@us-east-1/no-such-bucket", settings=aws)
    # When each operation fails
    errors: list[StorageError] = []
    with caplog.at_level(logging.DEBUG):
        for op in (
            lambda: store.put_bytes("k", b"x", metadata={"duration": "2"}),
            lambda: store.get_bytes("k"),
            lambda: list(store.list("")),
            lambda: store.delete_prefix("recordings/"),
        ):
            with pytest.raises(StorageError) as err:
                op()
            errors.append(err.value)
    # Then the errors say what failed, and nothing shows the secret
    assert all("no-such-bucket" in e.message for e in errors)
    assert_no_secret(caplog.text, *(str(e) for e in errors), *(repr(e) for e in errors))


# --- s3+http:// against a separate S3-compatible server --------------------------------------------
@pytest.fixture(scope="module")
def compatible_store() -> Iterator[str]:
    """A moto server in a process of its own (moto servers in one process share their state): the
    S3-compatible store a customer runs, apart from the platform's."""
    with socket.socket() as s:  # a free port, then released for the server
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, "the S3-compatible moto server exited"
                assert time.monotonic() < deadline, "the S3-compatible moto server did not start"
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        clear_cache()


def test_s3_compatible_store_uses_the_urls_endpoint_credentials_and_path_style(
    moto_url: str, compatible_store: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the platform's moto (aws_endpoint_url) and, apart from it, a customer's store
    platform = Settings(aws_endpoint_url=moto_url)
    bucket = f"cust-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=f"http://{compatible_store}", region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    url = f"s3+http://COMPATKEY:{SECRET_ENC}@{compatible_store}/{bucket}/rec"
    # When segments are written, read and listed
    store, sent = record_segments(url, platform, tmp_path, caplog)
    # Then every request went to the URL's endpoint, path-style, signed with the URL's key
    assert sent
    for req_url, auth in sent:
        assert req_url.startswith(f"http://{compatible_store}/{bucket}"), req_url
        assert "Credential=COMPATKEY/" in auth
    # And the objects are in the customer's store, not the platform's
    theirs = boto3.client("s3", endpoint_url=f"http://{compatible_store}", region_name="us-east-1")
    keys = [o["Key"] for o in theirs.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["rec/recordings/st/se/w1/source/00000001", "rec/recordings/st/se/w1/source/00000002"]
    with pytest.raises(ClientError):
        boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1").head_bucket(Bucket=bucket)
    assert_no_secret(caplog.text, repr(store), str(store))


# --- file:// ---------------------------------------------------------------------------------------
def test_file_store_through_open_store_lists_metadata_too(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/recordings-root", settings=Settings())
    exercise_segments(store, tmp_path)
    # The file store's listing also carries the metadata (S3's cannot)
    assert [i.metadata for i in store.list("recordings/")] == [{"duration": "2.002"}, {"duration": "1.968"}]
