"""Does a source answer again? A cheap check the supervisor runs while it waits out a backoff.

A camera that comes back mid-backoff would otherwise wait for the timer (up to the cap, 2 s while an
outage is young), and each rebuild costs a whole pipeline and kvssink's control-plane calls. The
check costs one TCP connect (RTSP) or one playlist GET (HLS), and never touches KVS:

- RTSP: the server accepts a TCP connection on the URL's port.
- HLS: the playlist answers 200 with an ``#EXTM3U`` body (a restarting origin answers 404 until its
  first segment exists), or a redirect, which is not followed: only the checked host is contacted.
- SRT runs over UDP and a caller cannot knock without a whole handshake, so SRT is not probed; srtsrc
  in caller mode waits for the listener by itself.

The URL may carry the camera's credentials: they are used (HTTP basic auth) but never logged.
"""

from __future__ import annotations

import base64
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import unquote, urlsplit, urlunsplit

PROBED = ("rtsp", "hls")
_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}


def probe_for(protocol: str) -> Callable[[str, float], bool] | None:
    """The check for a source protocol (as SourceSpec.protocol names it), or None when it has none."""
    return {"rtsp": rtsp_answers, "hls": hls_answers}.get(protocol)


def rtsp_answers(url: str, timeout: float) -> bool:
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 554)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def hls_answers(url: str, timeout: float) -> bool:
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if ":" in parts.hostname:  # an IPv6 literal
        netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
    request = urllib.request.Request(urlunsplit(parts._replace(netloc=netloc)), method="GET")
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(pair).decode())
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if parts.scheme.lower() == "https":
        handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context()))
    try:
        with urllib.request.build_opener(*handlers).open(request, timeout=timeout) as answer:
            return bool(answer.status == 200 and answer.read(64).lstrip().startswith(b"#EXTM3U"))
    except urllib.error.HTTPError as exc:
        return 300 <= exc.code < 400
    except (OSError, urllib.error.URLError, ValueError):
        return False


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: object, **_kwargs: object) -> None:
        return None  # the 3xx surfaces as an HTTPError
