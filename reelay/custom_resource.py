"""Deploy-time custom resources (the CDK Provider framework's onEvent contract), answered one way.

Create and Update run the resource's ``apply`` with its ``ResourceProperties`` and answer its data as
the resource's attributes; Delete does nothing and says so (Reelay's deploy-time resources make things
that outlive the stack on purpose: the schema and its data, a signing key in use). The physical id is
the one CloudFormation already holds, else the resource's own, so an update never replaces the
resource. An unknown request type, or a failure in ``apply``, raises: the framework then reports FAILED
and CloudFormation rolls back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from reelay.observability import logger

Apply = Callable[[str, Mapping[str, Any]], Mapping[str, str]]


def answer(
    event: Mapping[str, Any], *, physical_id: str, apply: Apply, kept_on_delete: str
) -> dict[str, Any]:
    """The Provider framework's answer to ``event``: ``apply(request_type, properties)`` on Create and
    Update (its result becomes ``Data``); on Delete, only a log line saying ``kept_on_delete``."""
    request = event.get("RequestType")
    physical = event.get("PhysicalResourceId") or physical_id
    if request == "Delete":
        logger.info(f"stack delete: {kept_on_delete}")
        return {"PhysicalResourceId": physical}
    if request not in ("Create", "Update"):
        raise ValueError(f"unknown custom resource RequestType {request!r}")
    data = apply(request, event.get("ResourceProperties") or {})
    return {"PhysicalResourceId": physical, "Data": dict(data)}


def lambda_handler_for(
    *, physical_id: str, apply: Apply, kept_on_delete: str
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """A Lambda handler that answers every event with ``answer`` (the invocation's context logged)."""

    @logger.inject_lambda_context
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return answer(event, physical_id=physical_id, apply=apply, kept_on_delete=kept_on_delete)

    return lambda_handler
