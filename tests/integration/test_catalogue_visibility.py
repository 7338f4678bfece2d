"""Visibility, the unpublish flag and the moderation audit log: one contract, both catalogues
(MemoryCatalogue and MySQLCatalogue on the real MariaDB, migrated through 0009)."""

from __future__ import annotations

import pytest

from reelay.errors import InvalidInput, NotFound
from reelay.models import ModerationAction, ModerationRecord, VideoStatus, VideoVisibility
from reelay.ports import VideoCatalogue
from tests.integration.test_catalogue_contract import (  # noqa: F401  (fixtures)
    catalogue,
    migrated_url,
    new_video,
    queued,
    ready,
    world,
)


def record(
    video_id: str, action: ModerationAction = ModerationAction.UNPUBLISH, **over: str
) -> ModerationRecord:
    fields = {
        "moderator_id": "mod-1",
        "moderator_email": "mo@example.com",
        "action": action,
        "video_id": video_id,
        "owner_id": "owner-1",
        "reason": "spam",
    } | over
    return ModerationRecord(**fields)  # type: ignore[arg-type]


def listed(cat: VideoCatalogue) -> set[str]:
    return {v.video_id for v in cat.list_ready(limit=100).items}


def test_a_video_is_public_by_default_and_keeps_the_visibility_it_was_created_with(catalogue) -> None:  # noqa: F811
    default = catalogue.create(new_video())
    private = catalogue.create(new_video(visibility=VideoVisibility.PRIVATE))
    assert catalogue.get(default.video_id).visibility == VideoVisibility.PUBLIC
    assert catalogue.get(private.video_id).visibility == VideoVisibility.PRIVATE
    assert catalogue.get(private.video_id).unpublished is False


def test_only_ready_public_videos_that_are_not_unpublished_are_listed(catalogue) -> None:  # noqa: F811
    public = ready(catalogue)
    unlisted = ready(catalogue, visibility=VideoVisibility.UNLISTED)
    private = ready(catalogue, visibility=VideoVisibility.PRIVATE)
    pulled = ready(catalogue)
    waiting = queued(catalogue)
    catalogue.moderate(record(pulled.video_id), unpublished=True)
    assert listed(catalogue) == {public.video_id}
    # while the owner's own list has every one of them
    mine = {v.video_id for v in catalogue.list_by_owner("owner-1", limit=100).items}
    assert mine == {public.video_id, unlisted.video_id, private.video_id, pulled.video_id, waiting.video_id}


def test_the_owner_changes_visibility_and_the_list_follows(catalogue) -> None:  # noqa: F811
    video = ready(catalogue)
    changed = catalogue.set_visibility(video.video_id, VideoVisibility.PRIVATE)
    assert changed.visibility == VideoVisibility.PRIVATE and changed.updated_at >= video.updated_at
    assert video.video_id not in listed(catalogue)
    # the same value again is no error
    assert (
        catalogue.set_visibility(video.video_id, VideoVisibility.PRIVATE).visibility
        == VideoVisibility.PRIVATE
    )
    assert catalogue.set_visibility(video.video_id, VideoVisibility.PUBLIC).status == VideoStatus.READY
    assert video.video_id in listed(catalogue)


def test_bad_visibility_and_unknown_videos_are_refused(catalogue) -> None:  # noqa: F811
    video = catalogue.create(new_video())
    with pytest.raises(InvalidInput, match="visibility must be one of public, unlisted, private"):
        catalogue.set_visibility(video.video_id, "secret")  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        catalogue.set_visibility("no-such-video", VideoVisibility.PRIVATE)
    with pytest.raises(NotFound):
        catalogue.moderate(record("no-such-video"), unpublished=True)
    # and a refused moderation leaves no audit record behind
    assert catalogue.list_moderation(limit=10).items == []


def test_unpublish_and_its_audit_record_go_together_and_the_log_pages_newest_first(catalogue) -> None:  # noqa: F811
    video = ready(catalogue)
    first = catalogue.moderate(record(video.video_id, reason="spam"), unpublished=True)
    assert catalogue.get(video.video_id).unpublished is True
    second = catalogue.moderate(
        record(video.video_id, ModerationAction.REPUBLISH, reason="appeal"), unpublished=False
    )
    assert catalogue.get(video.video_id).unpublished is False
    # a delete is recorded without touching the flag (the row goes next)
    third = catalogue.moderate(record(video.video_id, ModerationAction.DELETE, reason="illegal"))
    catalogue.delete(video.video_id)
    assert first.audit_id is not None and first.audit_id < (second.audit_id or 0) < (third.audit_id or 0)
    assert first.created_at <= second.created_at <= third.created_at
    # Then the log names who, what, which video, whose, why and when, newest first, and outlives the video
    page = catalogue.list_moderation(limit=2)
    assert [(r.action, r.reason) for r in page.items] == [
        (ModerationAction.DELETE, "illegal"),
        (ModerationAction.REPUBLISH, "appeal"),
    ]
    assert all(
        (r.moderator_id, r.moderator_email, r.video_id, r.owner_id)
        == ("mod-1", "mo@example.com", video.video_id, "owner-1")
        for r in page.items
    )
    assert page.next_cursor is not None
    rest = catalogue.list_moderation(limit=2, cursor=page.next_cursor)
    assert [r.audit_id for r in rest.items] == [first.audit_id] and rest.next_cursor is None


@pytest.mark.parametrize("cursor", ["", "a", "b12", "a-1", "a1.0", "a²", "a" + "9" * 19, "eyJ0IjoxfQ"])
def test_an_audit_cursor_the_api_did_not_issue_is_invalid_input(catalogue, cursor: str) -> None:  # noqa: F811
    with pytest.raises(InvalidInput, match="cursor"):
        catalogue.list_moderation(limit=5, cursor=cursor)


def test_an_overlong_reason_is_refused_before_anything_changes(catalogue) -> None:  # noqa: F811
    video = ready(catalogue)
    with pytest.raises(InvalidInput, match="reason"):
        catalogue.moderate(record(video.video_id, reason="x" * 1001), unpublished=True)
    assert catalogue.get(video.video_id).unpublished is False
    assert catalogue.list_moderation(limit=5).items == []


@pytest.mark.mysql
def test_migration_0009_can_run_again_after_a_run_that_died_half_way(migrated_url: str) -> None:  # noqa: F811
    from reelay.catalogue.migrations import load_migrations
    from tests.integration.test_catalogue_contract import _root

    (migration,) = [m for m in load_migrations() if m.version == "0009"]
    conn = _root(migrated_url)
    with conn.cursor() as cur:
        for statement in migration.statements:  # already applied: every statement is a no-op now
            cur.execute(statement)
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
            " AND TABLE_NAME = 'videos' AND COLUMN_NAME IN ('visibility', 'unpublished')"
        )
        assert cur.fetchone() == (2,)
    conn.close()


def test_a_visibility_change_or_moderation_records_its_media_move_in_the_same_transaction(
    catalogue,  # noqa: F811
) -> None:
    from reelay.events import MEDIA_RELOCATE, media_relocation, media_subject

    video = ready(catalogue)
    # When the owner makes it private, with the move of its media
    changed = catalogue.set_visibility(
        video.video_id, VideoVisibility.PRIVATE, event=media_relocation(video.video_id)
    )
    assert changed.visibility == VideoVisibility.PRIVATE
    # And a moderator unpublishes it, with another
    catalogue.moderate(record(video.video_id), unpublished=True, event=media_relocation(video.video_id))
    # Then both moves wait in the outbox, about the video's media subject only (they outlive its row)
    claimed = catalogue.claim_events(limit=10, lease_seconds=60, subject=media_subject(video.video_id))
    assert [(e.event_type, e.video_id, e.detail["videoId"]) for e in claimed] == [
        (MEDIA_RELOCATE, None, video.video_id)
    ] * 2
    catalogue.delete(video.video_id)
    assert catalogue.pending_events()[0] == 2
    # And a change refused (no such video) records nothing; an event without a subject is refused
    with pytest.raises(NotFound):
        catalogue.set_visibility("nope", VideoVisibility.PRIVATE, event=media_relocation("nope"))
    with pytest.raises(NotFound):
        catalogue.moderate(record("nope"), unpublished=True, event=media_relocation("nope"))
    other = ready(catalogue)
    from reelay.events import video_failed

    with pytest.raises(InvalidInput, match="needs a subject"):
        catalogue.set_visibility(
            other.video_id, VideoVisibility.PRIVATE, event=video_failed(other.video_id, "x")
        )
    assert catalogue.get(other.video_id).visibility == VideoVisibility.PUBLIC
    assert catalogue.pending_events()[0] == 2


def test_a_completed_transcode_records_its_media_move_with_the_transition(catalogue) -> None:  # noqa: F811
    from reelay.events import MEDIA_RELOCATE, media_relocation, media_subject

    video = queued(catalogue)
    assert catalogue.claim(video.video_id, "w1", 60) is not None
    # A worker that lost its lease records nothing
    assert not catalogue.complete(
        video.video_id, "w2", duration_seconds=1.0, renditions=[], relocation=media_relocation(video.video_id)
    )
    assert catalogue.pending_events()[0] == 0
    # The one that holds it records the move with the video's change to ready, about its media subject
    assert catalogue.complete(
        video.video_id, "w1", duration_seconds=1.0, renditions=[], relocation=media_relocation(video.video_id)
    )
    claimed = catalogue.claim_events(limit=10, lease_seconds=60, subject=media_subject(video.video_id))
    assert [(e.event_type, e.video_id, e.detail["videoId"]) for e in claimed] == [
        (MEDIA_RELOCATE, None, video.video_id)
    ]
