"""What a GStreamer client shows for each camera fault, and when: ``python -m tests.camera_fault_report``.

For each source type and fault it starts a camera, a real client pipeline, waits for frames, applies
the fault, records the client's bus (ERROR, WARNING, EOS) for ``--observe`` seconds, heals, and says
whether the same client resumed by itself and how fast a new client gets frames.

    .venv/bin/python -m tests.camera_fault_report                 # every scenario
    .venv/bin/python -m tests.camera_fault_report rtsp-stall --observe 40
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from local.cameras import Camera, HlsCamera, RtspCamera, SrtCamera
from local.faults import TcpFaultProxy, UdpFaultProxy
from tests.camera_fixtures import GstClient, hls_client, rtsp_client, srt_client


@dataclass
class Setup:
    url: str
    client: Callable[[str], str]
    fault: Callable[[], object]
    heal: Callable[[], object]
    down_first: bool = False  # the fault is in place before the client starts (a source that is down)


def _hls(stack: ExitStack, fault: str) -> Setup:
    cam = stack.enter_context(HlsCamera(Path(stack.enter_context(tempfile.TemporaryDirectory()))))
    if fault == "down":
        return Setup(cam.url, hls_client, cam.kill, cam.start, down_first=True)
    if fault == "cut":
        proxy = stack.enter_context(TcpFaultProxy(cam.port))
        return Setup(proxy.url("http", "/live.m3u8"), hls_client, proxy.cut, proxy.heal)
    actions: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        "kill": (cam.kill, cam.start),
        "stall": (cam.stall, cam.heal),
        "freeze": (cam.freeze_playlist, cam.heal),
        "404": (cam.fail_segments, cam.heal),
    }
    return Setup(cam.url, hls_client, *actions[fault])


def _rtsp(stack: ExitStack, fault: str) -> Setup:
    cam = stack.enter_context(RtspCamera())
    if fault in ("kill", "down"):
        return Setup(cam.url, rtsp_client, cam.kill, cam.start, down_first=fault == "down")
    proxy = stack.enter_context(TcpFaultProxy(cam.port))
    return Setup(proxy.url("rtsp", cam.path), rtsp_client, getattr(proxy, fault), proxy.heal)


def _srt(stack: ExitStack, fault: str) -> Setup:
    cam = stack.enter_context(SrtCamera())
    if fault in ("kill", "down"):
        return Setup(cam.url, srt_client, cam.kill, cam.start, down_first=fault == "down")
    proxy = stack.enter_context(UdpFaultProxy(cam.port))
    return Setup(proxy.url(), srt_client, proxy.stall, proxy.heal)


SCENARIOS: dict[str, Callable[[ExitStack], Setup]] = {
    **{f"hls-{f}": partial(_hls, fault=f) for f in ("kill", "stall", "freeze", "404", "cut", "down")},
    **{f"rtsp-{f}": partial(_rtsp, fault=f) for f in ("kill", "stall", "cut", "down")},
    **{f"srt-{f}": partial(_srt, fault=f) for f in ("kill", "stall", "down")},
}


@contextmanager
def _client(desc: str) -> Iterator[GstClient]:
    client = GstClient(desc).start()
    try:
        yield client
    finally:
        client.stop()


def run(name: str, observe: float) -> None:
    with ExitStack() as stack:
        setup = SCENARIOS[name](stack)
        if setup.down_first:
            setup.fault()
        with _client(setup.client(setup.url)) as client:
            if setup.down_first:
                t = 0.0
                print(f"== {name}: the client starts while the source is down")
            elif not client.wait_buffers(15, 15):
                print(f"{name}: no frames before the fault: {[str(e) for e in client.events]}")
                return
            else:
                t = client.elapsed
                setup.fault()
            end = time.monotonic() + observe
            while time.monotonic() < end:
                client.poll(0.1)
            if client.last_buffer_at is not None:
                last = client.last_buffer_at - client._t0 - t
                print(f"== {name}: last buffer {last:+.2f} s after the fault; bus within {observe:.0f} s:")
            else:
                print(f"   no buffer; bus within {observe:.0f} s:")
            events = client.events_since(t)
            for e in events:
                message, _, debug = e.text.partition(" | ")
                print(f"   +{e.at - t:5.2f} s {e.kind.upper()} from {e.source}: {message}")
                if debug:
                    print(f"            ({debug.splitlines()[-1].strip()[:150]})")
            if not events:
                print("   (nothing)")
            healed_at = client.elapsed
            setup.heal()
            resumed = client.wait_buffers(5, 10)
            took = f" after {client.elapsed - healed_at:.2f} s" if resumed else ""
            print(f"   heal/restart: same client resumed: {'yes' + took if resumed else 'no (within 10 s)'}")
        with _client(setup.client(setup.url)) as again:
            ok = again.wait_buffers(5, 15)
            print(f"   a new client: {f'frames after {again.elapsed:.2f} s' if ok else 'NO frames in 15 s'}")


def startup(rounds: int = 5) -> None:
    makers: dict[str, Callable[[], Camera]] = {
        "hls": lambda: HlsCamera(Path(tempfile.mkdtemp(prefix="reelay-report-"))),
        "rtsp": RtspCamera,
        "srt": SrtCamera,
    }
    for kind, make in makers.items():
        cam, times = make(), []
        with cam:
            for _ in range(rounds):
                cam.restart()
                times.append(cam.startup_seconds or 0.0)
        times.sort()
        median = times[len(times) // 2]
        print(f"start-up {kind:5s} median {median:.2f} s (min {times[0]:.2f}, max {times[-1]:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenarios", nargs="*", help=f"startup, {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--observe", type=float, default=12.0, help="seconds to watch the bus after a fault")
    args = parser.parse_args()
    unknown = set(args.scenarios) - {*SCENARIOS, "startup"}
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    for name in args.scenarios or ["startup", *SCENARIOS]:
        if name == "startup":
            startup()
        else:
            run(name, args.observe)


if __name__ == "__main__":
    main()
