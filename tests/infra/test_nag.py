"""cdk-nag: the whole app synthesizes with no unacknowledged AwsSolutions finding."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Annotations, Match

from infra.nag import acknowledge, enable_nag


def test_app_synthesizes_with_no_cdk_nag_findings(synthesized):
    # Given the whole app synthesized with the AwsSolutions pack
    report = synthesized.validation_report()
    # When we read the policy validation report
    findings = [
        f"{v['ruleName']} at {c['constructPath']}"
        for plugin in (report or {}).get("pluginReports", [])
        for v in plugin["violations"]
        for c in v["violatingConstructs"]
    ]
    # Then there is none, of any severity, and synth did not fail
    assert findings == []
    assert synthesized.synth_error is None


def test_no_stack_carries_cdk_warnings_or_errors(synthesized, stacks):
    # Given every stack of the app
    for stack in stacks.all():
        annotations = Annotations.from_stack(stack)
        # Then no construct warns or errors (deprecations, ignored props, unresolved policies)
        assert annotations.find_warning("*", Match.any_value()) == [], stack.stack_name
        assert annotations.find_error("*", Match.any_value()) == [], stack.stack_name


def test_an_unacknowledged_finding_fails_synth(tmp_path):
    # Given an app wired with the same nag setup and a bucket without logs or SSL enforcement
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Probe")
    s3.Bucket(stack, "Loose")
    enable_nag(app)
    # When it synthesizes
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    # Then the report names the findings
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= rules


def test_an_acknowledged_finding_passes_only_for_its_rule(tmp_path):
    # Given a bucket with access logging acknowledged but SSL still not enforced
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Probe")
    bucket = s3.Bucket(stack, "Loose")
    acknowledge(bucket, "AwsSolutions-S1", "A probe bucket in a test; it holds nothing.")
    enable_nag(app)
    # When it synthesizes
    with pytest.raises(RuntimeError):
        app.synth()
    # Then only the unacknowledged rule remains
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert "AwsSolutions-S1" not in rules
    assert "AwsSolutions-S10" in rules


@pytest.mark.parametrize("reason", ["", "ok", "not needed"])
def test_an_acknowledgement_without_a_specific_reason_is_refused(reason):
    # Given a construct
    stack = cdk.Stack(cdk.App(), "Probe")
    # When it is acknowledged with an empty or vague reason
    # Then the acknowledgement is refused
    with pytest.raises(ValueError, match="specific reason"):
        acknowledge(stack, "AwsSolutions-S1", reason)
