"""Limits on one transcode job: probe limits, the wall-clock deadline, and the work disk check."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from reelay.models import VideoStatus
from reelay.settings import Settings
from reelay.transcode import (
    Outcome,
    check_probe_limits,
    transcode_deadline_seconds,
    work_disk_need,
)
from tests.fakes import FakeEvents
from tests.unit.test_transcode import (
    OUT,
    VIDEO_ID,
    FakeEncoder,
    Info,
    make_service,
    new_catalogue,
    new_store,
    run,
)


def limited(tmp_path: Path, **limits: object) -> Settings:
    return Settings(
        work_dir=str(tmp_path / "work"), ladder="360p,240p", max_attempts=3, lease_seconds=60, **limits
    )


@pytest.mark.parametrize(
    ("info", "limits", "reason"),
    [
        (
            Info(duration_seconds=7201.0),
            {"max_source_duration_seconds": 7200},
            "the video lasts 2:00:01, over the limit of 2:00:00",
        ),
        (
            Info(width=5120, height=2880),
            {"max_source_dimension": 4096},
            "the video's resolution 5120x2880 is over the limit of 4096 pixels on its longer side",
        ),
        (
            Info(width=1080, height=4200),  # portrait: the longer side counts, whichever it is
            {"max_source_dimension": 4096},
            "the video's resolution 1080x4200 is over the limit of 4096 pixels on its longer side",
        ),
        (
            Info(fps=240.0),
            {"max_source_fps": 120},
            "the video's frame rate of 240 fps is over the limit of 120 fps",
        ),
    ],
)
def test_a_source_over_a_probe_limit_fails_with_a_reason_naming_it(tmp_path, info, limits, reason):
    # Given a source the prober finds over one limit
    catalogue, store, events = new_catalogue(), new_store(), FakeEvents()
    encoder = FakeEncoder()
    service = make_service(catalogue, store, events, limited(tmp_path, **limits), encoder)
    service._probe = lambda path: info

    # When its job runs
    outcome = run(service)

    # Then it fails at once, permanently, with the limit in the reason, and nothing was encoded
    assert outcome is Outcome.FAILED and outcome.deletes_message
    video = catalogue.get(VIDEO_ID)
    assert video.status == VideoStatus.FAILED
    assert video.failure_reason == reason
    assert encoder.calls == 0
    assert [e for e, _ in events.published] == ["video.failed"]


def test_a_source_at_the_limits_is_accepted(tmp_path):
    # Given limits exactly at the source's duration, size and frame rate
    settings = limited(tmp_path, max_source_duration_seconds=6.0, max_source_dimension=640, max_source_fps=25)

    # Then the check lets it through, and a source without a stated duration or rate too
    check_probe_limits(Info(), settings)
    check_probe_limits(replace(Info(), duration_seconds=None, fps=None), settings)  # type: ignore[arg-type]


def test_the_defaults_take_4k_at_60_fps_for_hours():
    settings = Settings()
    check_probe_limits(Info(duration_seconds=3 * 3600, width=3840, height=2160, fps=60.0), settings)
    with pytest.raises(Exception, match="limit"):
        check_probe_limits(Info(width=7680, height=4320), settings)


def test_the_deadline_grows_with_the_duration_above_its_floor():
    settings = Settings(transcode_deadline_floor_seconds=600, transcode_deadline_factor=4)
    assert transcode_deadline_seconds(settings, 10.0) == 600  # short clips get the floor
    assert transcode_deadline_seconds(settings, 3600.0) == 4 * 3600
    # unknown duration: the longest allowed source's deadline
    assert transcode_deadline_seconds(settings, None) == 4 * settings.max_source_duration_seconds
    assert transcode_deadline_seconds(settings, 0.0) == 4 * settings.max_source_duration_seconds


def test_a_job_past_its_deadline_stops_its_pipeline_and_fails_with_a_reason(tmp_path):
    # Given a deadline of half a second and an encoder that would take five
    catalogue, store, events = new_catalogue(), new_store(), FakeEvents()
    settings = limited(tmp_path, transcode_deadline_floor_seconds=0.5, transcode_deadline_factor=0)
    encoder = FakeEncoder(segments=500)
    service = make_service(catalogue, store, events, settings, encoder)

    # When the job runs
    outcome = run(service)

    # Then the encoder was told to stop, the video failed with the deadline as its reason (no retry),
    # and no half-published output is left
    assert encoder.cancelled
    assert outcome is Outcome.FAILED and outcome.deletes_message
    video = catalogue.get(VIDEO_ID)
    assert video.status == VideoStatus.FAILED
    assert video.failure_reason == "processing took longer than its limit of 0:00:01"
    assert [k for k in store.objects if k.startswith(OUT)] == []
    assert [e for e, _ in events.published] == ["video.failed"]


def test_a_job_within_its_deadline_is_not_stopped(tmp_path):
    catalogue, store, events = new_catalogue(), new_store(), FakeEvents()
    settings = limited(tmp_path, transcode_deadline_floor_seconds=30, transcode_deadline_factor=0)
    encoder = FakeEncoder(segments=20)

    outcome = run(make_service(catalogue, store, events, settings, encoder))

    assert outcome is Outcome.DONE and not encoder.cancelled
    assert catalogue.get(VIDEO_ID).status == VideoStatus.READY


def test_a_job_that_cannot_fit_on_the_work_disk_fails_before_downloading_and_is_not_retried(tmp_path):
    # Given a reserve no disk has free (the real work disk is measured)
    catalogue, store, events = new_catalogue(), new_store(), FakeEvents()
    settings = limited(tmp_path, work_disk_reserve_bytes=2**60)
    encoder = FakeEncoder()
    service = make_service(catalogue, store, events, settings, encoder)

    # When its job runs, even on its first attempt of three
    outcome = run(service, receive_count=1)

    # Then it fails permanently with the need and the free space in the reason, without encoding
    assert outcome is Outcome.FAILED and outcome.deletes_message
    video = catalogue.get(VIDEO_ID)
    assert video.status == VideoStatus.FAILED
    assert video.failure_reason is not None
    assert video.failure_reason.startswith(
        "there is not enough work space to process this video: it needs about 1073741824.0 GiB and "
    )
    assert video.failure_reason.endswith(" is free")
    assert encoder.calls == 0
    assert not any(Path(settings.work_dir).iterdir())  # its work dir is gone, nothing was downloaded


def test_the_work_disk_need_counts_the_source_size():
    settings = Settings(work_disk_factor=3, work_disk_reserve_bytes=1000)
    assert work_disk_need(settings, 0) == 1000
    assert work_disk_need(settings, 10_000) == 31_000


def test_the_default_deadline_of_the_longest_source_ends_before_sqs_would_redeliver_its_job():
    # SQS keeps a message hidden for 12 hours at most; a job that outlives that gets a duplicate.
    settings = Settings()
    longest = transcode_deadline_seconds(settings, settings.max_source_duration_seconds)
    assert longest < 12 * 3600
    assert transcode_deadline_seconds(settings, None) == longest
