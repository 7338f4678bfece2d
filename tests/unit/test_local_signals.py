"""The one-machine platform stops on a signal whichever of its threads the kernel delivers it to."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The main thread waits as `python -m local` does; another thread takes the SIGINT (as a server's or
# GStreamer's thread may), and the handler that sets the event runs on the main thread only.
CHILD = """
import signal, sys, threading
from local.__main__ import wait_for_signal

stopping = threading.Event()
signal.signal(signal.SIGINT, lambda *_: stopping.set())
threading.Timer(0.2, lambda: signal.pthread_kill(threading.get_ident(), signal.SIGINT)).start()
{wait}
print("stopped", flush=True)
"""


@pytest.mark.parametrize(("wait", "stops"), [("wait_for_signal(stopping)", True), ("stopping.wait()", False)])
def test_a_signal_taken_by_another_thread_still_stops_the_platform(wait: str, stops: bool) -> None:
    # Given a platform's main thread waiting for a stop signal that lands on another of its threads
    argv = [sys.executable, "-c", CHILD.format(wait=wait)]
    try:
        out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=5)
        stopped = out.stdout.strip() == "stopped"
    except subprocess.TimeoutExpired:
        stopped = False
    # Then the platform's wait sees it and stops, where a plain Event.wait() sleeps through it
    assert stopped is stops
