"""The transcode worker: takes jobs from the queue one at a time and runs their lifecycle.

``Worker`` has no signal handling, so the local platform can embed it in a thread or process;
``main()`` owns the signals. ECS and Spot send SIGTERM and allow stopTimeout (120 s) before
SIGKILL: we stop taking jobs, cancel the encode, hand the job back and exit 0.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import sys
import threading
import time
import uuid
from typing import Any

from reelay.adapters.ecs import TaskProtection
from reelay.ports import QueueMessage
from reelay.settings import Settings, get_settings
from reelay.transcode import Outcome, TranscodeService, logger


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    """Long-polls the transcode queue and runs one job at a time until ``stop_event`` is set.

    ``services`` needs ``.catalogue``, ``.store``, ``.queue`` and ``.events`` (reelay.wiring.Services).
    ``stop_event`` both stops the loop and cancels the running job (which is then handed back).
    """

    def __init__(
        self,
        services: Any,
        settings: Settings,
        stop_event: threading.Event,
        *,
        worker_id: str | None = None,
        service: TranscodeService | None = None,
        wait_seconds: int = 20,
        extend_every: float | None = None,
        protection: TaskProtection | None = None,
    ) -> None:
        self.settings = settings
        self.stop_event = stop_event
        self.queue = services.queue
        self.worker_id = worker_id or default_worker_id()
        self.service = service or TranscodeService(
            services.catalogue,
            services.store,
            services.events,
            settings,
            worker_id=self.worker_id,
            cdn=services.cdn,
        )
        self.wait_seconds = wait_seconds
        # The message stays hidden a little longer than the catalogue lease: if this process dies,
        # the job reappears only once its lease has lapsed, so the next worker can claim it at once.
        self.extend_every = extend_every or max(1.0, min(30.0, settings.lease_seconds / 4))
        self.extend_by = settings.lease_seconds + math.ceil(self.extend_every)
        # While a job is held, scale-in and deployments must not stop this task (a no-op outside ECS).
        self.protection = protection or TaskProtection(settings.ecs_agent_uri)

    def run_forever(self) -> None:
        logger.info("worker started", extra={"workerId": self.worker_id})
        backoff = 1.0
        while not self.stop_event.is_set():
            try:
                self.run_once()
                backoff = 1.0
            except Exception:
                # The queue or the catalogue is unreachable: wait and try again, never die.
                logger.exception("worker loop error", extra={"workerId": self.worker_id})
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 30.0)
        logger.info("worker stopped", extra={"workerId": self.worker_id})

    def run_once(self, wait_seconds: int | None = None) -> Outcome | None:
        """Take at most one job and run it. None when the queue had nothing (or we are stopping)."""
        if self.stop_event.is_set():
            return None
        wait = self.wait_seconds if wait_seconds is None else wait_seconds
        messages = self.queue.receive(max_messages=1, wait_seconds=wait)
        if not messages:
            return None
        message = messages[0]
        if self.stop_event.is_set():
            self._hand_back(message)  # taken while stopping: give it straight back
            return Outcome.HANDED_BACK
        return self.process(message)

    def process(self, message: QueueMessage) -> Outcome:
        ids = {"videoId": message.job.video_id, "jobId": message.job.job_id}
        alive = {"at": time.monotonic()}
        done = threading.Event()
        extender = threading.Thread(
            target=self._extend_visibility, args=(message, alive, done), name="visibility", daemon=True
        )
        self.protection.protect()
        extender.start()
        try:
            outcome = self.service.run(
                message.job,
                cancel=self.stop_event,
                on_alive=lambda: alive.__setitem__("at", time.monotonic()),
                receive_count=message.receive_count,
            )
        except Exception:
            logger.exception("job crashed outside its lifecycle: leaving it for redelivery", extra=ids)
            outcome = Outcome.RETRY
        finally:
            done.set()
            extender.join(timeout=10)
        try:
            if outcome.deletes_message:
                self.queue.delete(message)
            elif outcome is Outcome.HANDED_BACK:
                self._hand_back(message)
        finally:
            self.protection.unprotect()  # only once the message is settled
        logger.info("job finished", extra={**ids, "outcome": str(outcome)})
        return outcome

    def _hand_back(self, message: QueueMessage) -> None:
        # A stop (deploy, scale-in, Spot) is not the job's fault: re-send it as a fresh message so
        # the hand-back does not use up one of its max_attempts receives, then drop the old one.
        try:
            self.queue.send(message.job)
        except Exception:
            logger.exception("could not re-send the job; making the message visible instead")
            self.queue.release(message)
            return
        self.queue.delete(message)

    def _extend_visibility(
        self, message: QueueMessage, alive: dict[str, float], done: threading.Event
    ) -> None:
        # Keep the message hidden while the job is alive; a job that stopped reporting lets it go.
        first = True
        while first or not done.wait(self.extend_every):
            first = False
            if time.monotonic() - alive["at"] > self.settings.lease_seconds:
                logger.warning(
                    "job stopped reporting: not extending visibility",
                    extra={"videoId": message.job.video_id, "jobId": message.job.job_id},
                )
                continue
            try:
                self.queue.extend(message, self.extend_by)
            except Exception:
                logger.exception("could not extend message visibility", extra={"jobId": message.job.job_id})
            self.protection.keep()


def main(argv: list[str] | None = None) -> int:
    from reelay.wiring import Services

    settings = get_settings()
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        logger.info("signal received: finishing up", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    from reelay.media.pipeline import warm_up

    warm_up()  # GStreamer and its plugins before the first job, not inside it
    worker = Worker(Services(settings), settings, stop)
    # The loop runs in a thread so the main thread stays free to receive signals while GStreamer
    # blocks in C code.
    thread = threading.Thread(target=worker.run_forever, name="worker", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
