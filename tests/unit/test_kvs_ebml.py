"""The stand-in's EBML reader splits a PutMedia body into its header and Clusters, however it is cut."""

from __future__ import annotations

import pytest

from local.kvs.ebml import (
    CLUSTER,
    EBML,
    SEGMENT,
    SEGMENT_UNKNOWN_SIZE,
    TAGS,
    TIMECODE,
    ClusterEnded,
    ClusterStarted,
    EndOfFragment,
    Header,
    InvalidMkv,
    MkvSplitter,
    read_id,
    read_size,
)

INFO, TRACKS, SIMPLE_BLOCK = 0x1549A966, 0x1654AE6B, 0xA3
UNKNOWN = bytes.fromhex("01FFFFFFFFFFFFFF")


def element(element_id: int, payload: bytes) -> bytes:
    id_bytes = element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")
    size = len(payload)
    assert size < 2**14 - 1
    size_bytes = bytes([0x80 | size]) if size < 127 else (0x4000 | size).to_bytes(2, "big")
    return id_bytes + size_bytes + payload


def cluster(timecode: int, frames: int = 2, *, sized: bool = False) -> bytes:
    body = element(TIMECODE, timecode.to_bytes(6, "big"))
    body += b"".join(element(SIMPLE_BLOCK, bytes([0x81, 0, i, 0x80]) + b"x" * 200) for i in range(frames))
    if sized:
        return element(CLUSTER, body)
    return CLUSTER.to_bytes(4, "big") + UNKNOWN + body


EBML_HEADER = element(EBML, element(0x4282, b"matroska"))
INFO_EL = element(INFO, element(0x2AD7B1, (1_000_000).to_bytes(3, "big")))
TRACKS_EL = element(TRACKS, element(0xAE, element(0xD7, b"\x01")))
HEADER = EBML_HEADER + SEGMENT.to_bytes(4, "big") + UNKNOWN + INFO_EL + TRACKS_EL
TAG_NAME = element(0x45A3, b"AWS_KINESISVIDEO_END_OF_FRAGMENT")
END_TAG = element(TAGS, element(0x7373, element(0x67C8, TAG_NAME)))


def feed_in_pieces(data: bytes, size: int) -> list[object]:
    splitter = MkvSplitter()
    events: list[object] = []
    for i in range(0, len(data), size):
        events += splitter.feed(data[i : i + size])
    return events + splitter.close()


def test_variable_size_integers_read_ids_and_sizes():
    # Given an id with its marker bits, and sizes of one, two and eight bytes (all ones: unknown)
    assert read_id(bytes.fromhex("1A45DFA3"), 0) == (EBML, 4)
    assert read_size(bytes([0x85]), 0) == (5, 1)
    assert read_size(bytes.fromhex("4123"), 0) == (0x123, 2)
    assert read_size(UNKNOWN, 0) == (-1, 8)
    # And too few bytes means "wait for more", not an error
    assert read_id(bytes.fromhex("1A45"), 0) is None
    assert read_size(bytes.fromhex("01FF"), 0) is None


@pytest.mark.parametrize("piece", [1, 7, 4096])
def test_a_body_splits_into_header_clusters_and_the_end_of_fragment_tag(piece: int):
    # Given a body as kvssink sends it: header, two unknown-size Clusters, the EOS tag
    body = HEADER + cluster(1000) + cluster(2000) + END_TAG

    # When it arrives cut into pieces of any size
    events = feed_in_pieces(body, piece)

    # Then the header comes first (with the Segment re-sized to unknown), each Cluster starts and ends
    # with its Timecode, and the last one ends at the tag, before EndOfFragment
    assert events[0] == Header(EBML_HEADER + SEGMENT_UNKNOWN_SIZE + INFO_EL + TRACKS_EL)
    assert events[1:] == [
        ClusterStarted(1000),
        ClusterEnded(1000, cluster(1000)),
        ClusterStarted(2000),
        ClusterEnded(2000, cluster(2000)),
        EndOfFragment(),
    ]


def test_the_last_unknown_size_cluster_ends_with_the_body():
    # Given a body that stops after a Cluster, with no tag
    events = feed_in_pieces(HEADER + cluster(5000), 100)

    # Then closing the splitter completes that Cluster
    assert events[-1] == ClusterEnded(5000, cluster(5000))


def test_sized_clusters_end_by_their_size():
    # Given sized Clusters (not kvssink's way, but valid MKV)
    splitter = MkvSplitter()
    events = splitter.feed(HEADER + cluster(10, sized=True))

    # Then the Cluster ends as soon as its bytes are in, before anything follows it
    assert events[-1] == ClusterEnded(10, cluster(10, sized=True))


def test_a_new_ebml_header_mid_body_ends_the_cluster_and_starts_a_new_header():
    # Given a body that starts over (kvssink does after a codec change)
    events = feed_in_pieces(HEADER + cluster(1) + HEADER + cluster(2), 50)

    # Then the first Cluster ends, and a second Header precedes the next Cluster
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Header", "ClusterStarted", "ClusterEnded", "Header", "ClusterStarted", "ClusterEnded"]


@pytest.mark.parametrize(
    "body",
    [
        cluster(1000) + cluster(2000),  # a reconnect that starts mid-stream, with no header
        b"\x00\x00\x00\x00garbage",  # not EBML at all
        b"GET / HTTP/1.1\r\n",
    ],
)
def test_a_body_that_does_not_start_with_an_ebml_header_is_invalid(body: bytes):
    # When such a body is fed, Then it is refused (the stand-in answers ErrorId 4006)
    with pytest.raises(InvalidMkv):
        MkvSplitter().feed(body)


def test_an_absurd_element_size_is_invalid():
    # Given a header followed by a "Cluster child" claiming 256 GB
    claim = bytes.fromhex("0840000000")
    body = HEADER + CLUSTER.to_bytes(4, "big") + UNKNOWN + SIMPLE_BLOCK.to_bytes(1, "big") + claim
    with pytest.raises(InvalidMkv):
        MkvSplitter().feed(body)
