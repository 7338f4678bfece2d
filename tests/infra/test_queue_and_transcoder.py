"""Queue and transcoder stacks: redrive, the upload trigger, the Fargate worker, scaling and alarms."""

from __future__ import annotations

import json

import pytest

from infra.constants import TRANSCODER_COMMAND
from infra.constructs.transcoder import backlog_expression, backlog_steps
from tests.infra.conftest import props

REELAY_ENV = {
    "REELAY_MEDIA_STORE_URL",
    "REELAY_PLAYBACK_BASE_URL",
    "REELAY_DB_SECRET_ARN",
    "REELAY_DB_NAME",
    "REELAY_DB_TLS",
    "REELAY_USER_POOL_ID",
    "REELAY_USER_POOL_CLIENT_ID",
    "REELAY_TRANSCODE_QUEUE_URL",
    "REELAY_EVENTS_TOPIC_ARN",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
}


def _statements(template):
    return [
        (logical_id, s)
        for logical_id, policy in template.find_resources("AWS::IAM::Policy").items()
        for s in props(policy)["PolicyDocument"]["Statement"]
    ]


def _actions(statement) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else actions


@pytest.fixture(scope="module")
def queue_template(synthesized, stacks):
    return synthesized.template(stacks.queue)


@pytest.fixture(scope="module")
def worker_template(synthesized, stacks):
    return synthesized.template(stacks.transcoder)


def test_transcode_queue_redrives_to_the_dlq_after_three_receives(queue_template, config):
    # Given the queue stack's queues
    queues = queue_template.find_resources("AWS::SQS::Queue")
    redriven = [props(q) for q in queues.values() if "RedrivePolicy" in props(q)]
    # Then exactly one (the transcode queue) redrives, after max_receive_count = 3 receives
    assert len(redriven) == 1
    (jobs,) = redriven
    assert jobs["RedrivePolicy"]["maxReceiveCount"] == 3 == config.max_receive_count
    # And a message stays hidden longer than a worker's lease
    assert jobs["VisibilityTimeout"] > config.worker_lease_seconds
    # And every queue is encrypted and refuses plain HTTP
    assert all(props(q)["SqsManagedSseEnabled"] is True for q in queues.values())
    for policy in queue_template.find_resources("AWS::SQS::QueuePolicy").values():
        (statement,) = props(policy)["PolicyDocument"]["Statement"]
        assert statement["Effect"] == "Deny"
        assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_uploads_prefix_triggers_the_upload_events_function(queue_template):
    # Given the bucket notification the queue stack manages
    (notification,) = queue_template.find_resources("Custom::S3BucketNotifications").values()
    (config,) = props(notification)["NotificationConfiguration"]["LambdaFunctionConfigurations"]
    # Then ObjectCreated under uploads/ invokes the upload events function
    assert config["Events"] == ["s3:ObjectCreated:*"]
    assert config["Filter"] == {"Key": {"FilterRules": [{"Name": "prefix", "Value": "uploads/"}]}}
    (function_id,) = (
        k
        for k, f in queue_template.find_resources("AWS::Lambda::Function").items()
        if props(f).get("Handler") == "lambdas.upload_events.handler.lambda_handler"
    )
    assert config["LambdaFunctionArn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    queue_template.has_resource_properties(
        "AWS::Lambda::Permission", {"Principal": "s3.amazonaws.com", "Action": "lambda:InvokeFunction"}
    )


def test_topics_are_kms_encrypted_and_tls_only(queue_template):
    # Given the events and alarm topics
    topics = queue_template.find_resources("AWS::SNS::Topic")
    assert len(topics) == 2
    # Then each is encrypted with a rotating customer key and refuses plain HTTP
    assert all("KmsMasterKeyId" in props(t) for t in topics.values())
    assert all(
        props(k)["EnableKeyRotation"] is True for k in queue_template.find_resources("AWS::KMS::Key").values()
    )
    for policy in queue_template.find_resources("AWS::SNS::TopicPolicy").values():
        statements = props(policy)["PolicyDocument"]["Statement"]
        assert any(s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s) for s in statements)


def test_worker_task_runs_the_transcoder_with_room_to_stop_cleanly(worker_template):
    # Given the worker task definition
    (task,) = worker_template.find_resources("AWS::ECS::TaskDefinition").values()
    p = props(task)
    (container,) = p["ContainerDefinitions"]
    # Then it is 2 vCPU / 4 GB Fargate running python -m transcoder.worker
    assert (p["Cpu"], p["Memory"], p["RequiresCompatibilities"]) == ("2048", "4096", ["FARGATE"])
    assert container["Command"] == list(TRANSCODER_COMMAND)
    # And SIGTERM leaves 120 s to finish or hand back the job
    assert container["StopTimeout"] == 120
    # And logs go to CloudWatch through awslogs, to a log group with retention
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    group_ref = container["LogConfiguration"]["Options"]["awslogs-group"]["Ref"]
    group = worker_template.to_json()["Resources"][group_ref]
    assert props(group)["RetentionInDays"] == 30
    # And it gets the REELAY_* settings
    names = {e["Name"] for e in container["Environment"]}
    assert names >= REELAY_ENV
    assert {e["Name"]: e["Value"] for e in container["Environment"]}[
        "POWERTOOLS_SERVICE_NAME"
    ] == "transcoder"


def test_worker_service_runs_privately_on_spot_from_zero_tasks(worker_template):
    # Given the worker service
    (service,) = worker_template.find_resources("AWS::ECS::Service").values()
    p = props(service)
    # Then it starts at zero tasks, in private subnets, without public IPs, mostly on Spot
    assert p["DesiredCount"] == 0
    assert p["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"
    assert "privateSubnet" in json.dumps(p["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"])
    assert {s["CapacityProvider"] for s in p["CapacityProviderStrategy"]} == {"FARGATE_SPOT", "FARGATE"}
    (cluster,) = worker_template.find_resources("AWS::ECS::Cluster").values()
    assert {"Name": "containerInsights", "Value": "enabled"} in props(cluster)["ClusterSettings"]


def test_worker_task_role_is_least_privilege(worker_template):
    # Given the task role's statements
    role_statements = [
        s for lid, s in _statements(worker_template) if lid.startswith("TranscoderTaskTaskRole")
    ]
    assert role_statements
    for statement in role_statements:
        actions = _actions(statement)
        # Then no service-wide or global action is granted
        assert not any(a == "*" or a.endswith(":*") for a in actions), actions
        # And "*" resources only where the API has no resource ARNs, narrowed by a condition
        if statement["Resource"] == "*":
            assert actions == ["cloudwatch:PutMetricData"]
            assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Reelay"}}
    by_action = {a: json.dumps(s["Resource"]) for s in role_statements for a in _actions(s)}
    prefixes: dict[str, set[str]] = {}
    for s in role_statements:
        for a in _actions(s):
            resource = json.dumps(s["Resource"])
            for prefix in ("uploads", "outputs", "private-outputs"):
                if f'"/{prefix}/*"]]}}' in resource:
                    prefixes.setdefault(a, set()).add(prefix)
    # And S3 is split by prefix: read uploads/; read, write and delete under both output prefixes
    # (it writes where the video's visibility says, removes a failed output, and moves what a switch
    # left under the other one); delete the source of a video deleted while it was transcoded
    outputs = {"outputs", "private-outputs"}
    assert prefixes["s3:GetObject"] == {"uploads", *outputs}
    assert prefixes["s3:PutObject"] == outputs
    assert prefixes["s3:DeleteObject"] == {"uploads", *outputs}
    assert '"s3:PutObject"' not in json.dumps([s for s in role_statements if "/uploads/" in json.dumps(s)])
    # And a failed video's upload may be tagged for its lifecycle expiry (uploads/ only)
    assert prefixes["s3:PutObjectTagging"] == {"uploads"}
    listed = [
        p
        for s in role_statements
        if "s3:ListBucket" in _actions(s)
        for p in s["Condition"]["StringLike"]["s3:prefix"]
    ]
    assert sorted(listed) == ["outputs/*", "private-outputs/*", "uploads/*"]
    # And the queue is consumed and sent to (a SIGTERM hand-back re-sends the job), on that queue only
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"} <= set(by_action)
    assert "TranscodeJobs" in by_action["sqs:SendMessage"]
    assert "DeadLetters" not in by_action["sqs:SendMessage"]
    # And the topic is published to, the DB secret read
    assert {"sns:Publish", "secretsmanager:GetSecretValue"} <= set(by_action)
    # And a failed video is invalidated on the playback distribution, and on that one only
    assert ":distribution/" in by_action["cloudfront:CreateInvalidation"]
    assert "Playback" in by_action["cloudfront:CreateInvalidation"]


def test_the_worker_knows_the_playback_distribution(worker_template):
    (task,) = worker_template.find_resources("AWS::ECS::TaskDefinition").values()
    (container,) = props(task)["ContainerDefinitions"]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert "Playback" in json.dumps(env["REELAY_CDN_DISTRIBUTION_ID"])


def test_scaling_follows_backlog_per_task_down_to_zero(worker_template, config):
    # Given the worker's scalable target and step policies
    (target,) = worker_template.find_resources("AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert (props(target)["MinCapacity"], props(target)["MaxCapacity"]) == (0, config.transcoder_max_tasks)
    policies = [
        props(p)["StepScalingPolicyConfiguration"]
        for p in worker_template.find_resources("AWS::ApplicationAutoScaling::ScalingPolicy").values()
    ]
    assert len(policies) == 2
    assert {p["AdjustmentType"] for p in policies} == {"ExactCapacity"}
    # Then a task works one job at a time by default
    assert config.transcoder_jobs_per_task == 1
    # And the alarms watch visible + in-flight messages of the transcode queue
    scaling_alarms = [
        props(a)
        for a in worker_template.find_resources("AWS::CloudWatch::Alarm").values()
        if "Metrics" in props(a)
    ]
    assert len(scaling_alarms) == 2
    for alarm in scaling_alarms:
        metrics = {m["Id"]: m for m in alarm["Metrics"]}
        assert metrics["expr_1"]["Expression"] == "visible + inflight"
        assert (
            metrics["visible"]["MetricStat"]["Metric"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
        )
        assert (
            metrics["inflight"]["MetricStat"]["Metric"]["MetricName"]
            == "ApproximateNumberOfMessagesNotVisible"
        )
    # And some step sets the service to zero tasks
    adjustments = [s["ScalingAdjustment"] for p in policies for s in p["StepAdjustments"]]
    assert 0 in adjustments and config.transcoder_max_tasks in adjustments


def _tasks_for(backlog: int, steps) -> int:
    for step in steps:
        lower = step.lower if step.lower is not None else float("-inf")
        upper = step.upper if step.upper is not None else float("inf")
        if lower <= backlog < upper:
            return step.change
    raise AssertionError(f"no step covers {backlog}")


@pytest.mark.parametrize(
    ("backlog", "tasks"), [(0, 0), (1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (7, 4), (8, 4), (500, 4)]
)
def test_backlog_steps_give_one_task_per_two_jobs_capped_at_max(backlog, tasks):
    # Given steps for at most 4 tasks, 2 jobs each
    steps = backlog_steps(max_tasks=4, jobs_per_task=2)
    # Then a backlog maps to ceil(backlog / 2) tasks, at most 4, and zero when idle
    assert _tasks_for(backlog, steps) == tasks


def test_backlog_steps_with_one_task_max_still_scale_to_zero():
    steps = backlog_steps(max_tasks=1, jobs_per_task=3)
    assert [_tasks_for(n, steps) for n in (0, 1, 3, 50)] == [0, 1, 1, 1]


def test_alarms_fire_on_dead_letters_job_failures_and_old_jobs(worker_template):
    # Given the worker's alarms (other than the scaling ones)
    alarms = {
        props(a)["MetricName"]: props(a)
        for a in worker_template.find_resources("AWS::CloudWatch::Alarm").values()
        if "MetricName" in props(a)
    }
    # Then any dead letter alarms, counted as received (the dead-jobs function drains the DLQ within
    # seconds, so its depth would almost never be seen)
    dlq = alarms["NumberOfMessagesReceived"]
    assert (dlq["Threshold"], dlq["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert (dlq["Statistic"], dlq["Period"]) == ("Sum", 300)
    assert "DeadLetters" in json.dumps(dlq["Dimensions"])
    # And dead letters left in the DLQ for 15 minutes (a broken dead-jobs function) alarm too
    stuck = alarms["ApproximateNumberOfMessagesVisible"]
    assert "DeadLetters" in json.dumps(stuck["Dimensions"])
    assert (stuck["Statistic"], stuck["Period"] * stuck["EvaluationPeriods"], stuck["Threshold"]) == (
        "Minimum",
        900,
        0,
    )
    # And any failed transcode job alarms (the worker's EMF metric)
    failed = alarms["TranscodeJobsFailed"]
    assert failed["Namespace"] == "Reelay"
    assert failed["Dimensions"] == [{"Name": "service", "Value": "transcoder"}]
    assert (failed["Threshold"], failed["Statistic"]) == (0, "Sum")
    # And a job waiting too long alarms
    assert alarms["ApproximateAgeOfOldestMessage"]["Threshold"] == 1800
    # And all of them notify the alarm topic
    assert all("Alarms" in json.dumps(a["AlarmActions"]) for a in alarms.values())


def test_dead_letters_are_consumed_by_the_dead_jobs_function(worker_template):
    # Given the event source mapping
    (mapping,) = worker_template.find_resources("AWS::Lambda::EventSourceMapping").values()
    p = props(mapping)
    # Then the DLQ feeds the dead jobs function with partial batch failures
    assert "TranscodeDeadLetters" in json.dumps(p["EventSourceArn"])
    assert p["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    worker_template.has_resource_properties(
        "AWS::Lambda::Function", {"Handler": "lambdas.dead_jobs.handler.lambda_handler"}
    )


def test_every_function_gets_the_reelay_settings_tracing_and_the_vpc(synthesized, stacks):
    # Given every Lambda function Reelay itself defines
    functions = {}
    for stack in stacks.all():
        for logical_id, fn in synthesized.template(stack).find_resources("AWS::Lambda::Function").items():
            if props(fn).get("Handler", "").startswith("lambdas."):
                functions[logical_id] = props(fn)
    assert {f["Handler"].split(".")[1] for f in functions.values()} == {
        "api",
        "upload_events",
        "migrate",
        "dead_jobs",
        "outbox_sweep",
        "stuck_sweep",
        "relay_reconciler",
        "recording_steps",
        "recording_sweep",
        "playback_keys",
    }
    for fn in functions.values():
        # Then each runs Python 3.11 on x86_64 (the wheels' platform), traced
        assert (fn["Runtime"], fn["Architectures"]) == ("python3.11", ["x86_64"])
        assert fn["TracingConfig"] == {"Mode": "Active"}
        assert "LoggingConfig" in fn
        assert fn["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"] == "Reelay"
        if "playback_keys" in fn["Handler"]:
            # ...the playback key maker (a deploy-time custom resource of the storage stack, which has
            # no VPC) talks to Secrets Manager only: no VPC, no database, no Reelay settings
            assert "VpcConfig" not in fn and "REELAY_DB_SECRET_ARN" not in fn["Environment"]["Variables"]
            continue
        # ...and every other one runs in the VPC and knows the database
        assert fn["VpcConfig"]["SubnetIds"]
        assert "REELAY_DB_SECRET_ARN" in fn["Environment"]["Variables"]
        # And the API, upload, dead-job and outbox-sweep handlers get every REELAY_* setting
        if "migrate" not in fn["Handler"]:
            assert set(fn["Environment"]["Variables"]) >= REELAY_ENV, fn["Handler"]


@pytest.mark.parametrize("function", ["TranscoderDeadJobs", "TranscoderStuckSweep"])
def test_functions_that_fail_videos_may_only_list_and_delete_outputs_and_tag_uploads(
    worker_template, function
):
    # Given the role statements of a function that fails videos (the dead-jobs handler, the stuck sweep)
    statements = [s for lid, s in _statements(worker_template) if lid.startswith(function)]
    s3 = [s for s in statements if any(a.startswith("s3:") for a in _actions(s))]
    # Then it may delete objects under the output prefixes only (public and private), and list only
    # those (no read, no write)
    assert sorted(a for s in s3 for a in _actions(s)) == [
        "s3:DeleteObject",
        "s3:ListBucket",
        "s3:PutObjectTagging",
    ]
    (delete,) = [s for s in s3 if _actions(s) == ["s3:DeleteObject"]]
    assert [r["Fn::Join"][1][-1] for r in delete["Resource"]] == ["/outputs/*", "/private-outputs/*"]
    # And tag the upload of a video it failed (uploads/ only), for the lifecycle rule to expire it
    (tag,) = [s for s in s3 if _actions(s) == ["s3:PutObjectTagging"]]
    assert json.dumps(tag["Resource"]).endswith('"/uploads/*"]]}')
    (listing,) = [s for s in s3 if _actions(s) == ["s3:ListBucket"]]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["outputs/*", "private-outputs/*"]}}


def _evaluate(expression: str, visible: int, inflight: int) -> float:
    return eval(expression, {"__builtins__": {}}, {"visible": visible, "inflight": inflight})


@pytest.mark.parametrize("jobs_per_task", [1, 2, 3])
def test_scaling_never_gives_fewer_tasks_than_jobs_in_flight(jobs_per_task):
    # Given the backlog metric and steps for at most 6 tasks
    steps = backlog_steps(max_tasks=6, jobs_per_task=jobs_per_task)
    expression = backlog_expression(jobs_per_task)
    for inflight in range(0, 8):
        for visible in range(0, 12):
            # When the queue holds this many waiting and in-flight jobs
            tasks = _tasks_for(_evaluate(expression, visible, inflight), steps)
            # Then every job in flight keeps its task, and waiting jobs get one per J, up to the cap
            assert tasks == min(6, inflight + -(-visible // jobs_per_task)), (visible, inflight)
            assert tasks >= min(6, inflight)
