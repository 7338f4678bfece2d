"""Starts the recording workflows on Step Functions: finalize/fixup (the AWS ``WorkflowStarter``) and
MP4 range exports (the AWS ``ExportLauncher``). Executions are named, so a repeated start is one run."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from reelay.adapters.aws import client as aws_client
from reelay.adapters.aws import error_code
from reelay.settings import Settings


class _Executions:
    def __init__(self, state_machine_arn: str, *, settings: Settings | None = None) -> None:
        self.arn = state_machine_arn
        self._sfn = aws_client("stepfunctions", settings)

    def _execute(self, name: str, body: dict[str, Any]) -> str:
        """Idempotent: a start under a name already used (running, or run in the last 90 days)
        answers that execution, whatever its input was."""
        try:
            answer = self._sfn.start_execution(stateMachineArn=self.arn, name=name, input=json.dumps(body))
        except ClientError as exc:
            if error_code(exc) != "ExecutionAlreadyExists":
                raise
            return f"{self.arn.replace(':stateMachine:', ':execution:')}:{name}"
        return str(answer["executionArn"])


class StepFunctionsStarter(_Executions):
    def start(self, session_id: str, *, mode: str, mp4: bool, execution_name: str) -> str:
        body = {"sessionId": session_id, "mode": mode, "mp4": mp4, "executionId": execution_name}
        return self._execute(execution_name, body)


class StepFunctionsExportLauncher(_Executions):
    """The export workflow's state machine; the execution is named after the export id (32 hex
    digits), so a retried start of one export never runs it twice."""

    def launch(self, state: dict[str, Any]) -> str:
        name = str(state["exportId"])
        if not (name.isascii() and name.isalnum() and 0 < len(name) <= 80):
            raise ValueError(f"export id {name!r} is not a valid execution name")
        return self._execute(name, state)
