"""CloudFrontInvalidator against moto and botocore's Stubber: invalidations are created, and one
CloudFront refuses raises, so the outbox keeps its event and a later sweep completes it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import boto3
import pytest
from botocore.config import Config
from botocore.stub import ANY, Stubber
from moto import mock_aws

from reelay.adapters.cloudfront import CdnInvalidationFailed, CloudFrontInvalidator, NoCdnInvalidator
from reelay.catalogue.memory import MemoryCatalogue
from reelay.errors import InvalidInput
from reelay.events import DEFAULT_LEASE_SECONDS, FlushResult, OutboxSweep, cdn_invalidation, cdn_subject


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


def test_an_unknown_distribution_raises(cloudfront) -> None:
    # Given an id no distribution has
    cdn = CloudFrontInvalidator("E0000NOSUCHDIST", client=cloudfront)
    # When it is asked to invalidate, Then it raises, naming CloudFront's refusal
    with pytest.raises(CdnInvalidationFailed, match="NoSuchDistribution"):
        cdn.invalidate(["/outputs/v1/*"])


def test_an_unreachable_endpoint_raises() -> None:
    # Given a client for an endpoint where nothing listens
    client = boto3.client(
        "cloudfront",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    # When it is asked to invalidate, Then it raises
    with pytest.raises(CdnInvalidationFailed):
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


def test_a_refused_invalidation_stays_in_the_outbox_and_a_later_sweep_completes_it() -> None:
    # Given a deleted video's invalidation in the outbox, and CloudFront refusing the first request
    client = boto3.client(
        "cloudfront", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    now = [datetime(2026, 1, 1)]
    catalogue = MemoryCatalogue(clock=lambda: now[0])
    catalogue.record_event(cdn_invalidation("v1", ["/outputs/v1/*", "/private-outputs/v1/*"]))
    sweep = OutboxSweep(catalogue, None, cdn=CloudFrontInvalidator("E123", client=client))
    expected = {
        "DistributionId": "E123",
        "InvalidationBatch": {
            "Paths": {"Quantity": 2, "Items": ["/outputs/v1/*", "/private-outputs/v1/*"]},
            "CallerReference": ANY,
        },
    }
    with Stubber(client) as stub:
        stub.add_client_error(
            "create_invalidation",
            "TooManyInvalidationsInProgress",
            http_status_code=400,
            expected_params=expected,
        )
        # When the sweep acts on it, Then it failed and the event stays in the outbox
        assert sweep.flush(subject=cdn_subject("v1")) == FlushResult(published=0, failed=1)
        assert catalogue.pending_events()[0] == 1
        # When CloudFront accepts it again and the sweep runs after the event's lease
        stub.add_response(
            "create_invalidation",
            {"Location": "https://x", "Invalidation": _invalidation("I2")},
            expected_params=expected,
        )
        now[0] += timedelta(seconds=DEFAULT_LEASE_SECONDS + 1)
        assert sweep.flush(subject=cdn_subject("v1")) == FlushResult(published=1, failed=0)
        stub.assert_no_pending_responses()
    # Then the invalidation was created, and the outbox is empty
    assert catalogue.pending_events() == (0, 0.0)


def _invalidation(invalidation_id: str) -> dict[str, object]:
    return {
        "Id": invalidation_id,
        "Status": "InProgress",
        "CreateTime": datetime(2026, 1, 1),
        "InvalidationBatch": {"Paths": {"Quantity": 1, "Items": ["/x"]}, "CallerReference": "r"},
    }
