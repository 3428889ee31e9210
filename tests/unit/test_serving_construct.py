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

from driftstack.serving.request_log import GSI_NAME, table_definition  # noqa: E402


@pytest.fixture(scope="module")
def template(cdk_stack):
    return Template.from_stack(cdk_stack()[1])


def _functions(template):
    return {k: v["Properties"] for k, v in template.find_resources("AWS::Lambda::Function").items()
            if "Predict" in k or "ReplayLog" in k}


def test_functions_python312_with_both_layers(template):
    fns = _functions(template)
    assert len(fns) == 2
    for props in fns.values():
        assert props["Runtime"] == "python3.12" and props["Handler"] == "app.handler"
        assert len(props["Layers"]) == 2
        env = props["Environment"]["Variables"]
        assert {"MODELS_TABLE", "REQUEST_LOG_TABLE", "ARTIFACT_BUCKET", "FALLBACK_QUEUE_URL"} <= set(env)
        assert props["TracingConfig"] == {"Mode": "Active"}


def test_request_log_table_matches_the_code(template):
    want = table_definition("x")
    template.has_resource_properties("AWS::DynamoDB::Table", {
        "KeySchema": want["KeySchema"],
        "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
        "GlobalSecondaryIndexes": [Match.object_like({
            "IndexName": GSI_NAME, "KeySchema": want["GlobalSecondaryIndexes"][0]["KeySchema"]})],
    })


def test_fallback_queue_has_dlq_and_replay_reports_item_failures(template):
    template.has_resource_properties("AWS::SQS::Queue", {
        "RedrivePolicy": Match.object_like({"maxReceiveCount": 5})})
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "FunctionResponseTypes": ["ReportBatchItemFailures"], "BatchSize": 10})


def test_api_requires_key_and_has_throttled_usage_plan(template):
    methods = template.find_resources("AWS::ApiGateway::Method")
    assert methods and all(m["Properties"]["ApiKeyRequired"] is True for m in methods.values())
    template.has_resource_properties("AWS::ApiGateway::UsagePlan", {
        "Throttle": {"RateLimit": Match.any_value(), "BurstLimit": Match.any_value()}})
    template.resource_count_is("AWS::ApiGateway::UsagePlanKey", 1)
    outputs = template.to_json()["Outputs"]
    assert {"ApiId", "ApiStage", "ApiKeyId", "RequestLogTableName", "PredictFunctionName"} <= set(outputs)


def test_least_privilege(template):
    policies = template.find_resources("AWS::IAM::Policy")
    predict = next(v for k, v in policies.items() if "Predict" in k)
    actions = set()
    for stmt in predict["Properties"]["PolicyDocument"]["Statement"]:
        acts = stmt["Action"]
        actions |= set([acts] if isinstance(acts, str) else acts)
    assert "dynamodb:GetItem" in actions and "dynamodb:PutItem" in actions
    forbidden = {"dynamodb:*", "s3:*", "dynamodb:Scan", "dynamodb:DeleteItem", "s3:DeleteObject*", "sqs:*"}
    assert not actions & forbidden, actions & forbidden
    text = json.dumps(predict)
    assert "/models/*" in text and "/requests/*" in text and "/feedback/*" in text


def test_alarms_on_dlq_and_serving_metrics(template):
    alarms = [a["Properties"] for a in template.find_resources("AWS::CloudWatch::Alarm").values()]
    names = {a.get("MetricName") for a in alarms}
    assert {"ApproximateNumberOfMessagesVisible", "ModelLoadFailures", "RequestLogFallbacks"} <= names
