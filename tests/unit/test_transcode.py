"""The transcode job lifecycle with fakes: catalogue, store, events and an injected encoder."""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from reelay.catalogue.memory import MemoryCatalogue
from reelay.errors import InvalidInput, MediaError, NotFound
from reelay.events import OutboxSweep
from reelay.media import hls
from reelay.models import Rendition, TranscodeJob, Video, VideoStatus, utcnow
from reelay.settings import Settings
from reelay.transcode import (
    LIVE_PLAYLIST_CACHE_CONTROL,
    SEGMENT_CACHE_CONTROL,
    VOD_PLAYLIST_CACHE_CONTROL,
    Outcome,
    TranscodeService,
)
from tests.fakes import FakeEvents, FakeStore, event_body

VIDEO_ID = "vid00000000000000000001"
SOURCE_KEY = f"uploads/{VIDEO_ID}.mp4"
OUT = f"outputs/{VIDEO_ID}/"


class RecordingStore(FakeStore):
    """FakeStore that remembers every write, in order, with its Cache-Control."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[str, str | None]] = []
        self.cache: dict[str, str | None] = {}
        self.versions: dict[str, list[bytes]] = {}  # every body each key ever had, in order

    def put_bytes(self, key, data, *, content_type=None, metadata=None, cache_control=None) -> None:
        super().put_bytes(key, data, content_type=content_type, metadata=metadata)
        self.writes.append((key, cache_control))
        self.cache[key] = cache_control
        self.versions.setdefault(key, []).append(bytes(data))

    def put_file(self, key, path, *, content_type=None, metadata=None, cache_control=None) -> None:
        self.put_bytes(
            key,
            Path(path).read_bytes(),
            content_type=content_type,
            metadata=metadata,
            cache_control=cache_control,
        )


@dataclass(frozen=True)
class Spec:
    name: str
    width: int
    height: int
    max_kbps: int
    video_kbps: int = 0
    audio_kbps: int = 96
    profile: str = "main"


@dataclass
class Info:
    duration_seconds: float = 6.0
    width: int = 640
    height: int = 360
    has_audio: bool = True
    fps: float | None = 25.0


@dataclass
class Result:
    duration_seconds: float
    renditions: list[Rendition]
    poster: Path | None


LADDER = [Spec("360p", 640, 360, 1200), Spec("240p", 426, 240, 600)]


@dataclass
class FakeEncoder:
    """Writes what the real pipeline writes (segments, hlssink2 playlists, poster) and calls back."""

    segments: int = 3
    seconds_per_segment: float = 2.0
    fail_with: BaseException | None = None
    fail_after_segments: int | None = None
    during: Any = None  # called with (out_dir) once the first segments have been announced
    calls: int = 0
    cancelled: bool = False
    empty_rendition: str | None = None
    seen: dict[str, Any] = field(default_factory=dict)

    def __call__(
        self,
        source,
        out_dir,
        ladder,
        info,
        *,
        segment_seconds,
        x264_preset,
        on_progress,
        on_segment_ready,
        cancel,
    ):
        self.calls += 1
        out_dir = Path(out_dir)
        if self.fail_with is not None and self.fail_after_segments is None:
            raise self.fail_with
        playlists: dict[str, list[str]] = {s.name: [] for s in ladder}
        for i in range(self.segments):
            if cancel.wait(0.01):
                self.cancelled = True
                raise RuntimeError("TranscodeCancelled")
            if self.fail_after_segments is not None and i == self.fail_after_segments:
                raise self.fail_with  # type: ignore[misc]
            for spec in ladder:
                if spec.name == self.empty_rendition:
                    continue
                d = out_dir / spec.name
                d.mkdir(parents=True, exist_ok=True)
                seg = d / f"seg_{i:05d}.ts"
                seg.write_bytes(f"{spec.name}-{i}".encode() * 10)
                playlists[spec.name] += [f"#EXTINF:{self.seconds_per_segment:.3f},", seg.name]
                (d / "index.m3u8").write_text(
                    "#EXTM3U\n#EXT-X-TARGETDURATION:2\n" + "\n".join(playlists[spec.name]) + "\n"
                )
                on_segment_ready(spec.name, seg, self.seconds_per_segment)
            on_progress((i + 1) / self.segments)
            if i == 0 and self.during is not None:
                self.during(out_dir)
        for spec in ladder:
            d = out_dir / spec.name
            d.mkdir(parents=True, exist_ok=True)
            if spec.name == self.empty_rendition:
                (d / "index.m3u8").write_text("#EXTM3U\n#EXT-X-ENDLIST\n")
            else:
                segs = [(f"seg_{i:05d}.ts", self.seconds_per_segment) for i in range(self.segments)]
                (d / "index.m3u8").write_text(hls.vod_playlist(segs, segment_seconds))
        poster = out_dir / "poster.jpg"
        poster.write_bytes(b"\xff\xd8jpeg")
        renditions = [
            Rendition(
                name=s.name,
                width=s.width,
                height=s.height,
                bandwidth=(s.max_kbps + s.audio_kbps) * 1000,
                codecs="avc1.4d401f,mp4a.40.2",
                playlist=f"{s.name}/index.m3u8",
            )
            for s in ladder
        ]
        (out_dir / "master.m3u8").write_text(hls.write_master(renditions, frame_rate=25.0))
        return Result(self.segments * self.seconds_per_segment, renditions, poster)


GST_DETAIL = "qtdemux0: no 'moov' atom within the first 10 MB"


def fake_probe(path: Path) -> Info:
    data = Path(path).read_bytes()
    if not data:
        raise MediaError("the file is empty")
    if data.startswith(b"text"):
        raise MediaError("the file is not a video")
    if data.startswith(b"gst"):
        raise MediaError("not a recognised video file", detail=GST_DETAIL)
    return Info()


def fake_ladder(info: Info, names: list[str], overrides=None) -> list[Spec]:
    return [s for s in LADDER if s.name in names] or LADDER


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(work_dir=str(tmp_path / "work"), ladder="360p,240p", max_attempts=3, lease_seconds=60)


def new_catalogue(kind: type[MemoryCatalogue] = MemoryCatalogue) -> MemoryCatalogue:
    """A catalogue (of ``kind``) holding one uploaded, queued video."""
    cat = kind()
    cat.create(
        Video(
            video_id=VIDEO_ID, video_key=SOURCE_KEY, display_name="Cat", owner_id="u1", email="u1@example.com"
        )
    )
    cat.mark_uploaded(VIDEO_ID, size_bytes=100, content_type="video/mp4")
    return cat


def new_store() -> RecordingStore:
    """A store holding the upload."""
    s = RecordingStore()
    s.put_bytes(SOURCE_KEY, b"\x00\x00\x00 ftypisom-a-real-looking-video")
    s.writes.clear()
    return s


@pytest.fixture
def catalogue() -> MemoryCatalogue:
    return new_catalogue()


@pytest.fixture
def store() -> RecordingStore:
    return new_store()


@pytest.fixture
def events() -> FakeEvents:
    return FakeEvents()


def make_service(catalogue, store, events, settings, encoder, worker_id="w1") -> TranscodeService:
    return TranscodeService(
        catalogue,
        store,
        events,
        settings,
        worker_id=worker_id,
        transcode_fn=encoder,
        probe_fn=fake_probe,
        choose_ladder_fn=fake_ladder,
        heartbeat_seconds=0.05,
    )


JOB = TranscodeJob(videoId=VIDEO_ID, sourceKey=SOURCE_KEY, jobId="job-1")


def run(service: TranscodeService, *, cancel: threading.Event | None = None, receive_count: int = 1):
    return service.run(
        JOB, cancel=cancel or threading.Event(), on_alive=lambda: None, receive_count=receive_count
    )


def test_a_master_that_lists_the_start_variant_first_is_accepted(catalogue, store, events, settings):
    # Given a ladder whose top rendition peaks above the start budget, so the encoder's master lists
    # 360p first and 720p second, the other way round from the ladder

    # When the job runs
    service = make_service(catalogue, store, events, settings, FakeEncoder())
    service._choose_ladder = lambda info, names, overrides=None: [Spec("720p", 1280, 720, 4200), LADDER[0]]

    outcome = run(service)

    # Then the video is ready and its published master keeps the start variant first
    assert outcome is Outcome.DONE, catalogue.get(VIDEO_ID).failure_reason
    master = hls.parse_master_playlist(store.get_bytes(f"{OUT}master.m3u8").decode())
    assert [v.uri for v in master] == ["360p/index.m3u8", "720p/index.m3u8"]


def test_a_master_missing_or_repeating_a_rendition_fails_the_job(catalogue, store, events, settings):
    # Given an encoder whose master lists one rendition twice and forgets the other
    class RepeatingEncoder(FakeEncoder):
        def __call__(self, *args, **kwargs):
            result = super().__call__(*args, **kwargs)
            master = Path(args[1]) / "master.m3u8"
            master.write_text(master.read_text().replace("240p/index.m3u8", "360p/index.m3u8"))
            return result

    # When the job runs, Then output validation refuses it
    assert run(make_service(catalogue, store, events, settings, RepeatingEncoder())) is Outcome.FAILED
    assert "does not list the renditions" in (catalogue.get(VIDEO_ID).failure_reason or "")


def test_happy_path_publishes_every_key_once_and_emits_one_ready(catalogue, store, events, settings):
    # Given a queued video and a working encoder
    encoder = FakeEncoder()
    service = make_service(catalogue, store, events, settings, encoder)

    # When the job runs
    outcome = run(service)

    # Then the video is ready with its renditions and duration
    assert outcome is Outcome.DONE
    video = catalogue.get(VIDEO_ID)
    assert video.status == VideoStatus.READY and video.is_transcoded and video.playable
    assert video.duration_seconds == pytest.approx(6.0)
    assert [r.name for r in video.renditions] == ["360p", "240p"]
    # And segments, VOD playlists, poster and master are in the store
    for name in ("360p", "240p"):
        for i in range(3):
            assert store.cache[f"{OUT}{name}/a1/seg_{i:05d}.ts"] == SEGMENT_CACHE_CONTROL
        vod = store.get_bytes(f"{OUT}{name}/index.m3u8").decode()
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in vod and vod.rstrip().endswith("#EXT-X-ENDLIST")
        assert vod.count("#EXTINF:2.000,") == 3
        assert store.cache[f"{OUT}{name}/index.m3u8"] == VOD_PLAYLIST_CACHE_CONTROL
    master = store.get_bytes(f"{OUT}master.m3u8").decode()
    assert "360p/index.m3u8" in master and "RESOLUTION=426x240" in master
    assert store.cache[f"{OUT}master.m3u8"] == VOD_PLAYLIST_CACHE_CONTROL
    assert store.get_bytes(f"{OUT}poster.jpg") == b"\xff\xd8jpeg"
    # And each segment was written exactly once, and video.ready was published once
    seg_writes = [k for k, _ in store.writes if k.endswith(".ts")]
    assert len(seg_writes) == len(set(seg_writes)) == 6
    assert [e for e, _ in events.published] == ["video.ready"]
    assert events.published[0][1]["videoId"] == VIDEO_ID
    # And the work dir was cleaned up
    assert list(Path(settings.work_dir).iterdir()) == []


def test_duplicate_job_of_a_ready_video_does_nothing(catalogue, store, events, settings):
    # Given a video already made ready by a first run
    encoder = FakeEncoder()
    service = make_service(catalogue, store, events, settings, encoder)
    assert run(service) is Outcome.DONE
    writes_before = list(store.writes)

    # When the same job is delivered again (to another worker)
    outcome = run(make_service(catalogue, store, events, settings, encoder, worker_id="w2"), receive_count=2)

    # Then nothing is encoded, written or published again
    assert outcome is Outcome.ALREADY_DONE and outcome.deletes_message
    assert encoder.calls == 1
    assert store.writes == writes_before
    assert [e for e, _ in events.published] == ["video.ready"]


def test_job_for_a_deleted_video_is_dropped_and_leaves_nothing_public(catalogue, store, events, settings):
    # Given the video was deleted after its job was queued, while an earlier attempt's output and the
    # upload were still in the store
    catalogue.delete(VIDEO_ID)
    store.put_bytes(f"{OUT}360p/seg_00000.ts", b"published by an earlier attempt")
    store.put_bytes(f"uploads/{VIDEO_ID}", b"the upload")
    store.put_bytes("outputs/another-video/master.m3u8", b"not this video's")
    encoder = FakeEncoder()

    # When the job runs
    outcome = run(make_service(catalogue, store, events, settings, encoder))

    # Then there is nothing to do and the message can go
    assert outcome is Outcome.ALREADY_DONE and encoder.calls == 0
    # And nothing of the video stays in the store; other videos are untouched
    assert sorted(store.objects) == ["outputs/another-video/master.m3u8", SOURCE_KEY]
    assert events.published == []


def test_duplicate_job_of_a_video_leased_by_a_live_worker_is_dropped(catalogue, store, events, settings):
    # Given another worker holds a live lease on the video (and its own copy of the message)
    assert catalogue.claim(VIDEO_ID, "other", 60) is not None
    encoder = FakeEncoder()

    # When a duplicate of the job runs here
    outcome = run(make_service(catalogue, store, events, settings, encoder))

    # Then it does not touch the video and deletes the duplicate, so it never reaches the DLQ
    assert outcome is Outcome.ALREADY_DONE and outcome.deletes_message
    assert encoder.calls == 0 and catalogue.get(VIDEO_ID).status == VideoStatus.PROCESSING
    assert events.published == []


@pytest.mark.parametrize(
    ("source", "reason"),
    [(b"", "the file is empty"), (b"text, renamed to .mp4", "the file is not a video")],
)
def test_bad_media_fails_permanently_with_its_reason(catalogue, store, events, settings, source, reason):
    # Given an upload that is not a video
    store.put_bytes(SOURCE_KEY, source)
    encoder = FakeEncoder()

    # When the job runs, even on its first attempt
    outcome = run(make_service(catalogue, store, events, settings, encoder), receive_count=1)

    # Then the video failed with the probe's reason, without encoding and without a retry
    assert outcome is Outcome.FAILED and outcome.deletes_message
    video = catalogue.get(VIDEO_ID)
    assert video.status == VideoStatus.FAILED and video.failure_reason == reason
    assert encoder.calls == 0
    ((kind, detail),) = events.published
    assert (kind, event_body(detail)) == (
        "video.failed",
        {"videoId": VIDEO_ID, "jobId": "job-1", "reason": reason},
    )
    assert catalogue.pending_events()[0] == 0  # published, so gone from the outbox


def test_missing_upload_fails_with_a_clear_reason(catalogue, store, events, settings):
    # Given the uploaded object is gone
    store.delete(SOURCE_KEY)

    # When the job runs
    outcome = run(make_service(catalogue, store, events, settings, FakeEncoder()))

    # Then the video failed and says why
    assert outcome is Outcome.FAILED
    assert catalogue.get(VIDEO_ID).failure_reason == "the uploaded file is missing"


def test_transient_error_retries_then_gives_up_on_the_last_attempt(catalogue, store, events, settings):
    # Given an encoder that keeps failing for a transient reason after publishing a segment
    encoder = FakeEncoder(fail_with=OSError("disk hiccup"), fail_after_segments=1)
    service = make_service(catalogue, store, events, settings, encoder)

    # When the first and second attempts run
    first = run(service, receive_count=1)
    second = run(service, receive_count=2)

    # Then both are retried: the video is handed back to the queue and nothing is announced
    assert first is Outcome.RETRY and second is Outcome.RETRY and not first.deletes_message
    assert catalogue.get(VIDEO_ID).status == VideoStatus.QUEUED
    assert events.published == []

    # When the last allowed attempt fails too
    last = run(service, receive_count=3)

    # Then the video failed with the reason and the attempt count, and partial output is gone
    assert last is Outcome.FAILED
    video = catalogue.get(VIDEO_ID)
    assert video.status == VideoStatus.FAILED
    # (a sentence for the uploader: the exception's own text stays in the logs)
    assert video.failure_reason == "processing failed after 3 attempts; please try uploading again later"
    assert "disk hiccup" not in video.failure_reason
    assert [e for e, _ in events.published] == ["video.failed"]
    assert [k for k in store.objects if k.startswith(OUT)] == []


def test_cancel_hands_the_job_back_without_a_vod_master(catalogue, store, events, settings):
    # Given a job whose encoder is cancelled after its first segments (SIGTERM)
    cancel = threading.Event()
    encoder = FakeEncoder(segments=50, during=lambda out: cancel.set())
    service = make_service(catalogue, store, events, settings, encoder)

    # When the job runs
    outcome = run(service, cancel=cancel)

    # Then it is handed back: queued again, no VOD playlist or ready event
    assert outcome is Outcome.HANDED_BACK and not outcome.deletes_message
    assert encoder.cancelled
    video = catalogue.get(VIDEO_ID)
    assert video.status == VideoStatus.QUEUED and not video.is_transcoded
    assert not any(
        b"#EXT-X-ENDLIST" in data for key, (data, _, _) in store.objects.items() if key.endswith(".m3u8")
    )
    assert events.published == []

    # When another worker takes it afterwards
    again = run(
        make_service(catalogue, store, events, settings, FakeEncoder(), worker_id="w2"), receive_count=2
    )

    # Then it completes and announces it once
    assert again is Outcome.DONE
    assert [e for e, _ in events.published] == ["video.ready"]


def test_progressive_publish_order(catalogue, store, events, settings):
    # Given an encoder that looks at the store and catalogue while it is still running
    seen: dict[str, Any] = {}

    def during(out_dir: Path) -> None:
        deadline = time.monotonic() + 5
        while not catalogue.get(VIDEO_ID).playable and time.monotonic() < deadline:
            time.sleep(0.02)
        seen["playable"] = catalogue.get(VIDEO_ID).playable
        while catalogue.get(VIDEO_ID).progress == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        seen["progress"] = catalogue.get(VIDEO_ID).progress
        seen["master"] = store.get_bytes(f"{OUT}master.m3u8").decode()
        seen["event"] = store.get_bytes(f"{OUT}360p/live.m3u8").decode()
        seen["vod_yet"] = f"{OUT}360p/index.m3u8" in store.objects
        seen["writes"] = list(store.writes)

    encoder = FakeEncoder(segments=4, during=during)

    # When the job runs
    assert run(make_service(catalogue, store, events, settings, encoder)) is Outcome.DONE

    # Then the first segments played before the end: EVENT playlists and a live master
    assert seen["playable"] is True
    assert seen["progress"] == 25  # one of four segments, reported by the heartbeat
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in seen["event"] and "#EXT-X-ENDLIST" not in seen["event"]
    assert "a1/seg_00000.ts" in seen["event"]
    assert [v.uri for v in hls.parse_master_playlist(seen["master"])] == ["360p/live.m3u8", "240p/live.m3u8"]
    assert seen["vod_yet"] is False
    # And the live master came only after every rendition's first segment, with a short cache
    keys = [k for k, _ in seen["writes"]]
    live_master = keys.index(f"{OUT}master.m3u8")
    assert keys.index(f"{OUT}360p/a1/seg_00000.ts") < live_master
    assert keys.index(f"{OUT}240p/a1/seg_00000.ts") < live_master
    assert dict(seen["writes"])[f"{OUT}master.m3u8"] == LIVE_PLAYLIST_CACHE_CONTROL
    # And at the end: every segment, then the live playlists ended, then the VOD playlists, then the
    # final master (pointing at the VOD playlists) last
    keys = [k for k, _ in store.writes]
    last_master = len(keys) - 1 - keys[::-1].index(f"{OUT}master.m3u8")
    assert last_master == len(keys) - 1
    final_master = hls.parse_master_playlist(store.get_bytes(f"{OUT}master.m3u8").decode())
    assert [v.uri for v in final_master] == ["360p/index.m3u8", "240p/index.m3u8"]
    for name in ("360p", "240p"):
        vod_at = keys.index(f"{OUT}{name}/index.m3u8")
        live_end = len(keys) - 1 - keys[::-1].index(f"{OUT}{name}/live.m3u8")
        assert keys.count(f"{OUT}{name}/index.m3u8") == 1  # written once, as VOD
        assert all(i < live_end for i, k in enumerate(keys) if k.startswith(f"{OUT}{name}/a1/seg_"))
        assert live_end < vod_at < last_master


def test_a_playlist_uri_never_changes_type(catalogue, store, events, settings):
    # Given a job whose segments are published while it runs
    encoder = FakeEncoder(segments=4)

    # When it runs to the end
    assert run(make_service(catalogue, store, events, settings, encoder)) is Outcome.DONE

    # Then each live playlist was EVENT in every version, only ever appended to, and ends with ENDLIST
    for name in ("360p", "240p"):
        versions = [hls.parse_media_playlist(v.decode()) for v in store.versions[f"{OUT}{name}/live.m3u8"]]
        assert {v.playlist_type for v in versions} == {"EVENT"}
        assert [v.ended for v in versions] == [False] * (len(versions) - 1) + [True]
        for before, after in itertools.pairwise(versions):
            assert after.segments[: len(before.segments)] == before.segments
        assert [u for u, _ in versions[-1].segments] == [f"a1/seg_{i:05d}.ts" for i in range(4)]
        # And the VOD playlist is a different URI, written once as VOD
        (vod,) = store.versions[f"{OUT}{name}/index.m3u8"]
        parsed = hls.parse_media_playlist(vod.decode())
        assert parsed.playlist_type == "VOD" and parsed.ended
        assert store.cache[f"{OUT}{name}/live.m3u8"] == VOD_PLAYLIST_CACHE_CONTROL


def test_output_without_segments_fails_instead_of_publishing(catalogue, store, events, settings):
    # Given an encoder that produced nothing for one rendition
    encoder = FakeEncoder(empty_rendition="240p")

    # When the job runs
    outcome = run(make_service(catalogue, store, events, settings, encoder))

    # Then output validation fails the video and nothing stays published
    assert outcome is Outcome.FAILED
    assert catalogue.get(VIDEO_ID).failure_reason == "rendition 240p has no segments"
    assert [k for k in store.objects if k.startswith(OUT)] == []


def test_output_with_insane_durations_fails(catalogue, store, events, settings):
    # Given an encoder whose segments are far longer than the target
    encoder = FakeEncoder(seconds_per_segment=60.0)

    # When the job runs
    outcome = run(make_service(catalogue, store, events, settings, encoder))

    # Then output validation rejects it
    assert outcome is Outcome.FAILED
    assert "has a segment of 60.000s" in (catalogue.get(VIDEO_ID).failure_reason or "")


def test_lost_lease_stops_the_job_without_completing(catalogue, store, events, settings):
    # Given the lease is taken away while the encoder runs (e.g. a long GC pause let it expire)
    def steal(out_dir: Path) -> None:
        catalogue.release(VIDEO_ID, "w1")
        catalogue.claim(VIDEO_ID, "thief", 60)
        time.sleep(0.5)  # let the next heartbeat notice

    encoder = FakeEncoder(segments=50, during=steal)

    # When the job runs
    outcome = run(make_service(catalogue, store, events, settings, encoder))

    # Then it stops, leaves the message alone, and the other worker still owns the video
    assert outcome is Outcome.RETRY
    assert encoder.cancelled
    assert catalogue.get(VIDEO_ID).status == VideoStatus.PROCESSING
    assert events.published == []


def test_cancel_after_the_encode_finished_completes_instead_of_handing_back(
    catalogue, store, events, settings
):
    # Given SIGTERM arrives just as the encoder returns
    cancel = threading.Event()
    encoder = FakeEncoder()

    def encode_then_sigterm(*args, **kwargs):
        result = encoder(*args, **kwargs)
        cancel.set()
        time.sleep(0.3)  # let the keeper see it
        return result

    service = make_service(catalogue, store, events, settings, encode_then_sigterm)

    # When the job runs
    outcome = run(service, cancel=cancel)

    # Then the finished work is published and completed rather than thrown away
    assert outcome is Outcome.DONE
    assert catalogue.get(VIDEO_ID).status == VideoStatus.READY
    assert [e for e, _ in events.published] == ["video.ready"]


def test_a_job_emits_its_metrics_once(catalogue, store, events, settings, capsys):
    # Given a working encoder
    service = make_service(catalogue, store, events, settings, FakeEncoder())

    # When the job runs
    assert run(service) is Outcome.DONE

    # Then one EMF document in namespace Reelay, service transcoder, carries the job's figures
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert len(docs) == 1
    doc = docs[0]
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "Reelay" and doc["service"] == "transcoder"
    names = {m["Name"] for m in directive["Metrics"]}
    assert names == {
        "TranscodeJobsSucceeded",
        "TranscodeSeconds",
        "TranscodeRealtimeFactor",
        "FirstSegmentSeconds",
        "EventsPublished",
    }
    assert doc["EventsPublished"] == [1.0]
    assert doc["TranscodeJobsSucceeded"] == [1.0]
    assert 0 < doc["FirstSegmentSeconds"][0] <= doc["TranscodeSeconds"][0]


def test_a_failed_job_counts_as_failed(catalogue, store, events, settings, capsys):
    # Given a text file as the upload
    store.put_bytes(SOURCE_KEY, b"text")

    # When the job runs
    assert run(make_service(catalogue, store, events, settings, FakeEncoder())) is Outcome.FAILED

    # Then TranscodeJobsFailed is emitted, and nothing else
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [doc.get("TranscodeJobsFailed") for doc in docs] == [[1.0]]
    assert "TranscodeJobsSucceeded" not in docs[0]


def test_the_technical_detail_of_a_media_error_goes_to_the_log_not_to_the_reason(
    catalogue, store, events, settings, caplog
):
    # Given an upload GStreamer refuses with its own technical message
    store.put_bytes(SOURCE_KEY, b"gst: not a video")
    # When the job runs
    assert run(make_service(catalogue, store, events, settings, FakeEncoder())) is Outcome.FAILED
    # Then the owner (and whoever else sees the video) reads a sentence, and the log has the detail
    assert catalogue.get(VIDEO_ID).failure_reason == "not a recognised video file"
    logged = [r for r in caplog.records if hasattr(r, "detail")]
    assert [r.detail for r in logged] == [GST_DETAIL]  # type: ignore[attr-defined]
    assert logged[0].videoId == VIDEO_ID  # type: ignore[attr-defined]


def test_a_job_naming_another_source_uses_the_catalogues_upload(catalogue, store, events, settings):
    # Given a job whose sourceKey points at someone else's object
    store.put_bytes("uploads/someone-else.mp4", b"text, not a video")
    job = TranscodeJob(videoId=VIDEO_ID, sourceKey="uploads/someone-else.mp4", jobId="job-x")
    service = make_service(catalogue, store, events, settings, FakeEncoder())

    # When it runs
    outcome = service.run(job, cancel=threading.Event(), receive_count=1)

    # Then the catalogue's own upload was transcoded
    assert outcome is Outcome.DONE


def test_an_upload_key_the_store_refuses_fails_permanently(catalogue, store, events, settings):
    # Given a store that refuses the video's key (as FileStore does for "..", reserved names)
    def refuse(key: str):
        raise InvalidInput(f"object key {key!r} is not allowed")

    store.head = refuse  # type: ignore[method-assign]

    # When the job runs on its first attempt
    outcome = run(make_service(catalogue, store, events, settings, FakeEncoder()), receive_count=1)

    # Then it fails at once with a reason, instead of retrying something that can never work
    assert outcome is Outcome.FAILED
    # and the reason names no store key (the key, a technical detail, goes to the logs only)
    assert catalogue.get(VIDEO_ID).failure_reason == "the uploaded file cannot be read"


class LeaseLapsingCatalogue(MemoryCatalogue):
    """complete() finds the lease gone, as after a long pause with no heartbeat."""

    def complete(
        self, video_id, worker_id, *, duration_seconds, renditions, event=None, relocation=None
    ) -> bool:
        return False


def test_complete_refused_with_the_video_unfinished_leaves_the_message_for_redelivery(
    store, events, settings
):
    # Given a catalogue whose lease lapsed just before complete()
    catalogue = new_catalogue(LeaseLapsingCatalogue)

    # When the job runs
    outcome = run(make_service(catalogue, store, events, settings, FakeEncoder()))

    # Then nobody else finished it, so the message must come back rather than be deleted
    assert outcome is Outcome.RETRY and not outcome.deletes_message
    assert events.published == []


class FlakyEvents(FakeEvents):
    """The events topic refuses one kind of event, as SNS does during an outage."""

    def __init__(self, refuse: str) -> None:
        super().__init__()
        self.refuse = refuse

    def publish(self, event_type: str, detail: dict[str, Any]) -> None:
        if event_type == self.refuse:
            raise ConnectionError("SNS unreachable")
        super().publish(event_type, detail)


def emf_docs(capsys) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]


@pytest.mark.parametrize("receive_count", [1, 3], ids=["first-attempt", "last-attempt"])
def test_a_lost_ready_event_never_undoes_a_ready_video(catalogue, store, settings, capsys, receive_count):
    # Given SNS fails just after the catalogue marked the video ready
    events = FlakyEvents(refuse="video.ready")

    # When the job runs, on its first or on its last allowed attempt
    service = make_service(catalogue, store, events, settings, FakeEncoder())
    outcome = run(service, receive_count=receive_count)

    # Then the job is done (the message goes; no retry that would find it done and stay silent)
    assert outcome is Outcome.DONE and outcome.deletes_message
    # And the video stays ready with all its media, and nothing announced it failed
    assert catalogue.get(VIDEO_ID).status == VideoStatus.READY
    assert store.get_bytes(f"{OUT}master.m3u8") and store.get_bytes(f"{OUT}360p/a1/seg_00000.ts")
    assert events.published == []
    # And the unpublished event is counted, not a failed job
    (doc,) = emf_docs(capsys)
    assert doc["EventPublishFailed"] == [1.0]
    assert "TranscodeJobsFailed" not in doc
    # And it is not lost: it waits in the outbox, and the sweep publishes it once SNS is back
    assert catalogue.pending_events()[0] == 1
    sweep(catalogue, events)
    assert [(t, event_body(d)["videoId"]) for t, d in events.published] == [("video.ready", VIDEO_ID)]
    assert events.published[0][1]["master"] == f"{OUT}master.m3u8"
    assert catalogue.pending_events()[0] == 0


def test_a_lost_failed_event_still_fails_the_video_once(catalogue, store, settings, capsys):
    # Given an upload that is not a video and SNS refusing video.failed
    store.put_bytes(SOURCE_KEY, b"text")
    events = FlakyEvents(refuse="video.failed")

    # When the job runs
    outcome = run(make_service(catalogue, store, events, settings, FakeEncoder()))

    # Then the video failed, the message goes, and the lost event is counted
    assert outcome is Outcome.FAILED
    assert catalogue.get(VIDEO_ID).status == VideoStatus.FAILED
    (doc,) = emf_docs(capsys)
    assert doc["EventPublishFailed"] == [1.0] and doc["TranscodeJobsFailed"] == [1.0]
    # And the event is published by the sweep once SNS is back, with the video's reason
    sweep(catalogue, events)
    ((kind, detail),) = events.published
    assert kind == "video.failed" and detail["reason"] == catalogue.get(VIDEO_ID).failure_reason


def sweep(catalogue: MemoryCatalogue, events: FlakyEvents) -> None:
    """SNS recovers, the leases of the failed publishes run out, and the sweep runs."""
    events.refuse = ""
    catalogue._clock = lambda: utcnow() + timedelta(minutes=5)  # type: ignore[method-assign]
    assert OutboxSweep(catalogue, events).flush().published == 1


class BlindHeartbeatCatalogue(MemoryCatalogue):
    """Heartbeats always succeed: the lease can lapse without this worker noticing in time."""

    def heartbeat(self, video_id, worker_id, *, lease_seconds, progress, playable) -> bool:
        return True


def test_a_worker_whose_lease_lapsed_never_deletes_the_new_holders_media(store, events, settings):
    # Given a worker whose lease lapsed and was taken by another worker that published a segment
    catalogue = new_catalogue(BlindHeartbeatCatalogue)
    encoder = FakeEncoder(empty_rendition="240p")  # output validation will reject this attempt

    def encode_then_lose_the_lease(*args, **kwargs):
        result = encoder(*args, **kwargs)
        assert catalogue.release(VIDEO_ID, "w1") and catalogue.claim(VIDEO_ID, "new-holder", 60)
        store.put_bytes(f"{OUT}360p/seg_00000.ts", b"the new holder's segment")
        return result

    # When the old worker's output turns out invalid (a MediaError)
    outcome = run(make_service(catalogue, store, events, settings, encode_then_lose_the_lease))

    # Then it does not fail the video, does not delete the new holder's media, announces nothing,
    # and leaves the message for a redelivery to settle
    assert outcome is Outcome.RETRY
    assert catalogue.get(VIDEO_ID).status == VideoStatus.PROCESSING
    assert store.get_bytes(f"{OUT}360p/seg_00000.ts") == b"the new holder's segment"
    assert events.published == []


def test_a_video_deleted_mid_transcode_leaves_no_public_media(catalogue, store, events, settings):
    # Given the owner deletes the video (the API removes media, then the row) after its first
    # segments were published
    store.put_bytes(f"uploads/{VIDEO_ID}", b"the upload")

    def delete_video(out_dir: Path) -> None:
        deadline = time.monotonic() + 5
        while f"{OUT}240p/seg_00000.ts" not in store.objects and time.monotonic() < deadline:
            time.sleep(0.02)
        store.delete_prefix(OUT)
        catalogue.delete(VIDEO_ID)
        time.sleep(0.5)  # let the next heartbeat notice

    encoder = FakeEncoder(segments=50, during=delete_video)

    # When the job runs
    outcome = run(make_service(catalogue, store, events, settings, encoder))

    # Then the job stops, the message goes, and neither its output nor its upload stays in the store
    assert outcome is Outcome.ALREADY_DONE and encoder.cancelled
    assert [k for k in store.objects if VIDEO_ID in k] == []
    assert events.published == []


class DeletedBeforeCompleteCatalogue(MemoryCatalogue):
    """The video is deleted in the instant between the final publish and complete()."""

    def complete(
        self, video_id, worker_id, *, duration_seconds, renditions, event=None, relocation=None
    ) -> bool:
        self.delete(video_id)
        return False


def test_a_video_deleted_just_before_complete_leaves_no_public_media(store, events, settings):
    # Given a video whose row disappears just as the worker completes it
    catalogue = new_catalogue(DeletedBeforeCompleteCatalogue)

    # When the job runs
    outcome = run(make_service(catalogue, store, events, settings, FakeEncoder()))

    # Then the finished output and the upload (the catalogue's key) are removed, and nothing announced
    assert outcome is Outcome.ALREADY_DONE
    assert store.objects == {}
    assert events.published == []


class SlowDownloadStore(RecordingStore):
    """A store whose download takes as long as a multi-gigabyte source would."""

    def __init__(self) -> None:
        super().__init__()
        self.finish = threading.Event()
        self.started = threading.Event()

    def download(self, key: str, dest: Path) -> None:
        self.started.set()
        self.finish.wait(30)
        super().download(key, dest)


def test_sigterm_during_the_source_download_hands_the_job_back_at_once(catalogue, events, settings):
    # Given a job whose source download is slow
    store = SlowDownloadStore()
    store.put_bytes(SOURCE_KEY, b"\x00\x00\x00 ftypisom-a-real-looking-video")
    cancel = threading.Event()
    encoder = FakeEncoder()
    threading.Thread(target=lambda: store.started.wait(10) and cancel.set(), daemon=True).start()

    # When SIGTERM arrives while it downloads
    started = time.monotonic()
    try:
        outcome = run(make_service(catalogue, store, events, settings, encoder), cancel=cancel)
    finally:
        store.finish.set()
    took = time.monotonic() - started

    # Then the job is handed back within seconds, without waiting for the download or encoding
    assert outcome is Outcome.HANDED_BACK
    assert took < 5
    assert encoder.calls == 0
    assert catalogue.get(VIDEO_ID).status == VideoStatus.QUEUED


def test_a_download_error_still_reaches_the_error_path(catalogue, events, settings):
    # Given a store that loses the upload between HEAD and GET
    store = new_store()

    def vanish(key: str, dest: Path) -> None:
        raise NotFound(f"object {key} not found")

    store.download = vanish  # type: ignore[method-assign]

    # When the job runs, Then the video fails with a clear reason
    assert run(make_service(catalogue, store, events, settings, FakeEncoder())) is Outcome.FAILED
    assert catalogue.get(VIDEO_ID).failure_reason == "the uploaded file is missing"


def test_ladder_bitrate_overrides_reach_the_ladder_choice(catalogue, store, events, settings):
    # Given REELAY_LADDER_OVERRIDES for one rendition
    from reelay.media.ladder import Bitrates

    seen: list[object] = []

    def recording_ladder(info, names, overrides=None):
        seen.append(overrides)
        return fake_ladder(info, names)

    tuned = settings.model_copy(update={"ladder_overrides": "360p=500:750:96"})
    service = TranscodeService(
        catalogue, store, events, tuned, worker_id="w1", transcode_fn=FakeEncoder(),
        probe_fn=fake_probe, choose_ladder_fn=recording_ladder, heartbeat_seconds=0.05,
    )  # fmt: skip

    # When a job runs
    assert run(service) is Outcome.DONE

    # Then the ladder was chosen with the parsed bitrates
    assert seen == [{"360p": Bitrates(video_kbps=500, max_kbps=750, audio_kbps=96)}]


def test_bad_ladder_overrides_stop_the_worker_at_start(catalogue, store, events, settings):
    # Given a malformed override (max below the average rate)
    bad = settings.model_copy(update={"ladder_overrides": "360p=900:500:96"})

    # When the service is built, Then it refuses with a clear error instead of failing every video later
    with pytest.raises(InvalidInput, match="360p"):
        TranscodeService(catalogue, store, events, bad, worker_id="w1", transcode_fn=FakeEncoder())


# --- the HLS validation, shared with finalized recordings ----------------------------------------------
def _published(tmp_path: Path, uri: str) -> tuple[Path, list[Rendition]]:
    out = tmp_path / "outputs" / "v1"
    (out / "source").mkdir(parents=True)
    (out / "source" / "index.m3u8").write_text(hls.vod_playlist([(uri, 2.0), (uri, 2.0)], 2))
    rendition = Rendition(name="source", bandwidth=1, codecs="avc1.640028", playlist="source/index.m3u8")
    (out / "master.m3u8").write_text(hls.write_master([rendition]))
    return out, [rendition]


def test_validation_resolves_segments_against_their_playlist(tmp_path: Path) -> None:
    from reelay.transcode import validate_hls

    segment = tmp_path / "recordings" / "cam" / "s1" / "w1" / "source" / "0000000000_2000_1.ts"
    segment.parent.mkdir(parents=True)
    segment.write_bytes(b"\x47")
    out, renditions = _published(tmp_path, "../../../recordings/cam/s1/w1/source/0000000000_2000_1.ts")
    final = validate_hls(out, renditions, 4.0, 2)
    assert [s.path for s in final["source"]] == [
        "../../../recordings/cam/s1/w1/source/0000000000_2000_1.ts"
    ] * 2
    assert final["source"][0].name == "0000000000_2000_1.ts"


@pytest.mark.parametrize(
    "uri",
    [
        "../../../recordings/cam/s1/w1/source/missing.ts",  # resolved, and not there
        "0000000000_2000_1.ts",  # beside the playlist: not where the playlist says
        "/etc/passwd",
        "http://example.com/seg.ts",
    ],
)
def test_validation_refuses_segments_a_player_would_not_find(tmp_path: Path, uri: str) -> None:
    from reelay.transcode import OutputInvalid, validate_hls

    segment = tmp_path / "recordings" / "cam" / "s1" / "w1" / "source" / "0000000000_2000_1.ts"
    segment.parent.mkdir(parents=True)
    segment.write_bytes(b"\x47")
    out, renditions = _published(tmp_path, uri)
    with pytest.raises(OutputInvalid, match="missing segment"):
        validate_hls(out, renditions, 4.0, 2)


def test_segment_keys_are_never_reused_across_attempts(catalogue, store, events, settings):
    # Given a first attempt that published segments and then failed for a transient reason
    first = FakeEncoder(fail_with=OSError("disk hiccup"), fail_after_segments=2)
    assert run(make_service(catalogue, store, events, settings, first), receive_count=1) is Outcome.RETRY
    written_first = {k for k, _ in store.writes if k.endswith(".ts")}
    assert written_first and all("/a1/" in k for k in written_first)

    # When the second attempt publishes the video
    store.writes.clear()
    again = make_service(catalogue, store, events, settings, FakeEncoder(), worker_id="w2")
    assert run(again, receive_count=2) is Outcome.DONE

    # Then it wrote only new segment keys (immutable in a CDN: an old one would keep the old bytes),
    # and its playlists name only its own segments
    written_second = {k for k, _ in store.writes if k.endswith(".ts")}
    assert written_second and not written_second & written_first
    for name in ("360p", "240p"):
        vod = hls.parse_media_playlist(store.get_bytes(f"{OUT}{name}/index.m3u8").decode())
        assert {f"{OUT}{name}/{uri}" for uri, _ in vod.segments} <= written_second


class BrokenCdn:
    def invalidate(self, paths: list[str]) -> None:
        raise ConnectionError("CloudFront unreachable")


@pytest.mark.parametrize("cdn_kind", ["working", "broken"])
def test_a_failed_video_is_dropped_from_the_cdn_too(catalogue, store, events, settings, cdn_kind):
    from tests.fakes import FakeCdn

    # Given a job that published playable segments, then failed for good
    cdn = FakeCdn() if cdn_kind == "working" else BrokenCdn()
    service = make_service(
        catalogue,
        store,
        events,
        settings,
        FakeEncoder(fail_with=MediaError("corrupt frame"), fail_after_segments=2),
    )
    service.cdn = cdn  # type: ignore[assignment]

    # When it runs
    outcome = run(service)

    # Then the video failed, its output is gone at the origin and, with a CDN that answers, at the edge;
    # a CDN that fails does not change the outcome
    assert outcome is Outcome.FAILED
    assert catalogue.get(VIDEO_ID).failure_reason == "corrupt frame"
    assert [k for k in store.objects if k.startswith(OUT)] == []
    if isinstance(cdn, FakeCdn):
        assert cdn.invalidated == [[f"/{OUT}*", f"/private-{OUT}*"]]
    # And a refused invalidation waits in the outbox for the sweep (video.failed went out); a done one
    # does not
    assert catalogue.pending_events()[0] == (0 if isinstance(cdn, FakeCdn) else 1)
