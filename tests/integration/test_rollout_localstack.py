"""Safe rollout on a real LocalStack (cdklocal deploy, HTTP through API Gateway with the API key):
shadow scoring leaves responses unchanged and logs both predictions; a canary that fails on part of
the traffic is rolled back by the *scheduled* evaluation (EventBridge rate(1 minute)) with the
reason recorded; a healthy canary completes and the new champion serves everything; the alarms
exist in LocalStack's CloudWatch.  Tests run in file order against one deployment (~3-4 minutes).
"""

from __future__ import annotations

import json
import random

import boto3
import numpy as np
import onnxruntime as ort
import pytest
import requests

from driftstack import encoding
from driftstack.registry import read_pointer
from driftstack.schema import example_features
from driftstack.serving import rollout as ro
from driftstack.serving.toy_model import build_toy_model, publish
from deployed import deployed

from driftstack.polling import wait_for

pytestmark = [pytest.mark.localstack, pytest.mark.e2e, pytest.mark.slow]

STACK = "DriftstackRolloutTest"
CHAMPION_BLOB = build_toy_model()



def expected(blob: bytes, rows: list[dict]) -> np.ndarray:
    return ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(
        ["prediction"], encoding.encode(rows))[0].reshape(-1)


def trips(n: int, seed: int, long_share: float = 0.0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        f = example_features()
        f.update(trip_distance=round(rng.uniform(11, 30) if rng.random() < long_share else rng.uniform(0.5, 9), 2),
                 trip_duration_minutes=round(rng.uniform(3, 60), 1), pickup_hour=rng.randrange(24))
        out.append(f)
    return out


@pytest.fixture(scope="module")
def api(localstack):
    with deployed(localstack, STACK, {"model_refresh_seconds": "2", "canary_schedule_minutes": "1",
                                      "canary_min_requests": "30", "drift_schedule_minutes": "60"}) as api:
        yield api


def predict(api, features: dict, request_id: str) -> requests.Response:
    return api.http.post(f"{api.base}/predict", data=json.dumps({"features": features}), timeout=30,
                         headers={"content-type": "application/json", "x-request-id": request_id})


def log_record(api, rid: str) -> dict:
    item = api.ddb.get_item(TableName=api.outputs["RequestLogTableName"], Key={"request_id": {"S": rid}})["Item"]
    return {k: next(iter(v.values())) for k, v in item.items()}


@pytest.fixture(scope="module")
def champion(api):
    v1 = publish(api.s3, api.models, api.bucket, CHAMPION_BLOB, version="1")
    wait_for(lambda: api.health().get("model_version") == "1", what="version 1 to be served")
    return v1


def start(api, blob: bytes, version: str, mode: str, share: float = 0.5) -> ro.Rollout:
    cand = publish(api.s3, api.models, api.bucket, blob, version=version, promote=False)
    r = ro.start(api.models, mode=mode, share=share, model_name="taxi-fare", version=version, bucket=api.bucket,
                 prefix=cand["prefix"], sha256=cand["sha256"], reason="integration test")
    wait_for(lambda: (api.health().get("rollout") or {}).get("rollout_id") == r.rollout_id, timeout=30,
             what=f"{mode} {version} visible in /health")
    return r


def test_shadow_keeps_responses_and_logs_both(api, champion):
    rows = trips(20, seed=1)
    chal = build_toy_model(per_mile=3.1, bump=1.0)
    r = start(api, chal, "2", ro.SHADOW)
    model = api.http.get(f"{api.base}/model", timeout=30).json()
    assert model["model_version"] == "1" and model["rollout"]["mode"] == ro.SHADOW
    want, want_shadow = expected(CHAMPION_BLOB, rows), expected(chal, rows)
    for i, row in enumerate(rows):
        resp = predict(api, row, f"it-shadow-{i:04d}")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["model_version"] == "1" and body["predicted_fare"] == pytest.approx(float(want[i]), abs=1e-3)
        rec = log_record(api, f"it-shadow-{i:04d}")
        assert float(rec["shadow_prediction"]) == pytest.approx(float(want_shadow[i]), abs=1e-3)
        assert rec["shadow_version"] == "2" and rec["rollout_id"] == r.rollout_id
    ro.rollback(api.models, r, reason="shadow comparison done", outcome="stopped")
    wait_for(lambda: "rollout" not in api.health(), timeout=30, what="shadow detached")


def test_bad_canary_is_rolled_back_by_the_schedule(api, champion):
    r = start(api, build_toy_model(nan_above_distance=10.5), "3", ro.CANARY, share=0.5)
    for i, row in enumerate(trips(90, seed=2, long_share=0.4)):
        resp = predict(api, row, f"it-bad-{i:04d}")
        assert resp.status_code == 200, resp.text  # a failing candidate never fails a request
    outcome = wait_for(lambda: (o := ro.outcome_of(api.models, r.rollout_id)) and o, timeout=180, interval=3,
                       what="the scheduled canary evaluation to decide")
    assert outcome["outcome"] == "rolled_back", outcome
    assert "error rate" in outcome["reason"] and "non-finite" in outcome["reason"]
    assert read_pointer(api.models).version == "1" and ro.read(api.models) is None
    wait_for(lambda: "rollout" not in api.health(), timeout=30, what="canary gone from /health")
    assert api.health()["model_version"] == "1"


def test_good_canary_completes(api, champion):
    r = start(api, build_toy_model(per_mile=2.52), "4", ro.CANARY, share=0.5)
    versions = set()
    for i, row in enumerate(trips(100, seed=3)):
        resp = predict(api, row, f"it-good-{i:04d}")
        assert resp.status_code == 200, resp.text
        versions.add(resp.json()["model_version"])
    assert versions == {"1", "4"}
    lam = boto3.client("lambda")
    out = json.loads(lam.invoke(FunctionName=api.outputs["CanaryEvalFunctionName"],
                                Payload=b"{}")["Payload"].read())
    # the schedule may have decided first; either way the outcome is recorded for this rollout
    assert out["status"] in ("complete", "idle"), out
    outcome = ro.outcome_of(api.models, r.rollout_id)
    assert outcome["outcome"] == "completed", outcome
    assert read_pointer(api.models).version == "4"
    wait_for(lambda: api.health().get("model_version") == "4" and "rollout" not in api.health(), timeout=30,
             what="version 4 served to everyone")


def test_alarms_exist_in_localstack(api):
    names = api.outputs["AlarmNames"].split(",")
    found = boto3.client("cloudwatch").describe_alarms(AlarmNames=names)["MetricAlarms"]
    assert sorted(a["AlarmName"] for a in found) == sorted(names)
    assert any(a["AlarmName"].endswith("-CanaryRolledBack") for a in found)
    assert all(a["AlarmActions"] == [api.outputs["AlertTopicArn"]] for a in found)


def test_an_alarm_state_change_notifies_the_alert_topic(api):
    """LocalStack runs alarm actions on state changes (its own metric evaluation runs every
    EvaluationPeriods x Period, 5+ minutes here, so the state is set directly)."""
    sqs, sns, cw = boto3.client("sqs"), boto3.client("sns"), boto3.client("cloudwatch")
    queue = sqs.create_queue(QueueName=f"{STACK}-alerts")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sub = sns.subscribe(TopicArn=api.outputs["AlertTopicArn"], Protocol="sqs", Endpoint=arn,
                        ReturnSubscriptionArn=True)["SubscriptionArn"]
    try:
        name = next(n for n in api.outputs["AlarmNames"].split(",") if n.endswith("-CanaryRolledBack"))
        cw.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="integration test: canary rolled back")

        def received():
            msgs = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", [])
            return [m for m in msgs if name in m["Body"]]
        msgs = wait_for(received, timeout=30, what="the alarm notification on the alert topic")
        assert "ALARM" in msgs[0]["Body"]
    finally:
        sns.unsubscribe(SubscriptionArn=sub)
        sqs.delete_queue(QueueUrl=queue)
