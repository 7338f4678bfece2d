"""The slate in the catalogue: the supervisor's health says when the encoder branch started feeding KVS
the slate, and the relay task's lease beat writes it (and the slate's persisted fragments) to the stream.

The encoder branch is a stand-in with the two answers the supervisor asks it (is this ack's fragment the
slate, is it the camera's current period) and it switches the way the real one does: through the
``on_switch`` callback the supervisor gives it. The real branch, kvssink and MariaDB are in
tests/integration/test_relay_slate.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from reelay.catalogue.memory import MemoryCatalogue
from reelay.models import DesiredState, SourceProtocol, Stream, VideoMode
from reelay.relay.kvssink import Ack
from reelay.relay.pipelines import SourceSpec
from reelay.relay.slate import SlateSpec
from reelay.relay.supervisor import Supervisor
from reelay.relay.task import RelayTask

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
SLATE_FROM_MS = 1_000_000  # the fake branch: fragments from this timecode on are the slate


class FakeBranch:
    """The encoder branch as the supervisor sees it: fragments at or after ``SLATE_FROM_MS`` are slate."""

    def __init__(self) -> None:
        self.released = False

    def is_slate(self, timecode_ms: int) -> bool:
        return timecode_ms >= SLATE_FROM_MS

    def is_current_camera(self, timecode_ms: int) -> bool:
        return timecode_ms < SLATE_FROM_MS

    def stop_slate_clock(self) -> None:
        pass

    def release(self) -> None:
        self.released = True


class Wall:
    def __init__(self) -> None:
        self.now = T0.timestamp()

    def __call__(self) -> float:
        return self.now


def persisted(timecode_ms: int, number: int) -> Ack:
    return Ack("persisted", timecode_ms, str(number), 200)


def relay_task(wall: Wall) -> tuple[MemoryCatalogue, RelayTask, Supervisor]:
    """A transcode-mode stream claimed by a task whose supervisor has an encoder branch."""
    catalogue = MemoryCatalogue()
    stream = catalogue.create_stream(
        Stream(
            stream_id="cam1",
            owner_id="operator-1",
            name="Gate",
            source_url="rtsp://cam.example/live",
            source_protocol=SourceProtocol.RTSP,
            kvs_stream_name="reelay-test-cam1",
            video_mode=VideoMode.TRANSCODE,
        )
    )
    assert catalogue.set_desired_state(stream.stream_id, DesiredState.RUNNING)
    task = RelayTask(
        catalogue, stream.stream_id, "task-1", reveal_source=lambda s: s.source_url, make_sink=lambda s: None
    )
    supervisor = Supervisor(
        SourceSpec(stream.source_url, video="transcode"), None, slate=SlateSpec(), wall=wall
    )
    supervisor._branch = FakeBranch()  # type: ignore[assignment]
    task.supervisor = supervisor
    task.token = catalogue.claim_stream_lease(stream.stream_id, task.task_id, 30)
    return catalogue, task, supervisor


def shown(catalogue: MemoryCatalogue) -> tuple[Any, int]:
    stream = catalogue.get_stream("cam1")
    return stream.slate_since, stream.slate_fragments_persisted


def test_the_lease_beat_reports_the_slate_on_since_the_switch_then_off_with_its_fragments() -> None:
    wall = Wall()
    catalogue, task, supervisor = relay_task(wall)
    # Given the camera relayed (a camera fragment persisted), the slate never shown
    supervisor._on_ack(persisted(SLATE_FROM_MS - 4000, 1))
    assert task._beat()
    assert shown(catalogue) == (None, 0)

    # When the camera goes quiet and the branch starts the slate, 1.5 s in
    wall.now += 1.5
    supervisor._on_switch(True)
    switched_at = datetime.fromtimestamp(wall.now, UTC).replace(tzinfo=None)
    # ...and KVS persists two slate fragments, then the task's lease beats some seconds later
    supervisor._on_ack(persisted(SLATE_FROM_MS, 2))
    supervisor._on_ack(persisted(SLATE_FROM_MS + 2000, 3))
    wall.now += 5
    assert task._beat()

    # Then the catalogue shows the slate on since the switch, not since the beat, and its fragments
    since, fragments = shown(catalogue)
    assert since is not None and abs(since - switched_at) < timedelta(milliseconds=1)
    assert fragments == 2
    assert catalogue.get_stream("cam1").last_fragment_number == "3"
    assert supervisor.health().slate and supervisor.health().fragments_persisted == 3

    # When the camera is back (the branch switches back) and its fragment persists
    supervisor._on_switch(False)
    supervisor._on_ack(persisted(SLATE_FROM_MS - 2000, 4))
    assert task._beat()
    # Then the slate is off, and the count of its fragments stays
    assert shown(catalogue) == (None, 2)
    assert not supervisor.health().slate


def test_a_torn_down_encoder_branch_turns_the_slate_off_in_the_catalogue() -> None:
    wall = Wall()
    catalogue, task, supervisor = relay_task(wall)
    # Given the slate on and reported
    branch = supervisor._branch
    supervisor._on_switch(True)
    assert task._beat()
    assert shown(catalogue)[0] is not None
    # When KVS's side fails and the supervisor tears the encoder branch down (no switch back comes)
    supervisor._teardown_branch(drain=False)
    # Then the next beat reports the slate off: nothing feeds KVS a slate any more
    assert task._beat()
    assert shown(catalogue) == (None, 0)
    assert isinstance(branch, FakeBranch) and branch.released
