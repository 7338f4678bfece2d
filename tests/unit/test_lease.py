"""The lease keeper shared by the transcode job and the relay task."""

from __future__ import annotations

import threading
import time

from reelay.lease import LeaseKeeper


def wait_for(predicate, timeout: float = 3.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_it_renews_every_beat_and_reports_each_success() -> None:
    renewals: list[float] = []
    alive = threading.Event()
    keeper = LeaseKeeper(
        lambda: renewals.append(time.monotonic()) or True,
        every=0.05,
        on_lost=lambda: None,
        on_alive=alive.set,
        poll_seconds=0.01,
    )
    with keeper:
        assert wait_for(lambda: len(renewals) >= 3)
    assert alive.is_set() and not keeper.lost
    count = len(renewals)
    time.sleep(0.1)
    assert len(renewals) == count, "a stopped keeper renews nothing"


def test_the_first_refusal_loses_the_lease_and_ends_the_keeper() -> None:
    answers = iter([True, False, True])
    lost = threading.Event()
    keeper = LeaseKeeper(lambda: next(answers), every=0.02, on_lost=lost.set, poll_seconds=0.01).start()
    assert lost.wait(3)
    assert keeper.lost
    keeper.stop()


def test_a_failing_renewal_is_retried_not_a_loss() -> None:
    calls = {"n": 0}
    errors: list[BaseException] = []

    def renew() -> bool:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise ConnectionError("catalogue blip")
        return True

    lost = threading.Event()
    with LeaseKeeper(
        renew, every=0.02, on_lost=lost.set, on_error=errors.append, poll_seconds=0.01
    ) as keeper:
        assert wait_for(lambda: calls["n"] >= 4)
    assert not lost.is_set() and not keeper.lost
    assert [str(e) for e in errors] == ["catalogue blip", "catalogue blip"]


def test_failing_renewals_past_expire_after_count_as_lost() -> None:
    # Given a keeper whose lease lapses after 0.15 s without a successful renewal
    def renew() -> bool:
        raise ConnectionError("catalogue down")

    lost = threading.Event()
    keeper = LeaseKeeper(
        renew, every=0.02, on_lost=lost.set, on_error=lambda e: None, expire_after=0.15, poll_seconds=0.01
    ).start()
    started = time.monotonic()
    # Then it gives the lease up: someone else may hold it by now
    assert lost.wait(3)
    assert time.monotonic() - started >= 0.15
    keeper.stop()


def test_a_changed_snapshot_renews_at_once() -> None:
    state = {"playable": False}
    seen: list[bool] = []
    keeper = LeaseKeeper(
        lambda: seen.append(state["playable"]) or True,
        every=60,  # no beat is due on time
        on_lost=lambda: None,
        snapshot=lambda: state["playable"],
        poll_seconds=0.01,
    )
    with keeper:
        time.sleep(0.05)
        assert seen == []
        state["playable"] = True
        assert wait_for(lambda: seen == [True])


def test_on_poll_runs_between_beats() -> None:
    polls = {"n": 0}
    with LeaseKeeper(
        lambda: True, every=60, on_lost=lambda: None, on_poll=lambda: polls.__setitem__("n", polls["n"] + 1),
        poll_seconds=0.01,
    ):  # fmt: skip
        assert wait_for(lambda: polls["n"] >= 3)
