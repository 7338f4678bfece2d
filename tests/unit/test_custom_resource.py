"""The one answer both deploy-time custom resources (schema migration, playback key) give the CDK
Provider framework."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from reelay.custom_resource import answer


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: str, properties: Mapping[str, Any]) -> dict[str, str]:
        self.calls.append((request, dict(properties)))
        return {"Made": "yes"}


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_create_and_update_apply_with_the_properties_and_answer_the_data(request_type: str) -> None:
    apply = Recorder()
    event = {"RequestType": request_type, "ResourceProperties": {"SecretArn": "arn:s"}}
    got = answer(event, physical_id="reelay-thing", apply=apply, kept_on_delete="the thing stays")
    assert got == {"PhysicalResourceId": "reelay-thing", "Data": {"Made": "yes"}}
    assert apply.calls == [(request_type, {"SecretArn": "arn:s"})]


def test_an_update_keeps_the_physical_id_cloudformation_holds() -> None:
    event = {"RequestType": "Update", "PhysicalResourceId": "older-id"}
    got = answer(event, physical_id="reelay-thing", apply=Recorder(), kept_on_delete="-")
    assert got["PhysicalResourceId"] == "older-id"


def test_delete_does_nothing_but_answer() -> None:
    apply = Recorder()
    event = {"RequestType": "Delete", "PhysicalResourceId": "reelay-thing"}
    assert answer(event, physical_id="x", apply=apply, kept_on_delete="the thing stays") == {
        "PhysicalResourceId": "reelay-thing"
    }
    assert apply.calls == []


def test_an_unknown_request_type_or_a_failure_raises_so_the_stack_rolls_back() -> None:
    with pytest.raises(ValueError, match="RequestType"):
        answer({"RequestType": "Poke"}, physical_id="x", apply=Recorder(), kept_on_delete="-")

    def broken(_request: str, _properties: Mapping[str, Any]) -> dict[str, str]:
        raise RuntimeError("database unreachable")

    with pytest.raises(RuntimeError, match="unreachable"):
        answer({"RequestType": "Create"}, physical_id="x", apply=broken, kept_on_delete="-")
