"""Deploy-time custom resource (CDK Provider framework): bring the catalogue schema up to date.

Create and Update apply pending migrations, as the master user, then make sure the application
user named in REELAY_APP_DB_SECRET_ARN exists with row access only. Delete leaves the schema, its
data and the user alone. A failure raises, so the framework reports FAILED and CloudFormation
rolls back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reelay.catalogue import ConnectionProvider, migrate
from reelay.catalogue.migrations import load_migrations
from reelay.catalogue.users import app_user_from_secret, current_database, ensure_app_user
from reelay.custom_resource import lambda_handler_for
from reelay.observability import logger
from reelay.settings import get_settings

PHYSICAL_ID = "reelay-catalogue-schema"


def _migrate(_request: str, _properties: Mapping[str, Any]) -> dict[str, str]:
    settings = get_settings()
    provider = ConnectionProvider.from_settings(settings)
    try:
        applied = migrate(provider)
        app_user = None
        if settings.app_db_secret_arn:
            user = app_user_from_secret(
                settings.app_db_secret_arn, endpoint_url=settings.aws_endpoint_url, region=settings.aws_region
            )
            app_user = ensure_app_user(provider, user.username, user.password, current_database(provider))
    finally:
        provider.close()
    latest = load_migrations()[-1].version
    logger.info("catalogue schema up to date", extra={"applied": applied, "schema_version": latest})
    data = {"applied": ",".join(applied), "schemaVersion": latest}  # resource attributes are strings
    if app_user is not None:
        data["appUser"] = app_user.username
    return data


lambda_handler = lambda_handler_for(
    physical_id=PHYSICAL_ID, apply=_migrate, kept_on_delete="the catalogue schema, its data and users stay"
)
