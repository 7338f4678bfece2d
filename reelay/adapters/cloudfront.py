"""Drop CloudFront's cached copies of deleted media (segments are cached ``immutable`` for a year).

A refused or unsent invalidation raises ``CdnInvalidationFailed``. Every caller goes through the
outbox (``reelay.events.OutboxSweep``, acting on ``cdn.invalidate`` events), which logs it, keeps the
event and retries it: deleting a video never fails on the cache, and the cache is still dropped.

boto3 is imported when the first invalidation is sent, not with this module: the API builds its
VideoService (and this invalidator) on the first GET /videos, which must not pay for boto3.
"""

from __future__ import annotations

import uuid
from typing import Any

from aws_lambda_powertools import Logger

from reelay.errors import InvalidInput, ReelayError
from reelay.settings import Settings

logger = Logger(child=True)

MAX_PATHS = 3000  # CloudFront's limit of paths per invalidation batch


class CdnInvalidationFailed(ReelayError):
    """CloudFront refused an invalidation, or could not be reached: the outbox retries it."""


class CloudFrontInvalidator:
    """A CdnInvalidator for one distribution. A failed batch raises ``CdnInvalidationFailed`` (the
    batches before it are sent; a retry sends them again, which only costs an invalidation)."""

    def __init__(self, distribution_id: str, client: Any = None, *, settings: Settings | None = None) -> None:
        if not distribution_id or not distribution_id.strip():
            raise InvalidInput("a CloudFront distribution id is required")
        self.distribution_id = distribution_id.strip()
        self._client = client
        self._settings = settings

    def _cloudfront(self) -> Any:
        if self._client is None:
            from reelay.adapters.aws import client as aws_client

            self._client = aws_client("cloudfront", self._settings)
        return self._client

    def invalidate(self, paths: list[str]) -> None:
        from reelay.adapters.aws import error_code

        items = [p if p.startswith("/") else f"/{p}" for p in paths if p]
        if not items:
            return
        for start in range(0, len(items), MAX_PATHS):
            batch = items[start : start + MAX_PATHS]
            try:
                resp = self._cloudfront().create_invalidation(
                    DistributionId=self.distribution_id,
                    InvalidationBatch={
                        "Paths": {"Quantity": len(batch), "Items": batch},
                        # Unique per call: a retried call must not be folded into an older batch.
                        "CallerReference": f"reelay-{uuid.uuid4().hex}",
                    },
                )
            except Exception as e:  # the outbox keeps the event and retries it
                code = error_code(e)
                logger.warning(
                    "CDN invalidation refused",
                    extra={"distribution_id": self.distribution_id, "paths": batch, "error": code},
                )
                raise CdnInvalidationFailed(
                    f"CloudFront did not invalidate {len(batch)} paths: {code}"
                ) from e
            logger.info(
                "CDN invalidation created",
                extra={
                    "distribution_id": self.distribution_id,
                    "paths": batch,
                    "invalidation_id": resp.get("Invalidation", {}).get("Id"),
                },
            )


class NoCdnInvalidator:
    """Where nothing caches published media (the local platform, tests): nothing to drop."""

    def invalidate(self, paths: list[str]) -> None:
        logger.debug("no CDN configured; nothing to invalidate", extra={"paths": paths})


__all__ = ["CdnInvalidationFailed", "CloudFrontInvalidator", "NoCdnInvalidator"]
