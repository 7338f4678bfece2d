"""Per-user upload quotas through the API: each refused with a 429 whose code and message name it."""

from __future__ import annotations

import pytest

from reelay.api.app import openapi_document
from reelay.quotas import STORED_BYTES, UPLOAD_BYTES_PER_DAY, VIDEOS_IN_FLIGHT
from reelay.settings import Settings
from reelay.wiring import Services
from tests.fakes import installed_services
from tests.unit.test_api import ALICE, BOB, MiB, assert_error, upload


def quota_settings(**quotas: int) -> Settings:
    limits = {"quota_videos_in_flight": 0, "quota_upload_bytes_per_day": 0, "quota_stored_bytes": 0}
    return Settings(
        max_upload_bytes=100 * MiB,
        multipart_threshold_bytes=10 * MiB,
        multipart_part_bytes=5 * MiB,
        **(limits | quotas),
    )


@pytest.fixture
def quota_services(request: pytest.FixtureRequest):
    with installed_services(quota_settings(**request.param)) as svc:
        yield svc


@pytest.mark.parametrize("quota_services", [{"quota_videos_in_flight": 2}], indirect=True)
def test_videos_in_flight(quota_services: Services) -> None:
    assert upload()[0] == upload()[0] == 201
    # When a third upload is started while two are in flight, Then 429 naming the quota and its value
    status, body = upload()
    assert_error(status, body, 429, VIDEOS_IN_FLIGHT, "videos in flight", "2")
    # And nothing was made for it
    assert len(quota_services.catalogue.list_by_owner(ALICE["sub"], limit=10).items) == 2
    # And another user is not affected
    assert upload(claims=BOB)[0] == 201


@pytest.mark.parametrize("quota_services", [{"quota_upload_bytes_per_day": 25 * MiB}], indirect=True)
def test_bytes_uploaded_per_day(quota_services: Services) -> None:
    # Given a single PUT and a multipart upload that fill 24 MiB of today's 25
    assert upload(sizeBytes=4 * MiB)[0] == 201
    assert upload(sizeBytes=20 * MiB)[0] == 201
    store = quota_services.store
    open_uploads = dict(store.multipart)  # type: ignore[attr-defined]
    # When another 2 MiB is started, Then 429 naming the daily quota, and no multipart upload is left open
    status, body = upload(sizeBytes=2 * MiB)
    assert_error(status, body, 429, UPLOAD_BYTES_PER_DAY, "per day", str(25 * MiB))
    status, body = upload(sizeBytes=12 * MiB)
    assert_error(status, body, 429, UPLOAD_BYTES_PER_DAY)
    assert store.multipart == open_uploads and len(store.aborted) == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("quota_services", [{"quota_stored_bytes": 3000}], indirect=True)
def test_total_stored_bytes(quota_services: Services) -> None:
    assert upload(sizeBytes=2000)[0] == 201
    status, body = upload(sizeBytes=1001)
    assert_error(status, body, 429, STORED_BYTES, "storage quota", "3000", "delete videos")
    assert upload(sizeBytes=1000)[0] == 201


def test_the_defaults_are_on_and_sensible() -> None:
    defaults = Settings()
    assert defaults.quota_videos_in_flight == 10
    assert defaults.quota_upload_bytes_per_day == 50 * 1024**3 >= 10 * defaults.max_upload_bytes
    assert defaults.quota_stored_bytes == 200 * 1024**3 >= defaults.quota_upload_bytes_per_day
    with pytest.raises(ValueError):
        Settings(quota_stored_bytes=-1)


def test_the_openapi_document_declares_the_quota_429_on_upload_only() -> None:
    paths = openapi_document()["paths"]
    answer = paths["/videos/upload"]["post"]["responses"]["429"]
    for code in (VIDEOS_IN_FLIGHT, UPLOAD_BYTES_PER_DAY, STORED_BYTES):
        assert code in answer["description"]
    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
    # every route may be throttled (429 with Retry-After), but only the upload has quotas
    other = paths["/videos/{videoId}/upload/complete"]["post"]["responses"]["429"]["description"]
    assert "Retry-After" in other and "quota" not in other
