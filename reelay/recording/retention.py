"""A stream's ``retentionDays`` applied to its recordings, by the recording sweep (AWS: the scheduled
``lambdas/recording_sweep``; locally: the platform's ``recording-sweep`` worker).

A session that ended (or was finalized, or failed) longer ago than its stream's retention is removed:

1. its segments and chunk manifests in the store it recorded to (and the copies finalize made in the
   media store, for a per-stream store), and its MP4 exports;
2. its registered video, through the video delete path (``VideoService.delete``: outputs, catalogue
   row, CDN invalidation), so it disappears from listings like a deleted upload;
3. then the session row is marked ``expired`` (``recording.expired`` in the outbox). The row stays,
   so the stream's session list says what happened to it.

Media goes first: a sweep that fails half way leaves the session as it was, and the next sweep
finishes it (every deletion is idempotent). A session still recording or finalizing is never
touched. Streams without ``retentionDays`` keep their recordings.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from reelay.errors import NotFound
from reelay.observability import logger
from reelay.recording import layout
from reelay.recording.service import EXPORT_STATE_PREFIX


def expire_recordings(services: Any, *, now: datetime | None = None) -> list[str]:
    """Remove what retention says is due; returns the expired session ids. Failures are logged and
    left for the next sweep."""
    from reelay.recording.resolver import resolver_for

    catalogue = services.catalogue
    resolve = resolver_for(services)
    media = services.store
    expired: list[str] = []
    for session in catalogue.recording_sessions_past_retention(now):
        sid, stream_id = session.session_id, session.stream_id
        try:
            prefixes = (
                layout.session_prefix(stream_id, sid),
                layout.manifest_session_prefix(stream_id, sid),
            )
            try:
                store = resolve(session.store_ref, sid)
            except Exception as exc:  # a store nobody can open any more: its media is out of reach
                logger.warning(
                    "recording store not opened for retention; removing what the platform holds",
                    extra={"sessionId": sid, "error": str(exc)},
                )
                store = media
            for prefix in prefixes:
                store.delete_prefix(prefix)
                if store is not media:
                    media.delete_prefix(prefix)
            media.delete_prefix(f"{EXPORT_STATE_PREFIX}{sid}/")
            for root in (services.settings.output_prefix, services.settings.private_output_prefix):
                media.delete_prefix(layout.export_media_prefix(root, sid))
            if session.video_id:
                with contextlib.suppress(NotFound):
                    video = catalogue.get(session.video_id)
                    services.videos.delete(video.owner_id, video.video_id)
            if catalogue.expire_recording_session(sid):
                expired.append(sid)
        except Exception as exc:
            logger.error(
                "recording not expired; the next sweep retries", extra={"sessionId": sid, "error": str(exc)}
            )
    if expired:
        logger.info("recordings expired by retention", extra={"sessions": expired})
    return expired
