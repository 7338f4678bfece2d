"""The HTTP API as one Powertools resolver: one small function per route in reelay.api.routes.

Handlers parse (the resolver validates against reelay.api.models), call one domain function and
shape the answer. Every error leaves as JSON ``{"error": code, "message": text}``.
"""

from __future__ import annotations

import binascii
import json
import re
import threading
import typing
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any, TypeVar

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel

from reelay.api.models import (
    CompleteUploadIn,
    ConfirmIn,
    ErrorOut,
    ExportId,
    ExportIn,
    ExportOut,
    FinalizeOut,
    LimitsOut,
    LoginIn,
    MessageOut,
    MetadataIn,
    ModerationIn,
    ModerationOut,
    ModerationPageOut,
    MultipartUploadOut,
    OwnerVideoOut,
    OwnerVideoPageOut,
    PartUrlOut,
    PatchStreamIn,
    PatchVideoIn,
    RefreshIn,
    RegisterIn,
    RegisterOut,
    ResendCodeIn,
    SessionId,
    SessionOut,
    SessionPageOut,
    SingleUploadOut,
    StreamId,
    StreamIn,
    StreamOut,
    StreamPageOut,
    TokensOut,
    UploadIn,
    UploadOut,
    VideoId,
    VideoOut,
    VideoPageOut,
)
from reelay.api.routes import ROUTES, Route, allowed_methods
from reelay.errors import Forbidden, InvalidInput, NotFound, ReelayError, Unauthorized
from reelay.models import Stream, Video
from reelay.observability import MetricUnit, logger, metrics
from reelay.ports import Page, Tokens
from reelay.settings import Settings
from reelay.videos import MultipartUpload, VideoService, Viewer, content_type_pattern, upload_size_range
from reelay.wiring import get_services

SECURITY_SCHEME = "CognitoBearer"
_ROUTE_TABLE = {(r.method, r.path): r for r in ROUTES}
_F = TypeVar("_F", bound=Callable[..., Any])


def _read_json(text: str) -> Any:
    """json.loads, where JSON it cannot hold is a JSON error like any other, not an unexpected one.

    json.loads raises plain ValueError for integers over Python's 4300-digit limit and
    RecursionError for nesting deeper than the stack: both are bad input and answer 400.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        raise json.JSONDecodeError(f"cannot read the JSON: {type(exc).__name__}", text, 0) from exc


class ThreadSafeResolver(APIGatewayRestResolver):
    """The REST resolver, with the state of the event it is resolving kept per thread.

    Lambda gives each instance one event at a time, and Powertools relies on it: the current event
    and Lambda context are class attributes of BaseRouter, and the route context (``_route``,
    ``_route_args``) is one dict on the resolver. The local gateway serves requests on many threads
    in one process, so here each thread sees only its own event, as if it were its own instance.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._per_thread = threading.local()  # before super(), whose __init__ sets self.context
        self._build_lock = threading.Lock()
        self._stacks_built = False
        super().__init__(**kwargs)

    @property  # type: ignore[override]
    def current_event(self) -> Any:
        return self._per_thread.event

    @current_event.setter
    def current_event(self, value: Any) -> None:
        self._per_thread.event = value

    @property  # type: ignore[override]
    def lambda_context(self) -> Any:
        return self._per_thread.lambda_context

    @lambda_context.setter
    def lambda_context(self, value: Any) -> None:
        self._per_thread.lambda_context = value

    @property  # type: ignore[override]
    def context(self) -> dict[str, Any]:
        if not hasattr(self._per_thread, "context"):
            self._per_thread.context = {}
        return self._per_thread.context  # type: ignore[no-any-return]

    @context.setter
    def context(self, value: dict[str, Any]) -> None:
        self._per_thread.context = value

    def resolve(self, event: Any, context: Any) -> dict[str, Any]:
        self._build_middleware_stacks()
        # Powertools also writes BaseRouter.current_event, shared by all threads; reads on this
        # resolver go through the per-thread properties above instead.
        self.current_event = self._to_proxy_event(event)
        self.lambda_context = context
        return super().resolve(event, context)

    def _build_middleware_stacks(self) -> None:
        # Powertools builds a route's middleware stack on its first call, unguarded: two first calls
        # at once would wrap it twice. Build them all once, under a lock.
        if self._stacks_built:
            return
        with self._build_lock:
            if not self._stacks_built:
                for each in [*self._static_routes, *self._dynamic_routes]:
                    if not each._middleware_stack_built:
                        each._build_middleware_stack(router_middlewares=self._router_middlewares, app=self)
                self._stacks_built = True


app = ThreadSafeResolver(
    enable_validation=True,
    json_body_deserializer=_read_json,
    # Bearer tokens, not cookies, so any origin may call; credentials are never sent implicitly.
    cors=CORSConfig(allow_origin="*", max_age=600),
)


def _configure_openapi() -> None:
    """The document's title and security scheme: set on the first document, not at import.

    Powertools' OpenAPI models (HTTPBearer among them) cost about 0.2 s to import and no request but
    GET /openapi.json needs them: request validation uses the route's own pydantic models.
    """
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

    app.configure_openapi(
        title="Reelay API",
        version="1.0.0",
        description="Video on demand: sign up, upload, watch. Live relay: operators register camera feeds.",
        security_schemes={SECURITY_SCHEME: HTTPBearer(bearerFormat="JWT", description="Cognito ID token")},
    )


# --- the caller ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Caller:
    user_id: str
    email: str
    groups: frozenset[str] = frozenset()


def claimed_groups(value: Any) -> frozenset[str]:
    """The groups in a ``cognito:groups`` claim, in any shape it arrives in.

    The ID token holds a JSON list. API Gateway's Cognito authorizer hands claims over as strings:
    one group as ``operators``, several as ``[operators, admins]`` (or comma- or space-separated);
    the local gateway passes the list as JSON text (``["operators"]``).
    """
    if isinstance(value, list | tuple):
        return frozenset(v for v in value if isinstance(v, str) and v)
    if not isinstance(value, str):
        return frozenset()
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            text = text.strip("[]")
        else:
            return claimed_groups(parsed if isinstance(parsed, list) else None)
    return frozenset(g for g in re.split(r"[,\s]+", text) if g)


def caller(*, need_email: bool = False) -> Caller:
    """The verified caller. The authorizer (API Gateway or the local gateway) put the claims there."""
    claims = app.current_event.request_context.authorizer.claims
    sub = claims.get("sub") if isinstance(claims, dict) else None
    if not sub or not isinstance(sub, str):
        raise Unauthorized("sign in first: this route needs a valid bearer token")
    email = claims.get("email")
    if need_email and (not email or not isinstance(email, str)):
        # Access tokens carry no email; the catalogue records the uploader's (seed column `email`).
        raise Unauthorized("this route needs your ID token (it carries your email) as the bearer token")
    return Caller(
        user_id=sub,
        email=email if isinstance(email, str) else "",
        groups=claimed_groups(claims.get("cognito:groups")),
    )


def operator() -> Caller:
    """The verified caller, who must be in the operators group (the /streams routes)."""
    who = caller()
    group = get_services().settings.operators_group
    if group not in who.groups:
        raise Forbidden(
            f"only operators manage streams: ask an administrator to add you to the {group!r} group"
        )
    return who


def is_moderator(who: Caller) -> bool:
    return get_services().settings.moderators_group in who.groups


def viewer(who: Caller) -> Viewer:
    return Viewer(user_id=who.user_id, email=who.email, moderator=is_moderator(who))


def moderator() -> Viewer:
    """The verified caller, who must be in the moderators group (the /moderation routes)."""
    who = caller()
    if not is_moderator(who):
        group = get_services().settings.moderators_group
        raise Forbidden(
            f"only moderators may do this: ask an administrator to add you to the {group!r} group"
        )
    return viewer(who)


# --- routes -------------------------------------------------------------------------------------
def route(
    method: str,
    path: str,
    *,
    status: int = HTTPStatus.OK,
    also: dict[int, tuple[str, type]] | None = None,
    media: str | None = None,
) -> Callable[[_F], _F]:
    """Register a handler for a route of the shared table; its auth flag sets the OpenAPI security.
    ``also``: other success answers the handler gives, {status: (description, model)}."""
    spec: Route = _ROUTE_TABLE[(method, path)]
    others = {
        code: {"description": text, "content": {"application/json": {"model": model}}}
        for code, (text, model) in (also or {}).items()
    }

    def register(func: _F) -> _F:
        return app.route(
            path.replace("{", "<").replace("}", ">"),
            method=method,
            summary=spec.summary,
            security=[{SECURITY_SCHEME: []}] if spec.auth else None,
            tags=[path.strip("/").split("/")[0]],
            responses=(
                {status: {"description": "OK", "content": {media: {"schema": {"type": "string"}}}}}
                if media
                else _success_response(func, status)
            )
            | others
            | _error_responses(spec),
            status_code=status,
        )(func)

    return register


def _success_response(func: Callable[..., Any], status: int) -> dict[int, Any]:
    # Powertools documents only the responses given once any are, so the success one goes in too.
    if status == HTTPStatus.NO_CONTENT:
        # No body at all: an empty content map, or Powertools documents the return annotation as JSON.
        return {status: {"description": HTTPStatus(status).phrase, "content": {}}}
    returns = typing.get_type_hints(func).get("return")
    if isinstance(returns, type) and issubclass(returns, BaseModel):
        content = {"application/json": {"model": returns}}
        return {status: {"description": HTTPStatus(status).phrase, "content": content}}
    return {status: {"description": HTTPStatus(status).phrase}}


def _error_responses(spec: Route) -> dict[int, Any]:
    """Document the error shape for the failures each route can answer with."""
    codes = {400: "Invalid input", 500: "Internal error"}
    if spec.auth:
        codes |= {401: "Not signed in", 403: "Not the owner"}
    if "{videoId}" in spec.path or spec.path == "/videos/metadata":
        codes[404] = "Unknown video"
    if spec.path.startswith("/moderation"):
        codes[403] = "Not a moderator"
    if spec.path.startswith("/streams"):
        codes[403] = "Not an operator"
        codes[503] = "The keys that seal source secrets are not available"
        if "{streamId}" in spec.path:
            codes[404] = "Unknown stream (or another operator's)"
        if (spec.method, spec.path) in (("POST", "/streams"), ("PATCH", "/streams/{streamId}")):
            codes[409] = "KVS stream name taken, or the stream is running"
        if "{sessionId}" in spec.path:
            codes[404] = "Unknown stream or session (or another operator's)"
        if "{exportId}" in spec.path:
            codes[404] = "Unknown stream, session or export"
        if spec.path.endswith("/finalize"):
            codes[409] = "Still recording with a live writer, or expired"
        if spec.path.endswith("/exports") and spec.method == "POST":
            codes[409] = "The recording is not finalized (ready) yet"
            codes[503] = "The export could not be started, or exports are not configured here"
        if spec.path.endswith("/live.m3u8"):
            codes.pop(401, None)
            codes[403] = "Missing, bad or expired token"
            codes[404] = "Unknown session, or no segment stored yet"
            codes[409] = "The session records to a store the playback path does not serve"
    if spec.path.startswith("/auth/"):
        codes |= {401: "Wrong credentials or token", 403: "Not confirmed", 404: "Unknown user", 409: "Taken"}
    if spec.path.endswith("/upload/complete"):
        codes[409] = "Not awaiting an upload"
    if (spec.method, spec.path) in (
        ("DELETE", "/videos/{videoId}"),
        ("POST", "/moderation/videos/{videoId}/delete"),
    ):
        codes[409] = "Its media is being moved: try again in a few seconds"
    if spec.method in ("POST", "PATCH"):
        codes[415] = "Body not sent as JSON"
    # API Gateway (10 MB) and the local gateway refuse an oversized body on any method, before the API.
    codes[413] = "Request body too large"
    # API Gateway's throttles and WAF's rate rules answer any route (the /auth/* ones soonest), as does
    # the local gateway's per-client bucket on /auth/*.
    codes[429] = "Too many requests: retry after Retry-After seconds"
    if (spec.method, spec.path) == ("POST", "/videos/upload"):
        codes[429] += (
            "; or over a per-user upload quota, which the error code names: quota_videos_in_flight, "
            "quota_upload_bytes_per_day or quota_stored_bytes (no Retry-After)"
        )
    content = {"application/json": {"model": ErrorOut}}
    return {code: {"description": text, "content": content} for code, text in sorted(codes.items())}


_openapi_lock = threading.Lock()


def openapi_document(settings: Settings | None = None) -> dict[str, Any]:
    """The OpenAPI document as served (and for any offline export: one configuration for both).

    Validation failures answer 400 here, not Powertools' 422. The upload rules are those of ``settings``
    (by default the services' in force). Powertools builds the document in state shared by the
    resolver (its configuration, the schemas of the routes' fields), unguarded: the local gateway's
    threads build it one at a time, or two at once answer 500.
    """
    with _openapi_lock:
        _configure_openapi()
        document = json.loads(app.get_openapi_json_schema())
    _state_upload_rules(document, settings or get_services().settings)
    _state_rendition_names(document)
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    # Powertools' validation schemas: this API answers its own ErrorOut, and ResponseValidationError
    # would be left pointing at the removed ValidationError.
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        document.get("components", {}).get("schemas", {}).pop(name, None)
    return document


def _state_rendition_names(document: dict[str, Any]) -> None:
    """A recording's renditions are the ladder's names, each once: stated from the ladder itself (imported
    here, for the document only: the handler's import stays free of reelay.media)."""
    from reelay.media.ladder import PRESETS

    for model in ("StreamIn", "PatchStreamIn"):
        field = document["components"]["schemas"][model]["properties"]["recordRenditions"]
        for choice in field.get("anyOf", [field]):
            if choice.get("type") == "array":
                choice["items"] |= {"enum": list(PRESETS)}
                choice |= {"uniqueItems": True, "maxItems": len(PRESETS)}


def _state_upload_rules(document: dict[str, Any], settings: Settings) -> None:
    """POST /videos/upload's content types and sizes are settings: the document states the ones in force,
    built by the functions beside the checks (reelay.videos), so the two cannot drift apart."""
    fields = document["components"]["schemas"]["UploadIn"]["properties"]
    allowed = settings.allowed_content_types
    fields["contentType"] |= {
        "pattern": content_type_pattern(allowed),
        "description": f"One of {', '.join(allowed)}, in any case; parameters after a ';' are ignored",
    }
    least, most = upload_size_range(settings)
    fields["sizeBytes"] |= {"minimum": least, "maximum": most}


def _tokens(tokens: Tokens) -> TokensOut:
    return TokensOut(
        id_token=tokens.id_token,
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
        token_type=tokens.token_type,
    )


def _public(videos: VideoService, video: Video) -> VideoOut:
    return VideoOut.of(
        video, playback_url=videos.playback_url(video), thumbnail_url=videos.thumbnail_url(video)
    )


def _owned(videos: VideoService, video: Video) -> OwnerVideoOut:
    return OwnerVideoOut.of_owner(
        video, playback_url=videos.playback_url(video), thumbnail_url=videos.thumbnail_url(video)
    )


Limit = Annotated[int, Query(ge=1, le=100, description="Page size, 1 to 100")]
Cursor = Annotated[str | None, Query(min_length=1, max_length=512, description="nextCursor of the last page")]


@route("POST", "/auth/register", status=HTTPStatus.CREATED)
def register(body: RegisterIn) -> RegisterOut:
    user_id = get_services().identity.register(str(body.email), body.password)
    metrics.add_metric(name="UserRegistered", unit=MetricUnit.Count, value=1)
    return RegisterOut(user_id=user_id, confirmation_required=True)


@route("POST", "/auth/confirm-register")
def confirm_register(body: ConfirmIn) -> MessageOut:
    get_services().identity.confirm(str(body.email), body.code)
    return MessageOut(message="account confirmed; you can log in")


@route("POST", "/auth/resend-code")
def resend_code(body: ResendCodeIn) -> MessageOut:
    get_services().identity.resend_code(str(body.email))
    return MessageOut(message="a new confirmation code is on its way")


@route("POST", "/auth/login")
def login(body: LoginIn) -> TokensOut:
    return _tokens(get_services().identity.login(str(body.email), body.password))


@route("POST", "/auth/refresh")
def refresh(body: RefreshIn) -> TokensOut:
    return _tokens(get_services().identity.refresh(body.refresh_token))


@route("GET", "/videos")
def list_videos(limit: Limit = 20, cursor: Cursor = None) -> VideoPageOut:
    videos = get_services().videos
    page: Page = videos.list_ready(limit, cursor)
    return VideoPageOut(items=[_public(videos, v) for v in page.items], next_cursor=page.next_cursor)


@route("GET", "/videos/{videoId}")
def get_video(videoId: VideoId) -> VideoOut:
    # Anonymous: a private, unpublished or not yet ready video answers 404 (its owner uses
    # GET /me/videos/{videoId}, behind the authorizer, for the signed view).
    videos = get_services().videos
    return _public(videos, videos.view(videoId, None))


@route("GET", "/me/videos/{videoId}")
def get_my_video(videoId: VideoId) -> OwnerVideoOut:
    who = viewer(caller())
    videos = get_services().videos
    video = videos.view(videoId, who)
    if video.owner_id != who.user_id and not who.moderator:
        raise NotFound(f"video {videoId} not found")  # someone else's: /videos/{videoId} is the way
    return _owned(videos, video)


@route("POST", "/videos/upload", status=HTTPStatus.CREATED)
def create_upload(body: UploadIn) -> UploadOut:
    who = caller(need_email=True)
    videos = get_services().videos
    video, instructions = videos.create_upload(
        who.user_id,
        who.email,
        body.display_name,
        body.description,
        body.content_type,
        body.size_bytes,
        body.file_name,
        visibility=body.visibility,
    )
    settings = videos.settings
    out = UploadOut(
        video_id=video.video_id,
        video=_owned(videos, video),
        limits=LimitsOut(
            max_bytes=settings.max_upload_bytes, allowed_content_types=list(settings.allowed_content_types)
        ),
    )
    if isinstance(instructions, MultipartUpload):
        out.multipart = MultipartUploadOut(
            upload_id=instructions.upload_id,
            part_size_bytes=instructions.part_size_bytes,
            parts=[PartUrlOut(part_number=p.part_number, url=p.url) for p in instructions.parts],
            # Relative, so it resolves under the stage (/prod/) instead of the host root.
            complete_path=f"videos/{video.video_id}/upload/complete",
            expires_in=instructions.expires_in,
        )
    else:
        out.upload = SingleUploadOut(
            url=instructions.url, headers=instructions.headers, expires_in=instructions.expires_in
        )
    metrics.add_metric(name="UploadCreated", unit=MetricUnit.Count, value=1)
    return out


@route("POST", "/videos/{videoId}/upload/complete")
def complete_upload(videoId: VideoId, body: CompleteUploadIn) -> OwnerVideoOut:
    who = caller()
    videos = get_services().videos
    video = videos.complete_multipart(
        who.user_id, videoId, body.upload_id, [(p.part_number, p.etag) for p in body.parts]
    )
    return _owned(videos, video)


@route("POST", "/videos/metadata")
def set_metadata(body: MetadataIn) -> OwnerVideoOut:
    who = caller()
    videos = get_services().videos
    video = videos.update_metadata(who.user_id, body.video_id, body.display_name, body.description)
    return _owned(videos, video)


@route("PATCH", "/videos/{videoId}")
def patch_video(videoId: VideoId, body: PatchVideoIn) -> OwnerVideoOut:
    who = caller()
    videos = get_services().videos
    if body.visibility is None and body.display_name is None and body.description is None:
        raise InvalidInput("give displayName, description, visibility or several of them")
    if body.visibility is None:
        return _owned(
            videos, videos.update_metadata(who.user_id, videoId, body.display_name, body.description)
        )
    video = videos.set_visibility(who.user_id, videoId, body.visibility)
    if body.display_name is not None or body.description is not None:
        video = videos.update_metadata(who.user_id, videoId, body.display_name, body.description)
    return _owned(videos, video)


@route("DELETE", "/videos/{videoId}", status=HTTPStatus.NO_CONTENT)
def delete_video(videoId: VideoId) -> Response[str]:
    who = caller()
    get_services().videos.delete(who.user_id, videoId)
    metrics.add_metric(name="VideoDeleted", unit=MetricUnit.Count, value=1)
    return Response(status_code=HTTPStatus.NO_CONTENT, body="")


@route("POST", "/moderation/videos/{videoId}/delete", status=HTTPStatus.NO_CONTENT)
def moderator_delete_video(videoId: VideoId, body: ModerationIn) -> Response[str]:
    get_services().videos.moderate_delete(moderator(), videoId, body.reason)
    metrics.add_metric(name="VideoDeleted", unit=MetricUnit.Count, value=1)
    return Response(status_code=HTTPStatus.NO_CONTENT, body="")


@route("POST", "/moderation/videos/{videoId}/unpublish")
def unpublish_video(videoId: VideoId, body: ModerationIn) -> OwnerVideoOut:
    videos = get_services().videos
    return _owned(videos, videos.unpublish(moderator(), videoId, body.reason))


@route("POST", "/moderation/videos/{videoId}/republish")
def republish_video(videoId: VideoId, body: ModerationIn) -> OwnerVideoOut:
    videos = get_services().videos
    return _owned(videos, videos.unpublish(moderator(), videoId, body.reason, unpublished=False))


@route("GET", "/moderation/audit")
def moderation_audit(limit: Limit = 20, cursor: Cursor = None) -> ModerationPageOut:
    moderator()
    page = get_services().videos.moderation_log(limit, cursor)
    return ModerationPageOut(items=[ModerationOut.of(r) for r in page.items], next_cursor=page.next_cursor)


@route("GET", "/me/videos")
def my_videos(limit: Limit = 20, cursor: Cursor = None) -> OwnerVideoPageOut:
    who = caller()
    videos = get_services().videos
    page = videos.list_mine(who.user_id, limit, cursor)
    return OwnerVideoPageOut(items=[_owned(videos, v) for v in page.items], next_cursor=page.next_cursor)


def _stream(stream: Stream, *, show_webhook_secret: bool = False) -> StreamOut:
    streams = get_services().streams
    secret = streams.webhook_secret(stream) if show_webhook_secret else None
    return StreamOut.of(stream, secret_names=streams.secret_names(stream), webhook_secret=secret)


@route("POST", "/streams", status=HTTPStatus.CREATED)
def create_stream(body: StreamIn) -> StreamOut:
    who = operator()
    stream = get_services().streams.create(
        who.user_id,
        body.name,
        body.source_url,
        body.kvs_stream_name,
        body.video,
        record=body.record,
        relay=body.relay,
        recording=body.recording(),
    )
    metrics.add_metric(name="StreamCreated", unit=MetricUnit.Count, value=1)
    return _stream(stream, show_webhook_secret=bool(body.record_webhook_url))


@route("GET", "/streams")
def list_streams(limit: Limit = 20, cursor: Cursor = None) -> StreamPageOut:
    who = operator()
    page = get_services().streams.list_mine(who.user_id, limit, cursor)
    return StreamPageOut(items=[_stream(s) for s in page.items], next_cursor=page.next_cursor)


@route("GET", "/streams/{streamId}")
def get_stream(streamId: StreamId) -> StreamOut:
    return _stream(get_services().streams.get(operator().user_id, streamId))


@route("PATCH", "/streams/{streamId}")
def patch_stream(streamId: StreamId, body: PatchStreamIn) -> StreamOut:
    who = operator()
    stream = get_services().streams.update(
        who.user_id,
        streamId,
        name=body.name,
        source_url=body.source_url,
        kvs_stream_name=body.kvs_stream_name,
        video=body.video,
        record=body.record,
        recording=body.recording(),
    )
    return _stream(stream, show_webhook_secret=bool(body.record_webhook_url))


@route("DELETE", "/streams/{streamId}", status=HTTPStatus.NO_CONTENT)
def delete_stream(streamId: StreamId) -> Response[str]:
    get_services().streams.delete(operator().user_id, streamId)
    metrics.add_metric(name="StreamDeleted", unit=MetricUnit.Count, value=1)
    return Response(status_code=HTTPStatus.NO_CONTENT, body="")


@route("POST", "/streams/{streamId}/start", status=HTTPStatus.ACCEPTED)
def start_stream(streamId: StreamId) -> StreamOut:
    return _stream(get_services().streams.start(operator().user_id, streamId))


@route("POST", "/streams/{streamId}/stop", status=HTTPStatus.ACCEPTED)
def stop_stream(streamId: StreamId) -> StreamOut:
    return _stream(get_services().streams.stop(operator().user_id, streamId))


def _api_base() -> str:
    """Where this API is reached from outside, for URLs it hands out (the live playlist's): API
    Gateway's domain and stage, or the local gateway's Host."""
    event = app.current_event
    context = event.request_context
    domain = getattr(context, "domain_name", None)
    headers = event.headers or {}
    if domain and event.raw_event.get("requestContext", {}).get("apiId") != "local":
        return f"https://{domain}/{context.stage}"
    host = headers.get("host") or headers.get("Host") or "localhost:8080"
    proto = headers.get("x-forwarded-proto") or headers.get("X-Forwarded-Proto") or "http"
    return f"{proto}://{host}"


def _session(session: Any, *, live: bool = False) -> SessionOut:
    view = get_services().recordings.view(session, api_base=_api_base() if live else None)
    return SessionOut.of(
        session,
        duration_seconds=view.duration_seconds,
        live_playlist_url=view.live_playlist_url,
        live_playlist_expires_at=view.live_expires_at,
    )


@route("GET", "/streams/{streamId}/sessions")
def list_sessions(streamId: StreamId, limit: Limit = 20, cursor: Cursor = None) -> SessionPageOut:
    page = get_services().recordings.list(operator().user_id, streamId, limit, cursor)
    return SessionPageOut(items=[_session(s) for s in page.items], next_cursor=page.next_cursor)


@route("GET", "/streams/{streamId}/sessions/{sessionId}")
def get_session(streamId: StreamId, sessionId: SessionId) -> SessionOut:
    return _session(get_services().recordings.get(operator().user_id, streamId, sessionId), live=True)


@route(
    "POST",
    "/streams/{streamId}/sessions/{sessionId}/finalize",
    status=HTTPStatus.ACCEPTED,
    also={HTTPStatus.OK: ("Already finalized: its video id", FinalizeOut)},
)
def finalize_session(streamId: StreamId, sessionId: SessionId) -> Response[FinalizeOut]:
    out = get_services().recordings.finalize(operator().user_id, streamId, sessionId)
    body = FinalizeOut(
        session_id=sessionId,
        state=out["state"],
        started=out["started"],
        mode=out.get("mode"),
        video_id=out.get("videoId"),
    )
    if out["started"]:
        metrics.add_metric(name="RecordingFinalizeStarted", unit=MetricUnit.Count, value=1)
    status = HTTPStatus.OK if out["state"] == "ready" else HTTPStatus.ACCEPTED
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=typing.cast(Any, body.model_dump(mode="json", by_alias=True)),
    )


@route("POST", "/streams/{streamId}/sessions/{sessionId}/exports", status=HTTPStatus.ACCEPTED)
def create_export(streamId: StreamId, sessionId: SessionId, body: ExportIn) -> ExportOut:
    record = get_services().recordings.create_export(
        operator().user_id, streamId, sessionId, body.start, body.end
    )
    metrics.add_metric(name="RecordingExportStarted", unit=MetricUnit.Count, value=1)
    return ExportOut.model_validate(record)


@route("GET", "/streams/{streamId}/sessions/{sessionId}/exports/{exportId}")
def get_export(streamId: StreamId, sessionId: SessionId, exportId: ExportId) -> ExportOut:
    return ExportOut.model_validate(
        get_services().recordings.get_export(operator().user_id, streamId, sessionId, exportId)
    )


LiveToken = Annotated[
    str | None, Query(min_length=1, max_length=200, description="The token of the session's livePlaylistUrl")
]


@route("GET", "/streams/{streamId}/sessions/{sessionId}/live.m3u8", media="application/vnd.apple.mpegurl")
def live_playlist(streamId: StreamId, sessionId: SessionId, token: LiveToken = None) -> Response[str]:
    body = get_services().recordings.live(streamId, sessionId, token)
    return Response(
        status_code=HTTPStatus.OK,
        content_type="application/vnd.apple.mpegurl",
        body=body,
        headers={"Cache-Control": "no-cache"},
    )


@route("GET", "/openapi.json")
def get_openapi_document() -> Response[dict[str, Any]]:
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=openapi_document())


# --- errors -------------------------------------------------------------------------------------
def error_response(status: int, code: str, message: str) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"error": code, "message": message},
    )


def _describe(errors: list[dict[str, Any]]) -> tuple[str, str]:
    """A readable message naming the fields, without Python or pydantic internals."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return "invalid_json", "the request body is not valid JSON"
    parts = []
    for e in errors[:5]:
        loc = [str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path")]
        where = ".".join(loc) or "body"
        kind = e.get("type", "")
        if kind == "missing":
            parts.append(f"{where} is required")
        elif kind == "extra_forbidden":
            parts.append(f"{where} is not an accepted field")
        else:
            parts.append(f"{where}: {e.get('msg') or kind}")
    return "invalid_input", "; ".join(parts) or "the request is not valid"


def resolve(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``app.resolve`` on an event whose Content-Type media type is lower-cased.

    Media types are case-insensitive (RFC 9110 8.3.1), but Powertools compares them exactly, so
    ``Content-Type: Application/JSON`` would get a 415.
    """
    return app.resolve(_lowercase_media_type(event), context)


def _lowercase_media_type(event: dict[str, Any]) -> dict[str, Any]:
    def fixed(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        media, sep, params = value.partition(";")
        return media.lower() + sep + params

    changed = dict(event)
    for key in ("headers", "multiValueHeaders"):
        headers = event.get(key)
        if isinstance(headers, dict):
            changed[key] = {
                name: (
                    ([fixed(v) for v in value] if isinstance(value, list) else fixed(value))
                    if isinstance(name, str) and name.lower() == "content-type"
                    else value
                )
                for name, value in headers.items()
            }
    return changed


def _sent_json() -> bool:
    content_type = (app.current_event.headers or {}).get("content-type", "") or ""
    return not content_type.strip() or content_type.strip().lower().startswith("application/json")


def _not_json() -> Response:
    return error_response(
        415, "unsupported_media_type", "send the body as JSON with Content-Type: application/json"
    )


@app.exception_handler(RequestValidationError)
def on_validation_error(exc: RequestValidationError) -> Response:
    if not _sent_json():  # form bodies parse into lists of strings: say what is really wrong
        return _not_json()
    code, message = _describe(list(exc.errors()))
    return error_response(400, code, message)


@app.exception_handler(RequestUnsupportedContentType)
def on_unsupported_content_type(exc: RequestUnsupportedContentType) -> Response:
    return _not_json()


@app.exception_handler(ValueError)
def on_value_error(exc: ValueError) -> Response:
    # Decoding the event body happens before any route runs: bad base64, not UTF-8, a broken
    # multipart body. Anything else is a bug and takes the 500 path.
    if isinstance(exc, binascii.Error | UnicodeDecodeError):
        return error_response(400, "invalid_json", "the request body could not be decoded as UTF-8 JSON")
    if not _sent_json():
        return _not_json()
    return on_unexpected(exc)


@app.exception_handler(ReelayError)
def on_domain_error(exc: ReelayError) -> Response:
    if exc.status >= 500:
        logger.error("dependency failed", extra={"error": exc.code, "detail": exc.message})
    return error_response(exc.status, exc.code, exc.message)


@app.not_found
def on_not_found(_: NotFoundError) -> Response:
    event = app.current_event
    allowed = allowed_methods(event.path)
    # The path exists, the method does not: 405 with Allow (RFC 9110 15.5.6). A served method that
    # still found no route had a parameter the resolver does not match (a control character): 404.
    if allowed and event.http_method not in allowed:
        response = error_response(
            405, "method_not_allowed", f"{event.http_method} is not allowed on {event.path}"
        )
        response.headers["Allow"] = ", ".join(allowed)
        return response
    return error_response(404, "not_found", f"no route for {event.http_method} {event.path}")


@app.exception_handler(ServiceError)
def on_service_error(exc: ServiceError) -> Response:
    return error_response(
        exc.status_code, HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_"), str(exc.msg)
    )


@app.exception_handler(Exception)
def on_unexpected(exc: Exception) -> Response:
    logger.exception("unexpected error")
    return error_response(500, "internal_error", "something went wrong on our side; try again later")
