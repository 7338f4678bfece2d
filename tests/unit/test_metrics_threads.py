"""The shared metrics object takes additions and flushes from many threads, as under `make up`."""

from __future__ import annotations

import sys
import threading

import pytest

from reelay.observability import MetricUnit, metrics

pytestmark = [pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")]


def test_adding_and_flushing_from_many_threads_never_breaks(capsys) -> None:
    failures: list[BaseException] = []
    start = threading.Barrier(4)

    def work(n: int) -> None:
        start.wait()
        try:
            for i in range(1000):
                metrics.add_metric(name=f"M{n}-{i % 90}", unit=MetricUnit.Count, value=1)
                if i % 3 == 0:
                    metrics.flush_metrics()
        except BaseException as exc:  # a race shows as RuntimeError: dictionary changed size
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so a race shows within a short run
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        sys.setswitchinterval(interval)
    metrics.clear_metrics()
    assert failures == []
    assert '"CloudWatchMetrics"' in capsys.readouterr().out  # the flushes did publish
