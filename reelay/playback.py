"""Signed playback of private videos: one signature authorizes every playlist and segment under a
video's media prefix until it expires.

A presigned ``master.m3u8`` would not sign the segment URLs inside it (the HLS playback trap), so the
signature covers the prefix ``{base}/{videoId}/*``, and the player repeats the query it was given on
every request under that prefix (web/src/components/Player.tsx sets this up in hls.js). The query
travels with each request rather than as cookies because the API (API Gateway) and the media
(CloudFront) are different sites in AWS: the API cannot set a cookie the CDN would receive.

- In AWS: CloudFront signed URLs with a custom policy whose resource is the prefix wildcard
  (reelay.adapters.cloudfront_signing), served on CloudFront's signed path only.

The prefix is the private output prefix (``private-outputs/{videoId}/``): a private video's media
lives there, where the public unsigned path cannot reach it (reelay.media_location).
- Locally: this module's HMAC signer, checked by the gateway's media endpoint (local/media.py).

Public and unlisted videos are never signed: their media stays cacheable at the plain path.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlencode

from reelay.errors import ReelayError
from reelay.recording.layout import EXPORT_MEDIA_DIR

EXPIRES = "exp"
SIGNATURE = "sig"


class PlaybackUnavailable(ReelayError):
    """Private playback cannot be signed (the signing key is missing or unreadable): 503, not 500."""

    code = "playback_unavailable"
    status = 503


def signed_scope(rest: str) -> str:
    """What signs a private media key (given without the private output prefix): its video's id, or,
    for a private recording's MP4 export (``exports/{sessionId}/...``), its session's exports."""
    parts = rest.split("/", 2)
    if parts[0] == EXPORT_MEDIA_DIR and len(parts) == 3:
        return f"{parts[0]}/{parts[1]}"
    return parts[0]


def media_prefix(output_prefix: str, video_id: str) -> str:
    """The object-key prefix a video's signature covers (its HLS output)."""
    return f"{output_prefix}{video_id}/"


def _mac(key: bytes, prefix: str, expires: int) -> str:
    # "playback" keeps these signatures apart from the file store's upload signatures (same key).
    return hmac.new(key, f"playback\n{prefix}\n{expires}".encode(), hashlib.sha256).hexdigest()


class HmacPlaybackSigner:
    """The local platform's PlaybackSigner: ``exp`` (unix seconds) and ``sig`` (HMAC-SHA256)."""

    def __init__(
        self, key: str | None, *, base_url: str, output_prefix: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = key.encode() if key else None
        self.base_url = base_url.rstrip("/")
        self._output_prefix = output_prefix
        self._clock = clock

    def signed_query(self, video_id: str, expires_in: int) -> str:
        if not self._key:
            raise PlaybackUnavailable("private playback is not configured: no signing key")
        expires = int(self._clock()) + expires_in
        prefix = media_prefix(self._output_prefix, video_id)
        return urlencode({EXPIRES: expires, SIGNATURE: _mac(self._key, prefix, expires)})


def check_signed_access(
    key: str | None, prefix: str, media_key: str, args: Mapping[str, str], now: float | None = None
) -> str | None:
    """Why ``media_key`` may not be read with ``args`` (a query), or None when the signature holds.

    The signature must be for ``prefix``, ``media_key`` must lie under it, and it must not have expired.
    """
    if not key:
        return "private playback is not configured"
    if not media_key.startswith(prefix):
        return "the signature does not cover this media"
    expires, sig = args.get(EXPIRES, ""), args.get(SIGNATURE, "")
    if not expires or not sig:
        return "this video is private: its media needs a signed link"
    if not expires.isascii() or not expires.isdigit() or len(expires) > 12:
        return "the signed link is malformed"
    if int(expires) < (time.time() if now is None else now):
        return "the signed link has expired"
    if not hmac.compare_digest(_mac(key.encode(), prefix, int(expires)), sig.lower()):
        return "the signature is not valid"
    return None


__all__ = [
    "EXPIRES",
    "SIGNATURE",
    "HmacPlaybackSigner",
    "PlaybackUnavailable",
    "check_signed_access",
    "media_prefix",
    "signed_scope",
]
