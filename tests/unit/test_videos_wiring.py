"""The composition root: ports built once, replaceable, and chosen from Settings."""

from __future__ import annotations

import pytest

from reelay.adapters.sns import LogEventPublisher
from reelay.catalogue.memory import MemoryCatalogue
from reelay.settings import Settings
from reelay.storage.file import FileStore
from reelay.wiring import Services, get_services, set_services
from tests.fakes import FakeStore


def test_given_ports_are_used_and_services_are_built_once() -> None:
    catalogue, store = MemoryCatalogue(), FakeStore()
    services = Services(Settings(), catalogue=catalogue, store=store)
    assert services.videos.catalogue is catalogue and services.videos.store is store
    assert services.videos is services.videos


def test_unknown_ports_are_refused() -> None:
    with pytest.raises(TypeError, match="queues"):
        Services(Settings(), queues=object())


def test_ports_follow_the_settings(tmp_path) -> None:
    services = Services(Settings(media_store_url=f"file://{tmp_path}", events_topic_arn=None))
    # A file:// media URL gives the file store; no topic means events go to the log
    assert isinstance(services.store, FileStore)
    assert isinstance(services.events, LogEventPublisher)
    # And a missing queue or user pool is a clear configuration error on first use
    with pytest.raises(RuntimeError, match="REELAY_TRANSCODE_QUEUE_URL"):
        services.queue  # noqa: B018
    with pytest.raises(RuntimeError, match="REELAY_USER_POOL_ID"):
        services.identity  # noqa: B018


def test_the_cdn_follows_the_settings() -> None:
    from reelay.adapters.cloudfront import CloudFrontInvalidator, NoCdnInvalidator

    # Given no distribution (the local platform), deletion has nothing to invalidate
    local = Services(Settings(cdn_distribution_id=None), catalogue=MemoryCatalogue(), store=FakeStore())
    assert isinstance(local.cdn, NoCdnInvalidator) and local.videos.cdn is local.cdn
    # Given the deployed distribution id, the API invalidates that distribution
    deployed = Services(Settings(cdn_distribution_id="E2EXAMPLE"), catalogue=MemoryCatalogue())
    assert isinstance(deployed.cdn, CloudFrontInvalidator)
    assert deployed.cdn.distribution_id == "E2EXAMPLE" and deployed.videos.cdn is deployed.cdn


def test_get_services_is_cached_until_replaced() -> None:
    mine = Services(Settings(), catalogue=MemoryCatalogue())
    set_services(mine)
    try:
        assert get_services() is mine and get_services() is mine
    finally:
        set_services(None)
    assert get_services() is not mine
    set_services(None)
