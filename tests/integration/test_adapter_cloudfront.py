"""CloudFrontInvalidator against moto: invalidations are created, and failures never raise."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from reelay.adapters.cloudfront import CloudFrontInvalidator, NoCdnInvalidator
from reelay.errors import InvalidInput


@pytest.fixture
def cloudfront() -> Iterator[object]:
    with mock_aws():
        yield boto3.client("cloudfront", region_name="us-east-1")


def distribution(cloudfront) -> str:
    config = {
        "CallerReference": "reelay-test",
        "Comment": "test",
        "Enabled": True,
        "Origins": {
            "Quantity": 1,
            "Items": [
                {
                    "Id": "media",
                    "DomainName": "media.s3.amazonaws.com",
                    "S3OriginConfig": {"OriginAccessIdentity": ""},
                }
            ],
        },
        "DefaultCacheBehavior": {
            "TargetOriginId": "media",
            "ViewerProtocolPolicy": "https-only",
            "MinTTL": 0,
            "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
            "TrustedSigners": {"Enabled": False, "Quantity": 0},
        },
    }
    return cloudfront.create_distribution(DistributionConfig=config)["Distribution"]["Id"]


def test_a_deleted_videos_outputs_are_invalidated(cloudfront) -> None:
    # Given the playback distribution
    dist = distribution(cloudfront)
    cdn = CloudFrontInvalidator(dist, client=cloudfront)
    # When two videos' outputs are invalidated, one path without its leading slash
    cdn.invalidate(["/outputs/v1/*"])
    cdn.invalidate(["outputs/v2/*"])
    # Then CloudFront has one invalidation per call, each with its own caller reference
    listed = cloudfront.list_invalidations(DistributionId=dist)["InvalidationList"]["Items"]
    assert len(listed) == 2
    batches = [
        cloudfront.get_invalidation(DistributionId=dist, Id=i["Id"])["Invalidation"]["InvalidationBatch"]
        for i in listed
    ]
    assert sorted(p for b in batches for p in b["Paths"]["Items"]) == ["/outputs/v1/*", "/outputs/v2/*"]
    assert len({b["CallerReference"] for b in batches}) == 2


def test_an_unknown_distribution_is_logged_not_raised(cloudfront) -> None:
    # Given an id no distribution has
    cdn = CloudFrontInvalidator("E0000NOSUCHDIST", client=cloudfront)
    # When it is asked to invalidate, Then it returns: deleting a video must not fail on the cache
    cdn.invalidate(["/outputs/v1/*"])


def test_an_unreachable_endpoint_is_logged_not_raised() -> None:
    # Given a client for an endpoint where nothing listens
    client = boto3.client(
        "cloudfront",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    # When it is asked to invalidate, Then it returns
    CloudFrontInvalidator("E123", client=client).invalidate(["/outputs/v1/*"])


def test_nothing_to_invalidate_makes_no_call(cloudfront) -> None:
    dist = distribution(cloudfront)
    CloudFrontInvalidator(dist, client=cloudfront).invalidate([])
    assert cloudfront.list_invalidations(DistributionId=dist)["InvalidationList"].get("Quantity", 0) == 0
    NoCdnInvalidator().invalidate(["/outputs/v1/*"])


@pytest.mark.parametrize("bad", ["", "   "])
def test_a_distribution_id_is_required(bad: str) -> None:
    with pytest.raises(InvalidInput):
        CloudFrontInvalidator(bad, client=object())
