"""The local API Gateway: the same route table, JWT checks, the REST proxy event, CORS.

It also serves what CloudFront and S3 serve in AWS: ``/media/<key>`` (presigned PUTs into the
file store, and GET/HEAD of published HLS output with Range support), and the web front end's
build with its ``/config.json`` (local/web.py). A test-only fault hook (local/gateway_faults.py) can fail
chosen requests; it is off unless the platform is started with it.
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
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from local.auth import InvalidToken, JwtAuthorizer
from local.gateway_faults import CONTROL_PATH, Faults
from local.throttle import ClientBuckets
from local.web import WATCH, WebApp
from reelay.api.routes import LOCAL_AUTH_THROTTLE, ROUTES, Route, Throttle, is_throttled_auth_route

log = logging.getLogger(__name__)

ApiHandler = Callable[[dict[str, Any], Any], dict[str, Any]]

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET,HEAD,POST,PUT,PATCH,DELETE,OPTIONS",
    "Access-Control-Allow-Headers": "Authorization,Content-Type,If-None-Match,Range,X-Amz-Date,X-Api-Key",
    "Access-Control-Expose-Headers": "ETag,Content-Length,Content-Range,Accept-Ranges",
    "Access-Control-Max-Age": "600",
}


# What a log line must never carry: presigned signatures (the file store's ``sig``, S3's and
# CloudFront's), credentials and tokens in a query string, bearer tokens, and bare JWTs.
_SECRET_PARAM = re.compile(
    r"(?i)([?&](?:sig|signature|x-amz-signature|x-amz-security-token|x-amz-credential|key-pair-id|policy"
    r"|token|id_token|access_token|refresh_token|password)=)[^&\s\"']+"
)
# The same secrets as JSON fields (a logged event's body or headers): passwords and Cognito tokens.
_SECRET_FIELD = re.compile(
    r"(?i)(\\?[\"'](?:password|refresh_?token|id_?token|access_?token|authorization|code)\\?[\"']\s*:\s*\\?[\"'])"
    r"(?:[^\"'\\]|\\[^\"'])+"
)
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',]+")
_JWT = re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*")
REDACTED = "[redacted]"


def redact_secrets(text: str) -> str:
    text = _SECRET_PARAM.sub(rf"\1{REDACTED}", text)
    text = _SECRET_FIELD.sub(rf"\1{REDACTED}", text)
    text = _BEARER.sub(rf"\1{REDACTED}", text)
    return _JWT.sub(REDACTED, text)


class RedactSecrets(logging.Filter):
    """Rewrites each record with its secrets redacted: put on the log file's handler, it covers the
    request lines of the gateway and moto (werkzeug logs the full URL, presigned query included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_secrets(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


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
        web: WebApp | None = None,
        faults: Faults | None = None,
        auth_throttle: Throttle | None = LOCAL_AUTH_THROTTLE,
    ) -> None:
        self._routes = compile_routes(routes)
        self._api_handler = api_handler
        self._authorizer = authorizer
        self._media = media
        self._static_dir = static_dir
        self._max_body = max_body_bytes
        self._web = web
        self.faults = faults  # None unless the tests turned the hook on
        # Per client IP on the unauthenticated /auth/* routes (API Gateway's method throttles and WAF's
        # rate rules in AWS); None turns it off.
        self.auth_buckets = ClientBuckets(auth_throttle) if auth_throttle is not None else None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        if self.faults is not None and request.path != CONTROL_PATH:
            rule = self.faults.take(request)
            if rule is not None:
                # A dropped connection raises through to the WSGI server, which closes the socket.
                return self.faults.fail(request, rule)(environ, start_response)
        try:
            response = self.dispatch(request)
        except Exception:
            log.exception("gateway failure on %s %s", request.method, request.path)
            response = error(500, "internal_error", "The request failed inside the local gateway.")
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        path = request.path
        if self.faults is not None and path == CONTROL_PATH:
            return self.faults.control(request)
        if path.startswith("/media/"):
            return self._media.handle(request, path[len("/media/") :])
        if request.method in ("GET", "HEAD"):
            if path.startswith("/play/"):
                return self._play(path[len("/play/") :])
            if path == "/static/hls.js":
                return self._static("hls.min.js", "application/javascript")
            if self._web is not None and not self._is_api_path(path):
                return self._web_page(request)
        return self._api(request)

    # --- web front end -----------------------------------------------------------------------
    def _is_api_path(self, path: str) -> bool:
        path = path.rstrip("/") or "/"
        return any(c.pattern.match(path) for c in self._routes)

    def _web_page(self, request: Request) -> Response:
        assert self._web is not None
        if request.path == "/config.json":
            return self._web.config_json()
        asset = self._web.asset(request)
        if asset is not None:
            return asset
        if not self._web.is_page(request.path) and "text/html" not in request.headers.get("Accept", ""):
            return self._api(request)  # an API client asking for a path that does not exist: JSON 404
        watch = WATCH.match(request.path)
        missing = watch is not None and not self._video_exists(watch.group(1))
        return self._web.page(request, missing=missing)

    def _video_exists(self, video_id: str) -> bool:
        probe = Request(EnvironBuilder(path=f"/videos/{video_id}", method="GET").get_environ())
        return self._api(probe).status_code != 404

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
                refused = error(405, "method_not_allowed", f"{request.method} is not allowed on {path}.")
                refused.headers["Allow"] = ", ".join([*sorted(set(allowed)), "OPTIONS"])
                return refused
            return error(404, "not_found", f"No route for {request.method} {path}.")
        if self.auth_buckets is not None and is_throttled_auth_route(route.route):
            wait = self.auth_buckets.take(request.remote_addr or "unknown")
            if wait:
                refused = error(429, "throttled", f"Too many requests to {path}; retry in {wait} s.")
                refused.headers["Retry-After"] = str(wait)
                return refused
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
    def _play(video_id: str) -> Response:
        """The old player address: the web front end's video page replaces it."""
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", video_id):
            return error(404, "not_found", "No such video.")
        return Response(status=301, headers={"Location": f"/watch/{video_id}"})
