"""The REST API, built from the one route table (reelay.api.routes.ROUTES)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra.config import ReelayConfig
from infra.constants import (
    API_HANDLER,
    GATEWAY_ERROR_CODES,
    OUTPUT_PREFIX,
    PRIVATE_OUTPUT_PREFIX,
    UPLOAD_PREFIX,
    recording_export_state_machine_name,
    recording_state_machine_name,
)
from infra.constructs.function import ReelayFunction
from infra.constructs.waf import AUTH_PATH, rate_rule, web_acl
from infra.environment import PlatformRefs
from infra.nag import acknowledge
from reelay.api.routes import ROUTES, Route, auth_routes
from reelay.recording.layout import EXPORT_STATE_PREFIX

_PATH_PARAM = re.compile(r"\{([A-Za-z0-9_]+)\}")


def gateway_error_template(code: str) -> str:
    # $context.error.messageString is already a quoted JSON string.
    return '{"error": "' + code + '", "message": $context.error.messageString}'


def path_parameters(path: str) -> list[str]:
    return _PATH_PARAM.findall(path)


class RestApi(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, refs: PlatformRefs, routes: Sequence[Route] = ROUTES
    ) -> None:
        super().__init__(scope, construct_id)
        config = refs.config
        # The keys that seal camera passwords and SRT passphrases (reelay.relay.secrets): 64 random
        # letters and digits, one key. Retained: losing it loses every stored source secret.
        self.stream_secret = secretsmanager.Secret(
            self,
            "StreamSecretKeys",
            description="Reelay: keys sealing live relay source secrets (comma-separated, first seals)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                exclude_punctuation=True, include_space=False, password_length=64
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.stream_secret,
            "AwsSolutions-SMG4",
            "Not rotated automatically: a new key must be prepended by hand while the old one still "
            "opens what it sealed (reelay.relay.secrets); an automatic rotation would orphan them.",
        )
        self.handler = ReelayFunction(
            self,
            "Handler",
            handler=API_HANDLER,
            service="api",
            description="The Reelay HTTP API (Powertools APIGatewayRestResolver)",
            environment=self._environment(refs) | {"REELAY_STREAM_SECRET_ARN": self.stream_secret.secret_arn},
            vpc=refs.vpc,
            security_groups=[refs.db_clients],
            log_retention=config.log_retention,
            timeout=Duration.seconds(29),
            memory_size=1024,
            # Bounds MySQL connections; throttling sits in front anyway.
            reserved_concurrency=config.reserved(50),
        )
        self._grant(refs)
        access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=config.log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"reelay-{config.stage}",
            description="Reelay: video upload, catalogue and playback",
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.DESTROY,
            endpoint_types=[apigw.EndpointType.REGIONAL],
            deploy_options=apigw.StageOptions(
                stage_name=config.stage,
                tracing_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                metrics_enabled=True,
                throttling_rate_limit=config.api_throttle_rate,
                throttling_burst_limit=config.api_throttle_burst,
                method_options={
                    f"{route.path}/{route.method}": apigw.MethodDeploymentOptions(
                        throttling_rate_limit=config.api_auth_throttle_rate,
                        throttling_burst_limit=config.api_auth_throttle_burst,
                    )
                    for route in auth_routes(tuple(routes))
                },
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
            ),
            default_cors_preflight_options=apigw.CorsOptions(
                allow_origins=list(config.cors_allowed_origins),
                allow_methods=apigw.Cors.ALL_METHODS,
                allow_headers=["Content-Type", "Authorization", "X-Amz-Date", "X-Api-Key"],
                max_age=Duration.hours(1),
            ),
        )
        self.authorizer = apigw.CognitoUserPoolsAuthorizer(
            self, "Authorizer", cognito_user_pools=[refs.user_pool], results_cache_ttl=Duration.minutes(5)
        )
        self.validator = self.api.add_request_validator(
            "Validator",
            request_validator_name="body-and-parameters",
            validate_request_body=True,
            validate_request_parameters=True,
        )
        integration = apigw.LambdaIntegration(self.handler.function, proxy=True)
        self.methods: dict[tuple[str, str], apigw.Method] = {}
        for route in routes:
            self.methods[(route.method, route.path)] = self._add_route(route, integration)
        self._gateway_responses(config.cors_allowed_origins)
        self.web_acl = self._waf(config) if config.waf_enabled else None
        self._acknowledge(waf=self.web_acl is not None)

    def _add_route(self, route: Route, integration: apigw.LambdaIntegration) -> apigw.Method:
        resource = self.api.root.resource_for_path(route.path)
        params = {f"method.request.path.{name}": True for name in path_parameters(route.path)}
        options: dict[str, object] = {
            "request_parameters": params or None,
            "request_validator": self.validator if params else None,
        }
        if route.auth:
            options["authorizer"] = self.authorizer
            options["authorization_type"] = apigw.AuthorizationType.COGNITO
        else:
            options["authorization_type"] = apigw.AuthorizationType.NONE
        return resource.add_method(route.method, integration, **options)  # type: ignore[arg-type]

    def _gateway_responses(self, origins: Sequence[str]) -> None:
        headers = {"Access-Control-Allow-Origin": f"'{origins[0] if len(origins) == 1 else '*'}'"}
        for name, code in GATEWAY_ERROR_CODES.items():
            self.api.add_gateway_response(
                f"Response{name.title().replace('_', '')}",
                type=apigw.ResponseType.of(name),
                response_headers=headers,
                templates={"application/json": gateway_error_template(code)},
            )

    @staticmethod
    def _state_machine_arn(scope: Construct, name: str) -> str:
        """A recording state machine (a later stack), by its fixed name: POST …/finalize starts the
        finalize workflow, POST …/exports the export workflow."""
        return Stack.of(scope).format_arn(
            service="states",
            resource="stateMachine",
            resource_name=name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    @staticmethod
    def _environment(refs: PlatformRefs) -> dict[str, str]:
        env = refs.environment()
        if refs.cdn_distribution_id:
            # Only the API deletes videos, so only it invalidates the playback cache.
            env["REELAY_CDN_DISTRIBUTION_ID"] = refs.cdn_distribution_id
        if (
            refs.playback_signing_secret is not None
            and refs.playback_key_pair_id
            and refs.signed_playback_base_url
        ):
            # The API signs private playback (owner's view) with the key in this secret.
            env["REELAY_PLAYBACK_SIGNED_BASE_URL"] = refs.signed_playback_base_url
            env["REELAY_PLAYBACK_KEY_PAIR_ID"] = refs.playback_key_pair_id
            env["REELAY_PLAYBACK_SIGNING_SECRET_ARN"] = refs.playback_signing_secret.secret_arn
            env["REELAY_PLAYBACK_URL_EXPIRES_SECONDS"] = str(refs.config.playback_url_expires_seconds)
        return env

    def _grant(self, refs: PlatformRefs) -> None:
        fn = self.handler.function
        # Presigned (multipart) uploads are signed with this role: it must hold the same rights.
        # Nothing here reads an upload (tests/infra/test_grants_match_code.py keeps it so).
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                resources=[refs.objects_arn(UPLOAD_PREFIX)],
            )
        )
        refs.acknowledge_prefix_grant(
            fn, UPLOAD_PREFIX, "Presigns uploads under uploads/, one key per video id chosen by the API."
        )
        # Deleting a video removes its renditions; a visibility change moves them between the public
        # and private prefixes (CopyObject is a read of the source and a write of the copy).
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                resources=[refs.objects_arn(OUTPUT_PREFIX), refs.objects_arn(PRIVATE_OUTPUT_PREFIX)],
            )
        )
        for prefix in (OUTPUT_PREFIX, PRIVATE_OUTPUT_PREFIX):
            refs.acknowledge_prefix_grant(
                fn,
                prefix,
                f"Deletes a deleted video's renditions under {prefix}<videoId>/, and moves them between the"
                " public and private prefixes when its visibility changes (any key of the video).",
            )
        fn.add_to_role_policy(
            refs.list_media(
                UPLOAD_PREFIX,
                OUTPUT_PREFIX,
                PRIVATE_OUTPUT_PREFIX,
                "recordings/_manifests/",
                EXPORT_STATE_PREFIX,
            )
        )
        # The recordings routes: a live playlist reads a session's chunk manifests; an export's state
        # is written (running) when it starts and read by GET …/exports/{exportId}.
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[
                    refs.objects_arn("recordings/_manifests/"),
                    refs.objects_arn(EXPORT_STATE_PREFIX),
                ],
            )
        )
        fn.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[refs.objects_arn(EXPORT_STATE_PREFIX)])
        )
        for prefix in ("recordings/_manifests/", EXPORT_STATE_PREFIX):
            refs.acknowledge_prefix_grant(
                fn,
                prefix,
                "Reads a recording session's manifests and writes/reads export states (keys per session).",
            )
        refs.db_secret.grant_read(fn)
        self.stream_secret.grant_read(fn)
        # Starting or stopping a stream publishes its events from the outbox right away.
        refs.events_topic.grant_publish(fn)
        acknowledge(
            fn,
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "Publishing stream events to the KMS-encrypted events topic needs GenerateDataKey* on its key.",
        )
        if refs.playback_signing_secret is not None:
            refs.playback_signing_secret.grant_read(fn)
        # Finalize by hand starts the recording workflow, an MP4 export the export workflow
        # (idempotent: executions are named after the session and mode, or the export id).
        workflow = self._state_machine_arn(self, recording_state_machine_name(refs.config.stage))
        exports = self._state_machine_arn(self, recording_export_state_machine_name(refs.config.stage))
        fn.add_environment("REELAY_RECORDING_STATE_MACHINE_ARN", workflow)
        fn.add_environment("REELAY_RECORDING_EXPORT_STATE_MACHINE_ARN", exports)
        fn.add_to_role_policy(
            iam.PolicyStatement(actions=["states:StartExecution"], resources=[workflow, exports])
        )
        invalidate = refs.invalidate_playback(self)
        if invalidate is not None:
            # A deleted video's segments are cached for a year: the API drops them from the CDN.
            fn.add_to_role_policy(invalidate)

    def _waf(self, config: ReelayConfig) -> wafv2.CfnWebACL:
        """A regional web ACL on the stage: per client IP, a limit on every route and a tighter one on
        the unauthenticated /auth/* routes (the method throttles there are per stage, for everyone)."""
        acl = web_acl(
            self,
            "WebAcl",
            name=f"reelay-{config.stage}-api",
            waf_scope="REGIONAL",
            rules=[
                rate_rule("AuthRatePerIp", 0, config.waf_auth_rate_limit, path_contains=AUTH_PATH),
                rate_rule("ApiRatePerIp", 1, config.waf_api_rate_limit),
            ],
        )
        wafv2.CfnWebACLAssociation(
            self,
            "WebAclAssociation",
            resource_arn=self.api.deployment_stage.stage_arn,
            web_acl_arn=acl.attr_arn,
        )
        return acl

    def _acknowledge(self, *, waf: bool) -> None:
        public = sorted({f"{r.method} {r.path}" for r in ROUTES if not r.auth})
        acknowledge(
            self.api,
            "AwsSolutions-APIG4",
            "Only sign-up/login, the public catalogue and CORS preflight are open: "
            + ", ".join(public)[:300],
        )
        acknowledge(
            self.api,
            "AwsSolutions-COG4",
            "Public routes (sign-up, login, public catalogue, CORS preflight) take no Cognito token.",
        )
        if not waf:
            acknowledge(
                self.api,
                "AwsSolutions-APIG3",
                "WAF turned off by config (waf_enabled false); the stage and /auth/* throttles still apply.",
            )
        acknowledge(
            self.api,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "The account-level API Gateway logging role needs exactly this AWS-managed policy.",
        )
