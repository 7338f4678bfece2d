"""How the relay task's entry point builds a stream's recorder: store, writer id, store reference."""

from __future__ import annotations

from pathlib import Path

from reelay.catalogue.memory import MemoryCatalogue
from reelay.models import SourceProtocol, Stream
from reelay.settings import Settings
from transcoder.relay import recorder_factory, store_ref, writer_id

STREAM = Stream(
    stream_id="s1",
    owner_id="op",
    name="Gate",
    source_url="rtsp://10.0.0.5/cam",
    source_protocol=SourceProtocol.RTSP,
    kvs_stream_name="reelay-s1",
    record_enabled=True,
)


def test_an_ecs_task_arn_becomes_a_key_safe_writer_id() -> None:
    assert writer_id("arn:aws:ecs:eu-west-1:123456789012:task/media/0f1e2d3c4b5a") == "0f1e2d3c4b5a"
    assert writer_id("host-1234") == "host-1234"
    assert writer_id("a:b c") == "a-b-c"
    assert len(writer_id("x" * 200)) == 64
    assert writer_id("///") == "writer"
    assert writer_id("local-" + "s" * 64, "a1b2c3") == "local-" + "s" * 51 + "-a1b2c3"  # 64 chars


def test_the_store_reference_never_holds_a_url() -> None:
    assert store_ref(STREAM, "default") == "default"
    assert store_ref(STREAM, "webhook") == "webhook:s1"
    assert store_ref(STREAM, "stream") == "stream:s1"


def test_the_recorder_records_to_the_default_store_under_the_task_s_writer_id(tmp_path: Path) -> None:
    settings = Settings(
        recording_store_url=f"file://{tmp_path / 'rec'}",
        recording_segment_seconds=1.5,
        recording_chunk_size=7,
        recording_reconnect_window_seconds=9,
        recording_spool_max_bytes=1234,
    )
    make = recorder_factory(MemoryCatalogue(), settings, "arn:aws:ecs:r:1:task/c/abc", tmp_path / "work")
    recorder = make(STREAM)
    try:
        w = recorder.writer
        assert (w.stream_id, w.segment_ms, w.chunk_size, w.window) == ("s1", 1500, 7, 9)
        assert w.writer_id.startswith("abc-") and len(w.writer_id) == 10  # task id, process tag
        assert (w.store_url, w.store_ref) == (f"file://{tmp_path / 'rec'}", "default")
        assert [r.name for r in w.renditions] == ["source"]
        h = recorder.health()
        assert (h.store, h.store_fallback, recorder.max_spool_bytes) == (w.store_url, None, 1234)
        assert recorder.spool_dir == tmp_path / "work" / "spool"
    finally:
        assert recorder.close(2)


class _WithRenditions:
    """A stream as the catalogue gives it once it carries ``record_renditions`` (another branch adds the
    field): the factory reads it with getattr, so it works with and without the field."""

    def __init__(self, stream: Stream, names: list[str]) -> None:
        self._stream, self.record_renditions = stream, names

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def _recorder(tmp_path: Path, stream: object, **settings: object):  # type: ignore[no-untyped-def]
    config = Settings(recording_store_url=f"file://{tmp_path / 'rec'}", **settings)  # type: ignore[arg-type]
    return recorder_factory(MemoryCatalogue(), config, "task-1", tmp_path / "work")(stream)


def test_a_stream_s_renditions_become_encoded_rungs_beside_the_source(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path, _WithRenditions(STREAM, ["360p", "720p"]), x264_preset="faster")
    try:
        assert [r.name for r in recorder.encoded] == ["720p", "360p"]  # largest first
        assert recorder.x264_preset == "faster"
        planned = {r.name: r for r in recorder.writer.renditions}
        assert list(planned) == ["source", "720p", "360p"]
        assert (planned["720p"].width, planned["720p"].height, planned["720p"].codecs) == (
            1280,
            720,
            "avc1.64001f",
        )
        assert (planned["360p"].width, planned["360p"].height, planned["360p"].codecs) == (
            640,
            360,
            "avc1.4d401e",
        )
        assert planned["360p"].playlist == "360p/index.m3u8"
    finally:
        assert recorder.close(2)


def test_overridden_rates_reach_the_rungs(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path, _WithRenditions(STREAM, ["360p"]), ladder_overrides="360p=500:700:96")
    try:
        assert (recorder.encoded[0].video_kbps, recorder.encoded[0].max_kbps) == (500, 700)
    finally:
        assert recorder.close(2)


def test_bad_rendition_names_record_the_source_alone_and_say_why(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    for names in (["4k"], ["360p", "360p"]):
        recorder = _recorder(tmp_path, _WithRenditions(STREAM, names))
        try:
            assert recorder.encoded == ()
            assert [r.name for r in recorder.writer.renditions] == ["source"]
        finally:
            assert recorder.close(2)
    assert "not valid" in caplog.text


def test_a_stream_without_the_field_or_naming_only_the_source_records_passthrough(tmp_path: Path) -> None:
    for stream in (STREAM, _WithRenditions(STREAM, []), _WithRenditions(STREAM, ["source"])):
        recorder = _recorder(tmp_path, stream)
        try:
            assert recorder.encoded == ()
        finally:
            assert recorder.close(2)
