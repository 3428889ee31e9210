"""The typed documents that cross process boundaries (driftstack.contract.documents): what a
producer writes is what the consumer validates; a malformed document names its field; a record an
older version persisted still loads, and keeps the fields this version does not know."""

from __future__ import annotations

import io
import json

import pytest

from driftstack.adapters import decision_store, drift_store
from driftstack.adapters import training_backend as TB
from driftstack.contract import documents as doc
from driftstack.domain import decision as D
from driftstack.domain import drift
from driftstack.usecases.retraining import RetrainOptions, Retraining, lambda_error_message


class FakeS3:
    """Just get/put of whole objects (no AWS needed to read a document back)."""

    def __init__(self):
        self.objects: dict[tuple[str, str], bytes] = {}

    def put_object(self, Bucket, Key, Body, **_):
        self.objects[(Bucket, Key)] = Body

    def get_object(self, Bucket, Key):
        if (Bucket, Key) not in self.objects:
            err = Exception("NoSuchKey")
            err.response = {"Error": {"Code": "NoSuchKey"}}
            raise err
        return {"Body": io.BytesIO(self.objects[(Bucket, Key)])}


def drift_result(**changes) -> dict:
    return {"check_id": "20261123T1005Z-60m-v3", "checked_at": "2026-11-23T10:05:01.000000Z", "status": "drift",
            "trigger": True, "samples": 500, "drifted_features": ["trip_distance"], "reasons": ["PSI 0.4"],
            "window": {"start": "2026-11-22T10:05:00.000000Z", "end": "2026-11-23T10:05:00.000000Z",
                       "id": "20261123T1005Z-1440m"},
            "champion": {"model_name": "fare", "version": "3", "sha256": "a" * 64, "prefix": "models/fare/a/"},
            "features": {"trip_distance": {"psi": 0.4, "drifted": True}}, "result_uri": "s3://b/drift/r.json",
            **changes}


def training_result(**challenger) -> dict:
    return {"run_id": "run-1", "holdout": {"rows": 300, "window": {"from": "a", "to": "b"}},
            "champion": {"version": "3", "sha256": "a" * 64, "metrics": {"rmse": 9.0, "mae": 5.0},
                         "latency": {"single_row_p50_ms": 0.02}},
            "challenger": {"model_name": "fare", "version": "4", "sha256": "b" * 64, "bucket": "b",
                           "prefix": "models/fare/b/", "metrics": {"rmse": 4.0}, "latency": {"single_row_p50_ms": 0.02},
                           "parity": {"passed": True}, "validation": {"passed": True}, **challenger},
            "training_rows": 900, "stage_seconds": {"fit": 3.5}, "total_seconds": 12.0}


# ---------------------------------------------------------------- round trips

def test_the_execution_input_the_drift_check_sends_is_what_the_prepare_step_reads():
    result = doc.DriftResult.model_validate(drift_result())
    sent = json.loads(json.dumps(drift.execution_input(result, criteria={"min_rmse_improvement": 0.1})))
    assert sent == {"run_id": "retrain-20261123T1005Z-1440m-v3", "window": drift_result()["window"],
                    "champion": drift_result()["champion"], "check_id": "20261123T1005Z-60m-v3",
                    "drift": {"status": "drift", "drifted_features": ["trip_distance"], "reasons": ["PSI 0.4"],
                              "samples": 500, "result_uri": "s3://b/drift/r.json"},
                    "criteria": {"min_rmse_improvement": 0.1}}   # the JSON names the state machine reads
    assert doc.dump(doc.ExecutionInput.model_validate(sent)) == sent


def test_the_training_result_round_trips_unchanged():
    s3 = FakeS3()
    s3.put_object("b", "retrain/run-1/result.json", json.dumps(training_result(mlflow={"run_id": "x"})).encode())
    result = TB.read_result(s3, "b", "retrain/run-1/result.json")
    assert result.challenger.metrics.rmse == 4.0 and result.holdout.rows == 300
    assert doc.dump(result) == training_result(mlflow={"run_id": "x"})


def test_the_job_status_round_trips_and_keeps_the_fields_of_its_writer():
    s3 = FakeS3()
    written = TB.write_status(s3, "b", "s.json", TB.FAILED, error="ValueError: maxDepth", traceback="…", pid=7)
    assert TB.read_status(s3, "b", "s.json") == written and written["pid"] == 7
    assert TB.read_status(s3, "b", "missing.json") is None


# ---------------------------------------------------------------- malformed documents name the field

def test_a_training_result_without_the_challenger_rmse_names_it():
    s3 = FakeS3()
    bad = training_result(metrics={"mae": 1.0})
    del bad["holdout"]["rows"]
    s3.put_object("b", "r.json", json.dumps(bad).encode())
    with pytest.raises(doc.MalformedDocument) as err:
        TB.read_result(s3, "b", "r.json")
    assert "s3://b/r.json" in str(err.value)
    assert "challenger.metrics.rmse: Field required" in str(err.value) and "holdout.rows" in str(err.value)


def test_a_job_status_with_an_unknown_state_names_it():
    s3 = FakeS3()
    s3.put_object("b", "s.json", json.dumps({"state": "exploded"}).encode())
    with pytest.raises(doc.MalformedDocument, match="TrainingStatus from s3://b/s.json is malformed: state: Input"):
        TB.read_status(s3, "b", "s.json")


def steps(s3=None) -> Retraining:
    return Retraining(RetrainOptions(bucket="b"), s3=s3 or FakeS3(), history=None, models=None, layout=None,
                      promotion=None, log=None)


@pytest.mark.parametrize("step, state, field", [
    ("prepare", {"run_id": "r", "window": {"start": "a", "end": "b"}, "critera": {}}, "critera: Extra inputs"),
    ("prepare", {"run_id": "r", "window": {"start": "a"}}, "window.end: Field required"),
    ("start_training", {"run_id": "r", "prepared": {"status_key": "s"}}, "prepared.spec_key: Field required"),
    ("poll_training", {"run_id": "r", "job": {"backend": "local"}}, "job.status_key: Field required"),
    ("decide", {"run_id": "r", "evaluation": {"holdout": {"rows": 1}}}, "evaluation.champion: Field required"),
    ("promote", {"run_id": "r", "evaluation": training_result()}, "champion: Field required"),
    ("reject", {"run_id": "r", "decision": {"outcome": "maybe", "reasons": []}}, "decision.outcome: Input should be"),
])
def test_a_step_given_a_malformed_state_fails_naming_the_field(step, state, field):
    with pytest.raises(doc.MalformedDocument) as err:
        getattr(steps(), step)(state)
    assert "from the execution state is malformed" in str(err.value) and field in str(err.value)
    # What Step Functions shows as the cause of the failed task (and the failure step records):
    cause = json.dumps({"errorMessage": str(err.value), "errorType": "MalformedDocument"})
    assert field in lambda_error_message(cause)


def test_a_drift_result_without_a_window_is_refused_before_any_run_starts():
    bad = drift_result()
    del bad["window"]
    with pytest.raises(doc.MalformedDocument, match="DriftResult from drift check .* window: Field required"):
        drift_store.start_retraining(None, "arn", bad)   # validated before Step Functions is asked anything


# ---------------------------------------------------------------- persisted by older versions

OLD_RECORD = {  # decisions/<run_id>.json as the version before the typed contracts wrote it
    "run_id": "retrain-20261101T1000Z-1440m-v2", "outcome": "promoted", "started_at": "2026-11-01T10:00:01.000Z",
    "updated_at": "2026-11-01T10:09:00.000Z",
    "window": {"start": "2026-10-31T10:00:00.000000Z", "end": "2026-11-01T10:00:00.000000Z", "id": "20261101T1000Z-1440m"},
    "champion": {"model_name": "fare", "version": 2, "sha256": "c" * 64, "prefix": "models/fare/c/", "bucket": "b"},
    "check_id": "20261101T1000Z-1440m-v2",
    "drift": {"status": "drift", "drifted_features": ["a", "b", "c"], "reasons": ["3 features"], "samples": 800,
              "result_uri": None},
    "labelled": {"labelled": 400, "requests": 900, "slots": 12}, "spec_key": "retrain/x/spec.json",
    "training": {"backend": "local", "handle": {"pid": 42, "pid_start": 1, "started_at": 1.5}},
    "evaluation": {"holdout": {"rows": 120}, "champion": {"metrics": {"rmse": 6.0}},
                   "challenger": {"version": "3", "metrics": {"rmse": 5.0}}},   # older jobs wrote less
    "decision": {"outcome": "promote", "reasons": ["RMSE better"], "checks": [], "criteria": {}},
    "criteria": {"min_rmse_improvement": 0.5}, "reasons": ["RMSE better"],
    "mlflow_alias": {"status": "pending"}, "pointer": {"version": "3", "updated_at": 1.0},
    "promotion_errors": ["ModelPromoted event not sent: x"], "promoted_at": "2026-11-01T10:09:00.000Z",
}


def test_an_old_decision_record_still_loads_and_keeps_every_field_on_update():
    s3 = FakeS3()
    s3.put_object("b", decision_store.record_key(OLD_RECORD["run_id"]), json.dumps(OLD_RECORD).encode())
    loaded = decision_store.load_record(s3, "b", OLD_RECORD["run_id"])
    assert loaded == {**OLD_RECORD, "champion": {**OLD_RECORD["champion"], "version": "2"}}  # versions are strings
    assert D.summary(loaded)["challenger_version"] == "3"
    updated = decision_store.update_record(s3, "b", None, OLD_RECORD["run_id"], note="re-read")
    assert updated["promotion_errors"] == OLD_RECORD["promotion_errors"] and updated["note"] == "re-read"
    assert updated["training"] == OLD_RECORD["training"] and updated["updated_at"] != OLD_RECORD["updated_at"]


def test_a_corrupt_decision_record_names_the_object_and_field():
    s3 = FakeS3()
    s3.put_object("b", decision_store.record_key("r"), json.dumps({"run_id": "r", "outcome": "exploded"}).encode())
    with pytest.raises(doc.MalformedDocument, match=r"DecisionRecord from s3://b/decisions/r.json .*outcome: Input"):
        decision_store.load_record(s3, "b", "r")
