"""Protocol gaps a fuzzer found: 405 without ``Allow``, an undocumented 413, a dangling ``$ref``."""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.test import Client

from local.auth import JwtAuthorizer
from local.gateway import Gateway
from local.media import MediaEndpoint
from reelay.api.app import openapi_document
from reelay.api.routes import ROUTES, allowed_methods
from tests.fakes import api_event
from tests.unit.test_api import call, services, settings  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")]

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# A concrete path for every template in the table, and the methods the table serves on it.
PATHS = sorted({r.path.replace("{videoId}", "v-1").replace("{streamId}", "s-1") for r in ROUTES})


def refused(path: str) -> list[tuple[str, str]]:
    served = set(allowed_methods(path))
    return [(m, path) for m in METHODS if m not in served]


@pytest.mark.parametrize(("method", "path"), [pair for p in PATHS for pair in refused(p)])
@pytest.mark.usefixtures("services")
def test_resolver_answers_405_with_allow_for_a_method_a_path_does_not_serve(method: str, path: str) -> None:
    status, body, headers = call(api_event(method, path))
    assert status == 405, body
    assert body["error"] == "method_not_allowed"
    allow = {m.strip() for m in headers["Allow"].split(",")}
    assert allow == set(allowed_methods(path)) and method not in allow and "OPTIONS" in allow


@pytest.mark.usefixtures("services")
def test_resolver_still_answers_404_for_a_path_no_route_has() -> None:
    status, body, headers = call(api_event("PUT", "/nowhere"))
    assert status == 404 and body["error"] == "not_found" and "Allow" not in headers


class _Api:
    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}


@pytest.fixture
def gateway(tmp_path) -> Client:
    return Client(
        Gateway(
            api_handler=lambda: _Api(),
            authorizer=JwtAuthorizer("http://127.0.0.1:1/jwks.json", "issuer", "client"),  # never called
            media=MediaEndpoint(output_prefix="outputs/"),
            static_dir=tmp_path,
            max_body_bytes=1000,
        )
    )


@pytest.mark.parametrize(("method", "path"), [pair for p in PATHS for pair in refused(p)])
def test_local_gateway_answers_405_with_the_same_allow(gateway: Client, method: str, path: str) -> None:
    r = gateway.open(path, method=method)
    assert r.status_code == 405 and r.json["error"] == "method_not_allowed"
    assert {m.strip() for m in r.headers["Allow"].split(",")} == set(allowed_methods(path))


def test_every_operation_documents_the_413_the_gateways_answer(gateway: Client) -> None:
    # Given the local gateway's body limit, Then an oversized body is a 413 in the error shape
    r = gateway.post("/auth/login", data=b"x" * 2000, content_type="application/json")
    assert r.status_code == 413 and set(r.json) == {"error", "message"}
    # And every operation in the document declares that 413 with the error schema
    document = openapi_document()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            documented = operation["responses"].get("413")
            assert documented is not None, f"{method.upper()} {path} does not document 413"
            ref = documented["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/ErrorOut"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_schema_reference_in_the_document_resolves() -> None:
    document = openapi_document()
    refs = _refs(document)
    assert refs  # the document does use references
    for ref in refs:
        assert ref.startswith("#/"), ref
        node: Any = document
        for part in ref[2:].split("/"):
            assert isinstance(node, dict) and part in node, f"{ref} points at nothing"
            node = node[part]
