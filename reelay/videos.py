"""The video domain behind the /videos routes: uploads, metadata, playback URLs and deletion."""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from reelay.errors import Conflict, Forbidden, InvalidInput, NotFound, describe
from reelay.events import OutboxSweep, cdn_invalidation, media_relocation
from reelay.models import ModerationAction, ModerationRecord, Video, VideoStatus, VideoVisibility
from reelay.observability import logger
from reelay.playback import PlaybackUnavailable
from reelay.ports import (
    CdnInvalidator,
    ModerationPage,
    ObjectStore,
    Page,
    PlaybackSigner,
    PresignedPart,
    VideoCatalogue,
)
from reelay.quotas import UploadQuota
from reelay.settings import Settings
from reelay.storage.url import MAX_PART_NUMBER, MIN_PART_BYTES

# How long a delete waits for a move of the video's media under way to let go of its lease.
DELETE_WAIT_SECONDS = 5.0

# S3's multipart rules, which every store keeps: parts of at least 5 MiB, at most 10,000 of them.
MAX_PARTS = MAX_PART_NUMBER


@dataclass(frozen=True)
class Viewer:
    """Who asks for a video: None for anonymous callers. Moderators see every video."""

    user_id: str
    email: str = ""
    moderator: bool = False


@dataclass(frozen=True)
class SingleUpload:
    """Upload with one presigned PUT; the client must send exactly these headers."""

    url: str
    headers: dict[str, str]
    expires_in: int
    method: str = "PUT"


@dataclass(frozen=True)
class MultipartUpload:
    """Upload in parts, then POST the part ETags to complete it."""

    upload_id: str
    part_size_bytes: int
    parts: list[PresignedPart]
    expires_in: int


UploadInstructions = SingleUpload | MultipartUpload

# Whitespace allowed around a content type: HTTP's optional whitespace (space and tab).
_OWS = " \t"
# Characters with a meaning in a pattern, in Python's re and ECMA-262 (JSON Schema's) alike.
_REGEX_SYNTAX = frozenset("^$\\.*+?()[]{}|")


def content_type_pattern(allowed: Sequence[str]) -> str:
    """The JSON Schema pattern of the content types ``_check_content_type`` accepts: one of ``allowed``
    in any (ASCII) case, optional whitespace around it, and any parameters after a ``;``."""

    def spelled(name: str) -> str:
        return "".join(
            f"[{c.lower()}{c.upper()}]"
            if c.isascii() and c.isalpha()
            else ("\\" + c if c in _REGEX_SYNTAX else c)
            for c in name
        )

    # The check compares the lowercased type: an entry with capitals (or not ASCII) never matches.
    names = [spelled(name) for name in allowed if name.isascii() and name == name.lower()]
    ows = r"[ \t]*"
    # $(?!\n): Python's $ (jsonschema's, schemathesis') also matches before a final line break.
    return rf"^{ows}(?:{'|'.join(names) or '(?!)'}){ows}(?:;[\s\S]*)?$(?!\n)"


def upload_size_range(settings: Settings) -> tuple[int, int]:
    """The sizes ``_check_size`` accepts, from 1 byte to the upload limit."""
    return 1, settings.max_upload_bytes


# Where a video's objects live in the media store: the upload, and the prefix of its HLS output.
def upload_key(settings: Settings, video_id: str) -> str:
    return f"{settings.upload_prefix}{video_id}"


# The tag a failed video's kept upload gets: the media bucket's lifecycle rule expires what carries it.
UPLOAD_STATE_TAG = "reelay-upload"
UPLOAD_FAILED = "failed"


def retire_upload(store: ObjectStore, video: Video) -> None:
    """Tag a failed video's upload so the store's lifecycle rule expires it. Best effort: a video
    without its upload (rejected, deleted) or a store that refuses is logged, never raised."""
    try:
        store.set_tags(video.video_key, {UPLOAD_STATE_TAG: UPLOAD_FAILED})
    except NotFound:
        return
    except Exception:
        logger.warning(
            "could not tag a failed video's upload for expiry",
            extra={"video_id": video.video_id, "key": video.video_key},
            exc_info=True,
        )


def output_prefix(settings: Settings, video_id: str, *, private: bool = False) -> str:
    """Where a video's HLS output lives: under the public output prefix, or, for a private or
    unpublished video, under the private one, which the unsigned playback path cannot reach."""
    # The trailing slash keeps a prefix delete of one video off another whose id starts the same.
    base = settings.private_output_prefix if private else settings.output_prefix
    return f"{base}{video_id}/"


def video_output_prefix(settings: Settings, video: Video) -> str:
    """The prefix ``video``'s media belongs under now (its visibility and unpublished flag decide)."""
    return output_prefix(settings, video.video_id, private=video.owner_only)


def output_prefixes(settings: Settings, video_id: str) -> tuple[str, str]:
    """Both places a video's media may be (public, private): a move may be under way."""
    return output_prefix(settings, video_id), output_prefix(settings, video_id, private=True)


def output_paths(settings: Settings, video_id: str) -> list[str]:
    """The CDN path patterns of both of a video's output prefixes."""
    return [f"/{prefix}*" for prefix in output_prefixes(settings, video_id)]


def delete_outputs(store: ObjectStore, settings: Settings, video_id: str) -> int:
    """Delete a video's media under both output prefixes; how many objects went."""
    return sum(store.delete_prefix(prefix) for prefix in output_prefixes(settings, video_id))


def clean_up_failed(
    catalogue: VideoCatalogue,
    store: ObjectStore,
    settings: Settings,
    video: Video,
    *,
    invalidate: bool = True,
) -> bool:
    """What every path that fails a video (the worker, the dead-jobs handler, the stuck sweep) does once
    the catalogue took the failure: tag its upload for the lifecycle rule to expire, remove its partial
    output under both prefixes, and, with ``invalidate``, record the CDN invalidation of that output in
    the outbox (its segments were playable, and are cached as immutable). Best effort: the failure is
    what matters, so nothing here raises.

    True when the invalidation was recorded: the caller may act on it at once (it holds a CDN);
    otherwise the outbox sweep, which does, acts on it.
    """
    ids = {"videoId": video.video_id}
    retire_upload(store, video)
    try:
        delete_outputs(store, settings, video.video_id)
    except Exception as exc:  # the failure itself matters more than the clean-up
        logger.warning("could not remove partial output", extra={**ids, "error": describe(exc)})
    if not invalidate:
        return False
    try:
        catalogue.record_event(cdn_invalidation(video.video_id, output_paths(settings, video.video_id)))
    except Exception as exc:  # the origin is clean; a stale edge copy expires with its cache
        logger.warning(
            "could not queue the failed video's CDN invalidation",
            extra={**ids, "error": describe(exc)},
        )
        return False
    return True


def part_lengths(size_bytes: int, part_size: int) -> list[tuple[int, int]]:
    """(part number, exact byte count) of each part: all ``part_size`` but a shorter last one."""
    count = math.ceil(size_bytes / part_size)
    return [(n, min(part_size, size_bytes - (n - 1) * part_size)) for n in range(1, count + 1)]


class VideoService:
    def __init__(
        self,
        catalogue: VideoCatalogue,
        store: ObjectStore,
        settings: Settings,
        cdn: CdnInvalidator | None = None,
        *,
        signer: PlaybackSigner | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.store = store
        self.settings = settings
        self.cdn = cdn  # None: nothing caches published media
        self.signer = signer  # None: private videos get no playback URL

    # --- URLs --------------------------------------------------------------------------------
    def playback_url(self, video: Video) -> str | None:
        # Served whole (playlists and segments) by CloudFront or the local gateway, never a presigned
        # master: a signed master.m3u8 does not sign the segment URLs inside it. A private video's
        # URL carries a signature for its whole prefix (reelay.playback), which the player repeats.
        if video.status == VideoStatus.READY or video.playable:
            return self._media_url(video, "master.m3u8")
        return None

    def thumbnail_url(self, video: Video) -> str | None:
        if video.status == VideoStatus.READY:
            return self._media_url(video, "poster.jpg")
        return None

    def _media_url(self, video: Video, name: str) -> str | None:
        if not video.owner_only:
            return f"{self.settings.playback_base_url.rstrip('/')}/{video.video_id}/{name}"
        if self.signer is None:
            return None
        try:
            query = self.signer.signed_query(video.video_id, self.settings.playback_url_expires_seconds)
        except PlaybackUnavailable as exc:  # the view still answers, without playback; the log says why
            logger.error(
                "private playback not signed", extra={"video_id": video.video_id, "error": exc.message}
            )
            return None
        return f"{self.signer.base_url}/{video.video_id}/{name}?{query}"

    # --- upload ------------------------------------------------------------------------------
    def create_upload(
        self,
        owner_id: str,
        email: str,
        display_name: str,
        description: str,
        content_type: str,
        size_bytes: int,
        file_name: str | None = None,
        visibility: VideoVisibility = VideoVisibility.PUBLIC,
    ) -> tuple[Video, UploadInstructions]:
        content_type = self._check_content_type(content_type)
        self._check_size(size_bytes)
        name = (display_name or "").strip() or (file_name or "").strip()
        if not name:
            raise InvalidInput("displayName must not be empty")
        video_id = uuid.uuid4().hex
        key = upload_key(self.settings, video_id)
        video = Video(
            video_id=video_id,
            video_key=key,
            display_name=name,
            description=description or "",
            owner_id=owner_id,
            email=email,
            content_type=content_type,
            size_bytes=size_bytes,
            visibility=VideoVisibility(visibility),
        )
        expires = self.settings.upload_url_expires_seconds
        # Checked by the catalogue as it writes the row, under a lock on the owner (race-safe).
        quota = UploadQuota.from_settings(self.settings)
        instructions: UploadInstructions
        if size_bytes < self.settings.multipart_threshold_bytes:
            # The declared size is signed into the URL, so no other size can be PUT with it; and it
            # only creates the object, so once an upload landed the URL cannot replace the original.
            url = self.store.presign_put(
                key,
                content_type=content_type,
                expires_in=expires,
                content_length=size_bytes,
                create_only=True,
            )
            headers = {"Content-Type": content_type, "If-None-Match": "*"}
            instructions = SingleUpload(url=url, headers=headers, expires_in=expires)
            video = self.catalogue.create(video, quota=quota)
        else:
            part_size = self.part_size(size_bytes)
            upload_id = self.store.create_multipart(key, content_type=content_type)
            try:
                # Each part URL binds its exact size, so no part can carry more than was declared.
                parts = [
                    PresignedPart(
                        n,
                        self.store.presign_part(key, upload_id, n, expires_in=expires, content_length=length),
                    )
                    for n, length in part_lengths(size_bytes, part_size)
                ]
                video = self.catalogue.create(video, quota=quota)
            except Exception:
                # No catalogue row means nobody could ever complete it: do not leave parts billed.
                self.store.abort_multipart(key, upload_id)
                raise
            instructions = MultipartUpload(
                upload_id=upload_id, part_size_bytes=part_size, parts=parts, expires_in=expires
            )
        logger.info(
            "upload created",
            extra={
                "video_id": video_id,
                "size_bytes": size_bytes,
                "multipart": isinstance(instructions, MultipartUpload),
            },
        )
        return video, instructions

    def part_size(self, size_bytes: int) -> int:
        part = max(self.settings.multipart_part_bytes, MIN_PART_BYTES)
        return max(part, math.ceil(size_bytes / MAX_PARTS))

    def complete_multipart(
        self, owner_id: str, video_id: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> Video:
        video = self.owned(owner_id, video_id)
        if video.status != VideoStatus.AWAITING_UPLOAD:
            raise Conflict(f"video {video_id} is {video.status.value}, not awaiting an upload")
        if not upload_id:
            raise InvalidInput("uploadId must not be empty")
        if not parts:
            raise InvalidInput("parts must list at least one part")
        numbers = [n for n, _ in parts]
        if len(set(numbers)) != len(numbers):
            raise InvalidInput("parts lists the same partNumber more than once")
        if any(not 1 <= n <= MAX_PARTS for n in numbers):
            raise InvalidInput(f"partNumber must be from 1 to {MAX_PARTS}")
        if any(not etag for _, etag in parts):
            raise InvalidInput("every part needs its etag")
        self.store.complete_multipart(video.video_key, upload_id, list(parts))
        # The object-created notification may already have moved the video on (queued, or failed
        # for a wrong size): answer with the row as it is now.
        return self.catalogue.get(video_id)

    def _check_content_type(self, content_type: str) -> str:
        # The rule content_type_pattern states in the OpenAPI document: keep the two together.
        head = (content_type or "").split(";", 1)[0].strip(_OWS)
        normalised = head.lower() if head.isascii() else head  # no KELVIN SIGN for k
        allowed = self.settings.allowed_content_types
        if normalised not in allowed:
            raise InvalidInput(
                f"contentType {content_type!r} is not supported; use one of {', '.join(allowed)}"
            )
        return normalised

    def _check_size(self, size_bytes: int) -> None:
        # The range upload_size_range states in the OpenAPI document.
        least, limit = upload_size_range(self.settings)
        if isinstance(size_bytes, bool) or not isinstance(size_bytes, int) or size_bytes < least:
            raise InvalidInput(f"sizeBytes must be a whole number from {least} to {limit} (the upload limit)")
        if size_bytes > limit:
            raise InvalidInput(f"sizeBytes {size_bytes} is over the upload limit of {limit} bytes")

    # --- reading -----------------------------------------------------------------------------
    def get(self, video_id: str) -> Video:
        return self.catalogue.get(video_id)

    def view(self, video_id: str, viewer: Viewer | None = None) -> Video:
        """The video as ``viewer`` may see it. Its owner and moderators see it whatever its state;
        anyone else sees it only once it is ready and not private or unpublished. Otherwise NotFound,
        the same answer as for an id that does not exist, so a private video's existence is not told."""
        video = self.catalogue.get(video_id)
        if viewer is not None and (viewer.moderator or viewer.user_id == video.owner_id):
            return video
        if video.owner_only or video.status != VideoStatus.READY:
            raise NotFound(f"video {video_id} not found")
        return video

    def list_ready(self, limit: int, cursor: str | None = None) -> Page:
        return self.catalogue.list_ready(limit=limit, cursor=cursor)

    def list_mine(self, owner_id: str, limit: int, cursor: str | None = None) -> Page:
        return self.catalogue.list_by_owner(owner_id, limit=limit, cursor=cursor)

    def owned(self, owner_id: str, video_id: str) -> Video:
        """The video, if the caller owns it: NotFound for unknown ids, Forbidden for others' videos."""
        video = self.catalogue.get(video_id)
        if video.owner_id != owner_id:
            raise Forbidden(f"video {video_id} belongs to another user")
        return video

    # --- changing ----------------------------------------------------------------------------
    def set_visibility(self, owner_id: str, video_id: str, visibility: VideoVisibility) -> Video:
        self.owned(owner_id, video_id)
        # The move of its media to the prefix the new visibility calls for is recorded with the
        # change, then made at once; the outbox sweep retries it (reelay.media_location).
        video = self.catalogue.set_visibility(
            video_id, VideoVisibility(visibility), event=media_relocation(video_id)
        )
        self._move_media(video_id)
        logger.info("visibility changed", extra={"video_id": video_id, "visibility": video.visibility.value})
        return video

    def update_metadata(
        self, owner_id: str, video_id: str, display_name: str | None = None, description: str | None = None
    ) -> Video:
        if display_name is None and description is None:
            raise InvalidInput("give displayName, description or both")
        if display_name is not None and not display_name.strip():
            raise InvalidInput("displayName must not be empty")
        self.owned(owner_id, video_id)
        return self.catalogue.update_metadata(
            video_id,
            display_name=display_name.strip() if display_name is not None else None,
            description=description,
        )

    def delete(self, owner_id: str, video_id: str) -> Video:
        """Media first, then the row: if media deletion fails the row stays and the call can be retried."""
        return self._remove(self.owned(owner_id, video_id))

    def _remove(self, video: Video) -> Video:
        video_id = video.video_id
        # Under the video's media-move lease (reelay.media_location): a move's copies landing after
        # the deletes would leave stray objects. A mover that comes after finds no video, and deletes
        # what it finds under both prefixes.
        with self._move_lease(video_id):
            with contextlib.suppress(NotFound):  # already gone is what we wanted
                self.store.delete(video.video_key)
            # Both prefixes: a move between them may have been under way.
            removed = delete_outputs(self.store, self.settings, video_id)
            self.catalogue.delete(video_id)
        # Segments are cached as immutable for a year: without this the CDN keeps serving them.
        self._drop_from_cdn(video_id)
        logger.info("video deleted", extra={"video_id": video_id, "output_objects": removed})
        return video

    @contextlib.contextmanager
    def _move_lease(self, video_id: str) -> Iterator[None]:
        """Hold the video's media-move lease: wait for a move under way to end (its steps are short),
        or answer 409 when it does not end in ``DELETE_WAIT_SECONDS``."""
        from reelay.media_location import MOVE_LEASE_SECONDS

        holder = f"delete-{uuid.uuid4()}"
        deadline = time.monotonic() + DELETE_WAIT_SECONDS
        while not self.catalogue.claim_media_move(video_id, holder, MOVE_LEASE_SECONDS):
            if time.monotonic() > deadline:
                raise Conflict(f"video {video_id}'s media is being moved; try deleting it again shortly")
            time.sleep(0.1)
        try:
            yield
        finally:
            try:
                self.catalogue.release_media_move(video_id, holder)
            except Exception as exc:  # it runs out by itself
                logger.warning("media move lease kept", extra={"video_id": video_id, "error": describe(exc)})

    def _drop_from_cdn(self, video_id: str) -> None:
        """Invalidate the video's outputs through the outbox: recorded, then tried at once; a failed
        invalidation stays in the outbox and the outbox sweep tries it again (reelay.events)."""
        if self.cdn is None:
            return
        event = cdn_invalidation(video_id, output_paths(self.settings, video_id))
        self.catalogue.record_event(event)
        OutboxSweep(self.catalogue, None, cdn=self.cdn).flush_quietly(subject=event.subject)

    def _move_media(self, video_id: str) -> None:
        """Act on the video's recorded ``media.relocate`` now; a failure is the outbox sweep's to retry."""
        from reelay.media_location import API_MOVE_SECONDS, move_media_now

        move_media_now(
            self.catalogue, self.store, self.settings, self.cdn, video_id, budget_seconds=API_MOVE_SECONDS
        )

    # --- moderation --------------------------------------------------------------------------
    def unpublish(self, moderator: Viewer, video_id: str, reason: str, *, unpublished: bool = True) -> Video:
        """Set (or lift) a video's unpublished flag, with an audit record in the same transaction."""
        reason = self._moderation_reason(reason)
        video = self.catalogue.get(video_id)
        action = ModerationAction.UNPUBLISH if unpublished else ModerationAction.REPUBLISH
        self.catalogue.moderate(
            self._record(moderator, video, action, reason),
            unpublished=unpublished,
            event=media_relocation(video_id),
        )
        self._move_media(video_id)  # unpublished media is private media: off the public prefix
        logger.info("video moderated", extra={"video_id": video_id, "action": action.value})
        return self.catalogue.get(video_id)

    def moderate_delete(self, moderator: Viewer, video_id: str, reason: str) -> Video:
        """Delete any video; the audit record is written first, so a deletion is never unrecorded."""
        reason = self._moderation_reason(reason)
        video = self.catalogue.get(video_id)
        self.catalogue.moderate(self._record(moderator, video, ModerationAction.DELETE, reason))
        return self._remove(video)

    def moderation_log(self, limit: int, cursor: str | None = None) -> ModerationPage:
        return self.catalogue.list_moderation(limit=limit, cursor=cursor)

    @staticmethod
    def _moderation_reason(reason: str | None) -> str:
        text = (reason or "").strip()
        if not text:
            raise InvalidInput("reason must say why (it goes in the moderation audit log)")
        return text

    @staticmethod
    def _record(moderator: Viewer, video: Video, action: ModerationAction, reason: str) -> ModerationRecord:
        if not moderator.moderator:
            raise Forbidden("only moderators moderate videos")
        return ModerationRecord(
            moderator_id=moderator.user_id,
            moderator_email=moderator.email,
            action=action,
            video_id=video.video_id,
            owner_id=video.owner_id,
            reason=reason,
        )
