"""Retraining Lambda handlers against moto: prepare's validation, promote's conditional write (a
concurrent promotion makes it fail, champion untouched), reject and failure records."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import boto3
import pytest

from driftstack.domain import decision as D
from driftstack.adapters import decision_store
from driftstack.adapters import registry
from driftstack.usecases import log_drain
from driftstack.settings import ArchiveSettings, LogDrainSettings
from driftstack.adapters.request_log import LogSettings, RequestLog, iso, make_record, new_request_id, utc_now
from driftstack.usecases.training_set import NotEnoughData
from driftstack.tools.traffic import make_trips

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "artifacts"


@dataclass
class Ctx:
    function_name: str = "t"
    memory_limit_in_mb: int = 128
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:t"
    aws_request_id: str = "req"


@pytest.fixture
def app(moto, monkeypatch, tmp_path):
    for k, v in {"ARTIFACT_BUCKET": BUCKET, "MODELS_TABLE": "models", "HISTORY_TABLE": "history",
                 "TRAINING_BACKEND": "emr-serverless"}.items():
        monkeypatch.setenv(k, v)
    moto.bucket(BUCKET)
    moto.models_table()
    moto.history_table()
    spec = importlib.util.spec_from_file_location("retrain_app", ROOT / "functions" / "retrain" / "app.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    yield mod


def _event(version="1"):
    now = utc_now()
    return {"run_id": "run-1", "champion": {"model_name": "fare", "version": version, "sha256": "a" * 64,
                                            "prefix": "models/fare/aaaa/", "bucket": BUCKET},
            "window": {"start": iso(now - timedelta(minutes=30)), "end": iso(now + timedelta(minutes=1)), "id": "w"},
            "evaluation": {"holdout": {"rows": 300},
                           "champion": {"metrics": {"rmse": 9.0}, "latency": {"single_row_p50_ms": 0.02}},
                           "challenger": {"model_name": "fare", "version": "2", "sha256": "b" * 64,
                                          "prefix": "models/fare/bbbb/", "bucket": BUCKET, "metrics": {"rmse": 4.0},
                                          "latency": {"single_row_p50_ms": 0.02}}},
            "decision": {"outcome": "promote", "reasons": ["RMSE better"]}}


def _input(**changes):
    """The execution input (what the prepare step receives): no later step's results."""
    return {k: v for k, v in {**_event(), **changes}.items() if k not in ("evaluation", "decision")}


def test_prepare_counts_feedback_from_the_aggregates_and_hands_spark_the_archive(app):
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    url = sqs.create_queue(QueueName="log")["QueueUrl"]
    layout = ArchiveSettings.from_env().layout()
    log = RequestLog(LogSettings(queue_url=url, layout=layout), sqs=sqs, s3=s3)
    trips = make_trips(250, month="2023-07", drift="both", seed=5)
    now = utc_now() - timedelta(minutes=5)
    recs = [make_record(request_id=new_request_id(now.timestamp()), ts=iso(now), features=f, prediction=10.0,
                        model_name="fare", model_version="1", model_sha="a" * 16, latency_ms=1.0)
            for f in trips.features]
    for r in recs:
        log.write([r])
    for r, fare in list(zip(recs, trips.fares))[:150]:
        log.record_feedback(r["request_id"], fare)
    log_drain.drain(sqs=sqs, s3=s3, layout=layout, queue_url=url, load_profile=lambda *_: None,
                    options=LogDrainSettings.from_env().options())
    with pytest.raises(NotEnoughData, match="150 requests with feedback < 200 \\(250 requests"):
        app.prepare(_input(), Ctx())
    out = app.prepare(_input(data={"min_labelled": 100}), Ctx())
    assert out["labelled"] == {"labelled": 150, "requests": 250, "slots": 1}
    spec = json.loads(s3.get_object(Bucket=BUCKET, Key=out["spec_key"])["Body"].read())
    arch = spec["archive"]
    assert arch["bucket"] == BUCKET and arch["slot_minutes"] == 5 and arch["min_rows"] == 100
    assert arch["read"] == "direct" and set(arch["window"]) == {"start", "end"} and spec["champion"]["version"] == "1"


def test_promote_is_a_conditional_write_a_concurrent_promotion_wins(app):
    models = boto3.resource("dynamodb").Table("models")
    registry.write_pointer(models, model_name="fare", version="1", bucket=BUCKET, prefix="models/fare/aaaa/",
                           sha256="a" * 64, expected_version=None)
    # Someone else promoted version 7 while this run was training:
    registry.write_pointer(models, model_name="fare", version="7", bucket=BUCKET, prefix="models/fare/7777/",
                           sha256="7" * 64, expected_version="1")
    with pytest.raises(registry.PointerConflict):
        app.promote(_event(version="1"), Ctx())
    assert registry.read_pointer(models).version == "7"
    failed = app.record_failure({**_event(), "error": {"Error": "PointerConflict",
                                                       "Cause": json.dumps({"errorMessage": "pointer moved"})}}, Ctx())
    assert failed["reason"] == "PointerConflict: pointer moved"
    rec = decision_store.load_record(boto3.client("s3"), BUCKET, "run-1")
    assert rec["outcome"] == D.FAILED and "champion unchanged" in rec["reasons"]


def test_promote_switches_the_pointer_and_emits_the_event(app):
    models = boto3.resource("dynamodb").Table("models")
    registry.write_pointer(models, model_name="fare", version="1", bucket=BUCKET, prefix="models/fare/aaaa/",
                           sha256="a" * 64, expected_version=None)
    out = app.promote(_event(), Ctx())
    assert out["version"] == "2" and out["previous_version"] == "1"
    assert out["mlflow_alias"]["status"] == "pending"     # not the local backend: intent recorded
    assert registry.read_pointer(models).version == "2"
    assert decision_store.load_record(boto3.client("s3"), BUCKET, "run-1")["outcome"] == D.PROMOTED


def test_reject_records_a_human_no(app):
    ev = {**_event(), "approval": {"approved": False, "by": "alice", "reason": "holiday freeze"}}
    out = app.reject(ev, Ctx())
    assert out["reasons"] == ["rejected by alice: holiday freeze"]
    assert decision_store.list_records(boto3.resource("dynamodb").Table("history"))[0]["outcome"] == D.REJECTED


def test_a_training_job_past_its_time_limit_is_stopped_and_recorded_as_failed(app, monkeypatch, tmp_path):
    """poll_training on the local backend: over TRAINING_TIMEOUT_SECONDS the run is cancelled (the
    job and the child it started, like Spark's JVM), the poll says failed/timed out, and
    record_failure writes that reason with the champion untouched."""
    from driftstack.adapters import training_backend as TB

    (tmp_path / "spark_jobs").mkdir()
    (tmp_path / "spark_jobs" / "retrain.py").write_text(
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "time.sleep(120)\n")
    for k, v in {"TRAINING_BACKEND": "local", "LOCAL_TRAINING_PYTHON": sys.executable,
                 "LOCAL_TRAINING_REPO": str(tmp_path), "TRAINING_TIMEOUT_SECONDS": "1"}.items():
        monkeypatch.setenv(k, v)
    models = boto3.resource("dynamodb").Table("models")
    registry.write_pointer(models, model_name="fare", version="1", bucket=BUCKET, prefix="models/fare/aaaa/",
                           sha256="a" * 64, expected_version=None)
    before = registry.read_pointer(models)
    ev = {**_event(), "prepared": {"spec_key": "retrain/run-1/spec.json", "status_key": "retrain/run-1/status.json"}}
    handle = app.start_training(ev, Ctx())
    try:
        deadline = time.time() + 20
        while len(TB.run_processes("run-1")) < 2 and time.time() < deadline:
            time.sleep(0.05)
        assert len(TB.run_processes("run-1")) == 2
        monkeypatch.setenv("TRAINING_TIMEOUT_SECONDS", "3600")
        assert app.poll_training({**ev, "job": handle}, Ctx())["state"] == TB.RUNNING  # within the limit
        monkeypatch.setenv("TRAINING_TIMEOUT_SECONDS", "1")
        time.sleep(max(0.0, 1.2 - (time.time() - handle["started_at"])))
        poll = app.poll_training({**ev, "job": handle}, Ctx())
        assert poll["state"] == TB.FAILED and "training timed out after" in poll["reason"], poll
        assert "(limit 1s)" in poll["reason"]
        assert TB.run_processes("run-1") == []                  # the job and its child are gone
        out = app.record_failure({**ev, "job": handle, "poll": poll}, Ctx())
        assert out["reason"] == poll["reason"]
        rec = decision_store.load_record(boto3.client("s3"), BUCKET, "run-1")
        assert rec["outcome"] == D.FAILED and "timed out" in rec["error"] and "champion unchanged" in rec["reasons"]
        assert rec["training"]["handle"]["pid"] == handle["pid"]
        assert registry.read_pointer(models) == before
    finally:
        TB.LocalBackend(sys.executable, str(tmp_path)).cancel(handle, grace=1.0)
