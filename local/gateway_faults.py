"""A test-only fault hook for the local gateway: fail the next N requests that match.

Off unless the platform starts with ``REELAY_LOCAL_FAULTS=1`` (the browser tests do). Then the
gateway serves ``/__faults``: ``POST`` a rule ``{"method": "PUT", "pattern": "partNumber=2",
"times": 3, "status": 503}`` (no status: the connection is dropped without an answer), ``GET``
the rules and the requests seen, ``DELETE`` to clear both. A pattern is a regular expression
searched in ``path?query``.
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request, Response

CONTROL_PATH = "/__faults"


class DroppedConnection(ConnectionAbortedError):
    """Raised through the WSGI server, which treats it as a connection the client dropped."""


@dataclass
class FaultRule:
    id: int
    method: str  # an HTTP method, or "*"
    pattern: re.Pattern[str]
    times: int  # requests still to fail
    status: int | None  # None: drop the connection
    hits: int = 0

    def matches(self, method: str, target: str) -> bool:
        return self.times > 0 and self.method in ("*", method) and bool(self.pattern.search(target))

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "method": self.method,
            "pattern": self.pattern.pattern,
            "times": self.times,
            "status": self.status,
            "hits": self.hits,
        }


@dataclass
class Faults:
    rules: list[FaultRule] = field(default_factory=list)
    seen: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=5000))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add(self, method: str, pattern: str, *, times: int = 1, status: int | None = None) -> FaultRule:
        rule = FaultRule(next(self._ids), method.upper(), re.compile(pattern), times, status)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.seen.clear()

    def take(self, request: Request) -> FaultRule | None:
        """Record the request; if a rule matches, use up one of its failures and return it."""
        target = request.full_path.rstrip("?")
        with self._lock:
            hit = next((r for r in self.rules if r.matches(request.method, target)), None)
            if hit:
                hit.times -= 1
                hit.hits += 1
            self.seen.append({"method": request.method, "target": target, "fault": hit.id if hit else None})
            return hit

    def fail(self, request: Request, rule: FaultRule) -> Response:
        if rule.status is None:
            sock = request.environ.get("werkzeug.socket")
            if isinstance(sock, socket.socket):
                sock.shutdown(socket.SHUT_RDWR)
            raise DroppedConnection(f"fault {rule.id}: connection dropped")
        body = {"error": "injected_fault", "message": f"fault {rule.id} injected by the test hook"}
        return Response(
            json.dumps(body),
            status=rule.status,
            mimetype="application/json",
            headers={"Access-Control-Allow-Origin": "*"},
        )

    def control(self, request: Request) -> Response:
        if request.method == "POST":
            spec = request.get_json(force=True)
            rule = self.add(
                str(spec.get("method", "*")),
                str(spec["pattern"]),
                times=int(spec.get("times", 1)),
                status=None if spec.get("status") is None else int(spec["status"]),
            )
            return Response(json.dumps(rule.describe()), status=201, mimetype="application/json")
        if request.method == "DELETE":
            self.clear()
            return Response(status=204)
        with self._lock:
            state = {"rules": [r.describe() for r in self.rules], "requests": list(self.seen)}
        return Response(json.dumps(state), mimetype="application/json")
