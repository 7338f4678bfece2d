"""The ``reelay`` command: auth, upload, videos, streams and recordings, against the Reelay HTTP API.

Exit codes: 0 ok; 1 the operation failed (a video that failed, a refused request); 2 usage;
3 authentication (not logged in, bad credentials, session expired); 4 not found; 5 network or
server failure (after retries) or a timeout; 6 forbidden (not the owner, not an operator);
130 interrupted.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from reelay_cli import __version__
from reelay_cli.app import App, jwt_claims, pass_app
from reelay_cli.config import DEFAULT_API, DEFAULT_PROFILE, cache_dir
from reelay_cli.errors import CliError, ExitCode
from reelay_cli.output import BarProgress, Output, TranscodeBar
from reelay_cli.recordings import recordings
from reelay_cli.streams import streams
from reelay_cli.upload import ResumeStore, Uploader, wait_for_video
from reelay_cli.videos import show_video, videos

EXIT_CODES_HELP = """\b
Exit codes:
  0 ok                1 operation failed (e.g. the video failed)
  2 usage             3 not logged in / bad credentials
  4 not found         5 network or server failure, timeout
  6 forbidden         130 interrupted
"""

# Read by main() to answer an error with JSON when the command line asked for it.
_json_requested = False


@click.group(epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--api",
    envvar="REELAY_API",
    metavar="URL",
    help=f"API base URL [default: the profile's, else {DEFAULT_API}]",
)
@click.option(
    "--profile",
    envvar="REELAY_PROFILE",
    default=DEFAULT_PROFILE,
    show_default=True,
    help="Named profile in the config file: its own API and account.",
)
@click.option("--json", "json_mode", is_flag=True, help="Print exactly one JSON document on stdout.")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bars on stderr [default: when a terminal]."
)
@click.version_option(__version__, prog_name="reelay")
@click.pass_context
def cli(ctx: click.Context, api: str | None, profile: str, json_mode: bool, progress: bool | None) -> None:
    """Reelay from the command line: sign up, upload, watch the transcode, manage videos and streams."""
    global _json_requested
    _json_requested = json_mode
    ctx.obj = App(api_option=api, profile_name=profile, output=Output(json_mode=json_mode, progress=progress))


# --- account --------------------------------------------------------------------------------------
def _password(stdin: bool, *, confirm: bool) -> str:
    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError("--password-stdin: no password on standard input", ExitCode.USAGE, error="usage")
        return password
    return click.prompt("Password", hide_input=True, confirmation_prompt=confirm, err=True)


def _email(app: App, email: str | None) -> str:
    return email or app.profile.email or click.prompt("Email", err=True)


@cli.command()
@click.option("--email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_app
def register(app: App, email: str | None, password_stdin: bool) -> None:
    """Sign up; a confirmation code is emailed (printed by the local platform)."""
    email = _email(app, email)
    body = app.client.call(
        "POST", "/auth/register", json={"email": email, "password": _password(password_stdin, confirm=True)}
    )
    app.profile.email = email
    app.remember_api()
    app.store.save(app.profile)
    app.output.result(
        body, lambda: app.output.say(f"Registered {email}. Enter the emailed code with: reelay confirm")
    )


@cli.command()
@click.option("--email")
@click.option("--code", help="The emailed code (prompted when missing).")
@click.option("--resend", is_flag=True, help="Send the code again instead.")
@pass_app
def confirm(app: App, email: str | None, code: str | None, resend: bool) -> None:
    """Confirm a sign-up with the emailed code (or --resend it)."""
    email = _email(app, email)
    if resend:
        body = app.client.call("POST", "/auth/resend-code", json={"email": email})
    else:
        code = code or click.prompt("Code", err=True)
        body = app.client.call("POST", "/auth/confirm-register", json={"email": email, "code": code})
    app.output.result(body, lambda: app.output.say(f"{email}: {body['message']}"))


@cli.command()
@click.option("--email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_app
def login(app: App, email: str | None, password_stdin: bool) -> None:
    """Log in; the tokens are kept in the config directory (mode 0600) and refreshed when they expire."""
    email = _email(app, email)
    app.remember_api()
    tokens = app.client.login(email, _password(password_stdin, confirm=False))
    data = {"profile": app.profile_name, "api": app.api, "email": email, "expiresAt": _iso(tokens.expires_at)}
    app.output.result(
        data, lambda: app.output.say(f"Logged in to {app.api} as {email} (profile {app.profile_name})")
    )


@cli.command()
@pass_app
def logout(app: App) -> None:
    """Forget this profile's tokens."""
    had = app.client.logout()
    data = {"profile": app.profile_name, "loggedOut": had}
    app.output.result(data, lambda: app.output.say("Logged out" if had else "Was not logged in"))


@cli.command()
@pass_app
def whoami(app: App) -> None:
    """Who this profile is logged in as (renewing the session when it has expired)."""
    tokens = app.client.tokens()
    claims = jwt_claims(tokens.id_token)
    groups = claims.get("cognito:groups") or []
    data = {
        "profile": app.profile_name,
        "api": app.api,
        "email": claims.get("email") or app.profile.email,
        "userId": claims.get("sub"),
        "groups": groups,
        "expiresAt": _iso(tokens.expires_at),
    }
    app.output.result(data, lambda: app.output.fields(data.items()))


# --- upload ---------------------------------------------------------------------------------------
class ByteRate(click.ParamType):
    name = "RATE"
    _UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip().upper().removesuffix("/S").removesuffix("B").removesuffix("I")
        unit = text[-1:] if text[-1:] in "KMG" else ""
        try:
            rate = float(text[: len(text) - len(unit)]) * self._UNITS[unit]
        except ValueError:
            self.fail(f"{value!r} is not a rate such as 500K or 2M (bytes per second)", param, ctx)
        if rate <= 0:
            self.fail("the rate must be above 0", param, ctx)
        return rate


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("--name", help="Display name [default: the file name].")
@click.option("--description", default="", help="Description.")
@click.option("--content-type", help="MIME type [default: from the file extension].")
@click.option("--wait", is_flag=True, help="Follow the transcode until ready (exit 0) or failed (exit 1).")
@click.option("--timeout", type=float, help="With --wait: give up after this many seconds (exit 5).")
@click.option(
    "--parallel", type=click.IntRange(1, 16), default=4, show_default=True, help="Parts sent at once."
)
@click.option("--limit-rate", type=ByteRate(), help="Cap the upload speed, e.g. 500K or 2M bytes/s.")
@pass_app
def upload(
    app: App,
    file: Path,
    name: str | None,
    description: str,
    content_type: str | None,
    wait: bool,
    timeout: float | None,
    parallel: int,
    limit_rate: float | None,
) -> None:
    """Upload FILE (parallel parts above the server's multipart threshold; a rerun resumes)."""
    out = app.output
    progress = BarProgress(out.err, file.name) if out.show_progress else None
    uploader = Uploader(
        app.client,
        ResumeStore(cache_dir() / "uploads"),
        parallel=parallel,
        limit_rate=limit_rate,
        progress=progress,
        notice=out.notice,
    )
    started = time.monotonic()
    try:
        result = uploader.upload(file, name=name, description=description, content_type=content_type)
    except KeyboardInterrupt:
        raise CliError(
            "upload interrupted; run the same command again to resume it",
            ExitCode.INTERRUPTED,
            error="interrupted",
        ) from None
    seconds = time.monotonic() - started
    out.notice(
        f"uploaded {result.bytes_sent} bytes in {seconds:.1f} s"
        + (
            f" ({result.parts_sent} of {result.parts_total} parts; {result.parts_skipped} sent before)"
            if result.multipart
            else ""
        )
    )
    video = result.video
    if wait:
        video = _wait(app, result.video_id, timeout)
    data = {"videoId": result.video_id, "video": video, "upload": result.to_json()}
    out.result(data, lambda: show_video(out, video))
    if video.get("status") == "failed":
        out.error(f"video {result.video_id} failed: {video.get('failureReason') or 'no reason given'}")
        raise click.exceptions.Exit(ExitCode.FAILED)


def _wait(app: App, video_id: str, timeout: float | None) -> dict[str, Any]:
    out = app.output
    last: list[str] = []
    bar = TranscodeBar(out.err) if out.show_progress else None

    def update(video: dict[str, Any]) -> None:
        status = video.get("status", "?")
        line = f"{status} {video.get('progress', 0)} %" if status == "processing" else status
        if bar is not None:
            bar.update(status, int(video.get("progress") or 0))
        elif not last or last[-1] != line:
            last.append(line)
            out.notice(f"video {video_id}: {line}")

    try:
        return wait_for_video(app.client, video_id, timeout=timeout, on_update=update)
    except KeyboardInterrupt:
        raise CliError(
            f"stopped waiting; the video keeps transcoding: reelay videos show {video_id}",
            ExitCode.INTERRUPTED,
            error="interrupted",
        ) from None
    finally:
        if bar is not None:
            bar.finish()


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


cli.add_command(videos)
cli.add_command(streams)
cli.add_command(recordings)


# --- entry point ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    global _json_requested
    _json_requested = False
    try:
        rv = cli.main(args=argv, prog_name="reelay", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return ExitCode.INTERRUPTED
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except CliError as e:
        Output().error(e.message)
        if _json_requested:
            Output.emit_json(e.as_json())
        return e.code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return ExitCode.INTERRUPTED
    except Exception as e:  # a bug: words, not a traceback, unless asked for
        if os.environ.get("REELAY_DEBUG"):
            raise
        Output().error(f"unexpected {type(e).__name__}: {e} (set REELAY_DEBUG=1 for the traceback)")
        if _json_requested:
            Output.emit_json({"error": "internal", "message": str(e), "exitCode": int(ExitCode.FAILED)})
        return ExitCode.FAILED
