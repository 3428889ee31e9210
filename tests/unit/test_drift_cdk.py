"""The monitoring/retraining constructs as synthesized: schedule, state machine shape (Retry and
Catch on every task, poll loop, approval step), least-privilege grants."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("aws_cdk")
if not (ROOT / "build" / "layers" / "deps" / "python").is_dir():
    pytest.skip("layers not built (python layers/build.py)", allow_module_level=True)
sys.path.insert(0, str(ROOT / "cdk"))


def synth(context: dict) -> dict:
    import aws_cdk as cdk

    from driftstack_cdk.stack import DriftstackStack

    app = cdk.App(context=context)
    DriftstackStack(app, "T")
    return app.synth().get_stack_by_name("T").template


def definition(template: dict) -> dict:
    sm = next(r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine")
    d = sm["Properties"]["DefinitionString"]
    if isinstance(d, dict):  # Fn::Join with ARNs as tokens
        d = "".join(p if isinstance(p, str) else "ARN" for p in d["Fn::Join"][1])
    return json.loads(d)


@pytest.fixture(scope="module")
def approval_template():
    return synth({"drift_schedule_minutes": "1", "approval": "true", "decision_min_rmse_improvement": "0.7"})


def test_every_task_retries_and_catches(approval_template):
    states = definition(approval_template)["States"]
    tasks = {n: s for n, s in states.items() if s["Type"] == "Task"}
    assert len(tasks) >= 11
    for name, s in tasks.items():
        assert s.get("Retry"), f"{name} has no Retry"
        assert s.get("Catch"), f"{name} has no Catch"
    catches = {c["Next"] for s in tasks.values() for c in s["Catch"]}
    assert "RecordFailure" in catches


def test_poll_loop_and_choices(approval_template):
    states = definition(approval_template)["States"]
    assert states["WaitForTraining"]["Type"] == "Wait" and states["WaitForTraining"]["Next"] == "PollTraining"
    done = states["TrainingDone?"]
    assert {c["Next"] for c in done["Choices"]} == {"Evaluate", "RecordFailure"}
    assert done["Default"] == "WaitForTraining"
    assert states["WaitForApproval"]["Resource"].endswith("lambda:invoke.waitForTaskToken")
    assert states["RecordFailure"]["Next"] == "NotifyFailure" and states["NotifyFailure"]["Next"] == "RetrainingFailed"


def test_schedule_env_and_grants(approval_template):
    res = approval_template["Resources"]
    rule = next(r for r in res.values() if r["Type"] == "AWS::Events::Rule"
                and "DriftCheck" in json.dumps(r["Properties"]["Targets"]))
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    fns = [r["Properties"] for r in res.values() if r["Type"] == "AWS::Lambda::Function"]
    decide = next(f for f in fns if f["Handler"] == "app.decide")
    assert decide["Environment"]["Variables"]["DECISION_MIN_RMSE_IMPROVEMENT"] == "0.7"
    assert decide["Environment"]["Variables"]["DECISION_REQUIRE_APPROVAL"] == "true"
    drift = next(f for f in fns if f.get("Description") == "driftstack scheduled drift check")
    assert drift["Environment"]["Variables"]["DRIFT_PERIOD_MINUTES"] == "1.0"
    policies = json.dumps([r for r in res.values() if r["Type"] == "AWS::IAM::Policy"])
    assert "states:StartExecution" in policies and "events:PutEvents" in policies
    assert '"Action": "s3:*"' not in policies and '"Action": "dynamodb:*"' not in policies


def test_without_approval_there_is_no_task_token_step():
    states = definition(synth({}))["States"]
    assert "WaitForApproval" not in states
