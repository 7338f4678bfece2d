"""The web front end: its production build in a private bucket, served by CloudFront.

The bucket is read only through origin access control. CloudFront adds the security headers
(CSP naming the API, the media CDN and the upload bucket; HSTS; nosniff; no framing) and answers
the client routes (/my, /watch/<id>...) with index.html. The build (web/dist) is deployed with
``BucketDeployment`` next to a generated ``config.json`` holding the API URL and the Cognito ids,
the same keys the local gateway serves (local/web.py ``web_config``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from infra.constants import (
    WEB_ASSETS_CACHE_CONTROL,
    WEB_ASSETS_DIR,
    WEB_CONFIG_FILE,
    WEB_PAGES_CACHE_CONTROL,
)
from infra.nag import acknowledge
from infra.web_policy import PERMISSIONS_POLICY, content_security_policy


class WebBuildMissing(FileNotFoundError):
    """web/dist is not there: the front end has not been built on this machine."""


@dataclass(frozen=True)
class WebOrigins:
    """Where the page may connect to, fetch media from and send uploads to (for the CSP)."""

    api: str  # e.g. https://abc.execute-api.eu-west-1.amazonaws.com
    media: str  # the playback CDN, e.g. https://d123.cloudfront.net
    uploads: tuple[str, ...]  # the media bucket's S3 endpoints for presigned PUTs

    def content_security_policy(self) -> str:
        return content_security_policy(api=self.api, media=self.media, uploads=self.uploads)


def check_build(dist: Path) -> Path:
    if not (dist / "index.html").is_file() or not (dist / WEB_ASSETS_DIR).is_dir():
        raise WebBuildMissing(
            f"{dist} holds no web build: run `make bootstrap` (it builds the front end), "
            "or `npm ci --prefix web && npm run --prefix web build`"
        )
    return dist


class WebSite(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dist: Path,
        config: dict[str, str],
        allowed: WebOrigins,
        web_acl_arn: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._web_acl_arn = web_acl_arn
        dist = check_build(dist)
        self.logs_bucket = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,  # CloudFront logs use ACLs
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
            "Site",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            server_access_logs_bucket=self.logs_bucket,
            server_access_logs_prefix="s3/site/",
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.headers = self._headers(allowed)
        self.distribution = self._distribution()
        self._deploy(dist, config)
        self.url = f"https://{self.distribution.distribution_domain_name}"

    def _headers(self, allowed: WebOrigins) -> cloudfront.ResponseHeadersPolicy:
        return cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment="Reelay web: CSP, HSTS, nosniff, no framing",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=allowed.content_security_policy(), override=True
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.days(730), include_subdomains=True, override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.STRICT_ORIGIN_WHEN_CROSS_ORIGIN,
                    override=True,
                ),
            ),
            custom_headers_behavior=cloudfront.ResponseCustomHeadersBehavior(
                custom_headers=[
                    cloudfront.ResponseCustomHeader(
                        header="Permissions-Policy",
                        value=PERMISSIONS_POLICY,
                        override=True,
                    ),
                    cloudfront.ResponseCustomHeader(
                        header="Cross-Origin-Opener-Policy", value="same-origin", override=True
                    ),
                ]
            ),
        )

    def _distribution(self) -> cloudfront.Distribution:
        # A missing object is a 403 through OAC (no ListBucket): both errors are a client route,
        # answered with index.html so /watch/<id> and /my load the app, which routes itself.
        spa = [
            cloudfront.ErrorResponse(
                http_status=status,
                response_http_status=200,
                response_page_path="/index.html",
                ttl=Duration.seconds(0),
            )
            for status in (403, 404)
        ]
        distribution = cloudfront.Distribution(
            self,
            "Cdn",
            comment="Reelay web front end",
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=self.headers,
                compress=True,
            ),
            error_responses=spa,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            enable_logging=True,
            log_bucket=self.logs_bucket,
            log_file_prefix="cloudfront/web/",
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            web_acl_id=self._web_acl_arn,  # the edge stack's rate-based rules (config waf_enabled)
        )
        acknowledge(
            distribution, "AwsSolutions-CFR1", "The web front end is for a worldwide audience; no geo limits."
        )
        if self._web_acl_arn is None:
            acknowledge(
                distribution,
                "AwsSolutions-CFR2",
                "WAF turned off by config (waf_enabled false): static, read-only files of the front end.",
            )
        acknowledge(
            distribution,
            "AwsSolutions-CFR4",
            "The default *.cloudfront.net certificate cannot pin TLS 1.2; a custom domain would.",
        )
        return distribution

    def _deploy(self, dist: Path, config: dict[str, str]) -> None:
        # Hashed assets first and never pruned, so a browser holding the previous index.html
        # still finds its files; then the pages (index.html, config.json), which are never cached.
        assets = s3deploy.BucketDeployment(
            self,
            "Assets",
            sources=[s3deploy.Source.asset(str(dist / WEB_ASSETS_DIR))],
            destination_bucket=self.bucket,
            destination_key_prefix=f"{WEB_ASSETS_DIR}/",
            cache_control=[s3deploy.CacheControl.from_string(WEB_ASSETS_CACHE_CONTROL)],
            prune=False,
            memory_limit=256,
        )
        pages = s3deploy.BucketDeployment(
            self,
            "Pages",
            sources=[
                s3deploy.Source.asset(str(dist), exclude=[f"{WEB_ASSETS_DIR}/*"]),
                s3deploy.Source.json_data(WEB_CONFIG_FILE, config),
            ],
            destination_bucket=self.bucket,
            cache_control=[s3deploy.CacheControl.from_string(WEB_PAGES_CACHE_CONTROL)],
            prune=False,
            memory_limit=256,
        )
        pages.node.add_dependency(assets)
