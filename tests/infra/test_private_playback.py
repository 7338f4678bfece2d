"""Private playback in the templates: the key group CloudFront checks signed URLs against (its public
key is the config's PEM), the Secrets Manager secret holding the private key, the signed path's
behaviours (trusted key group on private-outputs/, the private videos' own prefix), the public path
left unsigned and cached but unable to reach that prefix however it is spelt, and the API function's
environment and read grant on the secret."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from infra.config import ConfigError, ReelayConfig
from infra.playback_keys import make_pair
from tests.infra.conftest import props, resources

ROOT = Path(__file__).resolve().parents[2]


def _distribution_config(synthesized, stacks) -> dict:
    (distribution,) = resources(
        synthesized.template(stacks.storage), "AWS::CloudFront::Distribution"
    ).values()
    return props(distribution)["DistributionConfig"]


def test_the_key_group_holds_the_configured_public_key(synthesized, stacks, config) -> None:
    template = synthesized.template(stacks.storage)
    ((key_id, key),) = resources(template, "AWS::CloudFront::PublicKey").items()
    (group,) = resources(template, "AWS::CloudFront::KeyGroup").values()
    assert props(key)["PublicKeyConfig"]["EncodedKey"] == (ROOT / config.playback_public_key_path).read_text()
    assert props(group)["KeyGroupConfig"]["Items"] == [{"Ref": key_id}]


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
    ((secret_id, secret),) = [
        (k, v)
        for k, v in resources(storage, "AWS::SecretsManager::Secret").items()
        if "private playback" in props(v)["Description"]
    ]
    assert secret["DeletionPolicy"] == "Retain"
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
                    reads.append((stack.stack_name, json.dumps(props(policy)["Roles"])))
    assert len(reads) == 1 and reads[0][0] == stacks.api.stack_name, reads


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
    assert ReelayConfig(playback_public_key_path=str(public)).playback_public_key.startswith("-----BEGIN")
    # and it never overwrites a private key already there
    with pytest.raises(FileExistsError):
        make_pair(public, private)
