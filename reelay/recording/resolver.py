"""The recording workflow's ``StoreResolver``: the store a session recorded to, from its row.

A session's ``store_ref`` says where its store came from: ``default`` (the platform's media store),
``stream:<streamId>`` (the stream's own ``recordObjectStore``) or ``webhook:<streamId>`` (what the
stream's store webhook answered when the session started). The URL itself is on the session row:
in the clear when it has no secret (``store_url``), else sealed (``store_secret``, opened with the
stream secret keys). A webhook is never asked again: it might answer differently now. Sessions
recorded before the row kept the URL fall back, for ``stream:`` refs, to the stream's current store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reelay.errors import NotFound
from reelay.ports import ObjectStore
from reelay.recording.steps import DEFAULT_STORE, PermanentStepError
from reelay.relay.secrets import SecretsUnavailable, SourceSecrets
from reelay.storage.url import parse_store_url, redact_url

SOURCES = ("stream", "webhook")


class SessionStoreResolver:
    def __init__(
        self,
        catalogue: Any,
        secrets: SourceSecrets,
        media_store: ObjectStore,
        open_url: Callable[[str], ObjectStore],
    ) -> None:
        self.catalogue = catalogue
        self.secrets = secrets
        self.media_store = media_store
        self.open_url = open_url
        self._opened: dict[str, ObjectStore] = {}

    def __call__(self, ref: str, session_id: str) -> ObjectStore:
        if ref == DEFAULT_STORE:
            return self.media_store
        source, _, stream_id = ref.partition(":")
        if source not in SOURCES or not stream_id:
            raise PermanentStepError(f"unknown recording store reference {ref!r}")
        url = self.url_of(session_id, source, stream_id)
        if url not in self._opened:
            self._opened[url] = self.open_url(url)
        return self._opened[url]

    def url_of(self, session_id: str, source: str, stream_id: str) -> str:
        """The full URL (secret included): never log or show it."""
        session = self.catalogue.get_recording_session(session_id)
        if session.store_secret:
            try:
                url = self.secrets.open(session.store_secret).get("url")
            except SecretsUnavailable as exc:  # no key opens it: a deployment fault, retrying will not help
                raise PermanentStepError(f"the store of session {session_id}: {exc.message}") from exc
            if url:
                return str(url)
        if session.store_url and _no_secret(session.store_url):
            return session.store_url
        if source == "stream":
            try:
                stream = self.catalogue.get_stream(stream_id)
            except NotFound:
                raise PermanentStepError(
                    f"session {session_id} recorded to stream {stream_id}'s store, and the stream is gone"
                ) from None
            if stream.record_store_secret:
                url = self.secrets.open(stream.record_store_secret).get("url")
                if url:
                    return str(url)
            if stream.record_object_store_url and _no_secret(stream.record_object_store_url):
                return stream.record_object_store_url
        shown = session.store_url or ref_text(source, stream_id)
        raise PermanentStepError(
            f"the store session {session_id} recorded to ({shown}) is not known to this deployment"
        )


def ref_text(source: str, stream_id: str) -> str:
    return f"{source}:{stream_id}"


def _no_secret(url: str) -> bool:
    """True when the URL carries no secret, so the redacted form is the URL itself."""
    try:
        return parse_store_url(url).secret_key is None and redact_url(url) == url
    except Exception:
        return False


def resolver_for(services: Any) -> SessionStoreResolver:
    from reelay.storage import open_store

    return SessionStoreResolver(
        services.catalogue,
        services.source_secrets,
        services.store,
        lambda url: open_store(url, settings=services.settings),
    )
