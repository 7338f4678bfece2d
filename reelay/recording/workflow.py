"""The ONE definition of the recording workflows (finalize and fixup; MP4 range exports), data only.

The local runner (``reelay.recording.runner``) runs it in-process; ``infra/constructs/recording.py``
builds the Step Functions state machine from it; an infra test compares the synthesized ASL with it,
so they cannot drift.

Each step names its handler in ``reelay.recording.steps.HANDLERS``; the Lambda
``lambdas/recording_steps`` dispatches on that name. A step of kind ``ecs`` runs as an ECS RunTask
(``.sync``) in AWS (the MP4 export, which can take hours) and as a subprocess of the same entry point
locally. ``when`` names a state key that must be true for the step to run (a Choice in ASL).
Errors named in a step's retry are retried with backoff; any other error, or one that outlives its
retries, goes to the catch step (``Failed``), which marks the session failed with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Retry:
    errors: tuple[str, ...]
    max_attempts: int  # retries after the first try (ASL MaxAttempts)
    interval_seconds: int
    backoff_rate: float = 2.0


# Transient: a step said so, storage or database blips, Lambda throttling and its service errors.
TRANSIENT = Retry(
    errors=(
        "TransientStepError",
        "StorageError",
        "DatabaseUnavailable",
        "Lambda.ServiceException",
        "Lambda.TooManyRequestsException",
        "Lambda.SdkClientException",
    ),
    max_attempts=3,
    interval_seconds=2,
)
ECS_RETRY = Retry(errors=("ECS.AmazonECSException", "States.TaskFailed"), max_attempts=1, interval_seconds=30)


@dataclass(frozen=True)
class Step:
    name: str  # the ASL state name
    handler: str  # a key of reelay.recording.steps.HANDLERS
    kind: str = "lambda"  # "lambda" or "ecs"
    retry: Retry | None = TRANSIENT
    when: str | None = None  # run only when state[when] is true
    timeout_seconds: int = 900


@dataclass(frozen=True)
class Workflow:
    name: str
    steps: tuple[Step, ...]
    catch: Step  # every step's errors end here, with the error under state["error"]
    error_path: str = "error"

    def step(self, name: str) -> Step:
        for s in (*self.steps, self.catch):
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def handlers(self) -> tuple[str, ...]:
        return tuple(s.handler for s in (*self.steps, self.catch))


RECORDING_WORKFLOW = Workflow(
    name="recording",
    steps=(
        Step("Begin", "begin"),
        Step("Merge", "merge"),
        Step("ExportMp4", "export_mp4", kind="ecs", retry=ECS_RETRY, when="mp4", timeout_seconds=6 * 3600),
        Step("Register", "register"),
        Step("Cleanup", "cleanup"),
        Step("Ready", "ready"),
    ),
    catch=Step("Failed", "failed", retry=TRANSIENT),
)

# A time range of a ready recording as MP4 (POST /streams/{id}/sessions/{sid}/exports): the export
# task on the media image, then a Lambda step that records the export ready (size and duration from
# the MP4's metadata), or the catch step that records it failed with the reason. The state is the
# export's (exportId, sessionId, videoId, mp4Key, exportRendition, exportStart, exportEnd, and the
# ``export`` record the API wrote as running); the execution is named after the export id.
RECORDING_EXPORT_WORKFLOW = Workflow(
    name="recording-export",
    steps=(
        Step("ExportMp4Range", "export_range", kind="ecs", retry=ECS_RETRY, timeout_seconds=6 * 3600),
        Step("ExportReady", "export_ready"),
    ),
    catch=Step("ExportFailed", "export_failed", retry=TRANSIENT),
)

WORKFLOWS = (RECORDING_WORKFLOW, RECORDING_EXPORT_WORKFLOW)

__all__ = [
    "ECS_RETRY",
    "RECORDING_EXPORT_WORKFLOW",
    "RECORDING_WORKFLOW",
    "TRANSIENT",
    "WORKFLOWS",
    "Retry",
    "Step",
    "Workflow",
]
