"""A private video's media is unreachable without a signature: it lives under its own prefix.

Public and unlisted videos' HLS output lives under ``outputs/{videoId}/``, which the playback CDN serves
unsigned. Private and unpublished videos' output lives under ``private-outputs/{videoId}/``, which it
serves only with a signature (reelay.playback); the unsigned path cannot reach it, whatever id a viewer
learnt or guessed. The local media endpoint draws the same line by prefix (local/media.py).

A video's objects follow its visibility. The transcoder writes into the prefix the video has when its
attempt starts; every change of visibility or of the unpublished flag records a ``media.relocate``
event in the outbox in the same transaction, and every finished transcode records one too. Acting on
one (``MediaRelocator.reconcile``) moves whatever sits under the other prefix to the one the video's
visibility calls for *now*, so events that race a transcode, or each other, converge on the latest
state. A move is copy then delete, per object, idempotent and safe to repeat: a retry finds what is
left. Once objects left the public prefix, the CDN drops that path (through the outbox, as any
invalidation).

While a video is queued or processing its worker rewrites its playlists, so a move leaves the playlists
(``*.m3u8``) where they are; the worker's own event at the end moves them. Until then a private video's
public playlists name segments that are no longer there.

What a move cannot rule out: two opposite switches within the second or so that one move's deletes
take, acted on by two processes at once, can delete an object from both prefixes. The move re-reads
the video before deleting, which narrows that window to the deletes themselves.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from reelay.errors import NotFound
from reelay.events import OutboxSweep, cdn_invalidation, cdn_subject, media_subject
from reelay.models import VideoStatus
from reelay.observability import logger
from reelay.ports import CdnInvalidator, ObjectStore, VideoCatalogue
from reelay.settings import Settings
from reelay.videos import delete_outputs, output_prefix

# Copies and deletes run this many at a time: a video has hundreds of segments, each a request.
MOVE_WORKERS = 8
# Objects copied, then deleted, per step of a move: a move cut short keeps what its steps did.
CHUNK = 200
# The API moves a video's media while the owner waits (API Gateway gives up after 29 s): what is left
# after this long is the outbox sweep's, once the event's lease has run out.
API_MOVE_SECONDS = 10.0


class MoveUnfinished(RuntimeError):
    """The move ran out of its time budget: what it moved stays moved, the rest waits for a retry."""


class MediaMoved(RuntimeError):
    """The video's visibility changed again while its media was being moved: the newer event moves it."""


class MediaRelocator:
    """Moves one video's media to the prefix its visibility calls for (the ``media.relocate`` action)."""

    def __init__(
        self,
        catalogue: VideoCatalogue,
        store: ObjectStore,
        settings: Settings,
        cdn: CdnInvalidator | None = None,
        *,
        workers: int = MOVE_WORKERS,
    ) -> None:
        self.catalogue = catalogue
        self.store = store
        self.settings = settings
        self.cdn = cdn  # None: nothing caches media (the local platform)
        self.workers = workers

    def reconcile(self, video_id: str, *, budget_seconds: float | None = None) -> int:
        """Move the video's objects from the other prefix to its own; how many moved. A deleted video's
        media is deleted wherever it is. Raises on a store or catalogue error (the event is retried).

        It moves ``CHUNK`` objects at a time, each chunk copied then deleted, so a run cut short (a
        Lambda's timeout) keeps its progress. Past ``budget_seconds`` it stops after a chunk and
        raises ``MoveUnfinished``: the event stays in the outbox, and the next run moves the rest."""
        try:
            video = self.catalogue.get(video_id)
        except NotFound:
            removed = delete_outputs(self.store, self.settings, video_id)
            if removed:
                logger.info(
                    "media of a deleted video removed", extra={"videoId": video_id, "removed": removed}
                )
            return 0
        deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
        private = video.owner_only
        source = output_prefix(self.settings, video_id, private=not private)
        target = output_prefix(self.settings, video_id, private=private)
        in_flight = video.status in (VideoStatus.QUEUED, VideoStatus.PROCESSING)
        keys = [
            info.key
            for info in self.store.list(source)
            if not (in_flight and info.key.endswith(".m3u8"))  # its worker still rewrites them
        ]
        if not keys:
            return 0
        moved = 0
        with ThreadPoolExecutor(max_workers=min(self.workers, len(keys)), thread_name_prefix="move") as pool:
            for start in range(0, len(keys), CHUNK):
                chunk = keys[start : start + CHUNK]
                copied = [k for k in pool.map(lambda k: self._copy(k, target + k[len(source) :]), chunk) if k]
                if self.catalogue.get(video_id).owner_only != private:
                    raise MediaMoved(f"video {video_id} changed visibility while its media moved")
                # Leaving the public prefix, its cached copies must go too; recorded before the deletes,
                # so a crash after them still drops them. (Cached copies under the private path answer
                # signed requests only: nothing to drop when a video turns public.)
                if self.cdn is not None and private and start == 0:
                    self.catalogue.record_event(cdn_invalidation(video_id, [f"/{source}*"]))
                list(pool.map(self.store.delete, copied))
                moved += len(copied)
                left = len(keys) - start - len(chunk)
                if left and deadline is not None and time.monotonic() > deadline:
                    self._drop_cached(video_id, private)
                    raise MoveUnfinished(f"moved {moved} of video {video_id}'s objects; {left} left")
        self._drop_cached(video_id, private)
        logger.info("media moved", extra={"videoId": video_id, "to": target, "objects": moved})
        return moved

    def _drop_cached(self, video_id: str, private: bool) -> None:
        if self.cdn is not None and private:
            OutboxSweep(self.catalogue, None, cdn=self.cdn).flush_quietly(subject=cdn_subject(video_id))

    def _copy(self, src: str, dst: str) -> str | None:
        try:
            self.store.copy(src, dst)
        except NotFound:  # moved or deleted meanwhile (another move, a delete): nothing to do
            return None
        return src


def move_media_now(
    catalogue: VideoCatalogue,
    store: ObjectStore,
    settings: Settings,
    cdn: CdnInvalidator | None,
    video_id: str,
    *,
    budget_seconds: float | None = None,
) -> None:
    """Act at once on the video's recorded ``media.relocate`` events; one that fails or runs out of
    ``budget_seconds`` stays in the outbox for the outbox sweep to finish."""
    relocator = MediaRelocator(catalogue, store, settings, cdn)

    def relocate(video: str) -> int:
        return relocator.reconcile(video, budget_seconds=budget_seconds)

    OutboxSweep(catalogue, None, relocate=relocate).flush_quietly(subject=media_subject(video_id))


__all__ = [
    "API_MOVE_SECONDS",
    "CHUNK",
    "MOVE_WORKERS",
    "MediaMoved",
    "MediaRelocator",
    "MoveUnfinished",
    "move_media_now",
]
