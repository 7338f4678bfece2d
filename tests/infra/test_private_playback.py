"""Private playback in the templates: the key group CloudFront checks signed URLs against (its public
key made at deploy time by the key maker, or the config's PEM when one is given), the Secrets Manager
secret holding the private key, the key maker's grants on it alone, the signed path's
behaviours (trusted key group on private-outputs/, the private videos' own prefix), the public path
left unsigned and cached but unable to reach that prefix however it is spelt, and the API function's
environment and read grant on the secret."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from infra.config import ConfigError, ReelayConfig
from infra.constants import PLAYBACK_KEYS_HANDLER
from infra.playback_keys import make_pair
from infra.stacks.storage_stack import StorageStack
from tests.infra.conftest import function_by_handler, props, resources


def _distribution_config(synthesized, stacks) -> dict:
    (distribution,) = resources(
        synthesized.template(stacks.storage), "AWS::CloudFront::Distribution"
    ).values()
    return props(distribution)["DistributionConfig"]


def _signing_secret(template) -> str:
    ((secret_id, _),) = [
        (k, v)
        for k, v in resources(template, "AWS::SecretsManager::Secret").items()
        if "private playback" in props(v)["Description"]
    ]
    return secret_id


def _role_policies(template, role_id: str) -> list[dict]:
    return [
        statement
        for policy in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in props(policy)["Roles"]
        for statement in props(policy)["PolicyDocument"]["Statement"]
    ]


def _maker_role(template) -> str:
    _, maker = function_by_handler(template, PLAYBACK_KEYS_HANDLER)
    return maker["Role"]["Fn::GetAtt"][0]


def test_by_default_the_key_group_holds_the_public_key_made_at_deploy_time(
    synthesized, stacks, config
) -> None:
    assert config.playback_public_key_path is None and config.playback_public_key is None
    template = synthesized.template(stacks.storage)
    ((key_id, key),) = resources(template, "AWS::CloudFront::PublicKey").items()
    (group,) = resources(template, "AWS::CloudFront::KeyGroup").values()
    ((maker_id, maker),) = resources(template, "Custom::ReelayPlaybackKey").items()
    # The key is the key maker's answer, read at deploy time, for the stack's signing secret
    assert props(key)["PublicKeyConfig"]["EncodedKey"] == {"Fn::GetAtt": [maker_id, "PublicKey"]}
    assert props(maker)["SecretArn"] == {"Ref": _signing_secret(template)}
    assert props(group)["KeyGroupConfig"]["Items"] == [{"Ref": key_id}]
    # The key maker's provider invokes the playback_keys handler
    _, handler = function_by_handler(template, PLAYBACK_KEYS_HANDLER)
    assert "VpcConfig" not in handler  # it reaches Secrets Manager only; the stack has no VPC


def test_the_key_maker_may_only_get_and_put_the_signing_secret(synthesized, stacks) -> None:
    template = synthesized.template(stacks.storage)
    statements = _role_policies(template, _maker_role(template))
    secret_grants = [st for st in statements if "secretsmanager" in json.dumps(st["Action"])]
    assert secret_grants == [
        {
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
            "Effect": "Allow",
            "Resource": {"Ref": _signing_secret(template)},
        }
    ]
    # And beside it only X-Ray's trace writing (ReelayFunction's tracing)
    others = {a for st in statements if st not in secret_grants for a in json.dumps(st["Action"]).split('"')}
    assert {a for a in others if ":" in a} == {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def test_a_configured_public_key_is_used_instead_of_the_key_maker(tmp_path: Path) -> None:
    public = tmp_path / "pub.pem"
    make_pair(public, tmp_path / "priv.pem")
    app = cdk.App(outdir=str(tmp_path / "out"))
    config = ReelayConfig(playback_public_key_path=str(public), waf_enabled=False)
    stack = StorageStack(app, "Storage", config=config)
    default = StorageStack(app, "Made", config=ReelayConfig(waf_enabled=False))
    template = Template.from_stack(stack)
    ((key_id, key),) = resources(template, "AWS::CloudFront::PublicKey").items()
    assert props(key)["PublicKeyConfig"]["EncodedKey"] == public.read_text()
    assert key_id.startswith("MediaPlaybackPublicKey")  # the id a stage bringing its own key always had
    assert resources(template, "Custom::ReelayPlaybackKey") == {}
    assert resources(template, "AWS::Lambda::Function") == {}  # no key maker, no provider
    # While the same stack without the path makes its key, under the new public key's own id
    made = Template.from_stack(default)
    ((made_id, made_key),) = resources(made, "AWS::CloudFront::PublicKey").items()
    ((maker_id, _),) = resources(made, "Custom::ReelayPlaybackKey").items()
    assert props(made_key)["PublicKeyConfig"]["EncodedKey"] == {"Fn::GetAtt": [maker_id, "PublicKey"]}
    assert made_id.startswith("MediaGeneratedPlaybackPublicKey")


def test_only_the_signed_path_trusts_the_key_group_and_the_public_path_stays_unsigned(
    synthesized, stacks
) -> None:
    config = _distribution_config(synthesized, stacks)
    template = synthesized.template(stacks.storage)
    (group_id,) = resources(template, "AWS::CloudFront::KeyGroup")
    by_path = {b["PathPattern"]: b for b in config["CacheBehaviors"]}
    # The signed path is the private videos' own prefix: the viewer path is the key, nothing rewrites it
    assert list(by_path)[:2] == ["private-outputs/*.m3u8", "private-outputs/*"]
    for path in ("private-outputs/*.m3u8", "private-outputs/*"):
        behavior = by_path[path]
        assert behavior["TrustedKeyGroups"] == [{"Ref": group_id}]
        events = [a["EventType"] for a in behavior["FunctionAssociations"]]
        assert events == ["viewer-response"]
    # The public path (and the default behaviour) serve without signatures, cached as before, each
    # behind the function that keeps it to public paths
    for behavior in (by_path["*.m3u8"], config["DefaultCacheBehavior"]):
        assert "TrustedKeyGroups" not in behavior
        events = [a["EventType"] for a in behavior["FunctionAssociations"]]
        assert sorted(events) == ["viewer-request", "viewer-response"]
    assert "TrustedSigners" not in json.dumps(config)
    # And the signed path's segments are cached with the query left out of the key (the signatures
    # differ per viewer; CloudFront checks them on every request, cached or not)
    assert by_path["private-outputs/*"]["CachePolicyId"] == config["DefaultCacheBehavior"]["CachePolicyId"]


def test_cloudfront_may_read_the_private_prefix_it_serves_signed(synthesized, stacks) -> None:
    template = synthesized.template(stacks.storage)
    (policy,) = [
        p
        for p in resources(template, "AWS::S3::BucketPolicy").values()
        if "CloudFrontReadsOutputsOnly" in json.dumps(props(p))
    ]
    (statement,) = [
        st
        for st in props(policy)["PolicyDocument"]["Statement"]
        if st.get("Sid") == "CloudFrontReadsOutputsOnly"
    ]
    text = json.dumps(statement["Resource"])
    assert '/outputs/*"' in text and '/private-outputs/*"' in text and '/recordings/*.ts"' in text


@pytest.mark.parametrize(
    ("uri", "served"),
    [
        ("/outputs/v1/master.m3u8", True),
        ("/outputs/v1/720p/a1/seg_00001.ts", True),
        ("/outputs/exports/s1/e1.mp4", True),
        ("/recordings/s1/x/w/720p/00001.ts", True),
        # A private video's media, however the path is spelt, is refused before the origin
        ("/private-outputs/v1/master.m3u8", False),
        ("/private%2Doutputs/v1/master.m3u8", False),
        ("/%70rivate-outputs/v1/master.m3u8", False),
        ("/outputs/../private-outputs/v1/master.m3u8", False),
        ("/outputs/%2e%2e/private-outputs/v1/master.m3u8", False),
        ("/outputs%2F..%2Fprivate-outputs/v1/master.m3u8", False),
        ("/outputs/v1\\..\\..\\private-outputs/v1/x.ts", False),
        ("/%6Futputs/v1/master.m3u8", False),  # S3 would read it, but nothing spells it so
        ("/uploads/v1", False),
        ("/outputs/%E0%A4%A", False),  # not decodable
        ("/", False),
    ],
)
def test_the_public_paths_function_serves_public_media_only(synthesized, stacks, uri, served) -> None:
    template = synthesized.template(stacks.storage)
    (code,) = [
        props(f)["FunctionCode"]
        for f in resources(template, "AWS::CloudFront::Function").values()
        if "request.uri" in props(f)["FunctionCode"] and "content-type" not in props(f)["FunctionCode"]
    ]
    script = (
        f"{code}\nprocess.stdout.write(JSON.stringify(handler({json.dumps({'request': {'uri': uri}})})));"
    )
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=60, check=True)
    answer = json.loads(out.stdout)
    if served:
        assert answer == {"uri": uri}  # the request itself, unchanged
    else:
        assert answer["statusCode"] == 403 and "uri" not in answer


def test_the_api_reads_the_signing_secret_and_nothing_else_does(synthesized, stacks) -> None:
    storage = synthesized.template(stacks.storage)
    secret_id = _signing_secret(storage)
    assert resources(storage, "AWS::SecretsManager::Secret")[secret_id]["DeletionPolicy"] == "Retain"
    api = synthesized.template(stacks.api)
    (function,) = [
        f
        for f in resources(api, "AWS::Lambda::Function").values()
        if "REELAY_PLAYBACK_SIGNING_SECRET_ARN" in props(f).get("Environment", {}).get("Variables", {})
    ]
    env = props(function)["Environment"]["Variables"]
    assert set(env) >= {"REELAY_PLAYBACK_SIGNED_BASE_URL", "REELAY_PLAYBACK_KEY_PAIR_ID"}
    assert json.dumps(env["REELAY_PLAYBACK_SIGNED_BASE_URL"]).endswith('/private-outputs"]]}')
    assert env["REELAY_PLAYBACK_URL_EXPIRES_SECONDS"] == str(ReelayConfig().playback_url_expires_seconds)
    # The API's role may read the secret (GetSecretValue on it, imported from the storage stack)
    reads = []
    for stack in stacks.all():
        for policy in resources(synthesized.template(stack), "AWS::IAM::Policy").values():
            for statement in props(policy)["PolicyDocument"]["Statement"]:
                if "secretsmanager:GetSecretValue" in json.dumps(
                    statement["Action"]
                ) and secret_id in json.dumps(statement["Resource"]):
                    reads.append((stack.stack_name, props(policy)["Roles"]))
    # The API, and the deploy-time key maker that keeps the key there
    maker = (stacks.storage.stack_name, [{"Ref": _maker_role(storage)}])
    assert len(reads) == 2 and maker in reads, reads
    reads.remove(maker)
    assert reads[0][0] == stacks.api.stack_name, reads


def test_a_missing_or_malformed_public_key_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing; run python -m infra\.playback_keys"):
        _ = ReelayConfig(playback_public_key_path=str(tmp_path / "none.pem")).playback_public_key
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(ConfigError, match="not a PEM public key"):
        _ = ReelayConfig(playback_public_key_path=str(bad)).playback_public_key


def test_playback_keys_makes_a_pair_whose_halves_match(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    public, private = tmp_path / "pub.pem", tmp_path / "priv.pem"
    make_pair(public, private)
    assert private.stat().st_mode & 0o777 == 0o600
    key = serialization.load_pem_private_key(private.read_bytes(), password=None)
    signature = key.sign(b"policy", padding.PKCS1v15(), hashes.SHA1())  # type: ignore[union-attr]
    serialization.load_pem_public_key(public.read_bytes()).verify(  # type: ignore[union-attr]
        signature, b"policy", padding.PKCS1v15(), hashes.SHA1()
    )
    assert (ReelayConfig(playback_public_key_path=str(public)).playback_public_key or "").startswith(
        "-----BEGIN"
    )
    # and it never overwrites a private key already there
    with pytest.raises(FileExistsError):
        make_pair(public, private)
