"""Object stores: one URL parser (``reelay.storage.url``), one driver per scheme.

``open_store`` is the way in: give it a store URL and get an ``ObjectStore``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from reelay.ports import ObjectInfo, ObjectStore
from reelay.settings import Settings, get_settings
from reelay.storage.url import StoreLocation, parse_store_url

if TYPE_CHECKING:
    from reelay.storage.file import FileStore
    from reelay.storage.s3 import S3Store


def open_store(
    url: str,
    *,
    settings: Settings | None = None,
    on_created: Callable[[ObjectInfo], None] | None = None,
) -> ObjectStore:
    """The store a URL names. Raises ``InvalidInput`` for a bad URL (never showing its secret).

    File stores take their public URL and signing key from settings and call ``on_created`` for
    client uploads (see ``FileStore``). S3 stores ignore ``on_created``: S3 sends its own
    ObjectCreated notifications. An S3 URL without an endpoint uses ``settings.aws_endpoint_url``.
    """
    return open_location(parse_store_url(url), settings=settings, on_created=on_created)


def open_location(
    location: StoreLocation,
    *,
    settings: Settings | None = None,
    on_created: Callable[[ObjectInfo], None] | None = None,
) -> FileStore | S3Store:
    s = settings or get_settings()
    if location.scheme == "file":
        from reelay.storage.file import FileStore

        assert location.root is not None
        return FileStore(
            location.root,
            public_url=s.file_store_public_url,
            signing_key=s.file_store_signing_key,
            on_created=on_created,
        )
    from reelay.storage.s3 import S3Store

    return S3Store(location, settings=s)


__all__ = ["StoreLocation", "open_location", "open_store", "parse_store_url"]
