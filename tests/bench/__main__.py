"""``python -m tests.bench [name ...] [--seconds N]``: run every tests/bench/bench_*.py and print one table.

Each module's ``run(ctx)`` returns rows; add a bench by adding a module, not by editing this file.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from pathlib import Path

from tests.bench.registry import BenchContext, Row


def discover() -> list[str]:
    here = Path(__file__).parent
    return sorted(p.stem.removeprefix("bench_") for p in here.glob("bench_*.py"))


def print_table(rows: list[Row]) -> None:
    headers = ("bench", "subject", "metric", "value", "unit", "note")
    cells = [(r.bench, r.subject, r.metric, f"{r.value:.2f}", r.unit, r.note) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("-" * len(line))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    available = discover()
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benches to run (default all: {', '.join(available)})")
    parser.add_argument("--seconds", type=int, default=60, help="length of the shared source clip")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(available))
    if unknown:
        parser.error(f"unknown bench(es) {', '.join(unknown)}; available: {', '.join(available)}")
    if args.seconds < 2:
        parser.error("--seconds must be at least 2")

    ctx = BenchContext(seconds=args.seconds)
    rows: list[Row] = []
    failed = []
    for name in args.names or available:
        print(f"== bench {name} ...", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(f"tests.bench.bench_{name}")
            rows += module.run(ctx)
        except Exception:  # one broken bench must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
    print_table(rows)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
