"""The local runner: the workflow definition's steps, in order, in-process, with its retry and catch.

What Step Functions does with the same definition: a step whose error's name (its class or one of its
bases) is in the step's retry list is retried up to ``max_attempts`` times, sleeping
``interval x backoff_rate^n``; any other error, or the last one, goes to the catch step with
``state["error"] = {"Error": name, "Cause": message}``. A step with ``when`` runs only when that
state key is true (a Choice state in ASL).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from reelay.observability import logger
from reelay.recording.steps import HANDLERS, State, StepContext
from reelay.recording.workflow import RECORDING_WORKFLOW, Step, Workflow

Handler = Callable[[State, StepContext], State]


def error_names(exc: BaseException) -> list[str]:
    return [k.__name__ for k in type(exc).__mro__ if k not in (BaseException, object)]


class WorkflowRunner:
    def __init__(
        self,
        ctx: StepContext,
        *,
        workflow: Workflow = RECORDING_WORKFLOW,
        handlers: Mapping[str, Handler] = HANDLERS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        missing = set(workflow.handlers) - set(handlers)
        if missing:
            raise ValueError(f"no handler for {sorted(missing)}")
        self.ctx = ctx
        self.workflow = workflow
        self.handlers = handlers
        self.sleep = sleep

    def start(
        self, session_id: str, *, mode: str = "finalize", mp4: bool = False, execution_id: str | None = None
    ) -> State:
        """Run the workflow for a session to its end; the final state (``status`` ready or failed)."""
        state: State = {
            "sessionId": session_id,
            "mode": mode,
            "mp4": mp4,
            "executionId": execution_id or f"local-{mode}-{uuid.uuid4().hex[:12]}",
        }
        return self.run(state)

    def run(self, state: State) -> State:
        for step in self.workflow.steps:
            if step.when and not state.get(step.when):
                continue
            try:
                state = self._attempt(step, state)
            except Exception as exc:
                names = error_names(exc)
                caught = {
                    **state,
                    self.workflow.error_path: {
                        "Error": names[0],
                        "Cause": str(exc) or names[0],
                        "State": step.name,
                    },
                }
                logger.warning(
                    "recording step failed",
                    extra={"step": step.name, "error": names[0], "sessionId": state.get("sessionId")},
                )
                return self._attempt(self.workflow.catch, caught)
        return state

    def _attempt(self, step: Step, state: State) -> State:
        handler = self.handlers[step.handler]
        tries = 0
        while True:
            try:
                return handler(dict(state), self.ctx)
            except Exception as exc:
                retry = step.retry
                if (
                    retry is None
                    or tries >= retry.max_attempts
                    or not set(error_names(exc)) & set(retry.errors)
                ):
                    raise
                delay = retry.interval_seconds * retry.backoff_rate**tries
                tries += 1
                logger.info(
                    "retrying recording step",
                    extra={"step": step.name, "attempt": tries, "delaySeconds": delay, "error": str(exc)},
                )
                self.sleep(delay)


def run_steps(ctx: StepContext, state: State, **kwargs: Any) -> State:
    return WorkflowRunner(ctx, **kwargs).run(state)
