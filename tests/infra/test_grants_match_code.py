"""Every function's and task's S3, SQS, SNS, Step Functions and CloudFront grants are what its code calls.

Neither moto nor the fakes enforce IAM, so a missing grant (the upload-events function deleting
rejected uploads without ``s3:DeleteObject``) only shows in AWS, as a logged failure. This test
derives each role's needs from the code itself, and compares them with the synthesized template:

1. From each entry point (a Lambda handler module, a task's ``main``), walk every function and class
   of Reelay's own code it can reach: names it uses, imports inside functions, and the services
   ``reelay.wiring.Services`` builds for it (``get_services().uploads`` -> ``UploadEventService``).
2. In that code, collect the calls made on the ports: ``store.delete(...)``, ``queue.send(...)``,
   ``events.publish(...)``, ``cdn.invalidate(...)``, ``starter.start(...)``, ``exports.launch(...)``.
3. Read, from each port's AWS adapter, which boto3 operations that method ends up calling, and turn
   the operations into IAM actions with AWS's table (``head_object`` needs ``s3:GetObject``, ...).
4. The role's actions in the template must equal those needs, plus only what the table below
   declares the platform itself uses with the role (an SQS event source polls with it, CDK's queue
   grants add the read-only ``GetQueueAttributes``/``GetQueueUrl``), each with its reason.

A grant the code does not need fails the test, and so does a call the role may not make.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import textwrap
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from reelay.wiring import Services

# The services compared here; KVS, ECS and Secrets Manager grants have their own tests.
SERVICES = ("s3", "sqs", "sns", "states", "cloudfront")

# boto3 operation -> the IAM actions it needs (AWS's "Actions, resources and condition keys" pages).
OPERATION_ACTIONS: dict[str, frozenset[str]] = {
    # Without ListBucket, reading a missing key answers 403 instead of 404: reads need both.
    "head_object": frozenset({"s3:GetObject", "s3:ListBucket"}),
    "get_object": frozenset({"s3:GetObject", "s3:ListBucket"}),
    "download_file": frozenset({"s3:GetObject", "s3:ListBucket"}),
    "put_object": frozenset({"s3:PutObject"}),
    "upload_file": frozenset({"s3:PutObject"}),
    "create_multipart_upload": frozenset({"s3:PutObject"}),
    "upload_part": frozenset({"s3:PutObject"}),
    "complete_multipart_upload": frozenset({"s3:PutObject"}),
    "abort_multipart_upload": frozenset({"s3:AbortMultipartUpload"}),
    # CopyObject is authorized as a read of the source and a write of the copy; the managed copy
    # (objects over 5 GiB) first HEADs the source, then copies in parts.
    "copy_object": frozenset({"s3:GetObject", "s3:PutObject"}),
    "copy": frozenset({"s3:GetObject", "s3:PutObject", "s3:ListBucket"}),
    "delete_object": frozenset({"s3:DeleteObject"}),
    "delete_objects": frozenset({"s3:DeleteObject"}),
    "list_objects_v2": frozenset({"s3:ListBucket"}),
    "put_object_tagging": frozenset({"s3:PutObjectTagging"}),
    "send_message": frozenset({"sqs:SendMessage"}),
    "receive_message": frozenset({"sqs:ReceiveMessage"}),
    "delete_message": frozenset({"sqs:DeleteMessage"}),
    "change_message_visibility": frozenset({"sqs:ChangeMessageVisibility"}),
    "get_queue_attributes": frozenset({"sqs:GetQueueAttributes"}),
    "publish": frozenset({"sns:Publish"}),
    "start_execution": frozenset({"states:StartExecution"}),
    "create_invalidation": frozenset({"cloudfront:CreateInvalidation"}),
}


@dataclass(frozen=True)
class Port:
    """A port as the domain calls it (receiver names) and the module of its AWS adapter."""

    receivers: frozenset[str]
    methods: frozenset[str]
    adapter_module: str

    @property
    def name(self) -> str:
        return self.adapter_module.rsplit(".", 1)[-1]


def _protocol_methods(name: str) -> frozenset[str]:
    modules = ("reelay.ports", "reelay.recording.sweep", "reelay.recording.service")
    cls = next(c for m in modules if (c := getattr(importlib.import_module(m), name, None)) is not None)
    return frozenset(m for m in vars(cls) if not m.startswith("_") and callable(getattr(cls, m)))


PORTS = (
    Port(
        frozenset({"store", "_store", "media_store", "src", "dst"}),
        _protocol_methods("ObjectStore"),
        "reelay.storage.s3",
    ),
    Port(frozenset({"queue", "_queue"}), _protocol_methods("JobQueue"), "reelay.adapters.sqs"),
    Port(
        frozenset({"events", "_events", "publisher"}),
        _protocol_methods("EventPublisher"),
        "reelay.adapters.sns",
    ),
    Port(frozenset({"cdn"}), _protocol_methods("CdnInvalidator"), "reelay.adapters.cloudfront"),
    Port(frozenset({"starter"}), _protocol_methods("WorkflowStarter"), "reelay.adapters.stepfunctions"),
    Port(frozenset({"exports"}), _protocol_methods("ExportLauncher"), "reelay.adapters.stepfunctions"),
)
# Walked only through the port table above: their calls are what the adapters make.
ADAPTER_PACKAGES = ("reelay.adapters", "reelay.storage", "reelay.wiring")
OWN_CODE = ("reelay", "lambdas", "transcoder", "local")

# CDK's grant_send_messages / grant_consume_messages add these read-only queue actions.
CDK_QUEUE_READS = {
    "sqs:GetQueueAttributes": "CDK's queue grants include it",
    "sqs:GetQueueUrl": "CDK's queue grants include it",
}
SQS_EVENT_SOURCE = {
    "sqs:ReceiveMessage": "the SQS event source mapping polls the queue with the function's role",
    "sqs:DeleteMessage": "the event source mapping deletes the records the function handled",
    "sqs:ChangeMessageVisibility": "the event source mapping hands failed records back",
    **CDK_QUEUE_READS,
}


@dataclass(frozen=True)
class RoleUse:
    entries: tuple[str, ...]  # modules (every top-level function) or "module:function"
    # Actions the platform (not the code) uses with the role, and why.
    platform: dict[str, str] = field(default_factory=dict)
    # "module.Qualname" of code the walk reaches but this role never runs in AWS, and why.
    not_in_aws: dict[str, str] = field(default_factory=dict)


# Functions that publish video or stream events build their OutboxSweep without a CDN: CDN
# invalidations in the outbox are acted on by the API, the transcode worker and the outbox sweep only.
NO_CDN_IN_SWEEP = {
    "reelay.events.OutboxSweep._invalidate": "its OutboxSweep has no CDN (cdn=None): it flushes only"
    " the events of its own changes, none of which is a CDN invalidation",
    "reelay.events.OutboxSweep._relocate": "its OutboxSweep moves no media (relocate=None): it flushes"
    " only the events of its own changes, none of which is a media move",
}

# Role (the logical-id prefix of its IAM role) -> the code that runs with it.
ROLES: dict[str, RoleUse] = {
    # The handler hands every request to the routes the app module registers.
    "RestHandlerFunctionServiceRole": RoleUse(("lambdas.api.handler", "reelay.api.app")),
    "UploadsUploadEventsFunctionServiceRole": RoleUse(
        ("lambdas.upload_events.handler",),
        {"sqs:SendMessage": "the on-failure destination of its async invocations", **CDK_QUEUE_READS},
        not_in_aws=NO_CDN_IN_SWEEP,
    ),
    "TranscoderTaskTaskRole": RoleUse(("transcoder.worker",), dict(CDK_QUEUE_READS)),
    "TranscoderDeadJobsFunctionServiceRole": RoleUse(
        ("lambdas.dead_jobs.handler",), SQS_EVENT_SOURCE, not_in_aws=NO_CDN_IN_SWEEP
    ),
    "TranscoderOutboxSweepFunctionServiceRole": RoleUse(("lambdas.outbox_sweep.handler",)),
    "TranscoderStuckSweepFunctionServiceRole": RoleUse(
        ("lambdas.stuck_sweep.handler",), dict(CDK_QUEUE_READS), not_in_aws=NO_CDN_IN_SWEEP
    ),
    "RecordingStepsFunctionServiceRole": RoleUse(
        ("lambdas.recording_steps.handler",), not_in_aws=NO_CDN_IN_SWEEP
    ),
    "RecordingExportTaskTaskRole": RoleUse(("transcoder.export",)),
    "RecordingSweepFunctionServiceRole": RoleUse(
        ("lambdas.recording_sweep.handler",),
        not_in_aws={
            "reelay.recording.sweep.LocalStarter": "runs the workflow's steps in-process under make up;"
            " in AWS the sweep starts the state machine, whose steps function holds the media grants",
        },
    ),
    "RelayTaskTaskRole": RoleUse(
        ("transcoder.relay",),
        not_in_aws={
            "reelay.events.OutboxSweep": "the task only reads its stream's source URL through the"
            " StreamService (source_url_for_relay); it never changes a stream, so it publishes nothing",
        },
    ),
    "RelayReconcilerFunctionServiceRole": RoleUse(("lambdas.relay_reconciler.handler",)),
    "CatalogueMigrateFunctionServiceRole": RoleUse(("lambdas.migrate.handler",)),
    # Secrets Manager only (its grant on the signing secret is tested in test_private_playback).
    "MediaPlaybackKeysFunctionServiceRole": RoleUse(("lambdas.playback_keys.handler",)),
}


# --- 1. the code an entry point reaches --------------------------------------------------------------
def _own(obj: Any) -> bool:
    module = getattr(obj, "__module__", "") or ""
    return module.split(".")[0] in OWN_CODE and not module.startswith(ADAPTER_PACKAGES)


def _service_classes() -> dict[str, list[Any]]:
    """Services attribute -> the classes its cached property imports and builds (not the ports)."""
    found: dict[str, list[Any]] = {}
    for name, member in vars(Services).items():
        func = getattr(member, "func", None)
        if func is None:
            continue
        tree = _source(func)
        classes = [
            getattr(importlib.import_module(node.module), alias.name)
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
            for alias in node.names
        ]
        found[name] = [c for c in classes if _own(c)]
    return found


class SourceChanged(RuntimeError):
    """A module's file changed on disk after it was imported: its functions' line numbers no longer
    point at their code, so reading them now would walk some other code."""


@cache
def _file_lines(path: str) -> tuple[str, ...]:
    """A source file's lines, read once per run: every function of a module comes from one version."""
    with open(path, encoding="utf-8") as f:
        return tuple(f.read().splitlines(keepends=True))


def _source(func: Any) -> ast.AST:
    """The parsed source of ``func`` (unwrapped from its decorators).

    Not ``inspect.getsource``: it re-reads a file whose modification time changed, while the function's
    line numbers stay those of the version imported. A file saved during a run (``tests/infra`` takes
    minutes) then shifts every function below the edit: the walk parsed the wrong lines and missed
    calls, and the outbox sweep's role was once found with GetObject and PutObject in excess (its
    ``store.copy`` unseen). Here the lines are read once, and a function whose lines do not hold its own
    ``def`` fails the run with a reason instead of being walked wrong."""
    func = inspect.unwrap(func)
    code = func.__code__
    lines = _file_lines(code.co_filename)
    block = inspect.getblock(list(lines[code.co_firstlineno - 1 :]))
    tree = ast.parse(textwrap.dedent("".join(block)))
    top = tree.body[0] if tree.body else None
    if func.__name__ != "<lambda>" and not (
        isinstance(top, ast.FunctionDef | ast.AsyncFunctionDef) and top.name == func.__name__
    ):
        raise SourceChanged(
            f"{code.co_filename}:{code.co_firstlineno} no longer holds {func.__qualname__}: the file changed"
            " on disk after it was imported; run the test again"
        )
    return tree


def _resolve(node: ast.expr, scope: dict[str, Any]) -> Any:
    if isinstance(node, ast.Name):
        return scope.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, scope)
        if isinstance(base, types.ModuleType):
            return getattr(base, node.attr, None)
    return None


_ALWAYS = ("__init__", "__post_init__", "__call__", "__enter__", "__exit__")


def _methods(cls: type) -> dict[str, Any]:
    """The own methods of a class, properties and cached properties included, by name."""
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if _own(klass):
            for name, value in list(vars(klass).items()):
                func = getattr(value, "func", None) or getattr(value, "fget", None)
                func = func or getattr(value, "__func__", value)
                if inspect.isfunction(func):
                    found[name] = func
    return found


def _is_services(node: ast.expr) -> bool:
    if isinstance(node, ast.Call):
        return isinstance(node.func, ast.Name) and node.func.id == "get_services"
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return name in ("services", "svc", "_services")


def _targets(value: Any) -> list[Any]:
    """Functions and classes a module-level name stands for (a dispatch table's values too)."""
    if isinstance(value, dict):
        return [v for v in value.values() if inspect.isfunction(v) or inspect.isclass(v)]
    if isinstance(value, list | tuple):
        return [v for v in value if inspect.isfunction(v) or inspect.isclass(v)]
    return [value] if inspect.isfunction(value) or inspect.isclass(value) else []


def reachable(entries: Iterable[str], skip: Iterable[str] = ()) -> list[tuple[Any, ast.AST]]:
    """Every own function reachable from the entries, with its parsed source.

    A class counts once it is named (built, or handed over by ``Services``); one of its methods once
    reachable code names an attribute of that name anywhere (``x.flush_quietly(...)``), since the
    receiver's type is not known statically. That over-approximates a little, never under.
    """
    services = _service_classes()
    functions: dict[int, tuple[Any, ast.AST]] = {}
    classes: dict[int, type] = {}
    names: set[str] = set()
    # Holds what it saw, not just ids: an id is unique only among live objects, so a freed one's id
    # could come back as another object's and skip it.
    seen: dict[int, Any] = {}
    todo: list[Any] = []
    for entry in entries:
        module_name, _, attr = entry.partition(":")
        module = importlib.import_module(module_name)
        if attr:
            todo.extend(_targets(getattr(module, attr)))
        else:
            todo.extend(
                v
                for value in vars(module).values()
                for v in _targets(value)
                if getattr(v, "__module__", None) == module.__name__
            )
    while todo:
        while todo:
            obj = todo.pop()
            if id(obj) in seen:
                continue
            seen[id(obj)] = obj
            if not _own(obj) or f"{obj.__module__}.{obj.__qualname__}".startswith(tuple(skip)):
                continue
            if inspect.isclass(obj):
                classes[id(obj)] = obj
                continue
            if not inspect.isfunction(inspect.unwrap(obj)) or not _has_file(obj):
                continue  # generated code (a dataclass's __init__): no source to read
            tree = _source(obj)
            functions[id(obj)] = (obj, tree)
            scope = dict(vars(importlib.import_module(obj.__module__)))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in OWN_CODE:
                    module = importlib.import_module(node.module)
                    todo.extend(t for a in node.names for t in _targets(getattr(module, a.name, None)))
                elif isinstance(node, ast.Name | ast.Attribute):
                    todo.extend(_targets(_resolve(node, scope)))
                    if isinstance(node, ast.Attribute):
                        names.add(node.attr)
                        if _is_services(node.value):  # get_services().uploads, services.streams
                            todo.extend(services.get(node.attr, []))
        for cls in list(classes.values()):
            for name, method in _methods(cls).items():
                if (name in names or name in _ALWAYS) and id(method) not in seen:
                    todo.append(method)
    return list(functions.values())


def _has_file(func: Any) -> bool:
    filename = inspect.unwrap(func).__code__.co_filename
    return not filename.startswith("<") and Path(filename).is_file()


# --- 2. the port calls in that code ----------------------------------------------------------------
def _receiver(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):  # get_services().store.delete(...)
        return None
    return None


def port_calls(code: list[tuple[Any, ast.AST]]) -> set[tuple[Port, str, str]]:
    """(port, method, the function that calls it)."""
    calls: set[tuple[Port, str, str]] = set()
    for func, tree in code:
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            receiver = _receiver(node.func.value)
            for port in PORTS:
                if receiver in port.receivers and node.func.attr in port.methods:
                    calls.add((port, node.func.attr, f"{func.__module__}.{func.__qualname__}"))
    return calls


# --- 3. what the adapters call in AWS ---------------------------------------------------------------
@cache
def _adapter_methods(module_name: str) -> dict[str, list[ast.FunctionDef]]:
    """Method name -> its definitions in the adapter module (any class: adapters wrap each other)."""
    tree = ast.parse(inspect.getsource(importlib.import_module(module_name)))
    methods: dict[str, list[ast.FunctionDef]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            methods.setdefault(node.name, []).append(node)
    return methods


def operations(port: Port, method: str) -> set[str]:
    """The boto3 operations ``method`` of the port's adapter calls, following self.x(...) calls."""
    methods = _adapter_methods(port.adapter_module)
    ops: set[str] = set()
    todo, seen = [method], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for definition in methods.get(name, []):
            for node in ast.walk(definition):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                if isinstance(func, ast.Attribute) and func.attr in OPERATION_ACTIONS:
                    ops.add(func.attr)  # self._client.delete_object(...)
                if isinstance(func, ast.Attribute) and func.attr in methods:
                    todo.append(func.attr)  # self.list(...), self._queue.send(...)
                for arg in node.args:  # generate_presigned_url("upload_part", ...), get_paginator(...)
                    if isinstance(arg, ast.Constant) and arg.value in OPERATION_ACTIONS:
                        ops.add(arg.value)
    return ops


def needed_actions(use: RoleUse) -> dict[str, set[str]]:
    """IAM action -> the port calls that need it."""
    needs: dict[str, set[str]] = {}
    for port, method, caller in port_calls(reachable(use.entries, use.not_in_aws)):
        for op in operations(port, method):
            for action in OPERATION_ACTIONS[op]:
                needs.setdefault(action, set()).add(f"{caller}: {port.name}.{method} -> {op}")
    return needs


# --- 4. the template -------------------------------------------------------------------------------
def granted_actions(synthesized: Any, stacks: Any, role_prefix: str) -> set[str]:
    actions: set[str] = set()
    matched = False
    for stack in stacks.all():
        template = synthesized.template(stack).to_json()
        for resource in template.get("Resources", {}).values():
            if resource["Type"] != "AWS::IAM::Policy":
                continue
            roles = [r.get("Ref", "") for r in resource["Properties"].get("Roles", [])]
            if not any(r.startswith(role_prefix) for r in roles):
                continue
            matched = True
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                listed = statement["Action"]
                actions.update([listed] if isinstance(listed, str) else listed)
    assert matched or role_prefix == "CatalogueMigrateFunctionServiceRole", f"no policy for {role_prefix}"
    return {a for a in actions if a.split(":")[0] in SERVICES}


@pytest.mark.parametrize("role", sorted(ROLES))
def test_each_role_is_granted_exactly_what_its_code_calls(synthesized, stacks, role: str) -> None:
    use = ROLES[role]
    needs = needed_actions(use)
    granted = granted_actions(synthesized, stacks, role)
    missing = {a: sorted(why) for a, why in needs.items() if a not in granted}
    excess = sorted(granted - set(needs) - set(use.platform))
    assert not missing, f"{role} lacks grants its code needs: {missing}"
    assert not excess, f"{role} is granted {excess}, which nothing in its code calls"
    # And what the table says the platform uses with the role is really granted (no stale rows)
    assert set(use.platform) <= granted | set(needs), sorted(set(use.platform) - granted)


def test_every_reelay_role_is_in_the_table(synthesized, stacks) -> None:
    # A new function or task must say what its code calls: an unlisted role fails here.
    roles: set[str] = set()
    for stack in stacks.all():
        for logical_id, resource in synthesized.template(stack).to_json()["Resources"].items():
            if resource["Type"] == "AWS::IAM::Role" and _reelay_role(logical_id):
                roles.add(logical_id)
    unlisted = sorted(r for r in roles if not any(r.startswith(prefix) for prefix in ROLES))
    assert not unlisted, f"roles with no row in ROLES: {unlisted}"


def _reelay_role(logical_id: str) -> bool:
    # The execution roles of tasks pull images and write logs only; CDK's own helper functions
    # (bucket notifications, deployments, log retention, custom resource providers) are not ours.
    own = ("FunctionServiceRole", "TaskTaskRole")
    helpers = ("BucketNotificationsHandler", "CustomCDK", "LogRetention", "Provider")
    return any(s in logical_id for s in own) and not any(logical_id.startswith(h) for h in helpers)


def test_the_walk_finds_the_calls_that_matter() -> None:
    # The derivation itself, on code whose needs are known: the upload-events function deletes a
    # rejected upload (the grant that was missing), HEADs it, queues a job and publishes video.failed
    needs = needed_actions(ROLES["UploadsUploadEventsFunctionServiceRole"])
    assert {"s3:DeleteObject", "s3:GetObject", "s3:ListBucket", "sqs:SendMessage", "sns:Publish"} <= set(
        needs
    )
    assert any(
        "UploadEventService._discard: s3.delete -> delete_object" in why for why in needs["s3:DeleteObject"]
    )
    # And a multipart part URL is an UploadPart, which S3 authorizes as s3:PutObject
    api = needed_actions(ROLES["RestHandlerFunctionServiceRole"])
    assert any("s3.presign_part -> upload_part" in why for why in api["s3:PutObject"])
    # And the failed-upload tag is found through the worker's failure path
    assert "s3:PutObjectTagging" in needed_actions(ROLES["TranscoderTaskTaskRole"])


def test_a_dropped_grant_would_be_caught(synthesized, stacks) -> None:
    # Given the upload-events role as synthesized, without s3:DeleteObject (the bug this test is for)
    role = "UploadsUploadEventsFunctionServiceRole"
    granted = granted_actions(synthesized, stacks, role) - {"s3:DeleteObject"}
    # Then the comparison names it as missing, with the call that needs it
    needs = needed_actions(ROLES[role])
    assert [a for a in needs if a not in granted] == ["s3:DeleteObject"]


def test_a_source_saved_after_import_fails_the_walk_instead_of_misleading_it(tmp_path) -> None:
    # Given a module imported, then saved again with lines added above its functions (an editor
    # saving during a run)
    path = tmp_path / "edited_module.py"
    path.write_text(
        "def first(store):\n    store.copy('a', 'b')\n\n\ndef second(store):\n    store.list('p')\n"
    )
    spec = importlib.util.spec_from_file_location("edited_module", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path.write_text("import os\n\n\n\n" + path.read_text())
    # inspect reads the new file at the old line numbers: first's "source" starts elsewhere
    assert not inspect.getsource(module.first).startswith("def first")
    # Then the walk's reader refuses, naming the function and what happened
    with pytest.raises(SourceChanged, match="first: the file changed on disk after it was imported"):
        _source(module.first)


def test_the_walk_reads_the_same_code_every_time() -> None:
    # The outbox sweep's walk (the role once found with an excess) finds the same calls on every run
    use = ROLES["TranscoderOutboxSweepFunctionServiceRole"]
    runs = [{a: sorted(why) for a, why in needed_actions(use).items()} for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]
    assert {"s3:GetObject", "s3:PutObject"} <= set(runs[0])  # its media moves copy
