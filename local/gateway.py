"""The local API Gateway: the same route table, JWT checks, the REST proxy event, CORS.

It also serves what CloudFront and S3 serve in AWS: ``/media/<key>`` (presigned PUTs into the
file store, and GET/HEAD of published HLS output with Range support) and a player page.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from werkzeug.exceptions import ClientDisconnected
from werkzeug.wrappers import Request, Response

from local.auth import InvalidToken, JwtAuthorizer
from reelay.api.routes import ROUTES, Route

log = logging.getLogger(__name__)

ApiHandler = Callable[[dict[str, Any], Any], dict[str, Any]]

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET,HEAD,POST,PUT,PATCH,DELETE,OPTIONS",
    "Access-Control-Allow-Headers": "Authorization,Content-Type,Range,X-Amz-Date,X-Api-Key",
    "Access-Control-Expose-Headers": "ETag,Content-Length,Content-Range,Accept-Ranges",
    "Access-Control-Max-Age": "600",
}


def error(status: int, code: str, message: str) -> Response:
    return Response(
        json.dumps({"error": code, "message": message}),
        status=status,
        mimetype="application/json",
        headers=CORS_HEADERS,
    )


@dataclass(frozen=True)
class CompiledRoute:
    route: Route
    pattern: re.Pattern[str]


def compile_routes(routes: Iterable[Route]) -> list[CompiledRoute]:
    compiled = []
    for r in routes:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(r.path))
        compiled.append(CompiledRoute(r, re.compile(f"^{regex}$")))
    return compiled


class LambdaContext:
    """The few attributes Powertools reads from a Lambda context."""

    def __init__(self, function_name: str, timeout_seconds: int = 29) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class Gateway:
    """A WSGI app. ``api_handler`` and ``media`` are looked up per request, so they can be set late."""

    def __init__(
        self,
        *,
        api_handler: Callable[[], ApiHandler],
        authorizer: JwtAuthorizer,
        media: Any,
        static_dir: Path,
        max_body_bytes: int,
        routes: Iterable[Route] = ROUTES,
    ) -> None:
        self._routes = compile_routes(routes)
        self._api_handler = api_handler
        self._authorizer = authorizer
        self._media = media
        self._static_dir = static_dir
        self._max_body = max_body_bytes

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except Exception:
            log.exception("gateway failure on %s %s", request.method, request.path)
            response = error(500, "internal_error", "The request failed inside the local gateway.")
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/media/"):
            return self._media.handle(request, path[len("/media/") :])
        if request.method in ("GET", "HEAD") and path.startswith("/play/"):
            return self._player(path[len("/play/") :])
        if request.method in ("GET", "HEAD") and path == "/static/hls.js":
            return self._static("hls.min.js", "application/javascript")
        return self._api(request)

    # --- API ---------------------------------------------------------------------------------
    def _match(self, method: str, path: str) -> tuple[CompiledRoute | None, dict[str, str], list[str]]:
        allowed = []
        for c in self._routes:
            m = c.pattern.match(path)
            if m:
                allowed.append(c.route.method)
                if c.route.method == method:
                    return c, m.groupdict(), allowed
        return None, {}, allowed

    def _api(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        if request.method == "OPTIONS":
            _, _, allowed = self._match("", path)
            if not allowed:
                return error(404, "not_found", f"No route for {path}.")
            return Response(status=204, headers=CORS_HEADERS)
        route, params, allowed = self._match(request.method, path)
        if route is None:
            if allowed:
                return error(405, "method_not_allowed", f"{request.method} is not allowed on {path}.")
            return error(404, "not_found", f"No route for {request.method} {path}.")
        authorizer: dict[str, Any] = {}
        if route.route.auth:
            try:
                claims = self._authorizer.claims(request.headers.get("Authorization"))
            except InvalidToken as e:
                return error(401, "unauthorized", str(e))
            # API Gateway hands claims over as strings.
            authorizer = {
                "claims": {k: v if isinstance(v, str) else json.dumps(v) for k, v in claims.items()}
            }
        if request.content_length is not None and request.content_length > self._max_body:
            return error(413, "payload_too_large", f"The request body exceeds {self._max_body} bytes.")
        try:
            body = request.stream.read(self._max_body + 1)
        except ClientDisconnected:
            return error(400, "bad_request", "The request body was cut short.")
        if len(body) > self._max_body:
            return error(413, "payload_too_large", f"The request body exceeds {self._max_body} bytes.")
        event = self._event(request, path, route.route, params, body, authorizer)
        result = self._api_handler()(event, LambdaContext("reelay-api"))
        return self._response(result)

    def _event(
        self,
        request: Request,
        path: str,
        route: Route,
        params: dict[str, str],
        body: bytes,
        authorizer: dict[str, Any],
    ) -> dict[str, Any]:
        headers = dict(request.headers.items())
        multi_headers: dict[str, list[str]] = {}
        for k, v in request.headers.items():
            multi_headers.setdefault(k, []).append(v)
        query = {k: vs[-1] for k, vs in request.args.lists()}
        multi_query = {k: list(vs) for k, vs in request.args.lists()}
        try:
            text, b64 = body.decode("utf-8"), False
        except UnicodeDecodeError:
            text, b64 = base64.b64encode(body).decode("ascii"), True
        request_id = str(uuid.uuid4())
        return {
            "resource": route.path,
            "path": path,
            "httpMethod": request.method,
            "headers": headers or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": params or None,
            "stageVariables": None,
            "body": text if body else None,
            "isBase64Encoded": b64,
            "requestContext": {
                "resourcePath": route.path,
                "httpMethod": request.method,
                "path": f"/local{path}",
                "stage": "local",
                "requestId": request_id,
                "extendedRequestId": request_id,
                "requestTimeEpoch": int(time.time() * 1000),
                "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "accountId": "000000000000",
                "apiId": "local",
                "identity": {
                    "sourceIp": request.remote_addr or "127.0.0.1",
                    "userAgent": request.user_agent.string,
                },
                "authorizer": authorizer or None,
            },
        }

    @staticmethod
    def _response(result: dict[str, Any]) -> Response:
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
        response = Response(data, status=int(result.get("statusCode", 200)))
        response.headers.pop("Content-Type", None)
        single = result.get("headers") or {}
        for k, v in single.items():
            response.headers[k] = str(v)
        for k, vs in (result.get("multiValueHeaders") or {}).items():
            if k in single:
                continue
            for v in vs:
                response.headers.add(k, str(v))
        for k, v in CORS_HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    # --- player ------------------------------------------------------------------------------
    def _static(self, name: str, mimetype: str) -> Response:
        path = self._static_dir / name
        if not path.is_file():
            return error(404, "not_found", f"{name} is not installed; run `npm install`.")
        return Response(path.read_bytes(), mimetype=mimetype, headers={"Cache-Control": "max-age=3600"})

    @staticmethod
    def _player(video_id: str) -> Response:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", video_id):
            return error(404, "not_found", "No such video.")
        return Response(PLAYER_HTML.replace("__VIDEO_ID__", video_id), mimetype="text/html")


PLAYER_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Reelay player</title>
<style>body{font-family:sans-serif;max-width:960px;margin:2em auto}video{width:100%;background:#000}</style>
</head>
<body>
<h1 id="title">Loading...</h1>
<video id="video" controls playsinline></video>
<p id="status"></p>
<script src="/static/hls.js"></script>
<script>
const videoId = "__VIDEO_ID__";
const el = document.getElementById("video"), statusEl = document.getElementById("status");
async function load() {
  const r = await fetch("/videos/" + encodeURIComponent(videoId));
  const v = await r.json();
  if (!r.ok) { document.getElementById("title").textContent = v.message || "Not found"; return; }
  document.getElementById("title").textContent = v.displayName || videoId;
  const url = v.playbackUrl;
  if (!url) { statusEl.textContent = "Status: " + v.status + " (" + (v.progress || 0) + "%)";
              setTimeout(load, 3000); return; }
  statusEl.textContent = "";
  if (window.Hls && Hls.isSupported()) {
    const hls = new Hls(); hls.loadSource(url); hls.attachMedia(el);
  } else if (el.canPlayType("application/vnd.apple.mpegurl")) {
    el.src = url;  // Safari and iOS play HLS natively
  } else {
    statusEl.textContent = "This browser cannot play HLS.";
  }
}
load();
</script>
</body>
</html>
"""
