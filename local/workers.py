"""Background work that AWS runs as ECS services and Lambda event sources.

Each piece runs in a supervised thread: if it crashes it is logged and restarted after a pause,
like an ECS service replacing a task. The relay supervisor and the recording workflows join here
as further rows of ``local.platform.BACKGROUND_WORKERS``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from local.gateway import LambdaContext

log = logging.getLogger(__name__)


class Background:
    """Runs ``target(stop_event)`` in a thread until ``stop()``; restarts it if it dies."""

    def __init__(self, name: str, target: Callable[[threading.Event], None], *, restart_delay: float = 5.0):
        self.name = name
        self._target = target
        self._restart_delay = restart_delay
        self.stop_event = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self._target(self.stop_event)
            except Exception:
                log.exception("%s crashed; restarting in %.0fs", self.name, self._restart_delay)
                self.stop_event.wait(self._restart_delay)
            else:
                if not self.stop_event.is_set():
                    log.warning("%s returned early; restarting", self.name)
                    self.stop_event.wait(1.0)

    def stop(self, timeout: float = 60.0) -> None:
        self.stop_event.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("%s did not stop within %.0fs", self.name, timeout)


class SqsEventSource:
    """What a Lambda SQS event source mapping does: poll, invoke with a batch, delete on success.

    ``poll`` returns Lambda-shaped SQS records; ``delete`` removes them by receipt handle.
    Records named in ``batchItemFailures`` stay on the queue for another try.
    """

    def __init__(
        self,
        *,
        name: str,
        poll: Callable[[], list[dict[str, Any]]],
        delete: Callable[[list[dict[str, Any]]], None],
        handler: Callable[[dict[str, Any], Any], Any],
    ) -> None:
        self.name = name
        self._poll = poll
        self._delete = delete
        self._handler = handler

    def __call__(self, stop: threading.Event) -> None:
        while not stop.is_set():
            records = self._poll()
            if not records:
                continue
            try:
                result = self._handler({"Records": records}, LambdaContext(self.name))
            except Exception:
                log.exception("%s failed on a batch of %d; leaving it on the queue", self.name, len(records))
                stop.wait(2.0)
                continue
            failed = {
                f.get("itemIdentifier")
                for f in ((result or {}).get("batchItemFailures") or [])
                if isinstance(result, dict)
            }
            done = [r for r in records if r.get("messageId") not in failed]
            if done:
                self._delete(done)


def deliver_with_retries(
    deliver: Callable[[], None], *, what: str, delays: tuple[float, ...] = (5.0, 30.0)
) -> threading.Thread | None:
    """Run ``deliver`` now; if it fails, retry it in the background after each delay.

    Returns the retrying thread, or None when the first try succeeded.
    """
    try:
        deliver()
        return None
    except Exception:
        log.exception("%s failed; retrying in the background", what)

    def retry() -> None:
        for delay in delays:
            time.sleep(delay)
            try:
                deliver()
                log.info("%s delivered on retry", what)
                return
            except Exception:
                log.exception("%s failed again", what)
        log.error("%s dropped after %d retries", what, len(delays))

    thread = threading.Thread(target=retry, name="retry", daemon=True)
    thread.start()
    return thread
