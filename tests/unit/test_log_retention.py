"""Log retention on every function of the stack (driftstack_cdk/log_retention.py): the synthesized
template has one Custom::LogRetention per Lambda function of ours, on that function's
/aws/lambda/<name> group, with the configured days (``log_retention_days`` context, default 30)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "cdk"))

pytest.importorskip("aws_cdk")


def _template(cdk_stack, **context) -> dict:
    app, _ = cdk_stack(**context)
    app.synth()
    return json.loads((Path(app.outdir) / "T.template.json").read_text())


def _ours_and_retention(template: dict) -> tuple[set[str], dict[str, int]]:
    resources = template["Resources"]
    # Our functions run python3.12; CDK's LogRetention provider (nodejs, a singleton) is not ours.
    ours = {k for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"
            and not k.startswith("LogRetention")}
    retention: dict[str, int] = {}
    for name, v in resources.items():
        if v["Type"] != "Custom::LogRetention":
            continue
        props = v["Properties"]
        prefix, ref = props["LogGroupName"]["Fn::Join"][1]
        assert prefix == "/aws/lambda/", name
        assert ref["Ref"] not in retention, f"two LogRetention resources on {ref['Ref']}"
        retention[ref["Ref"]] = props["RetentionInDays"]
    return ours, retention


@pytest.mark.parametrize("context,days", [({}, 30), ({"log_retention_days": "7"}, 7),
                                          ({"log_retention_days": 365}, 365)])
def test_every_function_keeps_its_logs_the_configured_days(cdk_stack, context, days):
    template = _template(cdk_stack, **context)
    ours, retention = _ours_and_retention(template)
    assert len(ours) >= 5, ours  # predict, archiver, drift check, canary evaluation, workflow steps
    assert retention == {fn: days for fn in ours}
    # served by CDK's one singleton provider (Node.js), whatever the number of functions
    providers = {v["Properties"]["ServiceToken"]["Fn::GetAtt"][0] for v in template["Resources"].values()
                 if v["Type"] == "Custom::LogRetention"}
    assert len(providers) == 1
    (provider,) = providers
    assert template["Resources"][provider]["Properties"]["Runtime"].startswith("nodejs")


def test_retention_days_cloudwatch_does_not_accept_are_refused(cdk_stack):
    with pytest.raises(ValueError, match="log_retention_days='45'.*accepts only"):
        cdk_stack(log_retention_days="45")


def test_an_explicit_log_retention_on_a_function_is_kept():
    import aws_cdk as cdk
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_logs as logs
    from driftstack_cdk import log_retention

    app = cdk.App()
    stack = cdk.Stack(app, "S")
    code = lambda_.Code.from_inline("def handler(e, c):\n    return 1\n")
    explicit = lambda_.Function(stack, "Explicit", runtime=lambda_.Runtime.PYTHON_3_12, handler="index.handler",
                                code=code, log_retention=logs.RetentionDays.ONE_WEEK)
    lambda_.Function(stack, "Plain", runtime=lambda_.Runtime.PYTHON_3_12, handler="index.handler", code=code)
    log_retention.apply(stack, 90)
    template = app.synth().get_stack_by_name("S").template
    ours, retention = _ours_and_retention(template)
    by_id = {k: retention[k] for k in ours}
    assert by_id == {stack.get_logical_id(explicit.node.default_child): 7,
                     next(k for k in ours if k.startswith("Plain")): 90}
