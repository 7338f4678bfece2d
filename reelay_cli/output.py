"""What the CLI prints. Results go to stdout: words and tables for people, or with ``--json`` exactly
one JSON document and nothing else. Progress, notices and errors go to stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichProgress
from rich.table import Table
from rich.text import Text

from reelay_cli.upload import Progress


class Output:
    def __init__(self, *, json_mode: bool = False, progress: bool | None = None) -> None:
        self.json_mode = json_mode
        self.out = Console(highlight=False, soft_wrap=True)
        if not self.out.is_terminal:
            # Piped into grep or a file: whole rows, never ids cut to fit 80 columns.
            self.out.width = 250
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        # Bars only where someone watches them: an interactive stderr (or asked for explicitly).
        self.show_progress = self.err.is_terminal if progress is None else progress

    def result(self, data: Any, human: Callable[[], None] | None = None) -> None:
        """The command's result: one JSON document with --json, else ``human()`` (or nothing)."""
        if self.json_mode:
            self.emit_json(data)
        elif human is not None:
            human()

    @staticmethod
    def emit_json(data: Any) -> None:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def say(self, text: str) -> None:
        """A line of the human result, on stdout (never in --json mode)."""
        if not self.json_mode:
            self.out.print(text, markup=False)

    def notice(self, text: str) -> None:
        self.err.print(text, markup=False, style="dim")

    def error(self, text: str) -> None:
        self.err.print(f"error: {text}", markup=False, style="bold red")

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        self.out.print(make_table(columns, rows))

    def fields(self, pairs: Iterable[tuple[str, Any]]) -> None:
        text = fields_text(pairs)
        if text:
            self.out.print(text, markup=False)


def make_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for i, name in enumerate(columns):
        table.add_column(name, no_wrap=i == 0)  # the first column is the id: keep it whole
    for row in rows:
        table.add_row(*(Text("" if v is None else str(v)) for v in row))
    return table


def fields_text(pairs: Iterable[tuple[str, Any]]) -> str:
    """``key: value`` lines, aligned, leaving out empty values."""
    items = [(k, v) for k, v in pairs if v not in (None, "", [])]
    width = max((len(k) for k, _ in items), default=0)
    return "\n".join(f"{key + ':':<{width + 1}} {value}" for key, value in items)


class BarProgress(Progress):
    """An upload bar on stderr: bytes sent of the total, speed and time left."""

    def __init__(self, console: Console, description: str) -> None:
        self._bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self._description = description
        self._task: TaskID | None = None

    def start(self, total: int, done: int) -> None:
        self._bar.start()
        self._task = self._bar.add_task(self._description, total=total, completed=done)

    def advance(self, n: int) -> None:
        if self._task is not None:
            self._bar.advance(self._task, n)

    def finish(self) -> None:
        self._bar.stop()


class TranscodeBar:
    """The transcode's progress (``processing 43 %``) on stderr while ``--wait`` follows it."""

    def __init__(self, console: Console) -> None:
        self._bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f} %"),
            console=console,
        )
        self._task = self._bar.add_task("queued", total=100)
        self._bar.start()

    def update(self, status: str, progress: int) -> None:
        self._bar.update(self._task, description=status, completed=progress if status != "ready" else 100)

    def finish(self) -> None:
        self._bar.stop()
