"""The synthesized recording state machines (finalize/fixup and MP4 range exports) against the one
workflow definition: they cannot drift."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.constructs.recording import EXPORT_FAIL_STATE, FAIL_STATE, choice_name
from reelay.recording.steps import HANDLERS
from reelay.recording.workflow import RECORDING_EXPORT_WORKFLOW, RECORDING_WORKFLOW, WORKFLOWS, Workflow
from tests.infra.conftest import props

# Each workflow of the one definition, its state machine's fixed name (the API starts it by that
# name) and the Fail state its catch step ends in.
MACHINES = [
    pytest.param(RECORDING_WORKFLOW, "reelay-dev-recording", FAIL_STATE, id="finalize"),
    pytest.param(RECORDING_EXPORT_WORKFLOW, "reelay-dev-recording-export", EXPORT_FAIL_STATE, id="export"),
]


def _machine(synthesized: Any, stacks: Any, name: str) -> dict[str, Any]:
    machines = synthesized.template(stacks.recording).find_resources("AWS::StepFunctions::StateMachine")
    (machine,) = [m for m in machines.values() if m["Properties"]["StateMachineName"] == name]
    return machine


def test_every_workflow_has_one_state_machine(synthesized, stacks) -> None:
    machines = synthesized.template(stacks.recording).find_resources("AWS::StepFunctions::StateMachine")
    names = sorted(m["Properties"]["StateMachineName"] for m in machines.values())
    assert names == sorted(p.values[1] for p in MACHINES) and len(WORKFLOWS) == len(MACHINES)


def _asl(synthesized: Any, stacks: Any, name: str = "reelay-dev-recording") -> dict[str, Any]:
    machine = _machine(synthesized, stacks, name)
    body = machine["Properties"]["DefinitionString"]
    # Fn::Join of literal text and tokens (ARNs, inside JSON strings): tokens become a placeholder.
    if isinstance(body, dict):
        body = "".join(p if isinstance(p, str) else _token(p) for p in body["Fn::Join"][1])
    return json.loads(body)


def _token(part: dict[str, Any]) -> str:
    """A pseudo parameter keeps its name (arn:partition:states:::...), the steps function is named,
    anything else is a placeholder."""
    ref = part.get("Ref", "")
    if ref.startswith("AWS::"):
        return ref.split("::")[-1].lower()
    if part.get("Fn::GetAtt", [""])[0].startswith("RecordingStepsFunction"):
        return "STEPS_FUNCTION"
    return "TOKEN"


@pytest.mark.parametrize(("wf", "name", "fail_state"), MACHINES)
def test_states_and_transitions_follow_the_definition(
    synthesized, stacks, wf: Workflow, name: str, fail_state: str
) -> None:
    asl = _asl(synthesized, stacks, name)
    states = asl["States"]
    expected = (
        {s.name for s in (*wf.steps, wf.catch)} | {choice_name(s) for s in wf.steps if s.when} | {fail_state}
    )
    assert set(states) == expected
    assert asl["StartAt"] == (choice_name(wf.steps[0]) if wf.steps[0].when else wf.steps[0].name)
    for i, step in enumerate(wf.steps):
        state = states[step.name]
        following = wf.steps[i + 1] if i + 1 < len(wf.steps) else None
        entry = None if following is None else (choice_name(following) if following.when else following.name)
        if entry is None:
            assert state.get("End") is True
        else:
            assert state["Next"] == entry, step.name
        if step.when:
            choice = states[choice_name(step)]
            assert choice["Type"] == "Choice" and choice["Default"] == entry
            assert [c["Next"] for c in choice["Choices"]] == [step.name]
            assert step.when in json.dumps(choice["Choices"])
        # Retry and catch, exactly as the definition says (nothing added by CDK).
        retries = state.get("Retry", [])
        if step.retry is None:
            assert retries == []
        else:
            assert retries == [
                {
                    "ErrorEquals": list(step.retry.errors),
                    "IntervalSeconds": step.retry.interval_seconds,
                    "MaxAttempts": step.retry.max_attempts,
                    "BackoffRate": step.retry.backoff_rate,
                }
            ], step.name
        assert state["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": f"$.{wf.error_path}", "Next": wf.catch.name}
        ]
        assert state["TimeoutSeconds"] == step.timeout_seconds


@pytest.mark.parametrize(("wf", "name", "fail_state"), MACHINES)
def test_tasks_call_the_named_handlers(synthesized, stacks, wf: Workflow, name: str, fail_state: str) -> None:
    states = _asl(synthesized, stacks, name)["States"]
    for step in (*wf.steps, wf.catch):
        state = states[step.name]
        assert step.handler in HANDLERS
        if step.kind == "ecs":
            assert state["Resource"].endswith("ecs:runTask.sync")
            assert "REELAY_EXPORT_STATE" in json.dumps(state["Parameters"])
            # The task's output is discarded, as the local runner's ecs handlers pass the state on
            assert state["ResultPath"] is None
        else:
            # payloadResponseOnly: the function itself is the resource, the payload the parameters
            assert state["Resource"] == "STEPS_FUNCTION"
            assert state["Parameters"] == {"step": step.handler, "state.$": "$"}
    assert states[wf.catch.name]["Next"] == fail_state
    assert states[fail_state]["Type"] == "Fail"


def test_sweep_runs_every_minute_and_may_start_the_workflow(synthesized, stacks) -> None:
    template = synthesized.template(stacks.recording)
    rules = [
        r
        for r in template.find_resources("AWS::Events::Rule").values()
        if r["Properties"].get("ScheduleExpression") == "rate(1 minute)"
    ]
    assert len(rules) == 1
    policies = json.dumps(template.find_resources("AWS::IAM::Policy"))
    assert "states:StartExecution" in policies


def test_the_recording_functions_open_sealed_stores_and_the_sweep_applies_retention(synthesized, stacks):
    # Given the recording stack's functions and their policies
    template = synthesized.template(stacks.recording)
    functions = {
        props(f)["Handler"]: props(f) for f in template.find_resources("AWS::Lambda::Function").values()
    }
    steps = functions["lambdas.recording_steps.handler.lambda_handler"]
    sweep = functions["lambdas.recording_sweep.handler.lambda_handler"]
    # Then both know the stream secret (a session's sealed store URL)
    for fn in (steps, sweep):
        assert "REELAY_STREAM_SECRET_ARN" in fn["Environment"]["Variables"]
    statements = [
        s
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for s in props(policy)["PolicyDocument"]["Statement"]
    ]
    text = json.dumps(statements)
    assert "secretsmanager:GetSecretValue" in text
    # And the sweep may delete an expired recording's keys, its exports' and its video's outputs
    deletes = [s for s in statements if "s3:DeleteObject" in json.dumps(s.get("Action"))]
    resources = json.dumps([s["Resource"] for s in deletes])
    for prefix in ("/recordings/*", "/outputs/*", "/private-outputs/*", "/recording-exports/*"):
        assert prefix in resources


def test_the_api_may_start_the_recording_workflows_by_their_names(synthesized, stacks):
    # Given the recording state machines and the API function
    finalize = props(_machine(synthesized, stacks, "reelay-dev-recording"))
    export = props(_machine(synthesized, stacks, "reelay-dev-recording-export"))
    api = synthesized.template(stacks.api)
    (fn,) = [
        props(f)
        for f in api.find_resources("AWS::Lambda::Function").values()
        if props(f).get("Handler") == "lambdas.api.handler.lambda_handler"
    ]
    # Then the API names them (finalize by hand, MP4 exports) by the names they are created with
    env = fn["Environment"]["Variables"]
    arn = json.dumps(env["REELAY_RECORDING_STATE_MACHINE_ARN"])
    export_arn = json.dumps(env["REELAY_RECORDING_EXPORT_STATE_MACHINE_ARN"])
    assert f':stateMachine:{finalize["StateMachineName"]}"' in arn
    assert f':stateMachine:{export["StateMachineName"]}"' in export_arn
    # And may start exactly those two, and nothing else
    starts = [
        s
        for policy in api.find_resources("AWS::IAM::Policy").values()
        for s in props(policy)["PolicyDocument"]["Statement"]
        if s.get("Action") == "states:StartExecution"
    ]
    assert len(starts) == 1 and len(starts[0]["Resource"]) == 2
    resources = [json.dumps(r) for r in starts[0]["Resource"]]
    assert resources == [arn, export_arn]


def test_the_export_workflow_may_record_the_exports_state(synthesized, stacks):
    # The API writes an export's state JSON running; the export task writes its failure reason there;
    # the steps function writes it ready or failed, and reads the task's reason
    wanted = {
        (stacks.api, "RestHandlerFunctionServiceRole"): {"s3:GetObject", "s3:PutObject"},
        (stacks.recording, "RecordingExportTaskTaskRole"): {"s3:PutObject"},
        (stacks.recording, "RecordingStepsFunctionServiceRole"): {"s3:GetObject", "s3:PutObject"},
    }
    for (stack, role), actions in wanted.items():
        granted: set[str] = set()
        for policy in synthesized.template(stack).find_resources("AWS::IAM::Policy").values():
            if not any(r.get("Ref", "").startswith(role) for r in props(policy)["Roles"]):
                continue
            for s in props(policy)["PolicyDocument"]["Statement"]:
                if "/recording-exports/*" in json.dumps(s["Resource"]):
                    granted |= {s["Action"]} if isinstance(s["Action"], str) else set(s["Action"])
        assert granted == actions, role
