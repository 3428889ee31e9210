"""The Serving CDK construct synthesizes what the serving code expects (keys, env, grants, API key)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "cdk"))

cdk = pytest.importorskip("aws_cdk")
from aws_cdk.assertions import Match, Template  # noqa: E402

from driftstack.settings import (ArchiveSettings, CanaryEvalSettings, DriftCheckSettings,  # noqa: E402
                                 LogArchiverSettings, PredictSettings, RetrainSettings)


@pytest.fixture(scope="module")
def template(cdk_stack):
    return Template.from_stack(cdk_stack()[1])


def _functions(template):
    return {k: v["Properties"] for k, v in template.find_resources("AWS::Lambda::Function").items()
            if "Predict" in k or "LogArchiver" in k}


def test_functions_python312_with_both_layers_and_the_archive_layout(template):
    fns = _functions(template)
    assert len(fns) == 2
    for props in fns.values():
        assert props["Runtime"] == "python3.12" and props["Handler"] == "app.handler"
        assert len(props["Layers"]) == 2
        env = props["Environment"]["Variables"]
        assert {"MODELS_TABLE", "LOG_QUEUE_URL", "ARTIFACT_BUCKET", "ARCHIVE_SLOT_MINUTES"} <= set(env)
        assert ArchiveSettings.from_env(_resolved(env)).layout().slot_minutes == 5
        assert props["TracingConfig"] == {"Mode": "Active"}


def test_no_table_per_request_one_queue_with_a_dlq_and_a_scheduled_archiver(template):
    tables = template.find_resources("AWS::DynamoDB::Table")
    assert not any("RequestLog" in k for k in tables)       # no DynamoDB write per prediction
    template.has_resource_properties("AWS::SQS::Queue", {
        "RedrivePolicy": Match.object_like({"maxReceiveCount": 5})})
    template.resource_count_is("AWS::Lambda::EventSourceMapping", 0)
    rules = [v["Properties"] for v in template.find_resources("AWS::Events::Rule").values()
             if "LogArchiver" in json.dumps(v["Properties"].get("Targets", []))]
    assert len(rules) == 1 and rules[0]["ScheduleExpression"] == "rate(5 minutes)"


def test_slots_must_divide_an_hour_and_drift_windows_must_be_whole_slots(cdk_stack):
    with pytest.raises(ValueError, match="archive_slot_minutes must divide 60"):
        cdk_stack(archive_slot_minutes=7)
    with pytest.raises(ValueError, match="drift_window_minutes=12 must be a multiple of archive_slot_minutes=5"):
        cdk_stack(archive_slot_minutes=5, drift_window_minutes=12)
    from driftstack_cdk.serving import default_slot_minutes
    assert default_slot_minutes(None, None) == 5 and default_slot_minutes(1, 10) == 1 and default_slot_minutes(60, 12) == 4


def test_api_requires_key_and_has_throttled_usage_plan(template):
    methods = template.find_resources("AWS::ApiGateway::Method")
    assert methods and all(m["Properties"]["ApiKeyRequired"] is True for m in methods.values())
    template.has_resource_properties("AWS::ApiGateway::UsagePlan", {
        "Throttle": {"RateLimit": Match.any_value(), "BurstLimit": Match.any_value()}})
    template.resource_count_is("AWS::ApiGateway::UsagePlanKey", 1)
    outputs = template.to_json()["Outputs"]
    assert {"ApiId", "ApiStage", "ApiKeyId", "LogQueueUrl", "PredictFunctionName", "ArchiverFunctionName"} <= set(outputs)


def test_least_privilege(template):
    policies = template.find_resources("AWS::IAM::Policy")
    predict = next(v for k, v in policies.items() if "Predict" in k)
    actions = set()
    for stmt in predict["Properties"]["PolicyDocument"]["Statement"]:
        acts = stmt["Action"]
        actions |= set([acts] if isinstance(acts, str) else acts)
    assert "dynamodb:GetItem" in actions and "sqs:SendMessage" in actions
    forbidden = {"dynamodb:*", "s3:*", "dynamodb:Scan", "dynamodb:DeleteItem", "dynamodb:PutItem", "s3:DeleteObject*",
                 "sqs:*", "sqs:ReceiveMessage"}
    assert not actions & forbidden, actions & forbidden
    text = json.dumps(predict)
    assert "/models/*" in text and "/log-spill/*" in text and "/requests/*" not in text


def test_alarms_on_dlq_and_serving_metrics(template):
    alarms = [a["Properties"] for a in template.find_resources("AWS::CloudWatch::Alarm").values()]
    names = {a.get("MetricName") for a in alarms}
    assert {"ApproximateNumberOfMessagesVisible", "ModelLoadFailures", "RequestLogSpills"} <= names


def _resolved(env: dict) -> dict:
    """A function's environment with CloudFormation references (tables, queues, ARNs) as placeholders."""
    return {k: v if isinstance(v, str) else "resolved-at-deploy" for k, v in env.items()}


SETTINGS_OF = {"Predict": PredictSettings, "LogArchiver": LogArchiverSettings, "DriftCheck": DriftCheckSettings,
               "CanaryEval": CanaryEvalSettings}


def test_every_function_environment_is_read_by_its_settings_model(cdk_stack):
    """The CDK app and the functions agree on names and values: each function's synthesized
    environment parses with the function's settings model (unknown DRIFT_/DECISION_/CANARY_ refused)."""
    t = Template.from_stack(cdk_stack(drift_psi_threshold="0.3", decision_min_rmse_improvement="0.7",
                                      canary_max_latency_ratio="2", promote_canary_share="0.2")[1])
    checked = set()
    for logical_id, res in t.find_resources("AWS::Lambda::Function").items():
        props = res["Properties"]
        if not str(props.get("Handler", "")).startswith("app."):
            continue  # CDK's own helper functions
        model = next((m for prefix, m in SETTINGS_OF.items() if prefix in logical_id), RetrainSettings)
        settings = model.from_env(_resolved(props["Environment"]["Variables"]))
        checked.add(model.__name__)
        if model is DriftCheckSettings:
            assert settings.drift.build().psi_threshold == 0.3
        if model is RetrainSettings:
            assert settings.decision.build().min_rmse_improvement == 0.7 and settings.promote_canary_share == 0.2
        if model is CanaryEvalSettings:
            assert settings.canary.build().max_latency_ratio == 2.0
    assert checked == {"PredictSettings", "LogArchiverSettings", "DriftCheckSettings", "CanaryEvalSettings",
                       "RetrainSettings"}
