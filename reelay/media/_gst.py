"""GStreamer bootstrap: one place imports gi, pins the API versions and initialises Gst."""

from __future__ import annotations

import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstPbutils", "1.0")
gi.require_version("GstBase", "1.0")
gi.require_version("GstVideo", "1.0")

from gi.repository import GLib, GObject, Gst, GstBase, GstPbutils, GstVideo  # noqa: E402

_init_lock = threading.Lock()


def ensure_init() -> None:
    with _init_lock:
        if not Gst.is_initialized():
            Gst.init(None)


__all__ = ["GLib", "GObject", "Gst", "GstBase", "GstPbutils", "GstVideo", "ensure_init"]
