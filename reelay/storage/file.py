"""A directory that behaves like an S3 bucket: the local platform's object store.

Layout under ``root``:
    <key>                          object data
    .reelay/meta/<key>             JSON sidecar: content type, metadata, cache control, etag
    .reelay/multipart/<upload_id>/ staging for multipart uploads (upload.json + one file per part)
    .reelay/tmp/                   temporary files, renamed into place so readers never see halves

The sidecar tree mirrors the data tree, so two keys collide in one exactly when they collide in the
other. Keys whose first segment is ``.reelay`` are reserved.

A put renames the sidecar into place first, then the data: a crash between the two leaves an
orphan sidecar (hidden, replaced by the next put of that key) and never a visible object without
its metadata. ``list`` and ``head`` both return the metadata; ``delete`` removes the sidecar too.

Presigned URLs are ``{public_url}/{key}?expires=<unix>&sig=<hmac-sha256>`` (plus ``length`` when
the body size is bound, and ``uploadId`` and ``partNumber`` for parts). The local gateway accepts
them with :meth:`FileStore.receive_upload`; that and :meth:`FileStore.verify_presigned` are the
whole server-side contract.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlencode

from aws_lambda_powertools import Logger

from reelay.errors import Conflict, Forbidden, InvalidInput, NotFound, PreconditionFailed, StorageError
from reelay.ports import ObjectInfo
from reelay.storage.url import (
    MAX_PART_NUMBER,
    MIN_PART_BYTES,
    check_content_length,
    check_expires_in,
    check_key,
    check_metadata,
    check_prefix,
    check_tags,
)

logger = Logger(child=True)

RESERVED = ".reelay"
MAX_OBJECT_BYTES = 5 * 1024**3  # S3's limit for one PUT (and one part)
_CHUNK = 1024 * 1024
CREATE_ONLY = "*"  # the If-None-Match value of a create-only URL, as S3's conditional write takes it


def _etag(md5_hex: str) -> str:
    return f'"{md5_hex}"'


def _bare_etag(etag: str) -> str:
    return etag.strip().strip('"').lower()


def _first(value: Any) -> str | None:
    """Query values arrive as str or as a list of str, depending on the web framework."""
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    return value if isinstance(value, str) else None


class FileStore:
    """An ``ObjectStore`` on a local directory, with S3-style presigned and multipart uploads.

    ``on_created`` emulates S3's ObjectCreated notification. Rule: it fires for objects written by
    clients through presigned URLs (:meth:`receive_upload`) and by :meth:`complete_multipart`,
    never for Reelay's own ``put_bytes``/``put_file`` (the uploads are what the platform reacts
    to). The callback runs after the object is in place; like S3 event delivery, an exception in it
    is logged and does not fail the upload.
    """

    def __init__(
        self,
        root: Path,
        *,
        public_url: str | None,
        signing_key: str | None,
        on_created: Callable[[ObjectInfo], None] | None = None,
        min_part_bytes: int = MIN_PART_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        root = Path(root)
        if not root.is_absolute():
            raise InvalidInput(f"file store root {str(root)!r} must be an absolute path")
        self.root = root
        self.public_url = public_url.rstrip("/") if public_url else None
        self._signing_key = signing_key.encode() if signing_key else None
        self.on_created = on_created
        self.min_part_bytes = min_part_bytes
        self._clock = clock
        self._create_lock = threading.Lock()  # create-only installs: check and install as one step
        self._meta = root / RESERVED / "meta"
        self._uploads = root / RESERVED / "multipart"
        self._tmp = root / RESERVED / "tmp"
        try:
            for d in (self._meta, self._uploads, self._tmp):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create file store at {root}: {e.strerror}") from e

    def __repr__(self) -> str:
        return f"FileStore(file://{self.root})"

    # --- paths -----------------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        check_key(key)
        if key.split("/", 1)[0] == RESERVED:
            raise InvalidInput(f"object key {key!r} is reserved by the file store")
        if any(len(seg.encode()) > 255 for seg in key.split("/")):
            raise InvalidInput(f"object key {key!r} has a segment longer than 255 bytes")
        return self.root / key

    def local_path(self, key: str) -> Path:
        """The file holding an object, for servers that stream it (Range, sendfile). NotFound if absent."""
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"object {key!r} does not exist")
        return path

    # --- writing ---------------------------------------------------------------------------------
    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        cache_control: str | None = None,
    ) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInput("put_bytes needs bytes")
        self._write(key, [bytes(data)], content_type, metadata, cache_control)

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        cache_control: str | None = None,
    ) -> None:
        try:
            with open(path, "rb") as f:
                self._write(key, iter(lambda: f.read(_CHUNK), b""), content_type, metadata, cache_control)
        except FileNotFoundError as e:
            raise NotFound(f"local file {str(path)!r} does not exist") from e
        except IsADirectoryError as e:
            raise InvalidInput(f"local path {str(path)!r} is a directory") from e

    def _write(
        self,
        key: str,
        chunks: Iterable[bytes],
        content_type: str | None,
        metadata: Mapping[str, str] | None,
        cache_control: str | None,
        *,
        max_bytes: int | None = None,
        exact_bytes: int | None = None,
        create_only: bool = False,
    ) -> tuple[ObjectInfo, str]:
        dest = self._path(key)
        meta = check_metadata(metadata)
        tmp, size, md5 = self._spool_exact(chunks, max_bytes=max_bytes, exact_bytes=exact_bytes)
        etag = _etag(md5)
        if not create_only:
            return self._install(key, dest, tmp, size, etag, content_type, meta, cache_control), etag
        # The existence check and the install are one step, as S3's conditional write is.
        with self._create_lock:
            try:
                self._refuse_existing(key)
            except PreconditionFailed:
                tmp.unlink(missing_ok=True)
                raise
            return self._install(key, dest, tmp, size, etag, content_type, meta, cache_control), etag

    def _refuse_existing(self, key: str) -> None:
        if self._path(key).exists():
            raise PreconditionFailed(f"object {key!r} already exists, and this upload URL may only create it")

    def _spool_exact(
        self, chunks: Iterable[bytes], *, max_bytes: int | None, exact_bytes: int | None
    ) -> tuple[Path, int, str]:
        """Spool a body; with a signed length, stop reading at once past it and keep no short body."""
        if exact_bytes is None:
            return self._spool(chunks, max_bytes=max_bytes)
        try:
            tmp, size, md5 = self._spool(chunks, max_bytes=exact_bytes)
        except InvalidInput as e:
            raise InvalidInput(
                f"the body is larger than the {exact_bytes} bytes this URL was signed for"
            ) from e
        if size != exact_bytes:
            tmp.unlink(missing_ok=True)
            raise InvalidInput(
                f"the body is {size} bytes, but this URL was signed for exactly {exact_bytes} bytes"
            )
        return tmp, size, md5

    def _spool(self, chunks: Iterable[bytes], *, max_bytes: int | None) -> tuple[Path, int, str]:
        """Write chunks to a temp file under the store; returns (path, size, md5 hex)."""
        tmp = self._tmp / secrets.token_hex(12)
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        try:
            with open(tmp, "wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise InvalidInput(f"upload is larger than the limit of {max_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, size, digest.hexdigest()

    def _install(
        self,
        key: str,
        dest: Path,
        tmp: Path,
        size: int,
        etag: str,
        content_type: str | None,
        metadata: dict[str, str],
        cache_control: str | None,
    ) -> ObjectInfo:
        sidecar = {
            "contentType": content_type,
            "metadata": metadata,
            "cacheControl": cache_control,
            "etag": etag,
            "size": size,
        }
        meta_tmp = self._tmp / (tmp.name + ".meta")
        try:
            with open(meta_tmp, "w") as out:
                out.write(json.dumps(sidecar))
                out.flush()
                os.fsync(out.fileno())  # durable before the data it describes becomes visible
            self._mkdirs(key, dest.parent)
            self._mkdirs(key, (self._meta / key).parent)
            # Sidecar first: once the data is visible, its metadata already is.
            os.replace(meta_tmp, self._meta / key)
            os.replace(tmp, dest)
        except IsADirectoryError as e:
            raise Conflict(f"object key {key!r} is a prefix of other objects in the file store") from e
        except OSError as e:
            raise StorageError(f"cannot write object {key!r}: {e.strerror}") from e
        finally:
            tmp.unlink(missing_ok=True)
            meta_tmp.unlink(missing_ok=True)
        return ObjectInfo(
            key=key,
            size=size,
            content_type=content_type,
            metadata=metadata,
            last_modified=datetime.fromtimestamp(dest.stat().st_mtime, UTC),
        )

    def _mkdirs(self, key: str, directory: Path) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as e:
            raise Conflict(f"object key {key!r} lies under an existing object in the file store") from e

    # --- reading ---------------------------------------------------------------------------------
    def get_bytes(self, key: str) -> bytes:
        try:
            return self.local_path(key).read_bytes()
        except OSError as e:
            raise StorageError(f"cannot read object {key!r}: {e.strerror}") from e

    def download(self, key: str, dest: Path) -> None:
        src = self.local_path(key)
        dest = Path(dest)
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.part")
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        except FileNotFoundError as e:
            raise NotFound(f"object {key!r} or destination directory does not exist") from e
        except OSError as e:
            raise StorageError(f"cannot download object {key!r}: {e.strerror}") from e
        finally:
            tmp.unlink(missing_ok=True)

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not path.is_file():
            return None
        sidecar = self._sidecar(key)
        return ObjectInfo(
            key=key,
            size=st.st_size,
            content_type=sidecar.get("contentType"),
            metadata=dict(sidecar.get("metadata") or {}),
            last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
        )

    def etag(self, key: str) -> str | None:
        """The object's ETag as S3 would give it (quoted md5, or md5-of-md5s-N for multipart)."""
        return self._sidecar(key).get("etag") if self.head(key) else None

    def cache_control(self, key: str) -> str | None:
        return self._sidecar(key).get("cacheControl")

    def _sidecar(self, key: str) -> dict[str, Any]:
        return self._read_sidecar(os.path.join(self._meta, key))

    @staticmethod
    def _read_sidecar(path: str) -> dict[str, Any]:
        # Plain strings and one read: a listing of 432,000 segments reads as many sidecars.
        try:
            with open(path, "rb") as f:
                data = json.loads(f.read())
        except (OSError, ValueError):
            return {}  # written by hand or by an older version: data without metadata
        return data if isinstance(data, dict) else {}

    def list(self, prefix: str = "", *, metadata: bool = True) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, in S3's order (lexicographic by key).

        Items carry key, size, last_modified, content type and metadata: the sidecar is written
        before the data is renamed into place, so every listed object has its metadata (an object
        put by hand, outside the store, lists with none). S3's listing has no metadata; code meant
        for both drivers must not need it from ``list`` (the recording layout puts what a listing
        needs in the key). ``metadata=False`` skips the sidecars, as S3 does: about 3 times faster
        (one file read less per object, which counts at 432,000 segments).
        """
        check_prefix(prefix)
        base, _, _ = prefix.rpartition("/")
        start = self.root / base if base else self.root
        if base and base.split("/", 1)[0] == RESERVED:
            return
        yield from self._walk(start, base + "/" if base else "", prefix, metadata)

    def _walk(self, directory: Path, rel: str, prefix: str, metadata: bool) -> Iterator[ObjectInfo]:
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        meta_root = str(self._meta)
        # Sorting directories as "name/" makes the depth-first walk yield keys in full-key order.
        items = []
        for entry in entries:
            if not rel and entry.name == RESERVED:
                continue
            is_dir = entry.is_dir(follow_symlinks=False)
            items.append((entry.name + "/" if is_dir else entry.name, entry, is_dir))
        items.sort(key=lambda item: item[0])
        for name, entry, is_dir in items:
            key = rel + name
            if is_dir:
                # Descend only where keys can still match the prefix.
                if key.startswith(prefix) or prefix.startswith(key):
                    yield from self._walk(Path(entry.path), key, prefix, metadata)
            elif key.startswith(prefix) and entry.is_file():
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue  # deleted while we listed
                sidecar = self._read_sidecar(os.path.join(meta_root, key)) if metadata else {}
                yield ObjectInfo(
                    key=key,
                    size=st.st_size,
                    content_type=sidecar.get("contentType"),
                    metadata=dict(sidecar.get("metadata") or {}),
                    last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
                )

    # --- tags ------------------------------------------------------------------------------------
    def set_tags(self, key: str, tags: Mapping[str, str]) -> None:
        """Kept in the sidecar (nothing expires them locally: lifecycle rules are S3's)."""
        checked = check_tags(tags)
        if self.head(key) is None:
            raise NotFound(f"object {key!r} does not exist")
        sidecar = self._sidecar(key)
        sidecar["tags"] = checked
        tmp = self._tmp / (secrets.token_hex(12) + ".meta")
        try:
            tmp.write_text(json.dumps(sidecar))
            os.replace(tmp, self._meta / key)
        except OSError as e:
            raise StorageError(f"cannot tag object {key!r}: {e.strerror}") from e
        finally:
            tmp.unlink(missing_ok=True)

    def tags(self, key: str) -> dict[str, str]:
        return dict(self._sidecar(key).get("tags") or {})

    def copy(self, src_key: str, dst_key: str) -> None:
        """Copy an object and its sidecar's content type, metadata and cache control (as CopyObject)."""
        src = self.local_path(src_key)
        sidecar = self._sidecar(src_key)
        try:
            with open(src, "rb") as f:
                self._write(
                    dst_key,
                    iter(lambda: f.read(_CHUNK), b""),
                    sidecar.get("contentType"),
                    sidecar.get("metadata"),
                    sidecar.get("cacheControl"),
                )
        except FileNotFoundError as e:  # deleted between the check and the read
            raise NotFound(f"object {src_key!r} does not exist") from e

    # --- deleting --------------------------------------------------------------------------------
    def delete(self, key: str) -> None:
        """Idempotent, like S3: deleting a missing key is not an error."""
        path = self._path(key)
        try:
            if path.is_dir():
                return  # a prefix of other keys, not an object
            path.unlink(missing_ok=True)
            (self._meta / key).unlink(missing_ok=True)
        except NotADirectoryError:
            return  # a parent is an object, so this key cannot exist
        except OSError as e:
            raise StorageError(f"cannot delete object {key!r}: {e.strerror}") from e
        self._prune(path.parent, self.root)
        self._prune((self._meta / key).parent, self._meta)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under a non-empty prefix; returns how many were deleted."""
        check_prefix(prefix, allow_empty=False)
        count = 0
        for info in list(self.list(prefix, metadata=False)):
            self.delete(info.key)
            count += 1
        return count

    @staticmethod
    def _prune(directory: Path, stop: Path) -> None:
        """Remove empty directories left behind, as S3 has no directories to leave."""
        while directory != stop and stop in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    # --- presigned URLs --------------------------------------------------------------------------
    def _sign(
        self,
        method: str,
        key: str,
        expires: int,
        content_type: str,
        upload_id: str,
        part: str,
        length: str = "",
        if_none_match: str = "",
    ) -> str:
        if not self._signing_key:
            raise StorageError(
                "this file store has no signing key (set REELAY_FILE_STORE_SIGNING_KEY), "
                "so it cannot presign URLs"
            )
        fields = [method.upper(), key, str(expires), content_type, upload_id, part]
        if length:  # a separate field, so removing or adding ?length= breaks the signature
            fields.append(f"length={length}")
        if if_none_match:  # likewise for the create-only condition
            fields.append(f"if-none-match={if_none_match}")
        message = "\n".join(fields)
        return hmac.new(self._signing_key, message.encode(), hashlib.sha256).hexdigest()

    def _url(self, key: str, query: dict[str, str]) -> str:
        if not self.public_url:
            raise StorageError("this file store has no public URL, so it cannot presign URLs")
        return f"{self.public_url}/{quote(key, safe='/')}?{urlencode(query)}"

    def _expiry(self, expires_in: int) -> int:
        return int(self._clock()) + check_expires_in(expires_in)

    def presign_put(
        self,
        key: str,
        *,
        content_type: str,
        expires_in: int,
        content_length: int | None = None,
        create_only: bool = False,
    ) -> str:
        """A URL that accepts one PUT of ``key`` with exactly this Content-Type (and, when given,
        a body of exactly ``content_length`` bytes) until it expires. With ``create_only`` the
        client must send ``If-None-Match: *`` and the PUT is refused (412) once the key exists."""
        self._path(key)
        expires = self._expiry(expires_in)
        length = ""
        if content_length is not None:
            length = str(check_content_length(content_length))
        once = CREATE_ONLY if create_only else ""
        sig = self._sign("PUT", key, expires, (content_type or "").strip(), "", "", length, once)
        query = {"expires": str(expires), "sig": sig}
        if length:
            query["length"] = length
        if once:
            query["ifNoneMatch"] = once
        return self._url(key, query)

    def verify_presigned(
        self,
        method: str,
        key: str,
        query: Mapping[str, Any],
        content_type: str | None,
        if_none_match: str | None = None,
    ) -> int | None:
        """Raise ``Forbidden`` unless ``query`` is a live signature for this method, key and content
        type (content type is not bound for part uploads, as with S3), and the request carries the
        ``If-None-Match`` the URL was signed with. Returns the body length the URL binds, or None."""
        expires_raw, sig = _first(query.get("expires")), _first(query.get("sig"))
        upload_id, part = _first(query.get("uploadId")) or "", _first(query.get("partNumber")) or ""
        length = _first(query.get("length")) or ""
        once = _first(query.get("ifNoneMatch")) or ""
        if once and (if_none_match or "").strip() != once:
            # S3 likewise refuses a request that lacks a header its URL signed.
            raise Forbidden(f"this URL only creates the object: send the header If-None-Match: {once}")
        if length and not (length.isascii() and length.isdigit() and len(length) <= 20):
            raise Forbidden("the presigned URL has a malformed length")
        if not expires_raw or not sig:
            raise Forbidden("the URL is not presigned (expires and sig are required)")
        if len(sig) != 64 or not sig.isascii():
            raise Forbidden("the presigned URL has a malformed signature")
        try:
            expires = int(expires_raw)
        except ValueError as e:
            raise Forbidden("the presigned URL has a malformed expiry") from e
        bound_type = "" if upload_id else (content_type or "").strip()
        try:
            expected = self._sign(method, key, expires, bound_type, upload_id, part, length, once)
        except StorageError as e:
            raise Forbidden("this store does not accept presigned uploads") from e
        if not hmac.compare_digest(expected, sig.lower()):
            raise Forbidden(
                "the signature does not match: the URL was altered, or the Content-Type differs "
                "from the one it was signed for"
            )
        if expires < self._clock():
            raise Forbidden("the presigned URL has expired")
        return int(length) if length else None

    def receive_upload(
        self,
        key: str,
        body: bytes | IO[bytes],
        query: Mapping[str, Any],
        content_type: str | None,
        *,
        max_bytes: int = MAX_OBJECT_BYTES,
        if_none_match: str | None = None,
    ) -> str:
        """Accept the body of a presigned PUT (whole object or, with ``uploadId``, one part).

        Verifies the signature first and returns the ETag (quoted, as S3 sends it in the header).
        Fires ``on_created`` for whole objects. Raises Forbidden, NotFound (unknown upload),
        InvalidInput (bad key, too large, not the signed length) or StorageError.
        """
        if _first(query.get("uploadId")):
            return self.receive_part(key, body, query, max_bytes=max_bytes)
        self._path(key)
        length = self.verify_presigned("PUT", key, query, content_type, if_none_match)
        if length is not None and length > max_bytes:
            raise InvalidInput(f"upload is larger than the limit of {max_bytes} bytes")
        content_type = (content_type or "").strip() or None
        create_only = bool(_first(query.get("ifNoneMatch")))
        if create_only:
            self._refuse_existing(key)  # before reading a byte; checked again as it is installed
        info, etag = self._write(
            key,
            _chunks(body),
            content_type,
            None,
            None,
            max_bytes=max_bytes,
            exact_bytes=length,
            create_only=create_only,
        )
        self._notify(info)
        return etag

    def receive_part(
        self,
        key: str,
        body: bytes | IO[bytes],
        query: Mapping[str, Any],
        *,
        max_bytes: int = MAX_OBJECT_BYTES,
    ) -> str:
        """Accept one presigned part upload; returns its ETag (quoted md5 of the part)."""
        self._path(key)
        length = self.verify_presigned("PUT", key, query, None)
        upload_id = _first(query.get("uploadId")) or ""
        part_number = self._part_number(_first(query.get("partNumber")))
        staging = self._upload_dir(key, upload_id)
        tmp, _size, md5 = self._spool_exact(_chunks(body), max_bytes=max_bytes, exact_bytes=length)
        try:
            (staging / f"{part_number:05d}.etag").write_text(md5)
            os.replace(tmp, staging / f"{part_number:05d}.part")
        except FileNotFoundError as e:
            raise NotFound(f"multipart upload {upload_id!r} was completed or aborted") from e
        finally:
            tmp.unlink(missing_ok=True)
        return _etag(md5)

    def _notify(self, info: ObjectInfo) -> None:
        if self.on_created is None:
            return
        try:
            self.on_created(info)
        except Exception:
            logger.exception("object created callback failed", extra={"key": info.key})

    # --- multipart -------------------------------------------------------------------------------
    @staticmethod
    def _part_number(raw: Any) -> int:
        try:
            n = int(raw)
        except (TypeError, ValueError):
            n = 0
        if isinstance(raw, bool) or not 1 <= n <= MAX_PART_NUMBER:
            raise InvalidInput(f"part number must be from 1 to {MAX_PART_NUMBER}")
        return n

    def _upload_dir(self, key: str, upload_id: str) -> Path:
        if not upload_id or not upload_id.isascii() or not upload_id.isalnum() or len(upload_id) > 64:
            raise NotFound(f"multipart upload {upload_id!r} does not exist")
        staging = self._uploads / upload_id
        try:
            record = json.loads((staging / "upload.json").read_text())
        except (OSError, ValueError) as e:
            raise NotFound(f"multipart upload {upload_id!r} does not exist") from e
        if record.get("key") != key:
            raise NotFound(f"multipart upload {upload_id!r} is not for key {key!r}")
        return staging

    def create_multipart(self, key: str, *, content_type: str) -> str:
        self._path(key)
        upload_id = secrets.token_hex(16)
        staging = self._uploads / upload_id
        staging.mkdir(parents=True)
        record = {"key": key, "contentType": content_type, "created": self._clock()}
        (staging / "upload.json").write_text(json.dumps(record))
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
        """A part URL; with content_length it accepts a part body of exactly that many bytes."""
        self._upload_dir(key, upload_id)
        n = self._part_number(part_number)
        expires = self._expiry(expires_in)
        length = "" if content_length is None else str(check_content_length(content_length))
        sig = self._sign("PUT", key, expires, "", upload_id, str(n), length)
        query = {"uploadId": upload_id, "partNumber": str(n), "expires": str(expires), "sig": sig}
        if length:
            query["length"] = length
        return self._url(key, query)

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> None:
        """Join the listed parts in part order, after checking each ETag; fires ``on_created``."""
        staging = self._upload_dir(key, upload_id)
        record = json.loads((staging / "upload.json").read_text())
        if not parts:
            raise InvalidInput("complete needs at least one part")
        ordered = sorted((self._part_number(n), etag) for n, etag in parts)
        numbers = [n for n, _ in ordered]
        if len(set(numbers)) != len(numbers):
            raise InvalidInput("a part number is listed more than once")
        files: builtins.list[Path] = []
        md5s = b""
        for i, (n, etag) in enumerate(ordered):
            part = staging / f"{n:05d}.part"
            try:
                stored = (staging / f"{n:05d}.etag").read_text().strip()
                size = part.stat().st_size
            except FileNotFoundError as e:
                raise InvalidInput(f"part {n} was never uploaded") from e
            if not isinstance(etag, str) or _bare_etag(etag) != stored:
                raise InvalidInput(f"part {n}: the ETag does not match the uploaded part")
            if i < len(ordered) - 1 and size < self.min_part_bytes:
                raise InvalidInput(
                    f"part {n} is {size} bytes; every part but the last needs {self.min_part_bytes}"
                )
            files.append(part)
            md5s += bytes.fromhex(stored)

        def joined() -> Iterator[bytes]:
            for path in files:
                with open(path, "rb") as f:
                    while chunk := f.read(_CHUNK):
                        yield chunk

        dest = self._path(key)
        tmp, size, _ = self._spool(joined(), max_bytes=None)
        etag = f'"{hashlib.md5(md5s, usedforsecurity=False).hexdigest()}-{len(files)}"'
        info = self._install(key, dest, tmp, size, etag, record.get("contentType"), {}, None)
        shutil.rmtree(staging, ignore_errors=True)
        self._notify(info)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop the staged parts. Aborting an upload that is already gone is not an error."""
        try:
            staging = self._upload_dir(key, upload_id)
        except NotFound:
            return
        shutil.rmtree(staging, ignore_errors=True)


def _chunks(body: bytes | IO[bytes]) -> Iterator[bytes]:
    if isinstance(body, bytes | bytearray | memoryview):
        yield bytes(body)
        return
    read = getattr(body, "read", None)
    if read is None:
        raise InvalidInput("upload body must be bytes or a readable stream")
    while chunk := read(_CHUNK):
        yield chunk


__all__ = ["MAX_OBJECT_BYTES", "MIN_PART_BYTES", "FileStore"]
