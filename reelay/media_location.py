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

One mover at a time per video: a move holds the catalogue's media-move lease on the video
(``claim_media_move``), and a mover that cannot get it raises ``MoveBusy``, leaving its event in the
outbox for a retry. Without it, two opposite switches acted on by two processes at once could lose
objects from both prefixes: one deleting the public copies the other had just copied back, the other
then deleting the private ones. The lease is fenced: before each step's deletes the mover renews it
(refused once it ran out and may have passed to another mover: ``MoveLeaseLost``, nothing deleted),
and deletes only within half a lease of that renewal, so a mover stalled past its lease never deletes
under the next one. When the visibility changes during a move, the mover goes round again toward the
new one, under the same lease.
"""

from __future__ import annotations

import time
import uuid
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
# The mover's lease on a video, renewed before each step's deletes; a step deletes within half of it.
MOVE_LEASE_SECONDS = 120
# Visibility changes a move follows under one lease before it leaves the rest to a retry.
MAX_ROUNDS = 3


class MoveUnfinished(RuntimeError):
    """The move ran out of its time budget: what it moved stays moved, the rest waits for a retry."""


class MediaMoved(RuntimeError):
    """The video's visibility kept changing while its media was being moved: a retry moves it."""


class MoveBusy(RuntimeError):
    """Another mover holds the video's lease: the event stays in the outbox and is retried."""


class MoveLeaseLost(RuntimeError):
    """The mover's lease ran out mid-move (it may be another's now): it stopped before deleting."""


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
        media is deleted wherever it is. Raises on a store or catalogue error (the event is retried),
        ``MoveBusy`` when another mover holds the video.

        It moves ``CHUNK`` objects at a time, each chunk copied then deleted, so a run cut short (a
        Lambda's timeout) keeps its progress. Past ``budget_seconds`` it stops after a chunk and
        raises ``MoveUnfinished``: the event stays in the outbox, and the next run moves the rest."""
        mover = f"mover-{uuid.uuid4()}"
        if not self.catalogue.claim_media_move(video_id, mover, MOVE_LEASE_SECONDS):
            raise MoveBusy(f"another mover is moving video {video_id}'s media")
        try:
            return self._reconcile(video_id, mover, budget_seconds)
        finally:
            try:
                self.catalogue.release_media_move(video_id, mover)
            except Exception as exc:  # it runs out by itself
                logger.warning("media move lease kept", extra={"videoId": video_id, "error": str(exc)})

    def _reconcile(self, video_id: str, mover: str, budget_seconds: float | None) -> int:
        deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
        moved = 0
        for _ in range(MAX_ROUNDS):
            try:
                video = self.catalogue.get(video_id)
            except NotFound:
                removed = delete_outputs(self.store, self.settings, video_id)
                if removed:
                    logger.info(
                        "media of a deleted video removed", extra={"videoId": video_id, "removed": removed}
                    )
                return moved
            private = video.owner_only
            in_flight = video.status in (VideoStatus.QUEUED, VideoStatus.PROCESSING)
            count, settled = self._move(video_id, mover, private, in_flight=in_flight, deadline=deadline)
            moved += count
            # Settled, unless it turned back after the step's last look (its deletes then took the
            # copies' sources: nothing lost, but the other way round now).
            if settled and self._owner_only(video_id) == private:
                return moved
        raise MediaMoved(f"video {video_id} kept changing visibility while its media moved")

    def _move(
        self, video_id: str, mover: str, private: bool, *, in_flight: bool, deadline: float | None
    ) -> tuple[int, bool]:
        """One round toward ``private``: how many objects moved, and False when the visibility changed
        meanwhile (the caller goes round again)."""
        source = output_prefix(self.settings, video_id, private=not private)
        target = output_prefix(self.settings, video_id, private=private)
        keys = [
            info.key
            for info in self.store.list(source)
            if not (in_flight and info.key.endswith(".m3u8"))  # its worker still rewrites them
        ]
        if not keys:
            return 0, True
        moved = 0
        with ThreadPoolExecutor(max_workers=min(self.workers, len(keys)), thread_name_prefix="move") as pool:
            for start in range(0, len(keys), CHUNK):
                chunk = keys[start : start + CHUNK]
                if start and not self.catalogue.renew_media_move(video_id, mover, MOVE_LEASE_SECONDS):
                    raise MoveLeaseLost(f"the lease on moving video {video_id}'s media ran out")
                copied = [k for k in pool.map(lambda k: self._copy(k, target + k[len(source) :]), chunk) if k]
                # The fence: deletes only under a lease renewed now, and only within half of it.
                if not self.catalogue.renew_media_move(video_id, mover, MOVE_LEASE_SECONDS):
                    raise MoveLeaseLost(f"the lease on moving video {video_id}'s media ran out")
                fence = time.monotonic() + MOVE_LEASE_SECONDS / 2
                if self._owner_only(video_id) != private:
                    # Turned back meanwhile: what was copied stays where it was too; the next round
                    # moves it the other way.
                    return moved, False
                # Leaving the public prefix, its cached copies must go too; recorded before the deletes,
                # so a crash after them still drops them. (Cached copies under the private path answer
                # signed requests only: nothing to drop when a video turns public.)
                if self.cdn is not None and private and start == 0:
                    self.catalogue.record_event(cdn_invalidation(video_id, [f"/{source}*"]))
                list(pool.map(self._delete, copied, [fence] * len(copied)))
                moved += len(copied)
                left = len(keys) - start - len(chunk)
                if left and deadline is not None and time.monotonic() > deadline:
                    self._drop_cached(video_id, private)
                    raise MoveUnfinished(f"moved {moved} of video {video_id}'s objects; {left} left")
        self._drop_cached(video_id, private)
        logger.info("media moved", extra={"videoId": video_id, "to": target, "objects": moved})
        return moved, True

    def _owner_only(self, video_id: str) -> bool | None:
        try:
            return self.catalogue.get(video_id).owner_only
        except NotFound:  # deleted meanwhile: the next round deletes its media
            return None

    def _delete(self, key: str, fence: float) -> None:
        if time.monotonic() > fence:  # stalled past half the lease: it may be another mover's by now
            raise MoveLeaseLost(f"a step's deletes outlived half the move's lease ({key!r} kept)")
        self.store.delete(key)

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
    "MOVE_LEASE_SECONDS",
    "MOVE_WORKERS",
    "MediaMoved",
    "MediaRelocator",
    "MoveBusy",
    "MoveLeaseLost",
    "MoveUnfinished",
    "move_media_now",
]
