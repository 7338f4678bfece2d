"""A local stand-in for Kinesis Video Streams that speaks its wire protocol, so the real kvssink can
relay to it (point it here with ``CONTROL_PLANE_URI``).

Control plane (POST, JSON): /describeStream, /createStream, /getDataEndpoint, /tagStream, /listStreams.
Data plane: POST /putMedia takes a chunked MKV body and, while it is still uploading, answers with
newline-separated JSON acks (BUFFERING when a Cluster starts, RECEIVED and PERSISTED when it is complete
and stored, ERROR with an ErrorId). The last Cluster completes at the AWS_KINESISVIDEO_END_OF_FRAGMENT
tag kvssink sends at EOS. A body that does not start with an EBML header gets ERROR 4006, as KVS
rejects invalid MKV (that is how kvssink learns to resend the fragment a dropped connection cut).

Credentials: :class:`CredentialIssuer` hands out temporary keys at ``credentials_url`` in the ECS
container-credentials format (botocore reads it through ``AWS_CONTAINER_CREDENTIALS_FULL_URI``); every
KVS request must carry a current key id (and its session token) in its SigV4 headers, or gets 403.

Watching (GET, no auth): /_reelay/streams, /_reelay/streams/{name}/fragments,
/_reelay/streams/{name}/live.mkv?last=N (a playable MKV of the last N fragments), /_reelay/requests.

Faults, as methods and as POST /_reelay/faults (JSON) for tests driving a stand-in in another process:
refuse connections (:meth:`KvsStandIn.stop` / :meth:`start` on the same port, or ``refuseSeconds``),
stop acking (``acks: "silent"``), answer ERROR acks (``acks: "error"``, ``errorId``, ``errorCount``),
and POST /_reelay/credentials/expire or /revoke.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from local.kvs.auth import CredentialIssuer, Forbidden
from local.kvs.ebml import ClusterEnded, ClusterStarted, EndOfFragment, Header, InvalidMkv, MkvSplitter
from local.kvs.store import FragmentRecord, FragmentStore, NoSuchStream, StreamExists

log = logging.getLogger(__name__)

INVALID_MKV_DATA = 4006
INTERNAL_ERROR = 5000
ACK_MODES = ("normal", "silent", "error")


@dataclass
class Faults:
    acks: str = "normal"  # normal | silent (accept, store nothing, ack nothing) | error
    error_id: int = INTERNAL_ERROR
    error_count: int | None = None  # fragments left to fail in "error" mode; None: all of them


@dataclass(frozen=True)
class RequestRecord:
    time: float
    method: str
    path: str
    status: int
    key: str | None
    stream: str | None
    note: str = ""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], standin: KvsStandIn) -> None:
        self.standin = standin
        super().__init__(address, _Handler)


class KvsStandIn:
    """The stand-in. ``start()`` listens (port 0 picks one, kept across stop/start); ``stop()`` stops
    listening AND cuts open connections, as a network outage would."""

    def __init__(
        self,
        root: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        credential_ttl: float = 3600,
        region: str = "us-east-1",
    ) -> None:
        self.store = FragmentStore(root)
        self.issuer = CredentialIssuer(credential_ttl)
        self.host, self.port, self.region = host, port, region
        self.faults = Faults()
        self.requests: deque[RequestRecord] = deque(maxlen=5000)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def credentials_url(self) -> str:
        """For ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` (botocore allows http on loopback)."""
        return f"{self.url}/_reelay/credentials"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> KvsStandIn:
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="kvs-standin", daemon=True)
        self._thread.start()
        log.info("KVS stand-in listening on %s", self.url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> KvsStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- faults ---------------------------------------------------------------------------------

    def refuse_connections(self, seconds: float | None = None) -> None:
        """Stop listening and cut connections; with ``seconds``, listen again after that long."""
        self.stop()
        if seconds is not None:
            timer = threading.Timer(seconds, self.start)
            timer.daemon = True
            timer.start()

    def set_acks(self, mode: str, *, error_id: int = INTERNAL_ERROR, count: int | None = None) -> None:
        if mode not in ACK_MODES:
            raise ValueError(f"acks must be one of {ACK_MODES}")
        self.faults = Faults(acks=mode, error_id=error_id, error_count=count)

    def expire_credentials(self, access_key_id: str | None = None) -> list[str]:
        return self.issuer.expire(access_key_id)

    def revoke_credentials(self, access_key_id: str | None = None) -> list[str]:
        return self.issuer.revoke(access_key_id)

    # --- views ----------------------------------------------------------------------------------

    def persisted(self, stream: str) -> list[FragmentRecord]:
        """The fragments stored for ``stream``, oldest first (empty for an unknown stream)."""
        try:
            return self.store.fragments(stream)
        except NoSuchStream:
            return []

    def _record(self, record: RequestRecord) -> None:
        self.requests.append(record)

    def _take_error(self) -> int | None:
        """The ErrorId to answer the next complete fragment with, or None."""
        with self._lock:
            faults = self.faults
            if faults.acks != "error":
                return None
            if faults.error_count is not None:
                if faults.error_count <= 0:
                    self.faults = Faults()
                    return None
                faults.error_count -= 1
            return faults.error_id


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # needed for chunked bodies and Expect: 100-continue
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("kvs stand-in: " + format, *args)

    def setup(self) -> None:
        super().setup()
        with self.server.standin._lock:
            self.server.standin._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.standin._lock:
            self.server.standin._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    # --- plumbing -------------------------------------------------------------------------------

    @property
    def standin(self) -> KvsStandIn:
        return self.server.standin

    def _send_json(self, status: int, body: Any, *, error_type: str | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error_type:
            self.send_header("x-amzn-ErrorType", f"{error_type}:")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, error_type: str, message: str, stream: str | None = None) -> None:
        key = self._key_id_hint()
        record = RequestRecord(time.time(), self.command, self.path, status, key, stream, message)
        self.standin._record(record)
        self._send_json(status, {"message": message, "Message": message}, error_type=error_type)

    def _key_id_hint(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        if "Credential=" in auth:
            return auth.split("Credential=", 1)[1].split("/", 1)[0]
        return None

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return b"".join(self._chunks())
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _chunks(self):
        """Yield the request body's chunks as they arrive (chunked transfer encoding)."""
        while True:
            line = self.rfile.readline(1024)
            if not line:
                return  # connection gone
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            data = self.rfile.read(size)
            self.rfile.readline(8)  # CRLF after the chunk
            if len(data) < size:
                return
            yield data

    def _authorize(self, stream: str | None = None) -> str | None:
        try:
            return self.standin.issuer.check(
                self.headers.get("Authorization"), self.headers.get("X-Amz-Security-Token")
            )
        except Forbidden as exc:
            error_type = str(exc).split(":", 1)[0]
            self._error(403, error_type, str(exc), stream)
            return None

    # --- routes ---------------------------------------------------------------------------------

    def do_GET(self) -> None:
        url = urlparse(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        store = self.standin.store
        try:
            if parts == ["_reelay", "credentials"]:
                self._send_json(200, self.standin.issuer.current().container_json())
            elif parts == ["_reelay", "streams"]:
                self._send_json(200, {"streams": store.streams()})
            elif len(parts) == 4 and parts[:2] == ["_reelay", "streams"] and parts[3] == "fragments":
                self._send_json(200, {"fragments": [asdict(r) for r in store.fragments(parts[2])]})
            elif len(parts) == 4 and parts[:2] == ["_reelay", "streams"] and parts[3] == "live.mkv":
                last = int(parse_qs(url.query).get("last", ["10"])[0])
                data = store.live_mkv(parts[2], max(1, last))
                self.send_response(200 if data else 204)
                self.send_header("Content-Type", "video/x-matroska")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            elif parts == ["_reelay", "requests"]:
                self._send_json(200, {"requests": [asdict(r) for r in self.standin.requests]})
            elif parts == ["_reelay", "faults"]:
                self._send_json(200, asdict(self.standin.faults))
            else:
                self._send_json(404, {"message": f"no route for GET {url.path}"})
        except (NoSuchStream, ValueError) as exc:
            self._send_json(404, {"message": f"no such stream: {exc.args[0] if exc.args else exc}"})

    def do_POST(self) -> None:
        path = urlparse(self.path).path
        if path == "/putMedia":
            self._put_media()
            return
        body = self._read_body()
        try:
            payload = json.loads(body or b"{}")
        except json.JSONDecodeError:
            self._error(400, "InvalidArgumentException", "the body is not JSON")
            return
        if path.startswith("/_reelay/"):
            self._control(path, payload)
            return
        handler = {
            "/describeStream": self._describe_stream,
            "/createStream": self._create_stream,
            "/getDataEndpoint": self._get_data_endpoint,
            "/tagStream": self._tag_stream,
            "/listStreams": self._list_streams,
        }.get(path)
        if handler is None:
            self._error(404, "UnknownOperationException", f"no operation {path}")
            return
        stream = payload.get("StreamName")
        key = self._authorize(stream)
        if key is None:
            return
        try:
            status, answer = handler(payload)
        except NoSuchStream as exc:
            self._error(404, "ResourceNotFoundException", f"stream {exc.args[0]} not found", stream)
            return
        except StreamExists as exc:
            self._error(400, "ResourceInUseException", f"stream {exc.args[0]} exists", stream)
            return
        except (KeyError, ValueError) as exc:
            self._error(400, "InvalidArgumentException", f"bad request: {exc}", stream)
            return
        self.standin._record(RequestRecord(time.time(), "POST", path, status, key, stream))
        self._send_json(status, answer)

    # control plane

    def _name(self, payload: dict[str, Any]) -> str:
        if payload.get("StreamName"):
            return payload["StreamName"]
        if payload.get("StreamARN"):
            return self.standin.store.by_arn(payload["StreamARN"])
        raise KeyError("StreamName or StreamARN")

    def _describe_stream(self, payload: dict[str, Any]) -> tuple[int, Any]:
        info = self.standin.store.describe(self._name(payload))
        info.pop("Tags", None)
        return 200, {"StreamInfo": info}

    def _create_stream(self, payload: dict[str, Any]) -> tuple[int, Any]:
        info = self.standin.store.create_stream(
            payload["StreamName"],
            media_type=payload.get("MediaType") or "video/h264",
            retention_hours=int(payload.get("DataRetentionInHours") or 0),
            region=self.standin.region,
        )
        if payload.get("Tags"):
            self.standin.store.tag(info["StreamName"], payload["Tags"])
        return 200, {"StreamARN": info["StreamARN"]}

    def _get_data_endpoint(self, payload: dict[str, Any]) -> tuple[int, Any]:
        self.standin.store.describe(self._name(payload))
        if payload.get("APIName") not in ("PUT_MEDIA", "GET_MEDIA", None):
            raise ValueError(f"APIName {payload.get('APIName')} is not served here")
        return 200, {"DataEndpoint": self.standin.url}

    def _tag_stream(self, payload: dict[str, Any]) -> tuple[int, Any]:
        self.standin.store.tag(self._name(payload), dict(payload.get("Tags") or {}))
        return 200, {}

    def _list_streams(self, payload: dict[str, Any]) -> tuple[int, Any]:
        infos = self.standin.store.streams()
        return 200, {"StreamInfoList": [{k: v for k, v in i.items() if k[0].isupper()} for i in infos]}

    # faults over HTTP

    def _control(self, path: str, payload: dict[str, Any]) -> None:
        standin = self.standin
        try:
            if path == "/_reelay/faults":
                if "acks" in payload:
                    standin.set_acks(
                        payload["acks"],
                        error_id=int(payload.get("errorId", INTERNAL_ERROR)),
                        count=payload.get("errorCount"),
                    )
                if payload.get("refuseSeconds"):
                    seconds = float(payload["refuseSeconds"])
                    self._send_json(200, {"refusingFor": seconds})
                    self.wfile.flush()
                    # From another thread: stop() waits for serve_forever, which runs this handler's server.
                    threading.Thread(target=standin.refuse_connections, args=(seconds,), daemon=True).start()
                    return
                self._send_json(200, asdict(standin.faults))
            elif path == "/_reelay/credentials/expire":
                self._send_json(200, {"expired": standin.expire_credentials(payload.get("accessKeyId"))})
            elif path == "/_reelay/credentials/revoke":
                self._send_json(200, {"revoked": standin.revoke_credentials(payload.get("accessKeyId"))})
            else:
                self._send_json(404, {"message": f"no control {path}"})
        except (KeyError, ValueError, TypeError) as exc:
            self._send_json(400, {"message": str(exc)})

    # data plane

    def _put_media(self) -> None:
        stream = self.headers.get("x-amzn-stream-name") or ""
        key = self._authorize(stream)
        if key is None:
            self.close_connection = True
            return
        try:
            self.standin.store.describe(stream)
        except NoSuchStream:
            self._error(404, "ResourceNotFoundException", f"stream {stream} not found", stream)
            self.close_connection = True
            return
        producer_start = self.headers.get("x-amzn-producer-start-timestamp")
        self.standin._record(RequestRecord(time.time(), "POST", "/putMedia", 200, key, stream, "started"))
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.flush()
        session = _PutMediaSession(self, stream, key, producer_start)
        note = session.run()
        self.standin._record(RequestRecord(time.time(), "POST", "/putMedia", 200, key, stream, note))

    def send_ack(self, ack: dict[str, Any]) -> None:
        data = json.dumps(ack).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _PutMediaSession:
    """One PutMedia body: split it into Clusters as it arrives, store them, ack them."""

    def __init__(self, handler: _Handler, stream: str, key: str, producer_start: str | None) -> None:
        self.handler, self.stream, self.key, self.producer_start = handler, stream, key, producer_start
        self.standin = handler.standin
        self.splitter = MkvSplitter()
        self.header: bytes | None = None
        self.persisted = 0

    def run(self) -> str:
        try:
            if self.handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = self.handler._chunks()
            else:
                chunks = iter([self.handler._read_body()])
            for chunk in chunks:
                if not self.standin.issuer.is_valid(self.key):
                    # The key expired (or was revoked) while this upload ran: KVS would stop trusting it.
                    return self._close("credentials expired mid-upload")
                if not self._handle(self.splitter.feed(chunk)):
                    return self._close("error ack")
            self._handle(self.splitter.close())
            self.handler.end_chunks()
            return f"complete, {self.persisted} fragments"
        except InvalidMkv as exc:
            # No FragmentTimecode: kvssink then applies the error to its oldest unacknowledged fragment and
            # resends it after reconnecting with a header. (Naming the cut fragment's timecode makes it
            # skip that fragment instead: 4006 is not retriable.)
            self._ack("ERROR", None, error_id=INVALID_MKV_DATA)
            return self._close(f"invalid MKV: {exc}")
        except (ConnectionError, OSError) as exc:
            return f"connection lost: {exc}"

    def _handle(self, events: list[Any]) -> bool:
        """Ack the events; False when an ERROR ack ends this body."""
        silent = self.standin.faults.acks == "silent"
        for event in events:
            if isinstance(event, Header):
                self.header = event.data
            elif isinstance(event, ClusterStarted):
                if not silent:
                    self._ack("BUFFERING", event.timecode)
            elif isinstance(event, ClusterEnded):
                if silent:
                    continue
                error_id = self.standin._take_error()
                if error_id is not None:
                    self._ack("ERROR", event.timecode, error_id=error_id)
                    return False
                assert self.header is not None  # the splitter emits Header before any Cluster
                self._ack("RECEIVED", event.timecode)
                record = self.standin.store.add_fragment(
                    self.stream,
                    header=self.header,
                    timecode=event.timecode,
                    data=event.data,
                    producer_start=self.producer_start,
                )
                self._ack("PERSISTED", event.timecode, number=record.fragmentNumber)
                self.persisted += 1
            elif isinstance(event, EndOfFragment):
                log.debug("end of fragment tag on %s", self.stream)
        return True

    def _ack(self, kind: str, timecode: int | None, *, number: str | None = None, error_id: int = 0) -> None:
        ack: dict[str, Any] = {"EventType": kind}
        if timecode is not None:
            ack["FragmentTimecode"] = timecode
        ack["FragmentNumber"] = number or f"{timecode or 0}"
        if kind == "ERROR":
            ack["ErrorId"] = error_id
        self.handler.send_ack(ack)

    def _close(self, note: str) -> str:
        """End the answer and let the client see it before the socket goes (a prompt close with unread
        request bytes would reset the connection and could lose the last ack)."""
        try:
            self.handler.end_chunks()
            self.handler.connection.shutdown(socket.SHUT_WR)
            self.handler.connection.settimeout(1.0)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and self.handler.connection.recv(65536):
                pass
        except OSError:
            pass
        return note
