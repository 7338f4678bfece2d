"""Where the KVS stand-in keeps streams and the fragments it persisted, on disk.

Layout, per stream (``<root>/<stream>/``):
- ``stream.json``: what DescribeStream answers;
- ``headers/<sha>.mkv``: each distinct stream header (EBML header, Segment, Info, Tracks);
- ``fragments/<n>.mkc``: each Cluster, raw as received;
- ``index.jsonl``: one line per persisted fragment (number, timecode, header, size, times).
A header followed by its clusters is a playable MKV (the Segment is stored with unknown size).
Everything survives a restart of the stand-in.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STREAM_NAME = re.compile(r"^[a-zA-Z0-9_.-]{1,256}$")
# Real fragment numbers are 47-digit decimal strings that grow; so are these.
_FRAGMENT_PREFIX = "9134385233"


class StreamExists(Exception):
    pass


class NoSuchStream(KeyError):
    pass


@dataclass(frozen=True)
class FragmentRecord:
    fragmentNumber: str
    timecode: int  # the Cluster's Timecode (epoch ms as kvssink sends it)
    header: str
    size: int
    serverTimestamp: float
    producerStartTimestamp: str | None


class FragmentStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._index: dict[str, list[FragmentRecord]] = {}

    def _dir(self, name: str) -> Path:
        if not STREAM_NAME.match(name):
            raise NoSuchStream(name)
        return self.root / name

    # --- streams --------------------------------------------------------------------------------

    def create_stream(
        self,
        name: str,
        *,
        media_type: str = "video/h264",
        retention_hours: int = 0,
        region: str = "us-east-1",
    ) -> dict[str, Any]:
        if not STREAM_NAME.match(name):
            raise ValueError(f"invalid stream name {name!r}")
        with self._lock:
            d = self._dir(name)
            if (d / "stream.json").exists():
                raise StreamExists(name)
            (d / "headers").mkdir(parents=True, exist_ok=True)
            (d / "fragments").mkdir(exist_ok=True)
            arn = f"arn:aws:kinesisvideo:{region}:000000000000"
            info = {
                "StreamName": name,
                "StreamARN": f"{arn}:stream/{name}/{int(time.time() * 1000)}",
                "MediaType": media_type,
                "KmsKeyId": f"arn:aws:kms:{region}:000000000000:alias/aws/kinesisvideo",
                "Version": "1",
                "Status": "ACTIVE",
                "CreationTime": datetime.now(UTC).timestamp(),
                "DataRetentionInHours": retention_hours,
                "Tags": {},
            }
            _write_json(d / "stream.json", info)
            return info

    def describe(self, name: str) -> dict[str, Any]:
        try:
            return json.loads((self._dir(name) / "stream.json").read_text())
        except FileNotFoundError:
            raise NoSuchStream(name) from None

    def by_arn(self, arn: str) -> str:
        for info in self.streams():
            if info["StreamARN"] == arn:
                return info["StreamName"]
        raise NoSuchStream(arn)

    def tag(self, name: str, tags: dict[str, str]) -> None:
        with self._lock:
            info = self.describe(name)
            info["Tags"] = {**info.get("Tags", {}), **tags}
            _write_json(self._dir(name) / "stream.json", info)

    def streams(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.root.glob("*/stream.json")):
            info = json.loads(path.read_text())
            records = self.fragments(info["StreamName"])
            info["FragmentCount"] = len(records)
            info["LastFragment"] = asdict(records[-1]) if records else None
            out.append(info)
        return out

    # --- fragments ------------------------------------------------------------------------------

    def fragments(self, name: str) -> list[FragmentRecord]:
        with self._lock:
            return list(self._load(name))

    def _load(self, name: str) -> list[FragmentRecord]:
        if name not in self._index:
            d = self._dir(name)
            if not (d / "stream.json").exists():
                raise NoSuchStream(name)
            path = d / "index.jsonl"
            lines = path.read_text().splitlines() if path.exists() else []
            self._index[name] = [FragmentRecord(**json.loads(line)) for line in lines if line.strip()]
        return self._index[name]

    def add_fragment(
        self, name: str, *, header: bytes, timecode: int, data: bytes, producer_start: str | None = None
    ) -> FragmentRecord:
        with self._lock:
            records = self._load(name)
            d = self._dir(name)
            header_id = hashlib.sha256(header).hexdigest()[:16]
            header_path = d / "headers" / f"{header_id}.mkv"
            if not header_path.exists():
                header_path.write_bytes(header)
            number = f"{_FRAGMENT_PREFIX}{len(records) + 1:037d}"
            (d / "fragments" / f"{number}.mkc").write_bytes(data)
            record = FragmentRecord(number, timecode, header_id, len(data), time.time(), producer_start)
            with (d / "index.jsonl").open("a") as f:
                f.write(json.dumps(asdict(record)) + "\n")
            records.append(record)
            return record

    def live_mkv(self, name: str, last: int) -> bytes:
        """The latest header and the last ``last`` clusters written under it: a playable MKV."""
        records = self.fragments(name)
        if not records:
            return b""
        header_id = records[-1].header
        tail: list[FragmentRecord] = []
        for record in reversed(records):
            if record.header != header_id or len(tail) >= last:
                break
            tail.append(record)
        d = self._dir(name)
        parts = [(d / "headers" / f"{header_id}.mkv").read_bytes()]
        parts += [(d / "fragments" / f"{r.fragmentNumber}.mkc").read_bytes() for r in reversed(tail)]
        return b"".join(parts)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
