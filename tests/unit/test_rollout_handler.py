"""The predict handler with a rollout (moto + toy ONNX models): shadow never changes a response and
logs both predictions; canary routing by request id, its share, fallback on candidate failure;
/model and /health show the rollout; the canary evaluation Lambda completes a good canary and
rolls back a bad one (errors / 10x slower) with the reason."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from test_predict_handler import BUCKET, archived, aws_env, call, champion, event, expected, load_app  # noqa: F401

from driftstack.adapters.registry import read_pointer
from driftstack.contract.api import example_features
from driftstack.adapters import rollout as ro
from driftstack.tools.toy_model import build_toy_model, publish


def trips(n: int, seed: int = 0, long_share: float = 0.0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        f = example_features()
        f.update(trip_distance=round(rng.uniform(11, 30) if rng.random() < long_share else rng.uniform(0.5, 9), 2),
                 trip_duration_minutes=round(rng.uniform(3, 60), 1), pickup_hour=rng.randrange(24),
                 passenger_count=rng.randint(1, 4))
        out.append(f)
    return out


def predict(app, features: dict, request_id: str | None = None):
    e = event("predict_single", {"features": features})
    if request_id:
        e["headers"] = {**(e.get("headers") or {}), "X-Request-Id": request_id}
    return call(app, e)


def candidate(aws_env, blob: bytes, version: str = "2"):
    return publish(aws_env.s3, aws_env.models, BUCKET, blob, version=version, promote=False)


def start(aws_env, cand, mode, share=0.1):
    return ro.start(aws_env.models, mode=mode, share=share, model_name="taxi-fare", version=cand["version"],
                    bucket=BUCKET, prefix=cand["prefix"], sha256=cand["sha256"])


@pytest.fixture
def app(aws_env, champion):  # noqa: F811 - the predict app, created after the test set up its rollout
    made = []

    def make():
        made.append(load_app())
        return made[-1]
    yield make


def record(aws_env, rid: str) -> dict:
    """The archived record of a request, by our id, or the latest sent with the client's X-Request-Id
    (a replayed request is served, and so logged, again)."""
    logged = archived(aws_env)
    if rid in logged:
        return logged[rid]
    found = sorted((r for r in logged.values() if r.get("client_request_id") == rid), key=lambda r: r["ts"])
    assert found, f"no record for client request id {rid}"
    return found[-1]


# ---------------------------------------------------------------- shadow

def _strip(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("latency_ms", "request_id")}


def test_shadow_responses_identical_and_both_predictions_logged(aws_env, champion, app):  # noqa: F811
    rows = trips(30, seed=1)
    ids = [f"shadow-test-{i:04d}" for i in range(len(rows))]
    off = app()
    without = [predict(off, r, rid) for r, rid in zip(rows, ids)]
    chal_blob = build_toy_model(per_mile=3.1, bump=1.0)
    start(aws_env, candidate(aws_env, chal_blob), ro.SHADOW)
    on = app()
    assert on.SERVING.rollout.active.mode == ro.SHADOW
    with_shadow = [predict(on, r, rid) for r, rid in zip(rows, ids)]
    for (c1, b1, _), (c2, b2, _) in zip(without, with_shadow):
        assert c1 == c2 == 200 and _strip(b1) == _strip(b2) and b2["model_version"] == "1"
    want_champ, want_chal = expected(champion.blob, rows), expected(chal_blob, rows)
    for i, rid in enumerate(ids):
        rec = record(aws_env, rid)
        assert rec["prediction"] == pytest.approx(float(want_champ[i]), abs=1e-4)
        assert rec["shadow_prediction"] == pytest.approx(float(want_chal[i]), abs=1e-4)
        assert rec["shadow_version"] == "2" and rec["rollout_mode"] == ro.SHADOW and rec["model_version"] == "1"
    assert not np.allclose(want_champ, want_chal)  # the test would notice a swapped response


def test_shadow_batch_logs_a_shadow_prediction_per_row(aws_env, champion, app):  # noqa: F811
    chal_blob = build_toy_model(per_minute=0.7)
    start(aws_env, candidate(aws_env, chal_blob), ro.SHADOW)
    rows = trips(5, seed=2)
    code, body, _ = call(app(), event("predict_batch", {"instances": rows}))
    assert code == 200
    want = expected(chal_blob, rows)
    for i, iid in enumerate(body["item_ids"]):
        assert record(aws_env, iid)["shadow_prediction"] == pytest.approx(float(want[i]), abs=1e-4)


def test_failing_challenger_never_affects_responses(aws_env, champion, app):  # noqa: F811
    rows = trips(20, seed=3, long_share=0.5)
    start(aws_env, candidate(aws_env, build_toy_model(nan_above_distance=10.5)), ro.SHADOW)
    a = app()
    want = expected(champion.blob, rows)
    results = [predict(a, r, f"failing-shadow-{i:03d}") for i, r in enumerate(rows)]
    assert all(code == 200 for code, _, _ in results)
    assert [b["predicted_fare"] for _, b, _ in results] == [round(float(p), 4) for p in want]
    errors = [record(aws_env, f"failing-shadow-{i:03d}").get("shadow_error") for i in range(len(rows))]
    assert errors == ["non-finite prediction" if r["trip_distance"] > 10.5 else None for r in rows]

    def explode(feeds):
        raise RuntimeError("onnxruntime exploded")
    object.__setattr__(a.SERVING.rollout.active.model, "run", explode)  # a challenger that raises
    code, body, _ = predict(a, rows[0], "raising-shadow-0001")
    assert code == 200 and body["predicted_fare"] == round(float(want[0]), 4)
    assert record(aws_env, "raising-shadow-0001")["shadow_error"] == "RuntimeError: onnxruntime exploded"


# ---------------------------------------------------------------- canary

def test_canary_share_and_deterministic_routing(aws_env, champion, app):  # noqa: F811
    share = 0.2
    start(aws_env, candidate(aws_env, build_toy_model(per_mile=2.6)), ro.CANARY, share=share)
    a = app()
    row = trips(1, seed=4)[0]
    served = {}
    for i in range(1200):
        rid = f"canary-req-{i:05d}"
        code, body, _ = predict(a, row, rid)
        assert code == 200
        served[rid] = body["model_version"]
        if i == 0:   # read its log record now: moto's SQS receive is quadratic in the queue's length
            rec = record(aws_env, rid)
    n_cand = sum(v == "2" for v in served.values())
    sd = (share * (1 - share) / len(served)) ** 0.5
    assert abs(n_cand / len(served) - share) < 4 * sd
    # exactly the hash's choice, and a replay of a request id lands on the same arm
    assert all((v == "2") == (ro.bucket_of(rid) < ro.threshold_of(share)) for rid, v in served.items())
    for rid in list(served)[:50]:
        assert predict(a, row, rid)[1]["model_version"] == served[rid]
    assert rec["arm"] == ("candidate" if served["canary-req-00000"] == "2" else "incumbent")
    assert rec["model_version"] == served["canary-req-00000"] and rec["model_ms"] > 0


def test_failing_canary_falls_back_to_the_champion(aws_env, champion, app):  # noqa: F811
    start(aws_env, candidate(aws_env, build_toy_model(nan_above_distance=10.5)), ro.CANARY, share=0.5)
    a = app()
    long_trip = dict(example_features(), trip_distance=20.0)
    rid = next(f"fallback-{i:04d}" for i in range(100) if ro.bucket_of(f"fallback-{i:04d}") < 5000)
    code, body, _ = predict(a, long_trip, rid)
    assert code == 200 and body["model_version"] == "1"
    assert body["predicted_fare"] == round(float(expected(champion.blob, [long_trip])[0]), 4)
    rec = record(aws_env, rid)
    assert rec["arm"] == "candidate" and rec["candidate_error"] == "ValueError: non-finite prediction"


def test_bad_request_id_header_is_a_400_naming_it(aws_env, champion, app):  # noqa: F811
    code, body, _ = predict(app(), example_features(), "bad id!")
    assert code == 400 and "X-Request-Id" in body["message"]


def test_model_and_health_show_the_rollout_and_its_end(aws_env, champion, app):  # noqa: F811
    r = start(aws_env, candidate(aws_env, build_toy_model(per_mile=2.6)), ro.CANARY, share=0.1)
    a = app()
    code, health, _ = call(a, event("health"))
    assert code == 200 and health["rollout"]["rollout_id"] == r.rollout_id and health["rollout"]["share"] == 0.1
    code, model, _ = call(a, event("model"))
    assert model["model_version"] == "1" and model["rollout"]["candidate_version"] == "2"
    ro.complete(aws_env.models, r, reason="test")
    a.SERVING.rollout.refresh()  # what the refresh interval does; the champion is re-read at the same moment
    code, model, _ = call(a, event("model"))
    assert model["model_version"] == "2" and "rollout" not in model
    assert "rollout" not in call(a, event("health"))[1]


# ---------------------------------------------------------------- scheduled evaluation

@pytest.fixture
def evaluator(aws_env, monkeypatch):
    import importlib.util
    import uuid
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "functions" / "canary_eval" / "app.py"
    spec = importlib.util.spec_from_file_location(f"canary_eval_{uuid.uuid4().hex}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Ctx:
    function_name = "canary-eval"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:canary-eval"
    aws_request_id = "unit-test"


def _canary_run(aws_env, app, evaluator, blob: bytes, *, n=240, long_share=0.0, criteria=None):
    r = start(aws_env, candidate(aws_env, blob), ro.CANARY, share=0.3)
    a = app()
    for i, row in enumerate(trips(n, seed=5, long_share=long_share)):
        assert predict(a, row, f"eval-{i:05d}")[0] == 200
    out = evaluator.handler({"criteria": {"min_requests": 40, **(criteria or {})}}, Ctx())
    return r, out


def test_evaluation_completes_a_good_canary(aws_env, champion, app, evaluator):  # noqa: F811
    r, out = _canary_run(aws_env, app, evaluator, build_toy_model(per_mile=2.52))
    assert out["status"] == "complete", out["reasons"]
    assert read_pointer(aws_env.models).version == "2" and ro.read(aws_env.models) is None
    last = ro.last_outcome(aws_env.models)
    assert last["outcome"] == "completed" and last["rollout_id"] == r.rollout_id
    assert ro.last_evaluation(aws_env.models)["outcome"] == "complete"
    assert evaluator.handler({}, Ctx())["status"] == "idle"


def test_evaluation_rolls_back_an_erroring_canary(aws_env, champion, app, evaluator):  # noqa: F811
    r, out = _canary_run(aws_env, app, evaluator, build_toy_model(nan_above_distance=10.5), long_share=0.3)
    assert out["status"] == "rollback"
    assert read_pointer(aws_env.models).version == "1" and ro.read(aws_env.models) is None
    last = ro.last_outcome(aws_env.models)
    assert last["outcome"] == "rolled_back" and "error rate" in last["reason"] and "non-finite" in last["reason"]
    assert last["evaluation"]["candidate"]["errors"] > 0


def test_evaluation_rolls_back_a_10x_slower_canary(aws_env, champion, app, evaluator):  # noqa: F811
    _, out = _canary_run(aws_env, app, evaluator, build_toy_model(slow_layers=60))
    assert out["status"] == "rollback"
    assert read_pointer(aws_env.models).version == "1"
    reason = ro.last_outcome(aws_env.models)["reason"]
    assert "latency p95" in reason and out["signals"]["latency_ratio"] >= 3, json.dumps(out["signals"])


def test_evaluation_waits_with_too_little_traffic(aws_env, champion, app, evaluator):  # noqa: F811
    _, out = _canary_run(aws_env, app, evaluator, build_toy_model(per_mile=2.52), n=20)
    assert out["status"] == "wait" and "waiting for traffic" in out["reasons"][0]
    assert ro.read(aws_env.models) is not None and read_pointer(aws_env.models).version == "1"


def test_evaluation_of_a_shadow_records_the_comparison_without_deciding(aws_env, champion, app, evaluator):  # noqa: F811
    r = start(aws_env, candidate(aws_env, build_toy_model(per_mile=2.6)), ro.SHADOW)
    a = app()
    for i, row in enumerate(trips(30, seed=6)):
        code, body, _ = predict(a, row, f"shadow-eval-{i:04d}")
        assert code == 200
        if i < 10:
            call(a, event("feedback", {"request_id": body["request_id"], "actual_fare": body["predicted_fare"] + 1}))
    out = evaluator.handler({}, Ctx())
    assert out["status"] == "shadow" and out["rollout_id"] == r.rollout_id
    comp = out["comparison"]
    assert (comp["requests"], comp["compared"], comp["shadow_errors"], comp["feedback"]) == (30, 30, 0, 10)
    assert comp["mean_shift"] > 0 and comp["champion_rmse"] == pytest.approx(1.0, abs=1e-3)
    assert ro.read(aws_env.models) == r and ro.last_evaluation(aws_env.models)["comparison"] == comp


def test_evaluation_rolls_back_an_unloadable_canary_at_once(aws_env, champion, app, evaluator):  # noqa: F811
    cand = candidate(aws_env, build_toy_model(per_mile=2.6))
    r = ro.start(aws_env.models, mode=ro.CANARY, share=0.5, model_name="taxi-fare", version="2", bucket=BUCKET,
                 prefix=cand["prefix"], sha256="f" * 64)   # the pointer's sha256 does not match the artifact
    a = app()  # cold start: the container refuses the candidate and records why on the rollout
    code, health, _ = call(a, event("health"))
    assert health["rollout"]["candidate_loaded"] is False and "sha256 mismatch" in health["rollout"]["error"]
    for i, row in enumerate(trips(10, seed=7)):
        code, body, _ = predict(a, row, f"unloadable-{i:04d}")
        assert code == 200 and body["model_version"] == "1"      # the champion serves everything
    out = evaluator.handler({"criteria": {"min_requests": 40}}, Ctx())  # far below max_minutes, no traffic needed
    assert out["status"] == "rollback" and out["reasons"][0].startswith("candidate could not be loaded: sha256 mismatch")
    last = ro.last_outcome(aws_env.models)
    assert last["rollout_id"] == r.rollout_id and last["outcome"] == "rolled_back"
    assert last["reason"].startswith("candidate could not be loaded: sha256 mismatch")
    assert read_pointer(aws_env.models).version == "1" and ro.read(aws_env.models) is None
