"""FileStore on a real directory: objects, listing, presigned uploads and multipart uploads."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from reelay.errors import Conflict, Forbidden, InvalidInput, NotFound, PreconditionFailed, StorageError
from reelay.ports import ObjectInfo
from reelay.settings import Settings
from reelay.storage import open_store
from reelay.storage.file import FileStore

PUBLIC = "http://127.0.0.1:8080/media"
KEY = "signing-key-for-tests"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def created() -> list[ObjectInfo]:
    return []


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, created: list[ObjectInfo], clock: Clock) -> FileStore:
    return FileStore(
        tmp_path / "media",
        public_url=PUBLIC,
        signing_key=KEY,
        on_created=created.append,
        min_part_bytes=4,
        clock=clock,
    )


def split(url: str) -> tuple[str, dict[str, str]]:
    """What the gateway sees: the key from the path and the query parameters."""
    parts = urlsplit(url)
    assert url.startswith(PUBLIC + "/")
    key = unquote(parts.path.removeprefix(urlsplit(PUBLIC).path + "/"))
    return key, {k: v[0] for k, v in parse_qs(parts.query).items()}


# --- objects ---------------------------------------------------------------------------------------
def test_put_bytes_then_get_and_head_keep_type_metadata_and_cache_control(store: FileStore) -> None:
    # Given an object written with a content type, metadata and cache control
    store.put_bytes(
        "rec/s1/720p/00001.ts",
        b"segment",
        content_type="video/mp2t",
        metadata={"Duration": "2.002"},
        cache_control="max-age=60",
    )
    # When it is read back
    info = store.head("rec/s1/720p/00001.ts")
    # Then data and metadata round-trip (metadata names lower-cased, as S3 does)
    assert store.get_bytes("rec/s1/720p/00001.ts") == b"segment"
    assert info is not None
    assert (info.key, info.size, info.content_type, info.metadata) == (
        "rec/s1/720p/00001.ts",
        7,
        "video/mp2t",
        {"duration": "2.002"},
    )
    assert info.last_modified is not None and info.last_modified.tzinfo is not None
    assert store.cache_control("rec/s1/720p/00001.ts") == "max-age=60"
    assert store.etag("rec/s1/720p/00001.ts") == f'"{hashlib.md5(b"segment").hexdigest()}"'


def test_overwrite_replaces_data_and_metadata(store: FileStore) -> None:
    store.put_bytes("a.txt", b"one", content_type="text/plain", metadata={"x": "1"})
    store.put_bytes("a.txt", b"two!")
    info = store.head("a.txt")
    assert store.get_bytes("a.txt") == b"two!"
    assert info is not None and (info.size, info.content_type, info.metadata) == (4, None, {})


def test_put_file_and_download_round_trip(store: FileStore, tmp_path: Path) -> None:
    # Given a local file of a few chunks
    src = tmp_path / "src.bin"
    src.write_bytes(bytes(range(256)) * 9000)
    # When it is put and downloaded elsewhere
    store.put_file("uploads/v1", src, content_type="video/mp4")
    dest = tmp_path / "out" / "copy.bin"
    dest.parent.mkdir()
    store.download("uploads/v1", dest)
    # Then the bytes are identical and no temp file is left next to the destination
    assert dest.read_bytes() == src.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["copy.bin"]


def test_missing_objects(store: FileStore, tmp_path: Path) -> None:
    assert store.head("nope") is None
    with pytest.raises(NotFound):
        store.get_bytes("nope")
    with pytest.raises(NotFound):
        store.download("nope", tmp_path / "x")
    with pytest.raises(NotFound):
        store.put_file("k", tmp_path / "no-such-file")
    with pytest.raises(InvalidInput):
        store.put_file("k", tmp_path)
    store.delete("nope")  # idempotent, like S3


def test_list_is_in_key_order_hides_internals_and_filters_by_prefix(store: FileStore) -> None:
    # Given keys whose directory walk order differs from key order ('-' sorts before '/')
    for key in ("a/b", "a-c", "a/a/z", "b", "rec/s1/00002.ts", "rec/s1/00001.ts", "rec/s10/00001.ts"):
        store.put_bytes(key, b"x" * len(key))
    store.create_multipart("staged", content_type="video/mp4")  # lives under the hidden dir
    # When everything is listed
    keys = [i.key for i in store.list()]
    # Then the order is S3's and nothing internal shows
    assert (
        keys
        == sorted(keys)
        == ["a-c", "a/a/z", "a/b", "b", "rec/s1/00001.ts", "rec/s1/00002.ts", "rec/s10/00001.ts"]
    )
    # And prefixes may end mid-segment or at a slash
    assert [i.key for i in store.list("rec/s1")] == ["rec/s1/00001.ts", "rec/s1/00002.ts", "rec/s10/00001.ts"]
    assert [i.key for i in store.list("rec/s1/")] == ["rec/s1/00001.ts", "rec/s1/00002.ts"]
    assert [(i.key, i.size) for i in store.list("a/")] == [("a/a/z", 5), ("a/b", 3)]
    assert list(store.list("zzz/")) == []
    assert list(store.list(".reelay/")) == []


def test_delete_and_delete_prefix_leave_no_empty_directories(store: FileStore) -> None:
    for n in range(5):
        store.put_bytes(f"outputs/v1/720p/{n}.ts", b"x")
    store.put_bytes("outputs/v10/keep.ts", b"x")
    # When one prefix is deleted
    removed = store.delete_prefix("outputs/v1/")
    # Then only it is gone, and so are its directories
    assert removed == 5
    assert [i.key for i in store.list()] == ["outputs/v10/keep.ts"]
    assert not (store.root / "outputs" / "v1").exists()
    store.delete("outputs/v10/keep.ts")
    assert not (store.root / "outputs").exists()
    assert store.delete_prefix("outputs/") == 0


def test_delete_prefix_refuses_the_whole_store(store: FileStore) -> None:
    store.put_bytes("a", b"x")
    with pytest.raises(InvalidInput):
        store.delete_prefix("")
    assert store.head("a") is not None


@pytest.mark.parametrize(
    "key", ["../escape", "a/../../etc/passwd", "/etc/passwd", "", "a//b", ".reelay/meta/a", "dir/", "x" * 300]
)
def test_keys_cannot_escape_the_root_or_touch_internals(store: FileStore, tmp_path: Path, key: str) -> None:
    # When a hostile key is used anywhere, Then InvalidInput and nothing is written outside the root
    with pytest.raises(InvalidInput):
        store.put_bytes(key, b"pwned")
    with pytest.raises(InvalidInput):
        store.get_bytes(key)
    with pytest.raises(InvalidInput):
        store.presign_put(key, content_type="video/mp4", expires_in=60)
    with pytest.raises(InvalidInput):
        store.receive_upload(key, b"pwned", {}, "video/mp4")
    assert not (tmp_path / "escape").exists()
    assert list(store.list()) == []


def test_a_key_cannot_be_both_object_and_prefix(store: FileStore) -> None:
    store.put_bytes("a", b"x")
    with pytest.raises(Conflict):
        store.put_bytes("a/b", b"y")
    store.put_bytes("c/d", b"x")
    with pytest.raises(Conflict):
        store.put_bytes("c", b"y")
    assert store.head("c") is None and store.head("a/b") is None
    store.delete("c")  # a prefix is not an object: nothing happens
    assert store.get_bytes("c/d") == b"x"


def test_bad_metadata_is_invalid_input(store: FileStore) -> None:
    with pytest.raises(InvalidInput):
        store.put_bytes("k", b"x", metadata={"n": 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidInput):
        store.put_bytes("k", "text")  # type: ignore[arg-type]


def test_relative_root_is_rejected() -> None:
    with pytest.raises(InvalidInput):
        FileStore(Path("relative/dir"), public_url=PUBLIC, signing_key=KEY)


def test_unwritable_root_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError):
        FileStore(blocker / "media", public_url=PUBLIC, signing_key=KEY)


# --- presigned PUT ---------------------------------------------------------------------------------
def test_presigned_put_accepts_the_upload_and_fires_on_created(
    store: FileStore, created: list[ObjectInfo]
) -> None:
    # Given a presigned URL for an upload
    url = store.presign_put("uploads/v 1.mp4", content_type="video/mp4", expires_in=600)
    key, query = split(url)
    assert key == "uploads/v 1.mp4" and set(query) == {"expires", "sig"}
    # When the client PUTs with the same content type, streaming the body
    etag = store.receive_upload(key, io.BytesIO(b"movie" * 1000), query, "video/mp4")
    # Then the object exists with that type, the ETag is S3-shaped and the notification fired once
    info = store.head(key)
    assert info is not None and (info.size, info.content_type) == (5000, "video/mp4")
    assert etag == store.etag(key) and etag.startswith('"') and len(etag) == 34
    assert [(c.key, c.size, c.content_type) for c in created] == [(key, 5000, "video/mp4")]


def test_direct_puts_do_not_fire_on_created(
    store: FileStore, created: list[ObjectInfo], tmp_path: Path
) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"x")
    store.put_bytes("outputs/a.ts", b"x")
    store.put_file("outputs/b.ts", src)
    assert created == []


def test_tampered_signature_is_forbidden(store: FileStore, created: list[ObjectInfo]) -> None:
    key, query = split(store.presign_put("uploads/v1", content_type="video/mp4", expires_in=600))
    forged = dict(query, sig=query["sig"][:-1] + ("0" if query["sig"][-1] != "0" else "1"))
    with pytest.raises(Forbidden, match="signature does not match"):
        store.receive_upload(key, b"x", forged, "video/mp4")
    # And the same signature does not open another key or a later expiry
    with pytest.raises(Forbidden):
        store.verify_presigned("PUT", "uploads/v2", query, "video/mp4")
    with pytest.raises(Forbidden):
        store.verify_presigned(
            "PUT", key, dict(query, expires=str(int(query["expires"]) + 3600)), "video/mp4"
        )
    with pytest.raises(Forbidden):
        store.verify_presigned("GET", key, query, "video/mp4")
    assert store.head(key) is None and created == []


def test_wrong_content_type_is_forbidden(store: FileStore) -> None:
    key, query = split(store.presign_put("uploads/v1", content_type="video/mp4", expires_in=600))
    for wrong in ("video/webm", None, ""):
        with pytest.raises(Forbidden):
            store.receive_upload(key, b"x", query, wrong)
    assert store.head(key) is None


def test_expired_url_is_forbidden(store: FileStore, clock: Clock) -> None:
    key, query = split(store.presign_put("uploads/v1", content_type="video/mp4", expires_in=60))
    clock.now += 61
    with pytest.raises(Forbidden, match="expired"):
        store.receive_upload(key, b"x", query, "video/mp4")


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"sig": "ab"},
        {"expires": "1"},
        {"expires": "soon", "sig": "a" * 64},
        {"expires": "9999999999", "sig": "é" * 64},
        {"expires": "9999999999", "sig": "ab"},
        {"expires": "9999999999", "sig": ["a" * 64, "b"]},
        {"expires": ["9999999999"], "sig": []},
    ],
)
def test_unsigned_or_malformed_queries_are_forbidden(store: FileStore, query: dict[str, str]) -> None:
    with pytest.raises(Forbidden):
        store.verify_presigned("PUT", "uploads/v1", query, "video/mp4")


def test_query_values_may_arrive_as_lists(store: FileStore) -> None:
    url = store.presign_put("k", content_type="video/mp4", expires_in=60)
    store.verify_presigned("PUT", "k", parse_qs(urlsplit(url).query), "video/mp4")


def test_another_signing_key_does_not_verify(store: FileStore, tmp_path: Path) -> None:
    key, query = split(store.presign_put("k", content_type="video/mp4", expires_in=60))
    other = FileStore(store.root, public_url=PUBLIC, signing_key="another key")
    with pytest.raises(Forbidden):
        other.verify_presigned("PUT", key, query, "video/mp4")


def test_bad_expiry_and_unconfigured_store(store: FileStore, tmp_path: Path) -> None:
    for bad in (0, -1, 7 * 24 * 3600 + 1, True):
        with pytest.raises(InvalidInput):
            store.presign_put("k", content_type="video/mp4", expires_in=bad)
    bare = FileStore(tmp_path / "bare", public_url=None, signing_key=None)
    with pytest.raises(StorageError):
        bare.presign_put("k", content_type="video/mp4", expires_in=60)
    with pytest.raises(Forbidden):
        bare.verify_presigned("PUT", "k", {"expires": "9999999999", "sig": "00"}, "video/mp4")


def test_oversized_upload_is_refused_and_leaves_nothing(store: FileStore, created: list[ObjectInfo]) -> None:
    key, query = split(store.presign_put("k", content_type="video/mp4", expires_in=60))
    with pytest.raises(InvalidInput, match="larger than"):
        store.receive_upload(key, io.BytesIO(b"x" * 3_000_000), query, "video/mp4", max_bytes=2_000_000)
    assert store.head(key) is None and created == []
    assert list((store.root / ".reelay" / "tmp").iterdir()) == []


def test_a_length_bound_url_accepts_exactly_that_many_bytes(
    store: FileStore, created: list[ObjectInfo]
) -> None:
    # Given a URL signed for a 5-byte body
    key, query = split(
        store.presign_put("uploads/v1", content_type="video/mp4", expires_in=600, content_length=5)
    )
    assert query["length"] == "5"
    # When a longer or a shorter body is PUT, Then it is refused and nothing lands or is announced
    for body in (b"123456", io.BytesIO(b"x" * 100_000), b"1234", b""):
        with pytest.raises(InvalidInput, match="5 bytes"):
            store.receive_upload(key, body, query, "video/mp4")
    assert store.head(key) is None and created == []
    assert list((store.root / ".reelay" / "tmp").iterdir()) == []
    # When exactly 5 bytes are PUT, Then it lands
    store.receive_upload(key, b"12345", query, "video/mp4")
    assert store.get_bytes(key) == b"12345" and [c.size for c in created] == [5]


def test_a_create_only_url_uploads_once_and_never_replaces(
    store: FileStore, created: list[ObjectInfo]
) -> None:
    # Given a create-only URL, as the API gives for a single-PUT upload
    key, query = split(
        store.presign_put("uploads/v1", content_type="video/mp4", expires_in=600, create_only=True)
    )
    assert query["ifNoneMatch"] == "*"
    # When the client leaves out If-None-Match, or the condition is dropped from the URL, Then refused
    with pytest.raises(Forbidden, match="If-None-Match"):
        store.receive_upload(key, b"first", query, "video/mp4")
    without = {k: v for k, v in query.items() if k != "ifNoneMatch"}
    with pytest.raises(Forbidden):
        store.receive_upload(key, b"first", without, "video/mp4", if_none_match="*")
    assert created == []
    # When it uploads with the header, Then it lands once
    store.receive_upload(key, b"first", query, "video/mp4", if_none_match="*")
    # And the same URL again (other bytes) is a 412 that leaves the original and announces nothing
    with pytest.raises(PreconditionFailed) as refused:
        store.receive_upload(key, b"other", query, "video/mp4", if_none_match="*")
    assert refused.value.status == 412
    assert store.get_bytes(key) == b"first" and [c.size for c in created] == [5]
    assert list((store.root / ".reelay" / "tmp").iterdir()) == []


def test_set_tags_keeps_tags_beside_the_object(store: FileStore) -> None:
    store.put_bytes("uploads/v1", b"source", content_type="video/mp4")
    store.set_tags("uploads/v1", {"reelay-upload": "failed"})
    assert store.tags("uploads/v1") == {"reelay-upload": "failed"}
    info = store.head("uploads/v1")
    assert info is not None and (info.size, info.content_type) == (6, "video/mp4")  # the rest is kept
    with pytest.raises(NotFound):
        store.set_tags("uploads/none", {"reelay-upload": "failed"})
    with pytest.raises(InvalidInput):
        store.set_tags("uploads/v1", {"k": "a\nb"})


def test_the_bound_length_cannot_be_removed_changed_or_added(store: FileStore) -> None:
    key, bound = split(store.presign_put("k", content_type="video/mp4", expires_in=60, content_length=5))
    _, unbound = split(store.presign_put("k", content_type="video/mp4", expires_in=60))
    without = {k: v for k, v in bound.items() if k != "length"}
    for query in (without, dict(bound, length="6"), dict(unbound, length="5"), dict(bound, length="5x")):
        with pytest.raises(Forbidden):
            store.receive_upload(key, b"123456", query, "video/mp4")
    assert store.head(key) is None
    # And a length over the store's limit is refused before reading a byte
    _, huge = split(store.presign_put("k", content_type="video/mp4", expires_in=60, content_length=10))
    with pytest.raises(InvalidInput, match="limit"):
        store.receive_upload(key, b"x" * 10, huge, "video/mp4", max_bytes=9)
    for bad in (-1, True, 1.5):
        with pytest.raises(InvalidInput):
            store.presign_put("k", content_type="video/mp4", expires_in=60, content_length=bad)


def test_a_store_without_a_signing_key_says_how_to_give_it_one(tmp_path: Path) -> None:
    # Given settings without a signing key (the default: there is no built-in key)
    assert Settings().file_store_signing_key is None
    keyless = open_store(f"file://{tmp_path}/m", settings=Settings())
    # When it is asked to presign, Then the error names the setting
    with pytest.raises(StorageError, match="REELAY_FILE_STORE_SIGNING_KEY"):
        keyless.presign_put("k", content_type="video/mp4", expires_in=60)


def test_failing_callback_does_not_fail_the_upload(tmp_path: Path) -> None:
    def boom(info: ObjectInfo) -> None:
        raise RuntimeError("queue down")

    s = FileStore(tmp_path / "m", public_url=PUBLIC, signing_key=KEY, on_created=boom)
    key, query = split(s.presign_put("k", content_type="video/mp4", expires_in=60))
    assert s.receive_upload(key, b"data", query, "video/mp4")
    assert s.get_bytes("k") == b"data"


# --- multipart -------------------------------------------------------------------------------------
def upload_parts(store: FileStore, key: str, upload_id: str, chunks: list[bytes]) -> list[tuple[int, str]]:
    parts = []
    for n, chunk in enumerate(chunks, start=1):
        url = store.presign_part(key, upload_id, n, expires_in=600)
        k, query = split(url)
        assert (k, query["uploadId"], query["partNumber"]) == (key, upload_id, str(n))
        # The gateway only ever calls receive_upload: it dispatches on uploadId.
        parts.append((n, store.receive_upload(k, io.BytesIO(chunk), query, None)))
    return parts


def test_multipart_happy_path(store: FileStore, created: list[ObjectInfo]) -> None:
    # Given a multipart upload of three parts, uploaded through presigned part URLs
    upload_id = store.create_multipart("uploads/big", content_type="video/mp4")
    chunks = [b"AAAAA", b"BBBBB", b"CC"]
    parts = upload_parts(store, "uploads/big", upload_id, chunks)
    assert created == []  # parts are not objects
    # When it is completed with the parts listed out of order and ETags without quotes
    store.complete_multipart("uploads/big", upload_id, [(n, e.strip('"')) for n, e in reversed(parts)])
    # Then the object is the parts in order, typed, with a multipart ETag, and staging is gone
    assert store.get_bytes("uploads/big") == b"AAAAABBBBBCC"
    info = store.head("uploads/big")
    assert info is not None and info.content_type == "video/mp4"
    assert (store.etag("uploads/big") or "").endswith('-3"')
    assert [c.key for c in created] == ["uploads/big"]
    assert list((store.root / ".reelay" / "multipart").iterdir()) == []
    # And the upload cannot be completed twice
    with pytest.raises(NotFound):
        store.complete_multipart("uploads/big", upload_id, parts)


def test_reuploading_a_part_replaces_it(store: FileStore) -> None:
    # Given part 1 uploaded twice (a client retry with new bytes)
    upload_id = store.create_multipart("k", content_type="video/mp4")
    upload_parts(store, "k", upload_id, [b"old-part", b"tail"])
    (p1, p2) = upload_parts(store, "k", upload_id, [b"new-part", b"T"])
    # When completed with the latest ETags, Then the latest bytes win
    store.complete_multipart("k", upload_id, [p1, p2])
    assert store.get_bytes("k") == b"new-partT"


def test_a_part_url_bound_to_a_length_accepts_exactly_that_many_bytes(store: FileStore) -> None:
    # Given a part URL signed for a 5-byte part
    upload_id = store.create_multipart("uploads/v1", content_type="video/mp4")
    key, query = split(store.presign_part("uploads/v1", upload_id, 1, expires_in=600, content_length=5))
    assert query["length"] == "5"
    # When a larger or smaller part is PUT, Then it is refused and no part is staged
    for body in (b"123456", io.BytesIO(b"x" * 5_000_000), b"1234"):
        with pytest.raises(InvalidInput, match="5 bytes"):
            store.receive_upload(key, body, query, None)
    staging = store.root / ".reelay" / "multipart" / upload_id
    assert sorted(p.name for p in staging.iterdir()) == ["upload.json"]
    # And the length cannot be dropped or changed in the URL
    without = {k: v for k, v in query.items() if k != "length"}
    for forged in (without, dict(query, length="6")):
        with pytest.raises(Forbidden):
            store.receive_upload(key, b"123456", forged, None)
    # When exactly 5 bytes are PUT, Then the part is taken and completes
    etag = store.receive_upload(key, b"12345", query, None)
    store.complete_multipart("uploads/v1", upload_id, [(1, etag)])
    assert store.get_bytes("uploads/v1") == b"12345"


def test_multipart_wrong_etag_is_refused(store: FileStore, created: list[ObjectInfo]) -> None:
    upload_id = store.create_multipart("k", content_type="video/mp4")
    parts = upload_parts(store, "k", upload_id, [b"AAAAA", b"BB"])
    with pytest.raises(InvalidInput, match="part 2: the ETag does not match"):
        store.complete_multipart("k", upload_id, [parts[0], (2, '"0123456789abcdef0123456789abcdef"')])
    # Then nothing was written and the upload can still be completed correctly
    assert store.head("k") is None and created == []
    store.complete_multipart("k", upload_id, parts)
    assert store.get_bytes("k") == b"AAAAABB"


def test_multipart_bad_completions(store: FileStore) -> None:
    upload_id = store.create_multipart("k", content_type="video/mp4")
    parts = upload_parts(store, "k", upload_id, [b"AA", b"BBBBB"])
    with pytest.raises(InvalidInput, match="needs 4"):  # a small part before the last
        store.complete_multipart("k", upload_id, parts)
    with pytest.raises(InvalidInput, match="never uploaded"):
        store.complete_multipart("k", upload_id, [(3, parts[0][1])])
    with pytest.raises(InvalidInput, match="more than once"):
        store.complete_multipart("k", upload_id, [parts[1], parts[1]])
    with pytest.raises(InvalidInput):
        store.complete_multipart("k", upload_id, [])
    with pytest.raises(InvalidInput):
        store.complete_multipart("k", upload_id, [(0, parts[0][1])])
    with pytest.raises(NotFound):
        store.complete_multipart("other-key", upload_id, parts)
    with pytest.raises(NotFound):
        store.complete_multipart("k", "no-such-upload", parts)
    with pytest.raises(NotFound):
        store.complete_multipart("k", "../../etc", parts)


def test_part_urls_are_bound_to_their_upload_and_number(store: FileStore) -> None:
    upload_id = store.create_multipart("k", content_type="video/mp4")
    key, query = split(store.presign_part("k", upload_id, 1, expires_in=600))
    with pytest.raises(Forbidden):
        store.receive_upload(key, b"x", dict(query, partNumber="2"), None)
    other = store.create_multipart("k", content_type="video/mp4")
    with pytest.raises(Forbidden):
        store.receive_upload(key, b"x", dict(query, uploadId=other), None)
    with pytest.raises(NotFound):
        store.presign_part("k", "unknown", 1, expires_in=60)
    for bad in (0, 10_001):
        with pytest.raises(InvalidInput):
            store.presign_part("k", upload_id, bad, expires_in=60)


def test_abort_cleans_up_and_is_idempotent(store: FileStore) -> None:
    upload_id = store.create_multipart("k", content_type="video/mp4")
    parts = upload_parts(store, "k", upload_id, [b"AAAAA"])
    key, query = split(store.presign_part("k", upload_id, 2, expires_in=600))
    store.abort_multipart("k", upload_id)
    assert list((store.root / ".reelay" / "multipart").iterdir()) == []
    store.abort_multipart("k", upload_id)
    # Then late parts and completion find no upload
    with pytest.raises(NotFound):
        store.receive_upload(key, b"late", query, None)
    with pytest.raises(NotFound):
        store.complete_multipart("k", upload_id, parts)
    assert store.head("k") is None


# --- open_store ------------------------------------------------------------------------------------
def test_open_store_builds_a_file_store_from_settings(tmp_path: Path, created: list[ObjectInfo]) -> None:
    settings = Settings(file_store_public_url="http://gw.local/media/", file_store_signing_key="k2")
    store = open_store(f"file://{tmp_path}/m", settings=settings, on_created=created.append)
    assert isinstance(store, FileStore) and store.root == tmp_path / "m"
    url = store.presign_put("x", content_type="video/mp4", expires_in=60)
    assert url.startswith("http://gw.local/media/x?")
    key, query = url.removeprefix("http://gw.local/media/").split("?")[0], dict(parse_qs(urlsplit(url).query))
    store.receive_upload(key, b"1", query, "video/mp4")
    assert [c.key for c in created] == ["x"]


def test_open_store_rejects_bad_urls() -> None:
    with pytest.raises(InvalidInput):
        open_store("ftp://nowhere/x")


# --- segment metadata: through head AND list; the sidecar before the data ---------------------------
def test_metadata_round_trips_through_head_and_list(store: FileStore, tmp_path: Path) -> None:
    # Given segments put from bytes and from a file, each with its duration in metadata
    src = tmp_path / "seg.ts"
    src.write_bytes(b"t" * 188)
    store.put_bytes(
        "rec/s1/w1/source/00000001", b"a" * 10, content_type="video/mp2t", metadata={"Duration": "2.000"}
    )
    store.put_file(
        "rec/s1/w1/source/00000002", src, content_type="video/mp2t", metadata={"duration": "1.960"}
    )
    store.put_bytes("rec/s1/w1/source/00000003", b"c")  # no metadata at all
    # When they are listed and headed
    listed = {i.key: (i.size, i.content_type, i.metadata) for i in store.list("rec/s1/")}
    heads = {k: store.head(k) for k in listed}
    # Then the listing carries exactly what head says (names lower-cased, as S3 does)
    assert listed == {
        "rec/s1/w1/source/00000001": (10, "video/mp2t", {"duration": "2.000"}),
        "rec/s1/w1/source/00000002": (188, "video/mp2t", {"duration": "1.960"}),
        "rec/s1/w1/source/00000003": (1, None, {}),
    }
    for key, info in heads.items():
        assert info is not None and (info.size, info.content_type, info.metadata) == listed[key]


def test_the_sidecar_never_lists_and_goes_with_its_object(store: FileStore) -> None:
    # Given an object with metadata
    store.put_bytes("rec/s1/00001.ts", b"x", metadata={"duration": "2"})
    sidecar = store.root / ".reelay" / "meta" / "rec" / "s1" / "00001.ts"
    assert sidecar.is_file()
    # Then the listing holds the object alone, at any prefix
    assert [i.key for i in store.list()] == ["rec/s1/00001.ts"]
    assert [i.key for i in store.list("rec/")] == ["rec/s1/00001.ts"]
    # And deleting the object deletes its sidecar (and the sidecar's empty directories)
    store.delete("rec/s1/00001.ts")
    assert not sidecar.exists() and not (store.root / ".reelay" / "meta" / "rec").exists()
    assert list(store.list()) == []


def test_a_crash_between_sidecar_and_data_leaves_no_object_without_metadata(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a writer that dies right after the sidecar is in place, before the data rename
    import reelay.storage.file as file_module

    real_replace = file_module.os.replace
    renames: list[str] = []

    def crash_on_data(src: str | Path, dst: str | Path) -> None:
        if not str(dst).startswith(str(store.root / ".reelay")):
            raise KeyboardInterrupt("killed between sidecar and data")  # not an OSError: nothing handles it
        renames.append(str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(file_module.os, "replace", crash_on_data)
    with pytest.raises(KeyboardInterrupt):
        store.put_bytes("rec/s1/00007.ts", b"x" * 5, metadata={"duration": "2.000"})
    monkeypatch.setattr(file_module.os, "replace", real_replace)
    # Then the sidecar was written first, and no object is visible: not listed, not headed
    assert renames == [str(store.root / ".reelay" / "meta" / "rec" / "s1" / "00007.ts")]
    assert list(store.list()) == [] and store.head("rec/s1/00007.ts") is None
    # And a retry of the same put gives the object with its metadata
    store.put_bytes("rec/s1/00007.ts", b"x" * 5, metadata={"duration": "2.000"})
    assert [(i.key, i.metadata) for i in store.list()] == [("rec/s1/00007.ts", {"duration": "2.000"})]
    # And every object any put ever made visible lists with its metadata
    for n in range(3):
        store.put_bytes(f"rec/s1/0000{n}.ts", b"y", metadata={"duration": f"{n}.5"})
    assert all(i.metadata for i in store.list())


def test_an_object_put_by_hand_lists_without_metadata(store: FileStore) -> None:
    # A file dropped into the directory outside the store has no sidecar: listed, no metadata
    (store.root / "dropped.ts").write_bytes(b"zz")
    assert [(i.key, i.size, i.metadata, i.content_type) for i in store.list()] == [
        ("dropped.ts", 2, {}, None)
    ]


def test_listing_without_metadata_skips_the_sidecars_as_s3_does(store: FileStore) -> None:
    store.put_bytes("rec/1.ts", b"x", content_type="video/mp2t", metadata={"duration": "2"})
    # When the sidecars are left unread
    (item,) = store.list("rec/", metadata=False)
    # Then the item has what S3's listing has, and no more
    assert (item.key, item.size, item.content_type, item.metadata) == ("rec/1.ts", 1, None, {})
    assert item.last_modified is not None
