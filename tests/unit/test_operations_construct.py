"""The Operations construct: alarms with the right metrics/thresholds, all wired to the alert topic,
an optional webhook subscription, and the dashboard."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "cdk"))

cdk = pytest.importorskip("aws_cdk")
from aws_cdk.assertions import Template  # noqa: E402

from driftstack.contract import features as fc  # noqa: E402


def _synth(cdk_stack, **context) -> Template:
    return Template.from_stack(cdk_stack(**context)[1])


@pytest.fixture(scope="module")
def template(cdk_stack):
    return _synth(cdk_stack)


def _alarms(template) -> dict[str, dict]:
    return {k: v["Properties"] for k, v in template.find_resources("AWS::CloudWatch::Alarm").items()}


def _named(template, suffix: str) -> dict:
    hits = [p for p in _alarms(template).values() if str(p.get("AlarmName", "")).endswith("-" + suffix)]
    assert len(hits) == 1, f"alarm {suffix} not found once"
    return hits[0]


def _topic_id(template) -> str:
    topics = [k for k in template.find_resources("AWS::SNS::Topic") if "Notifications" in k]
    assert len(topics) == 1
    return topics[0]


def test_every_alarm_notifies_the_alert_topic(template):
    topic = _topic_id(template)
    alarms = _alarms(template)
    assert len(alarms) >= 9  # 6 operations alarms + 3 serving alarms
    for props in alarms.values():
        assert props["AlarmActions"] == [{"Ref": topic}]
        assert props["OKActions"] == [{"Ref": topic}]
        assert props["TreatMissingData"] == "notBreaching"


def test_api_5xx_rate_is_errors_over_requests(template):
    a = _named(template, "Api5xxRate")
    exprs = {m["Id"]: m for m in a["Metrics"]}
    assert "100 * errors / requests" in next(m["Expression"] for m in exprs.values() if "Expression" in m)
    assert exprs["errors"]["MetricStat"]["Metric"]["MetricName"] == "5XXError"
    assert exprs["requests"]["MetricStat"]["Metric"]["MetricName"] == "Count"
    assert exprs["errors"]["MetricStat"]["Metric"]["Namespace"] == "AWS/ApiGateway"
    assert a["Threshold"] == 5 and a["ComparisonOperator"] == "GreaterThanThreshold"
    assert (a["EvaluationPeriods"], a["DatapointsToAlarm"]) == (3, 2)


def test_latency_p99_alarms(template):
    a = _named(template, "PredictLatencyP99")
    assert (a["MetricName"], a["Namespace"], a["ExtendedStatistic"]) == ("PredictLatency", "driftstack", "p99")
    assert a["Dimensions"] == [{"Name": "service", "Value": "driftstack-predict"}]
    assert a["Threshold"] == 100
    api = _named(template, "ApiLatencyP99")
    assert (api["MetricName"], api["Namespace"], api["ExtendedStatistic"]) == ("Latency", "AWS/ApiGateway", "p99")


def test_drift_retraining_canary_alarms(template):
    d = _named(template, "DriftDetected")
    assert (d["MetricName"], d["Statistic"], d["Threshold"]) == ("DriftTriggered", "Maximum", 1)
    assert d["Dimensions"] == [{"Name": "service", "Value": "driftstack-drift-check"}]
    assert d["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    r = _named(template, "RetrainingFailed")
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in r["Metrics"] if "MetricStat" in m}
    assert names == {"ExecutionsFailed", "ExecutionsTimedOut"}
    assert all(m["MetricStat"]["Metric"]["Namespace"] == "AWS/States" for m in r["Metrics"] if "MetricStat" in m)
    assert r["Threshold"] == 1
    c = _named(template, "CanaryRolledBack")
    assert (c["MetricName"], c["Statistic"], c["Threshold"]) == ("CanaryRollbacks", "Sum", 1)
    assert c["Dimensions"] == [{"Name": "service", "Value": "driftstack-canary-eval"}]


def test_log_spill_alarm_is_the_serving_one(template):
    hits = [p for p in _alarms(template).values() if p.get("MetricName") == "RequestLogSpills"]
    assert len(hits) == 1 and hits[0]["Threshold"] == 0


def test_dashboard_has_psi_per_feature_and_model_version(template):
    boards = template.find_resources("AWS::CloudWatch::Dashboard")
    assert len(boards) == 1
    body = json.dumps(next(iter(boards.values()))["Properties"]["DashboardBody"])
    for name in fc.FEATURE_NAMES:
        assert f"FeaturePSI_{name}" in body
    for needle in ("PredictLatency", "5XXError", "stats count(*) by model_version", "CanaryRequests"):
        assert needle in body


def test_threshold_context_and_webhook_subscription(cdk_stack):
    t = _synth(cdk_stack, alarm_5xx_rate_percent="2", alarm_latency_p99_ms="40",
               alert_webhook_url="https://hooks.example.com/driftstack")
    assert _named(t, "Api5xxRate")["Threshold"] == 2
    assert _named(t, "PredictLatencyP99")["Threshold"] == 40
    subs = [v["Properties"] for v in t.find_resources("AWS::SNS::Subscription").values()]
    assert any(s["Protocol"] == "https" and s["Endpoint"] == "https://hooks.example.com/driftstack" for s in subs)


def test_canary_evaluation_function_on_a_schedule(template):
    fns = {k: v["Properties"] for k, v in template.find_resources("AWS::Lambda::Function").items() if "CanaryEval" in k}
    assert len(fns) == 1
    (fn_id, props), = fns.items()
    assert props["Handler"] == "app.handler" and props["Runtime"] == "python3.12" and len(props["Layers"]) == 2
    assert {"MODELS_TABLE", "LOG_QUEUE_URL", "ARCHIVE_SLOT_MINUTES"} <= set(props["Environment"]["Variables"])
    rules = [v["Properties"] for v in template.find_resources("AWS::Events::Rule").values()
             if any(fn_id in json.dumps(t) for t in v["Properties"].get("Targets", []))]
    assert len(rules) == 1 and rules[0]["ScheduleExpression"] == "rate(5 minutes)"
    policies = [v["Properties"]["PolicyDocument"] for v in template.find_resources("AWS::IAM::Policy").values()
                if {"Ref": props["Role"]["Fn::GetAtt"][0]} in v["Properties"].get("Roles", [])]
    actions = {a for doc in policies for st in doc["Statement"]
               for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])}
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "sqs:ReceiveMessage"} <= actions
    assert not any(a.startswith("dynamodb:") and a.endswith("*") for a in actions)


def test_canary_criteria_from_context(cdk_stack):
    t = _synth(cdk_stack, canary_max_latency_ratio="2", canary_schedule_minutes="1")
    (props,) = [v["Properties"] for k, v in t.find_resources("AWS::Lambda::Function").items() if "CanaryEval" in k]
    assert props["Environment"]["Variables"]["CANARY_MAX_LATENCY_RATIO"] == "2"
