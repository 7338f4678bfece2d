"""The container image's entry points: the transcode worker (``python -m transcoder.worker``)."""
