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

A recording's video has more media than its output prefix (``media_places``): its segments stay where
the recorder wrote them, ``recordings/{streamId}/{sessionId}/``, and its playlists point there; its MP4
exports live under ``outputs/exports/{sessionId}/``. A private recording's segments move with it, to
``private-outputs/{videoId}/recordings/{streamId}/{sessionId}/`` (inside the video's own prefix, so
the one signature of its prefix covers every segment), its exports to
``private-outputs/exports/{sessionId}/``, and its playlists are rewritten on the way (not copied) so
their segment URIs name where the segments now are. Segments move first, playlists last.
"""

from __future__ import annotations

import posixpath
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from reelay.errors import NotFound
from reelay.events import OutboxSweep, cdn_invalidation, cdn_subject, media_subject
from reelay.models import Video, VideoSource, VideoStatus
from reelay.observability import logger
from reelay.ports import CdnInvalidator, ObjectStore, VideoCatalogue
from reelay.recording import layout
from reelay.recording.steps import PLAYLIST_CACHE, PLAYLIST_TYPE
from reelay.settings import Settings
from reelay.videos import delete_outputs, output_prefixes

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


# (public prefix, private prefix): one part of a video's media and its two places.
Place = tuple[str, str]


def recorded_session(video: Video) -> tuple[str, str] | None:
    """(streamId, sessionId) of a recording's video (its videoKey is the session's prefix), else None."""
    if video.source != VideoSource.RECORDING:
        return None
    parts = video.video_key.split("/")
    if len(parts) != 4 or f"{parts[0]}/" != layout.ROOT or parts[3]:
        return None
    try:
        layout.session_prefix(parts[1], parts[2])
    except ValueError:
        return None
    return parts[1], parts[2]


def media_places(settings: Settings, video: Video) -> list[Place]:
    """Every part of ``video``'s media as (public prefix, private prefix), the part its playlists
    point into first: the output prefixes, and a recording's segments and exports."""
    public, private = output_prefixes(settings, video.video_id)
    session = recorded_session(video)
    if session is None:
        return [(public, private)]
    segments = layout.session_prefix(*session)
    return [
        (segments, f"{private}{segments}"),
        (
            layout.export_media_prefix(settings.output_prefix, session[1]),
            layout.export_media_prefix(settings.private_output_prefix, session[1]),
        ),
        (public, private),
    ]


def rewrite_playlist(body: str, src_key: str, dst_key: str, relocate: Callable[[str], str]) -> str:
    """A playlist moved from ``src_key`` to ``dst_key``, each relative URI rewritten to name where what
    it named is moved to (``relocate``: a store key -> its new key). Absolute URIs stay as they are."""
    src_dir, dst_dir = posixpath.dirname(src_key), posixpath.dirname(dst_key)
    lines = []
    for line in body.splitlines():
        uri = line.strip()
        if uri and not uri.startswith("#") and "://" not in uri and not uri.startswith("/"):
            key = posixpath.normpath(posixpath.join(src_dir, uri))
            line = posixpath.relpath(relocate(key), dst_dir)
        lines.append(line)
    return "\n".join(lines) + "\n"


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
            places = media_places(self.settings, video)
            count, settled = self._move(
                video_id, mover, private, places, in_flight=in_flight, deadline=deadline
            )
            moved += count
            # Settled, unless it turned back after the step's last look (its deletes then took the
            # copies' sources: nothing lost, but the other way round now).
            if settled and self._owner_only(video_id) == private:
                return moved
        raise MediaMoved(f"video {video_id} kept changing visibility while its media moved")

    def _plan(self, places: list[Place], private: bool, *, in_flight: bool) -> list[tuple[str, str]]:
        """(source key, target key) of every object to move toward ``private``: each part's in the
        order of ``places``; a key under a part listed before it is that part's (a private recording's
        segments lie inside its private output prefix)."""
        routes = _routes(places, private)
        plan: list[tuple[str, str]] = []
        for n, (source, target) in enumerate(routes):
            earlier = [src for src, _ in routes[:n] if src.startswith(source)]
            plan.extend(
                (info.key, target + info.key[len(source) :])
                for info in self.store.list(source)
                if not any(info.key.startswith(src) for src in earlier)
                and not (in_flight and info.key.endswith(".m3u8"))  # its worker still rewrites them
            )
        return plan

    def _move(
        self,
        video_id: str,
        mover: str,
        private: bool,
        places: list[Place],
        *,
        in_flight: bool,
        deadline: float | None,
    ) -> tuple[int, bool]:
        """One round toward ``private``: how many objects moved, and False when the visibility changed
        meanwhile (the caller goes round again)."""
        moves = self._plan(places, private, in_flight=in_flight)
        if not moves:
            return 0, True
        # A recording's playlists name segments outside its output prefix: they are rewritten.
        rewriter = _relocator(places, private) if len(places) > 1 else None
        sources = sorted({source for source, _ in _routes(places, private)})
        moved = 0
        with ThreadPoolExecutor(max_workers=min(self.workers, len(moves)), thread_name_prefix="move") as pool:
            for start in range(0, len(moves), CHUNK):
                chunk = moves[start : start + CHUNK]
                if start and not self.catalogue.renew_media_move(video_id, mover, MOVE_LEASE_SECONDS):
                    raise MoveLeaseLost(f"the lease on moving video {video_id}'s media ran out")
                copied = [k for k in pool.map(lambda m: self._copy(m[0], m[1], rewriter), chunk) if k]
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
                    paths = [f"/{source}*" for source in sources]
                    self.catalogue.record_event(cdn_invalidation(video_id, paths))
                list(pool.map(self._delete, copied, [fence] * len(copied)))
                moved += len(copied)
                left = len(moves) - start - len(chunk)
                if left and deadline is not None and time.monotonic() > deadline:
                    self._drop_cached(video_id, private)
                    raise MoveUnfinished(f"moved {moved} of video {video_id}'s objects; {left} left")
        self._drop_cached(video_id, private)
        target = output_prefixes(self.settings, video_id)[1 if private else 0]
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

    def _copy(self, src: str, dst: str, relocate: Callable[[str], str] | None) -> str | None:
        try:
            if relocate is not None and src.endswith(".m3u8"):
                body = rewrite_playlist(self.store.get_bytes(src).decode(), src, dst, relocate)
                self.store.put_bytes(
                    dst, body.encode(), content_type=PLAYLIST_TYPE, cache_control=PLAYLIST_CACHE
                )
            else:
                self.store.copy(src, dst)
        except NotFound:  # moved or deleted meanwhile (another move, a delete): nothing to do
            return None
        return src


def _routes(places: list[Place], private: bool) -> list[tuple[str, str]]:
    """(source prefix, target prefix) of each part of the media, for a move toward ``private``."""
    return [(pub, priv) if private else (priv, pub) for pub, priv in places]


def _relocator(places: list[Place], private: bool) -> Callable[[str], str]:
    """A key -> where a move toward ``private`` puts it (the first part it lies under decides)."""
    routes = _routes(places, private)

    def relocate(key: str) -> str:
        for source, target in routes:
            if key.startswith(source):
                return target + key[len(source) :]
        return key

    return relocate


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
    "media_places",
    "move_media_now",
    "recorded_session",
    "rewrite_playlist",
]
