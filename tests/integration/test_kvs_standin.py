"""The KVS stand-in over HTTP, without kvssink: boto3's kinesisvideo client, botocore's container
credentials provider, a PutMedia upload of an ffmpeg-made MKV, the 4006 answer, and the fault switches."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError

from local.kvs import KvsStandIn
from reelay.relay.credentials import botocore_provider
from tests.kvs_fixtures import kvs  # noqa: F401  (fixture)
from tests.media_fixtures import FFMPEG, ffprobe_json

pytestmark = pytest.mark.media


def kvs_client(standin: KvsStandIn, key=None):
    key = key or standin.issuer.current()
    return boto3.client(
        "kinesisvideo",
        endpoint_url=standin.url,
        region_name="us-east-1",
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret_access_key,
        aws_session_token=key.session_token,
    )


def put_media(standin: KvsStandIn, stream: str, body: bytes, *, piece: int = 4096) -> list[dict]:
    """Upload ``body`` chunked, as kvssink does, and return the acks read back."""
    key = standin.issuer.current()
    conn = http.client.HTTPConnection(standin.host, standin.port, timeout=30)
    conn.putrequest("POST", "/putMedia")
    for name, value in {
        "Authorization": f"AWS4-HMAC-SHA256 Credential={key.access_key_id}/20261201/us-east-1/kinesisvideo/"
        "aws4_request, SignedHeaders=host, Signature=00",
        "X-Amz-Security-Token": key.session_token,
        "x-amzn-stream-name": stream,
        "x-amzn-fragment-timecode-type": "ABSOLUTE",
        "x-amzn-producer-start-timestamp": f"{time.time():.3f}",
        "Transfer-Encoding": "chunked",
    }.items():
        conn.putheader(name, value)
    conn.endheaders()
    try:
        for i in range(0, len(body), piece):
            data = body[i : i + piece]
            conn.send(b"%x\r\n%s\r\n" % (len(data), data))
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the stand-in may end the upload early (ERROR ack); its answer is still readable
    response = conn.getresponse()
    assert response.status == 200
    acks = [json.loads(line) for line in response.read().decode().splitlines() if line.strip()]
    conn.close()
    return acks


def test_the_control_plane_speaks_kvs_to_boto3(kvs: KvsStandIn):  # noqa: F811
    client = kvs_client(kvs)
    # An unknown stream is a ResourceNotFoundException (kvssink then creates it)
    with pytest.raises(ClientError) as missing:
        client.describe_stream(StreamName="cam")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"

    arn = client.create_stream(StreamName="cam", MediaType="video/h264", DataRetentionInHours=2)["StreamARN"]
    info = client.describe_stream(StreamName="cam")["StreamInfo"]
    assert (info["StreamARN"], info["Status"], info["DataRetentionInHours"]) == (arn, "ACTIVE", 2)
    endpoint = client.get_data_endpoint(StreamName="cam", APIName="PUT_MEDIA")["DataEndpoint"]
    assert endpoint == kvs.url
    client.tag_stream(StreamARN=arn, Tags={"reelay:stream": "s-1"})
    assert [s["StreamName"] for s in client.list_streams()["StreamInfoList"]] == ["cam"]

    # A key the stand-in never issued, or one it expired, gets 403
    forged = type(kvs.issuer.current())("ASIAFORGED", "x", "y", 0, time.time() + 60)
    with pytest.raises(ClientError) as unknown:
        kvs_client(kvs, forged).describe_stream(StreamName="cam")
    assert unknown.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    key = kvs.issuer.current()
    kvs.expire_credentials(key.access_key_id)
    with pytest.raises(ClientError) as expired:
        kvs_client(kvs, key).describe_stream(StreamName="cam")
    assert expired.value.response["Error"]["Code"] == "ExpiredTokenException"


def test_botocore_reads_the_stand_in_as_ecs_container_credentials(
    kvs: KvsStandIn,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
):
    # Given only the container endpoint (as ECS sets AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", kvs.credentials_url)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")

    # When the relay's provider asks botocore's standard chain
    got = botocore_provider(botocore.session.Session())()

    # Then it gets the stand-in's current key, with its real expiry
    current = kvs.issuer.current()
    assert got.access_key_id == current.access_key_id
    assert abs(got.expires_at.timestamp() - current.expires_at) < 1


def test_put_media_acks_each_cluster_and_stores_a_playable_feed(kvs: KvsStandIn, tmp_path: Path):  # noqa: F811
    # Given a stream and a 3 s H.264 MKV with a Cluster a second (ffmpeg sizes its Clusters)
    kvs_client(kvs).create_stream(StreamName="cam")
    fragmented = tmp_path / "clip.mkv"
    subprocess.run(
        [
            FFMPEG,
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=15:duration=3",
            "-c:v",
            "libx264",
            "-g",
            "15",
            "-pix_fmt",
            "yuv420p",
            "-cluster_time_limit",
            "1000",
            str(fragmented),
        ],
        check=True,
        timeout=60,
    )

    # When it is uploaded in small chunks
    acks = put_media(kvs, "cam", fragmented.read_bytes(), piece=1000)

    # Then each Cluster got BUFFERING, RECEIVED, PERSISTED with its timecode, and was stored
    kinds = [a["EventType"] for a in acks]
    stored = kvs.persisted("cam")
    assert len(stored) >= 3
    assert kinds == ["BUFFERING", "RECEIVED", "PERSISTED"] * len(stored)
    assert [a["FragmentTimecode"] for a in acks if a["EventType"] == "PERSISTED"] == [
        f.timecode for f in stored
    ]
    assert [a["FragmentNumber"] for a in acks if a["EventType"] == "PERSISTED"] == [
        f.fragmentNumber for f in stored
    ]
    # And live.mkv is a playable MKV of the last two fragments
    live = tmp_path / "live.mkv"
    with urllib.request.urlopen(f"{kvs.url}/_reelay/streams/cam/live.mkv?last=2", timeout=10) as r:
        live.write_bytes(r.read())
    video = ffprobe_json(live)["streams"][0]
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 320, 240)


def test_a_body_without_an_ebml_header_gets_error_4006(kvs: KvsStandIn):  # noqa: F811
    kvs_client(kvs).create_stream(StreamName="cam")
    # A reconnect that starts mid-fragment: a SimpleBlock, no EBML header
    acks = put_media(kvs, "cam", bytes.fromhex("a3") + b"\x84\x81\x00\x00\x80" * 200)
    assert acks == [{"EventType": "ERROR", "FragmentNumber": "0", "ErrorId": 4006}]
    assert kvs.persisted("cam") == []


def test_refusing_connections_over_http_then_listening_again(kvs: KvsStandIn):  # noqa: F811
    port = kvs.port
    # When a test in another process asks the stand-in to refuse connections for a second
    request = urllib.request.Request(
        f"{kvs.url}/_reelay/faults", data=json.dumps({"refuseSeconds": 1}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read()) == {"refusingFor": 1.0}

    # Then connections are refused, and then accepted again on the same port
    deadline = time.monotonic() + 5
    refused = False
    while time.monotonic() < deadline and not refused:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            time.sleep(0.05)
        except ConnectionRefusedError:
            refused = True
        except ConnectionResetError:
            pass  # caught in the listener's backlog as it closed
    assert refused
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except (ConnectionRefusedError, ConnectionResetError):
            time.sleep(0.1)
    assert kvs.port == port and kvs.running
    with urllib.request.urlopen(f"{kvs.url}/_reelay/streams", timeout=10) as response:
        assert json.loads(response.read()) == {"streams": []}


def test_credentials_are_expired_and_revoked_over_http(kvs: KvsStandIn):  # noqa: F811
    # Given the key the stand-in hands out now
    with urllib.request.urlopen(kvs.credentials_url, timeout=10) as response:
        key_id = json.loads(response.read())["AccessKeyId"]
    assert kvs.issuer.is_valid(key_id)

    def control(path: str, body: dict) -> dict:
        request = urllib.request.Request(f"{kvs.url}{path}", data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    # When a test in another process expires it, Then it is no longer valid and a new one is served
    assert control("/_reelay/credentials/expire", {"accessKeyId": key_id}) == {"expired": [key_id]}
    assert not kvs.issuer.is_valid(key_id)
    fresh = kvs.issuer.current().access_key_id
    assert fresh != key_id
    # And revoking every key leaves none valid
    assert fresh in control("/_reelay/credentials/revoke", {})["revoked"]
    assert not kvs.issuer.is_valid(fresh)
