"""Storage and auth stacks: private media bucket, CloudFront playback, Cognito sign-up."""

from __future__ import annotations

import json
import subprocess

import pytest
from aws_cdk.assertions import Match

from infra.constants import HLS_CONTENT_TYPES, MODERATORS_GROUP, OPERATORS_GROUP
from reelay.settings import Settings
from reelay.videos import UPLOAD_FAILED, UPLOAD_STATE_TAG
from tests.infra.conftest import props


def _media_bucket(template):
    buckets = template.find_resources(
        "AWS::S3::Bucket", {"Properties": {"CorsConfiguration": Match.any_value()}}
    )
    assert len(buckets) == 1
    logical_id, bucket = next(iter(buckets.items()))
    return logical_id, props(bucket)


def test_media_bucket_is_private_encrypted_and_logged(synthesized, stacks):
    # Given the storage stack
    template = synthesized.template(stacks.storage)
    _, bucket = _media_bucket(template)
    # Then the media bucket blocks public access, encrypts with S3 keys and logs access
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ] == {"SSEAlgorithm": "AES256"}
    assert "LoggingConfiguration" in bucket
    # And abandoned multipart uploads are aborted after a day
    rules = bucket["LifecycleConfiguration"]["Rules"]
    assert {
        "Id": "AbandonedMultipartUploads",
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        "Status": "Enabled",
    } in rules
    # And the upload a failed video keeps expires, by the tag its failure paths give it (the
    # tag is the one reelay.videos.retire_upload writes)
    assert {
        "Id": "FailedVideoUploads",
        "Prefix": "uploads/",
        "TagFilters": [{"Key": UPLOAD_STATE_TAG, "Value": UPLOAD_FAILED}],
        "ExpirationInDays": 7,
        "Status": "Enabled",
    } in rules
    assert (UPLOAD_STATE_TAG, UPLOAD_FAILED) == ("reelay-upload", "failed")
    # And abandoned recording manifests expire
    assert {
        "Id": "AbandonedRecordingManifests",
        "Prefix": "recordings/_manifests/",
        "ExpirationInDays": 30,
        "Status": "Enabled",
    } in rules
    # And recording MP4 exports and their states expire after a week
    expiring = {r.get("Prefix"): r.get("ExpirationInDays") for r in rules}
    assert expiring["outputs/exports/"] == 7 and expiring["recording-exports/"] == 7
    assert expiring["private-outputs/exports/"] == 7  # a private recording's exports


def test_media_bucket_cors_lets_browsers_put_parts_and_read_etags(synthesized, stacks):
    # Given the media bucket's CORS rules
    _, bucket = _media_bucket(synthesized.template(stacks.storage))
    (rule,) = bucket["CorsConfiguration"]["CorsRules"]
    # Then a browser may PUT and read back each part's ETag
    assert "PUT" in rule["AllowedMethods"]
    assert rule["ExposedHeaders"] == ["ETag"]


def test_every_bucket_denies_requests_without_tls(synthesized, stacks):
    # Given the storage stack's bucket policies
    template = synthesized.template(stacks.storage)
    policies = template.find_resources("AWS::S3::BucketPolicy")
    assert len(policies) == 2  # media + access logs
    for policy in policies.values():
        statements = props(policy)["PolicyDocument"]["Statement"]
        # Then each has a Deny when aws:SecureTransport is false
        assert any(
            s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )


def test_cloudfront_reads_only_the_output_prefix_through_oac(synthesized, stacks):
    # Given the storage stack
    template = synthesized.template(stacks.storage)
    media_id, _ = _media_bucket(template)
    template.resource_count_is("AWS::CloudFront::OriginAccessControl", 1)
    template.has_resource_properties(
        "AWS::CloudFront::OriginAccessControl",
        {
            "OriginAccessControlConfig": Match.object_like(
                {"OriginAccessControlOriginType": "s3", "SigningBehavior": "always"}
            )
        },
    )
    # When we collect what the CloudFront service principal is allowed
    grants = [
        s
        for policy in template.find_resources("AWS::S3::BucketPolicy").values()
        for s in props(policy)["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow" and s.get("Principal") == {"Service": "cloudfront.amazonaws.com"}
    ]
    # Then it is one GetObject on outputs/* and private-outputs/* (served signed only) and recording
    # segments of the media bucket, for this distribution only
    assert len(grants) == 1
    (grant,) = grants
    assert grant["Action"] == "s3:GetObject"
    assert grant["Resource"] == [
        {"Fn::Join": ["", [{"Fn::GetAtt": [media_id, "Arn"]}, "/outputs/*"]]},
        {"Fn::Join": ["", [{"Fn::GetAtt": [media_id, "Arn"]}, "/private-outputs/*"]]},
        {"Fn::Join": ["", [{"Fn::GetAtt": [media_id, "Arn"]}, "/recordings/*.ts"]]},
    ]
    assert "distribution/" in json.dumps(grant["Condition"]["StringEquals"]["AWS:SourceArn"])


def test_distribution_is_https_only_logged_with_cors_and_hls_mime_types(synthesized, stacks):
    # Given the playback distribution
    template = synthesized.template(stacks.storage)
    (distribution,) = template.find_resources("AWS::CloudFront::Distribution").values()
    config = props(distribution)["DistributionConfig"]
    behaviors = [config["DefaultCacheBehavior"], *config["CacheBehaviors"]]
    # Then every behaviour is HTTPS only, has the CORS headers policy and the MIME function
    for behavior in behaviors:
        assert behavior["ViewerProtocolPolicy"] == "https-only"
        assert "ResponseHeadersPolicyId" in behavior
        assert behavior["FunctionAssociations"][0]["EventType"] == "viewer-response"
    # And playlists are cached briefly (they grow while a video is still transcoding), on the signed
    # path of private videos (matched first) as on the public one
    assert [b["PathPattern"] for b in config["CacheBehaviors"]] == [
        "private-outputs/*.m3u8",
        "private-outputs/*",
        "*.m3u8",
    ]
    # And access is logged
    assert config["Logging"]["Prefix"] == "cloudfront/playback/"
    template.has_resource_properties(
        "AWS::CloudFront::ResponseHeadersPolicy",
        {
            "ResponseHeadersPolicyConfig": Match.object_like(
                {
                    "CorsConfig": Match.object_like(
                        {"AccessControlAllowMethods": {"Items": ["GET", "HEAD", "OPTIONS"]}}
                    )
                }
            )
        },
    )
    code = _mime_function(template)
    for extension, mime in HLS_CONTENT_TYPES.items():
        assert f"'{extension}': '{mime}'" in code


def test_playback_base_url_is_the_distribution_outputs_path(stacks):
    # Given the storage construct
    url = stacks.storage.media.playback_base_url
    # Then it is https://<distribution domain>/outputs (a token until deploy)
    assert url.startswith("https://") and url.endswith("/outputs")


def test_user_pool_signs_up_by_email_with_a_strong_password_policy(synthesized, stacks):
    # Given the auth stack
    template = synthesized.template(stacks.auth)
    # Then sign-in is by email, self sign-up is on and emails are verified with a code
    template.has_resource_properties(
        "AWS::Cognito::UserPool",
        {
            "UsernameAttributes": ["email"],
            "AutoVerifiedAttributes": ["email"],
            "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": False},
            "VerificationMessageTemplate": Match.object_like({"DefaultEmailOption": "CONFIRM_WITH_CODE"}),
            "Policies": {
                "PasswordPolicy": {
                    "MinimumLength": 12,
                    "RequireLowercase": True,
                    "RequireUppercase": True,
                    "RequireNumbers": True,
                    "RequireSymbols": True,
                    "TemporaryPasswordValidityDays": 3,
                }
            },
        },
    )


def test_app_client_has_password_auth_refresh_tokens_and_no_secret(synthesized, stacks):
    # Given the auth stack
    template = synthesized.template(stacks.auth)
    (client,) = template.find_resources("AWS::Cognito::UserPoolClient").values()
    client_props = props(client)
    # Then the API can log in with USER_PASSWORD_AUTH and refresh, without a client secret
    assert {"ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"} <= set(client_props["ExplicitAuthFlows"])
    assert client_props["GenerateSecret"] is False
    assert client_props["PreventUserExistenceErrors"] == "ENABLED"


def test_the_pool_has_the_operators_group_the_streams_api_checks(synthesized, stacks):
    # Given the auth stack
    template = synthesized.template(stacks.auth)
    # Then it has the groups the API reads from cognito:groups, in the users' pool: operators (streams)
    # and moderators (unpublish and delete any video)
    groups = {
        props(g)["GroupName"]: g for g in template.find_resources("AWS::Cognito::UserPoolGroup").values()
    }
    (pool_id,) = template.find_resources("AWS::Cognito::UserPool")
    assert set(groups) == {OPERATORS_GROUP, MODERATORS_GROUP}
    assert Settings().operators_group == OPERATORS_GROUP and Settings().moderators_group == MODERATORS_GROUP
    assert all(props(g)["UserPoolId"] == {"Ref": pool_id} for g in groups.values())


def _mime_function(template) -> str:
    (code,) = [
        props(f)["FunctionCode"]
        for f in template.find_resources("AWS::CloudFront::Function").values()
        if "content-type" in props(f)["FunctionCode"]
    ]
    return code


def _run_cloudfront_function(code: str, uri: str, status: int, headers: dict) -> dict:
    event = {"request": {"uri": uri}, "response": {"statusCode": status, "headers": headers}}
    script = f"{code}\nprocess.stdout.write(JSON.stringify(handler({json.dumps(event)})));"
    result = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("uri", "status", "expected"),
    [
        ("/outputs/v1/master.m3u8", 200, "application/vnd.apple.mpegurl"),
        ("/outputs/v1/720p/index.M3U8", 200, "application/vnd.apple.mpegurl"),
        ("/outputs/v1/720p/00001.ts", 200, "video/mp2t"),
        ("/outputs/v1/720p/00001.ts", 206, "video/mp2t"),
        ("/outputs/v1/poster.jpg", 200, "image/jpeg"),
        ("/outputs/v1/notes.txt", 200, "binary/octet-stream"),  # unknown extension: left alone
        ("/outputs/v1/missing.m3u8", 403, "application/xml"),  # errors keep S3's type
        ("/outputs/v1/noextension", 200, "binary/octet-stream"),
    ],
)
def test_mime_function_sets_hls_types_by_extension(synthesized, stacks, uri, status, expected):
    # Given the CloudFront function in the template, run by Node as CloudFront would
    template = synthesized.template(stacks.storage)
    code = _mime_function(template)
    s3_type = "application/xml" if status >= 400 else "binary/octet-stream"
    # When a response for uri passes through it
    response = _run_cloudfront_function(code, uri, status, {"content-type": {"value": s3_type}})
    # Then the Content-Type is the HLS one for known media, untouched otherwise
    assert response["headers"]["content-type"]["value"] == expected
    assert response["statusCode"] == status
