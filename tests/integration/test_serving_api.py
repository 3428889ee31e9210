"""The prediction API deployed with cdklocal to a real LocalStack, called over real HTTP through
API Gateway (``/_aws/execute-api/{api_id}/{stage}/v1/...``) with the API key.

Tests run in file order against one deployment: the first one sees the stack before any model is
published (503), the following ones serve the toy champion, swap it, refuse bad artifacts (wrong
sha256, truncated, corrupt bytes) while the previous version keeps serving, and finally break the
log queue to exercise the S3 spill that the log archiver merges into the archive.
"""

from __future__ import annotations

import json

import boto3
import pytest
import requests

from driftstack.contract import features as fc
from driftstack.contract.api import example_features
from driftstack.tools.toy_model import build_toy_model, publish
from deployed import deployed

from driftstack.tools.polling import wait_for

pytestmark = [pytest.mark.localstack, pytest.mark.e2e]

STACK = "DriftstackServingTest"
REFRESH_SECONDS = 2



@pytest.fixture(scope="module")
def api(localstack):
    with deployed(localstack, STACK, {"model_refresh_seconds": str(REFRESH_SECONDS)}) as api:
        yield api


def predict(api, body, **kw):
    return api.http.post(api.url("/predict"), data=body if isinstance(body, str) else json.dumps(body),
                         headers={"content-type": "application/json"}, timeout=30, **kw)


def test_no_model_yet_is_503(api):
    r = predict(api, {"features": example_features()})
    assert r.status_code == 503, r.text
    assert "no model is loaded" in r.json()["message"]
    r = api.http.get(api.url("/health"), timeout=30)
    assert r.status_code == 503 and r.json()["status"] == "unavailable"


@pytest.fixture(scope="module")
def champion(api):
    v1 = publish(api.s3, api.models, api.bucket, build_toy_model(), version="1")
    wait_for(lambda: api.health().get("model_version") == "1",
             what="version 1 to be served")
    return v1


def test_predict_single_is_logged(api, champion):
    r = predict(api, {"features": example_features()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == "1" and body["predicted_fare"] > 0
    queued = api.sqs.get_queue_attributes(QueueUrl=api.outputs["LogQueueUrl"],
                                          AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert int(queued["ApproximateNumberOfMessages"]) >= 1      # sent before the response returned
    rec = api.archived()[body["request_id"]]
    assert rec["model_version"] == "1" and rec["model_sha"] == champion["sha256"][:16]
    keys = [o["Key"] for o in api.s3.list_objects_v2(Bucket=api.bucket, Prefix="requests/").get("Contents", [])]
    assert keys and all(k.endswith(".jsonl.gz") and "/slot=" in k for k in keys)   # per time slot, not per call
    aggs = api.s3.list_objects_v2(Bucket=api.bucket, Prefix="aggregates/")["Contents"]
    agg = json.loads(api.s3.get_object(Bucket=api.bucket, Key=aggs[-1]["Key"])["Body"].read())
    # the toy model ships no reference profile: counted, not binned (test_loop checks the bins)
    assert agg["versions"]["1"]["n"] >= 1 and agg["versions"]["1"]["profile_missing"] is True


def test_https_verified_against_the_local_ca(api, champion):
    """The client and `driftstack predict` call the API over HTTPS on LocalStack's port, checking its
    certificate against the local CA; without that CA the same URL is refused."""
    from click.testing import CliRunner

    from driftstack.tools.api_client import ApiClient, local_ca_file
    from driftstack.tools.cli import cli

    client = ApiClient.from_stack(api.endpoint, STACK)
    assert client.base_url.startswith("https://localhost:") and client.verify == str(local_ca_file())
    status, body = client.predict(example_features())
    assert status == 200 and body["model_version"] == "1", body
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(client.base_url + "/v1/health", timeout=30, verify=True)
    out = CliRunner().invoke(cli, ["--endpoint-url", api.endpoint, "--stack", STACK, "predict",
                                   "--cacert", str(local_ca_file()), "--json", "-"],
                             input=json.dumps({"features": example_features()}))
    assert out.exit_code == 0 and json.loads(out.output)["model_version"] == "1", out.output


def test_api_key_required(api, champion):
    r = requests.post(api.url("/predict"), json={"features": example_features()}, timeout=30)
    assert r.status_code == 403
    r = requests.post(api.url("/predict"), json={"features": example_features()}, timeout=30,
                      headers={"x-api-key": "not-the-key"})
    assert r.status_code == 403


def test_error_statuses(api, champion):
    r = predict(api, '{"features": {')
    assert r.status_code == 400 and "malformed JSON" in r.json()["message"]

    bad = dict(example_features(), trip_distance=500.0, pickup_borough="Atlantis", extra=1)
    del bad["RatecodeID"]
    r = predict(api, {"features": bad})
    assert r.status_code == 422
    fields = {e["field"]: e["type"] for e in r.json()["errors"]}
    assert fields == {"features.trip_distance": "less_than_equal", "features.pickup_borough": "literal_error",
                      "features.extra": "extra_forbidden", "features.RatecodeID": "missing"}

    r = predict(api, {"instances": [example_features()] * 1001})
    assert r.status_code == 413 and "at most 1000" in r.json()["message"]
    r = predict(api, json.dumps({"instances": [example_features()] * 3}) + " " * (3 * 1024 * 1024))
    assert r.status_code == 413 and "bytes" in r.json()["message"]

    r = api.http.post(api.url("/predict"), data=json.dumps({"features": example_features()}), timeout=30,
                      headers={"content-type": "application/x-www-form-urlencoded"})  # curl -d without -H
    assert r.status_code == 415 and "application/json" in r.json()["message"]

    assert api.http.get(api.url("/nope"), timeout=30).status_code == 404
    r = api.http.get(api.url("/predict"), timeout=30)
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert api.http.delete(api.url("/health"), timeout=30).status_code == 405


def test_batch_of_1000(api, champion):
    rows = [dict(example_features(), trip_distance=0.5 + (i % 50), RatecodeID=1 + i % 6) for i in range(1000)]
    r = predict(api, {"instances": rows})
    assert r.status_code == 200, r.text[:500]
    body = r.json()
    assert len(body["predicted_fare"]) == len(body["item_ids"]) == 1000
    logged = api.archived()
    assert all(logged[i]["batch_id"] == body["request_id"] for i in body["item_ids"])   # all 1,000


def test_feedback(api, champion):
    pred = predict(api, {"features": example_features()}).json()
    r = api.http.post(api.url("/feedback"), json={"request_id": pred["request_id"], "actual_fare": 33.3},
                      timeout=30)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "accepted"
    fb = api.archived("feedback")[pred["request_id"]]
    assert fb["actual_fare"] == 33.3
    r = api.http.post(api.url("/feedback"), json={"request_id": "never-seen", "actual_fare": 10.0}, timeout=30)
    assert r.status_code == 404


def test_model_info_and_openapi(api, champion):
    info = api.http.get(api.url("/model"), timeout=30).json()
    assert info["sha256"] == champion["sha256"] and info["metadata"]["contract_hash"] == fc.contract_hash()
    doc = api.http.get(api.url("/openapi.json"), timeout=30).json()
    assert set(doc["components"]["schemas"]["TripFeatures"]["required"]) == set(fc.FEATURE_NAMES)


def _flip_bytes(blob: bytes) -> bytes:
    """The same length with the middle third inverted: a corrupt file (bad sectors, a botched copy)."""
    a, b = len(blob) // 3, 2 * len(blob) // 3
    return blob[:a] + bytes(x ^ 0xFF for x in blob[a:b]) + blob[b:]


# (how the published artifact is bad, its bytes and pointer digest, the reason /health must give)
BAD_ARTIFACTS = [
    ("wrong sha256", lambda: (build_toy_model(base=22.0), "0" * 64), "sha256 mismatch"),
    # the pointer's digest is the bad file's own: the sha256 check passes and onnxruntime must refuse it
    ("truncated", lambda: (build_toy_model(base=22.0)[:300], None), "onnxruntime cannot load"),
    ("corrupt", lambda: (_flip_bytes(build_toy_model(base=22.0)), None), "onnxruntime cannot load"),
]


def test_hot_swap_and_bad_artifacts(api, champion):
    """A good version is picked up without a redeploy; each bad one is refused by the running
    containers (previous version keeps serving, /health says why) until a good one heals it."""
    good = 2
    publish(api.s3, api.models, api.bucket, build_toy_model(base=11.0), version=str(good))
    wait_for(lambda: predict(api, {"features": example_features()}).json()["model_version"] == str(good),
             timeout=REFRESH_SECONDS + 30, what=f"version {good} without a redeploy")

    for how, make, reason in BAD_ARTIFACTS:
        blob, digest = make()
        bad = good + 1
        publish(api.s3, api.models, api.bucket, blob, version=str(bad), sha256=digest)
        health = wait_for(lambda: (h := api.health())["status"] == "degraded" and h,
                          timeout=REFRESH_SECONDS + 30, what=f"health to report the {how} artifact")
        assert health["model_version"] == str(good), (how, health)
        assert any(reason in r for r in health["degraded_reasons"]), (how, health)
        for _ in range(5):
            r = predict(api, {"features": example_features()})
            assert r.status_code == 200 and r.json()["model_version"] == str(good), (how, r.text)

        # A good next version heals it (and a fresh container never starts on the bad one).
        good = bad + 1
        publish(api.s3, api.models, api.bucket, build_toy_model(base=30.0 + good), version=str(good))
        wait_for(lambda: api.health()["status"] == "ok",
                 timeout=REFRESH_SECONDS + 30, what=f"version {good} to clear the {how} degradation")
        assert predict(api, {"features": example_features()}).json()["model_version"] == str(good)


def test_log_queue_down_spills_to_s3_and_the_archiver_merges_it(api, champion):
    """The predict function's log queue points nowhere: the record spills to S3 (the prediction is
    still served, /health says why) and the log archiver merges it into the archive."""
    lam = boto3.client("lambda")
    name = api.outputs["PredictFunctionName"]
    env = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    broken = dict(env, LOG_QUEUE_URL=env["LOG_QUEUE_URL"].rsplit("/", 1)[0] + "/no-such-queue")
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": broken})
    try:
        lam.get_waiter("function_updated_v2").wait(FunctionName=name)
        r = wait_for(lambda: (x := predict(api, {"features": example_features()})).status_code == 200
                     and x, what="a prediction from the reconfigured function")
        rid = r.json()["request_id"]
        health = api.health()
        assert health["log_sink_healthy"] is False, health
        assert any("NonExistentQueue" in reason or "QueueDoesNotExist" in reason
                   for reason in health["degraded_reasons"]), health
        assert api.s3.list_objects_v2(Bucket=api.bucket, Prefix="log-spill/")["KeyCount"] >= 1
        assert rid in api.archived()
        assert api.s3.list_objects_v2(Bucket=api.bucket, Prefix="log-spill/")["KeyCount"] == 0
    finally:
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": env})
        lam.get_waiter("function_updated_v2").wait(FunctionName=name)
