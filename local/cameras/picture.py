"""What a test camera sends: size, frame rate, keyframe interval and bitrate (no GStreamer import).

The default is the tiny picture every test uses; benchmarks ask for more (``Picture.parse("1920x1080")``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Picture:
    width: int = 320
    height: int = 240
    fps: int = 15
    keyframe_seconds: int = 1
    bitrate_kbps: int = 300

    def __post_init__(self) -> None:
        if min(self.width, self.height, self.fps, self.keyframe_seconds, self.bitrate_kbps) <= 0:
            raise ValueError(f"every picture setting must be positive: {self}")

    @staticmethod
    def parse_size(text: str) -> tuple[int, int]:
        """``"1920x1080"`` -> (1920, 1080)."""
        try:
            width, height = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise ValueError(f"size must look like 1920x1080, not {text!r}") from None
        return width, height

    def args(self) -> list[str]:
        """The camera command line's options for this picture."""
        return [
            "--size", f"{self.width}x{self.height}", "--fps", str(self.fps),
            "--keyframe-seconds", str(self.keyframe_seconds), "--bitrate", str(self.bitrate_kbps),
        ]  # fmt: skip
