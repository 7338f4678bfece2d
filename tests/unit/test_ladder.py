"""The rendition ladder: sizes, orientation, no upscaling, name validation. No GStreamer pipelines run."""

from __future__ import annotations

import pytest

from reelay.errors import InvalidInput, MediaError
from reelay.media.ladder import (
    PRESETS,
    Bitrates,
    RenditionSpec,
    choose_ladder,
    even,
    parse_ladder,
    parse_overrides,
)
from reelay.media.probe import MediaInfo


def source(width: int, height: int, *, has_video: bool = True) -> MediaInfo:
    return MediaInfo(
        duration_seconds=10.0, has_video=has_video, has_audio=True, width=width, height=height, rotation=0,
        fps=25.0, variable_frame_rate=False, video_codec="h264", audio_codec="aac", container="mp4",
    )  # fmt: skip


def sizes(ladder: list[RenditionSpec]) -> list[tuple[str, int, int]]:
    return [(r.name, r.width, r.height) for r in ladder]


def test_presets_are_sane():
    # Given the built-in presets
    # Then each is 16:9, even-sized, and bitrates fall as the picture shrinks
    by_area = sorted(PRESETS.values(), key=lambda p: p.width * p.height, reverse=True)
    for preset in by_area:
        assert preset.width % 2 == 0 and preset.height % 2 == 0
        assert abs(preset.width / preset.height - 16 / 9) < 0.01
        assert preset.max_kbps > preset.video_kbps > 0
        assert preset.profile in ("main", "high")
    kbps = [p.video_kbps for p in by_area]
    assert kbps == sorted(kbps, reverse=True)


def test_full_hd_source_gets_the_whole_default_ladder():
    # Given a 1920x1080 source
    # When the default ladder is chosen
    ladder = choose_ladder(source(1920, 1080))
    # Then every default preset is used at its own size, largest first
    assert sizes(ladder) == [
        ("1080p", 1920, 1080),
        ("720p", 1280, 720),
        ("480p", 854, 480),
        ("360p", 640, 360),
    ]
    assert [r.profile for r in ladder] == ["high", "high", "main", "main"]


def test_never_upscales():
    # Given a 1280x720 source
    # When the default ladder is chosen
    ladder = choose_ladder(source(1280, 720))
    # Then there is no 1080p rendition and nothing is larger than the source
    assert [r.name for r in ladder] == ["720p", "480p", "360p"]
    assert all(r.width <= 1280 and r.height <= 720 for r in ladder)


def test_portrait_stays_portrait_and_short_side_is_bounded_by_the_preset():
    # Given a portrait phone video, 1080x1920
    ladder = choose_ladder(source(1080, 1920))
    # Then each rendition is portrait with the preset's short side as its width
    assert sizes(ladder) == [
        ("1080p", 1080, 1920),
        ("720p", 720, 1280),
        ("480p", 480, 854),
        ("360p", 360, 640),
    ]


def test_aspect_ratio_is_preserved_for_wide_sources():
    # Given a 2.39:1 cinema-scope source at 1920x804
    ladder = choose_ladder(source(1920, 804), ["1080p", "720p"])
    # Then widths follow the preset box and heights keep the ratio, rounded to even
    assert sizes(ladder) == [("1080p", 1920, 804), ("720p", 1280, 536)]
    for r in ladder:
        assert abs(r.width / r.height - 1920 / 804) < 0.01


def test_odd_source_dimensions_are_rounded_to_even_without_gaining_a_pixel():
    # Given sources with odd dimensions
    # Then renditions are even-sized and never larger than the source
    assert sizes(choose_ladder(source(641, 361), ["360p"])) == [("360p", 640, 360)]
    assert sizes(choose_ladder(source(1279, 719), ["720p", "360p"])) == [("360p", 640, 360)]
    assert sizes(choose_ladder(source(1281, 721), ["720p"])) == [("720p", 1280, 720)]


def test_source_smaller_than_every_preset_gets_one_rendition_at_its_own_size():
    # Given a tiny 321x179 source and the default ladder (smallest preset 360p)
    ladder = choose_ladder(source(321, 179))
    # Then there is exactly one rendition, at the source size rounded down to even, with a scaled-down bitrate
    assert len(ladder) == 1
    only = ladder[0]
    assert (only.width, only.height) == (320, 178)
    assert only.name == "178p"
    assert 0 < only.video_kbps < PRESETS["360p"].video_kbps
    assert only.max_kbps > only.video_kbps


def test_order_of_names_does_not_matter_and_a_string_is_accepted():
    # Given the ladder spelled in the settings' comma-separated form, smallest first
    ladder = choose_ladder(source(1920, 1080), "360p, 1080p")
    # Then renditions come largest first
    assert [r.name for r in ladder] == ["1080p", "360p"]
    assert parse_ladder(" 720p,,480p ") == ("720p", "480p")


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["4k"], "unknown rendition"),
        (["720p", "bogus", "x"], "'bogus', 'x'"),
        ([], "empty"),
        (["720p", "720p"], "twice"),
    ],
)
def test_bad_ladder_names_are_invalid_input(names, message):
    # Given a ladder with bad names
    # When it is chosen
    # Then InvalidInput says what is wrong
    with pytest.raises(InvalidInput, match=message):
        choose_ladder(source(1920, 1080), names)


def test_source_without_video_is_a_media_error():
    with pytest.raises(MediaError, match="no video"):
        choose_ladder(source(0, 0, has_video=False))


@pytest.mark.parametrize(
    ("value", "expected"), [(359.0, 360), (360.4, 360), (361, 362), (362.9, 362), (0.4, 2), (853.3, 854)]
)
def test_even(value, expected):
    assert even(value) == expected


# --- configurable bitrates (REELAY_LADDER_OVERRIDES) ----------------------------------------------
def rates(ladder: list[RenditionSpec]) -> dict[str, tuple[int, int, int]]:
    return {r.name: (r.video_kbps, r.max_kbps, r.audio_kbps) for r in ladder}


def test_overrides_in_the_settings_form_replace_only_the_named_presets():
    # Given overrides for 720p and 360p, spelled as REELAY_LADDER_OVERRIDES spells them
    overrides = " 720p=2500:3750:160 , 360p = 700 : 1050 : 64 "
    # When the ladder is chosen for a full-HD source
    ladder = choose_ladder(source(1920, 1080), overrides=overrides)
    # Then the named presets carry the configured rates and the others keep the built-in ones
    assert rates(ladder) == {
        "1080p": (5000, 7500, 128),
        "720p": (2500, 3750, 160),
        "480p": (1400, 2100, 128),
        "360p": (700, 1050, 64),
    }
    # And the sizes and profiles are those of the presets
    assert sizes(ladder)[1] == ("720p", 1280, 720)
    assert ladder[1].profile == "high"
    # And the module's presets are left as they were
    assert PRESETS["720p"].video_kbps == 2800


def test_overrides_may_be_given_parsed_and_without_any_it_is_the_old_call():
    # Given a parsed override, and the two-argument call older callers make
    parsed = parse_overrides("480p=1000:1500:96")
    assert parsed == {"480p": Bitrates(video_kbps=1000, max_kbps=1500, audio_kbps=96)}
    # Then the mapping works like the text, and no overrides (None or "") mean the built-in rates
    assert rates(choose_ladder(source(1920, 1080), ["480p"], parsed)) == {"480p": (1000, 1500, 96)}
    assert choose_ladder(source(1920, 1080), ["480p"]) == choose_ladder(source(1920, 1080), ["480p"], "")
    assert choose_ladder(source(1920, 1080), ["480p"], None)[0].video_kbps == 1400


def test_an_override_for_a_preset_outside_the_ladder_is_accepted_and_unused():
    ladder = choose_ladder(source(1920, 1080), ["720p"], overrides="1080p=6000:9000:192")
    assert rates(ladder) == {"720p": (2800, 4200, 128)}


def test_a_source_below_every_preset_scales_from_the_overridden_smallest_preset():
    # Given a tiny source and a 360p override at half the built-in rate
    built_in = choose_ladder(source(320, 180), ["360p"])[0]
    halved = choose_ladder(source(320, 180), ["360p"], overrides="360p=400:600:64")[0]
    # Then its one rendition scales from the configured rate, audio included
    assert halved.video_kbps < built_in.video_kbps
    assert halved.audio_kbps == 64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("720p=abc:4200:128", "video 'abc' is not a whole number"),
        ("720p=2800:4.2k:128", "max '4.2k' is not a whole number"),
        ("720p=2800:4200:", "audio '' is not a whole number"),
        ("720p=0:4200:128", "video must be positive"),
        ("720p=-2800:4200:128", "video must be positive"),
        ("720p=2800:4200:0", "audio must be positive"),
        ("720p=2800:2000:128", "max 2000 kbps is below video 2800 kbps"),
        ("4k=20000:30000:128", "unknown rendition name '4k'"),
        ("720p=2800:4200", "three kbps values"),
        ("720p=2800:4200:128:1", "three kbps values"),
        ("720p", "name=video:max:audio"),
        ("=1:2:3", "name=video:max:audio"),
        ("720p=1:2:3,720p=4:5:6", "names '720p' twice"),
        ("720p=2800000:4200000:128", "above the 100000 kbps limit"),
        ("720p=2800:4200:128000", "above the 512 kbps limit"),
        ("720p=\uff12\uff18\uff10\uff10:4200:128", "not a whole number"),  # full-width digits are not kbps
    ],
)
def test_bad_overrides_are_invalid_input_naming_the_entry(text, message):
    # Given a malformed REELAY_LADDER_OVERRIDES
    # When the ladder is chosen with it
    # Then InvalidInput says which entry is wrong and why
    with pytest.raises(InvalidInput, match=message):
        choose_ladder(source(1920, 1080), overrides=text)
    with pytest.raises(InvalidInput, match=message):
        parse_overrides(text)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"4k": Bitrates(1, 2, 3)}, "unknown rendition"),
        ({"720p": Bitrates(3000, 2000, 128)}, "video <= max"),
        ({"720p": Bitrates(0, 2000, 128)}, "video <= max"),
        ({"720p": Bitrates(2000, 3000, 0)}, "audio > 0"),
    ],
)
def test_bad_parsed_overrides_are_invalid_input(overrides, message):
    with pytest.raises(InvalidInput, match=message):
        choose_ladder(source(1920, 1080), overrides=overrides)


def test_settings_read_the_overrides_from_the_environment(monkeypatch):
    # Given REELAY_LADDER_OVERRIDES in the environment
    from reelay.settings import Settings

    monkeypatch.setenv("REELAY_LADDER_OVERRIDES", "360p=700:1050:96")
    settings = Settings()
    # When the ladder is chosen with the settings' names and overrides
    ladder = choose_ladder(source(640, 360), settings.ladder, settings.ladder_overrides)
    # Then it uses those rates; without the variable there are none
    assert rates(ladder) == {"360p": (700, 1050, 96)}
    monkeypatch.delenv("REELAY_LADDER_OVERRIDES")
    assert Settings().ladder_overrides == ""


def test_recording_rungs_come_largest_first_at_their_box_sizes():
    from reelay.media.ladder import rungs

    assert [(r.name, r.width, r.height) for r in rungs(["360p", "720p"])] == [
        ("720p", 1280, 720),
        ("360p", 640, 360),
    ]
    assert rungs(["360p"], "360p=500:700:96")[0].video_kbps == 500


@pytest.mark.parametrize(
    ("names", "message"),
    [(["4k"], "unknown rendition"), (["720p", "720p"], "twice"), (["source"], "unknown rendition")],
)
def test_bad_recording_rungs_are_invalid_input(names, message):
    from reelay.media.ladder import rungs

    with pytest.raises(InvalidInput, match=message):
        rungs(names)


@pytest.mark.parametrize(
    ("source", "name", "expected"),
    [
        ((1920, 1080), "720p", (1280, 720)),
        ((640, 480), "360p", (480, 360)),  # 4:3 fits the box's short side
        ((1080, 1920), "720p", (720, 1280)),  # portrait stays portrait
        ((640, 360), "720p", (640, 360)),  # never upscaled
        ((320, 240), "360p", (320, 240)),  # smaller than the box: the source's size, the rung's name
    ],
)
def test_a_rung_is_fitted_to_the_live_source_keeping_its_name_and_rates(source, name, expected):
    from reelay.media.ladder import PRESETS, fit_rung

    fitted = fit_rung(PRESETS[name], *source)
    assert (fitted.name, (fitted.width, fitted.height)) == (name, expected)
    assert (fitted.video_kbps, fitted.max_kbps) == (PRESETS[name].video_kbps, PRESETS[name].max_kbps)
