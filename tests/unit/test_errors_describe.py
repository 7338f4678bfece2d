"""``describe``: the one short line every log and failure reason uses for an exception."""

from __future__ import annotations

from reelay.errors import MediaError, NotFound, describe


def test_a_reelay_error_is_described_by_its_message_not_its_detail() -> None:
    error = MediaError("the file is not a video", detail="qtdemux: no moov")
    assert describe(error) == "the file is not a video"
    assert describe(NotFound("no such video")) == "no such video"


def test_a_plain_exception_gives_its_text_or_else_its_type() -> None:
    assert describe(OSError("disk full")) == "disk full"
    assert describe(TimeoutError()) == "TimeoutError"


def test_a_long_text_is_cut_with_an_ellipsis_at_the_limit() -> None:
    text = describe(RuntimeError("x" * 1000))
    assert len(text) == 300 and text.endswith("...")
    assert describe(RuntimeError("y" * 300)) == "y" * 300
    assert describe(RuntimeError("z" * 50), limit=10) == "zzzzzzz..."
