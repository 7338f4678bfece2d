"""MP4 range exports as the export workflow (``RECORDING_EXPORT_WORKFLOW``).

In AWS: the API starts the export state machine (moto's Step Functions) through the AWS launcher,
once per export id, and the state machine's Lambda steps (the real ``lambdas/recording_steps``
handler, given the state Step Functions gives it) record the export ready, or failed with the
reason when the ECS task fails; GET answers either, never a 5xx. Locally: the same definition on the
local runner, with the real ``transcoder.export`` child failing on a recording it cannot read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.recording_steps.handler import lambda_handler as steps_handler
from reelay.adapters import aws
from reelay.adapters.stepfunctions import StepFunctionsExportLauncher
from reelay.catalogue.memory import MemoryCatalogue
from reelay.models import Video, VideoSource, VideoVisibility
from reelay.recording.runner import WorkflowRunner
from reelay.recording.steps import HANDLERS, StepContext, failure_reason, subprocess_exporter
from reelay.recording.sweep import LocalExportLauncher
from reelay.recording.workflow import RECORDING_EXPORT_WORKFLOW
from reelay.settings import Settings
from reelay.storage import open_store
from reelay.wiring import Services
from tests.fakes import FakeLambdaContext, installed_services
from tests.recording_api_helpers import install, ready_session
from tests.unit.test_api import assert_error, services, settings  # noqa: F401
from tests.unit.test_api_streams import create, send

pytestmark = [pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")]

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/reelay-recording-export"
# What Step Functions puts under Cause when the export's ECS task (.sync) stops with an error: the
# stopped task's description (trimmed to the fields the reason uses).
ECS_CAUSE = {
    "Attachments": [],
    "Containers": [{"ExitCode": 1, "LastStatus": "STOPPED", "Name": "Export"}],
    "LastStatus": "STOPPED",
    "StopCode": "EssentialContainerExited",
    "StoppedReason": "Essential container in task exited",
}


@pytest.fixture
def sfn() -> Iterator[tuple[Any, str]]:
    aws.clear_cache()
    with mock_aws():
        client = boto3.client("stepfunctions", region_name=REGION)
        definition = {
            "StartAt": "ExportMp4Range",
            "States": {"ExportMp4Range": {"Type": "Pass", "End": True}},
        }
        arn = client.create_state_machine(
            name="reelay-test-recording-export", definition=json.dumps(definition), roleArn=ROLE
        )["stateMachineArn"]
        yield client, arn
    aws.clear_cache()


def _settings(base: Settings, **changes: Any) -> Settings:
    return base.model_copy(update={"aws_region": REGION, **changes})


def _state(export_id: str = "0123456789abcdef0123456789abcdef") -> dict[str, Any]:
    return {
        "exportId": export_id,
        "sessionId": "s1",
        "videoId": "rec-s1",
        "mp4Key": "outputs/exports/s1/x.mp4",
    }


# --- the AWS launcher ---------------------------------------------------------------------------------
def test_the_aws_launcher_starts_one_execution_per_export(sfn: tuple[Any, str], settings: Settings) -> None:  # noqa: F811
    client, arn = sfn
    launcher = StepFunctionsExportLauncher(arn, settings=_settings(settings))
    # When one export is launched twice (a retried request)
    first = launcher.launch(_state())
    again = launcher.launch(_state())
    # Then there is one execution, named after the export id, whose input is the workflow's state
    executions = client.list_executions(stateMachineArn=arn)["executions"]
    assert [e["name"] for e in executions] == ["0123456789abcdef0123456789abcdef"]
    assert first == again == executions[0]["executionArn"]
    assert json.loads(client.describe_execution(executionArn=first)["input"]) == _state()
    # And another export is another execution
    launcher.launch(_state("fedcba9876543210fedcba9876543210"))
    assert len(client.list_executions(stateMachineArn=arn)["executions"]) == 2
    # And an id that cannot name an execution is refused before any call
    with pytest.raises(ValueError, match="execution name"):
        launcher.launch(_state("../x"))


def test_the_export_launcher_is_wired_from_the_settings(settings: Settings) -> None:  # noqa: F811
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:reelay-dev-recording-export"
    finalize = "arn:aws:states:us-east-1:123456789012:stateMachine:reelay-dev-recording"
    both = {"recording_export_state_machine_arn": arn, "recording_state_machine_arn": finalize}
    cases = [
        (both, StepFunctionsExportLauncher),
        ({"recording_state_machine_arn": finalize}, type(None)),  # no export machine: 503
        ({}, LocalExportLauncher),
    ]
    for changes, kind in cases:
        with installed_services(_settings(settings, **changes)) as svc:
            assert isinstance(svc.export_launcher, kind), changes


# --- the API and the state machine's steps, as in AWS --------------------------------------------------
def _step(step: str, state: dict[str, Any]) -> dict[str, Any]:
    """What Step Functions does for a Lambda step: the steps handler with {"step", "state"}."""
    return steps_handler({"step": step, "state": state}, FakeLambdaContext())


@pytest.fixture
def aws_export(services: Services, sfn: tuple[Any, str], settings: Settings) -> tuple[str, dict[str, Any]]:  # noqa: F811
    """An export the API started on the state machine: (its GET path, the execution's input)."""
    svc, (client, arn) = services, sfn
    install(svc, exports=StepFunctionsExportLauncher(arn, settings=_settings(settings)))
    stream_id = create(record=True)["streamId"]
    session_id, _ = ready_session(svc, stream_id, duration=10.0)
    path = f"/streams/{stream_id}/sessions/{session_id}/exports"
    status, out = send("POST", path, body={"start": 2, "end": 6})
    assert status == 202 and out["state"] == "running", out
    (execution,) = client.list_executions(stateMachineArn=arn)["executions"]
    assert execution["name"] == out["exportId"]
    state = json.loads(client.describe_execution(executionArn=execution["executionArn"])["input"])
    assert state["exportId"] == out["exportId"] and (state["exportStart"], state["exportEnd"]) == (2.0, 6.0)
    assert send("GET", f"{path}/{out['exportId']}")[1]["state"] == "running"
    return f"{path}/{out['exportId']}", state


def test_in_aws_an_export_task_that_fails_leaves_the_export_failed_with_its_reason(
    aws_export: tuple[str, dict[str, Any]],
) -> None:
    url, state = aws_export
    # When the ECS step fails and the state machine's catch runs the export_failed Lambda step
    caught = {**state, "error": {"Error": "States.TaskFailed", "Cause": json.dumps(ECS_CAUSE)}}
    out = _step(RECORDING_EXPORT_WORKFLOW.catch.handler, caught)
    assert out["status"] == "failed"
    # Then GET answers the export failed, with why, and no download
    status, got = send("GET", url)
    assert status == 200 and got["state"] == "failed" and got["downloadUrl"] is None
    reason = got["failureReason"]
    assert (
        reason.startswith("States.TaskFailed: Essential container in task exited") and "exit code 1" in reason
    )


def test_in_aws_the_catch_keeps_the_reason_the_export_task_wrote(
    services: Services,  # noqa: F811
    aws_export: tuple[str, dict[str, Any]],
) -> None:
    from transcoder.export import record_failure

    url, state = aws_export
    # Given the export task failed and wrote why into the export's state (what its main() does)
    record_failure(services.store, state, "export failed: segment recordings/x/1.ts is missing")
    # When the ECS step's failure reaches the catch
    caught = {**state, "error": {"Error": "States.TaskFailed", "Cause": json.dumps(ECS_CAUSE)}}
    assert (
        _step("export_failed", caught)["failureReason"]
        == "export failed: segment recordings/x/1.ts is missing"
    )
    # Then GET answers the task's own reason, not the container's exit
    got = send("GET", url)[1]
    assert (got["state"], got["failureReason"]) == (
        "failed",
        "export failed: segment recordings/x/1.ts is missing",
    )
    assert (got["start"], got["end"]) == (2.0, 6.0)  # the rest of the record is kept


def test_in_aws_the_ready_step_records_size_and_duration_from_the_mp4(
    services: Services,  # noqa: F811
    aws_export: tuple[str, dict[str, Any]],
) -> None:
    url, state = aws_export
    # Given the MP4 the export task wrote (its duration in its metadata, as transcoder.export writes it)
    services.store.put_bytes(
        state["mp4Key"],
        b"\0" * 4321,
        content_type="video/mp4",
        metadata={"duration-ms": "4000", "segments": "2"},
    )
    # When the ExportReady Lambda step runs on the state the ECS step passed on
    assert _step("export_ready", state)["status"] == "ready"
    # Then GET answers it ready, with its size, duration and download URL
    status, got = send("GET", url)
    assert status == 200 and got["state"] == "ready"
    assert (got["sizeBytes"], got["durationSeconds"]) == (4321, 4.0)
    assert got["downloadUrl"].endswith(f"/exports/{state['sessionId']}/{state['exportId']}.mp4")


def test_in_aws_a_ready_step_without_the_mp4_goes_to_the_catch(
    aws_export: tuple[str, dict[str, Any]],
) -> None:
    url, state = aws_export
    # When ExportReady finds no MP4, its error is a permanent one, which the catch records
    with pytest.raises(Exception, match="without writing the MP4") as raised:
        _step("export_ready", state)
    error = {"Error": type(raised.value).__name__, "Cause": json.dumps({"errorMessage": str(raised.value)})}
    _step("export_failed", {**state, "error": error})
    got = send("GET", url)[1]
    assert got["failureReason"] == "PermanentStepError: the export task ended without writing the MP4"


def test_a_start_that_step_functions_refuses_answers_503_and_the_export_says_failed(
    services: Services,  # noqa: F811
    sfn: tuple[Any, str],
    settings: Settings,  # noqa: F811
) -> None:
    _, arn = sfn
    gone = arn.replace("recording-export", "recording-export-gone")
    install(services, exports=StepFunctionsExportLauncher(gone, settings=_settings(settings)))
    stream_id = create(record=True)["streamId"]
    session_id, _ = ready_session(services, stream_id)
    status, out = send(
        "POST", f"/streams/{stream_id}/sessions/{session_id}/exports", body={"start": 0, "end": 2}
    )
    assert_error(status, out, 503, "exports_unavailable", "could not be started")
    (key,) = [o.key for o in services.store.list("recording-exports/")]
    assert json.loads(services.store.get_bytes(key))["state"] == "failed"


# --- the same definition, locally ------------------------------------------------------------------------
def test_locally_a_failing_export_child_leaves_the_export_failed_with_its_message(tmp_path: Path) -> None:
    # Given a file media store with no VOD playlist for the video, and the real export child
    url = f"file://{tmp_path}"
    store = open_store(url)
    ctx = StepContext(
        catalogue=None,
        media_store=store,
        export=subprocess_exporter(env={"REELAY_MEDIA_STORE_URL": url}, timeout_seconds=120),
    )
    record = {"exportId": "e" * 32, "sessionId": "s1", "state": "running", "start": 0.0, "end": 2.0}
    state = {**_state("e" * 32), "exportStart": 0.0, "exportEnd": 2.0, "export": record}
    # When the export workflow runs on the local runner
    assert LocalExportLauncher(ctx, background=False).launch(state) == f"local-export-{'e' * 32}"
    # Then its record says failed, with the child's own message
    got = json.loads(store.get_bytes(f"recording-exports/s1/{'e' * 32}.json"))
    assert got["state"] == "failed" and got["failureReason"].startswith("export failed:")
    assert "index.m3u8" in got["failureReason"]


def test_the_local_runner_runs_the_export_steps_the_definition_names(tmp_path: Path) -> None:
    # The export definition's handlers exist, and the runner goes ExportMp4Range -> ExportReady
    assert set(RECORDING_EXPORT_WORKFLOW.handlers) <= set(HANDLERS)
    store = open_store(f"file://{tmp_path}")
    ran: list[str] = []

    def export(state: dict[str, Any]) -> dict[str, Any]:
        ran.append("export")
        store.put_bytes(state["mp4Key"], b"mp4", metadata={"duration-ms": "2000", "segments": "1"})
        return {**state, "ignored": True}

    # (ExportReady looks the video up: an MP4 written where its visibility no longer puts it is moved)
    ctx = StepContext(catalogue=MemoryCatalogue(), media_store=store, export=export)
    record = {"exportId": "f" * 32, "sessionId": "s1", "state": "running"}
    out = WorkflowRunner(ctx, workflow=RECORDING_EXPORT_WORKFLOW).run({**_state("f" * 32), "export": record})
    assert ran == ["export"] and out["status"] == "ready" and "ignored" not in out  # as ResultPath: null
    got = json.loads(store.get_bytes(f"recording-exports/s1/{'f' * 32}.json"))
    assert (got["state"], got["sizeBytes"], got["durationSeconds"]) == ("ready", 3, 2.0)


def test_failure_reasons_are_one_line() -> None:
    assert (
        failure_reason({"Error": "States.Timeout", "Cause": "took too long"})
        == "States.Timeout: took too long"
    )
    assert failure_reason({}) == "Error: the export failed"
    assert failure_reason({"Error": "X", "Cause": json.dumps({"errorMessage": "boom"})}) == "X: boom"


@pytest.mark.parametrize(
    ("visibility", "moves"), [(VideoVisibility.PRIVATE, 1), (VideoVisibility.UNLISTED, 0)]
)
def test_an_export_that_ends_after_its_recording_turned_private_asks_for_a_move(
    tmp_path: Path, visibility: VideoVisibility, moves: int
) -> None:
    # Given an export started while the recording was unlisted (its MP4 under the public prefix)
    store = open_store(f"file://{tmp_path}")
    catalogue = MemoryCatalogue()
    catalogue.create(
        Video(
            video_id="rec-s1",
            video_key="recordings/cam1/s1/",
            display_name="r",
            owner_id="op",
            email="op@x.io",
            source=VideoSource.RECORDING,
            visibility=VideoVisibility.UNLISTED,
        )
    )
    state = {**_state(), "export": {"exportId": "0" * 32, "sessionId": "s1", "state": "running"}}
    store.put_bytes(state["mp4Key"], b"mp4", metadata={"duration-ms": "2000", "segments": "1"})
    # When the recording's visibility is what it is now as the export's last step runs
    catalogue.set_visibility("rec-s1", visibility)
    out = HANDLERS["export_ready"](state, StepContext(catalogue=catalogue, media_store=store))
    # Then the export is ready, and a private recording's MP4 gets a move to where a signature reaches
    assert out["status"] == "ready"
    assert catalogue.pending_events()[0] == moves
