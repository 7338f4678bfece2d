"""``reelay videos``: list, show, rename, describe and delete."""

from __future__ import annotations

import sys
from typing import Any

import click

from reelay_cli.app import App, pass_app
from reelay_cli.output import Output


def show_video(out: Output, video: dict[str, Any]) -> None:
    status = video.get("status")
    if status == "processing":
        status = f"processing {video.get('progress', 0)} %"
    renditions = ", ".join(r.get("name", "?") for r in video.get("renditions") or [])
    duration = video.get("durationSeconds")
    out.fields(
        [
            ("id", video.get("videoId")),
            ("name", video.get("displayName")),
            ("description", video.get("description")),
            ("status", status),
            ("failure", video.get("failureReason")),
            ("duration", f"{duration:.1f} s" if isinstance(duration, int | float) else None),
            ("renditions", renditions),
            ("uploaded", video.get("uploadTime")),
            ("playback", video.get("playbackUrl")),
            ("poster", video.get("thumbnailUrl")),
        ]
    )


def _status(video: dict[str, Any]) -> str:
    status = str(video.get("status", ""))
    return f"processing {video.get('progress', 0)}%" if status == "processing" else status


@click.group()
def videos() -> None:
    """Browse and manage videos."""


@videos.command("list")
@click.option("--mine", is_flag=True, help="Your own videos, any status (else: everyone's ready videos).")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@click.option("--cursor", help="nextCursor of the previous page.")
@click.option("--all", "all_pages", is_flag=True, help="Follow nextCursor through every page.")
@pass_app
def list_videos(app: App, mine: bool, limit: int, cursor: str | None, all_pages: bool) -> None:
    """List videos, newest first."""
    path = "/me/videos" if mine else "/videos"
    items: list[dict[str, Any]] = []
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = app.client.call("GET", path, params=params, auth=mine)
        items.extend(page.get("items") or [])
        cursor = page.get("nextCursor")
        if not all_pages or not cursor:
            break
    out = app.output

    def human() -> None:
        if not items:
            out.say("No videos." if mine else "No ready videos yet.")
            return
        out.table(
            ("ID", "NAME", "STATUS", "DURATION", "UPLOADED"),
            (
                (
                    v.get("videoId"),
                    v.get("displayName"),
                    _status(v),
                    f"{v['durationSeconds']:.1f} s" if v.get("durationSeconds") is not None else "",
                    (v.get("uploadTime") or "")[:19].replace("T", " "),
                )
                for v in items
            ),
        )
        if cursor:
            out.notice(f"more: reelay videos list{' --mine' if mine else ''} --cursor {cursor}")

    out.result({"items": items, "nextCursor": cursor}, human)


@videos.command("show")
@click.argument("video_id")
@pass_app
def show(app: App, video_id: str) -> None:
    """One video: status, failure reason, renditions, playback URL."""
    video = app.client.video(video_id)
    app.output.result(video, lambda: show_video(app.output, video))


def _patch(app: App, video_id: str, **fields: str) -> None:
    video = app.client.call("PATCH", f"/videos/{video_id}", json=fields, auth=True, idempotent=True)
    app.output.result(video, lambda: show_video(app.output, video))


@videos.command()
@click.argument("video_id")
@click.argument("name")
@pass_app
def rename(app: App, video_id: str, name: str) -> None:
    """Give a video a new display name (owner only)."""
    _patch(app, video_id, displayName=name)


@videos.command()
@click.argument("video_id")
@click.argument("text")
@pass_app
def describe(app: App, video_id: str, text: str) -> None:
    """Set a video's description (owner only)."""
    _patch(app, video_id, description=text)


@videos.command()
@click.argument("video_id")
@click.argument("visibility", type=click.Choice(["public", "unlisted", "private"]))
@pass_app
def visibility(app: App, video_id: str, visibility: str) -> None:
    """Who can watch a video (owner only): public (listed), unlisted (with the link), private (you only)."""
    _patch(app, video_id, visibility=visibility)


@videos.command()
@click.argument("video_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def delete(app: App, video_id: str, yes: bool) -> None:
    """Delete a video and its media (owner only)."""
    if not yes and sys.stdin.isatty():
        click.confirm(f"Delete video {video_id} and its media?", abort=True, err=True)
    app.client.call("DELETE", f"/videos/{video_id}", auth=True, idempotent=True)
    app.output.result({"videoId": video_id, "deleted": True}, lambda: app.output.say(f"Deleted {video_id}"))
