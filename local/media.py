"""``/media/<key>``: what S3 (presigned PUTs) and CloudFront (playback) do in AWS.

Uploads are private: only keys under the output prefixes (and recordings' segments) can be read. Reads
stream the file store's own file, so werkzeug can answer Range requests the way hls.js expects.

As CloudFront's two paths in AWS, the line is drawn by prefix, not by asking the catalogue: media under
the output prefix (public and unlisted videos) is served to anyone; media under the private output
prefix (private and unpublished videos, reelay.media_location) only with a signed query for the
video's prefix that has not expired (reelay.playback); a private recording's segments lie inside its
video's prefix, and its MP4 exports sign their session's exports prefix. A video that turns private
has its media moved off the public prefix, so its old unsigned URLs find nothing, here as behind
CloudFront.
"""

from __future__ import annotations

import logging
import mimetypes
from pathlib import Path
from typing import Any

from werkzeug.exceptions import ClientDisconnected
from werkzeug.utils import send_file
from werkzeug.wrappers import Request, Response

from infra.constants import HLS_CONTENT_TYPES
from local.gateway import CORS_HEADERS, error
from reelay.errors import ReelayError
from reelay.playback import check_signed_access, media_prefix, signed_scope

log = logging.getLogger(__name__)

# The types CloudFront forces in AWS (one table, so they cannot drift), plus a few common ones.
CONTENT_TYPES = {
    **{f".{extension}": mime for extension, mime in HLS_CONTENT_TYPES.items()},
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".json": "application/json",
}


def content_type_for(key: str) -> str:
    suffix = Path(key).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(key)[0] or "application/octet-stream"


def _recording_segment(key: str) -> bool:
    """A recording's segments are readable (its VOD playlists point at them); its manifests are not."""
    return (
        key.startswith("recordings/") and not key.startswith("recordings/_manifests/") and key.endswith(".ts")
    )


class MediaEndpoint:
    def __init__(
        self,
        *,
        output_prefix: str,
        private_output_prefix: str = "private-outputs/",  # Settings.private_output_prefix's default
        store: Any = None,
        signing_key: str | None = None,
    ) -> None:
        self._output_prefix = output_prefix
        self._private_prefix = private_output_prefix
        self.store = store  # the file store; set once services exist
        self.signing_key = signing_key  # the playback signatures' key (the file store's)

    def handle(self, request: Request, key: str) -> Response:
        if request.method == "OPTIONS":
            return Response(status=204, headers=CORS_HEADERS)
        if not key or key.startswith("/") or any(part in ("", ".", "..") for part in key.split("/")):
            return error(400, "invalid_key", "That is not a valid media key.")
        if request.method in ("GET", "HEAD"):
            return self._read(request, key)
        if request.method == "PUT":
            return self._upload(request, key)
        return error(405, "method_not_allowed", f"{request.method} is not allowed on media.")

    def _read(self, request: Request, key: str) -> Response:
        private = key.startswith(self._private_prefix)
        if not key.startswith(self._output_prefix) and not private and not _recording_segment(key):
            # Same answer as a private S3 object behind CloudFront: nothing to see here.
            return error(403, "forbidden", "Only published media can be read.")
        if self.store is None:
            return error(503, "not_ready", "The media store is not ready yet.")
        if private:
            prefix = media_prefix(self._private_prefix, signed_scope(key[len(self._private_prefix) :]))
            refused = check_signed_access(self.signing_key, prefix, key, request.args)
            if refused is not None:
                return error(403, "forbidden", f"{refused[0].upper()}{refused[1:]}.")
        try:
            path = self.store.local_path(key)
        except ReelayError as e:
            return error(e.status, e.code, e.message)
        response = send_file(
            path, request.environ, mimetype=content_type_for(key), conditional=True, max_age=None
        )
        # Playlists change while a video is still transcoding; segments never change. A private
        # video's media is for one viewer: no shared cache may keep it.
        cache = "no-cache" if key.endswith(".m3u8") else "max-age=86400"
        response.headers["Cache-Control"] = f"private, {cache}" if private else cache
        response.headers.update(CORS_HEADERS)
        return response

    def _upload(self, request: Request, key: str) -> Response:
        if self.store is None:
            return error(503, "not_ready", "The media store is not ready yet.")
        try:
            etag = self.store.receive_upload(
                key,
                request.stream,
                dict(request.args.lists()),
                request.headers.get("Content-Type"),
                if_none_match=request.headers.get("If-None-Match"),
            )
        except ReelayError as e:
            return error(e.status, e.code, e.message)
        except ClientDisconnected:
            # The client went away mid-body (a cancelled or interrupted upload): nothing was stored,
            # and it is the client's doing, not a server error.
            log.info("upload of %s cut short by the client", key)
            return error(400, "bad_request", "The upload was cut short before all its bytes arrived.")
        headers = dict(CORS_HEADERS)
        if etag:
            headers["ETag"] = f'"{etag.strip(chr(34))}"'
        return Response(status=200, headers=headers)
