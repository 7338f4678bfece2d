"""Which object store a recording session writes to: the webhook's answer, the stream's own, or the
platform default.

In that order:

1. The stream's store webhook (``webhook_url``), when it has one. Reelay POSTs the stream's details
   as JSON (streamId, name, kvsStreamName, ownerId, sessionId, startedAt), signed (see below). A 2xx
   answer may be ``{"objectStore": "...", "recordObjectStore": "..."}``; ``recordObjectStore`` wins
   for recordings. An empty body, or an answer naming neither, means "use the defaults".
2. The stream's own store: ``record_object_store_url``, else ``object_store_url``.
3. The platform default: ``settings.recording_store_url``, else ``settings.media_store_url``.

A step that fails (a timeout, a non-2xx answer, a malformed body, a store URL that does not parse, a
refused host) falls through to the next. The ``StoreChoice`` says why in ``fallback_reason``, and a
warning is logged. Nothing here raises: every session gets a store and the relay never stops.

Hosts are checked like camera sources (``reelay.relay.sources``): link-local and cloud metadata
targets always refused, loopback unless ``allow_loopback_sources`` (the one-machine platform). That
holds for the webhook's host, and for an s3+http(s) store's host named by the webhook or the stream
(names resolved, so a name pointing at 169.254.169.254 is refused too). A ``file://`` store is this
machine's disk: a webhook or a stream may name one only where loopback is allowed. A store host that
does not resolve right now is not refused: that is a store outage, which the recorder rides out.
The webhook call connects to the very address that was checked (the name still goes in the Host
header and in TLS), follows no redirect and uses no proxy, so the host checked is the host called.
A store's host is checked now and resolved again by the recorder's S3 client: as for camera sources,
a name that changes its address in between is not caught.

The webhook call, name resolution included, is bounded by ``recording_webhook_timeout_seconds`` as a
whole (a thread waited on, not only socket timeouts), and is never retried: a slow webhook delays a
recording's start by that much at most.

Signature: ``X-Reelay-Signature: t=<unix seconds>,v1=<hex>``, hex being HMAC-SHA256 over
``"<t>.<body>"`` with the deployment's ``webhook_signing_key`` (Stripe's scheme). The receiver
recomputes it and refuses stale timestamps, so a captured call cannot be replayed later:
``verify_signature`` does that. Without a signing key the webhook is not called (the fallback says so).

Secrets: ``StoreChoice.url`` holds a store's credentials and is for ``open_store`` only. Reasons,
logs, ``repr`` and ``redacted`` show URLs through ``redact_url``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
from pydantic import SecretStr
from requests.adapters import HTTPAdapter

from reelay.errors import InvalidInput
from reelay.relay.sources import Resolver, check_host, check_resolved_host
from reelay.settings import Settings, get_settings
from reelay.storage.url import StoreLocation, parse_store_url, redact_url

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Reelay-Signature"
SIGNATURE_TOLERANCE_SECONDS = 300
MAX_ANSWER_BYTES = 64 * 1024  # a store answer is two URLs; more is not an answer
WEBHOOK_URL_MAX = 2048

StoreSource = Literal["webhook", "stream", "default"]


@dataclass(frozen=True)
class StoreChoice:
    """The store a session records to. ``url`` may hold credentials: give it to ``open_store`` only;
    show ``redacted``. ``fallback_reason`` says why an earlier choice was passed over (None: none was)."""

    url: str = field(repr=False)
    redacted: str
    source: StoreSource
    fallback_reason: str | None = None

    def __str__(self) -> str:
        return self.redacted


class StoreStream(Protocol):
    """What choosing a store reads from a stream. Also read when present: ``webhook_url``,
    ``record_object_store_url``, ``object_store_url`` and ``kvs_stream_name`` (None when absent)."""

    stream_id: str
    owner_id: str
    name: str


@dataclass(frozen=True)
class WebhookCall:
    """One webhook call. ``address`` is the checked address to connect to: the URL's host name
    still goes in the Host header and in TLS (SNI and the certificate check)."""

    url: str
    body: bytes
    headers: Mapping[str, str]
    timeout: float
    address: str


@dataclass(frozen=True)
class WebhookAnswer:
    status: int
    body: bytes


# Makes the call and returns the answer; raises on a transport failure.
WebhookPost = Callable[[WebhookCall], WebhookAnswer]


class RequestsPoster:
    """The real webhook call, with ``requests``: no retries, no redirects, no proxies, the answer
    read up to ``MAX_ANSWER_BYTES``, and the connection made to the address that was checked (so a
    name that resolves elsewhere a moment later, DNS rebinding, gets nowhere). ``verify`` is
    requests' own: True (the system's CAs) or a CA bundle's path."""

    def __init__(self, *, verify: bool | str = True) -> None:
        self.verify = verify

    def __call__(self, call: WebhookCall) -> WebhookAnswer:
        parts = urlsplit(call.url)
        host = parts.hostname or ""
        port = parts.port
        target = f"[{call.address}]" if ":" in call.address else call.address
        named = f"[{host}]" if ":" in host else host
        url = urlunsplit(
            (parts.scheme, f"{target}:{port}" if port else target, parts.path or "/", parts.query, "")
        )
        headers = {**call.headers, "Host": f"{named}:{port}" if port else named}
        auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
        with requests.Session() as session:
            session.trust_env = False  # no proxy from the environment: the host checked is the host called
            session.mount("http://", HTTPAdapter(max_retries=0))
            session.mount("https://", _PinnedTLS(host))
            with session.post(
                url,
                data=call.body,
                headers=headers,
                auth=auth,
                timeout=(call.timeout, call.timeout),
                allow_redirects=False,
                stream=True,
                verify=self.verify,
            ) as resp:
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_content(8192):
                    size += len(chunk)
                    if size > MAX_ANSWER_BYTES:
                        raise _Fallback(f"the webhook's answer is larger than {MAX_ANSWER_BYTES} bytes")
                    chunks.append(chunk)
                return WebhookAnswer(resp.status_code, b"".join(chunks))


class _PinnedTLS(HTTPAdapter):
    """HTTPS to an address, with SNI and the certificate check for the host's name."""

    def __init__(self, hostname: str) -> None:
        self._hostname = hostname  # before super().__init__, which builds the pool manager
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["server_hostname"] = self._hostname
        kwargs["assert_hostname"] = self._hostname
        super().init_poolmanager(*args, **kwargs)


class _Fallback(Exception):
    """A reason to pass over a choice. Its text is shown: it never holds a secret."""


# --- choosing ------------------------------------------------------------------------------------
def resolve_store(
    stream: StoreStream,
    settings: Settings | None = None,
    *,
    session_id: str,
    started_at: datetime,
    post: WebhookPost | None = None,
    resolve: Resolver | None = None,
    clock: Callable[[], float] = time.time,
    signing_key: str | None = None,
) -> StoreChoice:
    """The store for one recording session of ``stream``. Never raises (see the module text).

    ``signing_key``: the stream's own webhook secret (``StreamService.webhook_secret``), which signs
    the call instead of the deployment's ``webhook_signing_key``."""
    s = settings or get_settings()
    reasons: list[str] = []
    webhook = _attr(stream, "webhook_url")
    if webhook:
        try:
            url = _ask_webhook(
                stream,
                webhook,
                s,
                session_id,
                started_at,
                post or RequestsPoster(),
                resolve,
                clock,
                signing_key,
            )
        except _Fallback as e:
            reasons.append(f"store webhook {redact_url(webhook)}: {e}")
        except Exception as e:  # a bug must not stop a recording; its text might echo a URL, so not logged
            log.error("store webhook failed unexpectedly (%s)", type(e).__name__)
            reasons.append(f"store webhook {redact_url(webhook)}: failed ({type(e).__name__})")
        else:
            if url is not None:
                return _chosen(stream, session_id, url, "webhook", reasons)
    own = _attr(stream, "record_object_store_url") or _attr(stream, "object_store_url")
    if own:
        try:
            _check_store(own, s, resolve)
            return _chosen(stream, session_id, own, "stream", reasons)
        except _Fallback as e:
            reasons.append(f"the stream's store: {e}")
        except Exception as e:  # as above
            log.error("checking the stream's store failed unexpectedly (%s)", type(e).__name__)
            reasons.append(f"the stream's store: check failed ({type(e).__name__})")
    return _chosen(stream, session_id, s.recording_store_url or s.media_store_url, "default", reasons)


def _chosen(
    stream: StoreStream, session_id: str, url: str, source: StoreSource, reasons: list[str]
) -> StoreChoice:
    choice = StoreChoice(
        url=url, redacted=redact_url(url), source=source, fallback_reason="; ".join(reasons) or None
    )
    where = {
        "streamId": stream.stream_id,
        "sessionId": session_id,
        "store": choice.redacted,
        "source": source,
    }
    if choice.fallback_reason:
        log.warning(
            "recording store fell back to the %s store %s: %s",
            source,
            choice.redacted,
            choice.fallback_reason,
            extra={**where, "reason": choice.fallback_reason},
        )
    else:
        log.info("recording store from the %s: %s", source, choice.redacted, extra=where)
    return choice


def _attr(stream: Any, name: str) -> str | None:
    value = getattr(stream, name, None)
    return value.strip() or None if isinstance(value, str) else None


def _ask_webhook(
    stream: StoreStream,
    webhook: str,
    s: Settings,
    session_id: str,
    started_at: datetime,
    post: WebhookPost,
    resolve: Resolver | None,
    clock: Callable[[], float],
    signing_key: str | None = None,
) -> str | None:
    """The store URL the webhook names (None: it names none). Raises ``_Fallback``."""
    key: str | SecretStr | None = signing_key or s.webhook_signing_key
    if key is None:
        raise _Fallback("not called: no signing key (the stream secret keys, or REELAY_WEBHOOK_SIGNING_KEY)")
    host = _webhook_host(webhook, s)
    body = json.dumps(
        {
            "streamId": stream.stream_id,
            "name": stream.name,
            "kvsStreamName": _attr(stream, "kvs_stream_name"),
            "ownerId": stream.owner_id,
            "sessionId": session_id,
            "startedAt": _iso(started_at),
        },
        separators=(",", ":"),
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Reelay-StoreWebhook/1",
        SIGNATURE_HEADER: sign(key, body, timestamp=int(clock())),
    }
    timeout = float(s.recording_webhook_timeout_seconds)

    def call() -> str | None:
        addresses = _check_host(host, s, resolve, what="webhook host", unresolvable_ok=False)
        try:
            answer = post(WebhookCall(webhook, body, headers, timeout, addresses[0]))
        except _Fallback:
            raise
        except (requests.Timeout, TimeoutError) as e:
            raise _Fallback(f"no answer within {timeout:g} s") from e
        except Exception as e:  # transport errors may echo the URL: name the class only
            raise _Fallback(f"the call failed ({type(e).__name__})") from e
        url = _store_in_answer(answer)
        if url is not None:
            _check_store(url, s, resolve)
        return url

    return _bounded(call, timeout)


def _webhook_host(webhook: str, s: Settings) -> str:
    try:
        return check_webhook_url(webhook, allow_loopback=s.allow_loopback_sources)
    except InvalidInput as e:
        raise _Fallback(e.message) from e


def _store_in_answer(answer: WebhookAnswer) -> str | None:
    if not 200 <= answer.status < 300:
        raise _Fallback(f"answered HTTP {answer.status}")
    if not answer.body.strip():
        return None
    try:
        data = json.loads(answer.body)
    except ValueError as e:
        raise _Fallback("the answer is not JSON") from e
    if not isinstance(data, dict):
        raise _Fallback("the answer is not a JSON object")
    for name in ("recordObjectStore", "objectStore"):
        value = data.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise _Fallback(f"{name} in the answer is not a string")
        return value.strip()
    return None


def _check_store(url: str, s: Settings, resolve: Resolver | None) -> None:
    """Raise ``_Fallback`` unless ``url`` is a store URL whose host this deployment may write to."""
    try:
        location = parse_store_url(url)
    except InvalidInput as e:  # its message shows the URL redacted
        raise _Fallback(f"unusable store URL: {e.message}") from e
    try:
        host = _check_location(location, allow_loopback=s.allow_loopback_sources)
    except InvalidInput as e:
        raise _Fallback(e.message) from e
    if host:
        _check_host(host, s, resolve, what=f"store host of {location.redacted()}", unresolvable_ok=True)


def _check_host(
    host: str, s: Settings, resolve: Resolver | None, *, what: str, unresolvable_ok: bool
) -> list[str]:
    """The addresses ``host`` resolves to, every one allowed ([] when it does not resolve and that
    is ok). Raises ``_Fallback``."""
    kwargs = {"resolve": resolve} if resolve is not None else {}
    try:
        addresses = check_resolved_host(host, allow_loopback=s.allow_loopback_sources, **kwargs)
    except InvalidInput as e:
        raise _Fallback(_refusal(what, e)) from e
    except UnicodeError as e:  # getaddrinfo's IDNA codec: a label too long, or empty
        raise _Fallback(f"{what} {host} is not a valid host name") from e
    except OSError as e:
        if not unresolvable_ok:
            raise _Fallback(f"{what} {host} does not resolve") from e
        return []
    if not addresses and not unresolvable_ok:
        raise _Fallback(f"{what} {host} does not resolve")
    return addresses


def _refusal(what: str, err: InvalidInput) -> str:
    # The source checks speak of "sourceUrl host"; here it is a webhook's or a store's.
    return f"{what} refused: {err.message.replace('sourceUrl host', 'host')}"


# --- checks for the API, when a stream names its store or webhook ---------------------------------
def check_store_url(url: str, *, allow_loopback: bool) -> StoreLocation:
    """A stream's store URL, checked when it is registered: it parses, and its host is one this
    deployment may write to (as ``resolve_store`` checks it again, with DNS, when a session starts).
    ``InvalidInput`` otherwise, its message showing the URL redacted."""
    location = parse_store_url(url)
    _check_location(location, allow_loopback=allow_loopback)
    return location


def check_webhook_url(url: str, *, allow_loopback: bool) -> str:
    """A stream's store webhook URL, checked when it is registered (names are not resolved here:
    ``resolve_store`` does, before it calls). Returns its host; ``InvalidInput`` otherwise."""
    if not isinstance(url, str) or len(url) > WEBHOOK_URL_MAX:
        raise InvalidInput(f"the webhook URL must be a string of at most {WEBHOOK_URL_MAX} characters")
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as e:
        raise InvalidInput("the webhook URL does not parse") from e
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise InvalidInput("the webhook URL is not an http(s) URL with a host")
    try:
        check_host(host, allow_loopback=allow_loopback)
    except InvalidInput as e:
        raise InvalidInput(_refusal("webhook host", e)) from e
    return host


def _check_location(location: StoreLocation, *, allow_loopback: bool) -> str | None:
    """Refuse a file store where loopback is not allowed, and a refused literal host; returns the
    endpoint host of an s3+http(s) store (None for the others)."""
    if location.scheme == "file" and not allow_loopback:
        raise InvalidInput(f"store {location.redacted()} is this machine's disk, which is not allowed here")
    if not location.endpoint_url:
        return None
    host = urlsplit(location.endpoint_url).hostname or ""
    try:
        check_host(host, allow_loopback=allow_loopback)
    except InvalidInput as e:
        raise InvalidInput(_refusal(f"store host of {location.redacted()}", e)) from e
    return host


def _bounded(fn: Callable[[], str | None], timeout: float) -> str | None:
    """Run ``fn`` in a daemon thread and wait at most ``timeout`` (plus a little for the thread to
    report a socket timeout of its own). A thread still running then is left to finish by itself:
    its socket timeouts end it, and its result is dropped."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=run, name="store-webhook", daemon=True).start()
    if not done.wait(timeout + 0.25):
        raise _Fallback(f"no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    value: str | None = box["value"]
    return value


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # naive times are UTC in Reelay
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- signing -------------------------------------------------------------------------------------
def _key(secret: str | bytes | SecretStr) -> bytes:
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    return secret if isinstance(secret, bytes) else secret.encode()


def _mac(secret: str | bytes | SecretStr, timestamp: int, body: bytes) -> str:
    return hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str | bytes | SecretStr, body: bytes, *, timestamp: int) -> str:
    """The ``X-Reelay-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify_signature(
    secret: str | bytes | SecretStr,
    header: str | None,
    body: bytes | str,
    *,
    tolerance_seconds: int = SIGNATURE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when ``header`` (the ``X-Reelay-Signature`` value) signs exactly ``body`` with ``secret``
    and its timestamp is within ``tolerance_seconds`` of ``now``. Several ``v1=`` entries are allowed
    (one matching is enough), so a deployment can roll its key. Never raises for a bad header."""
    if not isinstance(header, str) or not header or len(header) > 4096:
        return False
    raw = body.encode() if isinstance(body, str) else body
    stamps: list[str] = []
    macs: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if name == "t":
            stamps.append(value)
        elif name == "v1":
            if not (value.isascii() and len(value) == 64):
                return False
            macs.append(value.lower())
    if (
        len(stamps) != 1
        or not macs
        or not (stamps[0].isascii() and stamps[0].isdigit())
        or len(stamps[0]) > 12
    ):
        return False
    timestamp = int(stamps[0])
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = _mac(secret, timestamp, raw)
    return any(hmac.compare_digest(expected, mac) for mac in macs)


__all__ = [
    "MAX_ANSWER_BYTES",
    "SIGNATURE_HEADER",
    "RequestsPoster",
    "StoreChoice",
    "StoreStream",
    "WebhookAnswer",
    "WebhookCall",
    "WebhookPost",
    "check_store_url",
    "check_webhook_url",
    "resolve_store",
    "sign",
    "verify_signature",
]
