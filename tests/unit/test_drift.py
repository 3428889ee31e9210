"""Drift check logic: window, the aggregates written by the real log path (RequestLog -> moto SQS ->
log_drain -> archive + aggregates on moto S3), statistics, decision, persistence and the HTML report."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import boto3
import numpy as np
import pytest
from moto import mock_aws

from driftstack.adapters import aggregates as G
from driftstack.adapters import archive as A
from driftstack.domain import drift as D
from driftstack.adapters import drift_store
from driftstack.usecases import drift_check
from driftstack.contract import features as F
from driftstack.usecases import log_drain
from driftstack.domain import profile as P
from driftstack.adapters import registry
from driftstack.domain import report
from driftstack.adapters.request_log import LogSettings, RequestLog, iso, make_record, message, new_request_id
from driftstack.tools.traffic import make_trips
from driftstack.settings import LogDrainSettings

BUCKET = "artifacts"
NOW = datetime(2026, 11, 23, 10, 7, 30, tzinfo=timezone.utc)


def _columns(trips):
    return {f.name: np.array([t[f.name] for t in trips.features],
                             dtype=np.float64 if f.kind == "numeric" else object) for f in F.FEATURES}


@pytest.fixture(scope="module")
def reference():
    trips = make_trips(4000, seed=1)
    cols = _columns(trips)
    fares = np.array(trips.fares)
    preds = fares * 0.98 + 0.2  # a decent "model"
    prof = P.build_profile({k: (v if F.BY_NAME[k].kind == "numeric" else np.array([F.category_token(x) for x in v], dtype=object))
                            for k, v in cols.items()}, preds)
    return prof


LAYOUT = A.Layout(bucket=BUCKET, slot_minutes=5)
SHA = "ab" * 32


@pytest.fixture
def aws(moto):
    s3 = moto.bucket(BUCKET)
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="log")["QueueUrl"]
    yield s3, moto.models_table(), moto.history_table(), sqs, url


def _run(aws, **kw):
    s3, models = aws[0], aws[1]
    return drift_check.run_check(s3=s3, models_table=models, layout=LAYOUT, now=kw.pop("now", NOW), cfg=kw.pop("cfg", CFG), **kw)


def _champion(s3, models, prof, version="1", holdout_rmse=2.0, sha=SHA):
    prefix = registry.artifact_prefix("fare", sha)
    s3.put_object(Bucket=BUCKET, Key=prefix + registry.PROFILE_FILE, Body=json.dumps(prof).encode())
    s3.put_object(Bucket=BUCKET, Key=prefix + registry.METADATA_FILE,
                  Body=json.dumps({"metrics": {"holdout": {"rmse": holdout_rmse}}}).encode())
    current = registry.read_pointer(models)
    return registry.write_pointer(models, model_name="fare", version=version, bucket=BUCKET, prefix=prefix,
                                  sha256=sha, expected_version=current.version if current else None)


def _log(aws, trips, *, at, version="1", batch=50, bias=0.0, feedback=0, sha=SHA):
    """Log trips exactly like the predict function does (one message per call of ``batch`` trips),
    give ``feedback`` of them their true fare, and drain the queue into the archive."""
    s3, sqs, url = aws[0], aws[3], aws[4]
    log = RequestLog(LogSettings(queue_url=url, layout=LAYOUT), sqs=sqs, s3=s3)
    ids = []
    for start in range(0, len(trips.features), batch):
        when = at + timedelta(seconds=start / 100)
        rid = new_request_id(when.timestamp())
        recs = [make_record(request_id=f"{rid}.{i}", ts=iso(when), features=f, prediction=fare * 0.98 + 0.2 + bias,
                            model_name="fare", model_version=version, model_sha=sha[:16], latency_ms=1.0,
                            batch_id=rid)
                for i, (f, fare) in enumerate(zip(trips.features[start:start + batch], trips.fares[start:start + batch]))]
        log.write(recs)
        ids += [(r["request_id"], fare) for r, fare in zip(recs, trips.fares[start:start + batch])]
    fb = [A.make_feedback(request_id=rid, actual_fare=fare, ts=iso(at + timedelta(minutes=1)))
          for rid, fare in ids[:feedback]]
    if fb:
        sqs.send_message(QueueUrl=url, MessageBody=message(A.FEEDBACK, fb))
    report = log_drain.drain(sqs=sqs, s3=s3, layout=LAYOUT, queue_url=url,
                             load_profile=log_drain.ProfileCache(s3, BUCKET), options=LogDrainSettings.from_env().options())
    assert report.complete and not report.errors
    return report


CFG = D.DriftConfig(window_minutes=60, period_minutes=5)


def test_window_is_floored_to_the_period_and_its_id_is_stable():
    w1 = D.window_for(NOW, CFG)
    w2 = D.window_for(NOW + timedelta(minutes=2), CFG)
    assert w1 == w2 and w1.end == datetime(2026, 11, 23, 10, 5, tzinfo=timezone.utc)
    assert w1.start == w1.end - timedelta(minutes=60)
    assert w1.id == "20261123T1005Z-60m"
    assert D.window_for(NOW + timedelta(minutes=3), CFG).id != w1.id
    assert D.window_for("2026-11-23T10:07:30Z", CFG) == w1


def test_config_errors_name_the_field():
    # reading DRIFT_* and event overrides: tests/unit/test_settings.py (DriftThresholds)
    with pytest.raises(ValueError, match="psi_threshold"):
        D.DriftConfig(psi_threshold=-1)
    with pytest.raises(D.DriftCheckError, match="window_minutes=62 is not a multiple of the archive's 5-minute"):
        drift_check.check_alignment(D.DriftConfig(window_minutes=62, period_minutes=5), LAYOUT)


def test_normal_traffic_is_no_drift(aws, reference):
    s3, models = aws[:2]
    _champion(s3, models, reference)
    _log(aws, make_trips(1500, seed=2), at=NOW - timedelta(minutes=30))
    doc = _run(aws)
    assert doc["samples"] == 1500 and doc["status"] == D.NO_DRIFT and doc["trigger"] is False
    assert max(s["psi"] for s in doc["features"].values()) < 0.1
    assert doc["prediction"]["psi"] < 0.1
    assert doc["io"]["aggregates"] == 1    # 1,500 requests in 15 s: one slot, one small object read


def test_drifted_traffic_triggers_with_the_drifted_features_named(aws, reference):
    s3, models = aws[:2]
    _champion(s3, models, reference)
    _log(aws, make_trips(1500, seed=3, drift="covariate", month="2023-07"), at=NOW - timedelta(minutes=30))
    doc = _run(aws)
    assert doc["status"] == D.DRIFT and doc["trigger"] is True
    assert {"trip_distance", "pickup_hour", "pickup_month"} <= set(doc["drifted_features"])
    assert any("features with PSI" in r for r in doc["reasons"])


def test_few_samples_is_insufficient_data_even_when_drifted(aws, reference):
    s3, models = aws[:2]
    _champion(s3, models, reference)
    _log(aws, make_trips(80, seed=4, drift="covariate", month="2023-07"), at=NOW - timedelta(minutes=10))
    doc = _run(aws)
    assert doc["samples"] == 80 and doc["status"] == D.INSUFFICIENT and doc["trigger"] is False


def test_records_outside_the_window_or_from_another_version_are_not_compared(aws, reference):
    s3, models = aws[:2]
    _champion(s3, models, reference, version="1", sha="cd" * 32)
    _champion(s3, models, reference, version="2")
    drifted = make_trips(600, seed=5, drift="covariate", month="2023-07")
    _log(aws, drifted, at=NOW - timedelta(minutes=90))                 # before the window
    _log(aws, drifted, at=NOW - timedelta(minutes=20), version="1", sha="cd" * 32)   # the old champion's
    _log(aws, make_trips(300, seed=6), at=NOW - timedelta(minutes=20), version="2")
    doc = _run(aws)
    assert doc["requests_in_window"] == 900 and doc["samples"] == 300 and doc["status"] == D.NO_DRIFT
    assert doc["versions_in_window"] == {"1": 600, "2": 300}


def test_performance_drift_from_feedback_triggers(aws, reference):
    s3, models = aws[:2]
    _champion(s3, models, reference, holdout_rmse=1.0)
    # Same inputs, but the model is now off by 5 dollars: a concept change only feedback can show.
    trips = make_trips(400, seed=7)
    _log(aws, trips, at=NOW - timedelta(minutes=30), bias=5.0, feedback=120)
    f = np.array(trips.fares[:120])
    expected = float(np.sqrt(np.mean((f * 0.98 + 5.2 - f) ** 2)))
    doc = _run(aws, cfg=D.DriftConfig(window_minutes=60, period_minutes=5, prediction_psi_threshold=10))
    perf = doc["performance"]
    assert perf["labelled"] == 120 and perf["rmse"] == pytest.approx(expected, rel=1e-9) and perf["degraded"]
    assert doc["trigger"] and any("RMSE" in r for r in doc["reasons"])
    # Too little feedback: no verdict on performance.
    few = D.performance(G.WindowCounts(version="1", labelled=10, sq_err_sum=250.0), {"rmse": 1.0}, CFG)
    assert few["labelled"] == 10 and few["enough"] is False and few["degraded"] is False


def test_no_champion_and_missing_profile(aws):
    s3, models = aws[:2]
    doc = _run(aws)
    assert doc["status"] == D.NO_CHAMPION and not doc["trigger"]
    registry.write_pointer(models, model_name="fare", version="1", bucket=BUCKET, prefix="models/fare/x/",
                           sha256="0" * 64, expected_version=None)
    with pytest.raises(D.DriftCheckError, match="models/fare/x/profile.json"):
        _run(aws)


def test_persist_writes_json_report_and_a_listable_history_item(aws, reference):
    s3, models, history = aws[:3]
    _champion(s3, models, reference)
    _log(aws, make_trips(500, seed=9, drift="covariate", month="2023-07"), at=NOW - timedelta(minutes=30))
    doc = _run(aws)
    drift_store.persist(doc, s3=s3, bucket=BUCKET, history_table=history)
    key = doc["result_uri"].split(BUCKET + "/", 1)[1]
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert stored["check_id"] == doc["check_id"] and stored["features"]["trip_distance"]["drifted"]
    html = s3.get_object(Bucket=BUCKET, Key=doc["report_uri"].split(BUCKET + "/", 1)[1])["Body"].read().decode()
    assert html.count("<svg") == 13 and "trip_distance" in html and "drifted" in html
    listed = drift_store.list_checks(history)
    assert listed[0]["check_id"] == doc["check_id"] and listed[0]["trigger"] is True
    names = {m[0] for m in D.metrics_of(doc)}
    assert {"DriftSamples", "DriftedFeatures", "FeaturePSI", "PredictionPSI"} <= names


def test_report_bin_labels_match_the_profile_layout(reference):
    num = reference["features"]["trip_distance"]
    assert len(report.bin_labels(num)) == len(num["proportions"])
    cat = reference["features"]["payment_type"]
    assert report.bin_labels(cat) == ["1", "2", "3", "4", P.OTHER]
    svg = report.bar_chart(["a", "b"], [0.5, 0.5], [0.9, 0.1])
    assert svg.startswith("<svg") and svg.count("<rect") == 4


def _doc(window_end="2026-11-23T10:05:00Z", version="1"):
    return {"window": {"start": "2026-11-23T09:05:00Z", "end": window_end, "id": "20261123T1005Z-60m"},
            "champion": {"version": version}, "check_id": "c", "status": D.DRIFT, "drifted_features": ["a"],
            "reasons": ["r"], "samples": 500}


def test_start_retraining_at_most_once_per_window(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        sfn = boto3.client("stepfunctions")
        arn = sfn.create_state_machine(
            name="sm", roleArn="arn:aws:iam::123456789012:role/sm",
            definition=json.dumps({"StartAt": "W", "States": {"W": {"Type": "Pass", "End": True}}}))["stateMachineArn"]
        first = drift_store.start_retraining(sfn, arn, _doc())
        assert first["started"] and first["name"] == "retrain-20261123T1005Z-60m-v1"
        assert json.loads(sfn.describe_execution(executionArn=first["execution_arn"])["input"])["window"]["id"] \
            == "20261123T1005Z-60m"
        second = drift_store.start_retraining(sfn, arn, _doc())
        assert second["started"] is False and "still running" in second["message"]
        sfn.stop_execution(executionArn=first["execution_arn"])
        third = drift_store.start_retraining(sfn, arn, _doc())            # same window, first one finished
        assert third["started"] is False and "already exists" in third["message"]
        cooled = drift_store.start_retraining(sfn, arn, _doc(version="2"), cooldown_minutes=60)
        assert cooled["started"] is False and "cooldown" in cooled["message"]
        assert drift_store.start_retraining(sfn, arn, _doc(version="2"))["started"] is True
        assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 2


class _Ctx:
    function_name, memory_limit_in_mb, aws_request_id = "drift-check", 512, "req-1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:drift-check"


def _load_handler(name: str):
    import importlib.util
    import uuid
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"{name}_app_{uuid.uuid4().hex}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_drift_check_handler_checks_starts_retraining_and_persists(aws, reference, monkeypatch):
    s3, models, history, sqs, url = aws
    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(
        name="sm", roleArn="arn:aws:iam::123456789012:role/sm",
        definition=json.dumps({"StartAt": "W", "States": {"W": {"Type": "Pass", "End": True}}}))["stateMachineArn"]
    env = {"ARTIFACT_BUCKET": BUCKET, "MODELS_TABLE": models.name, "HISTORY_TABLE": history.name, "LOG_QUEUE_URL": url,
           "STATE_MACHINE_ARN": arn, "DRIFT_WINDOW_MINUTES": "60", "DRIFT_PERIOD_MINUTES": "5",
           "POWERTOOLS_METRICS_NAMESPACE": "driftstack"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    _champion(s3, models, reference)
    _log(aws, make_trips(1500, seed=3, drift="covariate", month="2023-07"), at=NOW - timedelta(minutes=30))
    app = _load_handler("drift_check")
    out = app.handler({"time": iso(NOW), "config": {"min_samples": 100}}, _Ctx())
    assert out["status"] == D.DRIFT and out["trigger"] is True and out["execution"]["started"] is True
    assert out["result_uri"].startswith(f"s3://{BUCKET}/") and out["log_drain"]["complete"] is True
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 1
    with pytest.raises(ValueError, match="psi_treshold"):
        app.handler({"time": iso(NOW), "config": {"psi_treshold": 1}}, _Ctx())
