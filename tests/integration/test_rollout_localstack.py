"""Safe rollout on a real LocalStack (cdklocal deploy, HTTP through API Gateway with the API key):
shadow scoring leaves responses unchanged and logs both predictions; a canary that fails on part of
the traffic is rolled back by the *scheduled* evaluation (EventBridge rate(1 minute)) with the
reason recorded; a healthy canary completes and the new champion serves everything; a candidate
no container can load (sha256 mismatch) is recorded by the predict function and rolled back at the
next evaluation, with no traffic and long before max_minutes; a canary started by the deployed
promote step (``promote_canary_share``) completes and leaves what a direct promotion leaves (pointer,
MLflow alias in a real registry, decision record, ModelPromoted event, SNS notification); the alarms
exist in LocalStack's CloudWatch.  Tests run in file order against one deployment (~4-5 minutes).
"""

from __future__ import annotations

import json
import random

import boto3
import numpy as np
import onnxruntime as ort
import pytest
import requests

from driftstack.domain import decision as D
from driftstack.adapters import decision_store
from driftstack.domain import encoding
from driftstack.usecases import promotion as P
from driftstack.adapters.registry import read_pointer
from driftstack.contract.api import example_features
from driftstack.adapters import rollout as ro
from driftstack.tools.toy_model import build_toy_model, publish
from deployed import deployed

from driftstack.tools.polling import wait_for

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
def mlflow_uri(tmp_path_factory):
    """A registry of this test's own (never the developer's .state/mlflow), with versions 1-6 of the
    toy model registered, so the promotion's alias can really be set."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("taxi-fare")
    for _ in range(6):
        client.create_model_version("taxi-fare", source=str(path))
    return uri


@pytest.fixture(scope="module")
def api(localstack, mlflow_uri):
    with deployed(localstack, STACK, {"model_refresh_seconds": "2", "canary_schedule_minutes": "1",
                                      "canary_min_requests": "30", "drift_schedule_minutes": "60",
                                      "promote_canary_share": "0.5",
                                      "retrain_mlflow": json.dumps({"tracking_uri": mlflow_uri})}) as api:
        yield api


def predict(api, features: dict, request_id: str) -> requests.Response:
    return api.http.post(f"{api.base}/predict", data=json.dumps({"features": features}), timeout=30,
                         headers={"content-type": "application/json", "x-request-id": request_id})


def log_record(api, client_id: str, logged: dict | None = None) -> dict:
    """The archived record sent with this X-Request-Id (the log keys records by our own id)."""
    logged = api.archived() if logged is None else logged
    found = [r for r in logged.values() if r.get("client_request_id") == client_id]
    assert len(found) == 1, (client_id, len(found))
    return found[0]


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
    logged = api.archived()
    for i in range(len(rows)):
        rec = log_record(api, f"it-shadow-{i:04d}", logged)
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


def test_unloadable_canary_is_rolled_back_at_the_next_evaluation(api, champion):
    incumbent = read_pointer(api.models).version
    cand = publish(api.s3, api.models, api.bucket, build_toy_model(per_mile=2.7), version="5", promote=False)
    r = ro.start(api.models, mode=ro.CANARY, share=0.5, model_name="taxi-fare", version="5", bucket=api.bucket,
                 prefix=cand["prefix"], sha256="e" * 64, reason="integration test: wrong sha256")
    # the predict function refuses it (every request stays on the champion) and records why
    wait_for(lambda: (api.health().get("rollout") or {}).get("candidate_loaded") is False, timeout=30,
             what="the candidate refused in /health")
    stored = wait_for(lambda: (x := ro.read(api.models)) and x.load_failure and x, timeout=30,
                      what="the load failure recorded on the rollout")
    assert stored.rollout_id == r.rollout_id and stored.load_failure.startswith("sha256 mismatch")
    out = json.loads(api.lam.invoke(FunctionName=api.outputs["CanaryEvalFunctionName"], Payload=b"{}")["Payload"].read())
    assert out["status"] in ("rollback", "idle"), out  # the schedule may have been first
    outcome = ro.outcome_of(api.models, r.rollout_id)
    assert outcome["outcome"] == "rolled_back", outcome
    assert outcome["reason"].startswith("candidate could not be loaded: sha256 mismatch")
    assert outcome["evaluation"]["candidate"]["requests"] == 0       # not the max_minutes path (1440 min)
    assert read_pointer(api.models).version == incumbent
    wait_for(lambda: "rollout" not in api.health(), timeout=30, what="the refused canary gone from /health")


def _promote_fn(api) -> str:
    names = [f["FunctionName"] for page in api.lam.get_paginator("list_functions").paginate()
             for f in page["Functions"] if f["FunctionName"].startswith(STACK) and "PromoteFn" in f["FunctionName"]]
    assert len(names) == 1, names
    return names[0]


def test_promotion_canary_completes_like_a_direct_promotion(api, champion, mlflow_uri):
    """The deployed promote step (promote_canary_share=0.5) starts the canary; the scheduled
    evaluation completes it and finishes the promotion."""
    sqs, sns, events = boto3.client("sqs"), boto3.client("sns"), boto3.client("events")
    incumbent = read_pointer(api.models).version
    cand = publish(api.s3, api.models, api.bucket, build_toy_model(per_mile=2.55), version="6", promote=False)
    run_id = "it-promotion-canary"
    evaluation = {"holdout": {"rows": 300},
                  "champion": {"model_name": "taxi-fare", "version": incumbent, "metrics": {"rmse": 9.0}},
                  "challenger": {"model_name": "taxi-fare", "version": "6", "sha256": cand["sha256"],
                                 "prefix": cand["prefix"], "bucket": api.bucket, "metrics": {"rmse": 4.0}}}
    decision_store.save_record(api.s3, api.bucket, api.history, {"run_id": run_id, "outcome": "decided", "evaluation": evaluation})
    queues = {}
    for name in ("notes", "events"):
        url = sqs.create_queue(QueueName=f"{STACK}-{name}")["QueueUrl"]
        queues[name] = (url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])
    sub = sns.subscribe(TopicArn=api.outputs["NotificationTopicArn"], Protocol="sqs", Endpoint=queues["notes"][1],
                        ReturnSubscriptionArn=True)["SubscriptionArn"]
    rule = f"{STACK}-promoted"
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["driftstack"], "detail-type": ["ModelPromoted"]}))
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": queues["events"][1]}])
    got: dict[str, list] = {"notes": [], "events": []}

    def drain(name: str) -> list:
        got[name] += [json.loads(m["Body"]) for m in
                      sqs.receive_message(QueueUrl=queues[name][0], MaxNumberOfMessages=10,
                                          WaitTimeSeconds=1).get("Messages", [])]
        return got[name]
    try:
        resp = api.lam.invoke(FunctionName=_promote_fn(api), Payload=json.dumps({
            "run_id": run_id, "champion": {"model_name": "taxi-fare", "version": incumbent},
            "evaluation": evaluation, "decision": {"outcome": "promote", "reasons": ["RMSE 4.0 vs 9.0"]}}).encode())
        started = json.loads(resp["Payload"].read())
        assert "FunctionError" not in resp and started["outcome"] == P.CANARY, started
        r = ro.read(api.models)
        assert (r.run_id, r.pointer.version, r.incumbent_version, r.share) == (run_id, "6", incumbent, 0.5)
        wait_for(lambda: (api.health().get("rollout") or {}).get("rollout_id") == r.rollout_id, timeout=30,
                 what="the promotion's canary visible in /health")
        versions = set()
        for i, row in enumerate(trips(100, seed=4)):
            resp = predict(api, row, f"it-promo-{i:04d}")
            assert resp.status_code == 200, resp.text
            versions.add(resp.json()["model_version"])
        assert versions == {incumbent, "6"}
        outcome = wait_for(lambda: (o := ro.outcome_of(api.models, r.rollout_id)) and o, timeout=240, interval=3,
                           what="the scheduled canary evaluation to complete the promotion")
        assert outcome["outcome"] == "completed" and outcome["run_id"] == run_id, outcome
        record = wait_for(lambda: (x := decision_store.load_record(api.s3, api.bucket, run_id)) and x["outcome"] != P.CANARY and x,
                          timeout=60, what="the decision record finished")
        # what a direct promotion leaves (tests/integration/test_loop.py), plus the canary's evidence
        ptr = read_pointer(api.models)
        assert ptr.version == "6"
        item = api.models.get_item(Key={"pk": "pointer#champion"})["Item"]
        assert item["promoted_by"] == run_id
        assert record["outcome"] == D.PROMOTED and record["promoted_via"] == "canary", record
        assert record["pointer"]["version"] == "6" and "promotion_errors" not in record
        assert record["mlflow_alias"]["status"] == "set" and record["mlflow_alias"]["version"] == "6", record["mlflow_alias"]
        assert record["canary"]["evaluation"]["outcome"] == "complete"
        assert decision_store.list_records(api.history)[0]["run_id"] == run_id
        from mlflow import MlflowClient
        assert str(MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
                   .get_model_version_by_alias("taxi-fare", "champion").version) == "6"
        ev = wait_for(lambda: [e for e in drain("events") if e["detail"].get("run_id") == run_id], timeout=30,
                      what="the ModelPromoted event")
        assert (ev[0]["detail"]["version"], ev[0]["detail"]["previous_version"]) == ("6", incumbent)
        assert ev[0]["detail"]["metrics"] == {"rmse": 4.0} and ev[0]["detail"]["promoted_via"] == "canary"
        note = wait_for(lambda: [n for n in drain("notes") if n.get("Subject") == f"driftstack retraining {run_id}: promoted"],
                        timeout=30, what="the promotion notification")
        assert json.loads(note[0]["Message"])["version"] == "6"
        wait_for(lambda: api.health().get("model_version") == "6" and "rollout" not in api.health(), timeout=30,
                 what="version 6 served to everyone")
    finally:
        sns.unsubscribe(SubscriptionArn=sub)
        events.remove_targets(Rule=rule, Ids=["q"])
        events.delete_rule(Name=rule)
        for url, _ in queues.values():
            sqs.delete_queue(QueueUrl=url)


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
