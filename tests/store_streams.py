"""A stream as choosing a recording store reads it, for the store tests (unit and integration)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StoreCam:
    stream_id: str = "st-1"
    owner_id: str = "owner-1"
    name: str = "Front door"
    kvs_stream_name: str | None = "reelay-front-door"
    webhook_url: str | None = None
    record_object_store_url: str | None = None
    object_store_url: str | None = None
