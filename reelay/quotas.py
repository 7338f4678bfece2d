"""Per-user upload quotas: videos in flight, bytes uploaded per day, total stored bytes.

Both catalogues enforce them as they create a video, under a lock on the owner (MySQL: the owner's
``upload_usage`` row of the day, ``SELECT ... FOR UPDATE``; the memory catalogue: its lock), so two
uploads started at once cannot both squeeze under a limit. The rules live here, once.
"""

from __future__ import annotations

from dataclasses import dataclass

from reelay.errors import QuotaExceeded
from reelay.settings import Settings

# The error codes of a 429, one per quota, so a client can tell which limit it hit.
VIDEOS_IN_FLIGHT = "quota_videos_in_flight"
UPLOAD_BYTES_PER_DAY = "quota_upload_bytes_per_day"
STORED_BYTES = "quota_stored_bytes"


@dataclass(frozen=True)
class UploadQuota:
    """The limits of one user; 0 turns a limit off."""

    videos_in_flight: int
    upload_bytes_per_day: int
    stored_bytes: int
    # An upload not made within this many seconds of its creation can no longer be made (its URLs
    # expired), so a video awaiting it stops counting as in flight.
    pending_upload_seconds: int

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadQuota:
        return cls(
            videos_in_flight=settings.quota_videos_in_flight,
            upload_bytes_per_day=settings.quota_upload_bytes_per_day,
            stored_bytes=settings.quota_stored_bytes,
            pending_upload_seconds=settings.upload_url_expires_seconds,
        )


@dataclass(frozen=True)
class OwnerUsage:
    """What an owner uses now, as the catalogue counts it under its lock."""

    videos_in_flight: int  # queued, processing, or awaiting an upload that can still be made
    uploaded_today: int  # bytes declared by the uploads created today (UTC), deleted videos included
    stored_bytes: int  # bytes of every video that is not failed (awaiting ones are reserved)


def check_quota(quota: UploadQuota, usage: OwnerUsage, size_bytes: int) -> None:
    """Raise QuotaExceeded, naming the limit, when one more upload of ``size_bytes`` breaks a quota."""
    size = size_bytes or 0
    if quota.videos_in_flight and usage.videos_in_flight >= quota.videos_in_flight:
        raise QuotaExceeded(
            VIDEOS_IN_FLIGHT,
            f"you already have {usage.videos_in_flight} videos in flight (awaiting upload, queued or "
            f"processing); the quota of videos in flight is {quota.videos_in_flight}. Wait for one to "
            "finish, or delete one, then upload again",
        )
    if quota.upload_bytes_per_day and usage.uploaded_today + size > quota.upload_bytes_per_day:
        raise QuotaExceeded(
            UPLOAD_BYTES_PER_DAY,
            f"this upload of {size} bytes would bring today's uploads to {usage.uploaded_today + size} "
            f"bytes, over the quota of {quota.upload_bytes_per_day} bytes uploaded per day (UTC); "
            "try again tomorrow",
        )
    if quota.stored_bytes and usage.stored_bytes + size > quota.stored_bytes:
        raise QuotaExceeded(
            STORED_BYTES,
            f"this upload of {size} bytes would bring your stored videos to {usage.stored_bytes + size} "
            f"bytes, over the storage quota of {quota.stored_bytes} bytes; delete videos to make room",
        )


__all__ = [
    "STORED_BYTES",
    "UPLOAD_BYTES_PER_DAY",
    "VIDEOS_IN_FLIGHT",
    "OwnerUsage",
    "UploadQuota",
    "check_quota",
]
