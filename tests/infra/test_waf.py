"""WAF: a regional web ACL with rate-based rules on the API stage, and a CloudFront one in us-east-1 on
both distributions, on by default and switched off by config (still cdk-nag clean)."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest

from infra.app_factory import build_app
from infra.constructs.waf import edge_acl_parameter
from tests.infra.conftest import SynthesizedApp, cdk_json_context, props


def _acls(template) -> list[dict]:
    return [props(a) for a in template.find_resources("AWS::WAFv2::WebACL").values()]


def _rate(rule: dict) -> dict:
    assert rule["Action"] == {"Block": {}}
    return rule["Statement"]["RateBasedStatement"]


def test_waf_is_on_by_default_in_cdk_json(config):
    assert cdk_json_context()["reelay"]["waf_enabled"] is True
    assert config.waf_enabled


def test_the_api_stage_has_a_regional_acl_tighter_on_auth(synthesized, stacks, config):
    template = synthesized.template(stacks.api)
    (acl,) = _acls(template)
    assert (acl["Scope"], acl["DefaultAction"]) == ("REGIONAL", {"Allow": {}})
    rules = {r["Name"]: r for r in acl["Rules"]}
    auth, api = _rate(rules["AuthRatePerIp"]), _rate(rules["ApiRatePerIp"])
    # Per client IP over 5 minutes: every route, and the /auth/* routes at a lower limit
    assert (api["AggregateKeyType"], api["Limit"], api["EvaluationWindowSec"]) == (
        "IP",
        config.waf_api_rate_limit,
        300,
    )
    assert (auth["AggregateKeyType"], auth["Limit"]) == ("IP", config.waf_auth_rate_limit)
    assert config.waf_auth_rate_limit < config.waf_api_rate_limit
    match = auth["ScopeDownStatement"]["ByteMatchStatement"]
    assert (match["FieldToMatch"], match["PositionalConstraint"], match["SearchString"]) == (
        {"UriPath": {}},
        "CONTAINS",
        "/auth/",
    )
    assert "ScopeDownStatement" not in api
    # And it is associated with the API's stage
    (association,) = [props(a) for a in template.find_resources("AWS::WAFv2::WebACLAssociation").values()]
    stage_id = stacks.api.get_logical_id(stacks.api.rest.api.deployment_stage.node.default_child)
    assert stage_id in json.dumps(association["ResourceArn"])
    assert "WebAcl" in json.dumps(association["WebACLArn"])


def test_the_cloudfront_acl_lives_in_us_east_1_and_publishes_its_arn(synthesized, stacks, config):
    edge = stacks.edge
    assert edge is not None and edge.region == "us-east-1"
    template = synthesized.template(edge)
    (acl,) = _acls(template)
    assert acl["Scope"] == "CLOUDFRONT"
    (rule,) = acl["Rules"]
    assert _rate(rule)["Limit"] == config.waf_cdn_rate_limit and _rate(rule)["AggregateKeyType"] == "IP"
    (parameter,) = [props(p) for p in template.find_resources("AWS::SSM::Parameter").values()]
    assert parameter["Name"] == edge_acl_parameter(config.stage)
    assert "CdnWebAcl" in json.dumps(parameter["Value"]) and "Arn" in json.dumps(parameter["Value"])


@pytest.mark.parametrize("which", ["storage", "web"])
def test_each_distribution_uses_the_edge_acl_read_from_us_east_1(synthesized, stacks, config, which):
    stack = getattr(stacks, which)
    template = synthesized.template(stack)
    (distribution,) = [props(d) for d in template.find_resources("AWS::CloudFront::Distribution").values()]
    acl_ref = distribution["DistributionConfig"]["WebACLId"]
    reader_id, field = acl_ref["Fn::GetAtt"]
    assert field == "Parameter.Value"
    reader = props(template.to_json()["Resources"][reader_id])
    call = json.loads(reader["Create"])
    assert (call["service"], call["action"], call["region"]) == ("SSM", "getParameter", "us-east-1")
    assert call["parameters"] == {"Name": edge_acl_parameter(config.stage)}
    # The reader may get that one parameter, in us-east-1, and nothing else
    statements = [
        s
        for p in template.find_resources("AWS::IAM::Policy").values()
        for s in props(p)["PolicyDocument"]["Statement"]
        if "ssm:GetParameter" in json.dumps(s["Action"])
    ]
    (statement,) = statements
    assert statement["Action"] == "ssm:GetParameter"
    resource = json.dumps(statement["Resource"])
    assert ":ssm:us-east-1:" in resource and "parameter/reelay/" in resource
    # And the stack is deployed after the edge stack
    assert stacks.edge in stack.dependencies


@pytest.fixture(scope="module")
def without_waf(tmp_path_factory) -> SynthesizedApp:
    outdir = tmp_path_factory.mktemp("cdk.out.nowaf")
    app = cdk.App(outdir=str(outdir), context={**cdk_json_context(), "waf_enabled": False})
    stacks = build_app(app)
    error = None
    try:
        app.synth()
    except RuntimeError as exc:
        error = exc
    from infra.config import ReelayConfig

    return SynthesizedApp(app, stacks, ReelayConfig.from_app(app), outdir, error)


def test_the_switch_turns_every_acl_off_and_stays_nag_clean(without_waf):
    assert without_waf.synth_error is None  # the acknowledgements for no WAF take over
    stacks = without_waf.stacks
    assert stacks.edge is None
    for stack in stacks.all():
        template = without_waf.template(stack)
        assert _acls(template) == [], stack.stack_name
        assert template.find_resources("AWS::WAFv2::WebACLAssociation") == {}
        for d in template.find_resources("AWS::CloudFront::Distribution").values():
            assert "WebACLId" not in props(d)["DistributionConfig"]
