"""The transcode job lifecycle: claim, fetch, probe, profile, encode, validate, publish.

Each stage reports failure to one error path (``_finish_with_error``), in the shape of AWS's
video-on-demand solution. The same job id is in every log line. Segments are published while
the encode runs, so a video plays before its job ends: EVENT playlists at ``{rendition}/live.m3u8``
and a live master pointing at them. At the end the live playlists get ENDLIST (a player already on
them ends cleanly), then the VOD playlists at ``{rendition}/index.m3u8``, then the final master that
points there. A URI never changes playlist type (RFC 8216 6.2.1), and a reader never sees a VOD
master that points at missing segments.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from queue import Queue
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from reelay.errors import InvalidInput, MediaError, NotFound, describe
from reelay.events import OutboxSweep, cdn_subject, media_relocation, video_failed
from reelay.lease import LeaseKeeper
from reelay.media import hls
from reelay.media_location import move_media_now
from reelay.models import OutboxEvent, Rendition, TranscodeJob, Video, VideoStatus
from reelay.observability import METRICS_NAMESPACE
from reelay.ports import CdnInvalidator, EventPublisher, ObjectStore, VideoCatalogue
from reelay.settings import Settings
from reelay.videos import clean_up_failed, delete_outputs, upload_key, video_output_prefix

logger = Logger(service="transcoder")
# A metric set of its own: the local platform runs the worker in the same process as handlers that
# share Powertools' default one, and a flush here must not carry their metrics off.
metrics = AmazonCloudWatchEMFProvider(namespace=METRICS_NAMESPACE, service="transcoder")
# Dead jobs are counted as transcoder failures (the failures alarm watches that dimension), from the
# dead-jobs handler, which the local platform runs beside a worker: a set of their own again.
dead_job_metrics = AmazonCloudWatchEMFProvider(namespace=METRICS_NAMESPACE, service="transcoder")

# Segments never change once written; playlists change while the job runs (EVENT), then never.
SEGMENT_CACHE_CONTROL = "public, max-age=31536000, immutable"
LIVE_PLAYLIST_CACHE_CONTROL = "no-cache, max-age=0"
VOD_PLAYLIST_CACHE_CONTROL = "public, max-age=86400"
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_TYPE = "video/mp2t"


class Outcome(StrEnum):
    DONE = "done"  # published and marked ready; video.ready emitted once
    ALREADY_DONE = "already_done"  # nothing to do (ready, failed, deleted): delete the message
    FAILED = "failed"  # permanent: catalogue failed with a reason, video.failed emitted
    RETRY = "retry"  # transient: leave the message, SQS redelivers it
    HANDED_BACK = "handed_back"  # cancelled (SIGTERM): catalogue released, release the message

    @property
    def deletes_message(self) -> bool:
        return self in (Outcome.DONE, Outcome.ALREADY_DONE, Outcome.FAILED)


class _Stopped(Exception):
    """Raised inside the lifecycle when the job was cancelled or its lease was lost."""


class OutputInvalid(MediaError):
    """The encode finished but its output cannot be published as a whole video."""


class OverLimit(MediaError):
    """The source is over a probe limit (duration, resolution, frame rate): the reason names it."""


class WorkDiskFull(MediaError):
    """The work disk has no room for this job. Permanent: a redelivery would find the same disk."""


def transcode_deadline_seconds(settings: Settings, duration_seconds: float | None) -> float:
    """Wall-clock seconds one transcode may take: max(floor, factor x duration). A source that does
    not state its duration is given the longest one allowed."""
    duration = duration_seconds if duration_seconds and duration_seconds > 0 else None
    basis = duration if duration is not None else settings.max_source_duration_seconds
    return max(settings.transcode_deadline_floor_seconds, settings.transcode_deadline_factor * basis)


def check_probe_limits(info: Any, settings: Settings) -> None:
    """Raise OverLimit naming the first limit the probed source is over."""
    duration = getattr(info, "duration_seconds", None)
    if duration is not None and duration > settings.max_source_duration_seconds:
        raise OverLimit(
            f"the video lasts {_clock_text(duration)}, over the limit of "
            f"{_clock_text(settings.max_source_duration_seconds)}"
        )
    width, height = int(getattr(info, "width", 0) or 0), int(getattr(info, "height", 0) or 0)
    if max(width, height) > settings.max_source_dimension:
        raise OverLimit(
            f"the video's resolution {width}x{height} is over the limit of "
            f"{settings.max_source_dimension} pixels on its longer side"
        )
    fps = getattr(info, "fps", None)
    if fps is not None and fps > settings.max_source_fps:
        raise OverLimit(
            f"the video's frame rate of {fps:g} fps is over the limit of {settings.max_source_fps:g} fps"
        )


def work_disk_need(settings: Settings, source_bytes: int) -> int:
    """Bytes of work disk a job on a source of this size needs free before it starts."""
    return int(source_bytes * settings.work_disk_factor) + settings.work_disk_reserve_bytes


def _clock_text(seconds: float) -> str:
    whole = math.ceil(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _size_text(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class _Segment:
    name: str  # file name, e.g. seg_00000.ts
    duration: float
    uri: str = ""  # as the playlist names it (relative to the playlist); the name when empty

    @property
    def path(self) -> str:
        return self.uri or self.name


@dataclass
class _JobState:
    """What the keeper thread and the callbacks share while one job runs."""

    progress: int = 0
    playable: bool = False
    lease_lost: bool = False
    first_segment_at: float | None = None
    deadline_at: float | None = None  # time.monotonic() past which the keeper stops the job
    deadline_seconds: float = 0.0
    deadline_passed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


def read_media_playlist(path: Path) -> list[_Segment]:
    """Segments (file name, duration) listed in a local HLS media playlist."""
    parsed = hls.parse_media_playlist(path.read_text())
    return [_Segment(Path(uri).name, duration, uri) for uri, duration in parsed.segments]


def validate_hls(
    out_dir: Path, renditions: Sequence[Rendition], duration: float, segment_seconds: int
) -> dict[str, list[_Segment]]:
    """The checks published HLS must pass (a transcoded video, and a finalized recording): every
    rendition's playlist lists segments that exist, each of a sane duration, adding up to the video's
    duration, and the master lists each rendition once. Segment URIs resolve against their playlist,
    as a player resolves them: a recording's playlists point at the segments where the recorder wrote
    them (``../../../recordings/...``)."""
    if not renditions:
        raise OutputInvalid("the transcode produced no renditions")
    if not duration > 0:
        raise OutputInvalid("the transcoded video has no duration")
    longest_allowed = 3 * segment_seconds + 1
    final: dict[str, list[_Segment]] = {}
    for r in renditions:
        playlist = out_dir / r.playlist
        if not playlist.is_file():
            raise OutputInvalid(f"rendition {r.name} has no playlist")
        try:
            segments = read_media_playlist(playlist)
        except ValueError as exc:
            raise OutputInvalid(f"rendition {r.name} has a malformed playlist: {exc}") from None
        if not segments:
            raise OutputInvalid(f"rendition {r.name} has no segments")
        for s in segments:
            if "://" in s.path or s.path.startswith("/") or not (playlist.parent / s.path).is_file():
                raise OutputInvalid(f"rendition {r.name} is missing segment {s.path}")
            if not 0 < s.duration <= longest_allowed:
                raise OutputInvalid(f"rendition {r.name} has a segment of {s.duration:.3f}s")
        total = sum(s.duration for s in segments)
        if abs(total - duration) > max(1.5, 0.1 * duration) + segment_seconds:
            raise OutputInvalid(f"rendition {r.name} lasts {total:.1f}s but the video lasts {duration:.1f}s")
        final[r.name] = segments
    master = out_dir / "master.m3u8"
    if master.is_file():
        try:
            listed = [v.uri for v in hls.parse_master_playlist(master.read_text())]
        except ValueError as exc:
            raise OutputInvalid(f"the master playlist is malformed: {exc}") from None
        # Each rendition exactly once; the order is the master's own (the start variant first).
        if sorted(listed) != sorted(r.playlist for r in renditions):
            raise OutputInvalid("the master playlist does not list the renditions that were made")
    return final


LIVE_PLAYLIST = "live.m3u8"


def render_vod_playlist(segments: Sequence[_Segment], *, target: int) -> str:
    """The VOD playlist of a finished rendition."""
    return hls.vod_playlist([(s.name, s.duration) for s in segments], target)


def render_live_playlist(segments: Sequence[_Segment], *, target: int, ended: bool = False) -> str:
    """The EVENT playlist published while the encode runs; ``ended`` closes it with ENDLIST."""
    return hls.event_playlist([(s.name, s.duration) for s in segments], target, ended=ended)


def live_playlist_path(rendition: Rendition) -> str:
    """``360p/index.m3u8`` -> ``360p/live.m3u8``: the EVENT playlist beside the VOD one."""
    folder = str(Path(rendition.playlist).parent)
    return LIVE_PLAYLIST if folder in ("", ".") else f"{folder}/{LIVE_PLAYLIST}"


def render_live_master(renditions: Sequence[Rendition]) -> str:
    return hls.write_master([r.model_copy(update={"playlist": live_playlist_path(r)}) for r in renditions])


class _ProgressivePublisher:
    """Uploads each closed segment as it closes and keeps EVENT playlists and a master current.

    Uploads run on one background thread so the encoder's callbacks never wait on the network.
    """

    def __init__(
        self,
        store: ObjectStore,
        prefix: str,
        renditions: Sequence[Rendition],
        *,
        segment_seconds: int,
        state: _JobState,
        log: Callable[..., None],
        segment_dir: str = "",
    ) -> None:
        self._store = store
        self._segment_dir = segment_dir
        self._prefix = prefix
        self._renditions = list(renditions)
        self._segment_seconds = segment_seconds
        self._state = state
        self._log = log
        self._queue: Queue[tuple[str, Path, float] | None] = Queue()
        self.published: dict[str, list[_Segment]] = {r.name: [] for r in self._renditions}
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="segment-publisher", daemon=True)
        self._thread.start()

    def on_segment_ready(self, rendition: str, path: Path | str, duration: float) -> None:
        self._queue.put((rendition, Path(path), float(duration)))

    def close(self) -> None:
        """Wait for every queued upload; re-raise the first upload error."""
        self._queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self.error is not None or self._state.lease_lost:
                continue  # drain without publishing more
            try:
                self._publish(*item)
            except BaseException as exc:
                self.error = exc

    def _publish(self, rendition: str, path: Path, duration: float) -> None:
        segments = self.published.setdefault(rendition, [])
        name = f"{self._segment_dir}{path.name}"
        if any(s.name == name for s in segments):
            return
        self._store.put_file(
            f"{self._prefix}{rendition}/{name}",
            path,
            content_type=SEGMENT_TYPE,
            cache_control=SEGMENT_CACHE_CONTROL,
        )
        if not duration > 0:  # the muxer could not time it; the nominal length is close enough live
            duration = float(self._segment_seconds)
        segments.append(_Segment(name, duration))
        self._store.put_bytes(
            f"{self._prefix}{rendition}/{LIVE_PLAYLIST}",
            render_live_playlist(segments, target=self._segment_seconds).encode(),
            content_type=PLAYLIST_TYPE,
            cache_control=LIVE_PLAYLIST_CACHE_CONTROL,
        )
        if not self._state.playable and all(self.published.get(r.name) for r in self._renditions):
            self._store.put_bytes(
                f"{self._prefix}master.m3u8",
                render_live_master(self._renditions).encode(),
                content_type=PLAYLIST_TYPE,
                cache_control=LIVE_PLAYLIST_CACHE_CONTROL,
            )
            with self._state.lock:
                self._state.playable = True
                self._state.first_segment_at = time.monotonic()
            self._log("info", "first segment of every rendition published: playable")


def attempt_segment_dir(attempt: int) -> str:
    """The folder, beside its playlists, where one attempt's segments go: ``a2/`` for the second."""
    return f"a{max(1, attempt)}/"


def _default_probe() -> Callable[..., Any]:
    from reelay.media.probe import probe

    return probe


def _default_transcode() -> Callable[..., Any]:
    from reelay.media.pipeline import transcode

    return transcode


def _default_choose_ladder() -> Callable[..., Any]:
    from reelay.media.ladder import choose_ladder

    return choose_ladder


def _default_planned() -> Callable[..., Any]:
    from reelay.media.pipeline import planned_renditions

    return planned_renditions


class TranscodeService:
    """Runs one transcode job from claim to ready (or failed, or handed back)."""

    def __init__(
        self,
        catalogue: VideoCatalogue,
        store: ObjectStore,
        events: EventPublisher,
        settings: Settings,
        *,
        worker_id: str,
        transcode_fn: Callable[..., Any] | None = None,
        probe_fn: Callable[..., Any] | None = None,
        choose_ladder_fn: Callable[..., Any] | None = None,
        planned_fn: Callable[..., Any] | None = None,
        heartbeat_seconds: float | None = None,
        cdn: CdnInvalidator | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.cdn = cdn  # a failed video's progressive segments may be cached: dropped from the CDN too
        self.store = store
        self.relay = OutboxSweep(catalogue, events, metrics=metrics)
        self.settings = settings
        self.worker_id = worker_id
        self._transcode = transcode_fn or _default_transcode()
        self._probe = probe_fn or _default_probe()
        self._choose_ladder = choose_ladder_fn or _default_choose_ladder()
        self._planned = planned_fn or _default_planned()
        # Parsed once, so a bad REELAY_LADDER_OVERRIDES stops the worker at start instead of failing
        # every video it takes.
        self._ladder_overrides: Any = None
        if settings.ladder_overrides.strip():
            from reelay.media.ladder import parse_overrides

            self._ladder_overrides = parse_overrides(settings.ladder_overrides)
        # Several beats per lease, so one slow beat never loses it.
        self.heartbeat_seconds = heartbeat_seconds or min(5.0, settings.lease_seconds / 4)

    # --- the one entry point ------------------------------------------------------------------
    def run(
        self,
        job: TranscodeJob,
        *,
        cancel: threading.Event,
        on_alive: Callable[[], None] = lambda: None,
        receive_count: int = 1,
    ) -> Outcome:
        ids = {"videoId": job.video_id, "jobId": job.job_id, "attempt": receive_count}

        def log(level: str, msg: str, *, exc_info: BaseException | None = None, **extra: Any) -> None:
            getattr(logger, level)(msg, extra={**ids, **extra}, exc_info=exc_info, stacklevel=3)

        video = self._claim(job, log)
        if not isinstance(video, Video):
            return video
        log("info", "job claimed", workerId=self.worker_id)
        started = time.monotonic()
        state = _JobState()
        self._set_deadline(state, started, None)
        stop = threading.Event()
        keeper = self._keeper(job, state, cancel, stop, on_alive, log).start()
        tmp: Path | None = None
        try:
            work = Path(self.settings.work_dir)
            work.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f"{job.video_id}-", dir=work))
            return self._run_stages(job, video, tmp, state, stop, started, receive_count, log)
        except Exception as exc:
            return self._finish_with_error(job, video, exc, state, cancel, receive_count, log)
        finally:
            keeper.stop(timeout=10)
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            if metrics.metric_set:
                metrics.flush_metrics()

    def _claim(self, job: TranscodeJob, log: Callable[..., None]) -> Video | Outcome:
        video = self.catalogue.claim(job.video_id, self.worker_id, self.settings.lease_seconds)
        if video is not None:
            return video
        try:
            current = self.catalogue.get(job.video_id)
        except NotFound:
            log("info", "video no longer exists: nothing to do")
            return self._purge_deleted(job, None, log)
        if current.status == VideoStatus.PROCESSING:
            # Another worker holds a live lease and its own message, which it deletes or hands back.
            # Keeping this duplicate would only burn receives until it dead-letters a video in progress.
            log("info", "video is leased by another worker: dropping the duplicate job")
            return Outcome.ALREADY_DONE
        if current.status == VideoStatus.QUEUED:
            # Released between our claim and our read: SQS brings the message back.
            log("info", "video was just handed back: retry later")
            return Outcome.RETRY
        log("info", "nothing to do for this job", status=str(current.status))
        return Outcome.ALREADY_DONE

    # --- stages -------------------------------------------------------------------------------
    def _run_stages(
        self,
        job: TranscodeJob,
        video: Video,
        tmp: Path,
        state: _JobState,
        stop: threading.Event,
        started: float,
        receive_count: int,
        log: Callable[..., None],
    ) -> Outcome:
        source = self._fetch(job, video, tmp, stop, log)
        self._check(stop)
        info = self._probe(source)
        log("info", "probed source", durationSeconds=getattr(info, "duration_seconds", None))
        check_probe_limits(info, self.settings)
        self._set_deadline(state, started, getattr(info, "duration_seconds", None))
        names = [n.strip() for n in self.settings.ladder.split(",") if n.strip()]
        ladder = self._choose_ladder(info, names, self._ladder_overrides)
        if not ladder:
            raise MediaError("no rendition in the ladder fits this video")
        self._check(stop)
        out_dir = tmp / "out"
        out_dir.mkdir()
        # The prefix the video's visibility calls for as this attempt starts (private media under
        # its own); a switch while it runs is squared by the move recorded when it completes.
        prefix = video_output_prefix(self.settings, video)
        # Segments are cached as immutable: each attempt writes its own keys, so a CDN never serves an
        # earlier attempt's bytes under a name the playlists of this one use.
        segment_dir = attempt_segment_dir(video.attempts)
        publisher = _ProgressivePublisher(
            self.store,
            prefix,
            self._planned(ladder, info),
            segment_seconds=self.settings.segment_seconds,
            state=state,
            log=log,
            segment_dir=segment_dir,
        )

        def on_progress(fraction: float) -> None:
            with state.lock:
                state.progress = max(state.progress, min(99, int(fraction * 100)))

        try:
            result = self._transcode(
                source,
                out_dir,
                ladder,
                info,
                segment_seconds=self.settings.segment_seconds,
                x264_preset=self.settings.x264_preset,
                on_progress=on_progress,
                on_segment_ready=publisher.on_segment_ready,
                cancel=stop,
            )
        finally:
            publisher.close()
        # The encode is done: a SIGTERM now is better served by finishing (seconds) than by handing
        # back. Only a lost lease stops us, since another worker may be publishing the same keys.
        if state.lease_lost:
            raise _Stopped()
        renditions = list(result.renditions)
        final = {
            name: [_Segment(f"{segment_dir}{seg.name}", seg.duration) for seg in segments]
            for name, segments in self._validate(out_dir, renditions, float(result.duration_seconds)).items()
        }
        self._publish_final(prefix, out_dir, renditions, final, publisher, result.poster, log)
        ready_event = OutboxEvent(
            event_type="video.ready",
            video_id=job.video_id,
            detail={
                "videoId": job.video_id,
                "jobId": job.job_id,
                "ownerId": video.owner_id,
                "durationSeconds": float(result.duration_seconds),
                "renditions": [r.name for r in renditions],
                "master": f"{prefix}master.m3u8",
            },
        )
        if not self.catalogue.complete(
            job.video_id,
            self.worker_id,
            duration_seconds=float(result.duration_seconds),
            renditions=renditions,
            event=ready_event,
            # With the transition: a worker that dies right after it still has its media moved where
            # the visibility now says (the sweep acts on it), playlists included.
            relocation=media_relocation(job.video_id),
        ):
            # The lease lapsed under us. Ready (or gone) means someone finished it; otherwise leave the
            # message so a redelivery finishes the job rather than strand the video in processing.
            try:
                finished = self.catalogue.get(job.video_id).status in (VideoStatus.READY, VideoStatus.FAILED)
            except NotFound:
                log("warning", "complete() did not take: the video was deleted while it was transcoded")
                return self._purge_deleted(job, video, log)
            log("warning", "complete() did not take: the lease was lost", finishedElsewhere=finished)
            return Outcome.ALREADY_DONE if finished else Outcome.RETRY
        # The video is ready and video.ready is in the outbox with it: nothing from here on may send
        # the job down the error path (a last attempt would fail a ready video). A publish that fails
        # now is retried by the outbox sweep.
        self.relay.flush_quietly(video_id=job.video_id)
        self._settle_media(job)
        self._count_success(result, renditions, state, started, log)
        return Outcome.DONE

    def _settle_media(self, job: TranscodeJob) -> None:
        """Move what this job (or an earlier attempt) wrote under the prefix the video no longer calls
        for: its visibility may have changed while it ran. The move was recorded with the completion;
        it is acted on now, and the outbox sweep retries it."""
        move_media_now(self.catalogue, self.store, self.settings, self.cdn, job.video_id)

    def _count_success(
        self,
        result: Any,
        renditions: Sequence[Rendition],
        state: _JobState,
        started: float,
        log: Callable[..., None],
    ) -> None:
        elapsed = time.monotonic() - started
        metrics.add_metric(name="TranscodeJobsSucceeded", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="TranscodeSeconds", unit=MetricUnit.Seconds, value=elapsed)
        if result.duration_seconds:
            metrics.add_metric(
                name="TranscodeRealtimeFactor",
                unit=MetricUnit.NoUnit,
                value=float(result.duration_seconds) / max(elapsed, 1e-6),
            )
        if state.first_segment_at is not None:
            metrics.add_metric(
                name="FirstSegmentSeconds",
                unit=MetricUnit.Seconds,
                value=state.first_segment_at - started,
            )
        log("info", "video ready", seconds=round(elapsed, 2), renditions=[r.name for r in renditions])

    def _fetch(
        self, job: TranscodeJob, video: Video, tmp: Path, stop: threading.Event, log: Callable[..., None]
    ) -> Path:
        # The catalogue names the upload; a message pointing elsewhere is not trusted with it.
        key = video.video_key
        if job.source_key != key:
            log("warning", "job names another source than the catalogue: using the catalogue's")
        try:
            head = self.store.head(key)
            if head is None:
                raise MediaError("the uploaded file is missing")
            self._check_work_disk(tmp, head.size, log)
            dest = tmp / f"source{Path(key).suffix[:10]}"
            self._download(key, dest, stop)
        except NotFound:  # deleted between head and download
            raise MediaError("the uploaded file is missing") from None
        except InvalidInput as exc:  # a key the store refuses can never be fetched
            raise MediaError("the uploaded file cannot be read", detail=exc.message) from None
        log("info", "fetched source", sizeBytes=dest.stat().st_size)
        return dest

    def _download(self, key: str, dest: Path, stop: threading.Event) -> None:
        """The store's download, abandoned when the job is stopped: a SIGTERM during a large download
        hands the job back within ECS's stop timeout instead of waiting for the last byte."""
        failure: list[BaseException] = []

        def fetch() -> None:
            try:
                self.store.download(key, dest)
            except BaseException as exc:
                failure.append(exc)

        thread = threading.Thread(target=fetch, name="source-download", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(0.2)
            if thread.is_alive() and stop.is_set():
                raise _Stopped()  # the thread writes into the work dir, which is removed after us
        if failure:
            raise failure[0]

    def _check_work_disk(self, work: Path, source_bytes: int, log: Callable[..., None]) -> None:
        need = work_disk_need(self.settings, source_bytes)
        free = shutil.disk_usage(work).free
        if free < need:
            log("error", "work disk too full for this job", needBytes=need, freeBytes=free)
            raise WorkDiskFull(
                f"there is not enough work space to process this video: it needs about "
                f"{_size_text(need)} and {_size_text(free)} is free"
            )

    def _set_deadline(self, state: _JobState, started: float, duration_seconds: float | None) -> None:
        seconds = transcode_deadline_seconds(self.settings, duration_seconds)
        with state.lock:
            state.deadline_seconds = seconds
            state.deadline_at = started + seconds

    @staticmethod
    def _check(stop: threading.Event) -> None:
        if stop.is_set():
            raise _Stopped()

    def _validate(
        self, out_dir: Path, renditions: Sequence[Rendition], duration: float
    ) -> dict[str, list[_Segment]]:
        return validate_hls(out_dir, renditions, duration, self.settings.segment_seconds)

    def _publish_final(
        self,
        prefix: str,
        out_dir: Path,
        renditions: Sequence[Rendition],
        final: dict[str, list[_Segment]],
        publisher: _ProgressivePublisher,
        poster: Path | None,
        log: Callable[..., None],
    ) -> None:
        for r in renditions:
            rendition_dir = (out_dir / r.playlist).parent
            rel_dir = str(Path(r.playlist).parent)
            already = {s.name for s in publisher.published.get(r.name, [])}
            for s in final[r.name]:  # names carry the attempt's folder; the local files do not
                if s.name not in already:
                    self.store.put_file(
                        f"{prefix}{rel_dir}/{s.name}",
                        rendition_dir / Path(s.name).name,
                        content_type=SEGMENT_TYPE,
                        cache_control=SEGMENT_CACHE_CONTROL,
                    )
        # Every segment is in place. First the live playlists end (append-only, as EVENT requires),
        # so a player already on them stops cleanly; then the VOD playlists, the poster, the master.
        for r in renditions:
            live = list(publisher.published.get(r.name, []))
            shown = {s.name for s in live}
            live += [s for s in final[r.name] if s.name not in shown]
            self.store.put_bytes(
                f"{prefix}{live_playlist_path(r)}",
                render_live_playlist(live, target=self.settings.segment_seconds, ended=True).encode(),
                content_type=PLAYLIST_TYPE,
                cache_control=VOD_PLAYLIST_CACHE_CONTROL,
            )
        for r in renditions:
            self.store.put_bytes(
                f"{prefix}{r.playlist}",
                render_vod_playlist(final[r.name], target=self.settings.segment_seconds).encode(),
                content_type=PLAYLIST_TYPE,
                cache_control=VOD_PLAYLIST_CACHE_CONTROL,
            )
        if poster is not None and Path(poster).is_file():
            self.store.put_file(
                f"{prefix}poster.jpg",
                Path(poster),
                content_type="image/jpeg",
                cache_control=VOD_PLAYLIST_CACHE_CONTROL,
            )
        # The encoder's master carries the measured bandwidths and frame rate; validated above.
        master = out_dir / "master.m3u8"
        body = master.read_bytes() if master.is_file() else hls.write_master(renditions).encode()
        self.store.put_bytes(
            f"{prefix}master.m3u8", body, content_type=PLAYLIST_TYPE, cache_control=VOD_PLAYLIST_CACHE_CONTROL
        )
        log("info", "published VOD playlists and master", prefix=prefix)

    # --- the one error path -------------------------------------------------------------------
    def _finish_with_error(
        self,
        job: TranscodeJob,
        video: Video,
        exc: Exception,
        state: _JobState,
        cancel: threading.Event,
        receive_count: int,
        log: Callable[..., None],
    ) -> Outcome:
        if state.deadline_passed and not state.lease_lost:
            metrics.add_metric(name="TranscodeDeadlinesPassed", unit=MetricUnit.Count, value=1)
            reason = f"processing took longer than its limit of {_clock_text(state.deadline_seconds)}"
            log("error", "transcode deadline passed: pipeline stopped", error=describe(exc))
            return self._fail(job, video, reason, log)
        if state.lease_lost:
            if self._deleted(job):
                log("warning", "the video was deleted while it was transcoded")
                return self._purge_deleted(job, video, log)
            log("warning", "lease lost: stopping without publishing more")
            metrics.add_metric(name="TranscodeJobsRetried", unit=MetricUnit.Count, value=1)
            return Outcome.RETRY
        if cancel.is_set() and not isinstance(exc, MediaError):
            self.catalogue.release(job.video_id, self.worker_id)
            log("info", "cancelled: job handed back")
            return Outcome.HANDED_BACK
        if isinstance(exc, MediaError):
            if exc.detail:
                log("warning", "media error detail", reason=exc.message, detail=exc.detail)
            return self._fail(job, video, exc.message, log)
        if receive_count >= self.settings.max_attempts:
            # The exception's text (hosts, keys, errno strings) stays in this log line; the uploader
            # reads a sentence.
            log("error", "transient failure on the last attempt", error=describe(exc), exc_info=exc)
            reason = f"processing failed after {receive_count} attempts; please try uploading again later"
            return self._fail(job, video, reason, log)
        log("warning", "transient failure: will retry", error=describe(exc), exc_info=exc)
        self.catalogue.release(job.video_id, self.worker_id)
        metrics.add_metric(name="TranscodeJobsRetried", unit=MetricUnit.Count, value=1)
        return Outcome.RETRY

    def _fail(self, job: TranscodeJob, video: Video, reason: str, log: Callable[..., None]) -> Outcome:
        # The catalogue first: only while we hold the lease is the output ours to delete. A video made
        # ready meanwhile, or leased by a new worker, keeps its media.
        failed_event = video_failed(job.video_id, reason, jobId=job.job_id)
        if not self.catalogue.fail(job.video_id, reason, worker_id=self.worker_id, event=failed_event):
            try:
                status = self.catalogue.get(job.video_id).status
            except NotFound:
                log("warning", "fail() did not take: the video was deleted while it was transcoded")
                return self._purge_deleted(job, video, log)
            log("warning", "fail() did not take: the lease was lost", reason=reason, status=str(status))
            if status in (VideoStatus.QUEUED, VideoStatus.PROCESSING):
                return Outcome.RETRY  # a redelivery decides, under a lease of its own
            return Outcome.ALREADY_DONE
        log("warning", "job failed", reason=reason)
        metrics.add_metric(name="TranscodeJobsFailed", unit=MetricUnit.Count, value=1)
        # Never leave half a video behind: drop whatever was published progressively, at the origin and
        # in the CDN (its segments were playable, and are cached as immutable); the upload expires.
        # Through the outbox: an invalidation CloudFront refuses now is retried by the sweep.
        if clean_up_failed(self.catalogue, self.store, self.settings, video, invalidate=self.cdn is not None):
            OutboxSweep(self.catalogue, None, cdn=self.cdn).flush_quietly(subject=cdn_subject(job.video_id))
        # video.failed is in the outbox with the status; a failed publish is the sweep's to retry.
        self.relay.flush_quietly(video_id=job.video_id)
        return Outcome.FAILED

    def _deleted(self, job: TranscodeJob) -> bool:
        try:
            self.catalogue.get(job.video_id)
        except NotFound:
            return True
        return False

    def _purge_deleted(self, job: TranscodeJob, video: Video | None, log: Callable[..., None]) -> Outcome:
        """The video's row is gone: remove what this job (or an earlier one) made public, and the upload.

        The API deletes media before the row, but a job running meanwhile publishes after it.
        """
        uploads = {upload_key(self.settings, job.video_id)}
        if video is not None and video.video_key.startswith(self.settings.upload_prefix):
            uploads.add(video.video_key)
        try:
            removed = delete_outputs(self.store, self.settings, job.video_id)
            for key in sorted(uploads):
                self.store.delete(key)
        except Exception as exc:  # nothing to retry against: the row that named it is gone
            log("warning", "could not remove the media of a deleted video", error=describe(exc))
        else:
            log("info", "removed the media of a deleted video", outputObjects=removed)
        return Outcome.ALREADY_DONE

    # --- keeper: heartbeats, lease, cancellation ----------------------------------------------
    def _keeper(
        self,
        job: TranscodeJob,
        state: _JobState,
        cancel: threading.Event,
        stop: threading.Event,
        on_alive: Callable[[], None],
        log: Callable[..., None],
    ) -> LeaseKeeper:
        def renew() -> bool:
            with state.lock:
                progress, playable = state.progress, state.playable
            return self.catalogue.heartbeat(
                job.video_id,
                self.worker_id,
                lease_seconds=self.settings.lease_seconds,
                progress=progress,
                playable=playable,
            )

        def playable() -> bool:
            with state.lock:
                return state.playable

        def lost() -> None:
            state.lease_lost = True
            stop.set()

        def poll() -> None:
            if cancel.is_set():
                stop.set()
            with state.lock:
                due = state.deadline_at
            if due is not None and not stop.is_set() and time.monotonic() > due:
                state.deadline_passed = True
                stop.set()  # the encoder stops its pipeline cleanly, as on a cancel

        return LeaseKeeper(
            renew,
            every=self.heartbeat_seconds,
            on_lost=lost,
            on_alive=on_alive,
            on_error=lambda exc: log("warning", "heartbeat failed", error=describe(exc)),
            on_poll=poll,
            snapshot=playable,  # "playable" reaches the catalogue at once, not at the next beat
            name="job-keeper",
        )


DEAD_JOBS_WORKER = "dead-jobs"


def mark_dead_job(
    job: TranscodeJob,
    catalogue: VideoCatalogue,
    store: ObjectStore,
    events: EventPublisher,
    settings: Settings,
) -> bool:
    """A job that exhausted its deliveries (it reached the DLQ): fail its video, unless it is ready,
    failed, gone, or being transcoded right now under a live lease (a duplicate copy died).

    True when this call failed the video: cleaned up as every failed video is (``clean_up_failed``: its
    upload tagged to expire, its partial output removed, its CDN invalidation queued), ``video.failed``
    published and ``TranscodeJobsFailed`` counted under the transcoder's service dimension.
    """
    ids = {"videoId": job.video_id, "jobId": job.job_id}
    # Take the lease first: fail() by lease holder cannot race a worker that claims it meanwhile.
    claimed = catalogue.claim(job.video_id, DEAD_JOBS_WORKER, lease_seconds=60)
    if claimed is None:
        try:
            status = str(catalogue.get(job.video_id).status)
        except NotFound:
            status = "deleted"
        logger.info("dead job left alone: its video is not ours to fail", extra={**ids, "status": status})
        return False
    attempts = (claimed.attempts - 1) or settings.max_attempts  # the claim above counted as one
    reason = f"transcoding failed after {attempts} attempts"
    event = video_failed(job.video_id, reason, jobId=job.job_id)
    if not catalogue.fail(job.video_id, reason, worker_id=DEAD_JOBS_WORKER, event=event):
        logger.warning("dead job: fail() did not take", extra=ids)
        return False
    # Its CDN invalidation waits in the outbox for the outbox sweep, which holds the CDN.
    clean_up_failed(catalogue, store, settings, claimed)
    dead_job_metrics.add_metric(name="TranscodeJobsFailed", unit=MetricUnit.Count, value=1)
    OutboxSweep(catalogue, events, metrics=dead_job_metrics).flush_quietly(video_id=job.video_id)
    dead_job_metrics.flush_metrics()
    return True


__all__ = [
    "Outcome",
    "OutputInvalid",
    "OverLimit",
    "TranscodeService",
    "WorkDiskFull",
    "check_probe_limits",
    "mark_dead_job",
    "metrics",
    "transcode_deadline_seconds",
    "validate_hls",
    "work_disk_need",
]
