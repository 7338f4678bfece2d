"""A stream's retentionDays: the sweep removes old recordings (media, exports, the video by the video
delete path) and marks their sessions expired; recent ones and streams without retention stay."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from reelay.errors import NotFound
from reelay.models import RecordingState, Video, VideoSource, VideoStatus, utcnow
from reelay.recording.retention import expire_recordings
from reelay.wiring import Services
from tests.recording_api_helpers import SOURCE
from tests.unit.test_api import services, settings  # noqa: F401
from tests.unit.test_api_streams import create

pytestmark = [pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")]


def finished(svc: Services, stream_id: str, days_ago: float) -> tuple[str, str]:
    """A finalized session that ended ``days_ago``, with segments, a manifest, its video and an export."""
    cat: Any = svc.catalogue
    began = utcnow() - timedelta(days=days_ago)
    s, _ = cat.start_recording_session(stream_id, "w", renditions=[SOURCE], now=began)
    cat.end_recording_session(s.session_id, now=began + timedelta(seconds=10))
    cat.begin_recording_workflow(s.session_id, "x")
    video_id = f"rec-{s.session_id}"
    cat.complete_recording_session(s.session_id, "x", video_id=video_id, duration_seconds=10.0,
                                   renditions=[SOURCE], discontinuities=0)  # fmt: skip
    key = f"recordings/{stream_id}/{s.session_id}/"
    cat.create(Video(video_id=video_id, video_key=key, display_name="rec",
                     owner_id="op-olga", email="op-olga@recordings.invalid", status=VideoStatus.READY,
                     playable=True, renditions=[SOURCE],
                     source=VideoSource.RECORDING))  # fmt: skip
    store = svc.store
    for key in (
        f"recordings/{stream_id}/{s.session_id}/w/source/0000000000_2000_1.ts",
        f"recordings/_manifests/{stream_id}/{s.session_id}/w/source/0000.m3u8",
        f"outputs/{video_id}/master.m3u8",
        f"outputs/exports/{s.session_id}/e1.mp4",
        f"recording-exports/{s.session_id}/e1.json",
    ):
        store.put_bytes(key, b"x", content_type="application/octet-stream")
    return s.session_id, video_id


def test_old_recordings_are_removed_and_marked_expired(services: Services) -> None:  # noqa: F811
    kept_stream = create(record=True)["streamId"]  # no retention
    short = create(record=True, retentionDays=2)["streamId"]
    old, old_video = finished(services, short, days_ago=3)
    recent, recent_video = finished(services, short, days_ago=1)
    forever, _ = finished(services, kept_stream, days_ago=300)

    assert expire_recordings(services) == [old]
    cat: Any = services.catalogue
    assert cat.get_recording_session(old).state == RecordingState.EXPIRED
    with pytest.raises(NotFound):
        cat.get(old_video)
    keys = set(services.store.objects)  # type: ignore[attr-defined]
    assert not [k for k in keys if old in k]  # segments, manifests, outputs, exports: all gone
    assert any(recent in k for k in keys) and any(forever in k for k in keys)
    assert cat.get(recent_video).status == VideoStatus.READY
    assert cat.get_recording_session(forever).state == RecordingState.READY
    assert expire_recordings(services) == []  # nothing left to do: idempotent


def test_a_recording_still_going_is_never_expired(services: Services) -> None:  # noqa: F811
    stream_id = create(record=True, retentionDays=1)["streamId"]
    cat: Any = services.catalogue
    s, _ = cat.start_recording_session(stream_id, "w", now=utcnow() - timedelta(days=5))
    assert expire_recordings(services) == []
    assert cat.get_recording_session(s.session_id).state == RecordingState.RECORDING
