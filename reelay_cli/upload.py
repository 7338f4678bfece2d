"""Uploads: one presigned PUT, or parallel multipart parts, resumable after an interruption.

The resume state of an upload (video id, upload id, part URLs, finished parts with their ETags)
is a JSON file in the cache directory, keyed by the API, the file's real path, size and mtime. It
is written after every finished part, so a rerun of the same command after a crash, a Ctrl-C or a
lost network sends only the parts that are missing, to the same video. It is deleted once the
upload is complete. A changed file (another size or mtime) is a new upload.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reelay_cli.client import ApiClient, error_from
from reelay_cli.errors import ApiError, CliError, ExitCode

STATE_VERSION = 1
# Presigned URLs that expire within this margin are not worth starting a part with.
EXPIRY_MARGIN_SECONDS = 300
_CHUNK = 64 * 1024


def guess_content_type(path: Path) -> str:
    extra = {".mkv": "video/x-matroska", ".ts": "video/mp2t", ".m2ts": "video/mp2t", ".3gp": "video/3gpp"}
    return extra.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


@dataclass
class UploadState:
    api: str
    path: str
    size: int
    mtime_ns: int
    video_id: str
    expires_at: float
    upload_id: str | None = None  # multipart only
    part_size: int = 0
    part_urls: dict[int, str] = field(default_factory=dict)
    complete_path: str | None = None
    single_url: str | None = None  # single PUT only
    single_headers: dict[str, str] = field(default_factory=dict)
    done: dict[int, str] = field(default_factory=dict)  # partNumber -> ETag

    @property
    def multipart(self) -> bool:
        return self.upload_id is not None

    @property
    def part_numbers(self) -> list[int]:
        return sorted(self.part_urls) if self.multipart else [1]

    def pending(self) -> list[int]:
        return [n for n in self.part_numbers if n not in self.done]

    def part_range(self, number: int) -> tuple[int, int]:
        """(offset, length) of a part in the file."""
        if not self.multipart:
            return 0, self.size
        offset = (number - 1) * self.part_size
        return offset, max(0, min(self.part_size, self.size - offset))

    def bytes_done(self) -> int:
        return sum(self.part_range(n)[1] for n in self.done)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "api": self.api,
            "path": self.path,
            "size": self.size,
            "mtimeNs": self.mtime_ns,
            "videoId": self.video_id,
            "expiresAt": self.expires_at,
            "uploadId": self.upload_id,
            "partSize": self.part_size,
            "partUrls": {str(n): u for n, u in sorted(self.part_urls.items())},
            "completePath": self.complete_path,
            "singleUrl": self.single_url,
            "singleHeaders": self.single_headers,
            "done": {str(n): e for n, e in sorted(self.done.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UploadState:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"resume state version {data.get('version')!r} is not {STATE_VERSION}")
        return cls(
            api=data["api"],
            path=data["path"],
            size=int(data["size"]),
            mtime_ns=int(data["mtimeNs"]),
            video_id=data["videoId"],
            expires_at=float(data["expiresAt"]),
            upload_id=data.get("uploadId"),
            part_size=int(data.get("partSize") or 0),
            part_urls={int(n): u for n, u in (data.get("partUrls") or {}).items()},
            complete_path=data.get("completePath"),
            single_url=data.get("singleUrl"),
            single_headers=dict(data.get("singleHeaders") or {}),
            done={int(n): e for n, e in (data.get("done") or {}).items()},
        )

    @classmethod
    def from_upload_answer(
        cls, answer: dict[str, Any], *, api: str, path: Path, size: int, mtime_ns: int, now: float
    ) -> UploadState:
        """The state of a fresh upload, from the 201 answer of POST /videos/upload."""
        state = cls(
            api=api, path=str(path), size=size, mtime_ns=mtime_ns, video_id=answer["videoId"], expires_at=0
        )
        if answer.get("multipart"):
            mp = answer["multipart"]
            state.upload_id = mp["uploadId"]
            state.part_size = int(mp["partSizeBytes"])
            state.part_urls = {int(p["partNumber"]): p["url"] for p in mp["parts"]}
            state.complete_path = mp["completePath"]
            state.expires_at = now + float(mp["expiresIn"])
        elif answer.get("upload"):
            single = answer["upload"]
            state.single_url = single["url"]
            state.single_headers = dict(single.get("headers") or {})
            state.expires_at = now + float(single["expiresIn"])
        else:
            raise CliError(
                "the API answered the upload request without upload instructions", ExitCode.UNAVAILABLE
            )
        return state


def file_identity(path: Path) -> tuple[Path, int, int]:
    """(real path, size, mtime in ns): what must not change for an upload to be resumed."""
    real = path.resolve()
    st = real.stat()
    return real, st.st_size, st.st_mtime_ns


def state_key(api: str, path: Path, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(f"{api.rstrip('/')}\n{path}\n{size}\n{mtime_ns}".encode()).hexdigest()[:32]


class ResumeStore:
    """Resume states, one JSON file each (mode 0600: they hold presigned URLs), written atomically."""

    def __init__(self, directory: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self._clock = clock
        self._lock = threading.Lock()

    def path_for(self, api: str, path: Path, size: int, mtime_ns: int) -> Path:
        return self.directory / f"{state_key(api, path, size, mtime_ns)}.json"

    def _file(self, state: UploadState) -> Path:
        return self.path_for(state.api, Path(state.path), state.size, state.mtime_ns)

    def load(self, api: str, path: Path, size: int, mtime_ns: int) -> UploadState | None:
        file = self.path_for(api, path, size, mtime_ns)
        try:
            state = UploadState.from_json(json.loads(file.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            file.unlink(missing_ok=True)  # unreadable: start over rather than fail forever
            return None
        if (state.api, state.path, state.size, state.mtime_ns) != (
            api.rstrip("/"),
            str(path),
            size,
            mtime_ns,
        ):
            return None
        return state

    def save(self, state: UploadState) -> None:
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".state-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(state.to_json(), f, indent=1)
                os.replace(tmp, self._file(state))
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def record_part(self, state: UploadState, number: int, etag: str) -> None:
        with self._lock:
            state.done[number] = etag
        self.save(state)

    def discard(self, state: UploadState) -> None:
        self._file(state).unlink(missing_ok=True)

    def prune(self) -> int:
        """Delete states whose URLs have expired; they can never be resumed."""
        removed = 0
        for file in self.directory.glob("*.json"):
            try:
                expires = float(json.loads(file.read_text())["expiresAt"])
            except (OSError, ValueError, KeyError, TypeError):
                expires = 0
            if expires < self._clock():
                file.unlink(missing_ok=True)
                removed += 1
        return removed


class Cancelled(Exception):
    """Raised inside a part's body when the upload is being stopped."""


class RateLimit:
    """At most ``rate`` bytes per second across every thread (``--limit-rate``)."""

    def __init__(
        self, rate: float, *, clock: Callable[[], float] = time.monotonic, stop: threading.Event | None = None
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._stop = stop  # a Ctrl-C must not wait out a long pause
        self._start = clock()
        self._sent = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        with self._lock:
            self._sent += n
            due = self._start + self._sent / self.rate
        delay = due - self._clock()
        if delay > 0:
            if self._stop is None:
                time.sleep(delay)
            elif self._stop.wait(delay):
                raise Cancelled("upload stopped")


class PartReader:
    """A window of a file as a request body: sized (Content-Length), seekable (urllib3 rewinds it on
    a retry) and reporting progress as the connection reads it."""

    def __init__(
        self,
        path: Path,
        offset: int,
        length: int,
        *,
        progress: Callable[[int], None],
        limit: RateLimit | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close(), after the request
        self._offset = offset
        self._length = length
        self._pos = 0
        self._progress = progress
        self._limit = limit
        self._stop = stop
        self._file.seek(offset)

    def __len__(self) -> int:
        return self._length

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        target = {os.SEEK_SET: pos, os.SEEK_CUR: self._pos + pos, os.SEEK_END: self._length + pos}[whence]
        target = max(0, min(self._length, target))
        if target != self._pos:
            self._progress(target - self._pos)  # a rewind for a retry takes the bytes back off the bar
        self._pos = target
        self._file.seek(self._offset + target)
        return target

    def read(self, n: int = -1) -> bytes:
        if self._stop is not None and self._stop.is_set():
            raise Cancelled("upload stopped")
        left = self._length - self._pos
        n = left if n is None or n < 0 else min(n, left)
        data = self._file.read(min(n, _CHUNK) if n > 0 else 0)
        if data:
            if self._limit is not None:
                self._limit.take(len(data))
            self._pos += len(data)
            self._progress(len(data))
        return data

    @property
    def sent(self) -> int:
        return self._pos

    def close(self) -> None:
        self._file.close()


class Progress:
    """Where an upload reports its bytes. The CLI shows a bar; tests and --json count quietly."""

    def start(self, total: int, done: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass
class UploadResult:
    video_id: str
    video: dict[str, Any]
    resumed: bool
    multipart: bool
    parts_total: int
    parts_skipped: int  # finished by an earlier run
    parts_sent: int
    bytes_sent: int

    def to_json(self) -> dict[str, Any]:
        return {
            "resumed": self.resumed,
            "multipart": self.multipart,
            "partsTotal": self.parts_total,
            "partsSkipped": self.parts_skipped,
            "partsSent": self.parts_sent,
            "bytesSent": self.bytes_sent,
        }


class Uploader:
    def __init__(
        self,
        client: ApiClient,
        store: ResumeStore,
        *,
        parallel: int = 4,
        limit_rate: float | None = None,
        progress: Progress | None = None,
        notice: Callable[[str], None] = lambda _msg: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.store = store
        self.parallel = max(1, parallel)
        self._stop = threading.Event()
        self.limit = RateLimit(limit_rate, stop=self._stop) if limit_rate else None
        self.progress = progress or Progress()
        self.notice = notice
        self._clock = clock

    def upload(
        self, path: Path, *, name: str | None, description: str, content_type: str | None = None
    ) -> UploadResult:
        real, size, mtime_ns = file_identity(path)
        self.store.prune()
        state = self._resumable(self.store.load(self.client.base, real, size, mtime_ns))
        resumed = state is not None
        if state is None:
            answer = self.client.call(
                "POST",
                "/videos/upload",
                auth=True,
                json={
                    "displayName": name or real.name,
                    "description": description,
                    "contentType": content_type or guess_content_type(real),
                    "sizeBytes": size,
                    "fileName": real.name,
                },
            )
            state = UploadState.from_upload_answer(
                answer, api=self.client.base, path=real, size=size, mtime_ns=mtime_ns, now=self._clock()
            )
            self.store.save(state)  # before the first byte: an interruption from here on resumes
        else:
            self.notice(
                f"resuming the upload of video {state.video_id}: {len(state.done)} of "
                f"{len(state.part_numbers)} parts already sent"
            )
        skipped = len(state.done)
        pending = state.pending()
        self.progress.start(size, state.bytes_done())
        try:
            sent_bytes = self._send_parts(state, pending)
        finally:
            self.progress.finish()
        video = self._complete(state)
        self.store.discard(state)
        return UploadResult(
            video_id=state.video_id,
            video=video,
            resumed=resumed,
            multipart=state.multipart,
            parts_total=len(state.part_numbers),
            parts_skipped=skipped,
            parts_sent=len(pending),
            bytes_sent=sent_bytes,
        )

    def _resumable(self, state: UploadState | None) -> UploadState | None:
        """The saved state if the upload can still go on: URLs valid, video still awaiting its upload."""
        if state is None:
            return None
        if state.expires_at - EXPIRY_MARGIN_SECONDS < self._clock():
            self.notice("the saved upload's URLs have expired; starting a new upload")
            self.store.discard(state)
            return None
        try:
            video = self.client.video(state.video_id)
        except ApiError as e:
            if e.status != 404:
                raise
            self.notice(f"video {state.video_id} of the saved upload is gone; starting a new upload")
            self.store.discard(state)
            return None
        if video.get("status") != "awaiting_upload":
            # The last run sent everything and completed, but died before forgetting the state.
            state.done = {n: state.done.get(n, "") for n in state.part_numbers}
        return state

    def _send_parts(self, state: UploadState, numbers: list[int]) -> int:
        if not numbers:
            return 0
        sent = 0
        lock = threading.Lock()

        def one(number: int) -> None:
            nonlocal sent
            etag = self._send_part(state, number)
            self.store.record_part(state, number, etag)
            with lock:
                sent += state.part_range(number)[1]

        pool = ThreadPoolExecutor(max_workers=min(self.parallel, len(numbers)), thread_name_prefix="part")
        futures: list[Future[None]] = [pool.submit(one, n) for n in numbers]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                self._stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
                error = failed[0].exception()
                assert error is not None
                if isinstance(error, CliError):
                    raise CliError(
                        f"{error.message}; run the same command again to resume",
                        error.code,
                        error=error.error,
                    ) from error
                raise error
        except KeyboardInterrupt:
            self._stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return sent

    def _send_part(self, state: UploadState, number: int) -> str:
        offset, length = state.part_range(number)
        reader = PartReader(
            Path(state.path),
            offset,
            length,
            progress=self.progress.advance,
            limit=self.limit,
            stop=self._stop,
        )
        try:
            if state.multipart:
                url, headers = state.part_urls[number], {}
            else:
                assert state.single_url is not None
                url, headers = state.single_url, dict(state.single_headers)
            response = self.client.send("PUT", url, data=reader, headers=headers, timeout=120)
        except BaseException:
            self.progress.advance(-reader.sent)
            raise
        finally:
            reader.close()
        if response.status_code == 412 and not state.multipart:
            # The single-PUT URL only creates its object: it is there already, from an earlier try
            # whose answer was lost (a resumed upload), so this part is done.
            return ""
        if response.status_code != 200:
            self.progress.advance(-reader.sent)
            raise error_from(response)
        return response.headers.get("ETag", "")

    def _complete(self, state: UploadState) -> dict[str, Any]:
        if not state.multipart:
            return self.client.video(state.video_id)
        assert state.upload_id is not None and state.complete_path is not None
        parts = [{"partNumber": n, "etag": state.done[n]} for n in state.part_numbers]
        try:
            return self.client.call(
                "POST",
                state.complete_path,
                auth=True,
                idempotent=True,  # completing twice is harmless: the second answers 409
                json={"uploadId": state.upload_id, "parts": parts},
            )
        except ApiError as e:
            if e.status != 409:
                raise
            # Already completed (by an earlier run, or a retry whose first answer was lost).
            return self.client.video(state.video_id)


TERMINAL = ("ready", "failed")


def poll_until(
    fetch: Callable[[], dict[str, Any]],
    finished: Callable[[dict[str, Any]], bool],
    *,
    what: str,
    interval: float = 1.0,
    timeout: float | None = None,
    on_update: Callable[[dict[str, Any]], None] = lambda _v: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Fetch until ``finished`` says so; returns the last answer. Past ``timeout``: exit 5, in words."""
    deadline = None if timeout is None else clock() + timeout
    while True:
        answer = fetch()
        on_update(answer)
        if finished(answer):
            return answer
        if deadline is not None and clock() >= deadline:
            raise CliError(
                f"{what} is still {answer.get('status') or answer.get('state')} after {timeout:g} s",
                ExitCode.UNAVAILABLE,
                error="timeout",
            )
        sleep(interval)


def wait_for_video(
    client: ApiClient,
    video_id: str,
    *,
    interval: float = 1.0,
    timeout: float | None = None,
    on_update: Callable[[dict[str, Any]], None] = lambda _v: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll the video until it is ready or failed; returns its last state."""
    return poll_until(
        lambda: client.video(video_id),
        lambda video: video.get("status") in TERMINAL,
        what=f"video {video_id}",
        interval=interval,
        timeout=timeout,
        on_update=on_update,
        sleep=sleep,
        clock=clock,
    )
