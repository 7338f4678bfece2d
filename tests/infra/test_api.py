"""API stack: built from the route table, with Cognito on auth routes and gateway errors in house shape."""

from __future__ import annotations

import json

import pytest

from infra.constants import GATEWAY_ERROR_CODES
from infra.constructs.api import gateway_error_template, path_parameters
from reelay.api.routes import ROUTES
from tests.infra.conftest import props


def _paths(template) -> dict[str, str]:
    """Logical id of every API resource (and the root) -> its full path."""
    resources = template.find_resources("AWS::ApiGateway::Resource")
    paths: dict[str, str] = {}

    def path_of(logical_id: str) -> str:
        if logical_id not in paths:
            p = props(resources[logical_id])
            parent = p["ParentId"]
            prefix = "" if "Fn::GetAtt" in parent else path_of(parent["Ref"])
            paths[logical_id] = f"{prefix}/{p['PathPart']}"
        return paths[logical_id]

    for logical_id in resources:
        path_of(logical_id)
    return paths


def _methods(template) -> dict[tuple[str, str], dict]:
    paths = _paths(template)
    found = {}
    for method in template.find_resources("AWS::ApiGateway::Method").values():
        p = props(method)
        resource = p["ResourceId"]
        path = "/" if "Fn::GetAtt" in resource else paths[resource["Ref"]]
        found[(p["HttpMethod"], path)] = p
    return found


@pytest.fixture(scope="module")
def api_template(synthesized, stacks):
    return synthesized.template(stacks.api)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_every_route_is_a_method_with_the_right_authorization(api_template, route):
    # Given the methods of the synthesized API
    methods = _methods(api_template)
    # Then the route exists, integrated by proxy with the API Lambda
    method = methods[(route.method, route.path)]
    assert method["Integration"]["Type"] == "AWS_PROXY"
    # And it is behind the Cognito authorizer exactly when the route table says auth=True
    if route.auth:
        assert method["AuthorizationType"] == "COGNITO_USER_POOLS"
        assert "AuthorizerId" in method
    else:
        assert method["AuthorizationType"] == "NONE"
        assert "AuthorizerId" not in method


def test_the_api_has_no_method_the_route_table_does_not_declare(api_template):
    # Given every non-preflight method of the API
    declared = {(r.method, r.path) for r in ROUTES}
    actual = {key for key in _methods(api_template) if key[0] != "OPTIONS"}
    # Then it is exactly the route table
    assert actual == declared


def test_every_path_answers_cors_preflight_without_auth(api_template):
    # Given the methods of the API
    methods = _methods(api_template)
    # Then every route's path has an OPTIONS method open to browsers
    for route in ROUTES:
        assert methods[("OPTIONS", route.path)]["AuthorizationType"] == "NONE"


def test_all_methods_integrate_with_one_api_function(api_template):
    # Given the integrations of every non-preflight method
    uris = {
        json.dumps(m["Integration"]["Uri"]) for k, m in _methods(api_template).items() if k[0] != "OPTIONS"
    }
    # Then they all invoke the same function, the API handler
    assert len(uris) == 1
    api_template.has_resource_properties(
        "AWS::Lambda::Function", {"Handler": "lambdas.api.handler.lambda_handler", "Runtime": "python3.11"}
    )


def test_path_parameters_are_required_and_validated(api_template):
    # Given routes with path parameters
    methods = _methods(api_template)
    for route in ROUTES:
        names = path_parameters(route.path)
        method = methods[(route.method, route.path)]
        if names:
            # Then they are declared required and checked by the request validator
            assert method["RequestParameters"] == {f"method.request.path.{n}": True for n in names}
            assert "RequestValidatorId" in method
    api_template.has_resource_properties(
        "AWS::ApiGateway::RequestValidator", {"ValidateRequestBody": True, "ValidateRequestParameters": True}
    )


def test_the_cognito_authorizer_uses_the_reelay_user_pool(api_template):
    # Given the authorizer
    (authorizer,) = api_template.find_resources("AWS::ApiGateway::Authorizer").values()
    p = props(authorizer)
    # Then it is a user pools authorizer on the auth stack's pool
    assert p["Type"] == "COGNITO_USER_POOLS"
    assert "ReelayAuth" in json.dumps(p["ProviderARNs"])


@pytest.mark.parametrize(("response_type", "code"), sorted(GATEWAY_ERROR_CODES.items()))
def test_gateway_made_errors_have_the_api_error_shape(api_template, response_type, code):
    # Given the gateway response for a gateway-made error
    responses = {
        props(r)["ResponseType"]: props(r)
        for r in api_template.find_resources("AWS::ApiGateway::GatewayResponse").values()
    }
    response = responses[response_type]
    template = response["ResponseTemplates"]["application/json"]
    # When API Gateway fills in $context.error.messageString (a quoted JSON string)
    rendered = template.replace("$context.error.messageString", json.dumps('Unauthorized "x"'))
    # Then the body is the API's JSON error {"error": code, "message": text}
    assert json.loads(rendered) == {"error": code, "message": 'Unauthorized "x"'}
    assert response["ResponseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"]


def test_gateway_error_template_is_json_for_any_code():
    # Given a code
    rendered = gateway_error_template("throttled").replace(
        "$context.error.messageString", '"Too Many Requests"'
    )
    # Then the template renders to valid JSON
    assert json.loads(rendered) == {"error": "throttled", "message": "Too Many Requests"}


def test_stage_throttles_traces_and_writes_access_logs(api_template, config):
    # Given the API stage
    (stage,) = api_template.find_resources("AWS::ApiGateway::Stage").values()
    p = props(stage)
    # Then all methods are throttled at the configured rate and burst
    (settings,) = [s for s in p["MethodSettings"] if (s["HttpMethod"], s["ResourcePath"]) == ("*", "/*")]
    assert settings["ThrottlingRateLimit"] == config.api_throttle_rate
    assert settings["ThrottlingBurstLimit"] == config.api_throttle_burst
    assert settings["DataTraceEnabled"] is False
    # And requests are traced and access-logged as JSON to a log group
    assert p["TracingEnabled"] is True
    assert "Fn::GetAtt" in p["AccessLogSetting"]["DestinationArn"]
    assert json.loads(p["AccessLogSetting"]["Format"])["status"] == "$context.status"
    assert p["StageName"] == config.stage


def test_api_function_may_presign_uploads_but_not_touch_the_whole_bucket(api_template):
    # Given the API function's policy
    statements = [
        s
        for policy in api_template.find_resources("AWS::IAM::Policy").values()
        for s in props(policy)["PolicyDocument"]["Statement"]
    ]
    s3 = [s for s in statements if any(a.startswith("s3:") for a in _actions(s))]
    # Then S3 rights are scoped to uploads/ and outputs/ objects, never s3:* or the whole bucket;
    # the recordings routes only read a session's manifests, and read and write export states
    assert s3
    scoped = ("/uploads/*", "/outputs/*", "/recordings/_manifests/*", "/recording-exports/*")
    for statement in s3:
        assert "s3:*" not in _actions(statement)
        resource = json.dumps(statement["Resource"])
        assert any(p in resource for p in scoped) or "s3:prefix" in json.dumps(statement)
        if "/recordings/_manifests/*" in resource:
            assert _actions(statement) == ["s3:GetObject"]
        if "/recording-exports/*" in resource:
            assert _actions(statement) in (["s3:GetObject"], ["s3:PutObject"])


def _actions(statement) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else actions


def _api_function(api_template) -> dict:
    (fn,) = [
        f
        for f in api_template.find_resources("AWS::Lambda::Function").values()
        if props(f).get("Handler") == "lambdas.api.handler.lambda_handler"
    ]
    return props(fn)


def test_api_function_knows_the_playback_distribution_imported_from_the_storage_stack(
    api_template, synthesized, stacks
):
    # Given the API function's environment
    env = _api_function(api_template)["Environment"]["Variables"]
    # Then it names the playback distribution, imported from the Storage stack (which owns it)
    distribution_id = env["REELAY_CDN_DISTRIBUTION_ID"]
    assert "Fn::ImportValue" in distribution_id
    storage = synthesized.template(stacks.storage)
    (distribution_logical_id,) = storage.find_resources("AWS::CloudFront::Distribution")
    assert f"ExportsOutputRef{distribution_logical_id}" in distribution_id["Fn::ImportValue"]
    # And the Storage stack imports nothing from the API stack (no cycle)
    assert stacks.api.stack_name not in json.dumps(storage.to_json())


def test_api_function_may_invalidate_only_the_playback_distribution(api_template):
    # Given the API function's policy statements that mention CloudFront
    statements = [
        s
        for policy in api_template.find_resources("AWS::IAM::Policy").values()
        for s in props(policy)["PolicyDocument"]["Statement"]
    ]
    cloudfront = [s for s in statements if any(a.startswith("cloudfront:") for a in _actions(s))]
    # Then there is one: CreateInvalidation on that one distribution's ARN, no wildcard
    (statement,) = cloudfront
    assert _actions(statement) == ["cloudfront:CreateInvalidation"]
    resource = json.dumps(statement["Resource"])
    assert ":distribution/" in resource and "Fn::ImportValue" in resource and "*" not in resource


def test_api_function_reads_the_key_that_seals_camera_secrets_and_nothing_else(api_template):
    # Given the API stack's stream secret: generated (letters and digits: no comma splits it), kept
    (secret_id,) = [
        logical_id
        for logical_id, s in api_template.find_resources("AWS::SecretsManager::Secret").items()
        if "StreamSecretKeys" in logical_id
    ]
    secret = api_template.find_resources("AWS::SecretsManager::Secret")[secret_id]
    generated = props(secret)["GenerateSecretString"]
    assert generated["ExcludePunctuation"] is True and generated["PasswordLength"] >= 32
    assert secret["DeletionPolicy"] == "Retain"
    # Then the API function is told its ARN and may read exactly that secret
    env = _api_function(api_template)["Environment"]["Variables"]
    assert env["REELAY_STREAM_SECRET_ARN"] == {"Ref": secret_id}
    statements = [
        s
        for policy in api_template.find_resources("AWS::IAM::Policy").values()
        for s in props(policy)["PolicyDocument"]["Statement"]
        if {"Ref": secret_id} in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    ]
    (statement,) = statements  # CDK merges it with the catalogue secret's read: the same actions
    assert set(_actions(statement)) == {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}


def test_the_unauthenticated_auth_routes_have_tighter_method_throttles(api_template, config):
    # Given the API stage's method settings, by (method, path)
    (stage,) = api_template.find_resources("AWS::ApiGateway::Stage").values()
    by_method = {
        (s["HttpMethod"], s["ResourcePath"][1:].replace("~1", "/")): s
        for s in props(stage)["MethodSettings"]
        if s["ResourcePath"] != "/*"
    }
    # Then each /auth/* route of the route table has its own throttle, tighter than the stage's
    assert set(by_method) == {
        (r.method, r.path) for r in ROUTES if r.path.startswith("/auth/") and not r.auth
    }
    assert len(by_method) >= 5
    for settings in by_method.values():
        assert settings["ThrottlingRateLimit"] == config.api_auth_throttle_rate
        assert settings["ThrottlingBurstLimit"] == config.api_auth_throttle_burst
    assert config.api_auth_throttle_rate < config.api_throttle_rate
    assert config.api_auth_throttle_burst < config.api_throttle_burst
