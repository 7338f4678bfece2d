"""``python -m local.kvs --port N --dir D``: run the KVS stand-in in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import threading

from local.kvs.server import KvsStandIn


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m local.kvs", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed at start)")
    p.add_argument("--dir", required=True, help="where streams and fragments are stored")
    p.add_argument("--credential-ttl", type=float, default=3600, help="lifetime of issued keys, seconds")
    p.add_argument("--region", default="us-east-1")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    standin = KvsStandIn(
        args.dir, host=args.host, port=args.port, credential_ttl=args.credential_ttl, region=args.region
    ).start()
    print(f"KVS stand-in on {standin.url}", flush=True)
    print(f"  CONTROL_PLANE_URI={standin.url}", flush=True)
    print(f"  AWS_CONTAINER_CREDENTIALS_FULL_URI={standin.credentials_url}", flush=True)
    print(f"  watch: {standin.url}/_reelay/streams", flush=True)
    print(f"  play:  ffplay '{standin.url}/_reelay/streams/<stream>/live.mkv?last=10'", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    standin.stop()


if __name__ == "__main__":
    main()
