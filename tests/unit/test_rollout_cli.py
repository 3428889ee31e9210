"""`driftstack status` operations figures and `driftstack rollout` commands (moto)."""

from __future__ import annotations

import json

import boto3
import pytest
from click.testing import CliRunner

from driftstack.tools import ops_cli
from driftstack.tools.cli import cli
from driftstack.adapters.registry import read_pointer
from driftstack.adapters import rollout as ro
from driftstack.tools.toy_model import build_toy_model, publish

BUCKET = "artifacts"


@pytest.fixture
def stack(moto, monkeypatch, tmp_path):
    s3 = moto.bucket(BUCKET)
    moto.models_table()
    moto.history_table()
    cw = boto3.client("cloudwatch")
    for name in ("T-Api5xxRate", "T-CanaryRolledBack"):
        cw.put_metric_alarm(AlarmName=name, MetricName="m", Namespace="driftstack", Statistic="Sum", Period=300,
                            EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold")
    cw.set_alarm_state(AlarmName="T-CanaryRolledBack", StateValue="ALARM", StateReason="a canary was rolled back")
    models = boto3.resource("dynamodb").Table("models")
    publish(s3, models, BUCKET, build_toy_model(), version="1")
    cand = publish(s3, models, BUCKET, build_toy_model(per_mile=2.6), version="2", promote=False)
    outputs = {"ModelsTableName": "models", "HistoryTableName": "history", "BucketName": BUCKET,
               "AlarmNames": "T-Api5xxRate,T-CanaryRolledBack"}
    monkeypatch.setattr(ops_cli, "_outputs", lambda: outputs)
    yield outputs, models, cand


def test_collect_and_render_without_a_rollout(stack):
    outputs, _, _ = stack
    ops = ops_cli.collect(outputs)
    assert ops["rollout"] is None and ops["last_drift_check"] is None and ops["last_decision"] is None
    assert [a["alarm"] for a in ops["alarms"]] == ["T-Api5xxRate", "T-CanaryRolledBack"]
    assert [a["state"] == "ALARM" for a in ops["alarms"]] == [False, True]
    text = "\n".join(ops_cli.render(ops))
    assert "rollout: none" in text and "alarms: 2 (1 in ALARM)" in text and "a canary was rolled back" in text


def test_a_missing_table_is_reported_not_raised(stack):
    outputs, _, _ = stack
    ops = ops_cli.collect({**outputs, "HistoryTableName": "nope"})
    assert ops["last_drift_check"].startswith("unavailable: ") and ops["rollout"] is None


def test_rollout_group_is_registered():
    assert cli.commands["rollout"] is ops_cli.rollout


def run(_cli, args):
    # the group itself, not `driftstack` (whose --endpoint default would point boto3 away from moto)
    return CliRunner().invoke(ops_cli.rollout, args[1:])


def test_rollout_commands_start_show_rollback_complete(stack):
    outputs, models, cand = stack
    res = run(cli, ["rollout", "start", cand["prefix"], "--mode", "canary", "--share", "0.25"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["candidate_version"] == "2"
    assert "canary 25% of 2 next to 1" in "\n".join(ops_cli.render(ops_cli.collect(outputs)))
    res = run(cli, ["rollout", "start", cand["prefix"], "--mode", "shadow"])
    assert res.exit_code == 1 and "already active" in res.output
    res = run(cli, ["rollout", "rollback", "--reason", "looked odd"])
    assert res.exit_code == 0 and ro.last_outcome(models)["reason"] == "manual: looked odd"
    assert read_pointer(models).version == "1"
    assert run(cli, ["rollout", "start", cand["prefix"], "--mode", "shadow"]).exit_code == 0
    assert run(cli, ["rollout", "complete", "--reason", "ok"]).exit_code == 0
    assert read_pointer(models).version == "2"
    show = json.loads(run(cli, ["rollout", "show"]).output)
    assert show["rollout"] is None and show["last_rollout"]["outcome"] == "completed"
    res = run(cli, ["rollout", "rollback", "--reason", "x"])
    assert res.exit_code == 1 and "no rollout is active" in res.output


def test_rollout_start_names_a_missing_artifact(stack):
    res = run(cli, ["rollout", "start", "models/taxi-fare/0000000000000000/"])
    assert res.exit_code == 1 and "no model artifact under s3://artifacts/models/taxi-fare/0000000000000000/" in res.output


def test_traffic_figures_come_from_the_predict_functions_metrics(stack):
    outputs, _, _ = stack
    assert ops_cli.collect(outputs)["traffic"] == {
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
    t = ops_cli.collect(outputs)["traffic"]
    assert (t["requests"], t["validation_errors"], t["errors"]) == (42, 3, 0)
    assert (t["latency_ms_avg"], t["latency_ms_max"]) == (1.0, 1.5)
    assert ("traffic, last 60 min (CloudWatch): 42 predictions, 0 errors, 3 rejected as invalid"
            in "\n".join(ops_cli.render(ops_cli.collect(outputs))))
