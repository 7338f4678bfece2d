"""The web stack: the front end's build on a private bucket, CloudFront with security headers,
SPA error responses, and a generated config.json with the same keys the local gateway serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from infra.constants import WEB_ASSETS_CACHE_CONTROL, WEB_PAGES_CACHE_CONTROL
from infra.constructs.web import WebBuildMissing, WebOrigins, check_build
from local.web import web_config
from tests.infra.conftest import props


def _one(template, type_: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    found = template.find_resources(type_)
    assert len(found) == 1, found.keys()
    return props(next(iter(found.values())))


def _csp(template) -> str:  # type: ignore[no-untyped-def]
    policy = _one(template, "AWS::CloudFront::ResponseHeadersPolicy")["ResponseHeadersPolicyConfig"]
    value = policy["SecurityHeadersConfig"]["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    # Tokens (the API id, the CDN domain) are joined in; keep the literal text and name the tokens.
    parts = value["Fn::Join"][1] if isinstance(value, dict) else [value]
    return "".join(p if isinstance(p, str) else f"<{next(iter(p))}:{json.dumps(p)}>" for p in parts)


def test_the_web_stack_is_part_of_the_app(stacks):
    # Given the whole app
    # Then the web stack is one of its stacks, named for the stage
    assert stacks.web in stacks.all()
    assert stacks.web.stack_name.endswith("-ReelayWeb")


def test_the_site_bucket_is_private_encrypted_logged_and_read_only_by_cloudfront(synthesized, stacks):
    # Given the web stack
    template = synthesized.template(stacks.web)
    site = {
        k: v
        for k, v in template.find_resources("AWS::S3::Bucket").items()
        if "LoggingConfiguration" in props(v)
    }
    assert len(site) == 1, site.keys()  # the access-log bucket has no logging of its own
    site_id, bucket = next(iter(site.items()))
    # Then it blocks public access and encrypts
    assert all(props(bucket)["PublicAccessBlockConfiguration"].values())
    assert "BucketEncryption" in props(bucket)
    # And its policy lets only CloudFront (this distribution, through OAC) read it, over TLS only
    template.resource_count_is("AWS::CloudFront::OriginAccessControl", 1)
    policies = [
        props(p)["PolicyDocument"]["Statement"]
        for p in template.find_resources("AWS::S3::BucketPolicy").values()
        if props(p)["Bucket"] == {"Ref": site_id}
    ]
    (statements,) = policies
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert [s["Principal"] for s in allows] == [{"Service": "cloudfront.amazonaws.com"}]
    assert allows[0]["Action"] == "s3:GetObject"
    assert "AWS:SourceArn" in allows[0]["Condition"]["StringEquals"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )


def test_the_distribution_serves_the_app_over_https_with_spa_fallbacks(synthesized, stacks):
    # Given the web distribution
    config = _one(synthesized.template(stacks.web), "AWS::CloudFront::Distribution")["DistributionConfig"]
    # Then "/" is the app, plain HTTP is redirected, and access is logged
    assert config["DefaultRootObject"] == "index.html"
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    assert config["DefaultCacheBehavior"]["AllowedMethods"] == ["GET", "HEAD"]
    assert "Logging" in config
    # And a client route (a missing object: 403 through OAC, or 404) gets index.html, uncached
    errors = {e["ErrorCode"]: e for e in config["CustomErrorResponses"]}
    assert set(errors) == {403, 404}
    for e in errors.values():
        assert (e["ResponseCode"], e["ResponsePagePath"], e["ErrorCachingMinTTL"]) == (200, "/index.html", 0)


def test_security_headers_lock_the_page_down(synthesized, stacks):
    # Given the response headers policy on the distribution
    template = synthesized.template(stacks.web)
    policy = _one(template, "AWS::CloudFront::ResponseHeadersPolicy")["ResponseHeadersPolicyConfig"]
    security = policy["SecurityHeadersConfig"]
    # Then HSTS (2 years, subdomains), nosniff, no framing and a strict referrer policy are forced
    assert security["StrictTransportSecurity"] == {
        "AccessControlMaxAgeSec": 63072000,
        "IncludeSubdomains": True,
        "Override": True,
    }
    assert security["ContentTypeOptions"] == {"Override": True}
    assert security["FrameOptions"]["FrameOption"] == "DENY"
    assert security["ReferrerPolicy"]["ReferrerPolicy"] == "strict-origin-when-cross-origin"
    # And the distribution uses it
    behavior = _one(template, "AWS::CloudFront::Distribution")["DistributionConfig"]["DefaultCacheBehavior"]
    assert "ResponseHeadersPolicyId" in behavior


def test_the_csp_names_the_api_the_media_cdn_and_the_upload_bucket(synthesized, stacks):
    # Given the content security policy
    csp = _csp(synthesized.template(stacks.web))
    directives = dict(
        d.strip().split(" ", 1) if " " in d.strip() else (d.strip(), "") for d in csp.split(";")
    )
    # Then scripts come from the site alone, and no one may frame it
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    # And the page may call the API, read the media CDN and PUT to the media bucket, nothing else
    connect = directives["connect-src"]
    assert connect.startswith("'self' https://<Fn::ImportValue")
    assert "RestApi" in connect and ".execute-api." in connect
    assert "MediaPlayback" in connect and "MediaPlayback" in directives["media-src"]
    assert "https://reelay-dev-media-" in connect and ".s3." in connect
    # And hls.js may use blob: media and workers
    assert "blob:" in directives["media-src"] and "blob:" in directives["worker-src"]


def test_the_build_and_a_generated_config_json_are_deployed_with_cache_headers(synthesized, stacks):
    # Given the two deployments of the web stack
    deployments = [
        props(d)
        for d in synthesized.template(stacks.web).find_resources("Custom::CDKBucketDeployment").values()
    ]
    by_cache = {d["SystemMetadata"]["cache-control"]: d for d in deployments}
    # Then the hashed assets are cached for good and the pages never
    assert set(by_cache) == {WEB_ASSETS_CACHE_CONTROL, WEB_PAGES_CACHE_CONTROL}
    assert by_cache[WEB_ASSETS_CACHE_CONTROL]["DestinationBucketKeyPrefix"] == "assets/"
    # And neither prunes: a browser holding the previous index.html still finds its assets
    assert [d["Prune"] for d in deployments] == [False, False]
    # And config.json is generated with the deployment's API URL and Cognito ids
    pages = by_cache[WEB_PAGES_CACHE_CONTROL]
    index, markers = next((i, m) for i, m in enumerate(pages["SourceMarkers"]) if m)
    values = json.dumps(list(markers.values()))
    assert "RestApi" in values and "Users" in values and "ApiClient" in values
    key = pages["SourceObjectKeys"][index].removesuffix(".zip")
    config_file = synthesized.outdir / f"asset.{key}" / "config.json"
    generated = json.loads(_unmark(config_file.read_text()))
    # with exactly the keys the local gateway's /config.json has
    local = web_config(api_url="http://x", region="r", user_pool_id="p", user_pool_client_id="c")
    assert set(generated) == set(local)


def _unmark(text: str) -> str:
    """The asset holds markers where deploy-time values go; stand a string in for each."""
    import re

    return re.sub(r"<<marker:0x[0-9a-f]+:\d+>>", '"deploy-time value"', text)


def test_deploys_have_no_unacknowledged_helpers(synthesized, stacks):
    # Given the web stack's nag acknowledgements (on CDK's BucketDeployment function, and on the
    # AwsCustomResource that reads the edge web ACL's ARN from us-east-1)
    template = synthesized.template(stacks.web)
    # Then the only functions in the stack are those helpers'
    functions = template.find_resources("AWS::Lambda::Function")
    assert functions and all(
        "CDKBucketDeployment" in k or k.startswith("AWS679f53fac002430cb0da5b7982bd2287") for k in functions
    )


def test_a_missing_build_is_explained(tmp_path: Path):
    # Given a directory with no web build in it
    # When the site is checked
    # Then the error says how to build it
    with pytest.raises(WebBuildMissing, match="make bootstrap"):
        check_build(tmp_path)
    (tmp_path / "index.html").write_text("<!doctype html>")
    with pytest.raises(WebBuildMissing):
        check_build(tmp_path)  # no assets/ either
    (tmp_path / "assets").mkdir()
    assert check_build(tmp_path) == tmp_path


def test_web_origins_compose_a_policy_without_wildcards():
    # Given concrete origins
    csp = WebOrigins(
        api="https://a.execute-api.eu-west-1.amazonaws.com",
        media="https://d1.cloudfront.net",
        uploads=("https://b.s3.amazonaws.com",),
    ).content_security_policy()
    # Then no directive allows everything or inline code
    assert "*" not in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "connect-src 'self' https://a.execute-api.eu-west-1.amazonaws.com https://d1.cloudfront.net" in csp


def test_stack_synthesizes_in_an_app_of_its_own(tmp_path: Path):
    # Given the web stack alone, with plain values for the other stacks' outputs
    from infra.stacks.web_stack import WebStack

    app = cdk.App(outdir=str(tmp_path))
    stack = WebStack(
        app,
        "Probe",
        stage="dev",
        api_url="https://a.execute-api.eu-west-1.amazonaws.com/dev/",
        api_id="a",
        media_domain="d1.cloudfront.net",
        user_pool_id="eu-west-1_x",
        user_pool_client_id="client",
    )
    # When it synthesizes
    assembly = app.synth()
    # Then the literal values land in the CSP
    template = assembly.get_stack_by_name(stack.stack_name).template
    policy = next(
        r for r in template["Resources"].values() if r["Type"] == "AWS::CloudFront::ResponseHeadersPolicy"
    )
    csp = json.dumps(policy["Properties"])
    assert "https://a.execute-api." in csp and "https://d1.cloudfront.net" in csp
