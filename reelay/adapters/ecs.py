"""ECS task scale-in protection through the container agent's endpoint.

A worker protects its task while it holds a job, so neither scale-in nor a deployment stops a task
in the middle of a transcode; it drops the protection when the job ends. Outside ECS there is no
agent (``ECS_AGENT_URI`` unset) and every call is a no-op. Errors are logged, never raised: a job
must never fail because its task could not be protected.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from aws_lambda_powertools import Logger

logger = Logger(service="transcoder", child=True)

STATE_PATH = "/task-protection/v1/state"
MAX_EXPIRES_MINUTES = 2880  # the agent accepts 1..2880


class TaskProtection:
    """``protect()`` at job start, ``keep()`` while it runs, ``unprotect()`` at job end."""

    def __init__(self, agent_uri: str | None, *, expires_minutes: int = 120, timeout: float = 3.0) -> None:
        if not 1 <= expires_minutes <= MAX_EXPIRES_MINUTES:
            raise ValueError(f"expires_minutes must be between 1 and {MAX_EXPIRES_MINUTES}")
        self.url = agent_uri.rstrip("/") + STATE_PATH if agent_uri else None
        self.expires_minutes = expires_minutes
        self.timeout = timeout
        self._protected_at: float | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.url is not None

    def protect(self) -> bool:
        """Protect the task for ``expires_minutes``. True when the agent confirmed it."""
        ok = self._put({"ProtectionEnabled": True, "ExpiresInMinutes": self.expires_minutes})
        with self._lock:
            self._protected_at = time.monotonic() if ok else None
        return ok

    def keep(self) -> bool:
        """Renew the protection once half of it has run out (a job may outlast one period)."""
        with self._lock:
            since = self._protected_at
        if since is not None and time.monotonic() - since < self.expires_minutes * 30:
            return True
        return self.protect()

    def unprotect(self) -> bool:
        ok = self._put({"ProtectionEnabled": False})
        with self._lock:
            self._protected_at = None
        return ok

    def _put(self, body: dict[str, Any]) -> bool:
        if self.url is None:
            return False
        request = urllib.request.Request(
            self.url,
            data=json.dumps(body).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            logger.warning("task protection refused", extra={"status": exc.code, "protect": body})
            return False
        except (OSError, ValueError) as exc:  # unreachable agent, timeout, a body that is not JSON
            logger.warning("task protection failed", extra={"error": str(exc), "protect": body})
            return False
        # The agent answers 200 with {"failure": {...}} when ECS itself refused the change.
        if isinstance(answer, dict) and answer.get("failure"):
            logger.warning("task protection refused", extra={"failure": answer["failure"], "protect": body})
            return False
        return True


__all__ = ["TaskProtection"]
