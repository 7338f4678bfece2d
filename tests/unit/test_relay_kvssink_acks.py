"""Reading kvssink's fragment acks (the C struct's layout, the copy out of it), and finding the plugin."""

from __future__ import annotations

import ctypes

import pytest

from reelay.relay import kvssink
from reelay.relay.kvssink import NO_TIMECODE, Ack, FragmentAck, read_ack


def test_the_struct_matches_pics_fragment_ack_layout():
    # PIC v1.1.0: UINT32 version; enum ackType; UINT64 timestamp; CHAR sequenceNumber[129]; UINT32 result
    assert FragmentAck.ackType.offset == 4
    assert FragmentAck.timestamp.offset == 8
    assert FragmentAck.sequenceNumber.offset == 16
    assert FragmentAck.result.offset == 148
    assert ctypes.sizeof(FragmentAck) == 152


def test_an_ack_is_copied_out_of_the_sdk_struct():
    # Given the struct as the SDK fills it, passed as a raw address (what hash(gpointer) gives)
    raw = FragmentAck(0, 3, 1796126006590, b"91343852330000000000000000000000000000000000042", 200)

    ack = read_ack(ctypes.addressof(raw))

    # Then the fields are copied, so the SDK may reuse the struct afterwards
    raw.ackType, raw.timestamp = 1, 0
    assert ack == Ack("persisted", 1796126006590, "91343852330000000000000000000000000000000000042", 200)


def test_error_acks_keep_their_error_id_and_idle_acks_are_dropped():
    error = FragmentAck(0, 4, NO_TIMECODE, b"0", 4006)
    assert read_ack(ctypes.addressof(error)) == Ack("error", NO_TIMECODE, "0", 4006)
    idle = FragmentAck(0, 5, 0, b"", 200)
    assert read_ack(ctypes.addressof(idle)) is None
    assert read_ack(0) is None


def test_the_plugin_is_found_in_the_override_then_the_build_cache(tmp_path, monkeypatch):
    # Given a build cache under REELAY_CACHE_DIR holding the plugin
    cache = tmp_path / "cache" / "kvssink" / f"{kvssink.KVS_SDK_VERSION}-r{kvssink.KVSSINK_RECIPE}"
    cache.mkdir(parents=True)
    (cache / kvssink.PLUGIN_FILE).write_bytes(b"")
    monkeypatch.setenv("REELAY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("REELAY_KVSSINK_DIR", raising=False)
    assert kvssink.plugin_dir() == cache

    # And REELAY_KVSSINK_DIR wins over it
    monkeypatch.setenv("REELAY_KVSSINK_DIR", str(tmp_path / "elsewhere"))
    assert kvssink.plugin_dir() == tmp_path / "elsewhere"

    # And with neither (and no image dir), the error says how to build it
    monkeypatch.delenv("REELAY_KVSSINK_DIR")
    monkeypatch.setenv("REELAY_CACHE_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(kvssink, "IMAGE_DIR", tmp_path / "no-image")
    with pytest.raises(kvssink.KvssinkNotFound, match=r"build-kvssink\.sh"):
        kvssink.plugin_dir()
