"""Camera source URLs: what the relay accepts, and where the secrets in them go.

Accepted forms (anything else is ``InvalidInput`` with a message that says which part is wrong):

- ``http(s)://host[:port]/path.m3u8[?query]``: an HLS playlist;
- ``rtsp(s)://[user[:password]@]host[:port]/path[?query]``: an RTSP camera;
- ``srt://host:port[?option=value&...]``: an SRT listener the relay calls (caller mode).

Secrets never stay in the stored URL. ``parse_source`` splits them off: the userinfo of http(s) and
rtsp(s) URLs, and every query parameter whose name says it is one (password, passphrase, token, key,
signature, credential, policy, auth, SRT's streamid, which often carries a user and a key). They are
encrypted at rest (``reelay.relay.secrets``) and put back only for the relay (``compose_source``).

Hosts: a relay task may not be pointed at its own credentials. Link-local addresses (169.254.0.0/16,
where ECS serves task credentials and EC2 its metadata, and fe80::/10), AWS's IPv6 metadata range
fd00:ec2::/32, unspecified, multicast and broadcast addresses are refused always, in every spelling
(IPv4-mapped and -compatible IPv6, 6to4, NAT64, Teredo, and the short or numeric IPv4 forms
``inet_aton`` accepts, such as ``2852039166`` or ``169.254.43518``). Loopback hosts are refused unless
``allow_loopback`` (the one-machine platform, whose demo camera runs on localhost). Hostnames are not
resolved here (an API call should not wait on DNS): ``check_resolved_host`` is for the relay, right
before it connects, so a name that resolves to a forbidden address is refused there too.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from reelay.errors import InvalidInput
from reelay.models import SourceProtocol

SOURCE_URL_MAX = 2048
FORMS = "http(s)://host/….m3u8, rtsp(s)://[user:password@]host[:port]/… or srt://host:port?…"
SCHEMES = {
    "http": SourceProtocol.HLS,
    "https": SourceProtocol.HLS,
    "rtsp": SourceProtocol.RTSP,
    "rtsps": SourceProtocol.RTSP,
    "srt": SourceProtocol.SRT,
}
# Query parameters that are secrets by their name (case-insensitive, anywhere in the name).
_SECRET_PARAM = re.compile(r"pass|pwd|secret|token|key|sig|cred|auth|policy|streamid", re.IGNORECASE)
_BAD_CHARS = re.compile(r"[\x00-\x20\x7f-\x9f\\]")
# Names that always mean this machine or its metadata service, whatever DNS says.
_LOOPBACK_NAMES = re.compile(r"^(localhost|localhost\.localdomain|ip6-localhost|ip6-loopback)$|\.localhost$")
_METADATA_NAMES = frozenset(
    {"instance-data", "instance-data.ec2.internal", "metadata", "metadata.google.internal"}
)
_AWS_METADATA_V6 = ipaddress.ip_network("fd00:ec2::/32")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")
_SRT_MODES = frozenset({"caller", "client"})
SRT_PASSPHRASE = (10, 79)  # libsrt's limits


@dataclass(frozen=True)
class Source:
    """A checked source URL, split into what may be stored and shown, and its secrets."""

    protocol: SourceProtocol
    url: str  # no secrets: safe to store, return and log
    host: str
    secrets: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def secret_names(self) -> list[str]:
        return sorted(self.secrets)


def parse_source(url: object, *, allow_loopback: bool) -> Source:
    """Check a source URL and split its secrets off. ``InvalidInput`` says what is wrong."""
    if not isinstance(url, str) or not url:
        raise InvalidInput(f"sourceUrl is required: {FORMS}")
    if len(url) > SOURCE_URL_MAX:
        raise InvalidInput(f"sourceUrl must be at most {SOURCE_URL_MAX} characters")
    if _BAD_CHARS.search(url):
        raise InvalidInput("sourceUrl must not contain spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a bad port, or brackets that do not hold an IPv6 address
        raise InvalidInput(f"sourceUrl is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    protocol = SCHEMES.get(scheme)
    if protocol is None:
        raise InvalidInput(f"sourceUrl scheme {parts.scheme or '(none)'!r} is not supported: use {FORMS}")
    host = parts.hostname or ""
    if not host:
        raise InvalidInput(f"sourceUrl needs a host: {FORMS}")
    if port == 0:
        raise InvalidInput("sourceUrl port must be from 1 to 65535")
    if parts.fragment:
        raise InvalidInput("sourceUrl must not have a #fragment")
    check_host(host, allow_loopback=allow_loopback)

    secrets: dict[str, str] = {}
    if parts.username is not None or parts.password is not None:
        if protocol == SourceProtocol.SRT:
            raise InvalidInput("srt:// URLs take no user:password@; give passphrase= and streamid= instead")
        # Kept percent-encoded, exactly as given, so composing gives back the same URL.
        userinfo = parts.netloc.rpartition("@")[0]
        user, _, password = userinfo.partition(":")
        secrets["username"] = user
        if password:
            secrets["password"] = password
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in query if not _SECRET_PARAM.search(k)]
    for k, v in query:
        if _SECRET_PARAM.search(k):
            if f"query:{k}" in secrets:
                raise InvalidInput(f"sourceUrl gives {k!r} more than once")
            secrets[f"query:{k}"] = v

    if protocol == SourceProtocol.HLS and not parts.path.lower().endswith(".m3u8"):
        raise InvalidInput("an http(s) sourceUrl must be an HLS playlist: its path ends in .m3u8")
    if protocol == SourceProtocol.SRT:
        _check_srt(port, parts.path, dict(query))

    netloc = _netloc(host, port)
    clean = urlunsplit((scheme, netloc, parts.path, urlencode(kept, quote_via=quote, safe="/:"), ""))
    return Source(protocol=protocol, url=clean, host=host, secrets=secrets)


def _check_srt(port: int | None, path: str, options: Mapping[str, str]) -> None:
    if port is None:
        raise InvalidInput("an srt:// sourceUrl needs a port: srt://host:port?…")
    if path not in ("", "/"):
        raise InvalidInput("an srt:// sourceUrl has no path; options go in the query (srt://host:port?…)")
    mode = options.get("mode", "caller").lower()
    if mode not in _SRT_MODES:
        raise InvalidInput(f"srt mode={mode} is not supported: the relay calls the camera (mode=caller)")
    passphrase = options.get("passphrase")
    low, high = SRT_PASSPHRASE
    if passphrase is not None and not low <= len(passphrase) <= high:
        raise InvalidInput(f"the srt passphrase must be {low} to {high} characters")


def _netloc(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port is not None else shown


def compose_source(url: str, secrets: Mapping[str, str]) -> str:
    """The URL the relay opens: the stored URL with its secrets put back. Never log the result."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "username" in secrets:
        userinfo = secrets["username"] + (f":{secrets['password']}" if "password" in secrets else "")
        netloc = f"{userinfo}@{netloc}"
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k.removeprefix("query:"), v) for k, v in secrets.items() if k.startswith("query:")]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, quote_via=quote, safe="/:"), ""))


def redact(url: str) -> str:
    """A URL fit for a log line: userinfo and secret-named query values replaced by ``***``."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = [
        (k, "***" if _SECRET_PARAM.search(k) else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="*/:"), ""))


# --- hosts ----------------------------------------------------------------------------------------
def check_host(host: str, *, allow_loopback: bool) -> None:
    """Refuse a host the relay must never call (see the module text). Names are not resolved."""
    name = host.lower().rstrip(".")
    if name in _METADATA_NAMES:
        raise InvalidInput(f"sourceUrl host {host} is the cloud metadata service, which a source may not be")
    if _LOOPBACK_NAMES.search(name):
        if not allow_loopback:
            raise InvalidInput(f"sourceUrl host {host} is this machine (loopback), which is not allowed here")
        return
    address = _literal_address(name)
    if address is not None:
        check_address(address, host=host, allow_loopback=allow_loopback)


def check_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, host: str, allow_loopback: bool
) -> None:
    for candidate in _spellings(address):
        if candidate.is_link_local or candidate in _AWS_METADATA_V6:
            raise InvalidInput(
                f"sourceUrl host {host} is link-local (where the task's credentials and metadata are "
                "served), which a source may never be"
            )
        if candidate.is_unspecified or (candidate.version == 4 and candidate in _THIS_NETWORK):
            raise InvalidInput(f"sourceUrl host {host} is an unspecified address")
        if candidate.is_multicast or candidate == _BROADCAST:
            raise InvalidInput(f"sourceUrl host {host} is a multicast or broadcast address")
        if candidate.is_loopback and not allow_loopback:
            raise InvalidInput(f"sourceUrl host {host} is this machine (loopback), which is not allowed here")


_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_BROADCAST = ipaddress.ip_address("255.255.255.255")


def _spellings(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> Iterable[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The address, and every IPv4 address an IPv6 one carries (mapped, compatible, 6to4, NAT64, Teredo)."""
    yield address
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            yield address.ipv4_mapped
        if address.sixtofour is not None:
            yield address.sixtofour
        if address.teredo is not None:
            yield from address.teredo
        if address in _NAT64 or (address in _V4_COMPATIBLE and int(address) > 1):
            yield ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)


def _literal_address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host names literally, in any spelling a resolver accepts; None for a DNS name."""
    if "%" in name:
        raise InvalidInput("sourceUrl host must not carry an IPv6 zone (%…)")
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        pass
    if ":" in name:
        raise InvalidInput(f"sourceUrl host {name} is not a valid IPv6 address")
    # inet_aton takes the short and numeric forms (127.1, 0x7f.0.0.1, 2130706433) getaddrinfo does.
    try:
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except OSError:
        return None


Resolver = Callable[[str], Iterable[str]]


def _getaddrinfo(host: str) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)]


def check_resolved_host(host: str, *, allow_loopback: bool, resolve: Resolver = _getaddrinfo) -> list[str]:
    """For the relay, before it connects: every address ``host`` resolves to must be allowed.

    Returns the addresses. ``InvalidInput`` when one is forbidden; ``OSError`` when the name does
    not resolve (a source that is down, not a bad one).
    """
    check_host(host, allow_loopback=allow_loopback)
    addresses = list(resolve(host))
    for text in addresses:
        check_address(ipaddress.ip_address(text.split("%", 1)[0]), host=host, allow_loopback=allow_loopback)
    return addresses
