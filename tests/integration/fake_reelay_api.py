"""A tiny stand-in for the Reelay HTTP API, for driving the CLI over real sockets.

It keeps the wire contract (paths, camelCase bodies, ``{"error", "message"}`` errors, status codes)
and little else: tokens are fake JWTs that expire on the server's clock, uploads are kept in
memory, and a video's transcode is a scripted list of statuses. The streams routes follow the
contract the streams API is being built to, the recording routes docs/recordings-api.md (a finalize
or an export advances one step per GET). Faults are injected per route with ``fail_next``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

PASSWORD = "Sup3r-Secret-42"


def fake_jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


@dataclass
class FakeVideo:
    video_id: str
    owner: str
    name: str
    description: str
    size: int
    multipart: bool
    status: str = "awaiting_upload"
    data: bytes = b""
    parts: dict[int, bytes] = field(default_factory=dict)
    script: list[tuple[str, int, str | None]] = field(default_factory=list)  # (status, progress, reason)
    failure_reason: str | None = None
    progress: int = 0
    visibility: str = "public"

    def wire(self) -> dict[str, Any]:
        return {
            "videoId": self.video_id,
            "displayName": self.name,
            "description": self.description,
            "status": self.status,
            "failureReason": self.failure_reason,
            "progress": self.progress,
            "playable": self.status == "ready",
            "durationSeconds": 2.5 if self.status == "ready" else None,
            "renditions": [{"name": "180p", "width": 320, "height": 180, "bandwidth": 1, "codecs": "avc1"}]
            if self.status == "ready"
            else [],
            "uploadTime": "2026-12-01T10:00:00.000Z",
            "visibility": self.visibility,
            "playbackUrl": f"http://media/{self.video_id}/master.m3u8" if self.status == "ready" else None,
        }


class FakeApi:
    def __init__(self, *, multipart_threshold: int = 100, part_size: int = 40) -> None:
        self.lock = threading.Lock()
        self.users: dict[str, str] = {}
        self.confirmed: set[str] = set()
        self.operators: set[str] = set()
        self.codes: dict[str, str] = {}
        self.id_tokens: dict[str, tuple[str, float]] = {}  # token -> (email, expires at)
        self.refresh_tokens: dict[str, str] = {}
        self.token_ttl = 3600
        self.videos: dict[str, FakeVideo] = {}
        self.streams: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}  # sessionId -> session (wire shape)
        self.exports: dict[str, dict[str, Any]] = {}  # exportId -> export (wire shape)
        self.export_failure: str | None = None  # the reason every new export fails with
        self.exports_available = True  # False: 503 exports_unavailable (the export could not start)
        self.export_bytes = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        # What a landed upload goes through on each GET (a file starting NOTVIDEO fails instead).
        self.transcode_script: list[tuple[str, int, str | None]] = [
            ("processing", 50, None),
            ("ready", 100, None),
        ]
        self.log: list[tuple[str, str, int]] = []  # (method, path with query, status)
        self._faults: dict[tuple[str, str], list[int]] = {}
        self.lose_put_answers = 0  # single PUTs that land but answer 502
        self.url = ""

    # --- test controls ----------------------------------------------------------------------------
    def add_user(self, email: str, *, operator: bool = False) -> None:
        self.users[email] = PASSWORD
        self.confirmed.add(email)
        if operator:
            self.operators.add(email)

    def fail_next(self, method: str, pattern: str, *statuses: int) -> None:
        """Answer the next requests matching ``pattern`` (a regex on the path) with these statuses."""
        self._faults.setdefault((method, pattern), []).extend(statuses)

    def add_session(
        self, stream_id: str, *, state: str = "ended", duration: float = 12.0, failure: str | None = None
    ) -> str:
        """A recording session of a stream, in the given state (a ready one has its video)."""
        sid = f"ses-{uuid.uuid4().hex[:8]}"
        self.sessions[sid] = {
            "sessionId": sid,
            "streamId": stream_id,
            "state": state,
            "startedAt": f"2026-12-01T10:{len(self.sessions):02d}:00.000Z",
            "endedAt": None if state == "recording" else "2026-12-01T10:30:00.000Z",
            "endReason": None if state == "recording" else "stopped",
            "durationSeconds": duration,
            "store": "file:///var/lib/reelay/media",
            "storeSource": "default",
            "storeFallbackReason": None,
            "writerCount": 1,
            "discontinuities": 0,
            "renditions": [{"name": "source", "width": 0, "height": 0, "bandwidth": 0, "codecs": "avc1"}],
            "videoId": None,
            "failureReason": failure,
            "workflowState": None,
            "_script": [],
        }
        if state == "ready":
            self._finish_session(self.sessions[sid])
        return sid

    def _finish_session(self, session: dict[str, Any]) -> None:
        vid = f"rec-{session['sessionId']}"
        video = FakeVideo(vid, "operator", "Recording", "", 0, False, status="ready")
        self.videos[vid] = video
        session.update(state="ready", videoId=vid, failureReason=None)

    def expire_tokens(self) -> None:
        self.id_tokens = {t: (e, 0.0) for t, (e, _) in self.id_tokens.items()}

    def count(self, method: str, pattern: str) -> int:
        return sum(1 for m, p, _ in self.log if m == method and re.search(pattern, p))

    # --- WSGI -------------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self.dispatch(request)
        with self.lock:
            self.log.append((request.method, request.full_path.rstrip("?"), response.status_code))
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        for (method, pattern), statuses in self._faults.items():
            if statuses and method == request.method and re.search(pattern, request.path):
                status = statuses.pop(0)
                return error(status, "injected", f"injected {status}")
        body = request.get_json(silent=True) or {}
        path, m = request.path, request.method
        routes: list[tuple[str, str, Any]] = [
            ("POST", r"/auth/register", self.register),
            ("POST", r"/auth/confirm-register", self.confirm),
            ("POST", r"/auth/resend-code", self.resend),
            ("POST", r"/auth/login", self.login),
            ("POST", r"/auth/refresh", self.refresh),
            ("GET", r"/videos", self.list_videos),
            ("GET", r"/me/videos", self.my_videos),
            ("GET", r"/me/videos/(?P<vid>\w+)", self.my_video),
            ("POST", r"/videos/upload", self.create_upload),
            ("POST", r"/videos/(?P<vid>\w+)/upload/complete", self.complete),
            ("GET", r"/videos/(?P<vid>[\w-]+)", self.get_video),
            ("PATCH", r"/videos/(?P<vid>\w+)", self.patch_video),
            ("DELETE", r"/videos/(?P<vid>\w+)", self.delete_video),
            ("PUT", r"/media/(?P<vid>\w+)", self.put_media),
            ("POST", r"/streams", self.create_stream),
            ("GET", r"/streams", self.list_streams),
            ("GET", r"/streams/(?P<sid>[\w-]+)", self.get_stream),
            ("DELETE", r"/streams/(?P<sid>[\w-]+)", self.delete_stream),
            ("PATCH", r"/streams/(?P<sid>[\w-]+)", self.patch_stream),
            ("POST", r"/streams/(?P<sid>[\w-]+)/(?P<action>start|stop)", self.stream_action),
            ("GET", r"/streams/(?P<sid>[\w-]+)/sessions", self.list_sessions),
            ("GET", r"/streams/(?P<sid>[\w-]+)/sessions/(?P<ses>[\w-]+)", self.get_session),
            ("POST", r"/streams/(?P<sid>[\w-]+)/sessions/(?P<ses>[\w-]+)/finalize", self.finalize),
            ("POST", r"/streams/(?P<sid>[\w-]+)/sessions/(?P<ses>[\w-]+)/exports", self.create_export),
            (
                "GET",
                r"/streams/(?P<sid>[\w-]+)/sessions/(?P<ses>[\w-]+)/exports/(?P<eid>[\w-]+)",
                self.get_export,
            ),
            ("GET", r"/downloads/(?P<eid>[\w-]+)\.mp4", self.download),
        ]
        for method, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match and method == m:
                return handler(request, body, **match.groupdict())
        return error(404, "not_found", f"No route for {m} {path}.")

    # --- auth -------------------------------------------------------------------------------------
    def _tokens(self, email: str, *, with_refresh: bool) -> dict[str, Any]:
        groups = ["operators"] if email in self.operators else []
        token = fake_jwt(
            {"sub": f"sub-{email}", "email": email, "cognito:groups": groups, "n": uuid.uuid4().hex}
        )
        self.id_tokens[token] = (email, time.time() + self.token_ttl)
        out: dict[str, Any] = {
            "idToken": token,
            "accessToken": "acc-" + token[-8:],
            "expiresIn": self.token_ttl,
        }
        if with_refresh:
            refresh = uuid.uuid4().hex
            self.refresh_tokens[refresh] = email
            out["refreshToken"] = refresh
        return out

    def caller(self, request: Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        email, expires = self.id_tokens.get(auth.removeprefix("Bearer "), ("", 0.0))
        return email if email and expires > time.time() else None

    def register(self, _r: Request, body: dict[str, Any]) -> Response:
        email = body["email"]
        if email in self.users:
            return error(409, "email_taken", "an account with this email already exists")
        self.users[email] = body["password"]
        self.codes[email] = "123456"
        return reply(201, {"userId": f"sub-{email}", "confirmationRequired": True})

    def confirm(self, _r: Request, body: dict[str, Any]) -> Response:
        if self.codes.get(body["email"]) != body["code"]:
            return error(400, "invalid_code", "the code is wrong or has expired")
        self.confirmed.add(body["email"])
        return reply(200, {"message": "account confirmed; you can log in"})

    def resend(self, _r: Request, body: dict[str, Any]) -> Response:
        return reply(200, {"message": "a new confirmation code is on its way"})

    def login(self, _r: Request, body: dict[str, Any]) -> Response:
        email = body.get("email", "")
        if self.users.get(email) != body.get("password"):
            return error(401, "invalid_credentials", "wrong email or password")
        if email not in self.confirmed:
            return error(403, "user_not_confirmed", "confirm your email first")
        return reply(200, self._tokens(email, with_refresh=True))

    def refresh(self, _r: Request, body: dict[str, Any]) -> Response:
        email = self.refresh_tokens.get(body.get("refreshToken", ""))
        if email is None:
            return error(401, "unauthorized", "the refresh token is not valid")
        return reply(200, self._tokens(email, with_refresh=False))  # Cognito sends no new refresh token

    # --- videos -----------------------------------------------------------------------------------
    def _advance(self, video: FakeVideo) -> None:
        if video.status not in ("awaiting_upload", "ready", "failed") and video.script:
            video.status, video.progress, video.failure_reason = video.script.pop(0)

    def list_videos(self, _r: Request, _b: dict[str, Any]) -> Response:
        items = [v.wire() for v in self.videos.values() if v.status == "ready"]
        return reply(200, {"items": items, "nextCursor": None})

    def my_videos(self, request: Request, _b: dict[str, Any]) -> Response:
        who = self.caller(request)
        if who is None:
            return error(401, "unauthorized", "sign in first")
        return reply(
            200, {"items": [v.wire() for v in self.videos.values() if v.owner == who], "nextCursor": None}
        )

    def get_video(self, _r: Request, _b: dict[str, Any], vid: str) -> Response:
        # As the real API: a video that is not ready is its owner's alone (GET /me/videos/{id}).
        video = self.videos.get(vid)
        if video is not None:
            self._advance(video)
        if video is None or video.status != "ready" or video.visibility == "private":
            return error(404, "not_found", f"video {vid} not found")
        return reply(200, video.wire())

    def my_video(self, request: Request, _b: dict[str, Any], vid: str) -> Response:
        who = self.caller(request)
        if who is None:
            return error(401, "unauthorized", "sign in first")
        video = self.videos.get(vid)
        if video is None or video.owner != who:
            return error(404, "not_found", f"video {vid} not found")
        self._advance(video)
        return reply(200, video.wire())

    def _owned(self, request: Request, vid: str) -> FakeVideo | Response:
        who = self.caller(request)
        if who is None:
            return error(401, "unauthorized", "sign in first")
        video = self.videos.get(vid)
        if video is None:
            return error(404, "not_found", f"video {vid} not found")
        if video.owner != who:
            return error(403, "forbidden", f"video {vid} is not yours")
        return video

    def create_upload(self, request: Request, body: dict[str, Any]) -> Response:
        who = self.caller(request)
        if who is None:
            return error(401, "unauthorized", "sign in first")
        if not body.get("contentType", "").startswith("video/"):
            return error(400, "invalid_input", f"contentType {body.get('contentType')!r} is not supported")
        vid = uuid.uuid4().hex
        size = int(body["sizeBytes"])
        video = FakeVideo(
            vid, who, body["displayName"], body.get("description", ""), size, size >= self.multipart_threshold
        )
        self.videos[vid] = video
        out: dict[str, Any] = {"videoId": vid, "video": video.wire(), "upload": None, "multipart": None}
        if video.multipart:
            n = -(-size // self.part_size)
            out["multipart"] = {
                "uploadId": f"up-{vid}",
                "partSizeBytes": self.part_size,
                "parts": [
                    {"partNumber": i, "url": f"{self.url}/media/{vid}?partNumber={i}"}
                    for i in range(1, n + 1)
                ],
                "completePath": f"videos/{vid}/upload/complete",
                "expiresIn": 3600,
            }
        else:
            out["upload"] = {
                "method": "PUT",
                "url": f"{self.url}/media/{vid}",
                "headers": {"Content-Type": body["contentType"], "If-None-Match": "*"},
                "expiresIn": 3600,
            }
        return reply(201, out)

    def put_media(self, request: Request, _b: dict[str, Any], vid: str) -> Response:
        video = self.videos.get(vid)
        if video is None:
            return error(404, "not_found", "no such upload")
        data = request.get_data()
        if "partNumber" in request.args:
            video.parts[int(request.args["partNumber"])] = data
        else:
            if len(data) != video.size:
                return error(400, "invalid_input", "wrong length")
            if video.data and request.headers.get("If-None-Match") == "*":
                # The single-PUT URL only creates its object, as S3 and the local store do.
                return error(412, "precondition_failed", "the object exists; this URL only creates it")
            self._landed(video, data)
            if self.lose_put_answers:
                self.lose_put_answers -= 1
                return error(502, "injected", "the answer was lost after the object landed")
        return Response(status=200, headers={"ETag": f'"{hashlib.md5(data).hexdigest()}"'})

    def _landed(self, video: FakeVideo, data: bytes) -> None:
        video.data = data
        video.status = "queued"
        if data.startswith(b"NOTVIDEO"):
            video.script = [("processing", 0, None), ("failed", 0, "not a recognised video file")]
        else:
            video.script = list(self.transcode_script)

    def complete(self, request: Request, body: dict[str, Any], vid: str) -> Response:
        video = self._owned(request, vid)
        if isinstance(video, Response):
            return video
        if video.status != "awaiting_upload":
            return error(409, "conflict", f"video {vid} is {video.status}, not awaiting an upload")
        parts = body["parts"]
        for p in parts:
            data = video.parts.get(p["partNumber"], b"")
            if p["etag"] != f'"{hashlib.md5(data).hexdigest()}"':
                return error(400, "invalid_input", f"part {p['partNumber']} does not match its etag")
        self._landed(
            video,
            b"".join(video.parts[p["partNumber"]] for p in sorted(parts, key=lambda p: p["partNumber"])),
        )
        return reply(200, video.wire())

    def patch_video(self, request: Request, body: dict[str, Any], vid: str) -> Response:
        video = self._owned(request, vid)
        if isinstance(video, Response):
            return video
        video.name = body.get("displayName", video.name)
        video.description = body.get("description", video.description)
        video.visibility = body.get("visibility", video.visibility)
        return reply(200, video.wire())

    def delete_video(self, request: Request, _b: dict[str, Any], vid: str) -> Response:
        video = self._owned(request, vid)
        if isinstance(video, Response):
            return video
        del self.videos[vid]
        return Response(status=204)

    # --- streams ----------------------------------------------------------------------------------
    def _operator(self, request: Request) -> str | Response:
        who = self.caller(request)
        if who is None:
            return error(401, "unauthorized", "sign in first")
        if who not in self.operators:
            return error(403, "forbidden", "only operators can manage streams")
        return who

    def create_stream(self, request: Request, body: dict[str, Any]) -> Response:
        if isinstance(who := self._operator(request), Response):
            return who
        if body.get("video", "auto") not in ("auto", "passthrough", "transcode"):
            return error(400, "invalid_input", "video must be auto, passthrough or transcode")
        sid = f"st-{uuid.uuid4().hex[:8]}"
        stream = {
            "streamId": sid,
            "name": body["name"],
            "sourceUrl": body["sourceUrl"],
            "kvsStreamName": body.get("kvsStreamName") or f"reelay-{sid}",
            "video": body.get("video", "auto"),
            "desiredState": "stopped",
            "state": "stopped",
            "stateSince": "2026-12-01T10:00:00.000Z",
            "outageCause": None,
            "reconnects": 0,
            "inputBitrateBps": None,
            "lastFragmentAckedAt": None,
            "credentialsExpireAt": None,
            "slateOn": False,
            "slateSince": None,
            "slateFragmentsPersisted": 0,
            "task": None,
            "record": bool(body.get("record", False)),
            **self._record_settings(body, {}),
        }
        self.streams[sid] = stream
        if body.get("recordWebhookUrl"):  # the secret is in this answer only
            return reply(
                201, stream | {"recordWebhookSecret": "whsec_" + hashlib.sha256(sid.encode()).hexdigest()}
            )
        return reply(201, stream)

    @staticmethod
    def _record_settings(body: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
        out = {
            "recordObjectStore": current.get("recordObjectStore"),
            "recordWebhookUrl": current.get("recordWebhookUrl"),
            "retentionDays": current.get("retentionDays"),
            "reconnectWindowSeconds": current.get("reconnectWindowSeconds"),
            "recordRenditions": current.get("recordRenditions", []),
        }
        for key in out:
            if key in body:
                value = body[key]
                out[key] = value or None if key in ("recordObjectStore", "recordWebhookUrl") else value
        store = out["recordObjectStore"]
        if store:  # redacted, as the API shows it
            out["recordObjectStore"] = re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", store)
        return out

    def patch_stream(self, request: Request, body: dict[str, Any], sid: str) -> Response:
        if isinstance(who := self._operator(request), Response):
            return who
        stream = self.streams.get(sid)
        if stream is None:
            return error(404, "not_found", f"stream {sid} not found")
        renditions = body.get("recordRenditions", [])
        if any(r not in ("1080p", "720p", "480p", "360p", "240p") for r in renditions):
            return error(400, "invalid_input", f"recordRenditions: unknown rendition in {renditions}")
        days = body.get("retentionDays")
        if days is not None and not 1 <= days <= 3650:
            return error(400, "invalid_input", "retentionDays must be 1 to 3650 or null")
        if stream["desiredState"] == "running" and set(body) & {"recordObjectStore", "recordRenditions"}:
            return error(409, "conflict", "the recording settings change only while the stream is stopped")
        stream.update({k: body[k] for k in ("name", "video", "record") if k in body})
        stream.update(self._record_settings(body, stream))
        answer = dict(stream)
        if body.get("recordWebhookUrl"):
            answer["recordWebhookSecret"] = "whsec_" + hashlib.sha256(sid.encode()).hexdigest()
        return reply(200, answer)

    # --- recordings -------------------------------------------------------------------------------
    def _session(self, request: Request, sid: str, ses: str) -> dict[str, Any] | Response:
        if isinstance(who := self._operator(request), Response):
            return who
        if sid not in self.streams:
            return error(404, "not_found", f"stream {sid} not found")
        session = self.sessions.get(ses)
        if session is None or session["streamId"] != sid:
            return error(404, "not_found", f"recording session {ses} not found")
        return session

    @staticmethod
    def _wire(session: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in session.items() if not k.startswith("_")}

    def list_sessions(self, request: Request, _b: dict[str, Any], sid: str) -> Response:
        if isinstance(who := self._operator(request), Response):
            return who
        if sid not in self.streams:
            return error(404, "not_found", f"stream {sid} not found")
        items = [self._wire(s) for s in self.sessions.values() if s["streamId"] == sid]
        items.sort(key=lambda s: s["startedAt"], reverse=True)
        return reply(200, {"items": items, "nextCursor": None})

    def get_session(self, request: Request, _b: dict[str, Any], sid: str, ses: str) -> Response:
        session = self._session(request, sid, ses)
        if isinstance(session, Response):
            return session
        if session["_script"]:
            step = session["_script"].pop(0)
            if step == "ready":
                self._finish_session(session)
            else:
                session.update(state=step, failureReason=session.get("_reason") if step == "failed" else None)
        live = session["state"] == "recording"
        return reply(
            200,
            self._wire(session)
            | {
                "livePlaylistUrl": f"{self.url}/live/{ses}.m3u8?token=t" if live else None,
                "livePlaylistExpiresAt": "2026-12-01T11:00:00.000Z" if live else None,
            },
        )

    def finalize(self, request: Request, _b: dict[str, Any], sid: str, ses: str) -> Response:
        session = self._session(request, sid, ses)
        if isinstance(session, Response):
            return session
        state = session["state"]
        if state == "ready":
            return reply(
                200, {"sessionId": ses, "state": "ready", "started": False, "videoId": session["videoId"]}
            )
        if state == "recording":
            return error(409, "conflict", "the session is still recording: stop the stream first")
        if state == "expired":
            return error(409, "conflict", "the session has expired: retention removed its media")
        if state == "finalizing":
            return reply(202, {"sessionId": ses, "state": "finalizing", "started": False})
        # A session made with failure="…" fails again with that reason; any other becomes ready.
        session["_reason"] = session.get("failureReason")
        session["_script"] = ["finalizing", "failed" if session["_reason"] else "ready"]
        session.update(state="finalizing", failureReason=None)
        return reply(202, {"sessionId": ses, "state": "finalizing", "started": True, "mode": "finalize"})

    def create_export(self, request: Request, body: dict[str, Any], sid: str, ses: str) -> Response:
        session = self._session(request, sid, ses)
        if isinstance(session, Response):
            return session
        start, end = body.get("start"), body.get("end")
        if not isinstance(start, int | float) or not isinstance(end, int | float):
            return error(400, "invalid_input", "start and end must be numbers of seconds")
        if session["state"] != "ready":
            return error(409, "conflict", f"the session is {session['state']}, not ready: finalize it first")
        if not self.exports_available:
            return error(503, "exports_unavailable", "the export could not be started; try again")
        if not 0 <= start < end <= session["durationSeconds"]:
            return error(
                400,
                "invalid_input",
                f"the range must satisfy 0 <= start < end <= {session['durationSeconds']} (the duration)",
            )
        eid = f"exp-{uuid.uuid4().hex[:8]}"
        self.exports[eid] = {
            "exportId": eid,
            "sessionId": ses,
            "state": "running",
            "start": start,
            "end": end,
            "createdAt": "2026-12-01T10:40:00.000Z",
            "updatedAt": "2026-12-01T10:40:00.000Z",
            "durationSeconds": None,
            "sizeBytes": None,
            "downloadUrl": None,
            "failureReason": None,
            "_script": ["running", "failed" if self.export_failure else "ready"],
            "_reason": self.export_failure,
        }
        return reply(202, self._wire(self.exports[eid]))

    def get_export(self, request: Request, _b: dict[str, Any], sid: str, ses: str, eid: str) -> Response:
        session = self._session(request, sid, ses)
        if isinstance(session, Response):
            return session
        job = self.exports.get(eid)
        if job is None or job["sessionId"] != ses:
            return error(404, "not_found", f"export {eid} not found")
        if job["_script"]:
            step = job["_script"].pop(0)
            job["state"] = step
            if step == "ready":
                job.update(
                    durationSeconds=job["end"] - job["start"],
                    sizeBytes=len(self.export_bytes),
                    downloadUrl=f"{self.url}/downloads/{eid}.mp4",
                )
            elif step == "failed":
                job["failureReason"] = job["_reason"]
        return reply(200, self._wire(job))

    def download(self, _r: Request, _b: dict[str, Any], eid: str) -> Response:
        if eid not in self.exports:
            return error(404, "not_found", "no such file")
        return Response(self.export_bytes, status=200, mimetype="video/mp4")

    def list_streams(self, request: Request, _b: dict[str, Any]) -> Response:
        if isinstance(who := self._operator(request), Response):
            return who
        return reply(200, {"items": list(self.streams.values()), "nextCursor": None})

    def get_stream(self, request: Request, _b: dict[str, Any], sid: str) -> Response:
        if isinstance(who := self._operator(request), Response):
            return who
        if sid not in self.streams:
            return error(404, "not_found", f"stream {sid} not found")
        return reply(200, self.streams[sid])

    def delete_stream(self, request: Request, _b: dict[str, Any], sid: str) -> Response:
        if isinstance(who := self._operator(request), Response):
            return who
        if self.streams.pop(sid, None) is None:
            return error(404, "not_found", f"stream {sid} not found")
        return Response(status=204)

    def stream_action(self, request: Request, _b: dict[str, Any], sid: str, action: str) -> Response:
        if isinstance(who := self._operator(request), Response):
            return who
        stream = self.streams.get(sid)
        if stream is None:
            return error(404, "not_found", f"stream {sid} not found")
        stream["desiredState"] = "running" if action == "start" else "stopped"
        stream["state"] = "starting" if action == "start" else "stopping"
        return reply(202, {"streamId": sid, "desiredState": stream["desiredState"]})


def reply(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def error(status: int, code: str, message: str) -> Response:
    return reply(status, {"error": code, "message": message})


@contextmanager
def serve(api: FakeApi) -> Iterator[FakeApi]:
    server = make_server("127.0.0.1", 0, api, threaded=True)
    api.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        thread.join(5)
