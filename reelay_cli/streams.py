"""``reelay streams``: operators register camera feeds and start, stop and watch their relay.

The contract: ``POST /streams`` {name, sourceUrl, kvsStreamName?, video, record?, recordRenditions?,
retentionDays?, recordObjectStore?, recordWebhookUrl?} -> 201 stream; ``PATCH /streams/{id}``;
``GET /streams`` -> {items, nextCursor}; ``GET /streams/{id}``; ``DELETE`` -> 204;
``POST /streams/{id}/start|stop`` -> 202. Only operators may call them.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import click
from rich.console import Group, RenderableType
from rich.live import Live
from rich.text import Text

from reelay_cli.app import App, pass_app
from reelay_cli.errors import ApiError, CliError, ExitCode
from reelay_cli.output import Output, fields_text, make_table

VIDEO_MODES = ("auto", "passthrough", "transcode")
RENDITIONS = ("1080p", "720p", "480p", "360p", "240p")


def record_options(f: Any) -> Any:
    """The recording settings, shared by ``create`` and ``update`` (docs/recordings-api.md)."""
    options = [
        click.option(
            "--record/--no-record", "record", default=None, help="Record the feed to an object store."
        ),
        click.option(
            "--rendition",
            "renditions",
            multiple=True,
            type=click.Choice(RENDITIONS),
            help="An encoded rendition to record besides the source (repeat it).",
        ),
        click.option(
            "--source-only", is_flag=True, help="Record the source alone (clears every --rendition)."
        ),
        click.option(
            "--retention-days",
            type=click.IntRange(0, 3650),
            help="Delete recordings older than this; 0 keeps them for ever.",
        ),
        click.option(
            "--record-store", metavar="URL", help="Object store URL for the recordings ('' for the default)."
        ),
        click.option(
            "--record-webhook",
            metavar="URL",
            help="Asked for the store when a session starts ('' for none).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def record_fields(
    *,
    record: bool | None,
    renditions: tuple[str, ...],
    source_only: bool,
    retention_days: int | None,
    record_store: str | None,
    record_webhook: str | None,
) -> dict[str, Any]:
    """The request fields the recording options set; an option not given is left out."""
    body: dict[str, Any] = {}
    if record is not None:
        body["record"] = record
    if renditions and source_only:
        raise click.BadParameter("--source-only and --rendition contradict each other")
    if renditions or source_only:
        body["recordRenditions"] = list(dict.fromkeys(renditions))
    if retention_days is not None:
        body["retentionDays"] = retention_days or None
    if record_store is not None:
        body["recordObjectStore"] = record_store or None
    if record_webhook is not None:
        body["recordWebhookUrl"] = record_webhook or None
    return body


def _recording(s: dict[str, Any]) -> str | None:
    if "record" not in s:
        return None
    if not s.get("record"):
        return "off"
    renditions = ", ".join(["source", *(s.get("recordRenditions") or [])])
    keep = f"kept {s['retentionDays']} days" if s.get("retentionDays") else "kept for ever"
    return f"on ({renditions}; {keep})"


def call(app: App, method: str, path: str, **kwargs: Any) -> Any:
    """A streams call, with the two refusals said in words: not an operator, and no streams API."""
    try:
        return app.client.call(method, path, auth=True, **kwargs)
    except ApiError as e:
        if e.status == 403:
            raise CliError(
                "only operators can manage streams: ask an administrator to add your account "
                f"({app.profile.email or 'this profile'}) to the operators group ({e.message})",
                ExitCode.FORBIDDEN,
                error="forbidden",
            ) from e
        if e.status in (404, 405) and e.message.startswith(("No route", f"{method} is not allowed")):
            raise CliError(
                f"{app.api} has no streams API (yet): {e.message}", ExitCode.NOT_FOUND, error="no_streams_api"
            ) from e
        raise


def _ago(stamp: str | None, now: datetime | None = None) -> str:
    if not stamp:
        return ""
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = int(((now or datetime.now(UTC)) - when).total_seconds())
    if seconds < 0:
        return f"in {_span(-seconds)}"
    return f"{_span(seconds)} ago"


def _span(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _bitrate(bps: Any) -> str:
    if not isinstance(bps, int | float):
        return ""
    return f"{bps / 1e6:.2f} Mbit/s" if bps >= 1e6 else f"{bps / 1e3:.0f} kbit/s"


def _state(stream: dict[str, Any]) -> str:
    state, desired = stream.get("state") or "?", stream.get("desiredState")
    text = str(state) if not desired or desired == state else f"{state} (wants {desired})"
    if stream.get("outageCause"):
        text += f": {stream['outageCause']}"
    return text


def _slate(stream: dict[str, Any]) -> str | None:
    """Whether KVS is fed the "camera offline" slate (transcode mode), since when, and its fragments."""
    fragments = stream.get("slateFragmentsPersisted") or 0
    counted = f"{fragments} slate fragment{'s' if fragments != 1 else ''} persisted" if fragments else ""
    if stream.get("slateOn"):
        since = stream.get("slateSince")
        on = f"on since {since} ({_ago(since)})" if since else "on"
        return f"{on}, {counted}" if counted else on
    return f"off, {counted}" if counted else None


def status_view(s: dict[str, Any]) -> RenderableType:
    since = s.get("stateSince")
    expires = s.get("credentialsExpireAt")
    return Text(
        fields_text(
            [
                ("id", s.get("streamId")),
                ("name", s.get("name")),
                ("source", s.get("sourceUrl")),
                ("kvs stream", s.get("kvsStreamName")),
                ("video", s.get("video")),
                ("state", _state(s)),
                ("since", f"{since} ({_ago(since)})" if since else None),
                ("reconnects", s.get("reconnects")),
                ("slate", _slate(s)),
                ("input", _bitrate(s.get("inputBitrateBps"))),
                ("last ack", _ago(s.get("lastFragmentAckedAt"))),
                ("credentials", f"expire {_ago(expires)}" if expires else None),
                ("task", (s.get("task") or {}).get("taskId")),
                ("recording", _recording(s)),
                ("record store", s.get("recordObjectStore")),
                ("record webhook", s.get("recordWebhookUrl")),
                ("webhook secret", s.get("recordWebhookSecret")),
            ]
        )
    )


def streams_view(items: list[dict[str, Any]]) -> RenderableType:
    if not items:
        return Text("No streams.")
    return make_table(
        ("ID", "NAME", "STATE", "SINCE", "RECONNECTS", "INPUT", "LAST ACK"),
        (
            (
                s.get("streamId"),
                s.get("name"),
                _state(s) + (", slate on" if s.get("slateOn") else ""),
                _ago(s.get("stateSince")),
                s.get("reconnects"),
                _bitrate(s.get("inputBitrateBps")),
                _ago(s.get("lastFragmentAckedAt")),
            )
            for s in items
        ),
    )


def display(out: Output, view: RenderableType) -> None:
    if not out.json_mode:
        out.out.print(view)


@click.group()
def streams() -> None:
    """Live camera relay to Kinesis Video Streams (operators only)."""


@streams.command()
@click.argument("name")
@click.argument("source_url")
@click.option("--kvs-stream-name", help="Kinesis Video stream to relay to [default: the server's choice].")
@click.option(
    "--video",
    type=click.Choice(VIDEO_MODES),
    default="auto",
    show_default=True,
    help="Pass H.264 through, transcode, or decide from the source.",
)
@record_options
@pass_app
def create(
    app: App, name: str, source_url: str, kvs_stream_name: str | None, video: str, **recording: Any
) -> None:
    """Register a camera feed (HLS, RTSP or SRT URL)."""
    body: dict[str, Any] = {"name": name, "sourceUrl": source_url, "video": video}
    if kvs_stream_name:
        body["kvsStreamName"] = kvs_stream_name
    body |= record_fields(**recording)
    stream = call(app, "POST", "/streams", json=body, ok=(200, 201))

    def human() -> None:
        app.output.say(f"Created stream {stream.get('streamId')} ({name})")
        if stream.get("recordWebhookSecret"):
            app.output.say(f"Webhook signing secret (shown once): {stream['recordWebhookSecret']}")

    app.output.result(stream, human)


@streams.command()
@click.argument("stream_id")
@click.option("--name", help="A new name.")
@click.option("--video", type=click.Choice(VIDEO_MODES), help="A new video mode (while stopped).")
@record_options
@pass_app
def update(app: App, stream_id: str, name: str | None, video: str | None, **recording: Any) -> None:
    """Change a stream's name or settings (recording settings but retention only while stopped)."""
    body: dict[str, Any] = {k: v for k, v in (("name", name), ("video", video)) if v is not None}
    body |= record_fields(**recording)
    if not body:
        raise click.UsageError("nothing to change: give --name, --video or a recording option")
    stream = call(app, "PATCH", f"/streams/{quote(stream_id, safe='')}", json=body, idempotent=True)
    app.output.result(stream, lambda: display(app.output, status_view(stream)))


@streams.command("list")
@click.option("--limit", type=click.IntRange(1, 100), default=50, show_default=True)
@click.option("--cursor")
@pass_app
def list_streams(app: App, limit: int, cursor: str | None) -> None:
    """Every stream with its state."""
    params: dict[str, Any] = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    page = call(app, "GET", "/streams", params=params)
    app.output.result(page, lambda: display(app.output, streams_view(page.get("items") or [])))


@streams.command()
@click.argument("stream_id")
@pass_app
def show(app: App, stream_id: str) -> None:
    """A stream's settings and health."""
    stream = call(app, "GET", f"/streams/{stream_id}")
    app.output.result(stream, lambda: display(app.output, status_view(stream)))


@streams.command()
@click.argument("stream_id")
@pass_app
def status(app: App, stream_id: str) -> None:
    """A stream's health in one line; exit 1 when it wants to run but is not running."""
    stream = call(app, "GET", f"/streams/{stream_id}")
    line = f"{stream.get('name') or stream_id}: {_state(stream)}"
    if stream.get("slateOn"):
        started = _ago(stream.get("slateSince"))
        line += f", KVS gets the slate (started {started})" if started else ", KVS gets the slate"
    if stream.get("state") == "running":
        line += f", {_bitrate(stream.get('inputBitrateBps')) or 'no bitrate yet'}"
        line += f", {stream.get('reconnects') or 0} reconnects"
    app.output.result(stream, lambda: app.output.say(line))
    if stream.get("desiredState") == "running" and stream.get("state") != "running":
        raise click.exceptions.Exit(ExitCode.FAILED)


def _transition(app: App, stream_id: str, action: str) -> None:
    # Starting a started stream is a no-op on the server: safe to retry after a 5xx.
    answer = call(app, "POST", f"/streams/{stream_id}/{action}", idempotent=True, ok=(200, 202, 204))
    data = answer if isinstance(answer, dict) else {"streamId": stream_id, "action": action, "accepted": True}
    app.output.result(data, lambda: app.output.say(f"Stream {stream_id}: {action} requested"))


@streams.command()
@click.argument("stream_id")
@pass_app
def start(app: App, stream_id: str) -> None:
    """Ask for the stream to be relayed (202: a task is being started)."""
    _transition(app, stream_id, "start")


@streams.command()
@click.argument("stream_id")
@pass_app
def stop(app: App, stream_id: str) -> None:
    """Ask for the relay to stop."""
    _transition(app, stream_id, "stop")


@streams.command()
@click.argument("stream_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def delete(app: App, stream_id: str, yes: bool) -> None:
    """Delete a stream."""
    if not yes and sys.stdin.isatty():
        click.confirm(f"Delete stream {stream_id}?", abort=True, err=True)
    call(app, "DELETE", f"/streams/{stream_id}", ok=(200, 202, 204))
    app.output.result(
        {"streamId": stream_id, "deleted": True}, lambda: app.output.say(f"Deleted {stream_id}")
    )


@streams.command()
@click.argument("stream_id", required=False)
@click.option(
    "--interval",
    type=click.FloatRange(0.1),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@click.option(
    "--count", type=click.IntRange(1), help="Stop after this many refreshes [default: until Ctrl-C]."
)
@pass_app
def watch(app: App, stream_id: str | None, interval: float, count: int | None) -> None:
    """Refresh one stream's status (or every stream's) until Ctrl-C.

    With --json, one JSON document per refresh, one per line (JSON Lines).
    """
    out = app.output

    def fetch() -> Any:
        return call(app, "GET", f"/streams/{stream_id}" if stream_id else "/streams")

    def view(data: Any) -> RenderableType:
        return status_view(data) if stream_id else streams_view(data.get("items") or [])

    n = 0
    try:
        if out.json_mode or not out.out.is_terminal:
            # Scripts and logs: a JSON line (or a timestamped block) per refresh.
            while True:
                data = fetch()
                if out.json_mode:
                    click.echo(json.dumps(data, separators=(",", ":")))
                else:
                    out.say(time.strftime("%H:%M:%S"))
                    display(out, view(data))
                n += 1
                if count is not None and n >= count:
                    return
                time.sleep(interval)
        with Live(console=out.out, auto_refresh=False) as live:
            while True:
                footer = Text(f"\nevery {interval:g} s, Ctrl-C to stop", style="dim")
                live.update(Group(view(fetch()), footer), refresh=True)
                n += 1
                if count is not None and n >= count:
                    return
                time.sleep(interval)
    except KeyboardInterrupt:
        return
