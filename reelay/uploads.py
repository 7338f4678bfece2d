"""What happens when an upload lands in the object store: check it, queue it for transcoding."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import unquote_plus

from reelay.errors import NotFound
from reelay.events import OutboxSweep, video_failed
from reelay.models import TranscodeJob, Video, VideoStatus, utcnow
from reelay.observability import logger
from reelay.ports import EventPublisher, JobQueue, ObjectStore, VideoCatalogue
from reelay.settings import Settings
from reelay.videos import upload_key

# A notification for a video queued at least this long ago, and never claimed, sends its job again:
# Lambda retries a failed invocation after a minute, then two.
RESEND_AFTER = timedelta(seconds=30)


class UploadOutcome(StrEnum):
    QUEUED = "queued"
    DUPLICATE = "duplicate"  # the video was already queued, processing or done
    REJECTED = "rejected"  # empty, oversize or not the declared size: failed, the object deleted
    REFUSED = "refused"  # an upload onto a failed video: not queued again, the object deleted
    IGNORED = "ignored"  # not an upload key
    UNKNOWN = "unknown"  # an upload key with no catalogue row (deleted, or never created): deleted


class UploadEventService:
    def __init__(
        self,
        catalogue: VideoCatalogue,
        store: ObjectStore,
        queue: JobQueue,
        events: EventPublisher,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.catalogue = catalogue
        self.store = store
        self.queue = queue
        self.events = events
        self.settings = settings
        self.clock = clock  # the catalogue's time (naive UTC), to tell a retried notification

    def video_id_for(self, key: str) -> str | None:
        """The video id of an upload key, or None. Keys arrive URL-encoded from S3 (`+`, %xx).

        The store may sit under a bucket prefix, so `{anything}/uploads/{id}` counts as well.
        """
        key = unquote_plus(key)
        head, sep, video_id = key.rpartition(self.settings.upload_prefix)
        if not sep or (head and not head.endswith("/")) or not video_id or "/" in video_id:
            return None
        return video_id

    def handle_object_created(self, key: str, size: int) -> UploadOutcome:
        video_id = self.video_id_for(key)
        if video_id is None:
            logger.info("object is not an upload; ignored", extra={"key": key})
            return UploadOutcome.IGNORED
        try:
            video = self.catalogue.get(video_id)
        except NotFound:
            logger.warning(
                "upload for an unknown video; deleting it", extra={"key": key, "video_id": video_id}
            )
            # Nobody can ever transcode or delete it through the API: do not keep paying for it.
            self._discard(upload_key(self.settings, video_id), video_id)
            return UploadOutcome.UNKNOWN
        if video.status == VideoStatus.FAILED:
            # A failed video is never run again by a new upload (its attempts stay spent): the
            # object is one nobody will use.
            logger.warning("upload onto a failed video; not queued", extra={"video_id": video_id})
            self._discard(video.video_key, video_id)
            return UploadOutcome.REFUSED
        if (
            video.status == VideoStatus.QUEUED
            and video.attempts == 0
            and self.clock() - video.updated_at >= RESEND_AFTER
        ):
            # Queued a while ago and never claimed: its job may never have gone out (a send failed, and
            # this is Lambda's retry of the notification, a minute or more later). Send it again: a
            # second message for a queued video is harmless, as workers lease the video and drop a
            # duplicate job. (S3's own duplicate notifications come together, and are not re-sent.)
            return self._send(video, video.size_bytes or size, resent=True)
        if video.status != VideoStatus.AWAITING_UPLOAD:
            logger.info(
                "duplicate upload notification", extra={"video_id": video_id, "status": video.status.value}
            )
            return UploadOutcome.DUPLICATE

        info = self.store.head(video.video_key)
        content_type = (info.content_type if info else None) or video.content_type
        if info is not None:
            size = info.size  # the object as it is now beats an older notification
        limit = self.settings.max_upload_bytes
        reason = None
        if size <= 0:
            reason = "the uploaded file is empty (0 bytes)"
        elif size > limit:
            reason = f"the uploaded file is {size} bytes, over the upload limit of {limit} bytes"
        elif video.size_bytes is not None and size != video.size_bytes:
            # A presigned PUT binds the size, but a multipart upload can still add up to another.
            reason = (
                f"the uploaded file is {size} bytes, but the upload was declared as {video.size_bytes} "
                "bytes; upload the file again with its exact size"
            )
        if reason is not None:
            event = video_failed(video_id, reason, ownerId=video.owner_id)
            failed = self.catalogue.fail(video_id, reason, event=event)
            self._discard(video.video_key, video_id)
            if failed:  # video.failed is in the outbox with the status; a failed publish is the sweep's
                OutboxSweep(self.catalogue, self.events).flush_quietly(video_id=video_id)
            logger.warning("upload rejected", extra={"video_id": video_id, "reason": reason})
            return UploadOutcome.REJECTED

        if not self.catalogue.mark_uploaded(video_id, size_bytes=size, content_type=content_type):
            logger.info("upload already queued", extra={"video_id": video_id})
            return UploadOutcome.DUPLICATE
        return self._send(video, size)

    def _send(self, video: Video, size: int, *, resent: bool = False) -> UploadOutcome:
        """Send the video's job. A send that fails leaves the video queued and raises: the retried
        notification sends it again, and once Lambda's retries are spent the stuck sweep sees a queued
        video past its deadline and re-sends it (reelay.stuck). It is never left awaiting an upload
        that landed, where nothing would look for it."""
        job = TranscodeJob.for_video(video)
        self.queue.send(job)
        logger.info(
            "transcode queued",
            extra={"video_id": video.video_id, "job_id": job.job_id, "size": size, "resent": resent},
        )
        return UploadOutcome.QUEUED

    def _discard(self, store_key: str, video_id: str) -> None:
        """Delete an upload nobody will use. Only under the upload prefix; a failure is logged, not raised."""
        if not store_key.startswith(self.settings.upload_prefix):
            logger.warning("not deleting an object outside the upload prefix", extra={"key": store_key})
            return
        try:
            self.store.delete(store_key)
        except Exception:
            logger.exception(
                "could not delete a discarded upload", extra={"key": store_key, "video_id": video_id}
            )
            return
        logger.info("discarded upload deleted", extra={"key": store_key, "video_id": video_id})
