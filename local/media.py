"""``/media/<key>``: what S3 (presigned PUTs) and CloudFront (playback) do in AWS.

Uploads are private: only keys under the output prefix can be read. Reads stream the file store's
own file, so werkzeug can answer Range requests the way hls.js expects.

A private (or unpublished) video's media, every playlist and segment, is read only with a signed
query for the video's prefix that has not expired (reelay.playback): what CloudFront's signed path
does in AWS. Public and unlisted videos' media needs no signature.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from werkzeug.exceptions import ClientDisconnected
from werkzeug.utils import send_file
from werkzeug.wrappers import Request, Response

from infra.constants import HLS_CONTENT_TYPES
from local.gateway import CORS_HEADERS, error
from reelay.errors import ReelayError
from reelay.playback import check_signed_access, media_prefix
from reelay.recording.layout import EXPORT_MEDIA_DIR

# What the catalogue says about a video's media: anyone may read it, only with a signature, or the
# video is not in the catalogue (its media is not served).
Access = Literal["public", "signed", "missing"]

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
        store: Any = None,
        access: Callable[[str], Access] | None = None,
        signing_key: str | None = None,
    ) -> None:
        self._output_prefix = output_prefix
        self.store = store  # the file store; set once services exist
        self.access = access  # a video's access rule, from the catalogue; set once services exist
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
        if not key.startswith(self._output_prefix) and not _recording_segment(key):
            # Same answer as a private S3 object behind CloudFront: nothing to see here.
            return error(403, "forbidden", "Only published media can be read.")
        if self.store is None or (self.access is None and key.startswith(self._output_prefix)):
            return error(503, "not_ready", "The media store is not ready yet.")
        signed = False
        video_id = key[len(self._output_prefix) :].split("/", 1)[0]
        # A recording's MP4 exports sit beside the videos' outputs (outputs/exports/<session>/<id>.mp4):
        # served like CloudFront's public /outputs/* path, by their unguessable ids, not by a video.
        if key.startswith(self._output_prefix) and video_id != EXPORT_MEDIA_DIR:
            assert self.access is not None
            try:
                access = self.access(video_id)
            except ReelayError as e:
                return error(e.status, e.code, e.message)
            if access == "missing":
                return error(404, "not_found", "No such media.")
            if access == "signed":
                prefix = media_prefix(self._output_prefix, video_id)
                refused = check_signed_access(self.signing_key, prefix, key, request.args)
                if refused is not None:
                    return error(403, "forbidden", f"{refused[0].upper()}{refused[1:]}.")
                signed = True
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
        response.headers["Cache-Control"] = f"private, {cache}" if signed else cache
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
