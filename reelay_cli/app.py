"""What every command shares: the chosen profile, the API client, the output."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from typing import Any

import click

from reelay_cli.client import ApiClient
from reelay_cli.config import DEFAULT_API, ConfigStore, Profile
from reelay_cli.output import Output


@dataclass
class App:
    api_option: str | None
    profile_name: str
    output: Output
    store: ConfigStore = field(default_factory=ConfigStore)
    _client: ApiClient | None = None

    @property
    def profile(self) -> Profile:
        return self.client.profile

    @property
    def api(self) -> str:
        return self.client.base

    @property
    def client(self) -> ApiClient:
        if self._client is None:
            profile = self.store.profile(self.profile_name)
            # --api (or REELAY_API) wins; then the profile's own API; then `make up`'s gateway.
            api = self.api_option or profile.api or DEFAULT_API
            self._client = ApiClient(
                api,
                store=self.store,
                profile=profile,
                # A flaky link may want more patience; tests want less.
                retries=int(os.environ.get("REELAY_HTTP_RETRIES", "4")),
                backoff=float(os.environ.get("REELAY_HTTP_BACKOFF", "0.5")),
            )
        return self._client

    def remember_api(self) -> None:
        """Keep the API a login or sign-up used in the profile, so later commands need no --api."""
        self.profile.api = self.api


def pass_app(f: Any) -> Any:
    return click.pass_obj(f)


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified: for showing who is logged in, never for trusting it."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
