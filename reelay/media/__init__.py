"""Media core: probe an upload, choose its rendition ladder, transcode it to adaptive HLS in one pipeline.

Public entry points: ``probe.probe``, ``ladder.choose_ladder``, ``pipeline.transcode`` and the playlist
writers in ``hls``. Modules import GStreamer lazily through ``_gst`` so ``hls`` and ``ladder``'s data
classes stay usable where only playlists are needed.
"""
