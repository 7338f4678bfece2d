"""Object store URLs: the one parser. See DESIGN.md "Object store URLs".

    s3://KEY:SECRET@region/bucket[/prefix]            explicit credentials
    s3://region/bucket[/prefix]                       ambient credentials (task role, env, profile)
    s3+http(s)://KEY:SECRET@host[:port]/bucket[/prefix]  S3-compatible stores (MinIO, moto, ...)
    file:///abs/path                                  a local directory

KEY and SECRET must be URL-encoded (an AWS secret may hold '/' or '+'). Secrets never appear in
``str()``, ``repr()`` or error messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import unquote

from reelay.errors import InvalidInput

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
# S3's bucket naming rules, plus '_' which older S3-compatible stores allow.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
_HOST = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:\d{1,5})?$")
_FORMS = (
    "s3://KEY:SECRET@region/bucket[/prefix], s3://region/bucket[/prefix], "
    "s3+https://KEY:SECRET@host:port/bucket[/prefix] or file:///abs/path"
)
MAX_KEY_BYTES = 1024
# S3's limits, kept by every driver so code that works on the file store works on S3.
MAX_EXPIRES = 7 * 24 * 3600  # SigV4 presigned URLs live at most a week
MAX_PART_NUMBER = 10_000
MIN_PART_BYTES = 5 * 1024**2  # every part but the last


@dataclass(frozen=True)
class StoreLocation:
    """Where a store lives. ``root`` is set for file stores; the rest for S3 stores."""

    scheme: Literal["s3", "file"]
    bucket: str = ""
    prefix: str = ""  # "" or ends with "/"
    region: str | None = None
    endpoint_url: str | None = None  # only for s3+http(s) stores
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    root: Path | None = None  # absolute directory of a file store

    def redacted(self) -> str:
        """The URL with the secret replaced by ***: safe for logs and API responses."""
        if self.scheme == "file":
            return f"file://{self.root}"
        creds = f"{self.access_key}:***@" if self.access_key else ""
        path = f"{self.bucket}/{self.prefix}".rstrip("/")
        if self.endpoint_url:
            proto, _, host = self.endpoint_url.partition("://")
            return f"s3+{proto}://{creds}{host}/{path}"
        return f"s3://{creds}{self.region}/{path}"

    def __str__(self) -> str:
        return self.redacted()

    def __repr__(self) -> str:
        return f"StoreLocation({self.redacted()!r})"


# The one rule, the parser's too: the LAST '@' ends the userinfo. A password holding a raw '@' (or a
# raw '/', which the parser refuses) is hidden whole; a URL with '@' in its path or query is hidden
# up to that '@': too much, never too little.
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@]*):.*@", re.DOTALL)


def redact_url(url: str) -> str:
    """Hide the password part of any URL-like string, even one that does not parse."""
    return _USERINFO.sub(r"\1:***@", url.strip()) if url else url


def parse_store_url(url: str) -> StoreLocation:
    """Parse an object store URL. Raises ``InvalidInput`` naming what is wrong (never the secret)."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput(f"object store URL is empty; use {_FORMS}")
    url = url.strip()
    shown = redact_url(url)
    scheme, sep, rest = url.partition("://")
    if not sep:
        if url.startswith("file:"):
            raise InvalidInput(f"file store URL {shown!r} must be file:///abs/path (three slashes)")
        raise InvalidInput(f"{shown!r} is not an object store URL; use {_FORMS}")
    scheme = scheme.lower()
    if "?" in rest or "#" in rest:
        raise InvalidInput(f"object store URL {shown!r} must not have a query or fragment")
    if scheme == "file":
        return _parse_file(rest, shown)
    if scheme in ("s3", "s3+http", "s3+https"):
        return _parse_s3(scheme, rest, shown)
    raise InvalidInput(f"unknown object store scheme {scheme!r} in {shown!r}; use {_FORMS}")


def _parse_file(rest: str, shown: str) -> StoreLocation:
    host, _, path = rest.partition("/")
    if host and host != "localhost":
        raise InvalidInput(
            f"file store URL {shown!r} must be file:///abs/path with an absolute path "
            f"(got host or relative path {host!r})"
        )
    path = unquote("/" + path)
    if path == "/" or not path.strip("/"):
        raise InvalidInput(f"file store URL {shown!r} must name a directory, not the filesystem root")
    parts = PurePosixPath(path).parts
    if ".." in parts or "\x00" in path:
        raise InvalidInput(f"file store URL {shown!r} must not contain '..' or NUL")
    return StoreLocation(scheme="file", root=Path(PurePosixPath(path)))


def _parse_s3(scheme: str, rest: str, shown: str) -> StoreLocation:
    authority, _, path = rest.partition("/")
    if "@" in path:
        raise InvalidInput(
            f"object store URL {shown!r} has '@' after the first '/': URL-encode the key and secret "
            "('/' as %2F, '+' as %2B)"
        )
    access_key = secret_key = None
    if "@" in authority:
        creds, _, host = authority.rpartition("@")
        key_raw, colon, secret_raw = creds.partition(":")
        access_key, secret_key = unquote(key_raw), unquote(secret_raw)
        if not colon or not access_key or not secret_key:
            raise InvalidInput(
                f"object store URL {shown!r} needs both KEY and SECRET before '@' (KEY:SECRET@)"
            )
    else:
        host = authority
    bucket, _, prefix = path.partition("/")
    prefix = prefix.strip("/")
    if not host:
        raise InvalidInput(f"object store URL {shown!r} has no region or host")
    if not bucket:
        raise InvalidInput(f"object store URL {shown!r} has no bucket; use {_FORMS}")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise InvalidInput(
            f"{bucket!r} in {shown!r} is not a valid bucket name (3-63 lowercase letters, digits, '.', '-')"
        )
    if prefix:
        check_prefix(prefix)
        prefix += "/"
    if scheme == "s3":
        region = host.lower()
        if not _REGION.match(region):
            raise InvalidInput(
                f"{host!r} in {shown!r} is not an AWS region: use s3://region/bucket[/prefix], "
                "e.g. s3://eu-west-1/my-bucket"
            )
        return StoreLocation(
            scheme="s3",
            bucket=bucket,
            prefix=prefix,
            region=region,
            access_key=access_key,
            secret_key=secret_key,
        )
    if not _HOST.match(host):
        raise InvalidInput(f"{host!r} in {shown!r} is not a valid host[:port]")
    if ":" in host and not host.endswith("]"):
        port = int(host.rsplit(":", 1)[1])
        if not 1 <= port <= 65535:
            raise InvalidInput(f"port {port} in {shown!r} is out of range")
    proto = scheme.split("+", 1)[1]
    return StoreLocation(
        scheme="s3",
        bucket=bucket,
        prefix=prefix,
        endpoint_url=f"{proto}://{host}",
        access_key=access_key,
        secret_key=secret_key,
    )


def check_key(key: str) -> str:
    """Validate an object key relative to a store. The same rules for every driver, so code that
    works on the local file store works on S3: no empty, absolute, '.' or '..' segments."""
    if not isinstance(key, str) or not key:
        raise InvalidInput("object key must be a non-empty string")
    if key.endswith("/"):
        raise InvalidInput(f"object key {key!r} must not end with '/'")
    _check_path(key, "key")
    return key


def check_prefix(prefix: str, *, allow_empty: bool = True) -> str:
    """Validate a listing/deletion prefix. It may end mid-segment ("recordings/s1/seg-0")."""
    if not isinstance(prefix, str):
        raise InvalidInput("object prefix must be a string")
    if not prefix:
        if allow_empty:
            return prefix
        raise InvalidInput("object prefix must not be empty")
    _check_path(prefix.removesuffix("/"), "prefix")
    return prefix


_META_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")  # an HTTP header token (x-amz-meta-<name>)
_META_VALUE = re.compile(r"^[\x20-\x7e]*$")  # printable ASCII: S3 refuses the rest (as headers)
MAX_METADATA_BYTES = 2048  # S3's limit on user metadata, names and values together


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Object metadata as every driver stores it: names lower-cased (S3 does it), printable ASCII
    values, at most 2 KB in all. The same rules everywhere, so metadata the file store takes S3 takes."""
    meta = dict(metadata or {})
    total = 0
    for k, v in meta.items():
        if not isinstance(k, str) or not isinstance(v, str) or not k:
            raise InvalidInput("object metadata must map non-empty strings to strings")
        if not _META_NAME.match(k):
            raise InvalidInput(
                f"object metadata name {k!r} must be letters, digits and - _ . (an HTTP token)"
            )
        if not _META_VALUE.match(v):
            raise InvalidInput(f"object metadata {k!r} must be printable ASCII (URL-encode anything else)")
        total += len(k) + len(v)
    if total > MAX_METADATA_BYTES:
        raise InvalidInput(f"object metadata is {total} bytes; S3 allows at most {MAX_METADATA_BYTES}")
    lowered = {k.lower(): v for k, v in meta.items()}
    if len(lowered) != len(meta):
        raise InvalidInput("object metadata names must differ in more than case (S3 lower-cases them)")
    return lowered


_TAG = re.compile(r"^[A-Za-z0-9 +\-=._:/@]*$")


def check_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """Object tags as S3 takes them: at most 10, keys of 1-128 and values of 0-256 plain characters."""
    checked = dict(tags)
    if len(checked) > 10:
        raise InvalidInput("an object takes at most 10 tags")
    for k, v in checked.items():
        if not isinstance(k, str) or not isinstance(v, str) or not 1 <= len(k) <= 128 or len(v) > 256:
            raise InvalidInput("object tags map keys of 1-128 characters to values of at most 256")
        if not _TAG.match(k) or not _TAG.match(v):
            raise InvalidInput(f"object tag {k!r} has characters S3 does not allow in tags")
    return checked


def check_expires_in(expires_in: int) -> int:
    """Seconds a presigned URL lives: 1 to ``MAX_EXPIRES``."""
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or not 1 <= expires_in <= MAX_EXPIRES:
        raise InvalidInput(f"expires_in must be from 1 to {MAX_EXPIRES} seconds")
    return expires_in


def check_content_length(content_length: int) -> int:
    if isinstance(content_length, bool) or not isinstance(content_length, int) or content_length < 0:
        raise InvalidInput("content length must be a whole number of bytes, 0 or more")
    return content_length


def _check_path(path: str, what: str) -> None:
    if path.startswith("/"):
        raise InvalidInput(f"object {what} {path!r} must be relative, not start with '/'")
    if "\x00" in path or "\\" in path:
        raise InvalidInput(f"object {what} {path!r} must not contain NUL or backslash")
    if len(path.encode()) > MAX_KEY_BYTES:
        raise InvalidInput(f"object {what} is longer than {MAX_KEY_BYTES} bytes")
    if any(seg in ("", ".", "..") for seg in path.split("/")):
        raise InvalidInput(f"object {what} {path!r} must not contain empty, '.' or '..' segments")


__all__ = [
    "MAX_EXPIRES",
    "MAX_KEY_BYTES",
    "MAX_METADATA_BYTES",
    "MAX_PART_NUMBER",
    "MIN_PART_BYTES",
    "StoreLocation",
    "check_content_length",
    "check_expires_in",
    "check_key",
    "check_metadata",
    "check_prefix",
    "parse_store_url",
    "redact_url",
]
