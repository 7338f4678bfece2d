"""The HTTP client of the Reelay API: retries with backoff, tokens refreshed when they expire.

requests with urllib3's ``Retry``: connection failures are retried for every method (the request
never reached the server); 5xx and 429 answers are retried for idempotent methods, and for the
POSTs that are safe to repeat (``idempotent=True``: completing an upload, starting a stream). A POST
that creates something is not repeated after a 5xx, so a flaky server cannot make two videos.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from reelay_cli import __version__
from reelay_cli.config import ConfigStore, Profile, Tokens
from reelay_cli.errors import ApiError, CliError, ExitCode

RETRY_STATUSES = (429, 500, 502, 503, 504)


def make_session(*, retries: int, backoff: float, retry_post: bool) -> requests.Session:
    methods = Retry.DEFAULT_ALLOWED_METHODS | ({"POST"} if retry_post else set())
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        backoff_factor=backoff,
        backoff_max=10,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=methods,
        raise_on_status=False,  # the last answer is ours to turn into words
        respect_retry_after_header=True,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=16)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = f"reelay-cli/{__version__}"
    return session


def error_from(response: requests.Response) -> ApiError:
    """An API error in words: the ``{"error", "message"}`` body, or the status when there is none."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return ApiError(response.status_code, str(body.get("error") or "error"), body["message"])
    reason = response.reason or "error"
    text = " ".join(response.text.split())[:200]
    return ApiError(
        response.status_code, "http_error", f"HTTP {response.status_code} {reason}: {text}".strip()
    )


class ApiClient:
    def __init__(
        self,
        api: str,
        *,
        store: ConfigStore | None = None,
        profile: Profile | None = None,
        timeout: float = 30,
        retries: int = 4,
        backoff: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base = api.rstrip("/")
        self.store = store
        self.profile = profile or Profile(name="default")
        self.timeout = timeout
        self._clock = clock
        self._session = make_session(retries=retries, backoff=backoff, retry_post=False)
        self._idempotent = make_session(retries=retries, backoff=backoff, retry_post=True)

    def url(self, path: str) -> str:
        """A path relative to the API base, keeping any stage in it (https://host/prod/ + videos)."""
        return urljoin(self.base + "/", path.lstrip("/"))

    # --- raw requests -----------------------------------------------------------------------
    def send(
        self,
        method: str,
        url: str,
        *,
        idempotent: bool = False,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        session = self._idempotent if idempotent else self._session
        try:
            return session.request(method, url, timeout=timeout or self.timeout, **kwargs)
        except requests.exceptions.RetryError as e:
            raise CliError(
                f"the server kept failing at {url}: {e}", ExitCode.UNAVAILABLE, error="server"
            ) from e
        except (requests.ConnectionError, requests.Timeout) as e:
            raise CliError(
                f"cannot reach {self.base}: {_short(e)}", ExitCode.UNAVAILABLE, error="network"
            ) from e

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        auth: bool = False,
        idempotent: bool = False,
        ok: Iterable[int] = (200, 201, 202, 204),
    ) -> Any:
        """One API call; returns the decoded JSON body (None when there is none) or raises ApiError."""
        ok = tuple(ok)
        kwargs: dict[str, Any] = {"params": params}
        if json is not None:
            kwargs["json"] = json
        if not auth:
            response = self.send(method, self.url(path), idempotent=idempotent, **kwargs)
        else:
            tokens = self.tokens()
            response = self.send(
                method, self.url(path), idempotent=idempotent, headers=_bearer(tokens), **kwargs
            )
            if response.status_code == 401 and tokens.refresh_token:
                # The token may have been revoked or the clocks disagree: refresh once and try again.
                tokens = self.refresh()
                response = self.send(
                    method, self.url(path), idempotent=idempotent, headers=_bearer(tokens), **kwargs
                )
        if response.status_code not in ok:
            raise error_from(response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as e:
            raise CliError(
                f"the API answered {method} {path} with something that is not JSON", ExitCode.UNAVAILABLE
            ) from e

    def video(self, video_id: str) -> Any:
        """A video as the caller may see it. Logged in, the owner's view first: any status (a video
        not ready yet is its owner's alone), a private one with signed playback; otherwise, or for
        someone else's video, the public view."""
        if self.logged_in():
            try:
                return self.call("GET", f"/me/videos/{video_id}", auth=True)
            except ApiError as e:
                if e.status != 404:
                    raise
        return self.call("GET", f"/videos/{video_id}")

    # --- tokens -------------------------------------------------------------------------------
    def logged_in(self) -> bool:
        return self.profile.tokens is not None and self.profile.token_api == self.base

    def tokens(self) -> Tokens:
        """The profile's tokens for this API, refreshed first when they have expired."""
        if not self.logged_in():
            raise CliError(
                f"not logged in to {self.base} (profile {self.profile.name!r}): run `reelay login`",
                ExitCode.AUTH,
                error="not_logged_in",
            )
        assert self.profile.tokens is not None
        if self.profile.tokens.expired(self._clock()):
            return self.refresh()
        return self.profile.tokens

    def login(self, email: str, password: str) -> Tokens:
        body = self.call("POST", "/auth/login", json={"email": email, "password": password})
        tokens = Tokens.from_api(body, now=self._clock())
        self.profile.email = email
        self._keep(tokens)
        return tokens

    def refresh(self) -> Tokens:
        current = self.profile.tokens
        if current is None or not current.refresh_token:
            raise CliError(
                "your session has expired and cannot be renewed: run `reelay login`",
                ExitCode.AUTH,
                error="session_expired",
            )
        try:
            body = self.call(
                "POST", "/auth/refresh", json={"refreshToken": current.refresh_token}, idempotent=True
            )
        except ApiError as e:
            if e.status >= 500:
                raise
            raise CliError(
                f"your session has expired ({e.message}): run `reelay login`",
                ExitCode.AUTH,
                error="session_expired",
            ) from e
        tokens = Tokens.from_api(body, now=self._clock(), previous=current)
        self._keep(tokens)
        return tokens

    def logout(self) -> bool:
        had = self.profile.tokens is not None
        self.profile.tokens = None
        self.profile.token_api = None
        if self.store is not None:
            self.store.save(self.profile)
        return had

    def _keep(self, tokens: Tokens) -> None:
        self.profile.tokens = tokens
        self.profile.token_api = self.base
        if self.store is not None:
            self.store.save(self.profile)


def _bearer(tokens: Tokens) -> dict[str, str]:
    # The API wants the ID token: it carries the email the catalogue records for the uploader.
    return {"Authorization": f"Bearer {tokens.id_token}"}


def _short(error: Exception) -> str:
    """The innermost reason of a connection error, without urllib3's object reprs."""
    reason: BaseException = error
    while True:
        inner = getattr(reason, "reason", None) or reason.__context__ or reason.__cause__
        if inner is None or inner is reason or not isinstance(inner, BaseException):
            break
        reason = inner
    text = str(reason)
    if ">:" in text:  # "<urllib3.connection.HTTPConnection object at 0x..>: Failed to establish..."
        text = text.split(">:", 1)[1]
    return text.strip() or type(reason).__name__
