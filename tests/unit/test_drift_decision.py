"""Promotion criteria, decision records and the approval hand-off."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from driftstack.domain import decision as D
from driftstack.adapters import decision_store


def evaluation(champ_rmse=5.0, chal_rmse=4.0, champ_p50=0.020, chal_p50=0.021, parity=True, valid=True, rows=500):
    return {"holdout": {"rows": rows},
            "champion": {"metrics": {"rmse": champ_rmse}, "latency": {"single_row_p50_ms": champ_p50}},
            "challenger": {"metrics": {"rmse": chal_rmse}, "latency": {"single_row_p50_ms": chal_p50},
                           "parity": {"passed": parity, "max_abs_diff": 1e-5 if parity else 2.0, "rows": 500,
                                      "tolerance": 1e-3},
                           "validation": {"passed": valid, "rows_in": 1000, "rows_out": 990}}}


def test_a_better_challenger_is_promoted_with_every_check_recorded():
    d = D.decide(evaluation())
    assert d["outcome"] == D.PROMOTE
    assert [c["name"] for c in d["checks"]] == ["rmse", "holdout_rows", "latency", "validation", "parity"]
    assert all(c["passed"] for c in d["checks"]) and d["criteria"]["min_rmse_improvement"] == 0.5


@pytest.mark.parametrize("kwargs,failing", [
    ({"chal_rmse": 4.6}, "rmse"),                              # better, but by less than 0.5
    ({"chal_rmse": 6.0}, "rmse"),                              # worse
    ({"champ_p50": 0.5, "chal_p50": 0.7}, "latency"),          # 40% slower, well above the noise floor
    ({"parity": False}, "parity"),
    ({"valid": False}, "validation"),
    ({"rows": 10}, "holdout_rows"),
])
def test_each_failed_criterion_rejects_and_is_the_reason(kwargs, failing):
    d = D.decide(evaluation(**kwargs))
    assert d["outcome"] == D.REJECT
    assert [c["name"] for c in d["checks"] if not c["passed"]] == [failing]
    assert len(d["reasons"]) == 1


def test_latency_noise_floor_and_configurable_thresholds():
    # 0.020 -> 0.030 ms is +50% but only 10 µs: within the default 0.05 ms noise floor.
    assert D.decide(evaluation(champ_p50=0.020, chal_p50=0.030))["outcome"] == D.PROMOTE
    strict = D.Criteria(latency_noise_floor_ms=0.0)
    assert D.decide(evaluation(champ_p50=0.020, chal_p50=0.030), strict)["outcome"] == D.REJECT
    assert D.decide(evaluation(chal_rmse=4.9), D.Criteria(min_rmse_improvement=0.05))["outcome"] == D.PROMOTE
    lax = D.Criteria(require_parity=False)
    assert D.decide(evaluation(parity=False), lax)["outcome"] == D.PROMOTE


def test_incomplete_evaluation_is_an_error_naming_the_field():
    ev = evaluation()
    del ev["challenger"]["metrics"]["rmse"]
    with pytest.raises(ValueError, match="challenger.metrics.rmse"):
        D.decide(ev)


@pytest.fixture
def aws(moto):
    yield moto.bucket("bkt"), moto.history_table()


def test_records_are_updated_in_place_and_listed_newest_first(aws):
    s3, table = aws
    decision_store.save_record(s3, "bkt", table, {"run_id": "r1", "outcome": "running", "started_at": "2026-01-01T00:00:00Z",
                                   "champion": {"version": "1"}})
    decision_store.save_record(s3, "bkt", table, {"run_id": "r2", "outcome": "running", "started_at": "2026-01-02T00:00:00Z"})
    ev = evaluation()
    ev["challenger"]["version"] = "2"
    decision_store.update_record(s3, "bkt", table, "r1", evaluation=ev, outcome=D.REJECTED, reasons=["too slow"])
    decision_store.update_record(s3, "bkt", table, "r3", outcome=D.FAILED, error="boom")  # failed before it had a record
    listed = decision_store.list_records(table)
    assert [r["run_id"] for r in listed] == ["r3", "r2", "r1"]  # r3 started now (2026-11+)
    r1 = next(r for r in listed if r["run_id"] == "r1")
    assert r1["outcome"] == D.REJECTED and r1["reasons"] == ["too slow"] and r1["challenger_version"] == "2"
    assert r1["champion_metrics"]["rmse"] == 5.0
    assert len([r for r in listed if r["run_id"] == "r1"]) == 1     # one item per run, not per update
    full = decision_store.load_record(s3, "bkt", "r1")
    assert full["champion"] == {"version": "1"} and full["evaluation"]["challenger"]["metrics"]["rmse"] == 4.0
    assert decision_store.load_record(s3, "bkt", "nope") is None


def test_approval_sends_the_answer_with_the_stored_token(aws):
    _, table = aws
    decision_store.store_approval_request(table, "r1", "token-123", {"reasons": ["better"]})
    assert decision_store.pending_approvals(table)[0]["run_id"] == "r1"
    sfn = boto3.client("stepfunctions")
    with Stubber(sfn) as stub:
        stub.add_response("send_task_success", {}, {"taskToken": "token-123",
                                                     "output": StubAny()})
        answer = decision_store.complete_approval(sfn, table, "r1", True, by="alice", reason="looks good")
    assert answer["approved"] is True and answer["by"] == "alice"
    assert decision_store.pending_approvals(table) == []
    with pytest.raises(KeyError, match="no pending approval for run 'r1'"):
        decision_store.complete_approval(sfn, table, "r1", False)


class StubAny:
    def __eq__(self, other):
        return isinstance(other, str) and json.loads(other)["approved"] is True
