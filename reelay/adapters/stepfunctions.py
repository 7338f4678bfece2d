"""Starts the recording workflow on Step Functions (the AWS ``WorkflowStarter``)."""

from __future__ import annotations

import json

from botocore.exceptions import ClientError

from reelay.adapters.aws import client as aws_client
from reelay.adapters.aws import error_code
from reelay.settings import Settings


class StepFunctionsStarter:
    def __init__(self, state_machine_arn: str, *, settings: Settings | None = None) -> None:
        self.arn = state_machine_arn
        self._sfn = aws_client("stepfunctions", settings)

    def start(self, session_id: str, *, mode: str, mp4: bool, execution_name: str) -> str:
        """Idempotent: the same name and input while that execution runs (or ran) returns it."""
        body = {"sessionId": session_id, "mode": mode, "mp4": mp4, "executionId": execution_name}
        try:
            answer = self._sfn.start_execution(
                stateMachineArn=self.arn, name=execution_name, input=json.dumps(body)
            )
        except ClientError as exc:
            if error_code(exc) != "ExecutionAlreadyExists":
                raise
            return f"{self.arn.replace(':stateMachine:', ':execution:')}:{execution_name}"
        return str(answer["executionArn"])
