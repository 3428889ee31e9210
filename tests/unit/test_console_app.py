"""The console's pages and JSON endpoints (Starlette TestClient) over a stack faked with moto."""

from __future__ import annotations

import json
from types import SimpleNamespace

import boto3
import pytest
from starlette.testclient import TestClient

from driftstack.adapters import decision_store, drift_store
from driftstack.tools.aws_target import Target
from driftstack.tools.console import app as console_app
from driftstack.tools.console.reader import PANELS, StackReader, mlflow_links

DEFINITION = {"StartAt": "Prepare", "States": {
    "Prepare": {"Type": "Pass", "Next": "Decide"},
    "Decide": {"Type": "Choice", "Choices": [{"Variable": "$.ok", "BooleanEquals": True, "Next": "Promote"}],
               "Default": "Reject"},
    "Promote": {"Type": "Pass", "End": True}, "Reject": {"Type": "Pass", "End": True}}}


SWAGGER_PAGE = "<html><body>swagger-ui for the prediction API</body></html>"


def drift_doc(i: int, psi: float) -> dict:
    return {"check_id": f"check-{i}", "status": "drift" if psi >= 0.2 else "no_drift", "trigger": psi >= 0.2,
            "samples": 500, "checked_at": f"2026-12-03T10:0{i}:00Z",
            "window": {"start": "2026-12-02T10:00:00Z", "end": f"2026-12-03T10:0{i}:00Z"},
            "features": {"trip_distance": {"psi": psi, "drifted": psi >= 0.2}, "pickup_hour": {"psi": 0.01, "drifted": False}},
            "prediction": {"psi": psi / 2, "drifted": False}, "reasons": [f"reason {i}"], "drifted_features": []}


@pytest.fixture
def stack(moto):
    s3 = moto.bucket("artifacts")
    moto.models_table()
    history = moto.history_table()
    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(name="retrain", definition=json.dumps(DEFINITION),
                                   roleArn="arn:aws:iam::123456789012:role/sfn")["stateMachineArn"]
    sfn.start_execution(stateMachineArn=arn, name="run-1", input="{}")
    for i, psi in enumerate((0.05, 0.31)):
        drift_store.persist(drift_doc(i, psi), s3=s3, bucket="artifacts", history_table=history)
    decision_store.save_record(s3, "artifacts", history, {
        "run_id": "run-1", "outcome": "promoted", "reasons": ["RMSE 4.4 < 9.9"], "champion": {"model_name": "taxi-fare", "version": "1"},
        "evaluation": {"champion": {"metrics": {"rmse": 9.9}},
                       "challenger": {"version": "2", "metrics": {"rmse": 4.4}, "mlflow": {"run_id": "abc123", "experiment_id": "7"}}}})
    decision_store.store_approval_request(history, "run-1", "token-1", {"reasons": ["better"]})
    outputs = {"StateMachineArn": arn, "HistoryTableName": "history", "ModelsTableName": "models", "BucketName": "artifacts"}
    reader = StackReader(Target(), outputs)
    client = TestClient(console_app.create_app(reader, console_app.Links(api_docs=lambda: (200, SWAGGER_PAGE)), "T"))
    return client, reader, history


def test_every_page_renders_with_its_links(stack):
    client, _, _ = stack
    for page, _ in console_app.PAGES:
        r = client.get(f"/{page}")
        assert r.status_code == 200 and f'data-page="{page}"' in r.text
        assert 'href="http://127.0.0.1:5000"' in r.text and 'href="/api-docs"' in r.text
    assert client.get("/", follow_redirects=False).headers["location"] == "/retraining"
    assert client.get("/assets/cytoscape/package.json").status_code == 200  # served from node_modules
    assert client.get("/static/retraining.js").status_code == 200


def test_api_docs_are_the_apis_page_fetched_with_its_key(stack):
    client, _, _ = stack
    r = client.get("/api-docs")
    assert r.status_code == 200 and r.text == SWAGGER_PAGE and r.headers["content-type"].startswith("text/html")
    app = console_app.create_app(stack[1], console_app.Links(api_docs=lambda: (403, "Forbidden")), "T")
    assert TestClient(app).get("/api-docs").status_code == 403  # the API's answer, as it came
    no_api = TestClient(console_app.create_app(stack[1], console_app.Links(), "T"))
    assert no_api.get("/api-docs").status_code == 404 and "API docs" not in no_api.get("/retraining").text


def test_state_machine_and_execution(stack):
    client, _, _ = stack
    graph = client.get("/api/state-machine").json()["graph"]
    assert {n["id"] for n in graph["nodes"]} >= set(DEFINITION["States"])
    assert [e["name"] for e in client.get("/api/executions").json()] == ["run-1"]
    exe = client.get("/api/executions/run-1").json()
    assert exe["status"] in ("RUNNING", "SUCCEEDED") and exe["events"]
    assert exe["approval"] == {"run_id": "run-1", "requested_at": exe["approval"]["requested_at"], "reasons": ["better"]}
    assert client.get("/api/executions/nope").status_code == 404


def test_approval_from_the_page_sends_the_token_once(stack, monkeypatch):
    client, reader, _ = stack
    sent = []
    monkeypatch.setattr(type(reader.sfn), "send_task_success", lambda self, **kw: sent.append(kw), raising=False)
    assert client.post("/api/approvals/run-1", json={"decision": "reject"}).status_code == 400  # needs a reason
    assert client.post("/api/approvals/run-1", json={"decision": "maybe"}).status_code == 400
    r = client.post("/api/approvals/run-1", json={"decision": "approve", "reason": "looks good"})
    assert r.status_code == 200 and r.json()["approved"] is True and r.json()["by"].endswith("(console)")
    assert sent[0]["taskToken"] == "token-1" and json.loads(sent[0]["output"])["reason"] == "looks good"
    again = client.post("/api/approvals/run-1", json={"decision": "approve"})
    assert again.status_code == 409 and "no pending approval" in again.json()["error"]


def test_drift_trend_oldest_first_with_feature_psi_thresholds_and_reports(stack):
    client, _, _ = stack
    body = client.get("/api/drift").json()
    assert [c["check_id"] for c in body["checks"]] == ["check-0", "check-1"]
    assert [c["feature_psi"]["trip_distance"] for c in body["checks"]] == [0.05, 0.31]
    assert body["checks"][1]["prediction_psi"] == 0.155 and body["checks"][1]["reasons"] == ["reason 1"]
    assert body["thresholds"] == {"psi_threshold": 0.2, "prediction_psi_threshold": 0.2}
    report = client.get("/drift/report/check-1")
    assert report.status_code == 200 and "<html" in report.text.lower()
    assert client.get("/drift/report/nope").status_code == 404


def test_models_and_a_decision_with_its_mlflow_run(stack):
    client, _, _ = stack
    m = client.get("/api/models").json()
    assert m["champion"] is None and m["rollout"] is None and [d["run_id"] for d in m["decisions"]] == ["run-1"]
    d = client.get("/api/decisions/run-1").json()
    assert d["record"]["outcome"] == "promoted"
    assert d["mlflow"] == [{"role": "challenger", "run_id": "abc123", "url": "http://127.0.0.1:5000/#/experiments/7/runs/abc123"}]
    assert client.get("/api/decisions/nope").status_code == 404


def test_operations_metrics_per_panel_and_alarms(stack):
    client, reader, _ = stack
    boto3.client("cloudwatch").put_metric_data(Namespace="driftstack", MetricData=[
        {"MetricName": "Predictions", "Dimensions": [{"Name": "service", "Value": "driftstack-predict"}], "Value": 42}])
    metrics = client.get("/api/metrics").json()
    assert set(metrics) == set(PANELS)
    rate = metrics["Request rate (per minute)"][0]
    assert rate["label"] == "predicted rows" and [v for _, v in rate["points"]] == [42]
    boto3.client("cloudwatch").put_metric_alarm(AlarmName="a1", MetricName="Errors", Namespace="driftstack",
                                                Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                                                ComparisonOperator="GreaterThanThreshold")
    boto3.client("cloudwatch").set_alarm_state(AlarmName="a1", StateValue="ALARM", StateReason="errors")
    reader.outputs["AlarmNames"] = "a1,gone"
    assert [(a["alarm"], a["state"]) for a in client.get("/api/alarms").json()] == [("a1", "ALARM"),
                                                                                   ("gone", "NOT_FOUND")]


def test_mlflow_links_without_experiment():
    assert mlflow_links({"x": {"mlflow": {"run_id": "r"}}}, "http://m/") == [
        {"role": "run", "run_id": "r", "url": "http://m/#/runs/r"}]


def test_missing_front_end_packages_say_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(console_app, "ASSETS", tmp_path)
    with pytest.raises(console_app.AssetsMissing, match="make setup"):
        console_app.create_app(StackReader(Target(), {}))


def test_percentiles_an_endpoint_lacks_fall_back_to_their_statistic_labelled(stack, monkeypatch):
    """LocalStack's CloudWatch has no p50/p99: those series come back as average/maximum, named so."""
    from botocore.exceptions import ClientError

    _, reader, _ = stack
    cw = boto3.client("cloudwatch")
    real = cw.get_metric_data

    def no_percentiles(**kw):
        if any(q["MetricStat"]["Stat"].startswith("p") for q in kw["MetricDataQueries"]):
            raise ClientError({"Error": {"Code": "InternalFailure", "Message": "KeyError: 'p50'"}}, "GetMetricData")
        return real(**kw)
    monkeypatch.setattr(cw, "get_metric_data", no_percentiles)
    monkeypatch.setattr(reader, "target", SimpleNamespace(client=lambda service: cw))
    cw.put_metric_data(Namespace="driftstack", MetricData=[
        {"MetricName": "PredictLatency", "Dimensions": [{"Name": "service", "Value": "driftstack-predict"}], "Value": v}
        for v in (2.0, 4.0)])
    latency = {s["label"]: [v for _, v in s["points"]] for s in reader.metrics()["Latency (ms)"]}
    assert latency == {"p50 n/a here: average": [3.0], "p99 n/a here: maximum": [4.0]}
