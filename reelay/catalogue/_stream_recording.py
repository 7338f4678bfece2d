"""A stream's recording settings in both catalogues: their columns, the checks every row passes, and
what ``update_stream_recording`` may change. The stream service checks the meaning (store and webhook
hosts, the ladder); these checks keep a row in shape whoever writes it.

``record_object_store_url`` is the REDACTED store URL (what answers show); the full URL is sealed in
``record_store_secret``. A change sets exactly the keys it names; None clears a value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reelay.catalogue._recordings import MAX_RECONNECT_WINDOW, STORE_URL_MAX
from reelay.errors import InvalidInput
from reelay.media.ladder import PRESETS

MAX_RETENTION_DAYS = 3650
MAX_RECORD_RENDITIONS = len(PRESETS)
SECRET_MAX = 16384

RECORDING_COLUMNS = {
    "record_object_store_url": "recordObjectStoreUrl",
    "record_store_secret": "recordStoreSecret",
    "webhook_url": "webhookUrl",
    "retention_days": "retentionDays",
    "reconnect_window_seconds": "reconnectWindowSeconds",
    "record_renditions": "recordRenditions",
}


def check_retention(days: object) -> int | None:
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_RETENTION_DAYS:
        raise InvalidInput(f"retentionDays must be 1 to {MAX_RETENTION_DAYS}, or null")
    return days


def check_window(seconds: object) -> int | None:
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 <= seconds <= MAX_RECONNECT_WINDOW:
        raise InvalidInput(f"reconnectWindowSeconds must be 0 to {MAX_RECONNECT_WINDOW}, or null")
    return seconds


def check_renditions(names: object) -> list[str]:
    if names is None:
        return []
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise InvalidInput("recordRenditions must be a list of rendition names")
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        raise InvalidInput(
            f"recordRenditions: unknown rendition {unknown[0]!r}; use names of the ladder: "
            + ", ".join(PRESETS)
        )
    if len(set(names)) != len(names):
        raise InvalidInput("recordRenditions must not name a rendition twice")
    if len(names) > MAX_RECORD_RENDITIONS:
        raise InvalidInput(f"recordRenditions has at most {MAX_RECORD_RENDITIONS} names")
    # Highest first, as the ladder orders them: the same set always reads the same.
    order = list(PRESETS)
    return sorted(names, key=order.index)


def _check_text(name: str, value: object, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidInput(f"{name} must be 1 to {limit} characters, or null")
    return value


def recording_changes(changes: Mapping[str, object]) -> dict[str, object]:
    """The checked changes, by field. Unknown fields are a bug of the caller: InvalidInput."""
    out: dict[str, object] = {}
    for key, value in changes.items():
        if key not in RECORDING_COLUMNS:
            raise InvalidInput(f"{key} is not a recording setting")
        if key == "retention_days":
            out[key] = check_retention(value)
        elif key == "reconnect_window_seconds":
            out[key] = check_window(value)
        elif key == "record_renditions":
            out[key] = check_renditions(value)
        elif key == "record_store_secret":
            out[key] = _check_text(key, value, SECRET_MAX)
        else:
            out[key] = _check_text(key, value, STORE_URL_MAX)
    return out


def check_stream_recording(stream: Any) -> None:
    """What a new stream row's recording settings must satisfy."""
    recording_changes({k: getattr(stream, k) for k in RECORDING_COLUMNS})


def db_value(key: str, value: object) -> object:
    if key == "record_renditions":
        return json.dumps(list(value or []))  # type: ignore[call-overload]
    return value


def recording_row(stream: Any) -> dict[str, object]:
    return {column: db_value(key, getattr(stream, key)) for key, column in RECORDING_COLUMNS.items()}


def recording_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {key: row[column] for key, column in RECORDING_COLUMNS.items()}
    out["record_renditions"] = json.loads(row["recordRenditions"] or "[]")
    return out
