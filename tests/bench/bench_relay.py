"""Live relay: Reelay's relay task against the seed's setup, on real cameras, the real kvssink and the
KVS stand-in, measured in the same run.

The peer ("seed") is the hand-written line the issue replaces: ``gst-launch-1.0 <source> ! decodebin !
videoconvert ! x264enc tune=zerolatency ... ! h264parse ! kvssink`` under a restart loop that waits
5 s after it exits (systemd's ``Restart=always RestartSec=5``; the loop is Python here, so it is bounded
and stops cleanly). Both sides get the same kvssink build, the same stand-in, the same environment
rules (no static ``AWS_*`` keys; ``CONTROL_PLANE_URI`` and a credential file) and the same camera.
Reelay is the real task (``python -m transcoder.relay``, started by the local launcher, catalogue in
MariaDB) with the production relay settings.

1. Recovery: source back -> first fragment PERSISTED at the stand-in (its receive time), over several
   outages of each kind (camera killed then back, KVS stand-in down then back). Both sides relay the
   same camera at once, so each outage hits both at the same moment.
2. Stall detection: a proxy in front of the camera stalls (RTSP: TCP, SRT: UDP). Reelay: its task's
   "relay dropped" log line; seed: gst-launch exiting, or a lower bound when it never does.
3. Cost per feed: CPU seconds per minute of a 1080p30 H.264 camera (keyframe every 2 s), from
   /proc/<pid>/stat of each side's process over the same window length, one side at a time.
4. Memory: RSS of a supervisor process (real kvssink, malloc arenas capped as the relay task caps them)
   after 10 and after 100 pipeline rebuilds, each forced by cutting the TCP proxy in front of its camera
   once media flows; and its C heap in use (glibc's mallinfo2), which shows a leak that RSS, counting
   what malloc keeps free for reuse, can hide.

Counts are environment variables (``REELAY_BENCH_RELAY_*``, see ``Config``). Everything listens on
loopback; every child is stopped in ``finally`` blocks.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tests.bench.registry import ROOT, BenchContext, Row

BENCH = "relay"
RESTART_SECONDS = 5.0  # systemd's RestartSec=5 in the seed's unit
DROP_LINE = "relay dropped"
FLOWING_LINE = "relay media flowing"
_STATIC_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


# --- configuration ------------------------------------------------------------------------------------------
def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass(frozen=True)
class Config:
    """Each field from ``REELAY_BENCH_RELAY_<FIELD>`` (PARTS, KINDS: comma lists; OUTAGES,
    OUTAGE_SECONDS, RECOVERY_WAIT, STALLS, SEED_STALL_WAIT, COST_SECONDS, REBUILDS). The defaults take
    about 5 minutes on 2 busy cores."""

    parts: tuple[str, ...] = ("recovery", "stall", "cost", "memory")
    kinds: tuple[str, ...] = ("rtsp", "srt", "hls")  # camera kinds for recovery
    outages: int = 3  # per outage kind and camera kind
    outage_seconds: float = 3.0
    recovery_wait: float = 25.0  # past this, a recovery is reported as a lower bound
    stalls: int = 2  # per protocol
    seed_stall_wait: float = 20.0  # how long to wait for gst-launch to notice a stall
    cost_seconds: float = 20.0
    rebuilds: int = 100

    @classmethod
    def from_env(cls) -> Config:
        d = cls()
        split = lambda name, default: tuple(  # noqa: E731
            p.strip() for p in os.environ.get(name, ",".join(default)).split(",") if p.strip()
        )
        return cls(
            parts=split("REELAY_BENCH_RELAY_PARTS", d.parts),
            kinds=split("REELAY_BENCH_RELAY_KINDS", d.kinds),
            outages=_env_int("REELAY_BENCH_RELAY_OUTAGES", d.outages),
            outage_seconds=_env_float("REELAY_BENCH_RELAY_OUTAGE_SECONDS", d.outage_seconds),
            recovery_wait=_env_float("REELAY_BENCH_RELAY_RECOVERY_WAIT", d.recovery_wait),
            stalls=_env_int("REELAY_BENCH_RELAY_STALLS", d.stalls),
            seed_stall_wait=_env_float("REELAY_BENCH_RELAY_SEED_STALL_WAIT", d.seed_stall_wait),
            cost_seconds=_env_float("REELAY_BENCH_RELAY_COST_SECONDS", d.cost_seconds),
            rebuilds=_env_int("REELAY_BENCH_RELAY_REBUILDS", d.rebuilds),
        )


# --- pure helpers (unit-tested) -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """One measured interval in seconds; ``bound`` means the event never came within ``value`` s."""

    value: float
    bound: bool = False


def median(samples: Sequence[Sample]) -> Sample:
    """Median of the values. A lower bound when half or more of the samples are lower bounds (the
    true median is then at least the median computed)."""
    if not samples:
        raise ValueError("no samples")
    value = statistics.median(s.value for s in samples)
    bounds = sum(s.bound for s in samples)
    return Sample(value, bound=bounds * 2 >= len(samples))


def ratio(peer: Sample, ours: Sample) -> Sample:
    """How many times longer the peer takes. A lower bound when the peer's figure is one."""
    if ours.value <= 0:
        raise ValueError("our figure must be positive for a ratio")
    return Sample(peer.value / ours.value, bound=peer.bound and not ours.bound)


def shown(sample: Sample, unit: str = "s") -> str:
    text = f"{sample.value:.2f}{(' ' + unit) if unit else ''}"
    return f"> {text}" if sample.bound else text


def log_time(line: str) -> float | None:
    """Epoch seconds of a JSON log line written by the task's powertools logger, else None."""
    try:
        doc = json.loads(line)
        stamp = doc["timestamp"]
    except (ValueError, KeyError, TypeError):
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S,%f%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
        with contextlib.suppress(ValueError):
            return datetime.strptime(stamp, fmt).timestamp()
    return None


def first_line_after(text: str, needle: str, after: float) -> float | None:
    """The time of the first JSON log line containing ``needle`` stamped at or after ``after``."""
    for line in text.splitlines():
        if needle in line:
            t = log_time(line)
            if t is not None and t >= after:
                return t
    return None


def first_after(times: Sequence[float], after: float) -> float | None:
    later = [t for t in times if t >= after]
    return min(later) if later else None


def cpu_seconds(stat_line: str, ticks_per_second: float) -> float:
    """utime + stime of one /proc/<pid>/stat line (the command may hold spaces and parentheses)."""
    fields = stat_line.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks_per_second  # fields 14 and 15 of stat(5)


def rss_mb(status_text: str) -> float:
    """VmRSS of one /proc/<pid>/status, in MB."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError("no VmRSS line")


def seed_argv(source: str, *, stream: str, credential_path: Path, log_config: Path, keyint: int) -> list[str]:
    """The seed's gst-launch line. x264enc gets the camera's keyframe interval (so fragments are as
    long on both sides) and veryfast, as Reelay's own transcode path uses (the seed's default preset,
    medium, would cost more). kvssink gets the relay's log level, so the cost is the pipeline's."""
    src = {
        "rtsp": f"rtspsrc location={source} protocols=tcp",  # TCP: the stall proxy carries it all
        "srt": f"srtsrc uri={source}",
        "http": f"souphttpsrc location={source} ! hlsdemux",
    }[source.split(":", 1)[0]]
    line = (
        f"{src} ! decodebin ! videoconvert ! video/x-raw,format=I420"
        f" ! x264enc tune=zerolatency speed-preset=veryfast bitrate=2500 key-int-max={keyint}"
        " ! video/x-h264,profile=main ! h264parse ! video/x-h264,stream-format=avc,alignment=au"
        f" ! kvssink stream-name={stream} aws-region=us-east-1 credential-path={credential_path}"
        f" log-config={log_config}"
    )
    return ["gst-launch-1.0", "-q", *line.split(" ")]


def count_frames(cluster: bytes) -> int:
    """Video frames in one stored Cluster: its SimpleBlock (0xA3) and BlockGroup (0xA0) children."""
    from local.kvs.ebml import UNKNOWN_SIZE, read_id, read_size

    head = read_id(cluster, 0)
    size = read_size(cluster, head[1]) if head else None
    if head is None or size is None:
        return 0
    pos = head[1] + size[1]
    end = len(cluster) if size[0] == UNKNOWN_SIZE else min(len(cluster), pos + size[0])
    frames = 0
    while pos < end:
        element, child = read_id(cluster, pos), None
        if element is not None:
            child = read_size(cluster, pos + element[1])
        if element is None or child is None or child[0] == UNKNOWN_SIZE:
            break
        frames += element[0] in (0xA3, 0xA0)
        pos += element[1] + child[1] + child[0]
    return frames


def growth_per_rebuild(samples: dict[int, float], first: int) -> float:
    """Least-squares slope of ``samples`` (rebuild -> MB) from rebuild ``first`` on: every sample counts,
    so one taken while a buffer was in flight moves it less than it moves a difference of two."""
    xs = [k for k in sorted(samples) if k >= first]
    return statistics.linear_regression(xs, [samples[k] for k in xs]).slope


def recycle_verdict(growth_mb_per_rebuild: float, rebuilds_per_day: float = 1440) -> str:
    """A feed flapping once a minute rebuilds 1440 times a day."""
    per_day = growth_mb_per_rebuild * rebuilds_per_day
    if per_day < 50:
        return f"no recycling needed (~{per_day:.0f} MB/day at one rebuild a minute)"
    return f"recycle the task: ~{per_day:.0f} MB/day at one rebuild a minute"


# --- processes ----------------------------------------------------------------------------------------------
def proc_cpu(pid: int) -> float:
    return cpu_seconds(Path(f"/proc/{pid}/stat").read_text(), os.sysconf("SC_CLK_TCK"))


def proc_rss_mb(pid: int) -> float:
    return rss_mb(Path(f"/proc/{pid}/status").read_text())


def child_env(kvs: object, **extra: str) -> dict[str, str]:
    """The environment rules of a kvssink process: no static keys, the stand-in's control plane."""
    env = {k: v for k, v in os.environ.items() if k not in _STATIC_KEYS}
    env.update(
        CONTROL_PLANE_URI=kvs.url,  # type: ignore[attr-defined]
        AWS_CONTAINER_CREDENTIALS_FULL_URI=kvs.credentials_url,  # type: ignore[attr-defined]
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def _stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class SeedLoop:
    """The seed's unit: run gst-launch; when it exits, wait 5 s and run it again. Bounded by stop()."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, restart: float = RESTART_SECONDS):
        self.argv, self.env, self.log, self.restart = argv, env, log, restart
        self.exits: list[float] = []
        self.starts: list[float] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="seed-loop", daemon=True)

    def start(self) -> SeedLoop:
        self._thread.start()
        return self

    @property
    def pid(self) -> int | None:
        with self._lock:
            return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _loop(self) -> None:
        with self.log.open("ab") as out:
            while not self._stop.is_set():
                with self._lock:
                    if self._stop.is_set():
                        return
                    self._proc = subprocess.Popen(
                        self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
                    )
                    proc = self._proc
                self.starts.append(time.time())
                proc.wait()
                self.exits.append(time.time())
                self._stop.wait(self.restart)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            proc = self._proc
        if proc is not None:
            _stop_process(proc, signal.SIGINT, timeout=5)  # gst-launch stops on SIGINT
        self._thread.join(15)


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> object:
    from tests.relay_fixtures import wait_until  # the integration tests' poll (imports pytest)

    return wait_until(predicate, timeout, what)


# --- the rig: stand-in, catalogue, launcher -----------------------------------------------------------------
@dataclass
class Rig:
    work: Path
    kvs: object  # KvsStandIn
    streams: object  # StreamService
    catalogue: object
    relays: object  # LocalRelays
    log_dir: Path
    credential_path: Path
    log_config: Path

    def persisted_times(self, kvs_stream: str) -> list[float]:
        return [r.serverTimestamp for r in self.kvs.persisted(kvs_stream)]  # type: ignore[attr-defined]

    def frames(self, kvs_stream: str, skip: int) -> tuple[int, int]:
        """(fragments, video frames) persisted for ``kvs_stream`` after its first ``skip`` fragments."""
        records = self.kvs.persisted(kvs_stream)[skip:]  # type: ignore[attr-defined]
        d = self.kvs.store.root / kvs_stream / "fragments"  # type: ignore[attr-defined]
        return len(records), sum(count_frames((d / f"{r.fragmentNumber}.mkc").read_bytes()) for r in records)

    def start_reelay(self, url: str) -> tuple[str, str]:
        """A started stream; returns (stream id, KVS stream name)."""
        s = self.streams.create("operator-1", f"bench {uuid.uuid4().hex[:6]}", url, video="auto")  # type: ignore[attr-defined]
        self.streams.start("operator-1", s.stream_id)  # type: ignore[attr-defined]
        return s.stream_id, self.catalogue.get_stream(s.stream_id).kvs_stream_name  # type: ignore[attr-defined]

    def stop_reelay(self, stream_id: str) -> None:
        self.streams.stop("operator-1", stream_id)  # type: ignore[attr-defined]
        wait_for(lambda: self.relays.pid(stream_id) is None, 20, "the relay task to exit")  # type: ignore[attr-defined]

    def reelay_log(self, stream_id: str) -> str:
        path = self.log_dir / f"{stream_id}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start_seed(self, url: str, name: str, keyint: int) -> tuple[SeedLoop, str]:
        stream = f"seed-{name}-{uuid.uuid4().hex[:6]}"
        argv = seed_argv(
            url,
            stream=stream,
            credential_path=self.credential_path,
            log_config=self.log_config,
            keyint=keyint,
        )
        env = child_env(self.kvs, GST_PLUGIN_PATH=str(_plugin_dir()), GST_DEBUG="0")
        return SeedLoop(argv, env, self.log_dir / f"{stream}.log").start(), stream

    def flowing(self, kvs_stream: str, timeout: float = 40) -> None:
        """Wait for a fragment persisted from now on."""
        since = time.time()
        wait_for(
            lambda: first_after(self.persisted_times(kvs_stream), since),
            timeout,
            f"fragments of {kvs_stream}",
        )


def _plugin_dir() -> Path:
    from reelay.relay.kvssink import plugin_dir

    return plugin_dir()


@contextlib.contextmanager
def rig(work: Path) -> Iterator[Rig]:
    from local.kvs import KvsStandIn
    from local.relays import LocalRelays
    from reelay.catalogue import ConnectionProvider, migrate
    from reelay.catalogue.mysql import MySQLCatalogue
    from reelay.relay.credentials import KvsCredentials, write_credential_file
    from reelay.relay.kvssink import log_config_path
    from reelay.relay.secrets import SourceSecrets
    from reelay.relay.streams import StreamService
    from reelay.settings import Settings
    from tests.conftest import scratch_database
    from tests.relay_fixtures import child_environment

    kvs = KvsStandIn(work / "kvs").start()
    relays = None
    try:
        with scratch_database(prefix="reelay_bench_relay") as db_url:
            migrate(ConnectionProvider.from_url(db_url))
            key = secrets.token_urlsafe(32)
            settings = Settings(database_url=db_url, stream_secret_keys=key, allow_loopback_sources=True)  # type: ignore[arg-type]
            catalogue = MySQLCatalogue(ConnectionProvider.from_url(db_url))
            log_dir = work / "logs"
            log_dir.mkdir(parents=True)
            # The production relay settings (the test fixtures shorten some of them).
            env = child_environment(
                db_url, kvs, work / "relay", key,
                REELAY_RELAY_LEASE_SECONDS="20", REELAY_RELAY_START_SECONDS="10",
                REELAY_RELAY_ACK_TIMEOUT_SECONDS="6", REELAY_RELAY_STALL_SECONDS="2",
                REELAY_RELAY_METRICS_SECONDS="60",
            )  # fmt: skip
            relays = LocalRelays(catalogue, log_dir=log_dir, env=env)
            streams = StreamService(catalogue, relays, SourceSecrets([key]), settings)
            # The seed's credential file, from the stand-in's issuer (an hour: no rotation in the bench).
            issued = kvs.issuer.current()
            credential_path = work / "seed.credentials"
            write_credential_file(
                credential_path,
                KvsCredentials(
                    issued.access_key_id, issued.secret_access_key, issued.session_token,
                    datetime.fromtimestamp(issued.expires_at, UTC),
                ),
            )  # fmt: skip
            yield Rig(work, kvs, streams, catalogue, relays, log_dir, credential_path, log_config_path())
    finally:
        if relays is not None:
            relays.stop_all()
        kvs.stop()


def timing_rows(
    what: str, ours: list[Sample], peer: list[Sample], *, target: str, better: str, peer_note: str = ""
) -> list[Row]:
    """Medians of both sides and their ratio; lower bounds say so ("never within N s")."""

    def note(samples: list[Sample], m: Sample) -> str:
        each = ", ".join(shown(x, "") for x in samples)
        head = f"lower bound: never within {m.value:g} s in most runs; " if m.bound else ""
        return f"{head}median of {len(samples)} [{each}]"

    m_ours, m_peer = median(ours), median(peer)
    r = ratio(m_peer, m_ours)
    return [
        Row(BENCH, "reelay", what, m_ours.value, "s", f"{note(ours, m_ours)}; {target}"),
        Row(BENCH, "seed (gst-launch, 5 s restart)", what, m_peer.value, "s", note(peer, m_peer) + peer_note),
        Row(
            BENCH,
            "seed / reelay",
            f"{what} (ratio)",
            r.value,
            "x",
            ("at least; " if r.bound else "") + f">1: {better}",
        ),
    ]


# --- 1. recovery --------------------------------------------------------------------------------------------
def _recover(
    rig: Rig, streams: dict[str, str], inject: Callable[[], None], heal: Callable[[], None], cfg: Config
) -> tuple[dict[str, Sample], float]:
    """One outage hitting every side at once: seconds from heal to each side's first fragment, and the
    moment of the heal (epoch seconds)."""
    for kvs_stream in streams.values():
        rig.flowing(kvs_stream, timeout=40)
    inject()
    time.sleep(cfg.outage_seconds)
    heal()
    back = time.time()
    found: dict[str, Sample] = {}
    deadline = time.monotonic() + cfg.recovery_wait
    while len(found) < len(streams) and time.monotonic() < deadline:
        for who, kvs_stream in streams.items():
            if who not in found and (t := first_after(rig.persisted_times(kvs_stream), back)) is not None:
                found[who] = Sample(t - back)
        time.sleep(0.05)
    for who in streams:
        found.setdefault(who, Sample(cfg.recovery_wait, bound=True))
    return found, back


def first_buffer_after(log_text: str, after: float) -> float | None:
    """The relay task's first "media flowing" moment (its firstBufferAt field) at or after ``after``."""
    for line in log_text.splitlines():
        if FLOWING_LINE not in line:
            continue
        try:
            at = float(json.loads(line)["firstBufferAt"])
        except (ValueError, KeyError, TypeError):
            continue
        if at >= after:
            return at
    return None


def measure_recovery(rig: Rig, cfg: Config) -> list[Row]:
    from local.cameras import HlsCamera, RtspCamera, SrtCamera

    rows: list[Row] = []
    for kind in cfg.kinds:
        camera = {
            "rtsp": lambda: RtspCamera(),
            "srt": lambda: SrtCamera(),
            "hls": lambda: HlsCamera(rig.work / "hls"),
        }[kind]()
        keyint_seconds = camera.picture.keyframe_seconds
        samples: dict[tuple[str, str], list[Sample]] = {}
        first_buffers: list[Sample] = []  # Reelay: camera back -> first buffer at kvssink's queue
        floor_keys: list[Sample] = []  # a bare caller: camera back -> its first key frame (SRT)
        exits: dict[str, int] = {}  # gst-launch exits (so restarts) per outage kind
        seed: SeedLoop | None = None
        watch: KeyframeWatch | None = None
        reelay_id = None
        with camera:
            try:
                if kind == "srt":
                    # An SRT camera sends whether or not a caller is there, so the key frame it sends as
                    # it starts is gone before any caller can join: measure when the first one arrives.
                    watch = KeyframeWatch(camera.url, rig.log_dir / "keyframe-watch.log")
                reelay_id, reelay_stream = rig.start_reelay(camera.url)
                keyint = camera.picture.fps * camera.picture.keyframe_seconds
                seed, seed_stream = rig.start_seed(camera.url, kind, keyint)
                sides = {"reelay": reelay_stream, "seed": seed_stream}
                outages = {
                    "camera killed": (camera.kill, camera.start),
                    "KVS down": (rig.kvs.refuse_connections, rig.kvs.start),  # type: ignore[attr-defined]
                }
                for i in range(cfg.outages):
                    for outage, (inject, heal) in outages.items():
                        print(f"   recovery {kind} {outage} #{i + 1}", file=sys.stderr, flush=True)
                        before = len(seed.exits)
                        found, back = _recover(rig, sides, inject, heal, cfg)
                        for who, s in found.items():
                            samples.setdefault((outage, who), []).append(s)
                        if outage == "camera killed":  # KVS down rebuilds nothing: media never stops
                            time.sleep(0.5)  # the task logs at its next tick
                            at = first_buffer_after(rig.reelay_log(reelay_id), back)
                            first_buffers.append(
                                Sample(at - back) if at is not None else Sample(cfg.recovery_wait, True)
                            )
                            if watch is not None:
                                key = first_after(watch.keyframes, back)
                                floor_keys.append(
                                    Sample(key - back) if key is not None else Sample(cfg.recovery_wait, True)
                                )
                        exits[outage] = exits.get(outage, 0) + len(seed.exits) - before
            finally:
                if watch is not None:
                    watch.stop()
                if seed is not None:
                    seed.stop()
                if reelay_id is not None:
                    rig.stop_reelay(reelay_id)
        for outage in ("camera killed", "KVS down"):
            ours, peer = samples.get((outage, "reelay"), []), samples.get((outage, "seed"), [])
            if ours and peer:
                what = f"{kind} {outage}: back -> first fragment PERSISTED"
                rows += timing_rows(
                    what, ours, peer, target="target < 2 s", better="Reelay recovers sooner",
                    peer_note=f"; gst-launch exited {exits.get(outage, 0)} times",
                )  # fmt: skip
        if first_buffers:
            m = median(first_buffers)
            each = ", ".join(shown(x, "") for x in first_buffers)
            rows.append(Row(
                BENCH, "reelay", f"{kind} camera killed: back -> first buffer relayed", m.value, "s",
                f"median of {len(first_buffers)} [{each}]; the first fragment is acknowledged one"
                f" keyframe interval ({keyint_seconds} s here) after its first keyframe",
            ))  # fmt: skip
        rows += floor_rows(kind, floor_keys, samples.get(("camera killed", "reelay"), []), keyint_seconds)
    return rows


def floor_rows(kind: str, keys: list[Sample], ours: list[Sample], keyint_seconds: float) -> list[Row]:
    """The floor of a camera-killed recovery: the first key frame a bare caller gets after the camera is
    back, plus one key frame interval (KVS acknowledges a fragment once it is complete, at the next key
    frame), and how far above it Reelay's median is."""
    if not keys:
        return []
    key = median(keys)
    floor = Sample(key.value + keyint_seconds, key.bound)
    each = ", ".join(shown(x, "") for x in keys)
    rows = [
        Row(BENCH, "bare caller (never stops calling)", f"{kind} camera killed: back -> first key frame",
            key.value, "s", f"median of {len(keys)} [{each}]; the camera sends whether or not a caller"
            " is there, so the key frame it sends as it starts is lost to every caller"),
        Row(BENCH, "floor", f"{kind} camera killed: back -> first fragment PERSISTED (floor)", floor.value,
            "s", f"that key frame + one key frame interval ({keyint_seconds:g} s): no relay can do better"),
    ]  # fmt: skip
    if ours:
        above = median(ours).value - floor.value
        rows.append(Row(BENCH, "reelay - floor", f"{kind} camera killed: recovery above the floor", above,
                        "s", "what the relay itself adds (its reconnect, parse, kvssink)"))  # fmt: skip
    return rows


# --- 2. stall detection -------------------------------------------------------------------------------------
def measure_stalls(rig: Rig, cfg: Config) -> list[Row]:
    from local.cameras import RtspCamera, SrtCamera
    from local.faults import TcpFaultProxy, UdpFaultProxy

    rows: list[Row] = []
    for kind in ("rtsp", "srt"):
        camera = RtspCamera() if kind == "rtsp" else SrtCamera()
        ours: list[Sample] = []
        peer: list[Sample] = []
        with camera:
            proxy = TcpFaultProxy(camera.port) if kind == "rtsp" else UdpFaultProxy(camera.port)
            with proxy:
                url = proxy.url("rtsp", "/cam") if kind == "rtsp" else proxy.url("srt")
                seed: SeedLoop | None = None
                reelay_id = None
                try:
                    reelay_id, reelay_stream = rig.start_reelay(url)
                    seed, seed_stream = rig.start_seed(url, f"stall-{kind}", camera.picture.fps)
                    for i in range(cfg.stalls):
                        print(f"   stall {kind} #{i + 1}", file=sys.stderr, flush=True)
                        rig.flowing(reelay_stream)
                        rig.flowing(seed_stream)
                        stalled = time.time()
                        proxy.stall()
                        got: dict[str, float] = {}
                        deadline = time.monotonic() + cfg.seed_stall_wait
                        while len(got) < 2 and time.monotonic() < deadline:
                            if "reelay" not in got:
                                t = first_line_after(rig.reelay_log(reelay_id), DROP_LINE, stalled)
                                if t is not None:
                                    got["reelay"] = t - stalled
                            if "seed" not in got and (t := first_after(seed.exits, stalled)) is not None:
                                got["seed"] = t - stalled
                            time.sleep(0.05)
                        ours.append(
                            Sample(got["reelay"]) if "reelay" in got else Sample(cfg.seed_stall_wait, True)
                        )
                        peer.append(
                            Sample(got["seed"]) if "seed" in got else Sample(cfg.seed_stall_wait, True)
                        )
                        proxy.heal()
                finally:
                    if seed is not None:
                        seed.stop()
                    if reelay_id is not None:
                        rig.stop_reelay(reelay_id)
        rows += timing_rows(
            f"{kind} stall -> drop detected",
            ours,
            peer,
            target="target < 3 s",
            better="Reelay notices sooner",
        )
    return rows


# --- 3. cost per feed ---------------------------------------------------------------------------------------
def measure_cost(rig: Rig, cfg: Config) -> list[Row]:
    from local.cameras import Picture, RtspCamera

    picture = Picture(1920, 1080, 30, keyframe_seconds=2, bitrate_kbps=4000)
    per_minute: dict[str, float] = {}
    notes: dict[str, str] = {}
    with RtspCamera(picture=picture, start_timeout=40) as camera:
        for who in ("reelay", "seed"):
            seed: SeedLoop | None = None
            reelay_id = None
            try:
                if who == "reelay":
                    reelay_id, stream = rig.start_reelay(camera.url)
                else:
                    seed, stream = rig.start_seed(camera.url, "cost", picture.fps * picture.keyframe_seconds)
                rig.flowing(stream, timeout=60)
                pid = rig.relays.pid(reelay_id) if reelay_id else seed.pid  # type: ignore[attr-defined,union-attr]
                if pid is None:
                    raise RuntimeError(f"{who}: no process to measure")
                skip, cpu0, t0 = len(rig.persisted_times(stream)), proc_cpu(pid), time.monotonic()
                time.sleep(cfg.cost_seconds)
                cpu1, t1 = proc_cpu(pid), time.monotonic()
                if (rig.relays.pid(reelay_id) if reelay_id else seed.pid) != pid:  # type: ignore[attr-defined,union-attr]
                    raise RuntimeError(f"{who}: the process restarted during the measurement")
                fragments, frames = rig.frames(stream, skip)
                if frames == 0:
                    raise RuntimeError(f"{who}: no frames persisted during the measurement")
                # Per frame, scaled to a minute at the nominal rate: on a loaded machine the 1080p camera
                # may not make 30 fps, and a side that gets fewer frames must not look cheaper for it.
                per_minute[who] = (cpu1 - cpu0) / frames * picture.fps * 60
                fps = frames / (t1 - t0)
                notes[who] = (
                    f"{cpu1 - cpu0:.2f} CPU s in {t1 - t0:.0f} s for {frames} frames"
                    f" ({fps:.1f} fps achieved, {fragments} fragments); scaled to {picture.fps} fps"
                )
            finally:
                if seed is not None:
                    seed.stop()
                if reelay_id is not None:
                    rig.stop_reelay(reelay_id)
    ours, peer = per_minute["reelay"], per_minute["seed"]
    feed = "1080p30 H.264, keyframe 2 s, 4 Mbit/s"
    return [
        Row(BENCH, "reelay (passthrough)", f"CPU per minute of {feed}", ours, "CPU s", notes["reelay"]),
        Row(BENCH, "seed (decode + x264)", f"CPU per minute of {feed}", peer, "CPU s", notes["seed"]),
        Row(BENCH, "seed / reelay", "CPU cost ratio", peer / ours, "x", ">1: Reelay costs less"),
        Row(
            BENCH, "reelay (passthrough)", "feeds per core", 60 / ours, "feeds", "60 CPU s per minute / cost"
        ),
        Row(
            BENCH, "seed (decode + x264)", "feeds per core", 60 / peer, "feeds", "60 CPU s per minute / cost"
        ),
    ]


# --- 4. memory over rebuilds --------------------------------------------------------------------------------
def _rebuilds(rig: Rig, cfg: Config, sink: str) -> tuple[dict[int, float], dict[int, float], float]:
    """RSS and C heap in use (MB) of a supervisor child once each of its pipelines carries media, and the
    seconds taken."""
    from local.cameras import RtspCamera
    from local.faults import TcpFaultProxy

    rss: dict[int, float] = {}
    heap: dict[int, float] = {}
    started = time.monotonic()
    with RtspCamera() as camera, TcpFaultProxy(camera.port) as proxy:
        stream = f"bench-memory-{uuid.uuid4().hex[:6]}"
        argv = [sys.executable, "-m", "tests.bench.bench_relay", "memory-child",
                "--url", proxy.url("rtsp", "/cam"), "--stream", stream, "--sink", sink,
                "--credential-path", str(rig.work / "memory.credentials"),
                "--rebuilds", str(cfg.rebuilds)]  # fmt: skip
        log = (rig.log_dir / f"memory-child-{sink}.log").open("wb")
        proc = subprocess.Popen(argv, cwd=ROOT, env=child_env(rig.kvs), stdout=subprocess.PIPE, stderr=log)
        events = ChildEvents(proc)
        try:
            while True:
                # A cut that did not drop the pipeline (it landed between two reads, say) brings no new
                # "flowing" event: cut again rather than wait forever; a child that stops making
                # progress at all fails the bench instead of hanging it.
                event = events.next(REBUILD_WAIT)
                if event is None:
                    if time.monotonic() - events.last_event > REBUILD_GIVE_UP:
                        raise RuntimeError(
                            f"the memory child ({sink}) made no progress for {REBUILD_GIVE_UP:g} s "
                            f"after pipeline {max(rss, default=0)}; see {rig.log_dir}"
                        )
                    if proc.poll() is not None:
                        raise RuntimeError(
                            f"the memory child ({sink}) exited {proc.returncode}; see {rig.log_dir}"
                        )
                    print(f"   memory ({sink}): nothing new {REBUILD_WAIT:g} s after a cut: cutting again",
                          file=sys.stderr)  # fmt: skip
                    proxy.cut()
                    time.sleep(0.05)
                    proxy.heal()
                    continue
                if event["event"] == "flowing":
                    rss[event["built"]] = event["rss_mb"]
                    heap[event["built"]] = event["heap_mb"]
                    if event["built"] % 25 == 0:
                        print(f"   memory ({sink}): pipeline {event['built']}, {event['rss_mb']:.1f} MB",
                              file=sys.stderr)  # fmt: skip
                    # Cut the camera's connection: the pipeline drops and the supervisor rebuilds it.
                    proxy.cut()
                    time.sleep(0.05)
                    proxy.heal()
                elif event["event"] == "done":
                    break
        finally:
            _stop_process(proc, signal.SIGTERM, timeout=20)
            log.close()
    if max(rss, default=0) <= 20:
        raise RuntimeError(f"too few rebuilds measured: {sorted(rss)}; see {rig.log_dir}")
    return rss, heap, time.monotonic() - started


REBUILD_WAIT = 15.0  # no new pipeline carrying media this long after a cut: cut again
REBUILD_GIVE_UP = 120.0  # no event at all this long: the child is stuck


class ChildEvents:
    """The JSON events a child prints on stdout, read on a thread so the parent can wait with a timeout
    (kvssink and GStreamer may print other lines there too: they are skipped)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        import queue

        self._queue: queue.Queue[dict[str, object]] = queue.Queue()
        self.last_event = time.monotonic()
        self._proc = proc
        threading.Thread(target=self._read, name="child-events", daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for raw in self._proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if isinstance(event, dict) and "event" in event:
                self._queue.put(event)

    def drain(self) -> list[dict[str, object]]:
        """Every event come so far, without waiting."""
        events = []
        while not self._queue.empty():
            events.append(self._queue.get_nowait())
        return events

    def next(self, timeout: float) -> dict[str, object] | None:
        import queue

        try:
            event = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        self.last_event = time.monotonic()
        return event


def _first_from(rss: dict[int, float], n: int) -> int:
    """The first pipeline measured from the n-th on (a cut may cost more than one build)."""
    return min(k for k in rss if k >= n)


def measure_memory(rig: Rig, cfg: Config) -> list[Row]:
    rss, heap, elapsed = _rebuilds(rig, cfg, "kvssink")
    first, last = _first_from(rss, 10), max(rss)
    growth = (rss[last] - rss[first]) / (last - first)
    heap_growth = growth_per_rebuild(heap, first)
    # The same supervisor and source with a fakesink: how much of the growth is kvssink's.
    bare, bare_heap, _ = _rebuilds(rig, cfg, "fakesink")
    bare_first, bare_last = _first_from(bare, 10), max(bare)
    bare_growth = (bare[bare_last] - bare[bare_first]) / (bare_last - bare_first)
    bare_heap_growth = growth_per_rebuild(bare_heap, bare_first)
    return [
        Row(BENCH, "reelay supervisor", f"RSS after {first} rebuilds", rss[first], "MB",
            "real kvssink per pipeline"),
        Row(BENCH, "reelay supervisor", f"RSS after {last} rebuilds", rss[last], "MB",
            f"{last} pipelines in {elapsed:.0f} s, each dropped by a cut TCP link"),
        Row(BENCH, f"rebuild {last} / rebuild {first}", "RSS ratio", rss[last] / rss[first], "x",
            "1.0: no growth"),
        Row(BENCH, "reelay supervisor", "RSS growth per rebuild", growth * 1024, "kB",
            recycle_verdict(growth)),
        Row(BENCH, "same, fakesink for kvssink", "RSS growth per rebuild", bare_growth * 1024, "kB",
            f"{bare[bare_first]:.1f} -> {bare[bare_last]:.1f} MB, rebuilds {bare_first}-{bare_last}; "
            f"kvssink's share ~{(growth - bare_growth) * 1024:.0f} kB per rebuild"),
        # RSS also counts what malloc keeps free for reuse, so it hides a small leak: the C heap in use
        # (mallinfo2) grows one for one with one. A slope over every rebuild measured, not two points.
        Row(BENCH, "reelay supervisor", "C heap growth per rebuild", heap_growth * 1024, "kB",
            f"malloc in use {heap[first]:.1f} -> {heap[last]:.1f} MB, slope over rebuilds {first}-{last}"),
        Row(BENCH, "same, fakesink for kvssink", "C heap growth per rebuild", bare_heap_growth * 1024, "kB",
            f"kvssink's share ~{(heap_growth - bare_heap_growth) * 1024:.1f} kB per rebuild"),
    ]  # fmt: skip


def _memory_child(argv: list[str]) -> int:
    """The measured process: a Supervisor with the real kvssink, rebuilding as fast as its policy lets
    it. Prints ``{"event": "flowing", "built": n, "rss_mb": x, "heap_mb": y}`` once pipeline n carries
    media."""
    import argparse

    from reelay.media._gst import Gst
    from reelay.relay.credentials import CredentialFile, botocore_provider
    from reelay.relay.pipelines import SourceSpec
    from reelay.relay.supervisor import RelayPolicy, Supervisor
    from reelay.relay.task import kvssink_factory
    from transcoder.relay import limit_malloc_arenas, malloc_in_use

    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--stream", required=True)
    p.add_argument("--credential-path", required=True)
    p.add_argument("--rebuilds", type=int, default=100)
    p.add_argument("--sink", choices=["kvssink", "fakesink"], default="kvssink")
    args = p.parse_args(argv)
    limit_malloc_arenas()  # as the relay task does
    CredentialFile(args.credential_path, botocore_provider()).write_now()
    # Short backoff, no jitter: the point is many rebuilds, not a gentle reconnect.
    policy = RelayPolicy(backoff_initial=0.05, backoff_cap=0.1, jitter=0.0, start_seconds=10)
    kvs = args.sink == "kvssink"
    if kvs:
        sink = kvssink_factory(
            stream_name=args.stream, region="us-east-1", credential_path=Path(args.credential_path)
        )
    else:
        sink = lambda _ack, _fatal: Gst.ElementFactory.make("fakesink")  # noqa: E731
    source = SourceSpec(url=args.url, video="passthrough")
    supervisor = Supervisor(source, sink, policy=policy, expects_acks=kvs)
    loop = threading.Thread(target=supervisor.run, daemon=True)
    loop.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    reported, built, built_at = 0, 0, 0.0
    try:
        while not done.is_set() and reported < args.rebuilds:
            h = supervisor.health()
            if h.pipelines_built != built:
                built, built_at = h.pipelines_built, time.time()
            # A pipeline counts once media flows AND this kvssink has an ack from the stand-in: every
            # rebuild goes through kvssink's whole life (stream set-up, a PutMedia upload, teardown).
            acked = not kvs or (h.last_ack_at is not None and h.last_ack_at >= built_at)
            if built > reported and h.media_flowing and acked:
                reported = built
                rss = proc_rss_mb(os.getpid())
                heap = (malloc_in_use() or 0) / 1024 / 1024
                event = {"event": "flowing", "built": reported, "rss_mb": rss, "heap_mb": heap}
                print(json.dumps(event), flush=True)
            time.sleep(0.02)
        print(json.dumps({"event": "done"}), flush=True)
        done.wait(30)  # the parent stops us
    finally:
        supervisor.stop()
        supervisor.stopped.wait(20)
    return 0


# --- the floor: when a bare caller first gets a key frame ---------------------------------------------------
def _keyframe_child(argv: list[str]) -> int:
    """A bare SRT caller that never stops calling: ``srtsrc ! tsdemux ! h264parse ! appsink``, rebuilt
    at once on an error or after ``--quiet`` seconds without data (no backoff, no kvssink, no checks).
    Prints ``{"event": "keyframe", "at": <epoch seconds>}`` for each key frame it receives: the earliest
    moment any relay could start a KVS fragment."""
    import argparse

    from reelay.media._gst import Gst, ensure_init

    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--quiet", type=float, default=0.5)
    args = p.parse_args(argv)
    ensure_init()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    last = [time.monotonic()]

    def on_sample(sink: Gst.Element) -> Gst.FlowReturn:
        sample = sink.emit("pull-sample")
        last[0] = time.monotonic()
        if sample is not None and not sample.get_buffer().has_flags(Gst.BufferFlags.DELTA_UNIT):
            print(json.dumps({"event": "keyframe", "at": time.time()}), flush=True)
        return Gst.FlowReturn.OK

    while not done.is_set():
        pipeline = Gst.parse_launch(
            f"srtsrc uri={args.url} latency=125 ! tsdemux ! h264parse"
            " ! video/x-h264,alignment=au ! appsink name=out emit-signals=true sync=false"
        )
        pipeline.get_by_name("out").connect("new-sample", on_sample)
        bus = pipeline.get_bus()
        pipeline.set_state(Gst.State.PLAYING)
        last[0] = time.monotonic()
        while not done.is_set() and time.monotonic() - last[0] < args.quiet:
            message = bus.timed_pop_filtered(50 * Gst.MSECOND, Gst.MessageType.ERROR | Gst.MessageType.EOS)
            if message is not None:
                break
        pipeline.set_state(Gst.State.NULL)
    return 0


class KeyframeWatch:
    """The keyframe child; its key frames (epoch seconds) as they have come so far."""

    def __init__(self, url: str, log: Path) -> None:
        argv = [sys.executable, "-m", "tests.bench.bench_relay", "keyframe-child", "--url", url]
        self._log = log.open("wb")
        self._proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                      stdout=subprocess.PIPE, stderr=self._log)  # fmt: skip
        self._events = ChildEvents(self._proc)
        self._keyframes: list[float] = []

    @property
    def keyframes(self) -> list[float]:
        self._keyframes += [float(e["at"]) for e in self._events.drain() if e["event"] == "keyframe"]  # type: ignore[arg-type]
        return self._keyframes

    def stop(self) -> None:
        _stop_process(self._proc, signal.SIGTERM, timeout=10)
        self._log.close()


# --- entry --------------------------------------------------------------------------------------------------
def run(ctx: BenchContext) -> list[Row]:
    from reelay.observability import logger

    logger.setLevel("WARNING")  # the stream service's INFO lines would mix with the table on stdout
    cfg = Config.from_env()
    work = ctx.work_dir / f"relay-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    rows: list[Row] = []
    steps = {
        "recovery": measure_recovery,
        "stall": measure_stalls,
        "cost": measure_cost,
        "memory": measure_memory,
    }
    try:
        with rig(work) as r:
            for part in cfg.parts:
                print(f"== relay: {part}", file=sys.stderr, flush=True)
                began = time.monotonic()
                rows += steps[part](r, cfg)
                print(f"   {part} took {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
    finally:
        if not os.environ.get("REELAY_BENCH_KEEP"):
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["memory-child"]:
        sys.exit(_memory_child(sys.argv[2:]))
    if sys.argv[1:2] == ["keyframe-child"]:
        sys.exit(_keyframe_child(sys.argv[2:]))
    sys.exit(f"usage: {sys.argv[0]} memory-child ...")
