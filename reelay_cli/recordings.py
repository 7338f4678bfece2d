"""``reelay recordings``: a stream's recording sessions, finalizing one by hand, and MP4 exports.

The contract (docs/recordings-api.md): ``GET /streams/{id}/sessions`` -> {items, nextCursor};
``GET /streams/{id}/sessions/{sid}`` (``livePlaylistUrl`` while recording, the video once ready);
``POST .../sessions/{sid}/finalize`` -> 202; ``POST .../sessions/{sid}/exports`` {start, end} -> 202
export; ``GET .../exports/{exportId}``. Operators only, like the streams they belong to.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import click
import requests

from reelay_cli.app import App, pass_app
from reelay_cli.client import error_from
from reelay_cli.errors import CliError, ExitCode
from reelay_cli.output import BarProgress, Output, TranscodeBar
from reelay_cli.streams import _ago, call
from reelay_cli.upload import poll_until

FINISHED = ("ready", "failed", "expired")  # a session may expire (retention) while followed


def _path(stream_id: str, session_id: str | None = None, *rest: str) -> str:
    parts = ["streams", stream_id, "sessions"] + ([session_id] if session_id else []) + list(rest)
    return "/" + "/".join(quote(p, safe="") for p in parts)


def _seconds(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return ""
    total = round(value)
    h, m, s = total // 3600, total % 3600 // 60, total % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _state(session: dict[str, Any]) -> str:
    state = str(session.get("state") or "?")
    if state == "failed" and session.get("failureReason"):
        return f"failed: {session['failureReason']}"
    return state


def show_session(out: Output, s: dict[str, Any]) -> None:
    video: dict[str, Any] = s["video"] if isinstance(s.get("video"), dict) else {}
    started = s.get("startedAt")
    out.fields(
        [
            ("session", s.get("sessionId")),
            ("stream", s.get("streamId")),
            ("state", s.get("state")),
            ("failure", s.get("failureReason")),
            ("started", f"{started} ({_ago(started)})" if started else None),
            ("ended", s.get("endedAt")),
            ("end reason", s.get("endReason")),
            ("duration", _seconds(s.get("durationSeconds"))),
            ("renditions", ", ".join(r.get("name", "?") for r in s.get("renditions") or [])),
            ("discontinuities", s.get("discontinuities") or None),
            ("live playlist", s.get("livePlaylistUrl")),
            ("video", s.get("videoId")),
            ("playback", video.get("playbackUrl")),
            ("store", s.get("store")),
            ("store source", s.get("storeSource")),
            ("store fallback", s.get("storeFallbackReason")),
        ]
    )


def show_export(out: Output, e: dict[str, Any]) -> None:
    out.fields(
        [
            ("export", e.get("exportId")),
            ("session", e.get("sessionId")),
            ("state", e.get("state")),
            ("failure", e.get("failureReason")),
            ("range", f"{_seconds(e.get('start'))} to {_seconds(e.get('end'))}"),
            ("size", f"{e['sizeBytes']} bytes" if isinstance(e.get("sizeBytes"), int) else None),
            ("download", e.get("downloadUrl")),
        ]
    )


class Offset(click.ParamType):
    """A time into the recording: seconds (``90``, ``12.5``) or ``[h:]mm:ss[.fff]``."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return float(text)
        match = re.fullmatch(r"(?:(\d+):)?([0-5]?\d):([0-5]\d(?:\.\d+)?)", text)
        if not match:
            self.fail(f"{value!r} is not a time: give seconds (90) or [h:]mm:ss (1:30)", param, ctx)
        hours, minutes, seconds = match.groups()
        return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)


@click.group()
def recordings() -> None:
    """A stream's recording sessions: list, show, finalize, export an MP4 (operators only)."""


@recordings.command("list")
@click.argument("stream_id")
@click.option("--limit", type=click.IntRange(1, 100), default=50, show_default=True)
@click.option("--cursor", help="nextCursor of the previous page.")
@pass_app
def list_sessions(app: App, stream_id: str, limit: int, cursor: str | None) -> None:
    """The stream's recording sessions, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    page = call(app, "GET", _path(stream_id), params=params)
    items = page.get("items") or []
    out = app.output

    def human() -> None:
        if not items:
            out.say(f"No recordings of stream {stream_id}.")
            return
        out.table(
            ("SESSION", "STATE", "STARTED", "DURATION", "VIDEO"),
            (
                (
                    s.get("sessionId"),
                    _state(s),
                    _ago(s.get("startedAt")),
                    _seconds(s.get("durationSeconds")),
                    s.get("videoId") or "",
                )
                for s in items
            ),
        )
        if page.get("nextCursor"):
            out.notice(f"more: reelay recordings list {stream_id} --cursor {page['nextCursor']}")

    out.result(page, human)


@recordings.command("show")
@click.argument("stream_id")
@click.argument("session_id")
@pass_app
def show(app: App, stream_id: str, session_id: str) -> None:
    """One session: state, times, duration, the live playlist while recording, the video once ready."""
    session = with_video(app, call(app, "GET", _path(stream_id, session_id)))
    app.output.result(session, lambda: show_session(app.output, session))


def with_video(app: App, session: dict[str, Any]) -> dict[str, Any]:
    """The session, with the video it became (the owner's view: playback URL, poster)."""
    if session.get("state") == "ready" and session.get("videoId"):
        video = app.client.video(quote(str(session["videoId"]), safe=""))
        return {**session, "video": video}
    return session


def _follow(app: App, what: str, fetch: Any, timeout: float | None) -> dict[str, Any]:
    """Poll ``fetch`` until ready or failed, the state on a bar (or as notices) on stderr."""
    out = app.output
    bar = TranscodeBar(out.err) if out.show_progress else None
    seen: list[str] = []

    def update(answer: dict[str, Any]) -> None:
        state = str(answer.get("state") or "?")
        if bar is not None:
            bar.update(state, 100 if state in FINISHED else 0)
        elif not seen or seen[-1] != state:
            seen.append(state)
            out.notice(f"{what}: {state}")

    try:
        return poll_until(
            fetch, lambda a: a.get("state") in FINISHED, what=what, timeout=timeout, on_update=update
        )
    except KeyboardInterrupt:
        raise CliError(
            f"stopped waiting; the server carries on with {what}", ExitCode.INTERRUPTED, error="interrupted"
        ) from None
    finally:
        if bar is not None:
            bar.finish()


def _fail_if_failed(out: Output, what: str, answer: dict[str, Any]) -> None:
    if answer.get("state") == "failed":
        out.error(f"{what} failed: {answer.get('failureReason') or 'no reason given'}")
        raise click.exceptions.Exit(ExitCode.FAILED)


@recordings.command()
@click.argument("stream_id")
@click.argument("session_id")
@click.option("--wait", is_flag=True, help="Follow it until ready (exit 0) or failed (exit 1).")
@click.option("--timeout", type=float, help="With --wait: give up after this many seconds (exit 5).")
@pass_app
def finalize(app: App, stream_id: str, session_id: str, wait: bool, timeout: float | None) -> None:
    """Turn an ended (or failed) session into a video now, without waiting for the sweep."""
    path = _path(stream_id, session_id)
    # Finalizing a session that is already finalizing is a no-op on the server: safe to retry.
    answer = call(app, "POST", f"{path}/finalize", idempotent=True, ok=(200, 202)) or {}
    what = f"session {session_id}"
    if answer.get("started"):
        app.output.notice(f"{what}: {answer.get('mode') or 'finalize'} started")
    elif answer.get("state") == "finalizing":
        app.output.notice(f"{what}: already finalizing")
    fetch = lambda: call(app, "GET", path)  # noqa: E731
    session = with_video(app, _follow(app, what, fetch, timeout) if wait else fetch())
    app.output.result(session, lambda: show_session(app.output, session))
    _fail_if_failed(app.output, what, session)


@recordings.command()
@click.argument("stream_id")
@click.argument("session_id")
@click.option("--start", "start", type=Offset(), required=True, help="From this time into the recording.")
@click.option("--end", "end", type=Offset(), required=True, help="To this time into the recording.")
@click.option(
    "-o",
    "--output",
    "target",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Download the MP4 to FILE (implies --wait).",
)
@click.option("--wait", is_flag=True, help="Follow the export until ready (exit 0) or failed (exit 1).")
@click.option("--timeout", type=float, help="With --wait: give up after this many seconds (exit 5).")
@pass_app
def export(
    app: App,
    stream_id: str,
    session_id: str,
    start: float,
    end: float,
    target: Path | None,
    wait: bool,
    timeout: float | None,
) -> None:
    """An MP4 of a time range of a finished recording; --output FILE downloads it."""
    if end <= start:
        raise click.BadParameter(f"the end ({end:g} s) must come after the start ({start:g} s)")
    path = _path(stream_id, session_id, "exports")
    job = call(app, "POST", path, json={"start": start, "end": end}, ok=(200, 201, 202))
    export_path = f"{path}/{quote(str(job.get('exportId')), safe='')}"
    what = f"export {job.get('exportId')}"
    if wait or target is not None:
        job = _follow(app, what, lambda: call(app, "GET", export_path), timeout)
    data = dict(job)
    if target is not None and job.get("state") == "ready":
        data["file"] = str(target)
        data["bytesWritten"] = download(app, str(job.get("downloadUrl") or ""), target)
    app.output.result(data, lambda: show_export(app.output, data))
    if data.get("file"):
        app.output.notice(f"saved {data['bytesWritten']} bytes to {target}")
    _fail_if_failed(app.output, what, job)


def download(app: App, url: str, target: Path) -> int:
    """GET the URL into ``target`` (via a ``.part`` file beside it) with a bar of bytes, speed and time
    left. The URL is on the playback path (CloudFront, the gateway's /media/): no token goes with it."""
    if not url:
        raise CliError("the export is ready but gave no download URL", ExitCode.FAILED, error="no_download")
    client = app.client
    if not urlparse(url).scheme:
        url = client.url(url)
    response = client.send("GET", url, stream=True, timeout=60)
    if response.status_code != 200:
        failure = error_from(response)
        raise CliError(f"cannot download {target.name}: {failure.message}", failure.code, error=failure.error)
    total = int(response.headers.get("Content-Length") or 0)
    bar = BarProgress(app.output.err, target.name) if app.output.show_progress else None
    partial = target.with_name(target.name + ".part")
    written = 0
    try:
        if bar is not None:
            bar.start(total, 0)
        with partial.open("wb") as f:
            for chunk in response.iter_content(chunk_size=256 * 1024):
                f.write(chunk)
                written += len(chunk)
                if bar is not None:
                    bar.advance(len(chunk))
        if total and written != total:
            raise CliError(
                f"the download stopped at {written} of {total} bytes; run the command again",
                ExitCode.UNAVAILABLE,
                error="network",
            )
        partial.replace(target)
    except requests.RequestException as e:
        raise CliError(
            f"the download of {target.name} broke off after {written} bytes ({e}); run the command again",
            ExitCode.UNAVAILABLE,
            error="network",
        ) from e
    except OSError as e:
        raise CliError(f"cannot write {target}: {e.strerror or e}", ExitCode.FAILED, error="io") from e
    finally:
        response.close()
        if bar is not None:
            bar.finish()
        partial.unlink(missing_ok=True)
    return written
