"""What a benchmark module provides, and the shared pieces every bench can use.

A bench module is ``tests/bench/bench_<name>.py`` with a ``run(ctx: BenchContext) -> list[Row]``.
``python -m tests.bench`` finds every such module, runs them in name order, and prints one table.
Figures are reported next to a peer measured in the same run on the same machine, as ratios.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Row:
    bench: str  # e.g. "ladder"
    subject: str  # what was measured, e.g. "reelay (GStreamer)" or "ffmpeg"
    metric: str  # e.g. "realtime factor"
    value: float
    unit: str = ""
    note: str = ""


@dataclass
class BenchContext:
    work_dir: Path = field(default_factory=lambda: ROOT / ".build" / "bench")
    seconds: int = 60  # length of the shared source clip

    def source_clip(self) -> Path:
        """The shared source: a 1080p25 moving test pattern with a tone, generated once and cached."""
        from tests.media_fixtures import make_clip

        path = self.work_dir / f"source_{self.seconds}s_1080p.mp4"
        if not path.exists():
            self.work_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".partial.mp4")
            make_clip(tmp, seconds=self.seconds, width=1920, height=1080, fps=25)
            tmp.replace(path)
        return path


@dataclass(frozen=True)
class Measured:
    wall_seconds: float
    cpu_seconds: float  # user + system of the child: steadier than wall time on a shared machine
    max_rss_mb: float
    returncode: int
    stderr: str


def measure(argv: list[str], *, cwd: Path = ROOT, timeout: float = 3600) -> Measured:
    """Run a child process; its wall time and its own peak resident memory (wait4, not the whole tree)."""
    # stderr goes to a file, not a pipe: a chatty child would block on a full pipe we only read at the end.
    with tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        wall = time.monotonic() - started
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(wall, cpu, usage.ru_maxrss / 1024, proc.returncode, stderr)
