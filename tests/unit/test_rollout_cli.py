"""`driftstack status`, `watch list`, `decisions` and `rollout` against a stack in moto (AWS as target)."""

from __future__ import annotations

import json

import boto3
import pytest
from click.testing import CliRunner

from driftstack.adapters import decision_store
from driftstack.adapters import rollout as ro
from driftstack.adapters.registry import read_pointer
from driftstack.tools import api_client, aws_target, operations
from driftstack.tools.aws_target import Target
from driftstack.tools.cli import cli, status
from driftstack.tools.cli.root import State
from driftstack.tools.toy_model import build_toy_model, publish

BUCKET = "artifacts"
DECISION = {"run_id": "retrain-1", "outcome": "promoted", "started_at": "2026-12-01T10:00:00Z",
            "champion_metrics": {"rmse": 4.0}, "challenger_metrics": {"rmse": 3.5}, "reasons": ["RMSE better"]}


@pytest.fixture
def stack(moto, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_REGION", "us-east-1")  # the CLI exports its target; monkeypatch restores it
    monkeypatch.setenv("COLUMNS", "200")  # wide tables: no folded cells
    monkeypatch.setattr(aws_target, "localstack_url_from_state", lambda: None)  # no LocalStack here: AWS
    s3 = moto.bucket(BUCKET)
    moto.models_table()
    history = moto.history_table()
    cw = boto3.client("cloudwatch")
    for name in ("T-Api5xxRate", "T-CanaryRolledBack"):
        cw.put_metric_alarm(AlarmName=name, MetricName="m", Namespace="driftstack", Statistic="Sum", Period=300,
                            EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold")
    cw.set_alarm_state(AlarmName="T-CanaryRolledBack", StateValue="ALARM", StateReason="a canary was rolled back")
    models = boto3.resource("dynamodb").Table("models")
    publish(s3, models, BUCKET, build_toy_model(), version="1")
    cand = publish(s3, models, BUCKET, build_toy_model(per_mile=2.6), version="2", promote=False)
    history.put_item(Item={"pk": decision_store.HISTORY_DECISION, "sk": f"{DECISION['started_at']}#retrain-1",
                           "run_id": "retrain-1", "doc": json.dumps(DECISION)})
    machine = boto3.client("stepfunctions").create_state_machine(
        name="retrain", roleArn="arn:aws:iam::123456789012:role/sfn",
        definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}))["stateMachineArn"]
    outputs = {"ModelsTableName": "models", "HistoryTableName": "history", "BucketName": BUCKET,
               "AlarmNames": "T-Api5xxRate,T-CanaryRolledBack", "StateMachineArn": machine}
    # moto's CloudFormation needs a package we do not install: the outputs and stack come from here.
    monkeypatch.setattr(api_client, "deployed_outputs", lambda target, stack: outputs)
    monkeypatch.setattr(status, "_stack", lambda state: {"name": state.stack, "status": "CREATE_COMPLETE",
                                                         "updated": "2026-12-01"})
    yield outputs, models, cand


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_collect_without_a_rollout(stack):
    outputs, _, _ = stack
    ops = operations.collect(Target(), outputs)
    assert ops["rollout"] is None and ops["drift_checks"] == [] and ops["decisions"][0]["run_id"] == "retrain-1"
    assert [a["alarm"] for a in ops["alarms"]] == ["T-Api5xxRate", "T-CanaryRolledBack"]
    assert [a["state"] == "ALARM" for a in ops["alarms"]] == [False, True]


def test_a_missing_table_is_reported_not_raised(stack):
    outputs, _, _ = stack
    ops = operations.collect(Target(), {**outputs, "HistoryTableName": "nope"})
    assert ops["drift_checks"].startswith("unavailable: ") and ops["rollout"] is None


def test_status_reads_as_tables_and_json(stack, monkeypatch):
    class FakeApi:
        def call(self, method, path):
            return 200, {"status": "ok"} if path == "/health" else {"model_name": "taxi-fare", "version": "1"}

    monkeypatch.setattr(State, "api", lambda self: FakeApi())
    res = run("status")
    assert res.exit_code == 0, res.output
    for title in ("deployment", "CREATE_COMPLETE", "champion model", "taxi-fare", "rollout", "drift checks",
                  "retraining runs", "retrain-1", "alarms: 2 (1 in ALARM)", "a canary was rolled back"):
        assert title in res.output, title
    doc = json.loads(run("status", "--json").output)
    assert doc["model"]["version"] == "1" and doc["target"]["account"] and doc["stack"]["status"] == "CREATE_COMPLETE"
    assert doc["operations"]["decisions"][0]["outcome"] == "promoted"


@pytest.mark.parametrize("command", [["watch", "list"], ["decisions"], ["decisions", "list"]])
def test_watch_list_and_decisions_list_runs(stack, command):
    res = run(*command)
    assert res.exit_code == 0, res.output
    assert "retrain-1" in res.output and "4.000 → 3.500" in res.output
    assert json.loads(run(*command, "--json").output)[0]["run_id"] == "retrain-1"


def test_decisions_pending_and_approve(stack):
    history = boto3.resource("dynamodb").Table("history")
    decision_store.store_approval_request(history, "retrain-2", "token-1", {"challenger_version": "2"})
    assert json.loads(run("decisions", "pending", "--json").output)[0]["run_id"] == "retrain-2"
    assert "retrain-2" in run("decisions", "pending").output
    res = run("decisions", "approve", "retrain-3")
    assert res.exit_code == 1 and "has no pending approval" in res.stderr


def test_watch_live_once(stack):
    res = run("watch", "--once")
    assert res.exit_code == 0 and "no executions yet" in res.output
    res = run("watch", "retrain-nope", "--once")
    assert res.exit_code == 1 and "`driftstack watch list`" in res.stderr and "Traceback" not in res.output


def test_watch_checks_lists_drift_checks(stack):
    res = run("watch", "checks", "--json")
    assert res.exit_code == 0 and json.loads(res.output) == []


def test_rollout_commands_start_show_rollback_complete(stack):
    _, models, cand = stack
    res = run("rollout", "start", cand["prefix"], "--mode", "canary", "--share", "0.25")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["candidate_version"] == "2"
    assert "canary 25% of 2 next to 1" in run("rollout", "show").output
    res = run("rollout", "start", cand["prefix"], "--mode", "shadow")
    assert res.exit_code == 1 and "already active" in res.output
    res = run("rollout", "rollback", "--reason", "looked odd")
    assert res.exit_code == 0 and ro.last_outcome(models)["reason"] == "manual: looked odd"
    assert read_pointer(models).version == "1"
    assert run("rollout", "start", cand["prefix"], "--mode", "shadow").exit_code == 0
    assert run("rollout", "complete", "--reason", "ok").exit_code == 0
    assert read_pointer(models).version == "2"
    show = json.loads(run("rollout", "show", "--json").output)
    assert show["rollout"] is None and show["last_rollout"]["outcome"] == "completed"
    res = run("rollout", "rollback", "--reason", "x")
    assert res.exit_code == 1 and "no rollout is active" in res.output


def test_rollout_start_names_a_missing_artifact(stack):
    res = run("rollout", "start", "models/taxi-fare/0000000000000000/")
    assert res.exit_code == 1 and "no model artifact under s3://artifacts/models/taxi-fare/0000000000000000/" in res.output


def test_traffic_figures_come_from_the_predict_functions_metrics(stack):
    outputs, _, _ = stack
    assert operations.collect(Target(), outputs)["traffic"] == {
        "minutes": 60, "requests": 0, "errors": 0, "validation_errors": 0, "no_model": 0, "log_spills": 0,
        "latency_ms_avg": None, "latency_ms_max": None}
    cw = boto3.client("cloudwatch")
    dims = [{"Name": "service", "Value": "driftstack-predict"}]
    cw.put_metric_data(Namespace="driftstack", MetricData=[
        {"MetricName": "Predictions", "Dimensions": dims, "Value": 40, "Unit": "Count"},
        {"MetricName": "Predictions", "Dimensions": dims, "Value": 2, "Unit": "Count"},
        {"MetricName": "ValidationErrors", "Dimensions": dims, "Value": 3, "Unit": "Count"},
        {"MetricName": "PredictLatency", "Dimensions": dims, "Value": 0.5, "Unit": "Milliseconds"},
        {"MetricName": "PredictLatency", "Dimensions": dims, "Value": 1.5, "Unit": "Milliseconds"},
        {"MetricName": "Predictions", "Dimensions": [{"Name": "service", "Value": "other"}], "Value": 99}])
    t = operations.collect(Target(), outputs)["traffic"]
    assert (t["requests"], t["validation_errors"], t["errors"]) == (42, 3, 0)
    assert (t["latency_ms_avg"], t["latency_ms_max"]) == (1.0, 1.5)



def test_drift_check_runs_here_with_overrides(stack, monkeypatch):
    from driftstack.usecases import drift_check

    res = run("drift-check", "--local", "--no-persist")  # the toy champion has no reference profile
    assert res.exit_code == 1 and "profile.json" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    seen = {}

    def fake_check(*, cfg, now, layout, **_):
        seen.update(cfg=cfg, now=now, slot=layout.slot_minutes)
        return {"check_id": "c1", "status": "ok", "samples": 0}

    monkeypatch.setattr(drift_check, "run_check", fake_check)
    res = run("drift-check", "--local", "--no-persist", "--set", "window_minutes=60", "--at", "2026-12-01T10:00:00Z",
              "--json")
    assert res.exit_code == 0 and json.loads(res.output)["check_id"] == "c1", res.output
    assert seen["cfg"].window_minutes == 60 and seen["now"] == "2026-12-01T10:00:00Z" and seen["slot"] == 5
    assert run("watch", "checks", "--json").output.strip() == "[]"  # --no-persist wrote nothing
