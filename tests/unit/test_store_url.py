"""Object store URLs: every accepted form, every rejected form, and secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelay.errors import InvalidInput
from reelay.storage.url import (
    MAX_METADATA_BYTES,
    StoreLocation,
    check_key,
    check_metadata,
    check_prefix,
    parse_store_url,
    redact_url,
)

SECRET = "wJalr/XUtnFEMI+K7MDENG"  # has '/' and '+', so it must arrive URL-encoded
ENCODED = "wJalr%2FXUtnFEMI%2BK7MDENG"


def test_s3_with_credentials_decodes_key_and_secret() -> None:
    # Given an s3 URL with URL-encoded credentials and a prefix
    url = f"s3://AKIA%2BEXAMPLE:{ENCODED}@eu-west-1/my-bucket/media/videos/"
    # When it is parsed
    loc = parse_store_url(url)
    # Then every part is decoded and the prefix ends with one slash
    assert loc == StoreLocation(
        scheme="s3",
        bucket="my-bucket",
        prefix="media/videos/",
        region="eu-west-1",
        access_key="AKIA+EXAMPLE",
        secret_key=SECRET,
    )
    assert loc.endpoint_url is None and loc.root is None


def test_s3_with_ambient_credentials_and_no_prefix() -> None:
    # Given an s3 URL with only region and bucket
    loc = parse_store_url("s3://us-gov-west-1/bucket.with.dots")
    # Then credentials are left to the ambient chain
    assert (loc.scheme, loc.region, loc.bucket, loc.prefix) == ("s3", "us-gov-west-1", "bucket.with.dots", "")
    assert loc.access_key is None and loc.secret_key is None


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("s3+http://minio:minio123@127.0.0.1:9000/media/rec", "http://127.0.0.1:9000"),
        ("s3+https://K:S@storage.example.com/media/rec", "https://storage.example.com"),
        ("s3+http://K:S@[::1]:9000/media/rec", "http://[::1]:9000"),
    ],
)
def test_s3_compatible_store_gets_an_endpoint(url: str, endpoint: str) -> None:
    # When an S3-compatible URL is parsed
    loc = parse_store_url(url)
    # Then the host becomes the endpoint and no AWS region is implied
    assert loc.endpoint_url == endpoint
    assert (loc.bucket, loc.prefix, loc.region) == ("media", "rec/", None)


def test_s3_compatible_store_without_credentials_uses_ambient_ones() -> None:
    loc = parse_store_url("s3+http://localhost:5000/bucket")
    assert loc.endpoint_url == "http://localhost:5000" and loc.access_key is None


@pytest.mark.parametrize(
    ("url", "root"),
    [
        ("file:///var/lib/reelay/media", "/var/lib/reelay/media"),
        ("file:///tmp/with%20space/", "/tmp/with space"),
        ("file://localhost/srv/media", "/srv/media"),
    ],
)
def test_file_urls(url: str, root: str) -> None:
    loc = parse_store_url(url)
    assert loc.scheme == "file" and loc.root == Path(root)
    assert str(loc) == f"file://{root}"


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("/abs/path", "not an object store URL"),
        ("file:relative/path", "three slashes"),
        ("file://relative/path", "absolute path"),
        ("file:///", "filesystem root"),
        ("file:///srv/../etc", "'..'"),
        ("gs://us-east-1/bucket", "unknown object store scheme 'gs'"),
        ("http://host/bucket", "unknown object store scheme"),
        ("s3://us-east-1", "no bucket"),
        ("s3://us-east-1/", "no bucket"),
        ("s3:///bucket", "no region or host"),
        ("s3://my-bucket/prefix", "not an AWS region"),
        ("s3://us-east-1/Upper_Case", "not a valid bucket name"),
        ("s3://us-east-1/ab", "not a valid bucket name"),
        ("s3://us-east-1/bucket/a//b", "empty, '.' or '..'"),
        ("s3://us-east-1/bucket/../x", "empty, '.' or '..'"),
        ("s3://KEY@us-east-1/bucket", "both KEY and SECRET"),
        ("s3://:secret@us-east-1/bucket", "both KEY and SECRET"),
        ("s3://KEY:@us-east-1/bucket", "both KEY and SECRET"),
        ("s3://us-east-1/bucket?versioning=1", "query or fragment"),
        ("s3+http://K:S@bad host:9000/bucket", "not a valid host"),
        ("s3+http://K:S@host:99999/bucket", "out of range"),
        ("s3+ftp://K:S@host/bucket", "unknown object store scheme"),
    ],
)
def test_bad_urls_are_rejected_with_a_clear_message(url: str, complaint: str) -> None:
    # When a malformed URL is parsed, Then InvalidInput says what is wrong
    with pytest.raises(InvalidInput) as err:
        parse_store_url(url)
    assert complaint in err.value.message


def test_unencoded_slash_in_secret_is_explained_without_showing_it() -> None:
    # Given a secret pasted raw, with a '/' that splits the URL in the wrong place
    url = f"s3://AKIAEXAMPLE:{SECRET}@us-east-1/bucket"
    # When it is parsed
    with pytest.raises(InvalidInput) as err:
        parse_store_url(url)
    # Then the message asks for URL-encoding and leaks no part of the secret
    assert "URL-encode" in err.value.message
    assert "XUtnFEMI" not in err.value.message and "wJalr" not in err.value.message


@pytest.mark.parametrize(
    "url",
    [
        f"s3://AKIAEXAMPLE:{ENCODED}@us-east-1/NOT_A_BUCKET",
        f"s3://AKIAEXAMPLE:{ENCODED}@nowhere/bucket",
        f"s3+http://AKIAEXAMPLE:{ENCODED}@h:0x/bucket",
    ],
)
def test_errors_never_show_the_secret(url: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_store_url(url)
    assert ENCODED not in err.value.message and SECRET not in err.value.message
    assert "***" in err.value.message


def test_str_repr_and_redacted_hide_the_secret() -> None:
    # Given a location with a secret
    loc = parse_store_url(f"s3+https://AKIAEXAMPLE:{ENCODED}@minio.local:9000/media/p")
    # Then no textual form shows it
    for text in (str(loc), repr(loc), loc.redacted(), f"{loc}", repr([loc])):
        assert SECRET not in text and ENCODED not in text
    assert loc.redacted() == "s3+https://AKIAEXAMPLE:***@minio.local:9000/media/p"
    assert parse_store_url(f"s3://AK:{ENCODED}@us-east-1/b-1").redacted() == "s3://AK:***@us-east-1/b-1"
    assert parse_store_url("s3://us-east-1/b-1/x").redacted() == "s3://us-east-1/b-1/x"


def test_redact_url_hides_passwords_in_any_url() -> None:
    assert redact_url("s3://K:S3CR3T@region/b") == "s3://K:***@region/b"
    assert redact_url("mysql://root:pw@127.0.0.1:3306/db") == "mysql://root:***@127.0.0.1:3306/db"
    assert redact_url("file:///x") == "file:///x"


@pytest.mark.parametrize("key", ["a", "videos/abc/720p/index.m3u8", "dir/.hidden", "spaces ok/ünïcode.ts"])
def test_good_keys_pass(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(
    "key", ["", "/abs", "a/../b", "..", "./a", "a//b", "a/", "a\\b", "nul\x00", "x" * 1025, 7]
)
def test_bad_keys_are_invalid_input(key: str) -> None:
    with pytest.raises(InvalidInput):
        check_key(key)  # type: ignore[arg-type]


def test_prefixes_may_be_empty_or_partial_but_not_escape() -> None:
    assert check_prefix("") == ""
    assert check_prefix("recordings/s1/seg-0") == "recordings/s1/seg-0"
    assert check_prefix("outputs/v1/") == "outputs/v1/"
    for bad in ("/", "../x", "a//", "/abs/"):
        with pytest.raises(InvalidInput):
            check_prefix(bad)
    with pytest.raises(InvalidInput):
        check_prefix("", allow_empty=False)


# --- a raw '@' in the password: the last '@' before the host ends the userinfo ---------------------
@pytest.mark.parametrize(
    ("url", "secret", "endpoint"),
    [
        ("s3://AKIAEXAMPLE:p@ss@us-east-1/bucket/rec", "p@ss", None),
        ("s3://AKIAEXAMPLE:@@@@us-east-1/bucket", "@@@", None),
        ("s3+https://minio:s3cr@t@minio.local:9000/media", "s3cr@t", "https://minio.local:9000"),
    ],
)
def test_a_raw_at_sign_in_the_secret_parses_and_never_shows(url: str, secret: str, endpoint: str) -> None:
    # When a URL whose secret holds an unencoded '@' is parsed
    loc = parse_store_url(url)
    # Then the last '@' split it: the secret is whole, the host is right
    assert loc.secret_key == secret
    assert loc.endpoint_url == endpoint
    assert loc.bucket in ("bucket", "media")
    # And no textual form, nor redact_url of the raw URL, shows any part of it
    for text in (str(loc), repr(loc), loc.redacted(), redact_url(url)):
        assert secret not in text and "ss@" not in text and "cr@" not in text
        assert ":***@" in text


@pytest.mark.parametrize(
    "url",
    [
        "s3://AKIAEXAMPLE:hunter@2@nowhere/bucket",  # not a region
        "s3://AKIAEXAMPLE:hunter@2@us-east-1/NOT_A_BUCKET",
        "s3://AKIAEXAMPLE:hunter@2/x@us-east-1/bucket",  # a raw '/' too: '@' after the first '/'
        "s3+http://AKIAEXAMPLE:hunter@2@bad host/bucket",
    ],
)
def test_errors_for_urls_with_a_raw_at_sign_never_show_the_secret(url: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_store_url(url)
    assert "hunter" not in err.value.message and "@2" not in err.value.message
    assert "***" in err.value.message


def test_redact_url_hides_everything_up_to_the_last_at_sign() -> None:
    # A password with '@' and '/' inside, in any scheme
    assert redact_url("https://u:a@b/c@hooks.example.com/x") == "https://u:***@hooks.example.com/x"
    assert redact_url("mysql://root:p@w@db:3306/reelay") == "mysql://root:***@db:3306/reelay"
    # No password: nothing to hide, usernames stay
    assert redact_url("https://hooks.example.com/cb?to=a@b") == "https://hooks.example.com/cb?to=a@b"
    assert redact_url("mysql://root@127.0.0.1/db") == "mysql://root@127.0.0.1/db"
    assert redact_url("") == ""


# --- object metadata: S3's rules, for every driver -------------------------------------------------
def test_metadata_names_are_lower_cased_and_good_values_pass() -> None:
    assert check_metadata({"Duration": "2.002", "x-seq": "7", "PDT": "2026-12-01T12:00:00.000Z"}) == {
        "duration": "2.002",
        "x-seq": "7",
        "pdt": "2026-12-01T12:00:00.000Z",
    }
    assert check_metadata(None) == {} and check_metadata({}) == {}
    assert check_metadata({"k": "v" * (MAX_METADATA_BYTES - 1)}) == {"k": "v" * (MAX_METADATA_BYTES - 1)}


@pytest.mark.parametrize(
    ("metadata", "complaint"),
    [
        ({"": "x"}, "non-empty strings"),
        ({"n": 1}, "non-empty strings"),
        ({"has space": "x"}, "HTTP token"),
        ({"dur:ation": "x"}, "HTTP token"),
        ({"title": "café"}, "printable ASCII"),
        ({"title": "a\nb"}, "printable ASCII"),
        ({"k": "v" * MAX_METADATA_BYTES}, "at most 2048"),
        ({"Dur": "1", "dur": "2"}, "more than case"),
    ],
)
def test_bad_metadata_is_refused_the_way_s3_would(metadata: dict, complaint: str) -> None:
    with pytest.raises(InvalidInput) as err:
        check_metadata(metadata)
    assert complaint in err.value.message
