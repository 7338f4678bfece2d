"""Visibility, private playback and moderation through the resolver (fakes behind the real handler).

Who sees what: a video is seen by anyone once it is ready and public or unlisted; a private,
unpublished or unfinished one answers 404 to everyone but its owner (and moderators), as an id that
does not exist would. Only public ready videos are listed.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from reelay.errors import Forbidden
from reelay.models import Video, VideoStatus, VideoVisibility
from reelay.playback import check_signed_access
from reelay.wiring import Services
from tests.fakes import api_event
from tests.unit.test_api import ALICE, BOB, assert_error, call, make_ready, services, settings  # noqa: F401
from tests.unit.test_authorization_matrix import MO, OLGA

pytestmark = [pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")]

CALLERS = {"anonymous": None, "owner": ALICE, "other": BOB, "operator": OLGA, "moderator": MO}


def kinds(svc: Services) -> dict[str, Video]:
    """Alice's videos, one of each kind."""
    public = make_ready(svc, name="public")
    unlisted = make_ready(svc, name="unlisted")
    svc.catalogue.set_visibility(unlisted.video_id, VideoVisibility.UNLISTED)
    private = make_ready(svc, name="private")
    svc.catalogue.set_visibility(private.video_id, VideoVisibility.PRIVATE)
    pulled = make_ready(svc, name="pulled")
    status, _, _ = call(
        api_event(
            "POST", f"/moderation/videos/{pulled.video_id}/unpublish", body={"reason": "spam"}, claims=MO
        )
    )
    assert status == 200
    pending, _ = svc.videos.create_upload(ALICE["sub"], ALICE["email"], "pending", "", "video/mp4", 100)
    return {"public": public, "unlisted": unlisted, "private": private, "pulled": pulled, "pending": pending}


# GET /videos/{id} (no authorizer: every caller is anonymous there) and GET /me/videos/{id}, by kind.
PUBLIC_VIEW = {"public": 200, "unlisted": 200, "private": 404, "pulled": 404, "pending": 404}
VISIBILITY = {
    "public": ("public", False),
    "unlisted": ("unlisted", False),
    "private": ("private", False),
    "pulled": ("public", True),
    "pending": ("public", False),
}
OWNER_VIEW = {  # caller -> status for every kind
    "anonymous": 401,
    "owner": 200,
    "other": 404,
    "operator": 404,
    "moderator": 200,
}


@pytest.mark.parametrize("who", CALLERS)
def test_who_sees_which_video(services: Services, who: str) -> None:  # noqa: F811
    videos = kinds(services)
    for kind, video in videos.items():
        status, body, _ = call(api_event("GET", f"/videos/{video.video_id}", claims=CALLERS[who]))
        assert status == PUBLIC_VIEW[kind], (kind, body)
        if status == 404:  # the same answer as for an id that never existed: nothing is given away
            assert body == {"error": "not_found", "message": f"video {video.video_id} not found"}
        status, body, _ = call(api_event("GET", f"/me/videos/{video.video_id}", claims=CALLERS[who]))
        assert status == OWNER_VIEW[who], (kind, body)
        if status == 200:
            assert (body["visibility"], body["unpublished"]) == VISIBILITY[kind], kind
    # And the public list has the public one only; the owner's own list has all five
    status, body, _ = call(api_event("GET", "/videos", claims=CALLERS[who]))
    assert status == 200 and [v["videoId"] for v in body["items"]] == [videos["public"].video_id]
    if who == "owner":
        _, body, _ = call(api_event("GET", "/me/videos", claims=ALICE))
        assert {v["videoId"] for v in body["items"]} == {v.video_id for v in videos.values()}


def test_a_private_video_plays_for_its_owner_with_a_signature_for_its_whole_prefix(
    services: Services,  # noqa: F811
) -> None:
    videos = kinds(services)
    private, public = videos["private"], videos["public"]
    # When its owner reads it
    _, body, _ = call(api_event("GET", f"/me/videos/{private.video_id}", claims=ALICE))
    # Then the master and poster URLs carry a signed query
    url = urlsplit(body["playbackUrl"])
    # on the signed path, which serves the private output prefix the public path cannot reach
    assert (
        f"{url.scheme}://{url.netloc}{url.path}"
        == f"https://cdn.example/private-outputs/{private.video_id}/master.m3u8"
    )
    query = dict(parse_qsl(url.query))
    assert set(query) == {"exp", "sig"}
    assert urlsplit(body["thumbnailUrl"]).query == url.query
    # that opens every playlist and segment of this video, and nothing of another
    key = services.settings.file_store_signing_key
    prefix = f"private-outputs/{private.video_id}/"
    for name in ("master.m3u8", "360p/index.m3u8", "360p/seg_00042.ts", "poster.jpg"):
        assert check_signed_access(key, prefix, prefix + name, query) is None
    for other in (f"private-outputs/{public.video_id}/", f"outputs/{private.video_id}/"):
        assert check_signed_access(key, other, f"{other}master.m3u8", query)
    # And a public video's URLs are plain: cacheable and unsigned, for its owner as for anyone
    _, body, _ = call(api_event("GET", f"/me/videos/{public.video_id}", claims=ALICE))
    assert body["playbackUrl"] == f"https://cdn.example/outputs/{public.video_id}/master.m3u8"


def test_without_a_signing_key_a_private_video_is_shown_without_playback_not_a_5xx(
    services: Services,  # noqa: F811
) -> None:
    services.playback_signer.__init__(  # type: ignore[misc]
        None, base_url="https://cdn.example/outputs", output_prefix="outputs/"
    )
    private = kinds(services)["private"]
    status, body, _ = call(api_event("GET", f"/me/videos/{private.video_id}", claims=ALICE))
    assert status == 200 and body["playbackUrl"] is None and body["thumbnailUrl"] is None
    status, body, _ = call(api_event("GET", "/me/videos", claims=ALICE))
    assert status == 200 and len(body["items"]) == 5


def test_visibility_is_set_at_upload_and_changed_by_the_owner_only(services: Services) -> None:  # noqa: F811
    upload = {"displayName": "mine", "contentType": "video/mp4", "sizeBytes": 100}
    status, body, _ = call(api_event("POST", "/videos/upload", body=upload, claims=ALICE))
    assert status == 201 and body["video"]["visibility"] == "public" and body["video"]["unpublished"] is False
    status, body, _ = call(
        api_event("POST", "/videos/upload", body={**upload, "visibility": "private"}, claims=ALICE)
    )
    assert status == 201 and body["video"]["visibility"] == "private"
    video = make_ready(services)
    path = f"/videos/{video.video_id}"
    # The owner makes it unlisted and renames it in one call
    status, body, _ = call(
        api_event("PATCH", path, body={"visibility": "unlisted", "displayName": "quiet"}, claims=ALICE)
    )
    assert status == 200 and (body["visibility"], body["displayName"]) == ("unlisted", "quiet")
    # Another user, a moderator (who unpublishes instead) and an anonymous caller may not
    for who, expected in ((BOB, 403), (MO, 403), (None, 401)):
        status, body, _ = call(api_event("PATCH", path, body={"visibility": "public"}, claims=who))
        assert status == expected, body
    assert services.catalogue.get(video.video_id).visibility == VideoVisibility.UNLISTED
    # Bad values and an empty change are 400s
    status, body, _ = call(api_event("PATCH", path, body={"visibility": "secret"}, claims=ALICE))
    assert_error(status, body, 400, "invalid_input", "visibility")
    status, body, _ = call(api_event("PATCH", path, body={}, claims=ALICE))
    assert_error(status, body, 400, "invalid_input", "visibility")


def test_an_unpublished_video_stays_hidden_whatever_its_owner_does_until_a_moderator_lifts_it(
    services: Services,  # noqa: F811
) -> None:
    video = make_ready(services)
    status, body, _ = call(
        api_event(
            "POST", f"/moderation/videos/{video.video_id}/unpublish", body={"reason": "spam"}, claims=MO
        )
    )
    assert status == 200 and body["unpublished"] is True
    # The owner setting it public again does not bring it back
    call(api_event("PATCH", f"/videos/{video.video_id}", body={"visibility": "public"}, claims=ALICE))
    assert call(api_event("GET", f"/videos/{video.video_id}"))[0] == 404
    # The owner still plays it, signed
    _, body, _ = call(api_event("GET", f"/me/videos/{video.video_id}", claims=ALICE))
    assert "sig=" in body["playbackUrl"]
    # A moderator lifts it
    status, body, _ = call(
        api_event(
            "POST", f"/moderation/videos/{video.video_id}/republish", body={"reason": "appeal"}, claims=MO
        )
    )
    assert status == 200 and body["unpublished"] is False
    assert call(api_event("GET", f"/videos/{video.video_id}"))[0] == 200


def test_a_moderator_deletes_any_video_and_every_action_is_in_the_audit_log(services: Services) -> None:  # noqa: F811
    video = make_ready(services)
    services.store.put_bytes(f"outputs/{video.video_id}/master.m3u8", b"#EXTM3U")  # type: ignore[attr-defined]
    call(
        api_event(
            "POST", f"/moderation/videos/{video.video_id}/unpublish", body={"reason": "spam"}, claims=MO
        )
    )
    # A reason is required, and must say something
    for body in ({}, {"reason": "   "}, {"reason": "x" * 1001}):
        status, out, _ = call(
            api_event("POST", f"/moderation/videos/{video.video_id}/delete", body=body, claims=MO)
        )
        assert_error(status, out, 400, "invalid_input", "reason")
    status, _, _ = call(
        api_event(
            "POST", f"/moderation/videos/{video.video_id}/delete", body={"reason": "illegal"}, claims=MO
        )
    )
    assert status == 204
    # Then the video and its media are gone
    assert call(api_event("GET", f"/me/videos/{video.video_id}", claims=ALICE))[0] == 404
    assert [k for k in services.store.objects if video.video_id in k] == []  # type: ignore[attr-defined]
    # and a missing video is a 404 that records nothing
    status, _, _ = call(api_event("POST", "/moderation/videos/nope/delete", body={"reason": "x"}, claims=MO))
    assert status == 404
    # And the log says who did what to which video, whose it was, why and when, newest first
    status, body, _ = call(api_event("GET", "/moderation/audit", claims=MO))
    assert status == 200
    rows = [
        (r["action"], r["videoId"], r["ownerId"], r["moderatorId"], r["moderatorEmail"], r["reason"])
        for r in body["items"]
    ]
    assert rows == [
        ("delete", video.video_id, ALICE["sub"], MO["sub"], MO["email"], "illegal"),
        ("unpublish", video.video_id, ALICE["sub"], MO["sub"], MO["email"], "spam"),
    ]
    assert all(r["createdAt"].endswith("Z") for r in body["items"])
    status, body, _ = call(api_event("GET", "/moderation/audit", claims=MO, query={"cursor": "nonsense"}))
    assert_error(status, body, 400, "invalid_input", "cursor")


def test_a_processing_video_is_404_to_others_and_shows_its_owner_its_progress(services: Services) -> None:  # noqa: F811
    video, _ = services.videos.create_upload(ALICE["sub"], ALICE["email"], "wip", "", "video/mp4", 100)
    services.catalogue.mark_uploaded(video.video_id, size_bytes=100, content_type="video/mp4")
    services.catalogue.claim(video.video_id, "w1", 60)
    assert call(api_event("GET", f"/videos/{video.video_id}"))[0] == 404
    _, body, _ = call(api_event("GET", f"/me/videos/{video.video_id}", claims=ALICE))
    assert body["status"] == VideoStatus.PROCESSING


def test_a_private_videos_media_leaves_the_public_prefix_and_its_cached_copies_go() -> None:
    from reelay.catalogue.memory import MemoryCatalogue
    from reelay.settings import Settings
    from reelay.videos import VideoService, Viewer
    from tests.fakes import FakeCdn, FakeStore

    cdn, store = FakeCdn(), FakeStore()
    svc = VideoService(MemoryCatalogue(), store, Settings(), cdn)
    video, _ = svc.create_upload("alice", "a@x.io", "v", "", "video/mp4", 10)
    other, _ = svc.create_upload("alice", "a@x.io", "w", "", "video/mp4", 10)
    media = ("master.m3u8", "360p/index.m3u8", "360p/a1/seg_00000.ts", "poster.jpg")
    for v in (video, other):
        for name in media:
            store.put_bytes(f"outputs/{v.video_id}/{name}", name.encode(), content_type="x/y")

    def where(video_id: str) -> set[str]:
        return {k.split("/", 1)[0] for k in store.objects if f"/{video_id}/" in k}

    # Public -> unlisted keeps the same public path: nothing moves, nothing to drop
    svc.set_visibility("alice", video.video_id, VideoVisibility.UNLISTED)
    assert where(video.video_id) == {"outputs"} and cdn.invalidated == []
    # Unlisted -> private: every object moves to the private prefix (bytes and headers kept), and the
    # public path's cached copies go
    svc.set_visibility("alice", video.video_id, VideoVisibility.PRIVATE)
    assert where(video.video_id) == {"private-outputs"}
    assert store.objects[f"private-outputs/{video.video_id}/poster.jpg"] == (b"poster.jpg", "x/y", {})
    assert cdn.invalidated == [[f"/outputs/{video.video_id}/*"]]
    # Private -> private again: nothing more; back to public: the media comes back, nothing to drop
    svc.set_visibility("alice", video.video_id, VideoVisibility.PRIVATE)
    assert len(cdn.invalidated) == 1
    svc.set_visibility("alice", video.video_id, VideoVisibility.PUBLIC)
    assert where(video.video_id) == {"outputs"} and len(cdn.invalidated) == 1
    assert svc.catalogue.pending_events() == (0, 0.0)  # every move (and invalidation) was done
    # A moderator's unpublish moves it off the public prefix too, and republishing brings it back
    svc.unpublish(Viewer("mo", "mo@x.io", moderator=True), other.video_id, "spam")
    assert where(other.video_id) == {"private-outputs"}
    assert cdn.invalidated[-1] == [f"/outputs/{other.video_id}/*"]
    svc.unpublish(Viewer("mo", "mo@x.io", moderator=True), other.video_id, "ok", unpublished=False)
    assert where(other.video_id) == {"outputs"}
    # Deleting a private video deletes its media under the private prefix, and drops both paths
    svc.set_visibility("alice", other.video_id, VideoVisibility.PRIVATE)
    svc.delete("alice", other.video_id)
    assert where(other.video_id) == set()
    assert cdn.invalidated[-1] == [f"/outputs/{other.video_id}/*", f"/private-outputs/{other.video_id}/*"]
    # and a plain user cannot moderate, even by calling the service directly
    with pytest.raises(Forbidden, match="only moderators"):
        svc.unpublish(Viewer("bob"), video.video_id, "mine now")
