"""Synthesizes the whole Reelay app once per session, with cdk-nag, as `make synth` does."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from infra.app_factory import ReelayStacks, build_app
from infra.bundling import REPO_ROOT
from infra.config import ReelayConfig


def cdk_json_context() -> dict[str, Any]:
    return json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


@dataclass
class SynthesizedApp:
    app: cdk.App
    stacks: ReelayStacks
    config: ReelayConfig
    outdir: Path
    synth_error: Exception | None

    def template(self, stack: cdk.Stack) -> Template:
        # Read from the cloud assembly: synthesizing again would re-run every validation.
        return Template.from_json(json.loads((self.outdir / stack.template_file).read_text()))

    def validation_report(self) -> dict[str, Any] | None:
        path = self.outdir / "validation-report.json"
        return json.loads(path.read_text()) if path.exists() else None


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedApp:
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = cdk.App(outdir=str(outdir), context=cdk_json_context())
    stacks = build_app(app)
    error: Exception | None = None
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag findings fail synth; test_nag reports them
        error = exc
    return SynthesizedApp(app, stacks, ReelayConfig.from_app(app), outdir, error)


@pytest.fixture(scope="session")
def stacks(synthesized: SynthesizedApp) -> ReelayStacks:
    return synthesized.stacks


@pytest.fixture(scope="session")
def config(synthesized: SynthesizedApp) -> ReelayConfig:
    return synthesized.config


def resources(template: Template, type_: str) -> dict[str, dict[str, Any]]:
    return template.find_resources(type_)


def props(resource: dict[str, Any]) -> dict[str, Any]:
    return resource.get("Properties", {})


def function_by_handler(template: Template, handler: str) -> tuple[str, dict[str, Any]]:
    """The one Lambda function in a template that runs ``handler``: (logical id, properties)."""
    (found,) = [
        (logical_id, props(fn))
        for logical_id, fn in template.find_resources("AWS::Lambda::Function").items()
        if props(fn).get("Handler") == handler
    ]
    return found


def statement_actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else actions
