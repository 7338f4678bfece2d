"""The S3 driver: one bucket plus an optional key prefix, on AWS or any S3-compatible store."""

from __future__ import annotations

import builtins
import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from reelay.adapters.aws import client as aws_client
from reelay.errors import InvalidInput, NotFound, ReelayError, StorageError
from reelay.ports import ObjectInfo
from reelay.settings import Settings
from reelay.storage.url import (
    MAX_PART_NUMBER,
    StoreLocation,
    check_content_length,
    check_expires_in,
    check_key,
    check_metadata,
    check_prefix,
    check_tags,
)

_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
# A client that completes a multipart upload badly (wrong ETag, tiny part) gave bad input.
_CLIENT_FAULT = {"InvalidPart", "InvalidPartOrder", "EntityTooSmall", "InvalidArgument", "MalformedXML"}


class S3Store:
    """An ``ObjectStore`` on S3. Keys are relative to the location's prefix.

    ClientError codes become domain errors: missing keys and uploads -> NotFound, client mistakes in
    multipart completion -> InvalidInput, everything else -> StorageError. Messages name the
    operation, bucket and key, never credentials.
    """

    def __init__(
        self, location: StoreLocation, client: Any = None, *, settings: Settings | None = None
    ) -> None:
        if location.scheme != "s3":
            raise InvalidInput(f"S3Store needs an s3 location, not {location}")
        self.location = location
        self.bucket = location.bucket
        self.prefix = location.prefix
        self._client = client or aws_client(
            "s3",
            settings,
            endpoint_url=location.endpoint_url,
            region=location.region,
            access_key=location.access_key,
            secret_key=location.secret_key,
        )

    def __repr__(self) -> str:
        return f"S3Store({self.location.redacted()})"

    @property
    def client(self) -> Any:
        """The boto3 client (for botocore event hooks and tests). It holds the credentials: never log it."""
        return self._client

    # --- keys ------------------------------------------------------------------------------------
    def full_key(self, key: str) -> str:
        """The bucket key for a store key."""
        return self.prefix + check_key(key)

    def relative_key(self, bucket_key: str) -> str | None:
        """The store key for a bucket key (e.g. from an S3 event), or None if outside the prefix."""
        if not bucket_key.startswith(self.prefix) or bucket_key == self.prefix:
            return None
        return bucket_key[len(self.prefix) :]

    def _fail(self, op: str, key: str, err: Exception) -> ReelayError:
        where = f"s3://{self.bucket}/{self.prefix}{key}"
        if isinstance(err, ClientError):
            code = str(err.response.get("Error", {}).get("Code", ""))
            message = str(err.response.get("Error", {}).get("Message", "")) or code
            if code in _NOT_FOUND:
                return NotFound(f"object {key!r} does not exist")
            if code == "NoSuchUpload":
                return NotFound(f"multipart upload for {key!r} does not exist (completed or aborted)")
            if code == "NoSuchBucket":
                return StorageError(f"{op} {where}: bucket {self.bucket!r} does not exist (NoSuchBucket)")
            if code in _CLIENT_FAULT:
                return InvalidInput(f"{op} {where}: {message}")
            return StorageError(f"{op} {where} failed: {code} {message}".strip())
        # Connection and credential problems: name the class, as botocore messages may echo URLs.
        return StorageError(f"{op} {where} failed: {type(err).__name__}")

    # --- writing ---------------------------------------------------------------------------------
    @staticmethod
    def _extra(content_type: str | None, metadata: dict[str, str] | None, cache_control: str | None) -> dict:
        extra: dict[str, Any] = {}
        if content_type:
            extra["ContentType"] = content_type
        if metadata:
            extra["Metadata"] = check_metadata(metadata)
        if cache_control:
            extra["CacheControl"] = cache_control
        return extra

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
        extra = self._extra(content_type, metadata, cache_control)
        try:
            self._client.put_object(Bucket=self.bucket, Key=self.full_key(key), Body=bytes(data), **extra)
        except (ClientError, BotoCoreError) as e:
            raise self._fail("put", key, e) from e

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        cache_control: str | None = None,
    ) -> None:
        extra = self._extra(content_type, metadata, cache_control)
        full = self.full_key(key)
        path = Path(path)
        if not path.exists():
            raise NotFound(f"local file {str(path)!r} does not exist")
        if path.is_dir():
            raise InvalidInput(f"local path {str(path)!r} is a directory")
        try:
            # upload_file switches to multipart (in parallel) for large files.
            self._client.upload_file(str(path), self.bucket, full, ExtraArgs=extra or None)
        except (ClientError, BotoCoreError) as e:
            raise self._fail("put", key, e) from e
        except Exception as e:  # s3transfer wraps ClientError in S3UploadFailedError
            cause = e.__cause__ or e.__context__
            if isinstance(cause, ClientError | BotoCoreError):
                raise self._fail("put", key, cause) from e
            raise StorageError(f"put s3://{self.bucket}/{full} failed: {type(e).__name__}") from e

    # --- reading ---------------------------------------------------------------------------------
    def get_bytes(self, key: str) -> bytes:
        try:
            resp = self._client.get_object(Bucket=self.bucket, Key=self.full_key(key))
            return resp["Body"].read()
        except (ClientError, BotoCoreError) as e:
            raise self._fail("get", key, e) from e

    def download(self, key: str, dest: Path) -> None:
        """Download to ``dest`` atomically (a temp file next to it, then rename)."""
        dest = Path(dest)
        if not dest.parent.is_dir():
            raise NotFound(f"destination directory {str(dest.parent)!r} does not exist")
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.part")
        try:
            self._client.download_file(self.bucket, self.full_key(key), str(tmp))
            os.replace(tmp, dest)
        except (ClientError, BotoCoreError) as e:
            raise self._fail("download", key, e) from e
        finally:
            tmp.unlink(missing_ok=True)

    def head(self, key: str) -> ObjectInfo | None:
        try:
            resp = self._client.head_object(Bucket=self.bucket, Key=self.full_key(key))
        except ClientError as e:
            err = self._fail("head", key, e)
            if isinstance(err, NotFound):
                return None
            raise err from e
        except BotoCoreError as e:
            raise self._fail("head", key, e) from e
        return ObjectInfo(
            key=key,
            size=int(resp.get("ContentLength", 0)),
            content_type=resp.get("ContentType"),
            metadata=dict(resp.get("Metadata") or {}),
            last_modified=resp.get("LastModified"),
        )

    def list(self, prefix: str = "", *, metadata: bool = True) -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` (paginated, 1000 keys a request), in key order.

        Items carry key, size and last_modified only: ListObjectsV2 returns no content type and no
        user metadata, and fetching them would cost one HEAD per object. Use ``head`` for one object;
        code that lists many (the recording layout) puts what it needs in the key. ``metadata`` is
        accepted so both drivers take the same call (the file store can list metadata; S3 cannot).
        """
        check_prefix(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for obj in page.get("Contents", []):
                    key = self.relative_key(obj["Key"])
                    if key is None:
                        continue
                    yield ObjectInfo(
                        key=key, size=int(obj.get("Size", 0)), last_modified=obj.get("LastModified")
                    )
        except (ClientError, BotoCoreError) as e:
            raise self._fail("list", prefix, e) from e

    # --- deleting --------------------------------------------------------------------------------
    def delete(self, key: str) -> None:
        """Idempotent, like S3: deleting a missing key is not an error."""
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self.full_key(key))
        except (ClientError, BotoCoreError) as e:
            raise self._fail("delete", key, e) from e

    def copy(self, src_key: str, dst_key: str) -> None:
        """A server-side copy (CopyObject: the object's headers and metadata come along)."""
        source = {"Bucket": self.bucket, "Key": self.full_key(src_key)}
        try:
            self._client.copy_object(
                Bucket=self.bucket, Key=self.full_key(dst_key), CopySource=source, MetadataDirective="COPY"
            )
        except ClientError as e:
            if str(e.response.get("Error", {}).get("Code", "")) != "InvalidRequest":
                raise self._fail("copy", src_key, e) from e
            # CopyObject takes at most 5 GiB (a long recording's MP4): the managed copy goes in parts.
            try:
                self._client.copy(source, self.bucket, self.full_key(dst_key))
            except (ClientError, BotoCoreError) as e2:
                raise self._fail("copy", src_key, e2) from e2
        except BotoCoreError as e:
            raise self._fail("copy", src_key, e) from e

    def set_tags(self, key: str, tags: Mapping[str, str]) -> None:
        tag_set = [{"Key": k, "Value": v} for k, v in sorted(check_tags(tags).items())]
        try:
            self._client.put_object_tagging(
                Bucket=self.bucket, Key=self.full_key(key), Tagging={"TagSet": tag_set}
            )
        except (ClientError, BotoCoreError) as e:
            raise self._fail("tag", key, e) from e

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under a non-empty prefix, 1000 per request; returns how many."""
        check_prefix(prefix, allow_empty=False)
        deleted = 0
        batch: builtins.list[str] = []
        for info in self.list(prefix):
            batch.append(self.prefix + info.key)
            if len(batch) == _DELETE_BATCH:
                deleted += self._delete_batch(prefix, batch)
                batch = []
        if batch:
            deleted += self._delete_batch(prefix, batch)
        return deleted

    def _delete_batch(self, prefix: str, keys: builtins.list[str]) -> int:
        try:
            resp = self._client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
            )
        except (ClientError, BotoCoreError) as e:
            raise self._fail("delete", prefix, e) from e
        errors = resp.get("Errors") or []
        if errors:
            first = errors[0]
            raise StorageError(
                f"delete under s3://{self.bucket}/{self.prefix}{prefix}: {len(errors)} objects not deleted "
                f"(first: {first.get('Key')}: {first.get('Code')})"
            )
        return len(keys)

    # --- presigned and multipart uploads ---------------------------------------------------------
    @staticmethod
    def _check_part(part_number: int) -> int:
        if (
            isinstance(part_number, bool)
            or not isinstance(part_number, int)
            or not 1 <= part_number <= MAX_PART_NUMBER
        ):
            raise InvalidInput(f"part number must be from 1 to {MAX_PART_NUMBER}")
        return part_number

    def _presign(self, op: str, key: str, params: dict[str, Any], expires_in: int) -> str:
        try:
            return self._client.generate_presigned_url(
                op, Params={"Bucket": self.bucket, "Key": self.full_key(key), **params}, ExpiresIn=expires_in
            )
        except (ClientError, BotoCoreError) as e:
            raise self._fail("presign", key, e) from e

    def presign_put(
        self,
        key: str,
        *,
        content_type: str,
        expires_in: int,
        content_length: int | None = None,
        create_only: bool = False,
    ) -> str:
        """A URL for one PUT; the client must send exactly this Content-Type and, when given, this
        Content-Length (both are signed headers, so S3 refuses any other size). With create_only,
        ``If-None-Match: *`` is signed too: S3's conditional write refuses (412) once the key exists."""
        params: dict[str, Any] = {"ContentType": content_type}
        if content_length is not None:
            params["ContentLength"] = check_content_length(content_length)
        if create_only:
            params["IfNoneMatch"] = "*"
        return self._presign("put_object", key, params, check_expires_in(expires_in))

    def create_multipart(self, key: str, *, content_type: str) -> str:
        try:
            resp = self._client.create_multipart_upload(
                Bucket=self.bucket, Key=self.full_key(key), ContentType=content_type
            )
        except (ClientError, BotoCoreError) as e:
            raise self._fail("create multipart upload", key, e) from e
        return str(resp["UploadId"])

    def presign_part(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        *,
        expires_in: int,
        content_length: int | None = None,
    ) -> str:
        """A URL for one part; with content_length, Content-Length is a signed header, so S3 refuses
        a part body of any other size (unsigned, a part could carry up to 5 GiB)."""
        if not upload_id:
            raise InvalidInput("upload id must not be empty")
        params: dict[str, Any] = {"UploadId": upload_id, "PartNumber": self._check_part(part_number)}
        if content_length is not None:
            params["ContentLength"] = check_content_length(content_length)
        return self._presign("upload_part", key, params, check_expires_in(expires_in))

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> None:
        """parts: (part_number, etag) in any order; ETags with or without quotes."""
        if not upload_id:
            raise InvalidInput("upload id must not be empty")
        if not parts:
            raise InvalidInput("complete needs at least one part")
        ordered = sorted((self._check_part(n), etag) for n, etag in parts)
        if len({n for n, _ in ordered}) != len(ordered):
            raise InvalidInput("a part number is listed more than once")
        if not all(isinstance(etag, str) and etag.strip('" ') for _, etag in ordered):
            raise InvalidInput("every part needs its ETag")
        upload = {
            "Parts": [{"PartNumber": n, "ETag": f'"{etag.strip().strip(chr(34))}"'} for n, etag in ordered]
        }
        try:
            self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=self.full_key(key), UploadId=upload_id, MultipartUpload=upload
            )
        except (ClientError, BotoCoreError) as e:
            raise self._fail("complete multipart upload", key, e) from e

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Aborting an upload that is already gone is not an error."""
        if not upload_id:
            raise InvalidInput("upload id must not be empty")
        try:
            self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.full_key(key), UploadId=upload_id
            )
        except ClientError as e:
            err = self._fail("abort multipart upload", key, e)
            if not isinstance(err, NotFound):
                raise err from e
        except BotoCoreError as e:
            raise self._fail("abort multipart upload", key, e) from e


__all__ = ["S3Store"]
