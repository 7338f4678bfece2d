"""Media storage: the private bucket for uploads and HLS output, and CloudFront for playback.

Public and unlisted videos play from ``/outputs/...``: unsigned and cached. Private and unpublished
videos' media lives under its own prefix, ``private-outputs/`` (reelay.media_location moves a video's
objects when its visibility changes), and plays from ``/private-outputs/...``, a path that serves only
requests signed with the playback key group's key (custom-policy signed URLs on the video's prefix,
reelay.adapters.cloudfront_signing). The viewer URL is the object key, so no function rewrites it.

The public behaviours (the default and ``*.m3u8``) serve ``/outputs/`` and ``/recordings/`` only: a
viewer-request function refuses any other path, however it is spelt (``/private%2Doutputs/`` decodes to
the private prefix at S3, though it matches no signed behaviour). The private key lives in the
PlaybackSigningKey secret. By default a deploy-time custom resource (lambdas.playback_keys) makes the
key pair in that secret and hands CloudFront its public half, so private playback works from the
first deploy; with a public key given (config playback_public_key_path), that key is used instead
and its private half is put into the secret by hand (python -m infra.playback_keys).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Annotations, CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.constants import (
    HLS_CONTENT_TYPES,
    OUTPUT_PREFIX,
    PLAYBACK_KEYS_HANDLER,
    PLAYBACK_PATH,
    PRIVATE_OUTPUT_PREFIX,
    SIGNED_PLAYBACK_PATH,
    UPLOAD_PREFIX,
)
from infra.constructs.function import ReelayFunction
from infra.nag import acknowledge, acknowledge_provider
from reelay.videos import UPLOAD_FAILED, UPLOAD_STATE_TAG

RECORDING_PREFIX = "recordings/"  # reelay.recording.layout.ROOT
RECORDING_MANIFEST_PREFIX = "recordings/_manifests/"  # reelay.recording.layout.MANIFEST_ROOT
RECORDING_MANIFEST_DAYS = 30
# MP4 exports of recordings (reelay.recording.service): downloads, not the archive; kept a week. A
# private recording's go under the private output prefix (reelay.recording.layout.export_media_prefix).
RECORDING_EXPORT_PREFIXES = ("outputs/exports/", "recording-exports/", f"{PRIVATE_OUTPUT_PREFIX}exports/")
RECORDING_EXPORT_DAYS = 7
FAILED_UPLOAD_DAYS = 7  # a failed video's upload is kept this long (to look into the failure), then expires

# Sets Content-Type from the extension, so players get HLS MIME types even for objects
# uploaded without metadata.
_MIME_FUNCTION = """
var TYPES = %s;
function handler(event) {
  var response = event.response;
  var uri = event.request.uri;
  var dot = uri.lastIndexOf('.');
  if (dot !== -1 && response.statusCode >= 200 && response.statusCode < 300) {
    var type = TYPES[uri.substring(dot + 1).toLowerCase()];
    if (type) { response.headers['content-type'] = { value: type }; }
  }
  return response;
}
"""


# What the public (unsigned) behaviours may serve: public videos' outputs and recordings' segments.
# The check is on the decoded path too, since S3 decodes it into the key; dot segments are refused
# (no key Reelay writes has one). Anything else, the private prefix above all, answers 403.
PUBLIC_PATHS = ("/" + OUTPUT_PREFIX, "/" + RECORDING_PREFIX)
_PUBLIC_PATHS_FUNCTION = """
var PUBLIC = %s;
function handler(event) {
  var request = event.request;
  var raw = request.uri;
  var decoded;
  try { decoded = decodeURIComponent(raw); } catch (e) { decoded = ''; }
  if (decoded.indexOf('/.') === -1 && decoded.indexOf('\\\\') === -1) {
    for (var i = 0; i < PUBLIC.length; i++) {
      if (raw.indexOf(PUBLIC[i]) === 0 && decoded.indexOf(PUBLIC[i]) === 0) { return request; }
    }
  }
  return { statusCode: 403, statusDescription: 'Forbidden' };
}
"""


def _js_object(mapping: dict[str, str]) -> str:
    return "{" + ", ".join(f"'{k}': '{v}'" for k, v in sorted(mapping.items())) + "}"


class MediaStorage(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket_name: str,
        cors_origins: Sequence[str],
        playback_public_key: str | None,
        log_retention: logs.RetentionDays,
        web_acl_arn: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._web_acl_arn = web_acl_arn
        # Private playback: CloudFront verifies with the public key, the API signs with the private one.
        self.playback_signing_secret = secretsmanager.Secret(
            self,
            "PlaybackSigningKey",
            description=(
                "Reelay: PEM private key signing private playback (made at deploy time, or put with "
                "python -m infra.playback_keys when bringing your own)"
            ),
            # A placeholder until a key is in: the key maker replaces it; a key brought by hand is put.
            generate_secret_string=secretsmanager.SecretStringGenerator(
                exclude_punctuation=True, include_space=False, password_length=32
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.playback_signing_secret,
            "AwsSolutions-SMG4",
            "An RSA key paired with the CloudFront public key in the stack: rotating it means a new pair "
            "(python -m infra.playback_keys) and a deploy, which Secrets Manager rotation cannot do.",
        )
        self.playback_key_maker: ReelayFunction | None = None
        if playback_public_key is None:
            encoded_key = self._make_playback_key(log_retention)
            # Its own id: CloudFront cannot change a public key's key in place, so a stage moving from
            # a key of its own to the made one gets a new public key rather than a failed update.
            key_id, comment = "GeneratedPlaybackPublicKey", "made at deploy time (lambdas.playback_keys)"
        else:
            encoded_key, key_id = playback_public_key, "PlaybackPublicKey"
            comment = "brought by config playback_public_key_path (python -m infra.playback_keys)"
        self.playback_public_key = cloudfront.PublicKey(
            self,
            key_id,
            encoded_key=encoded_key,
            comment=f"Verifies signed URLs of private videos; {comment}",
        )
        self.playback_key_group = cloudfront.KeyGroup(
            self,
            "PlaybackKeyGroup",
            items=[self.playback_public_key],
            comment="Signers of private playback: the Reelay API",
        )
        self.logs_bucket = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            # CloudFront standard logging writes with ACLs.
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.logs_bucket,
            "AwsSolutions-S1",
            "This is the access-log bucket itself; logging it into itself would loop.",
        )
        self.bucket = s3.Bucket(
            self,
            "Media",
            bucket_name=bucket_name,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            versioned=False,
            server_access_logs_bucket=self.logs_bucket,
            server_access_logs_prefix="s3/media/",
            lifecycle_rules=[
                # Abandoned uploads: a multipart upload never completed leaves billed parts behind.
                s3.LifecycleRule(
                    id="AbandonedMultipartUploads",
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
                # The kept upload of a failed video (the failure paths tag it): it will never play.
                s3.LifecycleRule(
                    id="FailedVideoUploads",
                    prefix=UPLOAD_PREFIX,
                    tag_filters={UPLOAD_STATE_TAG: UPLOAD_FAILED},
                    expiration=Duration.days(FAILED_UPLOAD_DAYS),
                ),
                # Chunk manifests of recordings no workflow finalized (cleanup deletes the others).
                s3.LifecycleRule(
                    id="AbandonedRecordingManifests",
                    prefix=RECORDING_MANIFEST_PREFIX,
                    expiration=Duration.days(RECORDING_MANIFEST_DAYS),
                ),
                *(
                    s3.LifecycleRule(
                        id=f"RecordingExports{n}",
                        prefix=prefix,
                        expiration=Duration.days(RECORDING_EXPORT_DAYS),
                    )
                    for n, prefix in enumerate(RECORDING_EXPORT_PREFIXES)
                ),
            ],
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.PUT, s3.HttpMethods.GET, s3.HttpMethods.HEAD],
                    allowed_origins=list(cors_origins),
                    allowed_headers=["*"],
                    exposed_headers=["ETag"],  # multipart upload needs each part's ETag in the browser
                    max_age=3000,
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self._distribution(cors_origins)

    def _make_playback_key(self, log_retention: logs.RetentionDays) -> str:
        """The deploy-time key maker: keeps (or makes) the private key in the secret; its public half."""
        maker = ReelayFunction(
            self,
            "PlaybackKeys",
            handler=PLAYBACK_KEYS_HANDLER,
            service="playback-keys",
            description="Makes the private playback signing key in its secret at deploy time",
            environment={},
            vpc=None,  # it talks to Secrets Manager only; the storage stack has no VPC
            security_groups=(),
            log_retention=log_retention,
            timeout=Duration.minutes(1),
        )
        self.playback_key_maker = maker
        # Reads the key there and puts one only when there is none: nothing else on the secret.
        maker.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
                resources=[self.playback_signing_secret.secret_arn],
            )
        )
        provider_logs = logs.LogGroup(
            self, "PlaybackKeysProviderLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        provider = cr.Provider(
            self, "PlaybackKeysProvider", on_event_handler=maker.function, log_group=provider_logs
        )
        acknowledge_provider(provider, maker.function, "playback key maker")
        key = CustomResource(
            self,
            "PlaybackSigningKeyPair",
            service_token=provider.service_token,
            resource_type="Custom::ReelayPlaybackKey",
            properties={"SecretArn": self.playback_signing_secret.secret_arn},
        )
        return key.get_att_string("PublicKey")

    def _distribution(self, cors_origins: Sequence[str]) -> None:
        # An imported view of the bucket keeps the origin from granting the whole bucket: the
        # policy below grants CloudFront the output prefix only.
        origin_bucket = s3.Bucket.from_bucket_attributes(
            self,
            "OriginView",
            bucket_arn=self.bucket.bucket_arn,
            bucket_regional_domain_name=self.bucket.bucket_regional_domain_name,
        )
        origin = origins.S3BucketOrigin.with_origin_access_control(
            origin_bucket, origin_access_levels=[cloudfront.AccessLevel.READ]
        )
        cors_headers = cloudfront.ResponseHeadersPolicy(
            self,
            "PlaybackCors",
            comment="hls.js fetches playlists and segments cross-origin",
            cors_behavior=cloudfront.ResponseHeadersCorsBehavior(
                access_control_allow_credentials=False,
                access_control_allow_headers=["*"],
                access_control_allow_methods=["GET", "HEAD", "OPTIONS"],
                access_control_allow_origins=list(cors_origins),
                access_control_expose_headers=["Content-Length", "Content-Range", "ETag"],
                access_control_max_age=Duration.hours(1),
                origin_override=True,
            ),
        )
        mime = cloudfront.Function(
            self,
            "HlsMimeTypes",
            code=cloudfront.FunctionCode.from_inline(_MIME_FUNCTION % _js_object(HLS_CONTENT_TYPES)),
            runtime=cloudfront.FunctionRuntime.JS_2_0,
            comment="Content-Type for HLS playlists and segments by extension",
        )
        mime_association = [
            cloudfront.FunctionAssociation(
                function=mime, event_type=cloudfront.FunctionEventType.VIEWER_RESPONSE
            )
        ]
        public_only = cloudfront.Function(
            self,
            "PublicPathsOnly",
            code=cloudfront.FunctionCode.from_inline(
                _PUBLIC_PATHS_FUNCTION % ("[" + ", ".join(f"'{p}'" for p in PUBLIC_PATHS) + "]")
            ),
            runtime=cloudfront.FunctionRuntime.JS_2_0,
            comment="The unsigned path serves public outputs and recording segments only",
        )
        public_associations = [
            *mime_association,
            cloudfront.FunctionAssociation(
                function=public_only, event_type=cloudfront.FunctionEventType.VIEWER_REQUEST
            ),
        ]
        signed_path = SIGNED_PLAYBACK_PATH.strip("/")
        # Playlists change while a video is still transcoding (progressive publish): cache briefly.
        playlist_cache = cloudfront.CachePolicy(
            self,
            "PlaylistCache",
            default_ttl=Duration.seconds(2),
            min_ttl=Duration.seconds(0),
            max_ttl=Duration.seconds(10),
            enable_accept_encoding_gzip=True,
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Playback",
            comment="Reelay HLS playback (outputs/ unsigned, private-outputs/ signed)",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origin,
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD_OPTIONS,
                cached_methods=cloudfront.CachedMethods.CACHE_GET_HEAD_OPTIONS,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=cors_headers,
                function_associations=public_associations,
            ),
            additional_behaviors={
                # First: the signed path's playlists and segments (CloudFront takes the first match).
                f"{signed_path}/*.m3u8": cloudfront.BehaviorOptions(
                    origin=origin,
                    viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                    allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD_OPTIONS,
                    cached_methods=cloudfront.CachedMethods.CACHE_GET_HEAD_OPTIONS,
                    cache_policy=playlist_cache,
                    response_headers_policy=cors_headers,
                    function_associations=mime_association,
                    trusted_key_groups=[self.playback_key_group],
                ),
                f"{signed_path}/*": cloudfront.BehaviorOptions(
                    origin=origin,
                    viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                    allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD_OPTIONS,
                    cached_methods=cloudfront.CachedMethods.CACHE_GET_HEAD_OPTIONS,
                    # The signature is checked on every request, cached or not; it is not in the key.
                    cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                    response_headers_policy=cors_headers,
                    function_associations=mime_association,
                    trusted_key_groups=[self.playback_key_group],
                ),
                "*.m3u8": cloudfront.BehaviorOptions(
                    origin=origin,
                    viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                    allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD_OPTIONS,
                    cached_methods=cloudfront.CachedMethods.CACHE_GET_HEAD_OPTIONS,
                    cache_policy=playlist_cache,
                    response_headers_policy=cors_headers,
                    function_associations=public_associations,
                ),
            },
            enable_logging=True,
            log_bucket=self.logs_bucket,
            log_file_prefix="cloudfront/playback/",
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            web_acl_id=self._web_acl_arn,  # the edge stack's rate-based rules (config waf_enabled)
        )
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudFrontReadsOutputsOnly",
                principals=[iam.ServicePrincipal("cloudfront.amazonaws.com")],
                actions=["s3:GetObject"],
                # A recording's VOD playlists (outputs/) point at its segments where the recorder
                # wrote them: the segments (*.ts) under recordings/ are readable, manifests are not.
                resources=[
                    self.bucket.arn_for_objects(f"{OUTPUT_PREFIX}*"),
                    self.bucket.arn_for_objects(f"{PRIVATE_OUTPUT_PREFIX}*"),
                    self.bucket.arn_for_objects(f"{RECORDING_PREFIX}*.ts"),
                ],
                conditions={
                    "StringEquals": {
                        "AWS:SourceArn": Stack.of(self).format_arn(
                            service="cloudfront",
                            region="",
                            resource="distribution",
                            resource_name=self.distribution.distribution_id,
                        )
                    }
                },
            )
        )
        Annotations.of(self.distribution).acknowledge_warning(
            "@aws-cdk/aws-cloudfront-origins:updateImportedBucketPolicyOac",
            "The media bucket policy grants CloudFront outputs/*, private-outputs/* and recording segments"
            " only (CloudFrontReadsOutputsOnly).",
        )
        self.playback_base_url = f"https://{self.distribution.distribution_domain_name}{PLAYBACK_PATH}"
        self.signed_playback_base_url = (
            f"https://{self.distribution.distribution_domain_name}{SIGNED_PLAYBACK_PATH}"
        )
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR1",
            "Videos are for a worldwide audience; no country is restricted.",
        )
        if self._web_acl_arn is None:
            acknowledge(
                self.distribution,
                "AwsSolutions-CFR2",
                "WAF turned off by config (waf_enabled false): playback serves static HLS objects only.",
            )
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR4",
            "The default *.cloudfront.net certificate cannot pin TLS 1.2; a custom domain would.",
        )
