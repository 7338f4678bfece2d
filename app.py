#!/usr/bin/env python3
"""The Reelay CDK app: `make synth` / `make deploy`. Stacks and config live in infra/."""

import aws_cdk as cdk

from infra.app_factory import build_app

app = cdk.App()
build_app(app)
app.synth()
