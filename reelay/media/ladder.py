"""The rendition ladder: which HLS variants a video gets, and at what size and bitrate.

A preset names a box (e.g. 1280x720 for "720p"). A rendition fits the source into that box in the
source's own orientation, so portrait video stays portrait, and it is never larger than the source.

x264enc in GStreamer 1.22 ties the VBV max rate to ``bitrate``, so renditions are encoded capped at
``video_kbps`` with a VBV buffer of one segment; ``max_kbps`` is the nominal peak announced before the
real peak has been measured from the produced segments.

Bitrates are configurable per preset with ``Settings.ladder_overrides`` (``REELAY_LADDER_OVERRIDES``):
a comma-separated list of ``name=video:max:audio`` in kbps, e.g. ``"720p=2500:3750:128,360p=700:1050:96"``.
``video`` is the encoder's target (and VBV cap), ``max`` the nominal peak announced before measurement
(at least ``video``), ``audio`` the AAC rate. Every number must be a positive integer (video and max at
most 100000, audio at most 512: larger values are bits/s typed as kbps); the name must be a preset.
Presets not named keep their built-in rates. ``parse_overrides`` checks the text and raises
InvalidInput naming the bad entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from reelay.errors import InvalidInput, MediaError

if TYPE_CHECKING:  # probe imports GStreamer; the ladder's names and checks must not (Lambdas have no gi)
    from reelay.media.probe import MediaInfo


@dataclass(frozen=True)
class RenditionSpec:
    name: str
    width: int
    height: int
    video_kbps: int
    max_kbps: int
    audio_kbps: int
    profile: str  # "main" | "high"


# The default ladder's renditions share one audio rate, so the transcode encodes its audio once and
# every variant carries the same AAC frames: a player switching variants hears no seam, as with the one
# shared audio track that large streaming services serve across their video rungs.
# 360p at 96 kbps would save 32 kbps (4 % of that rung) for a second AAC encode: about 1.7 % of a
# 1080p transcode's CPU. 240p, for starved links and not in the default ladder, keeps 64 kbps.
PRESETS: dict[str, RenditionSpec] = {
    p.name: p
    for p in (
        RenditionSpec("1080p", 1920, 1080, video_kbps=5000, max_kbps=7500, audio_kbps=128, profile="high"),
        RenditionSpec("720p", 1280, 720, video_kbps=2800, max_kbps=4200, audio_kbps=128, profile="high"),
        RenditionSpec("480p", 854, 480, video_kbps=1400, max_kbps=2100, audio_kbps=128, profile="main"),
        RenditionSpec("360p", 640, 360, video_kbps=800, max_kbps=1200, audio_kbps=128, profile="main"),
        RenditionSpec("240p", 426, 240, video_kbps=400, max_kbps=600, audio_kbps=64, profile="main"),
    )
}
DEFAULT_LADDER = ("1080p", "720p", "480p", "360p")


def even(value: float) -> int:
    """Nearest even integer (halves round up), at least 2: 4:2:0 chroma needs even dimensions."""
    return max(2, int(value / 2 + 0.5) * 2)


def _even_down(value: int) -> int:
    return max(2, value - value % 2)


def parse_ladder(text: str) -> tuple[str, ...]:
    """ "1080p, 720p" -> ("1080p", "720p"), as Settings.ladder spells it."""
    return tuple(n.strip() for n in text.split(",") if n.strip())


@dataclass(frozen=True)
class Bitrates:
    """One preset's rates in kbps, as ``REELAY_LADDER_OVERRIDES`` sets them."""

    video_kbps: int
    max_kbps: int
    audio_kbps: int


# Sanity caps that catch bits-per-second typed where kbps are meant; far above any sane ladder.
MAX_VIDEO_KBPS = 100_000
MAX_AUDIO_KBPS = 512


def _positive_kbps(entry: str, what: str, text: str, cap: int) -> int:
    value = text.strip()
    digits = value[1:] if value[:1] in "+-" else value
    if not (digits.isascii() and digits.isdigit()):
        raise InvalidInput(f"ladder override {entry!r}: {what} {value!r} is not a whole number of kbps")
    kbps = int(value)
    if kbps <= 0:
        raise InvalidInput(f"ladder override {entry!r}: {what} must be positive")
    if kbps > cap:
        raise InvalidInput(f"ladder override {entry!r}: {what} {kbps} kbps is above the {cap} kbps limit")
    return kbps


def parse_overrides(text: str) -> dict[str, Bitrates]:
    """ "720p=2800:4200:128, 360p=700:1050:96" -> {name: Bitrates}. Empty text means no overrides."""
    out: dict[str, Bitrates] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        name, sep, rates = (part.strip() for part in entry.partition("="))
        if not sep or not name:
            raise InvalidInput(f"ladder override {entry!r} must look like name=video:max:audio (kbps)")
        if name not in PRESETS:
            raise InvalidInput(
                f"ladder override {entry!r}: unknown rendition name {name!r}; known: {', '.join(PRESETS)}"
            )
        if name in out:
            raise InvalidInput(f"ladder override names {name!r} twice")
        parts = rates.split(":")
        if len(parts) != 3:
            raise InvalidInput(f"ladder override {entry!r} needs three kbps values: video:max:audio")
        video = _positive_kbps(entry, "video", parts[0], MAX_VIDEO_KBPS)
        peak = _positive_kbps(entry, "max", parts[1], MAX_VIDEO_KBPS)
        audio = _positive_kbps(entry, "audio", parts[2], MAX_AUDIO_KBPS)
        if peak < video:
            raise InvalidInput(f"ladder override {entry!r}: max {peak} kbps is below video {video} kbps")
        out[name] = Bitrates(video, peak, audio)
    return out


def _presets(overrides: Mapping[str, Bitrates] | str | None) -> dict[str, RenditionSpec]:
    if not overrides:
        return PRESETS
    if isinstance(overrides, str):
        overrides = parse_overrides(overrides)
    unknown = [n for n in overrides if n not in PRESETS]
    if unknown:
        raise InvalidInput(f"ladder override for unknown rendition name(s) {', '.join(map(repr, unknown))}")
    presets = dict(PRESETS)
    for name, rates in overrides.items():
        if not 0 < rates.video_kbps <= rates.max_kbps or rates.audio_kbps <= 0:
            raise InvalidInput(f"ladder override for {name!r} needs 0 < video <= max and audio > 0")
        presets[name] = replace(
            PRESETS[name], video_kbps=rates.video_kbps, max_kbps=rates.max_kbps, audio_kbps=rates.audio_kbps
        )
    return presets


def choose_ladder(
    info: MediaInfo,
    names: Sequence[str] = DEFAULT_LADDER,
    overrides: Mapping[str, Bitrates] | str | None = None,
) -> list[RenditionSpec]:
    """The renditions for a source, largest first. Raises InvalidInput for unknown or repeated names.

    ``overrides`` replaces presets' bitrates: ``Settings.ladder_overrides`` text as it is, or the
    mapping ``parse_overrides`` returns.
    """
    if isinstance(names, str):
        names = parse_ladder(names)
    presets_by_name = _presets(overrides)
    if not names:
        raise InvalidInput("the rendition ladder is empty")
    unknown = [n for n in names if n not in presets_by_name]
    if unknown:
        raise InvalidInput(
            f"unknown rendition name(s) {', '.join(map(repr, unknown))}; known: {', '.join(PRESETS)}"
        )
    if len(set(names)) != len(names):
        raise InvalidInput("the rendition ladder names a rendition twice")
    if not info.has_video or info.width <= 0 or info.height <= 0:
        raise MediaError("the file has no video stream")

    src_w, src_h = info.width, info.height
    portrait = src_h > src_w
    src_long, src_short = max(src_w, src_h), min(src_w, src_h)
    presets = sorted((presets_by_name[n] for n in names), key=lambda p: p.width * p.height, reverse=True)

    chosen: list[RenditionSpec] = []
    seen: set[tuple[int, int]] = set()
    for preset in presets:
        box_long, box_short = max(preset.width, preset.height), min(preset.width, preset.height)
        scale = min(box_long / src_long, box_short / src_short)
        if scale > 1:  # the source is smaller than this box: never upscale
            continue
        # Rounding to even must not add a pixel the source does not have.
        long_side = min(even(src_long * scale), _even_down(src_long))
        short_side = min(even(src_short * scale), _even_down(src_short))
        size = (short_side, long_side) if portrait else (long_side, short_side)
        if size in seen:
            continue
        seen.add(size)
        chosen.append(replace(preset, width=size[0], height=size[1]))
    if chosen:
        return chosen

    # Smaller than every preset: one rendition at the source size, bitrate scaled from the smallest preset.
    smallest = presets[-1]
    width, height = _even_down(src_w), _even_down(src_h)
    area = (width * height) / (smallest.width * smallest.height)
    return [
        RenditionSpec(
            name=f"{min(width, height)}p",
            width=width,
            height=height,
            video_kbps=max(150, round(smallest.video_kbps * area)),
            max_kbps=max(225, round(smallest.max_kbps * area)),
            audio_kbps=smallest.audio_kbps,
            profile="main",
        )
    ]


# --- live recording: rungs named by a stream, sized once the live source's picture is known ----------
def rungs(names: Sequence[str], overrides: Mapping[str, Bitrates] | str | None = None) -> list[RenditionSpec]:
    """A stream's encoded recording renditions, by preset name, at the presets' box sizes (the live
    source's size is not known yet: ``fit_rung`` sizes each once it is). InvalidInput for unknown or
    repeated names, or a name that would clash with the passthrough ``source`` rendition."""
    presets = _presets(overrides)
    unknown = [n for n in names if n not in presets]
    if unknown:
        raise InvalidInput(
            f"unknown rendition name(s) {', '.join(map(repr, unknown))}; known: {', '.join(PRESETS)}"
        )
    if len(set(names)) != len(names):
        raise InvalidInput("the recording renditions name a rendition twice")
    return sorted((presets[n] for n in names), key=lambda p: p.width * p.height, reverse=True)


def fit_rung(spec: RenditionSpec, width: int, height: int) -> RenditionSpec:
    """``spec`` fitted to a ``width`` x ``height`` source as ``choose_ladder`` fits it (the source's
    orientation, never upscaled, even sides), keeping the rung's name and bitrates."""
    from reelay.media.probe import MediaInfo

    info = MediaInfo(
        duration_seconds=None, has_video=True, has_audio=False, width=width, height=height, rotation=0,
        fps=None, variable_frame_rate=False, video_codec=None, audio_codec=None, container=None,
    )  # fmt: skip
    rates = {spec.name: Bitrates(spec.video_kbps, spec.max_kbps, spec.audio_kbps)}
    fitted = choose_ladder(info, [spec.name], rates)
    return replace(spec, width=fitted[0].width, height=fitted[0].height)
