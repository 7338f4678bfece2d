"""The MP4 export's entry point: ``python -m transcoder.export --state JSON`` (or REELAY_EXPORT_STATE).

The ``ExportMp4`` step of the recording workflow: an ECS RunTask (``.sync``) of the media image in
AWS, a subprocess locally. The state is the workflow's (videoId, mp4Key, exportRendition, and
optionally exportStart/exportEnd in seconds). Prints the export's result as one JSON line; exits 1
with the reason on stderr when it fails. A range export (its state carries the ``export`` record)
also writes that reason into the export's state JSON: Step Functions only learns that the task's
container exited, so the export workflow's catch step keeps the reason the task wrote.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from reelay.ports import ObjectStore
from reelay.recording.export import export_mp4, recording_playlist
from reelay.recording.steps import iso_now, put_export_record
from reelay.settings import get_settings
from reelay.storage import open_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m transcoder.export", description=__doc__)
    parser.add_argument(
        "--state", default=os.environ.get("REELAY_EXPORT_STATE"), help="the workflow state (JSON)"
    )
    args = parser.parse_args(argv)
    if not args.state:
        parser.error("--state or REELAY_EXPORT_STATE is required")
    state = json.loads(args.state)
    settings = get_settings()
    store = open_store(settings.media_store_url, settings=settings)
    try:
        playlist = recording_playlist(
            store, settings, state["videoId"], state.get("exportRendition") or "source"
        )
        result = export_mp4(
            store,
            playlist,
            state["mp4Key"],
            start=state.get("exportStart"),
            end=state.get("exportEnd"),
            work_dir=None,
        )
    except Exception as exc:  # the reason goes to the workflow; the traceback to the log
        reason = f"export failed: {exc}"
        print(reason, file=sys.stderr)
        record_failure(store, state, reason)
        return 1
    print(json.dumps(result))
    return 0


def record_failure(store: ObjectStore, state: dict, reason: str) -> None:
    """A range export's state JSON says failed, with the task's own reason (best effort: the catch
    step records a reason of its own when this could not be written)."""
    record = state.get("export")
    if not isinstance(record, dict):
        return  # the finalize workflow's whole-recording MP4: its catch step has the reason
    try:
        failed = {"state": "failed", "failureReason": reason[:2000], "updatedAt": iso_now()}
        put_export_record(store, {**record, **failed})
    except Exception as exc:
        print(f"the export's state was not written: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
