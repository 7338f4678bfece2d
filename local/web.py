"""The web front end's production build (web/dist), served as CloudFront serves it in AWS.

Hashed assets are cached for a year; index.html and config.json never. Client routes get
index.html (the SPA routes itself); any other page a browser asks for gets index.html with a 404,
so the front end shows its not-found page with a real status.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from werkzeug.security import safe_join
from werkzeug.utils import send_file
from werkzeug.wrappers import Request, Response

from infra.constants import WEB_ASSETS_CACHE_CONTROL, WEB_ASSETS_DIR, WEB_PAGES_CACHE_CONTROL
from infra.web_policy import STATIC_SECURITY_HEADERS, content_security_policy

# The SPA's routes (web/src/App.tsx). None of them may be an API path.
SPA_ROUTES = re.compile(
    r"^/(login|register|confirm|my|upload|watch/[^/]+|live|live/[^/]+|live/[^/]+/recordings/[^/]+)?/?$"
)
WATCH = re.compile(r"^/watch/([^/]+)/?$")
IMMUTABLE = WEB_ASSETS_CACHE_CONTROL  # the same headers CloudFront passes on from the web bucket
NO_CACHE = WEB_PAGES_CACHE_CONTROL

MISSING_BUILD = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Reelay</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:3em auto"><h1>The web front end is not built</h1>
<p>Run <code>make bootstrap</code> (or <code>npm --prefix web ci &amp;&amp; npm --prefix web run build</code>)
and reload this page. The API and media are up.</p></body></html>"""


class WebApp:
    def __init__(self, dist: Path, config: Callable[[], dict[str, Any]]) -> None:
        self.dist = dist
        self._config = config  # called per request: the gateway's port is known only once bound

    @staticmethod
    def is_page(path: str) -> bool:
        return bool(SPA_ROUTES.match(path))

    def config_json(self) -> Response:
        return Response(
            json.dumps(self._config()), mimetype="application/json", headers={"Cache-Control": NO_CACHE}
        )

    def asset(self, request: Request) -> Response | None:
        """A file of the build, or None when there is no such file."""
        name = request.path.lstrip("/")
        if not name or name == "index.html":
            return None
        path = safe_join(str(self.dist), name)
        if path is None or not Path(path).is_file():
            return None
        response = send_file(path, request.environ, conditional=True, max_age=None)
        response.headers["Cache-Control"] = IMMUTABLE if name.startswith(f"{WEB_ASSETS_DIR}/") else NO_CACHE
        return response

    def page(self, request: Request, *, missing: bool = False) -> Response:
        """index.html for a client route (200), for anything else or a missing video (404): the
        front end still renders its not-found page, and tools and crawlers see the status."""
        status = 200 if self.is_page(request.path) and not missing else 404
        index = self.dist / "index.html"
        if not index.is_file():
            return Response(MISSING_BUILD, status=503, mimetype="text/html")
        return Response(
            index.read_bytes(),
            status=status,
            mimetype="text/html",
            headers={"Cache-Control": NO_CACHE, **self.security_headers()},
        )

    def security_headers(self) -> dict[str, str]:
        """The headers CloudFront adds in AWS (but HSTS: this is plain http), so the browser tests
        run the front end under the same content security policy."""
        origin = self._config()["apiUrl"]
        csp = content_security_policy(api=origin, media=origin, upgrade_insecure=False)
        return {"Content-Security-Policy": csp, **STATIC_SECURITY_HEADERS}


def web_config(*, api_url: str, region: str, user_pool_id: str, user_pool_client_id: str) -> dict[str, str]:
    """/config.json: the same keys the web stack writes next to the build in AWS."""
    return {
        "apiUrl": api_url,
        "region": region,
        "userPoolId": user_pool_id,
        "userPoolClientId": user_pool_client_id,
    }
