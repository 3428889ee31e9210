"""Drift check logic: window, archive read (real request-log format, moto S3), statistics, decision,
persistence and the HTML report."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import boto3
import numpy as np
import pytest
from moto import mock_aws

from driftstack import drift as D
from driftstack import features as F
from driftstack import profile as P
from driftstack import registry, report
from driftstack.serving.request_log import archive_key, iso, jsonl, make_record
from driftstack.traffic import make_trips

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


@pytest.fixture
def aws(moto):
    yield moto.bucket(BUCKET), moto.models_table(), moto.history_table()


def _champion(s3, models, prof, version="1", holdout_rmse=2.0):
    prefix = registry.artifact_prefix("fare", "ab" * 32)
    s3.put_object(Bucket=BUCKET, Key=prefix + registry.PROFILE_FILE, Body=json.dumps(prof).encode())
    s3.put_object(Bucket=BUCKET, Key=prefix + registry.METADATA_FILE,
                  Body=json.dumps({"metrics": {"holdout": {"rmse": holdout_rmse}}}).encode())
    return registry.write_pointer(models, model_name="fare", version=version, bucket=BUCKET, prefix=prefix,
                                  sha256="ab" * 32, expected_version=None)


def _log(s3, trips, *, at, version="1", batch=50, bias=0.0, feedback=0):
    """Write trips to the archive exactly like the predict function does (batches of ``batch``)."""
    ids = []
    for start in range(0, len(trips.features), batch):
        ts = iso(at + timedelta(seconds=start / 100))
        recs = [make_record(request_id=f"r{version}-{at:%H%M}-{start}-{i}", ts=ts, features=f, prediction=fare * 0.98 + 0.2 + bias,
                            model_name="fare", model_version=version, latency_ms=1.0, batch_id=f"b{version}-{at:%H%M}-{start}")
                for i, (f, fare) in enumerate(zip(trips.features[start:start + batch], trips.fares[start:start + batch]))]
        s3.put_object(Bucket=BUCKET, Key=archive_key("requests/", recs), Body=jsonl(recs))
        ids += [(r["request_id"], r["ts"], r["prediction"], fare) for r, fare in
                zip(recs, trips.fares[start:start + batch])]
    for rid, ts, pred, fare in ids[:feedback]:
        fts = iso(at + timedelta(minutes=1))
        doc = {"request_id": rid, "actual_fare": fare, "ts": fts, "request_ts": ts, "prediction": pred,
               "model_version": version}
        s3.put_object(Bucket=BUCKET, Key=f"feedback/dt={fts[:10]}/hour={fts[11:13]}/{rid}.json",
                      Body=json.dumps(doc).encode())


CFG = D.DriftConfig(window_minutes=60, period_minutes=5)


def test_window_is_floored_to_the_period_and_its_id_is_stable():
    w1 = D.window_for(NOW, CFG)
    w2 = D.window_for(NOW + timedelta(minutes=2), CFG)
    assert w1 == w2 and w1.end == datetime(2026, 11, 23, 10, 5, tzinfo=timezone.utc)
    assert w1.start == w1.end - timedelta(minutes=60)
    assert w1.id == "20261123T1005Z-60m"
    assert D.window_for(NOW + timedelta(minutes=3), CFG).id != w1.id
    assert D.window_for("2026-11-23T10:07:30Z", CFG) == w1


def test_config_from_env_and_errors_name_the_field():
    cfg = D.DriftConfig.from_env({"DRIFT_PSI_THRESHOLD": "0.3", "DRIFT_MIN_SAMPLES": "50",
                                  "DRIFT_CHAMPION_ONLY": "false"})
    assert cfg.psi_threshold == 0.3 and cfg.min_samples == 50 and cfg.champion_only is False
    with pytest.raises(ValueError, match="min_samples"):
        D.DriftConfig.from_env({"DRIFT_MIN_SAMPLES": "many"})
    with pytest.raises(ValueError, match="psi_treshold"):
        D.DriftConfig.from_mapping({"psi_treshold": 1})
    with pytest.raises(ValueError, match="psi_threshold"):
        D.DriftConfig(psi_threshold=-1)


def test_normal_traffic_is_no_drift(aws, reference):
    s3, models, _ = aws
    _champion(s3, models, reference)
    _log(s3, make_trips(1500, seed=2), at=NOW - timedelta(minutes=30))
    doc = D.run_check(s3=s3, models_table=models, bucket=BUCKET, now=NOW, cfg=CFG)
    assert doc["samples"] == 1500 and doc["status"] == D.NO_DRIFT and doc["trigger"] is False
    assert max(s["psi"] for s in doc["features"].values()) < 0.1
    assert doc["prediction"]["psi"] < 0.1
    assert doc["io"]["objects"] == 30


def test_drifted_traffic_triggers_with_the_drifted_features_named(aws, reference):
    s3, models, _ = aws
    _champion(s3, models, reference)
    _log(s3, make_trips(1500, seed=3, drift="covariate", month="2023-07"), at=NOW - timedelta(minutes=30))
    doc = D.run_check(s3=s3, models_table=models, bucket=BUCKET, now=NOW, cfg=CFG)
    assert doc["status"] == D.DRIFT and doc["trigger"] is True
    assert {"trip_distance", "pickup_hour", "pickup_month"} <= set(doc["drifted_features"])
    assert any("features with PSI" in r for r in doc["reasons"])


def test_few_samples_is_insufficient_data_even_when_drifted(aws, reference):
    s3, models, _ = aws
    _champion(s3, models, reference)
    _log(s3, make_trips(80, seed=4, drift="covariate", month="2023-07"), at=NOW - timedelta(minutes=10))
    doc = D.run_check(s3=s3, models_table=models, bucket=BUCKET, now=NOW, cfg=CFG)
    assert doc["samples"] == 80 and doc["status"] == D.INSUFFICIENT and doc["trigger"] is False


def test_records_outside_the_window_or_from_another_version_are_not_compared(aws, reference):
    s3, models, _ = aws
    _champion(s3, models, reference, version="2")
    drifted = make_trips(600, seed=5, drift="covariate", month="2023-07")
    _log(s3, drifted, at=NOW - timedelta(minutes=90))                 # before the window
    _log(s3, drifted, at=NOW - timedelta(minutes=20), version="1")    # served by the old champion
    _log(s3, make_trips(300, seed=6), at=NOW - timedelta(minutes=20), version="2")
    doc = D.run_check(s3=s3, models_table=models, bucket=BUCKET, now=NOW, cfg=CFG)
    assert doc["requests_in_window"] == 900 and doc["samples"] == 300 and doc["status"] == D.NO_DRIFT
    all_versions = D.run_check(s3=s3, models_table=models, bucket=BUCKET, now=NOW,
                               cfg=D.DriftConfig(window_minutes=60, period_minutes=5, champion_only=False))
    assert all_versions["samples"] == 900
    assert len(all_versions["drifted_features"]) > len(doc["drifted_features"])


def test_performance_drift_from_feedback_triggers(aws, reference):
    s3, models, _ = aws
    _champion(s3, models, reference, holdout_rmse=1.0)
    # Same inputs, but the model is now off by 5 dollars: a concept change only feedback can show.
    trips = make_trips(400, seed=7)
    _log(s3, trips, at=NOW - timedelta(minutes=30), bias=5.0, feedback=120)
    f = np.array(trips.fares[:120])
    expected = float(np.sqrt(np.mean((f * 0.98 + 5.2 - f) ** 2)))
    doc = D.run_check(s3=s3, models_table=models, bucket=BUCKET, now=NOW,
                      cfg=D.DriftConfig(window_minutes=60, period_minutes=5, prediction_psi_threshold=10))
    perf = doc["performance"]
    assert perf["labelled"] == 120 and perf["rmse"] == pytest.approx(expected, rel=1e-9) and perf["degraded"]
    assert doc["trigger"] and any("RMSE" in r for r in doc["reasons"])
    # Too little feedback: no verdict on performance.
    few = D.performance({k: v[:10] for k, v in D.load_window(s3, BUCKET, D.window_for(NOW, CFG)).feedback.items()},
                        {"rmse": 1.0}, "1", CFG)
    assert few["labelled"] == 10 and few["enough"] is False and few["degraded"] is False


def test_malformed_lines_are_counted_not_fatal(aws, reference):
    s3, models, _ = aws
    _champion(s3, models, reference)
    _log(s3, make_trips(200, seed=8), at=NOW - timedelta(minutes=30))
    s3.put_object(Bucket=BUCKET, Key="requests/dt=2026-11-23/hour=09/bad.jsonl", Body=b"{not json\n\n")
    doc = D.run_check(s3=s3, models_table=models, bucket=BUCKET, now=NOW, cfg=CFG)
    assert doc["samples"] == 200 and doc["io"]["skipped"] == {"malformed_line": 1}


def test_no_champion_and_missing_profile(aws):
    s3, models, _ = aws
    doc = D.run_check(s3=s3, models_table=models, bucket=BUCKET, now=NOW, cfg=CFG)
    assert doc["status"] == D.NO_CHAMPION and not doc["trigger"]
    registry.write_pointer(models, model_name="fare", version="1", bucket=BUCKET, prefix="models/fare/x/",
                           sha256="0" * 64, expected_version=None)
    with pytest.raises(D.DriftCheckError, match="models/fare/x/profile.json"):
        D.run_check(s3=s3, models_table=models, bucket=BUCKET, now=NOW, cfg=CFG)


def test_persist_writes_json_report_and_a_listable_history_item(aws, reference):
    s3, models, history = aws
    _champion(s3, models, reference)
    _log(s3, make_trips(500, seed=9, drift="covariate", month="2023-07"), at=NOW - timedelta(minutes=30))
    doc = D.run_check(s3=s3, models_table=models, bucket=BUCKET, now=NOW, cfg=CFG)
    D.persist(doc, s3=s3, bucket=BUCKET, history_table=history)
    key = doc["result_uri"].split(BUCKET + "/", 1)[1]
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert stored["check_id"] == doc["check_id"] and stored["features"]["trip_distance"]["drifted"]
    html = s3.get_object(Bucket=BUCKET, Key=doc["report_uri"].split(BUCKET + "/", 1)[1])["Body"].read().decode()
    assert html.count("<svg") == 13 and "trip_distance" in html and "drifted" in html
    listed = D.list_checks(history)
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
        first = D.start_retraining(sfn, arn, _doc())
        assert first["started"] and first["name"] == "retrain-20261123T1005Z-60m-v1"
        assert json.loads(sfn.describe_execution(executionArn=first["execution_arn"])["input"])["window"]["id"] \
            == "20261123T1005Z-60m"
        second = D.start_retraining(sfn, arn, _doc())
        assert second["started"] is False and "still running" in second["message"]
        sfn.stop_execution(executionArn=first["execution_arn"])
        third = D.start_retraining(sfn, arn, _doc())            # same window, first one finished
        assert third["started"] is False and "already exists" in third["message"]
        cooled = D.start_retraining(sfn, arn, _doc(version="2"), cooldown_minutes=60)
        assert cooled["started"] is False and "cooldown" in cooled["message"]
        assert D.start_retraining(sfn, arn, _doc(version="2"))["started"] is True
        assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 2
