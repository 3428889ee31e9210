"""Faults injected into the deployed stack on LocalStack (one deployment for the module).

* request-log table unavailable: every record goes to the fallback queue and the replay Lambda
  writes it to the table — count in (records served) = count out (items in the table);
* S3 unavailable at cold start (the champion's bucket does not exist): 503 naming the failed
  download; the function recovers by itself once the bucket and artifact appear (no redeploy);
* pointer to a missing version (artifact key absent) while a model serves: refused, the previous
  model keeps serving, /health says why.
Corrupt/truncated ONNX and a wrong sha256 on the deployed stack: test_serving_api.py
(test_hot_swap_and_corrupt_artifact) and, exhaustively, tests/unit/test_predict_handler.py
(test_bad_artifacts_are_refused); not repeated here.
"""

from __future__ import annotations

import hashlib
import json
import uuid

import boto3
import pytest
import requests

from driftstack.registry import artifact_prefix, read_pointer, write_pointer
from driftstack.schema import example_features
from driftstack.serving.toy_model import build_toy_model, publish
from deployed import deployed

from driftstack.polling import wait_for

pytestmark = [pytest.mark.localstack, pytest.mark.e2e, pytest.mark.slow]

STACK = "DriftstackFaultsTest"
REFRESH_SECONDS = 2



@pytest.fixture(scope="module")
def api(localstack):
    with deployed(localstack, STACK, {"model_refresh_seconds": str(REFRESH_SECONDS)}) as api:
        publish(api.s3, api.models, api.bucket, build_toy_model(), version="1")
        wait_for(lambda: api.health().get("model_version") == "1", what="version 1 served")
        yield api


def status_is(r: requests.Response, code: int) -> list | None:
    """[r] when r has this status (a list: a Response with an error status is falsy)."""
    return [r] if r.status_code == code else None


def predict(api, body: dict) -> requests.Response:
    return api.http.post(f"{api.base}/predict", data=json.dumps(body), timeout=30)


def set_env(api, **changes):
    """Change the predict function's environment (LocalStack starts fresh containers: a cold start)."""
    env = api.lam.get_function_configuration(FunctionName=api.fn)["Environment"]["Variables"]
    api.lam.update_function_configuration(FunctionName=api.fn, Environment={"Variables": {**env, **changes}})
    api.lam.get_waiter("function_updated_v2").wait(FunctionName=api.fn)
    return env


def restore_env(api, env: dict) -> None:
    api.lam.update_function_configuration(FunctionName=api.fn, Environment={"Variables": env})
    api.lam.get_waiter("function_updated_v2").wait(FunctionName=api.fn)


def test_request_log_table_down_loses_nothing(api):
    table = api.outputs["RequestLogTableName"]
    env = set_env(api, REQUEST_LOG_TABLE=f"missing-{uuid.uuid4().hex[:6]}")
    served: list[str] = []
    try:
        wait_for(lambda: predict(api, {"features": example_features()}).status_code == 200, what="reconfigured fn")
        # The probe above was logged too (fallback): count it.
        for i in range(25):
            r = predict(api, {"features": dict(example_features(), trip_distance=1.0 + i)})
            assert r.status_code == 200, r.text
            served.append(r.json()["request_id"])
        for _ in range(3):
            r = predict(api, {"instances": [example_features()] * 5})
            assert r.status_code == 200, r.text
            served.extend(r.json()["item_ids"])
        h = api.health()
        assert h["log_sink_healthy"] is False and h["status"] == "degraded", h
    finally:
        restore_env(api, env)

    def missing():
        got = set()
        for start in range(0, len(served), 100):
            keys = [{"request_id": {"S": rid}} for rid in served[start:start + 100]]
            resp = api.ddb.batch_get_item(RequestItems={table: {"Keys": keys, "ProjectionExpression": "request_id"}})
            got.update(i["request_id"]["S"] for i in resp["Responses"][table])
        return sorted(set(served) - got)
    wait_for(lambda: not missing(), timeout=120, interval=2, what="replay of every fallen-back record")
    assert len(served) == 40 and not missing()  # count in = count out
    dlq = boto3.client("sqs").get_queue_attributes(QueueUrl=api.outputs["FallbackDlqUrl"],
                                                   AttributeNames=["ApproximateNumberOfMessages"])
    assert dlq["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_pointer_to_missing_version_keeps_previous_model(api):
    current = read_pointer(api.models)
    # A warm container holding the current model (the previous test restarted the containers).
    wait_for(lambda: api.health().get("model_version") == current.version, what="the current model served")
    ghost = "f" * 64
    write_pointer(api.models, model_name="taxi-fare", version="ghost", bucket=api.bucket,
                  prefix=artifact_prefix("taxi-fare", ghost), sha256=ghost, expected_version=current.version)
    try:
        h = wait_for(lambda: (x := api.health()).get("degraded_reasons") and x, what="refusal of the ghost version")
        assert h["model_version"] == current.version, h
        assert any("refused taxi-fare ghost" in r and "download" in r and f"still serving {current.version}" in r
                   for r in h["degraded_reasons"]), h
        r = predict(api, {"features": example_features()})
        assert r.status_code == 200 and r.json()["model_version"] == current.version
    finally:
        write_pointer(api.models, model_name=current.model_name, version=current.version, bucket=current.bucket,
                      prefix=current.prefix, sha256=current.sha256, expected_version="ghost")
    wait_for(lambda: not api.health()["degraded_reasons"], what="degraded reason cleared")


def test_s3_unavailable_at_cold_start_then_recovers(api):
    """The champion's bucket is missing when a container starts: 503 with the reason; when the
    bucket (with the artifact) appears, the same containers start serving without any change."""
    current = read_pointer(api.models)
    late = f"driftstack-late-{uuid.uuid4().hex[:8]}"
    blob = build_toy_model(bump=0.5)
    digest = hashlib.sha256(blob).hexdigest()
    prefix = artifact_prefix("taxi-fare", digest)
    write_pointer(api.models, model_name="taxi-fare", version="late", bucket=late, prefix=prefix, sha256=digest,
                  expected_version=current.version)
    env = set_env(api, DRIFTSTACK_FAULT_COLD_START=uuid.uuid4().hex)  # new containers: a cold start
    try:
        r = wait_for(lambda: status_is(predict(api, {"features": example_features()}), 503),
                     what="503 from a cold container without its model")[0]
        msg = r.json()["message"]
        assert "no model is loaded" in msg and f"s3://{late}/" in msg and "NoSuchBucket" in msg, msg
        h = api.http.get(f"{api.base}/health", timeout=30)
        assert h.status_code == 503 and h.json()["status"] == "unavailable"
        # S3 "comes back": the bucket and the artifact appear.
        api.s3.create_bucket(Bucket=late)
        publish(api.s3, api.models, late, blob, version="late", promote=False)
        r = wait_for(lambda: status_is(predict(api, {"features": example_features()}), 200),
                     timeout=90, what="recovery once the bucket exists")[0]
        assert r.json()["model_version"] == "late"
    finally:
        restore_env(api, env)
        write_pointer(api.models, model_name=current.model_name, version=current.version, bucket=current.bucket,
                      prefix=current.prefix, sha256=current.sha256, expected_version="late")
        for obj in api.s3.list_objects_v2(Bucket=late).get("Contents", []) if _exists(api.s3, late) else []:
            api.s3.delete_object(Bucket=late, Key=obj["Key"])
        if _exists(api.s3, late):
            api.s3.delete_bucket(Bucket=late)


def _exists(s3, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
        return True
    except Exception:  # noqa: BLE001
        return False
