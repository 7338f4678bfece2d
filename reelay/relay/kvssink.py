"""kvssink, the Kinesis Video Streams sink: find and register the plugin, build it with sane properties,
and read its fragment acks and stream errors.

The plugin is built by ``scripts/build-kvssink.sh`` (one directory: the plugin beside its SDK
libraries, rpath ``$ORIGIN``). Things kvssink does that callers must know (DESIGN.md has the details):

- It reads ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` from the process environment before it looks
  at ``credential-path``, and never refreshes them. A relay process must not have them set; it writes
  the credential file instead (:mod:`reelay.relay.credentials`).
- ``AWS_DEFAULT_REGION`` beats the ``aws-region`` property; ``CONTROL_PLANE_URI`` (environment only)
  replaces the control-plane URL.
- It takes codec data once per element: build a new element for each pipeline rebuild.
- Nothing reaches the bus when KVS is unreachable; health comes from the acks (:func:`connect_acks`).
- NULL -> READY is synchronous and slow when the control plane is unreachable: ``set_state(PLAYING)``
  blocked ~36 s here (createStreamSync times out), with ``stream-error`` 0x52000011 after ~5 s. Change
  its state off the GLib loop thread, under a deadline of your own.
- Rejected credentials (403) are retried ~20 times a second with no bus message and no acks; kvssink
  re-reads its credential file only at (cached expiry - 3 s). A rebuilt element reads it at start.
"""

from __future__ import annotations

import ctypes
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from reelay.media._gst import Gst, ensure_init

log = logging.getLogger(__name__)

KVS_SDK_VERSION = "v3.4.2"  # the version scripts/build-kvssink.sh pins
KVSSINK_RECIPE = 2  # scripts/build-kvssink.sh's RECIPE: the cache directory is <version>-r<recipe>
PLUGIN_FILE = "libgstkvssink.so"
IMAGE_DIR = Path("/opt/kvssink")

# Properties every relay wants; ``make_kvssink(**overrides)`` can change any of them.
DEFAULTS: dict[str, Any] = {
    # Going PAUSED -> READY waits this long for the last ack (default 120 s blocks a rebuild).
    "stop-stream-timeout": 5,
    # Default 128 MB of frame storage per element; 64 MB still holds ~2 min of a 4 Mbit/s feed.
    "storage-size": 64,
    # Fragments at each key frame (the SDK default), with absolute epoch timecodes (as KVS expects).
    "key-frame-fragmentation": True,
    "absolute-fragment-times": True,
    "fragment-acks": True,
}

AckKind = Literal["buffering", "received", "persisted", "error"]
# PIC's FRAGMENT_ACK_TYPE; 0 (undefined) and 5 (IDLE keep-alive) are not passed on.
_ACK_KINDS: dict[int, AckKind] = {1: "buffering", 2: "received", 3: "persisted", 4: "error"}

# kvssink logs at DEBUG by default: 33k lines in 10 s of a KVS outage. Even at WARN it writes ~700 lines
# a second then (each failed putMedia retry with its headers); at ERROR, one line per outage. Stderr.
LOG_LEVEL = "ERROR"
LOG4CPLUS_CONFIG = """\
log4cplus.rootLogger=LEVEL, KvsStderr
log4cplus.appender.KvsStderr=log4cplus::ConsoleAppender
log4cplus.appender.KvsStderr.logToStdErr=true
log4cplus.appender.KvsStderr.layout=log4cplus::PatternLayout
log4cplus.appender.KvsStderr.layout.ConversionPattern=kvssink %-5p %d{%Y-%m-%dT%H:%M:%S.%q} %m%n
"""


class KvssinkNotFound(RuntimeError):
    """The kvssink plugin is not built or does not load."""


def cache_dir() -> Path:
    """Where ``scripts/build-kvssink.sh`` installs the plugin by default."""
    base = os.environ.get("REELAY_CACHE_DIR") or os.path.join(Path.home(), ".cache", "reelay")
    return Path(base) / "kvssink" / f"{KVS_SDK_VERSION}-r{KVSSINK_RECIPE}"


def plugin_dir() -> Path:
    """The directory holding libgstkvssink.so: ``$REELAY_KVSSINK_DIR``, else the build cache, else the
    image's /opt/kvssink."""
    explicit = os.environ.get("REELAY_KVSSINK_DIR")
    if explicit:
        return Path(explicit)
    for candidate in (cache_dir(), IMAGE_DIR):
        if (candidate / PLUGIN_FILE).is_file():
            return candidate
    raise KvssinkNotFound(
        f"kvssink is not built: no {PLUGIN_FILE} in {cache_dir()} or {IMAGE_DIR}; "
        "run scripts/build-kvssink.sh (make bootstrap does)"
    )


def register() -> None:
    """Make ``kvssink`` available to Gst.ElementFactory (a no-op when GST_PLUGIN_PATH already has it)."""
    ensure_init()
    if Gst.ElementFactory.find("kvssink") is not None:
        return
    path = plugin_dir() / PLUGIN_FILE
    try:
        plugin = Gst.Plugin.load_file(str(path))
    except Exception as exc:  # GLib.Error
        raise KvssinkNotFound(f"{path} does not load: {exc}") from exc
    Gst.Registry.get().add_plugin(plugin)
    if Gst.ElementFactory.find("kvssink") is None:
        raise KvssinkNotFound(f"{path} loaded but registers no kvssink element")


def log_config_path(level: str = LOG_LEVEL) -> Path:
    """A log4cplus config at ``level``, written once per process user in the temp dir."""
    text = LOG4CPLUS_CONFIG.replace("LEVEL", level.upper(), 1)
    directory = Path(tempfile.gettempdir()) / f"reelay-kvssink-{os.getuid()}"
    path = directory / f"log4cplus-{level.lower()}.properties"
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def make_kvssink(
    *,
    stream_name: str,
    region: str,
    credential_path: str | os.PathLike[str],
    name: str | None = None,
    log_level: str = LOG_LEVEL,
    **overrides: Any,
) -> Gst.Element:
    """A new kvssink for one pipeline (never reuse one across rebuilds: it keeps the old codec data).

    ``overrides`` are kvssink properties with ``_`` for ``-`` (``stop_stream_timeout=2``). ``log_level``
    is log4cplus's (ERROR, WARN, INFO, DEBUG); it applies process-wide, as log4cplus is global.
    """
    register()
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        log.warning(
            "AWS_ACCESS_KEY_ID is set: kvssink uses those static keys and ignores %s", credential_path
        )
    element = Gst.ElementFactory.make("kvssink", name)
    if element is None:
        raise KvssinkNotFound("kvssink is registered but could not be created")
    props: dict[str, Any] = {
        **DEFAULTS,
        "stream-name": stream_name,
        "aws-region": region,
        "credential-path": os.fspath(credential_path),
        "log-config": str(log_config_path(log_level)),
    }
    props.update({k.replace("_", "-"): v for k, v in overrides.items()})
    for key, value in props.items():
        element.set_property(key, value)
    return element


class FragmentAck(ctypes.Structure):
    """PIC's ``struct __FragmentAck`` (v1.1.0), as the fragment-ack signal passes it."""

    _fields_ = [
        ("version", ctypes.c_uint32),
        ("ackType", ctypes.c_int),
        ("timestamp", ctypes.c_uint64),
        ("sequenceNumber", ctypes.c_char * 129),
        ("result", ctypes.c_int),
    ]


# The timecode of an ERROR ack that names no fragment (the stand-in's 4006 for a headless body): PIC's
# INVALID_TIMESTAMP_VALUE. kvssink applies such an error to its oldest unacknowledged fragment.
NO_TIMECODE = 2**64 - 1


@dataclass(frozen=True)
class Ack:
    """One fragment ack from KVS. ``timecode_ms`` is the fragment's (its Cluster's) timecode, epoch ms
    with absolute fragment times, or NO_TIMECODE; ``result`` is 200 for good acks, the ErrorId (e.g.
    4006, 5000) for errors. ``fragment_number`` is KVS's, a decimal string."""

    kind: AckKind
    timecode_ms: int
    fragment_number: str
    result: int


def read_ack(pointer: Any) -> Ack | None:
    """Copy the ack out of the SDK's struct (the SDK reuses it once the callback returns).

    ``pointer`` is the signal's gpointer argument; PyGObject hands it over as an object whose ``hash()``
    is the raw address (or as a plain int). None for acks that are not passed on (IDLE, undefined)."""
    address = pointer if isinstance(pointer, int) else hash(pointer)
    if not address:
        return None
    raw = FragmentAck.from_address(address)
    kind = _ACK_KINDS.get(raw.ackType)
    if kind is None:
        return None
    return Ack(
        kind=kind,
        timecode_ms=int(raw.timestamp),
        fragment_number=raw.sequenceNumber.decode("ascii", "replace"),
        result=int(raw.result),
    )


def connect_acks(element: Gst.Element, callback: Callable[[Ack], None]) -> int:
    """Call ``callback(Ack)`` for each fragment ack. Returns the handler id.

    The callback runs on an SDK (curl) thread, NOT the GLib main loop: keep it short, do not touch the
    pipeline from it, and hand work over (queue, lock, GLib.idle_add). Exceptions are logged, not raised
    into the SDK."""

    def on_ack(_element: Gst.Element, pointer: Any) -> None:
        try:
            ack = read_ack(pointer)
            if ack is not None:
                callback(ack)
        except Exception:
            log.exception("fragment-ack callback failed")

    return element.connect("fragment-ack", on_ack)


def connect_stream_error(element: Gst.Element, callback: Callable[[int], None]) -> int:
    """Call ``callback(status)`` when kvssink reports a fatal stream error (``status`` is the SDK's
    STATUS code, e.g. 0x52000049 for credentials expiring too soon). Returns the handler id.

    Runs on an SDK thread, NOT the GLib main loop (see :func:`connect_acks`)."""

    def on_error(_element: Gst.Element, status: int) -> None:
        try:
            callback(int(status))
        except Exception:
            log.exception("stream-error callback failed")

    return element.connect("stream-error", on_error)
