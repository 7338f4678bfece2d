"""Keeping a catalogue lease alive from a thread of its own: the transcode job's and the relay task's.

A lease is renewed every ``every`` seconds, and at once when ``snapshot()`` changes (so news such as
"now playable" reaches the catalogue without waiting for the next beat). The first refusal means the
lease is lost: ``on_lost`` runs and the keeper ends. A renewal that raises (a catalogue blip) is not a
refusal and is tried again on the next beat, unless no renewal has succeeded for ``expire_after``
seconds: by then the lease may have lapsed and passed to someone else, so it counts as lost too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def _nothing() -> None:
    return None


class LeaseKeeper:
    def __init__(
        self,
        renew: Callable[[], bool],
        *,
        every: float,
        on_lost: Callable[[], None],
        on_alive: Callable[[], None] = _nothing,
        on_error: Callable[[BaseException], None] | None = None,
        on_poll: Callable[[], None] = _nothing,
        snapshot: Callable[[], Any] = _nothing,
        expire_after: float | None = None,
        poll_seconds: float = 0.2,
        name: str = "lease-keeper",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._renew = renew
        self.every = every
        self._on_lost = on_lost
        self._on_alive = on_alive
        self._on_error = on_error
        self._on_poll = on_poll
        self._snapshot = snapshot
        self.expire_after = expire_after
        self.poll_seconds = poll_seconds
        self._clock = clock
        self._done = threading.Event()
        self._thread = threading.Thread(target=self.run, name=name, daemon=True)
        self.lost = False

    def start(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        self._done.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> LeaseKeeper:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def run(self) -> None:
        """The loop; ``start()`` runs it on a thread, a caller may run it on its own until ``stop()``."""
        last_beat = last_ok = self._clock()
        last_seen = self._snapshot()
        while not self._done.wait(self.poll_seconds):
            self._on_poll()
            now = self._clock()
            seen = self._snapshot()
            if now - last_beat < self.every and seen == last_seen:
                continue
            last_beat, last_seen = now, seen
            try:
                alive = self._renew()
            except Exception as exc:  # a catalogue blip is not a lost lease; try again next beat
                if self._on_error is not None:
                    self._on_error(exc)
                else:
                    log.warning("lease renewal failed: %s", exc)
                if self.expire_after is not None and now - last_ok > self.expire_after:
                    self._lose()
                    return
                continue
            if not alive:
                self._lose()
                return
            last_ok = now
            self._on_alive()

    def _lose(self) -> None:
        self.lost = True
        self._on_lost()
