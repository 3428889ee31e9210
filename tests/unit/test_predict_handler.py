"""The predict Lambda handler with the sample events in events/, on moto (DynamoDB, S3, SQS) and a
toy ONNX model that has the exported pipeline's exact input signature."""

from __future__ import annotations

import importlib.util
import json
from datetime import timedelta
import uuid
from pathlib import Path
from types import SimpleNamespace

import boto3
import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftstack.domain import encoding
from driftstack.contract import features as fc
from driftstack.adapters.registry import PointerConflict, read_pointer, write_pointer
from driftstack.contract.api import example_features
from driftstack.adapters import archive as A
from driftstack.usecases import log_drain
from driftstack.adapters.request_log import utc_now
from driftstack.tools.toy_model import build_toy_model, publish
from driftstack.settings import LogDrainSettings

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
BUCKET, MODELS, LOG_TABLE = "artifacts", "models", "request-log"


class Ctx:
    function_name = "predict"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:predict"
    aws_request_id = "unit-test"


def event(name: str, body=None) -> dict:
    e = json.loads((EVENTS / f"{name}.json").read_text())
    if body is not None:
        e["body"] = body if isinstance(body, str) else json.dumps(body)
    return e


def call(app, e: dict) -> tuple[int, dict, dict]:
    resp = app.handler(e, Ctx())
    headers = {k.lower(): v[0] for k, v in (resp.get("multiValueHeaders") or {}).items()}
    headers.update({k.lower(): v for k, v in (resp.get("headers") or {}).items()})
    return resp["statusCode"], json.loads(resp["body"]), headers


LAYOUT = A.Layout(bucket=BUCKET)


@pytest.fixture
def aws_env(moto, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_DEV", "false")
    s3 = moto.bucket(BUCKET)
    moto.models_table(MODELS)
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="request-log")["QueueUrl"]
    for k, v in {"MODELS_TABLE": MODELS, "ARTIFACT_BUCKET": BUCKET, "LOG_QUEUE_URL": queue_url}.items():
        monkeypatch.setenv(k, v)
    yield SimpleNamespace(s3=s3, sqs=sqs, queue_url=queue_url, models=boto3.resource("dynamodb").Table(MODELS))


def load_app(name: str = "predict"):
    """A fresh import of functions/<name>/app.py (its module level is the Lambda cold start)."""
    spec = importlib.util.spec_from_file_location(f"{name}_app_{uuid.uuid4().hex}", ROOT / "functions" / name / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def champion(aws_env):
    blob = build_toy_model()
    return SimpleNamespace(blob=blob, **publish(aws_env.s3, aws_env.models, BUCKET, blob, version="1"))


@pytest.fixture
def app(aws_env, champion):
    module = load_app()
    yield module


def expected(blob: bytes, rows: list[dict]) -> np.ndarray:
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    return sess.run(["prediction"], encoding.encode(rows))[0].reshape(-1)


def archived(aws_env, kind: str = A.REQUESTS) -> dict[str, dict]:
    """Drain the log queue (as the archiver does) and return the archive's records by request id."""
    log_drain.drain(sqs=aws_env.sqs, s3=aws_env.s3, layout=LAYOUT, queue_url=aws_env.queue_url,
                    load_profile=log_drain.ProfileCache(aws_env.s3, BUCKET), options=LogDrainSettings.from_env().options())
    now = utc_now()
    return {r["request_id"]: r for r in A.read_records(aws_env.s3, LAYOUT, kind, now - timedelta(hours=1),
                                                        now + timedelta(minutes=1))}


def queued(aws_env) -> list[dict]:
    msgs = aws_env.sqs.receive_message(QueueUrl=aws_env.queue_url, MaxNumberOfMessages=10,
                                       VisibilityTimeout=0)["Messages"]
    return [json.loads(m["Body"]) for m in msgs]


# ------------------------------------------------------------------ predict

def test_single_prediction_is_served_and_logged(app, aws_env, champion):
    e = event("predict_single")
    code, body, headers = call(app, e)
    assert code == 200, body
    feats = json.loads(e["body"])["features"]
    assert body["predicted_fare"] == pytest.approx(float(expected(champion.blob, [feats])[0]), abs=1e-4)
    assert body["model_version"] == "1" and body["model_name"] == "taxi-fare"
    assert body["latency_ms"] > 0 and "item_ids" not in body
    assert headers["content-type"] == "application/json"

    msgs = queued(aws_env)       # one message, sent before the response
    assert len(msgs) == 1 and msgs[0]["records"][0]["request_id"] == body["request_id"]
    assert A.request_time(body["request_id"]) is not None     # our ids carry their time
    rec = archived(aws_env)[body["request_id"]]
    assert rec["prediction"] == pytest.approx(body["predicted_fare"], abs=1e-4)
    assert rec["model_version"] == "1" and rec["model_sha"] == champion.sha256[:16]
    assert rec["features"] == feats and "client_request_id" not in rec


def test_batch_prediction_logs_every_instance(app, aws_env, champion):
    e = event("predict_batch")
    code, body, _ = call(app, e)
    assert code == 200, body
    instances = json.loads(e["body"])["instances"]
    assert body["predicted_fare"] == pytest.approx(expected(champion.blob, instances).tolist(), abs=1e-4)
    assert len(body["item_ids"]) == len(instances) == 3
    assert len(queued(aws_env)) == 1                                        # one message per call
    logged = archived(aws_env)
    for item_id, pred in zip(body["item_ids"], body["predicted_fare"]):
        assert logged[item_id]["batch_id"] == body["request_id"]
        assert logged[item_id]["prediction"] == pytest.approx(pred, abs=1e-4)
    keys = [o["Key"] for o in aws_env.s3.list_objects_v2(Bucket=BUCKET, Prefix="requests/")["Contents"]]
    assert len(keys) == 1 and keys[0].endswith(".jsonl.gz")                  # one object per time slot


def test_large_batch_of_1000(app, aws_env):
    rows = [dict(example_features(), trip_distance=0.5 + i % 40) for i in range(1000)]
    code, body, _ = call(app, event("predict_single", {"instances": rows}))
    assert code == 200, body
    assert len(body["predicted_fare"]) == 1000
    assert len(queued(aws_env)) >= 2                  # split under the SQS message limit
    assert len(archived(aws_env)) == 1000


def test_bad_input_names_every_field(app):
    code, body, _ = call(app, event("predict_bad_input"))
    assert code == 422
    by_field = {e["field"]: e for e in body["errors"]}
    assert set(by_field) == {"features.trip_distance", "features.pickup_borough", "features.passenger_count",
                             "features.payment_type", "features.tip"}
    assert by_field["features.trip_distance"]["type"] == "less_than_equal"
    assert "100" in by_field["features.trip_distance"]["message"]
    assert by_field["features.pickup_borough"]["type"] == "literal_error"
    assert "Manhattan" in by_field["features.pickup_borough"]["message"]
    assert by_field["features.passenger_count"]["type"] == "int_type"
    assert by_field["features.payment_type"]["type"] == "missing"
    assert by_field["features.tip"]["type"] == "extra_forbidden"
    assert "features.trip_distance" in body["message"]


@pytest.mark.parametrize("body, field, kind", [
    ({"instances": [dict(example_features(), RatecodeID=9)]}, "instances.0.RatecodeID", "literal_error"),
    ({"instances": []}, "instances", "too_short"),
    ({"features": example_features(), "extra": 1}, "extra", "extra_forbidden"),
    ({}, "features", "missing"),
    ([], "body", "model_attributes_type"),
    ({"features": dict(example_features(), is_weekend=True)}, "features.is_weekend", "int_type"),
    ('{"features": {"trip_distance": NaN}}', "features.trip_distance", "finite_number"),
])
def test_validation_errors_are_422_with_the_field(app, body, field, kind):
    code, out, _ = call(app, event("predict_single", body if isinstance(body, str) else json.dumps(body)))
    assert code == 422, out
    assert (field, kind) in {(e["field"], e["type"]) for e in out["errors"]}


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(
    _json_values.map(json.dumps),
    st.text(max_size=60),
    st.fixed_dictionaries({"features": st.fixed_dictionaries(
        {n: st.one_of(st.just(v), _json_values) for n, v in example_features().items()})}).map(json.dumps),
    st.fixed_dictionaries({"instances": st.lists(st.fixed_dictionaries(
        {n: st.one_of(st.just(v), _json_values) for n, v in example_features().items()}), max_size=3)}).map(json.dumps),
))
def test_bad_input_never_causes_a_5xx(app, body):
    status, out, _ = call(app, event("predict_single", body))
    assert status in (200, 400, 413, 422), (status, out)
    if status == 422:
        assert out["errors"] and all(e["field"] and e["message"] for e in out["errors"])


def test_malformed_json_is_400(app):
    code, body, _ = call(app, event("predict_malformed_json"))
    assert code == 400
    assert "malformed JSON" in body["message"]


def test_batch_over_limit_is_413(aws_env, champion, monkeypatch):
    monkeypatch.setenv("BATCH_LIMIT", "5")
    app = load_app()
    ok, _, _ = call(app, event("predict_single", {"instances": [example_features()] * 5}))
    code, body, _ = call(app, event("predict_single", {"instances": [example_features()] * 6}))
    assert (ok, code) == (200, 413)
    assert "at most 5" in body["message"]


def test_body_too_large_is_413(aws_env, champion, monkeypatch):
    monkeypatch.setenv("MAX_BODY_BYTES", "2000")
    app = load_app()
    code, body, _ = call(app, event("predict_single", {"instances": [example_features()] * 10}))
    assert code == 413 and "limit is 2000" in body["message"]


@pytest.mark.parametrize("ctype, code", [
    ("application/x-www-form-urlencoded", 415),   # curl -d without -H: refused clearly, not parsed as a form
    ("text/plain", 415),
    ("multipart/form-data; boundary=x", 415),
    ("application/json; charset=utf-8", 200),
    (None, 200),                                  # no header: JSON assumed
])
def test_content_type(app, ctype, code):
    e = event("predict_single")
    e["headers"] = {k: v for k, v in e["headers"].items() if k.lower() != "content-type"}
    if ctype:
        e["headers"]["Content-Type"] = ctype
    e["multiValueHeaders"] = {k: [v] for k, v in e["headers"].items()}
    status, body, _ = call(app, e)
    assert status == code, body
    if code == 415:
        assert "application/json" in body["message"]


def test_unknown_route_404_and_wrong_method_405(app):
    assert call(app, event("unknown_route"))[0] == 404
    code, body, headers = call(app, event("wrong_method"))
    assert code == 405 and headers["allow"] == "POST"
    assert "GET is not allowed" in body["message"]


# ------------------------------------------------------------------ health, model, openapi

def test_health_and_model_info(app, champion):
    code, body, _ = call(app, event("health"))
    assert code == 200
    assert body == {"status": "ok", "model_loaded": True, "model_name": "taxi-fare", "model_version": "1",
                    "log_sink_healthy": True, "degraded_reasons": []}
    code, info, _ = call(app, event("model"))
    assert code == 200
    assert info["sha256"] == champion.sha256 and info["model_version"] == "1"
    assert info["artifact"] == f"s3://{BUCKET}/{champion.prefix}"
    assert info["metadata"]["contract_hash"] == fc.contract_hash()


def test_openapi_document_comes_from_the_models(app):
    code, doc, _ = call(app, event("openapi"))
    assert code == 200
    assert set(doc["paths"]) == {"/v1/predict", "/v1/health", "/v1/model", "/v1/feedback"}
    trip = doc["components"]["schemas"]["TripFeatures"]
    assert set(trip["required"]) == set(fc.FEATURE_NAMES)
    assert trip["additionalProperties"] is False
    assert trip["properties"]["trip_distance"]["maximum"] == fc.BY_NAME["trip_distance"].high
    assert trip["properties"]["pickup_borough"]["enum"] == list(fc.BOROUGHS)
    batch = doc["components"]["schemas"]["BatchPredictRequest"]
    assert batch["properties"]["instances"]["maxItems"] == 1000
    assert doc["components"]["securitySchemes"]["apiKey"]["name"] == "x-api-key"
    assert "422" in doc["paths"]["/v1/predict"]["post"]["responses"]


def test_no_model_is_503(aws_env):
    app = load_app()  # no pointer published
    code, body, _ = call(app, event("predict_single"))
    assert code == 503 and "no model is loaded" in body["message"]
    assert "no champion pointer" in body["message"]
    code, health, _ = call(app, event("health"))
    assert code == 503 and health["status"] == "unavailable" and not health["model_loaded"]
    assert call(app, event("model"))[0] == 503


# ------------------------------------------------------------------ feedback

def test_feedback_is_accepted_and_joined_with_its_prediction(app, aws_env):
    _, pred, _ = call(app, event("predict_single"))
    code, body, _ = call(app, event("feedback", {"request_id": pred["request_id"], "actual_fare": 41.5}))
    assert code == 202, body
    assert body["status"] == "accepted" and body["actual_fare"] == 41.5 and body["request_ts"][:10] == utc_now().isoformat()[:10]
    fb = archived(aws_env, A.FEEDBACK)[pred["request_id"]]
    assert fb["actual_fare"] == 41.5
    joined = A.with_feedback(archived(aws_env).values(), [fb])
    assert [r["actual_fare"] for r in joined] == [41.5]


def test_feedback_for_batch_item(app, aws_env):
    _, pred, _ = call(app, event("predict_batch"))
    code, _, _ = call(app, event("feedback", {"request_id": pred["item_ids"][1], "actual_fare": 70.0}))
    assert code == 202
    assert archived(aws_env, A.FEEDBACK)[pred["item_ids"][1]]["actual_fare"] == 70.0


def test_feedback_unknown_id_is_404_and_invalid_is_422(app):
    code, body, _ = call(app, event("feedback_unknown"))
    assert code == 404 and "no-such-request" in body["message"] and "not issued by this API" in body["message"]
    code, body, _ = call(app, event("feedback", {"request_id": "x", "actual_fare": -1}))
    assert code == 422 and body["errors"][0]["field"] == "actual_fare"


# ------------------------------------------------------------------ model handling

@pytest.fixture
def fast_refresh(monkeypatch):
    monkeypatch.setenv("MODEL_REFRESH_SECONDS", "0")


def test_hot_swap_then_corrupt_artifact_keeps_previous(aws_env, champion, fast_refresh):
    app = load_app()
    assert call(app, event("predict_single"))[1]["model_version"] == "1"

    blob2 = build_toy_model(base=10.0)
    publish(aws_env.s3, aws_env.models, BUCKET, blob2, version="2")
    _, body, _ = call(app, event("predict_single"))
    assert body["model_version"] == "2"
    feats = json.loads(event("predict_single")["body"])["features"]
    assert body["predicted_fare"] == pytest.approx(float(expected(blob2, [feats])[0]), abs=1e-4)

    # Version 3: the pointer's sha256 does not match the bytes in S3.
    publish(aws_env.s3, aws_env.models, BUCKET, build_toy_model(base=20.0), version="3", sha256="0" * 64)
    code, body, _ = call(app, event("predict_single"))
    assert code == 200 and body["model_version"] == "2"
    _, health, _ = call(app, event("health"))
    assert health["status"] == "degraded" and health["model_version"] == "2"
    assert any("sha256 mismatch" in r and "still serving 2" in r for r in health["degraded_reasons"])

    # A good version 4 clears the degradation.
    publish(aws_env.s3, aws_env.models, BUCKET, build_toy_model(base=30.0), version="4")
    assert call(app, event("predict_single"))[1]["model_version"] == "4"
    assert call(app, event("health"))[1]["status"] == "ok"


def test_pointer_not_rechecked_before_interval(aws_env, champion, monkeypatch):
    monkeypatch.setenv("MODEL_REFRESH_SECONDS", "3600")
    app = load_app()
    publish(aws_env.s3, aws_env.models, BUCKET, build_toy_model(base=10.0), version="2")
    assert call(app, event("predict_single"))[1]["model_version"] == "1"
    app.SERVING.models.refresh()  # what the interval expiring does
    assert call(app, event("predict_single"))[1]["model_version"] == "2"


@pytest.mark.parametrize("bad, reason", [
    ("garbage", "onnxruntime cannot load"),
    ("contract", "feature contract"),
    ("signature", "do not match the feature contract"),
    ("missing", "download of"),
])
def test_bad_artifacts_are_refused(aws_env, champion, fast_refresh, bad, reason):
    app = load_app()
    if bad == "garbage":
        publish(aws_env.s3, aws_env.models, BUCKET, b"not an onnx model", version="2")
    elif bad == "contract":
        publish(aws_env.s3, aws_env.models, BUCKET, build_toy_model(base=9.0), version="2",
                metadata={"contract_hash": "f" * 64})
    elif bad == "signature":
        publish(aws_env.s3, aws_env.models, BUCKET, _model_without_dropoff(), version="2")
    else:
        current = read_pointer(aws_env.models)
        write_pointer(aws_env.models, model_name="taxi-fare", version="2", bucket=BUCKET,
                      prefix="models/taxi-fare/doesnotexist/", sha256="a" * 64, expected_version=current.version)
    code, body, _ = call(app, event("predict_single"))
    assert code == 200 and body["model_version"] == "1"
    _, health, _ = call(app, event("health"))
    assert health["status"] == "degraded"
    assert any(reason in r for r in health["degraded_reasons"]), health


def _model_without_dropoff() -> bytes:
    import onnx
    from onnx import helper

    model = onnx.load_from_string(build_toy_model(base=5.0))
    graph = model.graph
    node = next(n for n in graph.node if n.input and n.input[0] == "dropoff_borough")
    graph.node.remove(node)
    sum_node = next(n for n in graph.node if n.op_type == "Sum")
    sum_node.input.remove("dropoff_borough_offset")
    graph.input.remove(next(i for i in graph.input if i.name == "dropoff_borough"))
    onnx.checker.check_model(model)
    return helper.make_model(graph, opset_imports=model.opset_import).SerializeToString()


# ------------------------------------------------------------------ last known good at cold start

def test_pointer_keeps_the_artifact_it_replaced(aws_env, champion):
    v1 = read_pointer(aws_env.models)
    assert v1.previous is None                                   # the first champion has none
    v2 = publish(aws_env.s3, aws_env.models, BUCKET, build_toy_model(base=10.0), version="2")
    p = read_pointer(aws_env.models)
    assert (p.version, p.sha256) == ("2", v2["sha256"])
    assert (p.previous.version, p.previous.prefix, p.previous.sha256, p.previous.bucket) == \
        ("1", champion.prefix, champion.sha256, BUCKET)
    # relabelling the same artifact keeps the real previous one (not itself)
    write_pointer(aws_env.models, model_name="taxi-fare", version="2b", bucket=BUCKET, prefix=v2["prefix"],
                  sha256=v2["sha256"], expected_version="2")
    assert read_pointer(aws_env.models).previous.version == "1"
    # the conditional write is unchanged: a stale expected version loses and changes nothing
    with pytest.raises(PointerConflict):
        write_pointer(aws_env.models, model_name="taxi-fare", version="3", bucket=BUCKET, prefix=champion.prefix,
                      sha256=champion.sha256, expected_version="2")
    assert read_pointer(aws_env.models).version == "2b"


def _break_champion(aws_env, champion, how: str) -> None:
    """Point the champion at version 2 whose artifact cannot be served (version 1 becomes previous)."""
    if how == "missing":
        write_pointer(aws_env.models, model_name="taxi-fare", version="2", bucket=BUCKET,
                      prefix="models/taxi-fare/doesnotexist/", sha256="a" * 64, expected_version="1")
    elif how == "corrupt":
        publish(aws_env.s3, aws_env.models, BUCKET, build_toy_model(base=10.0)[:200], version="2")  # truncated
    else:  # the pointer's sha256 is not the artifact's
        publish(aws_env.s3, aws_env.models, BUCKET, build_toy_model(base=10.0), version="2", sha256="0" * 64)


@pytest.mark.parametrize("how, reason", [("missing", "download of"), ("corrupt", "onnxruntime cannot load"),
                                         ("wrong_sha", "sha256 mismatch")])
def test_cold_start_with_a_bad_champion_serves_the_previous_one(aws_env, champion, fast_refresh, how, reason):
    _break_champion(aws_env, champion, how)
    app = load_app()  # a cold start while the pointer names version 2
    code, body, _ = call(app, event("predict_single"))
    assert code == 200 and body["model_version"] == "1", body
    feats = json.loads(event("predict_single")["body"])["features"]
    assert body["predicted_fare"] == pytest.approx(float(expected(champion.blob, [feats])[0]), abs=1e-4)
    code, health, _ = call(app, event("health"))
    assert code == 200 and health["status"] == "degraded" and health["model_version"] == "1", health
    assert any("refused taxi-fare 2" in r and reason in r and "serving the previous champion 1" in r
               for r in health["degraded_reasons"]), health
    code, info, _ = call(app, event("model"))
    assert code == 200 and info["model_version"] == "1" and info["sha256"] == champion.sha256
    assert info["fallback"]["pointer_version"] == "2" and reason in info["fallback"]["reason"], info
    # the named champion becomes servable: the same container swaps it in and is healthy again
    v3 = publish(aws_env.s3, aws_env.models, BUCKET, build_toy_model(base=30.0), version="3")
    assert call(app, event("predict_single"))[1]["model_version"] == "3"
    _, health, _ = call(app, event("health"))
    assert health["status"] == "ok", health
    _, info, _ = call(app, event("model"))
    assert "fallback" not in info and info["sha256"] == v3["sha256"]


def test_cold_start_without_a_previous_champion_is_503(aws_env):
    write_pointer(aws_env.models, model_name="taxi-fare", version="1", bucket=BUCKET,
                  prefix="models/taxi-fare/doesnotexist/", sha256="a" * 64, expected_version=None)
    app = load_app()
    code, body, _ = call(app, event("predict_single"))
    assert code == 503 and "refused taxi-fare 1" in body["message"] and "no model to serve" in body["message"]
    code, health, _ = call(app, event("health"))
    assert code == 503 and health["status"] == "unavailable"


def test_cold_start_when_the_previous_champion_fails_too_is_503(aws_env, champion):
    _break_champion(aws_env, champion, "missing")
    aws_env.s3.delete_object(Bucket=BUCKET, Key=champion.prefix + "model.onnx")  # and version 1 is gone
    app = load_app()
    code, body, _ = call(app, event("predict_single"))
    assert code == 503, body
    msg = body["message"]
    assert "refused taxi-fare 2" in msg and "previous champion 1 was refused too" in msg and "no model to serve" in msg
    assert call(app, event("model"))[0] == 503


# ------------------------------------------------------------------ request log failures

def test_a_failing_queue_spills_to_s3_and_health_says_so(app, aws_env):
    def reject(**_):
        from botocore.exceptions import ClientError
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "SendMessage")

    app.SERVING.log._sqs.send_message = reject
    code, body, _ = call(app, event("predict_single"))
    assert code == 200, body
    spilled = aws_env.s3.list_objects_v2(Bucket=BUCKET, Prefix=LAYOUT.spill_prefix)["Contents"]
    assert len(spilled) == 1
    _, health, _ = call(app, event("health"))
    assert health["status"] == "degraded" and health["log_sink_healthy"] is False
    assert any("ThrottlingException" in r for r in health["degraded_reasons"])
    archiver = load_app("log_archiver")
    out = archiver.handler({}, Ctx())
    assert out["spilled_objects"] == 1 and out["requests"] == 1
    assert body["request_id"] in archived(aws_env)
    assert "Contents" not in aws_env.s3.list_objects_v2(Bucket=BUCKET, Prefix=LAYOUT.spill_prefix)


def test_queue_and_spill_down_is_503_not_an_unlogged_prediction(app):
    def boom(**_):
        raise ConnectionError("down")

    app.SERVING.log._s3.put_object = boom
    app.SERVING.log._sqs.send_message = boom
    code, body, _ = call(app, event("predict_single"))
    assert code == 503 and "request log unavailable" in body["message"]


def test_client_request_id_is_logged_beside_ours(app, aws_env):
    e = event("predict_single")
    e["headers"]["X-Request-Id"] = "client-abc-123"
    code, body, _ = call(app, e)
    assert code == 200 and body["request_id"] != "client-abc-123"
    assert archived(aws_env)[body["request_id"]]["client_request_id"] == "client-abc-123"


def test_sample_events_cover_the_api():
    names = {p.stem for p in EVENTS.glob("*.json")}
    assert {"predict_single", "predict_batch", "predict_bad_input", "predict_malformed_json", "health", "model",
            "feedback", "feedback_unknown", "wrong_method", "unknown_route", "scheduled"} <= names
    single = json.loads(event("predict_single")["body"])
    assert set(single["features"]) == set(fc.FEATURE_NAMES)
    # the "valid" samples really are valid for the schema, the bad one really is not
    from pydantic import TypeAdapter, ValidationError
    from driftstack.contract.api import predict_request_type
    adapter = TypeAdapter(predict_request_type())
    for name in ("predict_single", "predict_batch"):
        adapter.validate_json(event(name)["body"])
    with pytest.raises(ValidationError):
        adapter.validate_json(event("predict_bad_input")["body"])


# ------------------------------------------------------------------ the columnar path (POST /v1/predict)

def _model_errors(body: dict) -> list[dict]:
    """The 422 details the per-row models give for ``body`` (what the router's path reports)."""
    from pydantic import TypeAdapter, ValidationError

    from driftstack.contract.api import predict_request_type
    from driftstack.usecases.prediction_api import _field
    try:
        TypeAdapter(predict_request_type()).validate_python(body)
    except ValidationError as exc:
        return [{"field": _field(("body", *e["loc"])), "type": e["type"], "message": e["msg"]} for e in exc.errors()]
    raise AssertionError("valid body")


def test_bad_batches_name_each_row_and_field_as_the_per_row_models_do(app):
    rows = [dict(r) for r in json.loads(event("predict_batch")["body"])["instances"]] * 4
    rows[1] = dict(rows[1], trip_distance=-1.0, pickup_hour=99)              # two errors in one row
    rows[2] = {k: v for k, v in rows[2].items() if k != "payment_type"}     # missing field
    rows[3] = dict(rows[3], RatecodeID="2", is_weekend=True)                 # wrong types
    rows[5] = dict(rows[5], pickup_borough="Hoboken", tip=1.0)               # unknown category, extra field
    rows[6] = dict(rows[6], passenger_count=2.5, trip_duration_minutes=None)
    body = {"instances": rows}
    code, resp, _ = call(app, event("predict_batch", body))
    assert code == 422
    assert resp["errors"] == _model_errors(body)
    fields = [e["field"] for e in resp["errors"]]
    assert {"instances.1.trip_distance", "instances.1.pickup_hour", "instances.2.payment_type",
            "instances.3.RatecodeID", "instances.3.is_weekend", "instances.5.pickup_borough", "instances.5.tip",
            "instances.6.passenger_count", "instances.6.trip_duration_minutes"} == set(fields)


def test_valid_predictions_skip_the_router_and_answer_as_it_does(app, monkeypatch):
    single, batch = event("predict_single"), event("predict_batch")
    routed = [call(app, e) for e in (single, batch)]
    monkeypatch.setattr(app.API.app, "resolve", lambda *_: pytest.fail("the router was used"))
    direct = [call(app, e) for e in (single, batch)]
    for (code, body, headers), (code2, body2, headers2) in zip(routed, direct):
        assert code == code2 == 200 and headers == headers2
        assert {k: v for k, v in body.items() if k not in ("request_id", "item_ids", "latency_ms")} == \
            {k: v for k, v in body2.items() if k not in ("request_id", "item_ids", "latency_ms")}
        assert set(body) == set(body2)


def test_columnar_path_keeps_the_503_and_400_answers(app, monkeypatch):
    monkeypatch.setattr(app.API.app, "resolve", lambda *_: pytest.fail("the router was used"))
    e = event("predict_single")
    e["headers"]["x-request-id"] = "bad id!"
    code, body, _ = call(app, e)
    assert code == 400 and "X-Request-Id" in body["message"]
    monkeypatch.setattr(app.SERVING.models, "get", lambda: None)
    code, body, _ = call(app, event("predict_single"))
    assert code == 503 and "no model is loaded" in body["message"]


def test_integral_numbers_are_served_as_integers(app, aws_env, champion):
    feats = dict(example_features(), passenger_count=2.0, RatecodeID=1.0)
    code, body, _ = call(app, event("predict_single", {"features": feats}))
    assert code == 200
    rec = archived(aws_env)[body["request_id"]]
    assert rec["features"]["passenger_count"] == 2 and type(rec["features"]["passenger_count"]) is int
    assert rec["features"]["RatecodeID"] == 1 and type(rec["features"]["RatecodeID"]) is int
    assert body["predicted_fare"] == pytest.approx(float(expected(champion.blob, [example_features()])[0]), abs=1e-4)


# ------------------------------------------------------------------ Swagger UI

def _docs_event(query: dict | None = None) -> dict:
    e = event("openapi")
    e["path"] = e["requestContext"]["path"] = "/v1/docs"
    e["pathParameters"] = {"proxy": "v1/docs"}
    e["queryStringParameters"] = query
    e["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    return e


def test_swagger_ui_is_served_offline(app):
    from html.parser import HTMLParser

    resp = app.handler(_docs_event(), Ctx())
    assert resp["statusCode"] == 200
    assert resp["multiValueHeaders"]["Content-Type"] == ["text/html"]
    page = resp["body"]

    class Loads(HTMLParser):
        fetched: list = []
        scripts = 0

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            self.scripts += tag == "script"
            self.fetched += [v for k, v in attrs.items() if k in ("src", "href") and v]
            if tag == "link":
                self.fetched.append(attrs)

    parser = Loads()
    parser.feed(page)
    assert parser.fetched == []          # no <script src>, no <link href>: script and styles are inline
    assert parser.scripts >= 2 and "SwaggerUIBundle" in page and ".swagger-ui" in page
    assert '"/v1/predict"' in page and "x-api-key" in page   # the document is embedded


def test_swagger_json_is_the_openapi_document(app):
    code, spec, _ = call(app, _docs_event({"format": "json"}))
    assert code == 200
    _, doc, _ = call(app, event("openapi"))
    assert spec["paths"].keys() == doc["paths"].keys() and spec["info"]["title"] == doc["info"]["title"]
    assert not any(str(s.get("url", "")).startswith("http") for s in spec.get("servers", []))
    assert call(app, dict(_docs_event(), httpMethod="POST"))[0] == 405


# ------------------------------------------------------------------ what the handler emits besides the answer

def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_each_invocation_flushes_its_emf_metrics_and_the_cold_start_once(aws_env, champion, capsys):
    app = load_app()
    capsys.readouterr()
    for _ in range(2):
        assert call(app, event("predict_single"))[0] == 200
    blobs = [b for b in _json_lines(capsys.readouterr().out) if "_aws" in b]
    served = [b for b in blobs if "Predictions" in b]
    assert len(served) == 2 and all(b["PredictLatency"] and b["request_id"] and b["model_version"] == "1"
                                    for b in served)
    metrics = served[0]["_aws"]["CloudWatchMetrics"][0]
    assert {"Predictions", "PredictLatency"} <= {m["Name"] for m in metrics["Metrics"]}
    assert sum("ColdStart" in b for b in blobs) == 1
    for blob in served:  # the line Powertools itself would print for these values, key order included
        expected = _powertools_blob(blob["request_id"], blob["model_version"], blob["Predictions"][0],
                                    blob["PredictLatency"][0], blob["_aws"]["Timestamp"])
        assert json.dumps(blob) == json.dumps(expected)


def _powertools_blob(request_id, model_version, rows, latency_ms, timestamp_ms) -> dict:
    """What Metrics.add_metric x2 + add_metadata x2 + flush_metrics would print, as the handler did before
    driftstack.usecases.emf_line (a provider of its own: Metrics instances share their metric set)."""
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

    from driftstack.contract import names as N

    provider = AmazonCloudWatchEMFProvider(namespace=N.NAMESPACE, service=N.PREDICT_SERVICE)
    provider.add_metric(name="Predictions", unit=MetricUnit.Count, value=rows)
    provider.add_metric(name="PredictLatency", unit=MetricUnit.Milliseconds, value=latency_ms)
    provider.add_metadata(key="request_id", value=request_id)
    provider.add_metadata(key="model_version", value=model_version)
    provider.set_timestamp(timestamp_ms)
    return provider.serialize_metric_set()


@pytest.mark.parametrize("model_version,rows,latency_ms", [("1", 1, 0.123), ('v"2\\ é', 1000, 12345.678901234),
                                                           ("7", 3, 1e-07)])
def test_the_prediction_emf_line_is_what_powertools_prints(model_version, rows, latency_ms):
    import time

    from aws_lambda_powertools import Metrics

    from driftstack.contract import names as N
    from driftstack.usecases.emf_line import PredictionEmf

    now_ms = int(time.time() * 1000)  # Powertools warns about a timestamp older than 14 days
    line = PredictionEmf(Metrics(namespace=N.NAMESPACE, service=N.PREDICT_SERVICE)).line(
        "req-0001", model_version, rows, latency_ms, timestamp_ms=now_ms)
    expected = _powertools_blob("req-0001", model_version, rows, latency_ms, now_ms)
    assert line == json.dumps(expected, separators=(",", ":"))


def test_log_lines_carry_the_lambda_context_and_the_correlation_id(app, monkeypatch):
    import io

    import logging

    out = io.StringIO()
    # The service's logging logger is process-wide: an earlier test (test_fuzz_api) ran it at CRITICAL,
    # and the handler goes back to the logger's initial level. This test is about INFO's content.
    monkeypatch.setattr(logging.getLogger(app.logger.name), "disabled", False)
    monkeypatch.setattr(app.logger, "initial_log_level", logging.INFO)
    app.logger.setLevel(logging.INFO)
    monkeypatch.setattr(app.logger.registered_handler, "stream", out)
    monkeypatch.setattr(app.SERVING, "predict", lambda *a, **k: 1 / 0)  # an unhandled error is logged
    e = event("predict_single")
    code, body, _ = call(app, e)
    assert code == 500 and "ZeroDivisionError" in body["message"]
    line = next(x for x in _json_lines(out.getvalue()) if x.get("message") == "unhandled error")
    assert line["correlation_id"] == e["requestContext"]["requestId"]
    assert line["function_request_id"] == Ctx.aws_request_id and line["function_name"] == Ctx.function_name
    assert "cold_start" in line
