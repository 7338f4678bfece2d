"""Profiles and tokens, kept in the user's config directory in one file only its owner can read.

``~/.config/reelay/config.json`` (platformdirs: ``$XDG_CONFIG_HOME/reelay`` on Linux; override the
directory with ``REELAY_CONFIG_DIR``) holds one entry per profile: the API URL, the email, and the
tokens with the time they expire. The file is written to a temporary file with mode 0600 and
renamed over the old one, so a crash never leaves half a file and the tokens are never readable by
others, not even for an instant.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from reelay_cli.errors import CliError, ExitCode

APP = "reelay"
DEFAULT_API = "http://127.0.0.1:8080"  # the gateway of `make up`
DEFAULT_PROFILE = "default"
# Refresh a little before the server would refuse the token, so a slow request does not straddle it.
EXPIRY_SKEW_SECONDS = 60


def config_dir() -> Path:
    override = os.environ.get("REELAY_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir(APP))


def cache_dir() -> Path:
    override = os.environ.get("REELAY_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir(APP))


@dataclass
class Tokens:
    id_token: str
    access_token: str
    refresh_token: str | None
    expires_at: float  # unix time

    @classmethod
    def from_api(cls, body: dict[str, Any], *, now: float, previous: Tokens | None = None) -> Tokens:
        """Tokens from a login or refresh answer. A refresh answer may omit the refresh token: keep ours."""
        refresh = body.get("refreshToken") or (previous.refresh_token if previous else None)
        return cls(
            id_token=body["idToken"],
            access_token=body["accessToken"],
            refresh_token=refresh,
            expires_at=now + float(body.get("expiresIn", 3600)),
        )

    def expired(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) >= self.expires_at - EXPIRY_SKEW_SECONDS

    def to_json(self) -> dict[str, Any]:
        return {
            "idToken": self.id_token,
            "accessToken": self.access_token,
            "refreshToken": self.refresh_token,
            "expiresAt": self.expires_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tokens:
        return cls(
            id_token=data["idToken"],
            access_token=data["accessToken"],
            refresh_token=data.get("refreshToken"),
            expires_at=float(data["expiresAt"]),
        )


@dataclass
class Profile:
    name: str
    api: str | None = None  # None: the default, unless --api says otherwise
    email: str | None = None
    tokens: Tokens | None = None
    token_api: str | None = None  # the API the tokens were issued by
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.extra)
        data.update({"api": self.api, "email": self.email, "tokenApi": self.token_api})
        data["tokens"] = self.tokens.to_json() if self.tokens else None
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> Profile:
        known = {"api", "email", "tokens", "tokenApi"}
        tokens = data.get("tokens")
        return cls(
            name=name,
            api=data.get("api"),
            email=data.get("email"),
            tokens=Tokens.from_json(tokens) if isinstance(tokens, dict) else None,
            token_api=data.get("tokenApi"),
            extra={k: v for k, v in data.items() if k not in known},
        )


class ConfigStore:
    """The profiles file. Every save rewrites the whole file atomically with mode 0600."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or config_dir()
        self.path = self.directory / "config.json"

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {"profiles": {}}
        except OSError as e:
            raise CliError(f"cannot read {self.path}: {e.strerror}", ExitCode.FAILED) from e
        # A file someone loosened (cp, an editor) is tightened again: it holds live tokens.
        if stat.S_IMODE(self.path.stat().st_mode) & 0o077:
            os.chmod(self.path, 0o600)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise CliError(
                f"{self.path} is not valid JSON ({e.msg} at line {e.lineno}); fix or delete it",
                ExitCode.FAILED,
            ) from e
        if not isinstance(data, dict) or not isinstance(data.get("profiles", {}), dict):
            raise CliError(f"{self.path} does not hold a profiles object; fix or delete it", ExitCode.FAILED)
        data.setdefault("profiles", {})
        return data

    def _write(self, data: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".config-", suffix=".tmp")  # mode 0600
        try:
            with os.fdopen(fd, "w") as f:
                os.fchmod(f.fileno(), 0o600)
                json.dump(data, f, indent=2, sort_keys=True)
                f.write("\n")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def profile(self, name: str) -> Profile:
        entry = self._read()["profiles"].get(name)
        return Profile.from_json(name, entry) if isinstance(entry, dict) else Profile(name=name)

    def profiles(self) -> list[Profile]:
        data = self._read()["profiles"]
        return [Profile.from_json(n, e) for n, e in sorted(data.items()) if isinstance(e, dict)]

    def save(self, profile: Profile) -> None:
        data = self._read()
        data["profiles"][profile.name] = profile.to_json()
        self._write(data)
