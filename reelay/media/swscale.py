"""``SwScale``: a GStreamer element that scales I420 frames with FFmpeg's libswscale.

GStreamer 1.22's videoscale gathers a multi-tap filter's taps one byte at a time (its generic
``video_scale_h_ntap_u8``); for the ladder's 1.5x reductions (720p from 1080p) that cost about 2.5 times
what libswscale's SIMD code takes for the same frames, and it was the largest cost around the encoders
(tests/bench/bench_ladder.py). GStreamer only got a libswscale element (avvideoscale) in 1.24, so this
is that element for 1.22: a ``GstBase.BaseTransform`` written in Python that hands each frame to
``sws_scale`` through ctypes (which releases the GIL, so the renditions scale in parallel).

With ``SWS_BILINEAR`` (the default) its output is byte for byte what ``ffmpeg -vf
scale=W:H:flags=bilinear`` makes of the same frames (tests/integration/test_swscale.py checks it).

libswscale comes with FFmpeg's libraries, which gst-libav (avdec_h264, avenc_aac) already needs; the
media image and the bootstrap name ``libswscale6`` all the same. ``available()`` says whether it loads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Any

from reelay.media._gst import GObject, Gst, GstBase, GstVideo, ensure_init

SWS_FAST_BILINEAR, SWS_BILINEAR, SWS_BICUBIC = 1, 2, 4
_AV_PIX_FMT_YUV420P = 0  # libavutil's AVPixelFormat for planar 4:2:0 (I420)
_LIBRARY = "libswscale.so.6"  # FFmpeg 5.1, Debian 12's; the ABI below is stable across 5.x and 6.x
_CAPS = "video/x-raw,format=I420"


class _PyBuffer(ctypes.Structure):
    """CPython's Py_buffer: the address behind a (read-only) memoryview, without copying it."""

    _fields_ = [
        ("buf", ctypes.c_void_p), ("obj", ctypes.py_object), ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t), ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p), ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p), ("internal", ctypes.c_void_p),
    ]  # fmt: skip


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
_release_buffer.restype = None


def _address(view: memoryview, size: int) -> int:
    """The address of a mapped GstBuffer's memory (gst-python hands it out as a memoryview). Valid while
    the buffer stays mapped; checked against the size the frame needs."""
    info = _PyBuffer()
    if _get_buffer(view, ctypes.byref(info), 0) != 0:
        raise RuntimeError("could not read a mapped buffer's address")
    try:
        if info.len < size or not info.buf:
            raise RuntimeError(f"a mapped frame holds {info.len} bytes, {size} needed")
        return int(info.buf)
    finally:
        _release_buffer(ctypes.byref(info))


_lib: ctypes.CDLL | None = None
_lib_error: str | None = None
_lock = threading.Lock()


def _library() -> ctypes.CDLL:
    global _lib, _lib_error
    with _lock:
        if _lib is None and _lib_error is None:
            try:
                lib = ctypes.CDLL(ctypes.util.find_library("swscale") or _LIBRARY)
                lib.sws_getContext.restype = ctypes.c_void_p
                lib.sws_getContext.argtypes = [ctypes.c_int] * 7 + [ctypes.c_void_p] * 3
                lib.sws_scale.restype = ctypes.c_int
                lib.sws_scale.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int] * 2 + [ctypes.c_void_p] * 2
                lib.sws_freeContext.restype = None
                lib.sws_freeContext.argtypes = [ctypes.c_void_p]
                _lib = lib
            except (OSError, AttributeError) as exc:
                _lib_error = f"libswscale is not installed or not usable ({exc}); install libswscale6"
        if _lib is None:
            raise RuntimeError(_lib_error)
        return _lib


def available() -> bool:
    """Whether libswscale loads here."""
    try:
        _library()
    except RuntimeError:
        return False
    return True


Layout = tuple[tuple[int, int, int], "ctypes.Array[ctypes.c_int]", int]


def layout(info: GstVideo.VideoInfo, meta: GstVideo.VideoMeta | None = None) -> Layout:
    """(offsets, strides as libswscale takes them, bytes spanned) of a frame's three planes: from its
    video meta when it has one (a pool may pad its rows), else the caps' default layout."""
    offsets, strides = (meta.offset, meta.stride) if meta is not None else (info.offset, info.stride)
    o, s = tuple(offsets[:3]), tuple(strides[:3])
    rows = (info.height, (info.height + 1) // 2, (info.height + 1) // 2)
    return (
        (o[0], o[1], o[2]),
        (ctypes.c_int * 4)(*s, 0),
        max(a + b * r for a, b, r in zip(o, s, rows, strict=True)),
    )


def _define() -> type:
    """The element's class, defined once GStreamer is initialised (its pad templates need it)."""
    ensure_init()

    class SwScale(GstBase.BaseTransform):
        """I420 in, I420 out at the size downstream asks for (a capsfilter), scaled by libswscale."""

        __gstmetadata__ = (
            "libswscale video scaler",
            "Filter/Converter/Video/Scaler",
            "Scales I420 video with FFmpeg's libswscale (bilinear by default, as ffmpeg's flags=bilinear)",
            "Reelay",
        )
        __gsttemplates__ = tuple(
            Gst.PadTemplate.new(name, direction, Gst.PadPresence.ALWAYS, Gst.Caps.from_string(_CAPS))
            for name, direction in (("sink", Gst.PadDirection.SINK), ("src", Gst.PadDirection.SRC))
        )
        __gproperties__ = {
            "sws-flags": (
                int, "libswscale flags", "SWS_BILINEAR (2), SWS_BICUBIC (4), ...", 1, 0xFFFF, SWS_BILINEAR,
                GObject.ParamFlags.READWRITE,
            ),
        }  # fmt: skip

        def __init__(self, **properties: Any) -> None:
            super().__init__(**properties)
            self._flags = SWS_BILINEAR
            self._context: int | None = None
            self._in: GstVideo.VideoInfo | None = None
            self._out: GstVideo.VideoInfo | None = None
            self._sws_scale = _library().sws_scale  # per frame: no lock, no lookup
            self._in_layout: Layout = ((0, 0, 0), (ctypes.c_int * 4)(), 0)  # set with the caps
            self._out_layout: Layout = ((0, 0, 0), (ctypes.c_int * 4)(), 0)
            self.set_qos_enabled(False)

        def do_get_property(self, prop: GObject.ParamSpec) -> int:
            if prop.name == "sws-flags":
                return self._flags
            raise AttributeError(prop.name)

        def do_set_property(self, prop: GObject.ParamSpec, value: int) -> None:
            if prop.name != "sws-flags":
                raise AttributeError(prop.name)
            self._flags = value

        # --- negotiation ----------------------------------------------------------------------------
        def do_transform_caps(
            self, _direction: Gst.PadDirection, caps: Gst.Caps, filter_: Gst.Caps | None
        ) -> Gst.Caps:
            """Any size on the other side: the same caps with width, height and pixel aspect ratio open."""
            out = Gst.Caps.new_empty()
            for i in range(caps.get_size()):
                structure = caps.get_structure(i).copy()
                structure.set_value("width", Gst.IntRange(range(1, 32768)))
                structure.set_value("height", Gst.IntRange(range(1, 32768)))
                structure.remove_field("pixel-aspect-ratio")
                out.append_structure(structure)
            return filter_.intersect_full(out, Gst.CapsIntersectMode.FIRST) if filter_ is not None else out

        def do_transform_size(
            self, _direction: Gst.PadDirection, _caps: Gst.Caps, _size: int, othercaps: Gst.Caps
        ) -> tuple[bool, int]:
            info = GstVideo.VideoInfo.new_from_caps(othercaps)
            return (info is not None, info.size if info is not None else 0)

        def do_decide_allocation(self, query: Gst.Query) -> bool:
            """Output frames from a pool of our own when downstream offers none (x264enc does not):
            otherwise each frame is allocated afresh, and sized by a call into Python."""
            if query.get_n_allocation_pools() == 0:
                caps, _need_pool = query.parse_allocation()
                info = GstVideo.VideoInfo.new_from_caps(caps) if caps is not None else None
                if info is not None:
                    pool = GstVideo.VideoBufferPool()
                    config = pool.get_config()
                    Gst.BufferPool.config_set_params(config, caps, info.size, 0, 0)
                    pool.set_config(config)
                    query.add_allocation_pool(pool, info.size, 0, 0)
            return GstBase.BaseTransform.do_decide_allocation(self, query)

        def do_set_caps(self, incaps: Gst.Caps, outcaps: Gst.Caps) -> bool:
            src, dst = GstVideo.VideoInfo.new_from_caps(incaps), GstVideo.VideoInfo.new_from_caps(outcaps)
            if src is None or dst is None:
                return False
            lib = _library()
            self._free()
            # The same caps on both sides (a rendition the size of the source): frames pass untouched.
            self.set_passthrough(incaps.is_equal(outcaps))
            context = lib.sws_getContext(
                src.width, src.height, _AV_PIX_FMT_YUV420P, dst.width, dst.height, _AV_PIX_FMT_YUV420P,
                self._flags, None, None, None,
            )  # fmt: skip
            if not context:
                Gst.error(f"libswscale refused {src.width}x{src.height} -> {dst.width}x{dst.height}")
                return False
            self._context, self._in, self._out = context, src, dst
            self._in_layout, self._out_layout = layout(src), layout(dst)  # frames without a video meta
            return True

        def do_stop(self) -> bool:
            self._free()
            return True

        def _free(self) -> None:
            context, self._context = self._context, None
            if context:
                _library().sws_freeContext(context)

        # --- frames ---------------------------------------------------------------------------------
        def do_transform(self, inbuf: Gst.Buffer, outbuf: Gst.Buffer) -> Gst.FlowReturn:
            # An exception escaping a Python vfunc would let the frame through unfilled: every failure
            # is an element error instead, which stops the pipeline with the reason.
            try:
                return self._scale(inbuf, outbuf)
            except Exception as exc:
                self._fail(f"could not scale a frame: {exc}")
                return Gst.FlowReturn.ERROR

        def _scale(self, inbuf: Gst.Buffer, outbuf: Gst.Buffer) -> Gst.FlowReturn:
            context, src, dst = self._context, self._in, self._out
            if not context or src is None or dst is None:
                return Gst.FlowReturn.NOT_NEGOTIATED
            meta_in, meta_out = GstVideo.buffer_get_video_meta(inbuf), GstVideo.buffer_get_video_meta(outbuf)
            in_offsets, in_strides, in_size = self._in_layout if meta_in is None else layout(src, meta_in)
            out_offsets, out_strides, out_size = (
                self._out_layout if meta_out is None else layout(dst, meta_out)
            )
            ok_in, mapped_in = inbuf.map(Gst.MapFlags.READ)
            if not ok_in:
                raise RuntimeError("the input frame could not be mapped")
            try:
                ok_out, mapped_out = outbuf.map(Gst.MapFlags.WRITE)
                if not ok_out:
                    raise RuntimeError("the output frame could not be mapped")
                try:
                    base_in = _address(mapped_in.data, in_size)
                    base_out = _address(mapped_out.data, out_size)
                    planes_in = (ctypes.c_void_p * 4)(*(base_in + o for o in in_offsets), None)
                    planes_out = (ctypes.c_void_p * 4)(*(base_out + o for o in out_offsets), None)
                    rows = self._sws_scale(
                        context, planes_in, in_strides, 0, src.height, planes_out, out_strides
                    )
                finally:
                    outbuf.unmap(mapped_out)
            finally:
                inbuf.unmap(mapped_in)
            if rows != dst.height:
                raise RuntimeError(f"libswscale wrote {rows} of {dst.height} rows")
            return Gst.FlowReturn.OK

        def _fail(self, text: str) -> None:
            self.message_full(
                Gst.MessageType.ERROR, Gst.stream_error_quark(), Gst.StreamError.FAILED, text, text,
                __file__, "do_transform", 0,
            )  # fmt: skip

    return SwScale


_element_type: type | None = None


def element_type() -> type:
    """The element's GType-registered class, registered as ``reelayswscale`` (once per process), so
    ``Gst.parse_launch`` and ``Gst.ElementFactory`` know it too."""
    global _element_type
    with _lock:
        if _element_type is None:
            cls = _define()
            GObject.type_register(cls)
            Gst.Element.register(None, "reelayswscale", Gst.Rank.NONE, cls)
            _element_type = cls
        return _element_type


def register() -> None:
    element_type()


def make(name: str | None = None, *, flags: int = SWS_BILINEAR) -> Gst.Element:
    """A new scaler. Made directly, not through the factory: an element made by a Python type through
    the factory is not floating, which GStreamer reports as a critical warning."""
    cls = element_type()
    _library()  # fail here, with the reason, rather than at negotiation
    element: Gst.Element = cls(name=name) if name else cls()
    element.set_property("sws-flags", flags)
    return element


__all__ = [
    "SWS_BICUBIC",
    "SWS_BILINEAR",
    "SWS_FAST_BILINEAR",
    "available",
    "element_type",
    "make",
    "register",
]
