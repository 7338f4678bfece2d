"""``python -m local``: run Reelay on this machine until Ctrl-C.

``python -m local make-operator EMAIL`` makes a user of the running platform an operator, and
``python -m local make-moderator EMAIL`` a moderator.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import warnings
from typing import TextIO

from local.config import parse_args
from local.gateway import redact_secrets
from local.platform import Platform, say


class Tee:
    """A text stream writing to the console and to a file."""

    def __init__(self, console: TextIO, file: TextIO) -> None:
        self._console = console
        self._file = file

    def write(self, text: str) -> int:
        # Powertools' JSON lines (a logged event with its headers and body, if turned on) reach the
        # file through here, not through the logging handler and its RedactSecrets filter.
        self._file.write(redact_secrets(text))
        return self._console.write(text)

    def flush(self) -> None:
        self._file.flush()
        self._console.flush()

    def __getattr__(self, name: str):
        return getattr(self._console, name)


def wait_for_signal(stopping: threading.Event, poll_seconds: float = 0.5) -> None:
    """Wait on the main thread until a signal handler sets ``stopping``.

    Not ``stopping.wait()``: Python runs a signal's handler on the main thread, and a main thread
    blocked on a lock wakes for it only when the kernel delivered the signal to that very thread. Any
    of the platform's other threads (the servers', GStreamer's) may take it instead, and the main
    thread then slept through Ctrl-C. A wait that times out comes back to Python, which runs the
    handler.
    """
    while not stopping.wait(poll_seconds):
        pass


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["make-operator"]:
        from local.operators import main as make_operator

        return make_operator(args[1:])
    if args[:1] == ["make-moderator"]:
        from local.operators import main as make_member

        return make_member(args[1:], role="moderator")
    opts = parse_args(argv)
    # Each handler call flushes Powertools metrics; an empty flush is normal here, not news.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stopping.is_set() and signum == signal.SIGINT:
            say("Reelay: second Ctrl-C, exiting now (the private MariaDB still gets a clean SIGTERM)")
            os._exit(130)
        stopping.set()

    # Handlers first: a Ctrl-C during start-up still shuts down what already runs.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    platform = Platform(opts)
    # Powertools logs JSON to stdout: keep a copy in the log file next to everything else.
    opts.state_dir.mkdir(parents=True, exist_ok=True)
    sys.stdout = Tee(sys.stdout, open(opts.state_dir / "reelay.log", "a", buffering=1))  # noqa: SIM115
    say(f"Reelay: starting (state in {opts.state_dir.resolve()})")
    try:
        platform.start()
    except Exception as e:
        logging.getLogger("local").exception("start-up failed")
        say(f"Reelay failed to start: {e}")
        return 1
    say(platform.banner())
    say(f"Reelay is up: {platform.api_url}")
    wait_for_signal(stopping)
    say("Reelay: stopping...")
    platform.stop()
    say("Reelay: stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
