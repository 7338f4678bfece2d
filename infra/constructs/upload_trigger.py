"""S3 ObjectCreated under uploads/ -> the upload events Lambda, which records and enqueues the job."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constants import UPLOAD_EVENTS_HANDLER, UPLOAD_PREFIX
from infra.constructs.function import ReelayFunction
from infra.environment import PlatformRefs
from infra.nag import acknowledge


class UploadTrigger(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        refs: PlatformRefs,
        alarm_topic: sns.ITopic | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        config = refs.config
        self.handler = ReelayFunction(
            self,
            "UploadEvents",
            handler=UPLOAD_EVENTS_HANDLER,
            service="upload-events",
            description="Validates an upload, records it in the catalogue and enqueues its transcode job",
            environment=refs.environment(),
            vpc=refs.vpc,
            security_groups=[refs.db_clients],
            log_retention=config.log_retention,
            timeout=Duration.seconds(60),
            reserved_concurrency=config.reserved(20),  # bounds database connections during upload bursts
        )
        fn = self.handler.function
        # Events that still fail after Lambda's async retries are kept, not dropped.
        self.failed_events = sqs.Queue(
            self,
            "FailedEvents",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.failed_events,
            "AwsSolutions-SQS3",
            "This queue is itself the on-failure destination of the upload events function.",
        )
        fn.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.failed_events), retry_attempts=2
        )
        # An upload event that failed every retry is an upload nobody will transcode until someone
        # looks (the stuck-video sweep re-sends queued ones; a rejected or unrecorded one waits here).
        self.failed_events_alarm = cloudwatch.Alarm(
            self,
            "FailedEventsAlarm",
            alarm_description="Upload events failed after Lambda's retries and wait in the failure queue",
            metric=self.failed_events.metric_approximate_number_of_messages_visible(
                statistic="Maximum", period=Duration.minutes(5)
            ),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        if alarm_topic is not None:
            self.failed_events_alarm.add_alarm_action(cw_actions.SnsAction(alarm_topic))
        # Delete: a rejected upload, one onto a failed video and one of an unknown video are removed.
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:DeleteObject"], resources=[refs.objects_arn(UPLOAD_PREFIX)]
            )
        )
        # Without ListBucket, HEAD of a missing key answers 403 instead of 404.
        fn.add_to_role_policy(refs.list_media(UPLOAD_PREFIX))
        refs.transcode_queue.grant_send_messages(fn)
        refs.events_topic.grant_publish(fn)
        refs.db_secret.grant_read(fn)
        # An imported view of the bucket keeps the notification (and its permission) in this stack,
        # so the storage stack does not depend on this one.
        bucket = s3.Bucket.from_bucket_name(self, "MediaBucket", refs.media_bucket.bucket_name)
        bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(fn),
            s3.NotificationKeyFilter(prefix=UPLOAD_PREFIX),
        )
        refs.acknowledge_prefix_grant(
            fn,
            UPLOAD_PREFIX,
            "Reads (HEAD) and deletes rejected uploads under uploads/, whose keys are made per video.",
        )
        acknowledge(
            fn,
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "Publishing to the KMS-encrypted events topic needs GenerateDataKey* on that one key.",
        )
