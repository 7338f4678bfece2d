"""The MP4 export's entry point: ``python -m transcoder.export --state JSON`` (or REELAY_EXPORT_STATE).

The ``ExportMp4`` step of the recording workflow: an ECS RunTask (``.sync``) of the media image in
AWS, a subprocess locally. The state is the workflow's (videoId, mp4Key, exportRendition, and
optionally exportStart/exportEnd in seconds). Prints the export's result as one JSON line; exits 1
with the reason on stderr when it fails, so the workflow's catch records it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from reelay.recording.export import export_mp4
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
    prefix = f"{settings.output_prefix}{state['videoId']}/"
    try:
        result = export_mp4(
            store,
            f"{prefix}{state.get('exportRendition') or 'source'}/index.m3u8",
            state["mp4Key"],
            start=state.get("exportStart"),
            end=state.get("exportEnd"),
            work_dir=None,
        )
    except Exception as exc:  # the reason goes to the workflow; the traceback to the log
        print(f"export failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
