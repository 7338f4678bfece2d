"""S3Store against moto: a real HTTP server for presigned uploads, the in-process mock for bulk work."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore.auth
import pytest
import requests
from botocore.stub import Stubber
from moto import mock_aws

from reelay.errors import InvalidInput, NotFound, StorageError
from reelay.settings import Settings
from reelay.storage import open_store
from reelay.storage.s3 import S3Store
from reelay.storage.url import parse_store_url

SECRET = "Sup3r/Secret+Value"
SECRET_ENC = "Sup3r%2FSecret%2BValue"


@pytest.fixture
def bucket(moto_url: str) -> str:
    name = f"b-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture
def store(moto_url: str, bucket: str) -> S3Store:
    # An S3-compatible URL with credentials: the path a MinIO user takes.
    return S3Store(
        parse_store_url(f"s3+{moto_url.replace('://', f'://AKIATEST:{SECRET_ENC}@')}/{bucket}/media")
    )


def raw(moto_url: str):
    return boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")


def test_put_get_head_keep_type_metadata_and_cache_control(
    store: S3Store, moto_url: str, bucket: str
) -> None:
    # Given an object put under the store's prefix
    store.put_bytes(
        "rec/s1/00001.ts",
        b"segment",
        content_type="video/mp2t",
        metadata={"duration": "2.002"},
        cache_control="max-age=60",
    )
    # When it is read back
    info = store.head("rec/s1/00001.ts")
    # Then it lives under the prefix in the bucket, and everything round-trips
    assert store.get_bytes("rec/s1/00001.ts") == b"segment"
    assert info is not None
    assert (info.key, info.size, info.content_type, info.metadata) == (
        "rec/s1/00001.ts",
        7,
        "video/mp2t",
        {"duration": "2.002"},
    )
    assert info.last_modified is not None
    head = raw(moto_url).head_object(Bucket=bucket, Key="media/rec/s1/00001.ts")
    assert head["CacheControl"] == "max-age=60"


def test_list_is_relative_to_the_prefix(store: S3Store, moto_url: str, bucket: str) -> None:
    raw(moto_url).put_object(Bucket=bucket, Key="other/x", Body=b"x")
    raw(moto_url).put_object(Bucket=bucket, Key="media", Body=b"x")
    for key in ("b", "a/2", "a/1"):
        store.put_bytes(key, b"xyz")
    assert [(i.key, i.size) for i in store.list()] == [("a/1", 3), ("a/2", 3), ("b", 3)]
    assert [i.key for i in store.list("a/")] == ["a/1", "a/2"]
    assert store.relative_key("media/a/1") == "a/1" and store.relative_key("other/x") is None


def test_put_file_and_download(store: S3Store, tmp_path: Path) -> None:
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"\x00\x01" * 300_000)
    store.put_file("uploads/v1", src, content_type="video/mp4", metadata={"owner": "u1"})
    dest = tmp_path / "dl.mp4"
    store.download("uploads/v1", dest)
    assert dest.read_bytes() == src.read_bytes()
    info = store.head("uploads/v1")
    assert info is not None and (info.content_type, info.metadata) == ("video/mp4", {"owner": "u1"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "dl.mp4"]


def test_missing_objects_and_bad_input(store: S3Store, tmp_path: Path) -> None:
    assert store.head("nope") is None
    with pytest.raises(NotFound):
        store.get_bytes("nope")
    with pytest.raises(NotFound):
        store.download("nope", tmp_path / "x")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(NotFound):
        store.put_file("k", tmp_path / "no-such-file")
    with pytest.raises(InvalidInput):
        store.put_bytes("../escape", b"x")
    with pytest.raises(InvalidInput):
        store.delete_prefix("")
    store.delete("nope")  # idempotent


def test_unknown_bucket_is_a_storage_error_without_the_secret(moto_url: str) -> None:
    url = f"s3+{moto_url.replace('://', f'://AKIATEST:{SECRET_ENC}@')}/no-such-bucket-here"
    store = open_store(url, settings=Settings())
    with pytest.raises(StorageError) as err:
        store.put_bytes("k", b"x")
    assert "no-such-bucket-here" in err.value.message
    assert SECRET not in err.value.message and SECRET_ENC not in err.value.message
    assert SECRET not in repr(store) and SECRET not in str(getattr(store, "location", ""))


def test_presigned_put_really_uploads(store: S3Store) -> None:
    # Given a presigned PUT URL
    url = store.presign_put("uploads/v2", content_type="video/mp4", expires_in=300)
    assert "X-Amz-Signature" in url and "/media/uploads/v2" in url
    # When a client PUTs the body with that content type
    resp = requests.put(url, data=b"movie-bytes", headers={"Content-Type": "video/mp4"}, timeout=10)
    # Then the object is there
    assert resp.status_code == 200, resp.text
    info = store.head("uploads/v2")
    assert info is not None and (info.size, info.content_type) == (11, "video/mp4")


def test_presigned_put_signs_the_declared_length(store: S3Store) -> None:
    # Given a presigned PUT for exactly 11 bytes
    url = store.presign_put("uploads/v3", content_type="video/mp4", expires_in=300, content_length=11)
    # Then Content-Length is one of the signed headers, so S3 refuses any other size
    signed = parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"][0].split(";")
    assert "content-length" in signed and "content-type" in signed
    # And without a length it is not signed (multipart parts, older callers)
    plain = store.presign_put("uploads/v3", content_type="video/mp4", expires_in=300)
    assert "content-length" not in parse_qs(urlsplit(plain).query)["X-Amz-SignedHeaders"][0]
    # And the right size still uploads
    resp = requests.put(url, data=b"movie-bytes", headers={"Content-Type": "video/mp4"}, timeout=10)
    assert resp.status_code == 200, resp.text
    for bad in (-1, True, "11"):
        with pytest.raises(InvalidInput):
            store.presign_put("k", content_type="video/mp4", expires_in=60, content_length=bad)


def test_multipart_through_presigned_part_urls(store: S3Store) -> None:
    # Given a multipart upload and presigned part URLs
    upload_id = store.create_multipart("uploads/big", content_type="video/mp4")
    chunks = [b"A" * (5 * 1024 * 1024), b"tail"]
    parts = []
    for n, chunk in enumerate(chunks, start=1):
        url = store.presign_part("uploads/big", upload_id, n, expires_in=300)
        # When each part is PUT over HTTP
        resp = requests.put(url, data=chunk, timeout=30)
        assert resp.status_code == 200, resp.text
        parts.append((n, resp.headers["ETag"]))
    # And completion lists them out of order, quotes stripped
    store.complete_multipart("uploads/big", upload_id, [(n, e.strip('"')) for n, e in reversed(parts)])
    # Then the object is the parts in order, with the upload's content type
    assert store.get_bytes("uploads/big") == b"".join(chunks)
    info = store.head("uploads/big")
    assert info is not None and info.content_type == "video/mp4"


def signature(url: str) -> str:
    return parse_qs(urlsplit(url).query)["X-Amz-Signature"][0]


def test_a_part_url_signs_its_exact_size(store: S3Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a multipart upload and a clock held still (SigV4 signs the time too)
    upload_id = store.create_multipart("uploads/sized", content_type="video/mp4")
    frozen = datetime.datetime(2026, 1, 2, 3, 4, 5)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: frozen)
    part = 5 * 1024 * 1024
    url = store.presign_part("uploads/sized", upload_id, 1, expires_in=300, content_length=part)
    # Then Content-Length is a signed header
    assert "content-length" in parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"][0].split(";")
    # And S3, which signs the Content-Length it receives, gets the URL's signature only for that
    # size: a byte more or less gives another signature, so S3 answers SignatureDoesNotMatch
    same = store.presign_part("uploads/sized", upload_id, 1, expires_in=300, content_length=part)
    assert signature(same) == signature(url)
    for other in (part + 1, part - 1, 5 * 1024**3):
        wrong = store.presign_part("uploads/sized", upload_id, 1, expires_in=300, content_length=other)
        assert signature(wrong) != signature(url)
    for bad in (-1, True, "5"):
        with pytest.raises(InvalidInput):
            store.presign_part("uploads/sized", upload_id, 1, expires_in=60, content_length=bad)
    monkeypatch.undo()
    # And parts of exactly the signed sizes upload and complete (what the web and CLI clients send)
    chunks = [b"P" * part, b"tail"]
    parts = []
    for n, chunk in enumerate(chunks, start=1):
        signed = store.presign_part("uploads/sized", upload_id, n, expires_in=300, content_length=len(chunk))
        resp = requests.put(signed, data=chunk, timeout=30)
        assert resp.status_code == 200, resp.text
        parts.append((n, resp.headers["ETag"]))
    store.complete_multipart("uploads/sized", upload_id, parts)
    assert store.get_bytes("uploads/sized") == b"".join(chunks)


def test_a_create_only_url_cannot_replace_what_it_uploaded(store: S3Store) -> None:
    # Given a create-only presigned PUT
    url = store.presign_put(
        "uploads/once", content_type="video/mp4", expires_in=300, content_length=5, create_only=True
    )
    # Then If-None-Match is one of its signed headers
    assert "if-none-match" in parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"][0].split(";")
    headers = {"Content-Type": "video/mp4", "If-None-Match": "*"}
    # When it uploads once, Then the object lands
    assert requests.put(url, data=b"first", headers=headers, timeout=10).status_code == 200
    # When the same URL is used again with other bytes, Then S3 refuses it and the original stays
    again = requests.put(url, data=b"other", headers=headers, timeout=10)
    assert again.status_code == 412, again.text
    assert store.get_bytes("uploads/once") == b"first"


def test_multipart_wrong_etag_and_unknown_upload(store: S3Store) -> None:
    upload_id = store.create_multipart("uploads/bad", content_type="video/mp4")
    url = store.presign_part("uploads/bad", upload_id, 1, expires_in=300)
    assert requests.put(url, data=b"only-part", timeout=10).status_code == 200
    # A wrong ETag is the client's mistake: InvalidInput, not a 5xx
    with pytest.raises(InvalidInput):
        store.complete_multipart("uploads/bad", upload_id, [(1, "0123456789abcdef0123456789abcdef")])
    assert store.head("uploads/bad") is None
    for bad_parts in ([], [(1, "a"), (1, "a")], [(0, "a")], [(1, "")]):
        with pytest.raises(InvalidInput):
            store.complete_multipart("uploads/bad", upload_id, bad_parts)
    for bad in (0, 10_001):
        with pytest.raises(InvalidInput):
            store.presign_part("uploads/bad", upload_id, bad, expires_in=60)
    with pytest.raises(InvalidInput):
        store.presign_put("k", content_type="video/mp4", expires_in=0)
    # Abort, then abort again: both fine
    store.abort_multipart("uploads/bad", upload_id)
    store.abort_multipart("uploads/bad", upload_id)


def test_delete_and_delete_prefix_in_batches_of_1000() -> None:
    # Given more than one DeleteObjects batch of objects (in-process moto: fast)
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="bulk")
        store = S3Store(
            parse_store_url("s3://us-east-1/bulk/p"), client=boto3.client("s3", region_name="us-east-1")
        )
        c = boto3.client("s3", region_name="us-east-1")
        for n in range(1203):
            c.put_object(Bucket="bulk", Key=f"p/outputs/v1/{n:05d}.ts", Body=b"x")
        c.put_object(Bucket="bulk", Key="p/outputs/v10/keep.ts", Body=b"x")
        c.put_object(Bucket="bulk", Key="outputs/v1/outside-prefix.ts", Body=b"x")
        # When the listing is paginated and the prefix deleted
        assert sum(1 for _ in store.list("outputs/v1/")) == 1203
        removed = store.delete_prefix("outputs/v1/")
        # Then exactly those objects are gone
        assert removed == 1203
        assert [i.key for i in store.list()] == ["outputs/v10/keep.ts"]
        assert c.head_object(Bucket="bulk", Key="outputs/v1/outside-prefix.ts")["ContentLength"] == 1
        store.delete("outputs/v10/keep.ts")
        assert list(store.list()) == []


def test_open_store_uses_the_settings_endpoint_for_plain_s3_urls(moto_url: str, bucket: str) -> None:
    store = open_store(f"s3://us-east-1/{bucket}", settings=Settings(aws_endpoint_url=moto_url))
    store.put_bytes("k", b"v")
    assert raw(moto_url).get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def test_unreachable_endpoint_is_a_storage_error() -> None:
    store = S3Store(
        parse_store_url("s3+http://K:S@127.0.0.1:9/bucket"),
        client=boto3.client(
            "s3",
            endpoint_url="http://127.0.0.1:9",
            region_name="us-east-1",
            config=__import__("botocore.config").config.Config(retries={"max_attempts": 1}),
        ),
    )
    with pytest.raises(StorageError, match="EndpointConnectionError"):
        store.get_bytes("k")


# --- error translation for answers moto does not give (botocore Stubber) -------------------------
@pytest.fixture
def stubbed() -> Iterator[tuple[S3Store, Stubber]]:
    c = boto3.client("s3", region_name="us-east-1")
    with Stubber(c) as stub:
        yield S3Store(parse_store_url(f"s3://AKIATEST:{SECRET_ENC}@us-east-1/bkt/pre"), client=c), stub
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("operation", "code", "status", "call", "expected"),
    [
        (
            "complete_multipart_upload",
            "NoSuchUpload",
            404,
            lambda s: s.complete_multipart("k", "u1", [(1, "e")]),
            NotFound,
        ),
        (
            "complete_multipart_upload",
            "InvalidPartOrder",
            400,
            lambda s: s.complete_multipart("k", "u1", [(1, "e")]),
            InvalidInput,
        ),
        (
            "complete_multipart_upload",
            "EntityTooSmall",
            400,
            lambda s: s.complete_multipart("k", "u1", [(1, "e")]),
            InvalidInput,
        ),
        ("get_object", "AccessDenied", 403, lambda s: s.get_bytes("k"), StorageError),
        ("head_object", "403", 403, lambda s: s.head("k"), StorageError),
        ("put_object", "SlowDown", 503, lambda s: s.put_bytes("k", b"x"), StorageError),
        ("list_objects_v2", "NoSuchBucket", 404, lambda s: list(s.list()), StorageError),
        (
            "create_multipart_upload",
            "AccessDenied",
            403,
            lambda s: s.create_multipart("k", content_type="a/b"),
            StorageError,
        ),
        ("abort_multipart_upload", "AccessDenied", 403, lambda s: s.abort_multipart("k", "u1"), StorageError),
    ],
)
def test_client_errors_become_domain_errors(
    stubbed: tuple[S3Store, Stubber], operation: str, code: str, status: int, call, expected: type
) -> None:
    store, stub = stubbed
    # Given S3 answers an operation with an error code
    stub.add_client_error(
        operation, service_error_code=code, service_message=f"msg for {code}", http_status_code=status
    )
    # When the store makes that call, Then the domain error names the place but not the secret
    with pytest.raises(expected) as err:
        call(store)
    assert SECRET not in err.value.message and SECRET_ENC not in err.value.message
    if expected is StorageError:
        assert code in err.value.message and "bkt" in err.value.message


def test_partial_batch_delete_failure_is_reported(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stub = stubbed
    stub.add_response(
        "list_objects_v2",
        {"Contents": [{"Key": "pre/x/1", "Size": 1}, {"Key": "pre/x/2", "Size": 1}], "IsTruncated": False},
        {"Bucket": "bkt", "Prefix": "pre/x/"},
    )
    stub.add_response(
        "delete_objects",
        {"Errors": [{"Key": "pre/x/2", "Code": "AccessDenied", "Message": "no"}]},
        {"Bucket": "bkt", "Delete": {"Objects": [{"Key": "pre/x/1"}, {"Key": "pre/x/2"}], "Quiet": True}},
    )
    with pytest.raises(StorageError, match=r"1 objects not deleted \(first: pre/x/2: AccessDenied\)"):
        store.delete_prefix("x/")


def test_abort_of_a_finished_upload_is_quiet(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stub = stubbed
    stub.add_client_error("abort_multipart_upload", service_error_code="NoSuchUpload", http_status_code=404)
    store.abort_multipart("k", "u1")


def test_set_tags_replaces_an_objects_tags_and_checks_them(
    store: S3Store, moto_url: str, bucket: str
) -> None:
    # Given an upload
    store.put_bytes("uploads/t1", b"source")
    # When it is tagged (as a failed video's upload is), Then S3 holds the tag a lifecycle rule matches
    store.set_tags("uploads/t1", {"reelay-upload": "failed"})
    tags = raw(moto_url).get_object_tagging(Bucket=bucket, Key="media/uploads/t1")["TagSet"]
    assert tags == [{"Key": "reelay-upload", "Value": "failed"}]
    # And a missing key is NotFound, and tags S3 would refuse are bad input
    with pytest.raises(NotFound):
        store.set_tags("uploads/none", {"reelay-upload": "failed"})
    for bad in ({"": "x"}, {"k": "x" * 257}, {f"k{n}": "v" for n in range(11)}, {"k": "a\nb"}):
        with pytest.raises(InvalidInput):
            store.set_tags("uploads/t1", bad)
