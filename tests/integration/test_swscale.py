"""The libswscale scaler element (reelay.media.swscale), on real frames, against ffmpeg itself."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Sequence

import pytest

from reelay.media import swscale
from reelay.media._gst import Gst, GstVideo, ensure_init
from tests.media_fixtures import FFMPEG

pytestmark = pytest.mark.media


@pytest.fixture(autouse=True)
def _gstreamer() -> None:
    ensure_init()


def i420_size(width: int, height: int) -> int:
    return width * height + 2 * ((width + 1) // 2) * ((height + 1) // 2)


def noisy_frames(width: int, height: int, count: int, seed: int = 7) -> list[bytes]:
    """Tightly packed I420 frames (no row padding) of smooth gradients plus noise: what a scaler must
    filter, not just copy."""
    rng = random.Random(seed)
    frames = []
    for n in range(count):
        planes = []
        for w, h in (
            (width, height),
            ((width + 1) // 2, (height + 1) // 2),
            ((width + 1) // 2, (height + 1) // 2),
        ):
            planes.append(
                bytes(
                    (x * 3 + y * 2 + n * 5 + rng.randrange(0, 40)) % 256 for y in range(h) for x in range(w)
                )
            )
        frames.append(b"".join(planes))
    return frames


def packed(buffer: Gst.Buffer, caps: Gst.Caps) -> bytes:
    """A frame from GStreamer's layout (rows padded to 4 bytes, or a video meta's) to tightly packed I420."""
    info = GstVideo.VideoInfo.new_from_caps(caps)
    meta = GstVideo.buffer_get_video_meta(buffer)
    offsets, strides = (meta.offset, meta.stride) if meta is not None else (info.offset, info.stride)
    data = buffer.extract_dup(0, buffer.get_size())
    out = bytearray()
    chroma = ((info.width + 1) // 2, (info.height + 1) // 2)
    for plane, (w, h) in enumerate(((info.width, info.height), chroma, chroma)):
        for row in range(h):
            start = offsets[plane] + row * strides[plane]
            out += data[start : start + w]
    return bytes(out)


PASSTHROUGH: list[bool] = []  # whether the scaler of the last run() passed its frames through


def run(
    frames: Sequence[Gst.Buffer], size: tuple[int, int], to: tuple[int, int] | Sequence[tuple[int, int]]
) -> list[tuple[Gst.Buffer, Gst.Caps]]:
    """Push ``frames`` (I420 of ``size``) through the scaler into a capsfilter asking for ``to``; a list of
    sizes renegotiates the output before each frame."""
    ensure_init()
    pipeline = Gst.Pipeline.new("swscale-test")
    src = Gst.ElementFactory.make("appsrc", "src")
    src.set_property("format", Gst.Format.TIME)
    src.set_property(
        "caps",
        Gst.Caps.from_string(f"video/x-raw,format=I420,width={size[0]},height={size[1]},framerate=25/1"),
    )
    scaler = swscale.make("scaler")
    want = Gst.ElementFactory.make("capsfilter", "want")
    sink = Gst.ElementFactory.make("appsink", "sink")
    sink.set_property("sync", False)
    for element in (src, scaler, want, sink):
        pipeline.add(element)
    assert src.link(scaler) and scaler.link(want) and want.link(sink)
    sizes = [to] * len(frames) if isinstance(to[0], int) else list(to)  # type: ignore[list-item]
    out: list[tuple[Gst.Buffer, Gst.Caps]] = []
    pipeline.set_state(Gst.State.PLAYING)
    try:
        for n, (frame, (w, h)) in enumerate(zip(frames, sizes, strict=True)):
            want.set_property("caps", Gst.Caps.from_string(f"video/x-raw,width={w},height={h}"))
            frame.pts, frame.duration = n * Gst.SECOND // 25, Gst.SECOND // 25
            assert src.emit("push-buffer", frame) == Gst.FlowReturn.OK
            sample = sink.emit("try-pull-sample", 10 * Gst.SECOND)
            assert sample is not None, f"no frame {n} out of the scaler"
            out.append((sample.get_buffer(), sample.get_caps()))
        message = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
        assert message is None, message.parse_error() if message else None
        PASSTHROUGH[:] = [scaler.is_passthrough()]
    finally:
        pipeline.set_state(Gst.State.NULL)
    return out


def ffmpeg_bilinear(frames: Sequence[bytes], size: tuple[int, int], to: tuple[int, int]) -> list[bytes]:
    """The same frames through ``ffmpeg -vf scale=W:H:flags=bilinear``, tightly packed."""
    result = subprocess.run(
        [FFMPEG, "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{size[0]}x{size[1]}",
         "-r", "25", "-i", "-", "-vf", f"scale={to[0]}:{to[1]}:flags=bilinear", "-f", "rawvideo", "-"],
        input=b"".join(frames), capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    n = i420_size(*to)
    return [result[i : i + n] for i in range(0, len(result), n)]


@pytest.mark.parametrize(
    ("size", "to"), [((320, 180), (214, 120)), ((192, 108), (128, 72)), ((96, 54), (160, 90))]
)
def test_frames_come_out_byte_for_byte_as_ffmpeg_scales_them(
    size: tuple[int, int], to: tuple[int, int]
) -> None:
    # Given noisy frames, scaled down to an odd-width size (rows padded in GStreamer's layout), down by
    # 1.5 as the ladder's 720p is, and up
    frames = noisy_frames(*size, count=3)
    # When the scaler and ffmpeg's scale filter (flags=bilinear) each scale them
    ours = [packed(b, c) for b, c in run([Gst.Buffer.new_wrapped(f) for f in frames], size, to)]
    theirs = ffmpeg_bilinear(frames, size, to)
    # Then every byte of every plane is the same
    assert len(ours) == len(theirs) == 3
    for n, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert len(a) == len(b) == i420_size(*to)
        assert a == b, f"frame {n}: {sum(x != y for x, y in zip(a, b, strict=True))} bytes differ"


def test_a_frame_the_size_asked_for_passes_through_untouched() -> None:
    # Given frames already the size downstream asks for
    frames = noisy_frames(64, 36, count=2)
    out = run([Gst.Buffer.new_wrapped(f) for f in frames], (64, 36), (64, 36))
    # Then they come out as they went in, passed through (neither scaled nor copied)
    assert [packed(b, c) for b, c in out] == frames
    assert PASSTHROUGH == [True]
    # And a frame of another size is not
    run([Gst.Buffer.new_wrapped(frames[0])], (64, 36), (32, 18))
    assert PASSTHROUGH == [False]


def test_a_frame_with_padded_rows_is_read_through_its_video_meta() -> None:
    # Given a frame whose rows are padded to 96 and 48 bytes, described by a video meta
    width, height = 64, 36
    (frame,) = noisy_frames(width, height, count=1)
    y, c = width * height, (width // 2) * (height // 2)
    planes = [(frame[:y], width, height, 96), (frame[y : y + c], width // 2, height // 2, 48),
              (frame[y + c :], width // 2, height // 2, 48)]  # fmt: skip
    data, offsets, strides = bytearray(), [], []
    for plane, w, h, stride in planes:
        offsets.append(len(data))
        strides.append(stride)
        for row in range(h):
            data += plane[row * w : (row + 1) * w] + b"\xee" * (stride - w)  # the padding must never leak
    buffer = Gst.Buffer.new_wrapped(bytes(data))
    GstVideo.buffer_add_video_meta_full(
        buffer, GstVideo.VideoFrameFlags.NONE, GstVideo.VideoFormat.I420, width, height, 3,
        [*offsets, 0], [*strides, 0],
    )  # fmt: skip
    # When it is scaled to 32x18
    ((out, caps),) = run([buffer], (width, height), (32, 18))
    # Then the result is what the same frame, tightly packed, scales to
    assert packed(out, caps) == ffmpeg_bilinear([frame], (width, height), (32, 18))[0]


def test_a_new_output_size_mid_stream_is_scaled_to_from_then_on() -> None:
    # Given a stream whose downstream asks for another size after two frames
    frames = noisy_frames(96, 54, count=4)
    sizes = [(64, 36), (64, 36), (32, 18), (32, 18)]
    out = run([Gst.Buffer.new_wrapped(f) for f in frames], (96, 54), sizes)
    # Then each frame comes out at the size asked for when it passed, scaled as ffmpeg scales it
    got = [
        (GstVideo.VideoInfo.new_from_caps(c).width, GstVideo.VideoInfo.new_from_caps(c).height)
        for _, c in out
    ]
    assert got == sizes
    assert packed(*out[3]) == ffmpeg_bilinear(frames[3:], (96, 54), (32, 18))[0]


def test_the_element_is_known_to_parse_launch_once_registered() -> None:
    swscale.register()
    pipeline = Gst.parse_launch(
        "videotestsrc num-buffers=2 ! video/x-raw,format=I420,width=64,height=48 ! reelayswscale "
        "! video/x-raw,width=32,height=24 ! fakesink"
    )
    pipeline.set_state(Gst.State.PLAYING)
    try:
        message = pipeline.get_bus().timed_pop_filtered(
            10 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR
        )
        assert message is not None and message.type == Gst.MessageType.EOS
    finally:
        pipeline.set_state(Gst.State.NULL)


def test_a_machine_without_libswscale_is_told_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a process where libswscale does not load
    monkeypatch.setattr(swscale, "_lib", None)
    monkeypatch.setattr(swscale, "_lib_error", None)
    monkeypatch.setattr(swscale.ctypes.util, "find_library", lambda _name: None)
    monkeypatch.setattr(swscale, "_LIBRARY", "libswscale-not-here.so.0")
    # Then making the scaler fails at once, naming the package
    assert swscale.available() is False
    with pytest.raises(RuntimeError, match="libswscale6"):
        swscale.make("scaler")


def test_a_frame_too_small_for_its_caps_stops_the_pipeline_with_the_reason() -> None:
    # Given a buffer that holds far less than a 64x36 frame, pushed as one
    pipeline = Gst.parse_launch(
        "appsrc name=src format=time caps=video/x-raw,format=I420,width=64,height=36,framerate=25/1 "
        "! capsfilter ! appsink name=sink sync=false"
    )
    scaler = swscale.make("scaler")
    pipeline.add(scaler)
    src, sink = pipeline.get_by_name("src"), pipeline.get_by_name("sink")
    capsfilter = src.get_static_pad("src").get_peer().get_parent_element()
    src.unlink(capsfilter)
    capsfilter.set_property("caps", Gst.Caps.from_string("video/x-raw,width=32,height=18"))
    assert src.link(scaler) and scaler.link(capsfilter)
    pipeline.set_state(Gst.State.PLAYING)
    try:
        short = Gst.Buffer.new_wrapped(b"\x10" * 10)
        short.pts, short.duration = 0, Gst.SECOND // 25
        src.emit("push-buffer", short)
        message = pipeline.get_bus().timed_pop_filtered(5 * Gst.SECOND, Gst.MessageType.ERROR)
        # Then the pipeline reports an error naming the problem, and no half-written frame goes out
        assert message is not None
        error, _debug = message.parse_error()
        assert "could not scale a frame" in error.message and "bytes" in error.message
        assert sink.emit("try-pull-sample", 0) is None
    finally:
        pipeline.set_state(Gst.State.NULL)
