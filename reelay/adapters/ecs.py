"""ECS: the relay tasks (RunTask/StopTask/ListTasks/DescribeTasks), and task scale-in protection.

``EcsRelayLauncher`` runs one Fargate task per stream (see ``reelay.relay.reconciler`` for why tasks,
not services). Each task is named after its stream twice: ``startedBy`` (``relay/<streamId>``, which
ECS's task-state events carry, so the reconciler knows which stream lost its task) and a
``reelay:stream-id`` tag (what ``running()`` reads back).

``TaskProtection`` is the transcode worker's scale-in protection through the container agent's
endpoint. A worker protects its task while it holds a job, so neither scale-in nor a deployment stops a
task in the middle of a transcode; it drops the protection when the job ends. Outside ECS there is no
agent (``ECS_AGENT_URI`` unset) and every call is a no-op. Errors are logged, never raised: a job must
never fail because its task could not be protected.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from reelay.adapters.aws import client as aws_client
from reelay.adapters.aws import error_code
from reelay.errors import InvalidInput, NotFound, ReelayError
from reelay.relay.reconciler import RelayTask
from reelay.settings import Settings

logger = Logger(service="transcoder", child=True)
relay_logger = Logger(child=True)  # the reconciler's service (POWERTOOLS_SERVICE_NAME)

STATE_PATH = "/task-protection/v1/state"
MAX_EXPIRES_MINUTES = 2880  # the agent accepts 1..2880


class TaskProtection:
    """``protect()`` at job start, ``keep()`` while it runs, ``unprotect()`` at job end."""

    def __init__(self, agent_uri: str | None, *, expires_minutes: int = 120, timeout: float = 3.0) -> None:
        if not 1 <= expires_minutes <= MAX_EXPIRES_MINUTES:
            raise ValueError(f"expires_minutes must be between 1 and {MAX_EXPIRES_MINUTES}")
        self.url = agent_uri.rstrip("/") + STATE_PATH if agent_uri else None
        self.expires_minutes = expires_minutes
        self.timeout = timeout
        self._protected_at: float | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.url is not None

    def protect(self) -> bool:
        """Protect the task for ``expires_minutes``. True when the agent confirmed it."""
        ok = self._put({"ProtectionEnabled": True, "ExpiresInMinutes": self.expires_minutes})
        with self._lock:
            self._protected_at = time.monotonic() if ok else None
        return ok

    def keep(self) -> bool:
        """Renew the protection once half of it has run out (a job may outlast one period)."""
        with self._lock:
            since = self._protected_at
        if since is not None and time.monotonic() - since < self.expires_minutes * 30:
            return True
        return self.protect()

    def unprotect(self) -> bool:
        ok = self._put({"ProtectionEnabled": False})
        with self._lock:
            self._protected_at = None
        return ok

    def _put(self, body: dict[str, Any]) -> bool:
        if self.url is None:
            return False
        request = urllib.request.Request(
            self.url,
            data=json.dumps(body).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            logger.warning("task protection refused", extra={"status": exc.code, "protect": body})
            return False
        except (OSError, ValueError) as exc:  # unreachable agent, timeout, a body that is not JSON
            logger.warning("task protection failed", extra={"error": str(exc), "protect": body})
            return False
        # The agent answers 200 with {"failure": {...}} when ECS itself refused the change.
        if isinstance(answer, dict) and answer.get("failure"):
            logger.warning("task protection refused", extra={"failure": answer["failure"], "protect": body})
            return False
        return True


# --- relay tasks ------------------------------------------------------------------------------------
STARTED_BY_PREFIX = "relay/"
STREAM_TAG = "reelay:stream-id"
RELAY_COMMAND = ("python3", "-m", "transcoder.relay", "--stream-id")  # the image's python, as the worker's
_STREAM_ID = re.compile(r"^[A-Za-z0-9_-]{1,120}$")  # what startedBy (128 chars) can carry after the prefix
_DESCRIBE_BATCH = 100  # DescribeTasks takes up to 100 tasks


class RelayLaunchError(ReelayError):
    """ECS refused or failed to run, stop or list relay tasks (no capacity, throttled, no permission)."""

    code = "relay_launch_error"
    status = 502


def relay_command(stream_id: str) -> list[str]:
    return [*RELAY_COMMAND, stream_id]


def started_by(stream_id: str) -> str:
    return STARTED_BY_PREFIX + stream_id


def stream_of_started_by(value: str | None) -> str | None:
    """The stream id in a relay task's ``startedBy`` (as ECS task-state events carry it), else None."""
    if value and value.startswith(STARTED_BY_PREFIX) and _STREAM_ID.match(value[len(STARTED_BY_PREFIX) :]):
        return value[len(STARTED_BY_PREFIX) :]
    return None


def _check_stream_id(stream_id: str) -> str:
    if not isinstance(stream_id, str) or not _STREAM_ID.match(stream_id):
        raise InvalidInput("a stream id is 1 to 120 letters, digits, '-' or '_'")
    return stream_id


def task_family(task_definition: str) -> str:
    """``family`` of a task definition given as an ARN, ``family:revision`` or ``family``."""
    return task_definition.rsplit("/", 1)[-1].split(":", 1)[0]


class EcsRelayLauncher:
    """``RelayLauncher`` on ECS Fargate: one task of the relay task definition per stream."""

    def __init__(
        self,
        *,
        cluster: str,
        task_definition: str,
        container_name: str,
        subnets: tuple[str, ...] | list[str],
        security_groups: tuple[str, ...] | list[str] = (),
        assign_public_ip: bool = False,
        client: Any = None,
        settings: Settings | None = None,
    ) -> None:
        if not cluster or not task_definition or not container_name:
            raise InvalidInput("the relay launcher needs a cluster, a task definition and a container name")
        if not subnets:
            raise InvalidInput("the relay launcher needs at least one subnet (awsvpc networking)")
        self.cluster = cluster
        self.task_definition = task_definition
        self.family = task_family(task_definition)
        self.container_name = container_name
        self.subnets = list(subnets)
        self.security_groups = list(security_groups)
        self.assign_public_ip = assign_public_ip
        self._client = client or aws_client("ecs", settings)

    @classmethod
    def from_settings(cls, settings: Settings) -> EcsRelayLauncher:
        if not settings.relay_cluster_arn or not settings.relay_task_definition_arn:
            raise RuntimeError("REELAY_RELAY_CLUSTER_ARN and REELAY_RELAY_TASK_DEFINITION_ARN must be set")
        return cls(
            cluster=settings.relay_cluster_arn,
            task_definition=settings.relay_task_definition_arn,
            container_name=settings.relay_container_name,
            subnets=settings.relay_subnets,
            security_groups=settings.relay_security_groups,
            assign_public_ip=settings.relay_assign_public_ip,
            settings=settings,
        )

    def _fail(self, op: str, err: Exception) -> ReelayError:
        code = error_code(err)
        if code == "ClusterNotFoundException":
            return NotFound(f"ECS cluster {self.cluster} not found ({op})")
        return RelayLaunchError(f"ECS {op} failed: {code}")

    def launch(self, stream_id: str) -> None:
        """Run one relay task for the stream. The task claims the stream's lease itself."""
        _check_stream_id(stream_id)
        network: dict[str, Any] = {
            "subnets": self.subnets,
            "assignPublicIp": "ENABLED" if self.assign_public_ip else "DISABLED",
        }
        if self.security_groups:
            network["securityGroups"] = self.security_groups
        try:
            resp = self._client.run_task(
                cluster=self.cluster,
                taskDefinition=self.task_definition,
                count=1,
                # On-demand Fargate: a Spot interruption would be an outage of the feed.
                launchType="FARGATE",
                platformVersion="LATEST",
                networkConfiguration={"awsvpcConfiguration": network},
                overrides={
                    "containerOverrides": [{"name": self.container_name, "command": relay_command(stream_id)}]
                },
                startedBy=started_by(stream_id),
                tags=[{"key": STREAM_TAG, "value": stream_id}],
                propagateTags="TASK_DEFINITION",
                enableECSManagedTags=True,
            )
        except (ClientError, BotoCoreError) as e:
            raise self._fail("RunTask", e) from e
        if not resp.get("tasks"):
            # RunTask answers 200 with failures (no capacity, bad subnet...) instead of an error.
            reasons = ", ".join(f.get("reason", "?") for f in resp.get("failures") or []) or "no task started"
            raise RelayLaunchError(f"ECS RunTask started no relay task for {stream_id}: {reasons}")
        relay_logger.info(
            "relay task launched", extra={"streamId": stream_id, "taskArn": resp["tasks"][0].get("taskArn")}
        )

    def stop(self, stream_id: str, task_id: str) -> None:
        """SIGTERM the task (the relay drains kvssink within the stop timeout). NotFound when ECS does
        not know it."""
        if not task_id:
            raise InvalidInput("a task id is required")
        try:
            self._client.stop_task(
                cluster=self.cluster, task=task_id, reason=f"reelay reconciler: stream {stream_id}"[:255]
            )
        except (ClientError, BotoCoreError) as e:
            if error_code(e) == "InvalidParameterException":  # "The referenced task was not found."
                raise NotFound(f"relay task {task_id} not found") from e
            raise self._fail("StopTask", e) from e
        relay_logger.info("relay task stopped", extra={"streamId": stream_id, "taskArn": task_id})

    def running(self, stream_id: str | None = None) -> list[RelayTask]:
        """Relay tasks ECS has not stopped (desired RUNNING), of one stream or all, oldest first."""
        query: dict[str, Any] = {"cluster": self.cluster}
        if stream_id is not None:
            # ECS takes startedBy only as the sole filter; the desired status is checked below.
            query["startedBy"] = started_by(_check_stream_id(stream_id))
        else:
            query.update(family=self.family, desiredStatus="RUNNING")
        try:
            arns = [
                arn
                for page in self._client.get_paginator("list_tasks").paginate(**query)
                for arn in page.get("taskArns", [])
            ]
            described: list[dict[str, Any]] = []
            for i in range(0, len(arns), _DESCRIBE_BATCH):
                resp = self._client.describe_tasks(
                    cluster=self.cluster, tasks=arns[i : i + _DESCRIBE_BATCH], include=["TAGS"]
                )
                described.extend(resp.get("tasks", []))
        except (ClientError, BotoCoreError) as e:
            raise self._fail("ListTasks/DescribeTasks", e) from e
        tasks = [t for t in (self._relay_task(d) for d in described) if t is not None]
        if stream_id is not None:
            tasks = [t for t in tasks if t.stream_id == stream_id]
        return sorted(tasks, key=lambda t: (t.created_at.timestamp() if t.created_at else 0.0, t.task_arn))

    def _relay_task(self, task: dict[str, Any]) -> RelayTask | None:
        """A described task as a RelayTask; None for tasks of another family, with no stream, or on
        their way down."""
        if task_family(task.get("taskDefinitionArn", "")) != self.family:
            return None
        if task.get("desiredStatus", "RUNNING") != "RUNNING":
            return None  # being stopped already
        tags = {t.get("key"): t.get("value") for t in task.get("tags") or []}
        stream_id = tags.get(STREAM_TAG) or stream_of_started_by(task.get("startedBy"))
        if not stream_id:
            return None
        return RelayTask(
            task_arn=task["taskArn"],
            stream_id=stream_id,
            last_status=task.get("lastStatus", "UNKNOWN"),
            started_at=task.get("startedAt"),
            created_at=task.get("createdAt"),
        )


__all__ = [
    "RELAY_COMMAND",
    "STREAM_TAG",
    "EcsRelayLauncher",
    "RelayLaunchError",
    "TaskProtection",
    "relay_command",
    "started_by",
    "stream_of_started_by",
    "task_family",
]
