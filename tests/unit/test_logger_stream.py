"""The Powertools logger writes to the stdout of the moment, so the local platform's copy of stdout
(``.state/reelay.log``) gets every log line whichever module imported the logger first."""

from __future__ import annotations

import io
import json
import sys

import pytest

from reelay.observability import logger


def test_a_stdout_replaced_after_the_logger_was_built_gets_its_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    copy = io.StringIO()
    monkeypatch.setattr(sys, "stdout", copy)
    logger.info("video accepted", extra={"videoId": "v-logger-stream"})
    line = json.loads(copy.getvalue().strip().splitlines()[-1])
    assert line["message"] == "video accepted"
    assert line["videoId"] == "v-logger-stream"


def test_the_original_stdout_no_longer_gets_them_once_replaced(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    copy = io.StringIO()
    monkeypatch.setattr(sys, "stdout", copy)
    logger.info("only in the copy")
    monkeypatch.undo()
    assert "only in the copy" not in capsys.readouterr().out
    assert "only in the copy" in copy.getvalue()


def test_each_thread_logs_its_own_request_and_correlation_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two handlers running at once (as the local gateway runs them) keep their own ids."""
    import threading

    copy = io.StringIO()
    monkeypatch.setattr(sys, "stdout", copy)
    both_set = threading.Barrier(2)

    def handle(name: str) -> None:
        logger.append_keys(function_request_id=f"req-{name}")
        logger.set_correlation_id(f"corr-{name}")
        both_set.wait(timeout=5)  # the other thread has appended its keys too
        assert logger.get_correlation_id() == f"corr-{name}"
        logger.info(f"handled {name}")

    threads = [threading.Thread(target=handle, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = [json.loads(x) for x in copy.getvalue().splitlines() if x.startswith("{")]
    seen = {line["message"]: (line.get("function_request_id"), line.get("correlation_id")) for line in lines}
    assert seen["handled a"] == ("req-a", "corr-a")
    assert seen["handled b"] == ("req-b", "corr-b")
