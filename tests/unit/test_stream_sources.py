"""Source URL validation: the accepted forms, the secrets split off, and the hosts a relay may never call."""

from __future__ import annotations

import pytest

from reelay.errors import InvalidInput
from reelay.models import SourceProtocol
from reelay.relay.sources import check_resolved_host, compose_source, parse_source, redact


@pytest.mark.parametrize(
    ("url", "protocol", "stored", "secrets"),
    [
        (
            "https://cdn.example/live/index.m3u8",
            SourceProtocol.HLS,
            "https://cdn.example/live/index.m3u8",
            {},
        ),
        ("HTTP://Cam.Example:8080/a/B.M3U8", SourceProtocol.HLS, "http://cam.example:8080/a/B.M3U8", {}),
        (
            "https://cdn.example/l.m3u8?X-Amz-Signature=abc&X-Amz-Credential=k%2F1&quality=hd",
            SourceProtocol.HLS,
            "https://cdn.example/l.m3u8?quality=hd",
            {"query:X-Amz-Signature": "abc", "query:X-Amz-Credential": "k/1"},
        ),
        (
            "rtsp://admin:p%40ss:w0rd@10.0.0.5:554/Streaming/Channels/101?transportmode=unicast",
            SourceProtocol.RTSP,
            "rtsp://10.0.0.5:554/Streaming/Channels/101?transportmode=unicast",
            {"username": "admin", "password": "p%40ss:w0rd"},
        ),
        (
            "rtsps://viewer@cam.example/live",
            SourceProtocol.RTSP,
            "rtsps://cam.example/live",
            {"username": "viewer"},
        ),
        ("rtsp://[2001:db8::5]:8554/cam", SourceProtocol.RTSP, "rtsp://[2001:db8::5]:8554/cam", {}),
        (
            "srt://cam.example:9000?latency=200&passphrase=0123456789&streamid=%23!::r=live,u=cam",
            SourceProtocol.SRT,
            "srt://cam.example:9000?latency=200",
            {"query:passphrase": "0123456789", "query:streamid": "#!::r=live,u=cam"},
        ),
        ("srt://192.168.1.20:9000", SourceProtocol.SRT, "srt://192.168.1.20:9000", {}),
        (
            "srt://192.168.1.20:9000?mode=caller",
            SourceProtocol.SRT,
            "srt://192.168.1.20:9000?mode=caller",
            {},
        ),
    ],
)
def test_accepted_sources_keep_their_secrets_apart(
    url: str, protocol: SourceProtocol, stored: str, secrets: dict[str, str]
) -> None:
    source = parse_source(url, allow_loopback=False)
    assert (source.protocol, source.url, source.secrets) == (protocol, stored, secrets)
    # The stored URL shows none of the secrets, and the relay gets them all back
    for value in secrets.values():
        assert value not in source.url
    full = compose_source(source.url, source.secrets)
    assert parse_source(full, allow_loopback=False) == source
    assert all(v not in repr(source) for v in secrets.values())  # not even in a debug print


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "required"),
        ("ftp://cam.example/x.m3u8", "scheme 'ftp' is not supported"),
        ("file:///etc/passwd", "scheme 'file' is not supported"),
        ("rtmp://cam.example/live", "not supported"),
        ("cam.example/live.m3u8", "not supported"),
        ("https://cdn.example/live.mp4", "ends in .m3u8"),
        ("https:///live.m3u8", "needs a host"),
        ("rtsp://cam.example:99999/x", "not a valid URL"),
        ("rtsp://cam.example:0/x", "1 to 65535"),
        ("rtsp://cam.example:abc/x", "not a valid URL"),
        ("rtsp://cam example/x", "spaces"),
        ("rtsp://cam.example/x\n", "control"),
        ("rtsp://cam.example\\@evil/x", "backslash"),
        ("https://cdn.example/live.m3u8#frag", "fragment"),
        ("srt://cam.example", "needs a port"),
        ("srt://cam.example:9000/path", "no path"),
        ("srt://user:pw@cam.example:9000", "user:password"),
        ("srt://cam.example:9000?mode=listener", "mode=listener"),
        ("srt://cam.example:9000?passphrase=short", "10 to 79"),
        ("rtsp://[fe80::1%25eth0]/x", "zone"),
        ("rtsp://[::1/x", "not a valid URL"),
        ("https://x/" + "a" * 2048 + ".m3u8", "at most 2048"),
    ],
)
def test_bad_sources_are_refused_with_a_message_that_says_why(url: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_source(url, allow_loopback=True)


LINK_LOCAL = [
    "169.254.169.254",  # EC2 instance metadata
    "169.254.170.2",  # ECS task credentials and metadata
    "[fe80::1]",
    "[fd00:ec2::254]",  # EC2 IPv6 metadata
    "[::ffff:169.254.169.254]",  # IPv4-mapped
    "[::ffff:a9fe:a9fe]",  # IPv4-mapped, hex
    "[::169.254.169.254]",  # IPv4-compatible
    "[64:ff9b::a9fe:a9fe]",  # NAT64
    "[2002:a9fe:a9fe::1]",  # 6to4
    "2852039166",  # 169.254.169.254 as one number
    "0xa9fea9fe",
    "169.254.43518",  # the short form inet_aton accepts
    "0251.0376.0251.0376",  # octal
    "instance-data",
    "metadata.google.internal",
]
LOOPBACK = [
    "127.0.0.1",
    "127.1",
    "2130706433",
    "localhost",
    "LOCALHOST.",
    "cam.localhost",
    "[::1]",
    "[::ffff:127.0.0.1]",
]


@pytest.mark.parametrize("host", LINK_LOCAL)
@pytest.mark.parametrize("allow_loopback", [False, True])
def test_link_local_and_metadata_hosts_are_refused_always(host: str, allow_loopback: bool) -> None:
    for url in (f"rtsp://{host}/x", f"http://{host}/x.m3u8", f"srt://{host}:9000"):
        with pytest.raises(InvalidInput, match=r"link-local|metadata"):
            parse_source(url, allow_loopback=allow_loopback)


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_hosts_only_where_the_setting_allows_them(host: str) -> None:
    with pytest.raises(InvalidInput, match="loopback"):
        parse_source(f"rtsp://{host}:8554/cam", allow_loopback=False)
    assert parse_source(f"rtsp://{host}:8554/cam", allow_loopback=True).protocol == SourceProtocol.RTSP


@pytest.mark.parametrize("host", ["0.0.0.0", "0", "[::]", "224.0.0.1", "255.255.255.255", "[ff02::1]"])
def test_unspecified_multicast_and_broadcast_hosts_are_refused(host: str) -> None:
    with pytest.raises(InvalidInput, match=r"unspecified|multicast"):
        parse_source(f"rtsp://{host}/x", allow_loopback=True)


@pytest.mark.parametrize(
    "host", ["10.0.0.5", "192.168.1.20", "172.16.0.9", "[fd12:3456::1]", "cam.example", "203.0.113.7"]
)
def test_private_and_public_cameras_are_fine(host: str) -> None:
    assert parse_source(f"rtsp://{host}/x", allow_loopback=False).url == f"rtsp://{host}/x"


def test_a_name_that_resolves_to_a_forbidden_address_is_refused_when_the_relay_connects() -> None:
    def resolver(answers: list[str]):
        return lambda host: answers

    assert check_resolved_host("cam.example", allow_loopback=False, resolve=resolver(["10.0.0.5"])) == [
        "10.0.0.5"
    ]
    with pytest.raises(InvalidInput, match="link-local"):
        check_resolved_host(
            "rebind.example", allow_loopback=False, resolve=resolver(["10.0.0.5", "169.254.170.2"])
        )
    with pytest.raises(InvalidInput, match="loopback"):
        check_resolved_host("sneaky.example", allow_loopback=False, resolve=resolver(["::1"]))
    assert check_resolved_host("demo.local", allow_loopback=True, resolve=resolver(["127.0.0.1"])) == [
        "127.0.0.1"
    ]


def test_redact_hides_userinfo_and_secret_parameters_for_logs() -> None:
    url = "rtsp://admin:hunter2hunter2@cam.example/x?token=t0ps3cret&channel=1"
    shown = redact(url)
    assert "hunter2" not in shown and "t0ps3cret" not in shown and "admin" not in shown
    assert shown == "rtsp://***@cam.example/x?token=***&channel=1"
    assert redact("rtsp://cam:99999999/") == "<unparseable URL>"
