"""Rollout state (start, complete, roll back: conditional and atomic), deterministic routing, the
serving-side router, and the canary verdict on synthetic records."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from driftstack.domain import canary
from driftstack.adapters.registry import read_pointer
from driftstack.adapters import rollout as ro
from driftstack.tools.toy_model import build_toy_model, publish

BUCKET, MODELS = "artifacts", "models"


@pytest.fixture
def env(moto):
    s3, table = moto.bucket(BUCKET), moto.models_table(MODELS)
    champion = publish(s3, table, BUCKET, build_toy_model(), version="1")
    candidate = publish(s3, table, BUCKET, build_toy_model(per_mile=2.6), version="2", promote=False)
    yield s3, table, champion, candidate


def _start(table, cand, mode=ro.CANARY, share=0.1):
    return ro.start(table, mode=mode, share=share, model_name="taxi-fare", version=cand["version"], bucket=BUCKET,
                    prefix=cand["prefix"], sha256=cand["sha256"], reason="test")


# ---------------------------------------------------------------- state

def test_start_reads_back_and_only_one_rollout_at_a_time(env):
    _, table, _, cand = env
    started = _start(table, cand, share=0.25)
    got = ro.read(table)
    assert got == started
    assert (got.mode, got.share, got.incumbent_version, got.pointer.version) == (ro.CANARY, 0.25, "1", "2")
    with pytest.raises(ro.RolloutConflict, match=started.rollout_id):
        _start(table, cand, mode=ro.SHADOW)


@pytest.mark.parametrize("kwargs, match", [({"mode": "blue-green"}, "mode must be one of"),
                                           ({"share": 0.0}, "share must be strictly between"),
                                           ({"share": 1.0}, "share must be strictly between")])
def test_start_rejects_bad_arguments(env, kwargs, match):
    _, table, _, cand = env
    args = {"mode": ro.CANARY, "share": 0.1, **kwargs}
    with pytest.raises(ro.RolloutError, match=match):
        _start(table, cand, **args)
    assert ro.read(table) is None


def test_start_refuses_the_champion_itself_and_a_missing_champion(env):
    _, table, champ, _ = env
    with pytest.raises(ro.RolloutError, match="is the champion already"):
        _start(table, champ)
    table.delete_item(Key={"pk": "pointer#champion"})
    with pytest.raises(ro.RolloutError, match="no champion"):
        _start(table, champ)


def test_complete_promotes_and_ends_atomically(env):
    _, table, champ, cand = env
    r = _start(table, cand)
    rec = ro.complete(table, r, reason="healthy", evaluation={"outcome": "complete"})
    champion = read_pointer(table)
    assert (champion.version, champion.sha256) == ("2", cand["sha256"])
    item = table.get_item(Key={"pk": "pointer#champion"})["Item"]  # the replaced champion kept, as a promotion does
    assert (item["previous"]["version"], item["previous"]["sha256"]) == ("1", champ["sha256"])
    assert item["rollout_id"] == r.rollout_id and item["promoted_by"] == f"rollout {r.rollout_id}"
    assert ro.read(table) is None
    last = ro.last_outcome(table)
    assert last["outcome"] == "completed" and last["reason"] == "healthy" and last["evaluation"] == {"outcome": "complete"}
    assert ro.outcome_of(table, r.rollout_id)["candidate_version"] == "2"
    assert rec["outcome"] == "completed"


def test_complete_after_a_concurrent_promotion_changes_nothing(env):
    s3, table, _, cand = env
    r = _start(table, cand)
    other = publish(s3, table, BUCKET, build_toy_model(base=4.0), version="3")  # someone promoted meanwhile
    with pytest.raises(ro.RolloutConflict, match="changed meanwhile"):
        ro.complete(table, r, reason="healthy")
    assert read_pointer(table).version == other["version"]
    assert ro.read(table) == r           # the transaction wrote nothing
    assert ro.last_outcome(table) is None


def test_rollback_keeps_the_champion_and_records_why(env):
    _, table, champ, cand = env
    r = _start(table, cand)
    ro.rollback(table, r, reason="candidate error rate 40%")
    assert read_pointer(table).sha256 == champ["sha256"]
    assert ro.read(table) is None
    last = ro.last_outcome(table)
    assert (last["outcome"], last["reason"], last["rollout_id"]) == ("rolled_back", "candidate error rate 40%",
                                                                    r.rollout_id)
    with pytest.raises(ro.RolloutConflict):  # ending it twice is refused
        ro.rollback(table, r, reason="again")


# ---------------------------------------------------------------- routing

def test_routing_is_a_pure_function_of_the_request_id():
    assert ro.bucket_of("abc12345") == ro.bucket_of("abc12345")
    assert ro.bucket_of("abc12345") == __import__("zlib").crc32(b"abc12345") % 10_000  # stable across processes
    assert ro.threshold_of(0.1) == 1000 and ro.threshold_of(0.0001) == 1


@pytest.mark.parametrize("share", [0.05, 0.1, 0.5])
def test_share_within_statistical_tolerance(share):
    n = 20_000
    hits = sum(ro.bucket_of(uuid.uuid4().hex) < ro.threshold_of(share) for _ in range(n))
    sd = (share * (1 - share) / n) ** 0.5
    assert abs(hits / n - share) < 4 * sd


# ---------------------------------------------------------------- router

class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_router_loads_refreshes_and_ends(env):
    s3, table, _, cand = env
    clock, ended = Clock(), []
    router = ro.RolloutRouter(table, s3, refresh_seconds=30, clock=clock, on_end=lambda: ended.append(1))
    assert router.get() is None and router.info() is None
    r = _start(table, cand, share=0.3)
    assert router.get() is None            # not re-read before the interval
    clock.t = 31
    active = router.get()
    assert active.rollout == r and active.model.version == "2" and active.threshold == 3000
    assert router.info()["candidate_loaded"] is True
    ro.rollback(table, r, reason="test")
    clock.t = 62
    assert router.get() is None and ended == [1]


def test_router_refuses_a_corrupt_candidate_and_says_so(env):
    s3, table, _, _ = env
    blob = build_toy_model(base=9.0)
    bad = publish(s3, table, BUCKET, blob, version="9", promote=False)
    ro.start(table, mode=ro.SHADOW, model_name="taxi-fare", version="9", bucket=BUCKET, prefix=bad["prefix"],
             sha256="0" * 64)
    emitted = []
    router = ro.RolloutRouter(table, s3, emit=emitted.append)
    assert router.refresh() == "refused" and router.get() is None
    assert "sha256 mismatch" in router.degraded["rollout"] and emitted == ["CandidateLoadFailures"]
    assert router.info() == {"rollout_id": ro.read(table).rollout_id, "candidate_version": "9",
                             "error": router.refused["error"], "candidate_loaded": False}


class CountingS3:
    """The real (moto) client, counting model downloads."""

    def __init__(self, s3):
        self.s3, self.downloads = s3, 0

    def get_object(self, **kw):
        self.downloads += kw["Key"].endswith("model.onnx")
        return self.s3.get_object(**kw)


def _bad_candidate(s3, table, mode=ro.CANARY):
    bad = publish(s3, table, BUCKET, build_toy_model(base=9.0), version="9", promote=False)
    return ro.start(table, mode=mode, model_name="taxi-fare", version="9", bucket=BUCKET, prefix=bad["prefix"],
                    sha256="0" * 64)


def test_an_unloadable_candidate_is_recorded_once_and_not_downloaded_again(env):
    s3, table, _, _ = env
    r = _bad_candidate(s3, table)
    counting, clock = CountingS3(s3), Clock()
    router = ro.RolloutRouter(table, counting, clock=clock, refresh_seconds=30)
    assert router.refresh() == "refused"
    stored = ro.read(table)
    assert stored.load_failure.startswith("sha256 mismatch") and stored.rollout_id == r.rollout_id
    assert stored.info()["load_failure"] == stored.load_failure
    clock.t = 31
    assert router.get() is None and counting.downloads == 1     # given up on this rollout: no re-download
    other = ro.RolloutRouter(table, s3)                          # a second container: same refusal, no overwrite
    assert other.refresh() == "refused"
    assert ro.record_load_failure(table, stored, "another container's words") is False
    assert ro.read(table).load_failure == stored.load_failure
    ro.rollback(table, stored, reason="test")
    assert ro.last_outcome(table)["load_failure"] == stored.load_failure
    assert ro.record_load_failure(table, stored, "late report") is False  # never re-creates an ended rollout
    assert ro.read(table) is None
    clock.t = 62
    assert router.get() is None and router.info() is None


def test_a_missing_candidate_object_is_recorded(env):
    s3, table, _, cand = env
    s3.delete_object(Bucket=BUCKET, Key=cand["prefix"] + "model.onnx")
    _start(table, cand)
    assert ro.RolloutRouter(table, s3).refresh() == "refused"
    assert "download of" in ro.read(table).load_failure and "NoSuchKey" in ro.read(table).load_failure


class FlakyS3:
    """Downloads fail like a network timeout (transient), then work."""

    def __init__(self, s3):
        self.s3, self.fail = s3, True

    def get_object(self, **kw):
        from botocore.exceptions import ReadTimeoutError

        if self.fail:
            raise ReadTimeoutError(endpoint_url="https://s3")
        return self.s3.get_object(**kw)


def test_a_transient_download_error_is_retried_not_recorded(env):
    s3, table, _, cand = env
    _start(table, cand)
    flaky, clock = FlakyS3(s3), Clock()
    router = ro.RolloutRouter(table, flaky, clock=clock, refresh_seconds=30)
    assert router.refresh() == "refused" and "Read timeout" in router.degraded["rollout"]
    assert ro.read(table).load_failure == ""                     # not the candidate's fault
    flaky.fail, clock.t = False, 31
    assert router.get().model.version == "2"


def test_a_failing_load_failure_write_never_fails_serving_and_is_retried(env, monkeypatch):
    s3, table, _, _ = env
    _bad_candidate(s3, table)
    from botocore.exceptions import ClientError

    calls = []
    real_update = table.update_item

    def denied(**kw):  # what a missing dynamodb:UpdateItem grant looks like
        calls.append(kw)
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}}, "UpdateItem")
    monkeypatch.setattr(table, "update_item", denied)
    emitted, clock = [], Clock()
    router = ro.RolloutRouter(table, s3, emit=emitted.append, clock=clock, refresh_seconds=30)
    assert router.refresh() == "refused" and router.get() is None
    assert emitted == ["CandidateLoadFailures", "RolloutWriteFailures"] and ro.read(table).load_failure == ""
    monkeypatch.setattr(table, "update_item", real_update)
    clock.t = 31
    assert router.get() is None and len(calls) == 1
    assert ro.read(table).load_failure.startswith("sha256 mismatch")  # recorded at the next refresh


def test_verdict_rolls_back_an_unloadable_candidate_at_once():
    doc = canary.evaluate([], started_at=0, now=60, criteria=CRIT, load_failure="sha256 mismatch for x")
    assert doc["outcome"] == canary.ROLLBACK
    assert doc["reasons"] == ["candidate could not be loaded: sha256 mismatch for x"]
    assert canary.evaluate([], started_at=0, now=60, criteria=CRIT)["outcome"] == canary.WAIT


# ---------------------------------------------------------------- verdict

def _records(arm: str, n: int, *, pred=20.0, ms=0.05, error_every=0, spread=5.0, feedback=None):
    out = []
    for i in range(n):
        r = {"arm": arm, "prediction": pred + (i % 10) * spread / 10, "model_ms": ms}
        if error_every and i % error_every == 0:
            r = {"arm": arm, "prediction": pred, "candidate_error": "ValueError: non-finite prediction"}
        if feedback is not None:
            r["actual_fare"] = r["prediction"] + feedback * (1 if i % 2 else -1)
        out.append(r)
    return out


CRIT = canary.CanaryCriteria(min_requests=100, min_feedback=30)


def test_verdict_waits_for_traffic_then_rolls_back_when_it_never_comes():
    recs = _records("candidate", 10) + _records("incumbent", 90)
    assert canary.evaluate(recs, started_at=0, now=60, criteria=CRIT)["outcome"] == canary.WAIT
    late = canary.evaluate(recs, started_at=0, now=CRIT.max_minutes * 60 + 1, criteria=CRIT)
    assert late["outcome"] == canary.ROLLBACK and "not enough traffic" in late["reasons"][0]


def test_verdict_completes_a_healthy_canary():
    recs = _records("candidate", 150, feedback=1.0) + _records("incumbent", 600, feedback=1.0)
    doc = canary.evaluate(recs, started_at=0, now=600, criteria=CRIT)
    assert doc["outcome"] == canary.COMPLETE, doc["reasons"]
    assert doc["signals"]["prediction_psi"] < 0.01 and doc["signals"]["rmse_ratio"] == 1.0


@pytest.mark.parametrize("candidate, needle", [
    (dict(error_every=5), "error rate 20.0%"),
    (dict(ms=1.0), "latency p95 1.000 ms is 20.0x"),
    (dict(pred=40.0), "prediction distribution shift"),
    (dict(feedback=3.0), "RMSE 3.000 is 3.00x"),
])
def test_verdict_rolls_back_each_bad_signal_with_the_reason(candidate, needle):
    recs = _records("candidate", 150, **{"feedback": 1.0, **candidate}) + _records("incumbent", 600, feedback=1.0)
    doc = canary.evaluate(recs, started_at=0, now=600, criteria=CRIT)
    assert doc["outcome"] == canary.ROLLBACK
    assert any(needle in r for r in doc["reasons"]), doc["reasons"]


def test_latency_below_the_noise_floor_is_not_a_breach():
    recs = _records("candidate", 150, ms=0.15) + _records("incumbent", 600, ms=0.01)
    assert canary.evaluate(recs, started_at=0, now=600, criteria=CRIT)["outcome"] == canary.COMPLETE


def test_scheduler_stalls_in_the_tail_alone_are_not_a_breach():
    cand = _records("candidate", 150, ms=0.3)
    for r in cand[::10]:  # 10 % of calls stalled by a busy host: p95 jumps, the median does not
        r["model_ms"] = 3.0
    doc = canary.evaluate(cand + _records("incumbent", 600, ms=0.3), started_at=0, now=600, criteria=CRIT)
    assert doc["signals"]["latency_ratio"] == 10.0 and doc["signals"]["latency_p50_ratio"] == 1.0
    assert doc["outcome"] == canary.COMPLETE


def test_shadow_comparison_agreement_and_feedback_error():
    recs = [{"prediction": 10.0 + i, "shadow_prediction": 10.5 + i, "actual_fare": 10.0 + i + (1 if i % 2 else -1)}
            for i in range(40)]
    recs += [{"prediction": 12.0, "shadow_error": "ValueError: non-finite prediction"}] * 10
    recs += [{"prediction": 12.0}]  # logged without a rollout: ignored
    out = canary.shadow_comparison(recs)
    assert (out["requests"], out["compared"], out["shadow_errors"], out["feedback"]) == (50, 40, 10, 40)
    assert out["shadow_error_rate"] == 0.2 and out["within_1_usd"] == 1.0
    assert out["mean_abs_diff"] == pytest.approx(0.5) and out["mean_shift"] == pytest.approx(0.5)
    assert out["champion_rmse"] == pytest.approx(1.0)
    assert out["shadow_rmse"] == pytest.approx(np.sqrt((0.5 ** 2 + 1.5 ** 2) / 2))
    assert canary.shadow_comparison([])["requests"] == 0


def test_prediction_psi_of_small_healthy_arms_is_noise_not_a_shift():
    """30-50 requests per arm: two samples of one distribution often have PSI > 0.25 by chance;
    only a shift beyond the 99 % sampling noise rolls back, and a real one still does."""
    rng = np.random.default_rng(0)
    false_alarms = 0
    for _ in range(200):
        inc = [{"arm": "incumbent", "prediction": float(p), "model_ms": 0.05} for p in rng.gamma(4, 5, 40)]
        cand = [{"arm": "candidate", "prediction": float(p), "model_ms": 0.05} for p in rng.gamma(4, 5, 35)]
        doc = canary.evaluate(inc + cand, started_at=0, now=600, criteria=canary.CanaryCriteria(min_requests=30))
        false_alarms += doc["outcome"] == canary.ROLLBACK
    assert false_alarms <= 6        # ~1 % by construction (10 fixed bins and 0.25 alone: 87 %)
    shifted = [{"arm": "candidate", "prediction": float(p) + 10, "model_ms": 0.05} for p in rng.gamma(4, 5, 35)]
    doc = canary.evaluate(inc + shifted, started_at=0, now=600, criteria=canary.CanaryCriteria(min_requests=30))
    assert doc["outcome"] == canary.ROLLBACK and "prediction distribution shift" in doc["reasons"][0]
    assert doc["signals"]["prediction_psi_noise"] == pytest.approx(canary.psi_noise(40, 35, bins=3), abs=1e-4)
