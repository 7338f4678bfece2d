"""Moving a video's media between the public and private prefixes on S3 (moto): the driver's
server-side copy keeps an object's headers, and the relocator empties the public prefix, paginated."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest
from botocore.stub import Stubber

from reelay.catalogue.memory import MemoryCatalogue
from reelay.errors import NotFound
from reelay.media_location import MediaRelocator
from reelay.models import Video, VideoVisibility
from reelay.settings import Settings
from reelay.storage.s3 import S3Store
from reelay.storage.url import parse_store_url
from tests.unit.recording_helpers import finalized_recording, playlist_targets


@pytest.fixture
def store(moto_url: str) -> S3Store:
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1").create_bucket(Bucket=bucket)
    return S3Store(parse_store_url(f"s3+{moto_url.replace('://', '://AKIATEST:secret@')}/{bucket}/media"))


def test_copy_keeps_type_metadata_and_cache_control(store: S3Store) -> None:
    store.put_bytes(
        "outputs/v/seg.ts", b"abc", content_type="video/mp2t", metadata={"k": "v"}, cache_control="max-age=9"
    )
    store.copy("outputs/v/seg.ts", "private-outputs/v/seg.ts")
    assert store.get_bytes("private-outputs/v/seg.ts") == b"abc"
    info = store.head("private-outputs/v/seg.ts")
    assert info is not None and (info.content_type, info.metadata) == ("video/mp2t", {"k": "v"})
    raw = store.client.head_object(Bucket=store.bucket, Key="media/private-outputs/v/seg.ts")
    assert raw["CacheControl"] == "max-age=9"
    with pytest.raises(NotFound):
        store.copy("outputs/v/missing.ts", "private-outputs/v/missing.ts")


@pytest.fixture
def stubbed() -> Iterator[tuple[S3Store, Stubber]]:
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    with Stubber(client) as stub:
        yield S3Store(parse_store_url("s3://us-east-1/bkt/pre"), client=client), stub
        stub.assert_no_pending_responses()


def test_an_object_over_copy_objects_limit_is_copied_in_parts(stubbed: tuple[S3Store, Stubber]) -> None:
    # CopyObject refuses sources over 5 GiB (InvalidRequest): the managed copy takes over, which HEADs
    # the source first (and, for a small one as here, copies it in one request)
    store, stub = stubbed
    stub.add_client_error("copy_object", "InvalidRequest", "copy source is larger than the maximum", 400)
    stub.add_response("head_object", {"ContentLength": 3, "ETag": '"x"'}, {"Bucket": "bkt", "Key": "pre/a"})
    stub.add_response("copy_object", {"CopyObjectResult": {"ETag": '"x"'}})
    store.copy("a", "b")


def test_a_private_videos_media_leaves_the_public_prefix_on_s3(store: S3Store) -> None:
    # Given a ready video with more objects than one listing page (1000 keys)
    catalogue = MemoryCatalogue()
    catalogue.create(
        Video(video_id="v1", video_key="uploads/v1", display_name="v", owner_id="o", email="o@x")
    )
    catalogue.mark_uploaded("v1", size_bytes=1, content_type="video/mp4")
    catalogue.claim("v1", "w", 60)
    catalogue.complete("v1", "w", duration_seconds=1.0, renditions=[])
    keys = ["master.m3u8", *(f"360p/a1/seg_{i:05d}.ts" for i in range(1005))]
    for key in keys:
        store.put_bytes(f"outputs/v1/{key}", key.encode(), content_type="video/mp2t")
    store.put_bytes("outputs/v10/master.m3u8", b"another video")
    relocator = MediaRelocator(catalogue, store, Settings())
    # When it turns private and the move runs
    catalogue.set_visibility("v1", VideoVisibility.PRIVATE)
    assert relocator.reconcile("v1") == len(keys)
    # Then every object is under the private prefix, bytes and type kept, and none is left public
    assert sorted(i.key for i in store.list("private-outputs/v1/")) == sorted(
        f"private-outputs/v1/{k}" for k in keys
    )
    assert list(store.list("outputs/v1/")) == []
    assert store.get_bytes("private-outputs/v1/360p/a1/seg_01004.ts") == b"360p/a1/seg_01004.ts"
    assert store.head("private-outputs/v1/master.m3u8").content_type == "video/mp2t"  # type: ignore[union-attr]
    assert store.get_bytes("outputs/v10/master.m3u8") == b"another video"
    # And run again (a retried event), nothing moves
    assert relocator.reconcile("v1") == 0


def test_a_private_recordings_segments_leave_the_public_paths_on_s3_and_come_back(store: S3Store) -> None:
    # Given a recording finalized by the real workflow into S3: playlists under outputs/, segments
    # under recordings/ where the recorder wrote them, an export under outputs/exports/
    catalogue, sid, vid = finalized_recording(store)
    before = {info.key: store.get_bytes(info.key) for info in store.list("")}
    segments = [k for k in before if k.startswith(f"recordings/cam1/{sid}/")]
    assert len(segments) == 12
    relocator = MediaRelocator(catalogue, store, Settings())
    # When it turns private and the move runs
    catalogue.set_visibility(vid, VideoVisibility.PRIVATE)
    assert relocator.reconcile(vid) == len(segments) + 4
    # Then every object the public paths serve is gone from them; the playlists name the moved segments
    assert [i.key for i in store.list("recordings/")] == []
    assert [i.key for i in store.list("outputs/")] == []
    private = f"private-outputs/{vid}/"
    for rendition in ("360p", "source"):
        named = playlist_targets(store, f"{private}{rendition}/index.m3u8")
        assert named and all(k.startswith(f"{private}recordings/cam1/{sid}/") for k in named)
        assert all(store.get_bytes(k) == before[k[len(private) :]] for k in named)
    segment = store.head(private + segments[0])
    assert segment is not None and segment.content_type == "video/mp2t"
    playlist = store.head(f"{private}source/index.m3u8")
    assert playlist is not None and playlist.content_type == "application/vnd.apple.mpegurl"
    # When it turns public again, every object is back, byte for byte, and none is left private
    catalogue.set_visibility(vid, VideoVisibility.PUBLIC)
    assert relocator.reconcile(vid) == len(segments) + 4
    assert {info.key: store.get_bytes(info.key) for info in store.list("")} == before
