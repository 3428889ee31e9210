#!/usr/bin/env python3
"""The driftstack CDK app: one stack, constructs per concern. Deploys unchanged to LocalStack
(with cdklocal, see driftstack/deploy.py) and to AWS (with cdk)."""

import os
import sys

import aws_cdk as cdk

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from driftstack_cdk import nag  # noqa: E402
from driftstack_cdk.stack import DriftstackStack  # noqa: E402

app = cdk.App()
DriftstackStack(
    app,
    app.node.try_get_context("stack_name") or "Driftstack",
    env=cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")),
)
if str(app.node.try_get_context("nag") or "").lower() == "true":
    nag.add_checks(app)  # `cdk synth -c nag=true`: fail on any cdk-nag finding not acknowledged in nag.py
app.synth()
