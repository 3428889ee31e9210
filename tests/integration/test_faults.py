"""Faults injected into the deployed stack on LocalStack (one deployment for the module).

* log queue unavailable: every record spills to S3 and the log archiver merges it into the archive
  — count in (records served) = count out (records in the archive);
* log queue hanging (connections accepted, never answered): predictions are still answered (the
  queue write gives up after the log timeout and spills) and every record reaches the archive;
* the archiver run twice at once over the same queue: every record archived exactly once;
* S3 unavailable at cold start (the champion's bucket does not exist): the pointer's previous
  champion serves (last known good; /health degraded naming the download, /model says which
  version serves); without a usable previous, 503 naming both refusals. Either way the function
  recovers by itself once the bucket and artifact appear (no redeploy);
* S3 unreachable (connection refused: the function's S3 endpoint is a gate we close and open,
  tests/integration/netgate.py): a cold start is 503 naming the connection failure, the same
  containers recover when S3 answers again; S3 down under a warm container: it keeps serving, its
  log (the queue) is unaffected, and every record reaches the archive;
* pointer to a missing version (artifact key absent) while a model serves: refused, the previous
  model keeps serving, /health says why.
Corrupt/truncated ONNX and a wrong sha256 on the deployed stack: test_serving_api.py
(test_hot_swap_and_bad_artifacts) and, exhaustively, tests/unit/test_predict_handler.py
(test_bad_artifacts_are_refused); not repeated here.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from urllib.parse import urlparse

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from driftstack.adapters import archive
from driftstack.adapters.registry import artifact_prefix, read_pointer, write_pointer
from driftstack.contract.api import example_features
from driftstack.tools.toy_model import build_toy_model, publish
from deployed import deployed
from netgate import Gate

from driftstack.tools.polling import wait_for

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


def test_log_queue_down_loses_nothing(api):
    env = api.lam.get_function_configuration(FunctionName=api.fn)["Environment"]["Variables"]
    set_env(api, LOG_QUEUE_URL=env["LOG_QUEUE_URL"].rsplit("/", 1)[0] + f"/missing-{uuid.uuid4().hex[:6]}")
    served: list[str] = []
    try:
        wait_for(lambda: predict(api, {"features": example_features()}).status_code == 200, what="reconfigured fn")
        # (the probe above was logged too, through the spill)
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
        assert any("spilled to S3" in x for x in h["degraded_reasons"]), h
    finally:
        restore_env(api, env)

    assert len(served) == 40
    assert api.s3.list_objects_v2(Bucket=api.bucket, Prefix="log-spill/")["KeyCount"] >= 29
    _wait_until_archived(api, served)  # count in = count out
    assert api.s3.list_objects_v2(Bucket=api.bucket, Prefix="log-spill/")["KeyCount"] == 0
    dlq = api.sqs.get_queue_attributes(QueueUrl=api.outputs["LogDlqUrl"], AttributeNames=["ApproximateNumberOfMessages"])
    assert dlq["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_log_queue_that_hangs_turns_into_the_spill_not_a_hung_request(api):
    """SQS accepts connections and never answers: each queue write gives up after the function's
    log timeout (LOG_TIMEOUT_SECONDS, 2 s, two attempts), the record spills to S3, the prediction is
    answered (not held until API Gateway or the client gives up), and the archive gets every record."""
    current = read_pointer(api.models)
    with Gate(urlparse(api.endpoint).port) as sqs_gate:
        sqs_gate.open()
        env = set_env(api, AWS_ENDPOINT_URL_SQS=sqs_gate.url)   # a cold start through the open gate
        try:
            wait_for(lambda: predict(api, {"features": example_features()}).json().get("model_version")
                     == current.version, timeout=90, what="the champion served with SQS through the gate")
            sqs_gate.stall()
            served, seconds = [], []
            for i in range(5):
                started = time.monotonic()
                r = predict(api, {"features": dict(example_features(), trip_distance=3.0 + i)})
                seconds.append(round(time.monotonic() - started, 1))
                assert r.status_code == 200 and r.json()["model_version"] == current.version, r.text
                served.append(r.json()["request_id"])
            print(f"response times with the log queue hanging: {seconds} s")
            h = api.health()
            assert h["log_sink_healthy"] is False, h
            assert any("sqs: " in x and "timeout" in x.lower() for x in h["degraded_reasons"]), h
        finally:
            restore_env(api, env)
    _wait_until_archived(api, served)


def test_the_archiver_run_twice_at_once_archives_each_record_once(api):
    """Two archiver runs over the same queue at the same moment (a schedule and a drift check, or a
    retried event): every record served is archived, none twice."""
    served = []
    for i in range(30):
        r = predict(api, {"features": dict(example_features(), trip_distance=5.0 + i / 10)})
        assert r.status_code == 200, r.text
        served.append(r.json()["request_id"])
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: api.archive_now(), range(2)))
    assert sum(rep["requests"] for rep in reports) >= 30, reports
    _wait_until_archived(api, served)
    bodies = [api.s3.get_object(Bucket=api.bucket, Key=o["Key"])["Body"].read()
              for o in api.s3.list_objects_v2(Bucket=api.bucket, Prefix="requests/")["Contents"]]
    ids = [r["request_id"] for body in bodies for r in archive.decode(body)]
    assert len(ids) == len(set(ids)) and set(served) <= set(ids)


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


def _cold_start(api) -> dict:
    """New containers for the predict function (LocalStack starts fresh ones on a config change)."""
    return set_env(api, DRIFTSTACK_FAULT_COLD_START=uuid.uuid4().hex)


def _point_at_missing_bucket(api, bucket: str, version: str, expected: str, bump: float) -> bytes:
    """Point the champion at an artifact in a bucket that does not exist (yet); returns its bytes."""
    blob = build_toy_model(bump=bump)
    digest = hashlib.sha256(blob).hexdigest()
    write_pointer(api.models, model_name="taxi-fare", version=version, bucket=bucket,
                  prefix=artifact_prefix("taxi-fare", digest), sha256=digest, expected_version=expected)
    return blob


def test_s3_unavailable_at_cold_start_serves_the_previous_champion_then_recovers(api):
    """The champion's bucket is missing when a container starts: it serves the pointer's previous
    champion (last known good), /health says degraded and why, /model says which version serves;
    when the bucket (with the artifact) appears, the same containers switch to the named champion."""
    current = read_pointer(api.models)
    late = f"driftstack-late-{uuid.uuid4().hex[:8]}"
    blob = _point_at_missing_bucket(api, late, "late", current.version, bump=0.5)
    assert read_pointer(api.models).previous.version == current.version
    env = _cold_start(api)
    try:
        def fell_back():
            h = api.health()
            return (h.get("model_version") == current.version
                    and any("serving the previous champion" in r for r in h.get("degraded_reasons", [])) and h)
        h = wait_for(fell_back, what="a cold container serving the previous champion")
        assert h["status"] == "degraded", h
        assert any(f"refused taxi-fare late: download of s3://{late}/" in r and "NoSuchBucket" in r
                   and f"serving the previous champion {current.version}" in r for r in h["degraded_reasons"]), h
        r = predict(api, {"features": example_features()})
        assert r.status_code == 200 and r.json()["model_version"] == current.version, r.text
        info = api.http.get(f"{api.base}/model", timeout=30).json()
        assert info["model_version"] == current.version and info["sha256"] == current.sha256, info
        assert info["fallback"]["pointer_version"] == "late" and late in info["fallback"]["reason"], info
        # S3 "comes back": the bucket and the artifact appear.
        api.s3.create_bucket(Bucket=late)
        publish(api.s3, api.models, late, blob, version="late", promote=False)
        wait_for(lambda: predict(api, {"features": example_features()}).json().get("model_version") == "late",
                 timeout=90, what="the named champion once its bucket exists")
        h = api.health()
        assert h["status"] == "ok" and h["model_version"] == "late", h
    finally:
        restore_env(api, env)
        write_pointer(api.models, model_name=current.model_name, version=current.version, bucket=current.bucket,
                      prefix=current.prefix, sha256=current.sha256, expected_version="late")
        _remove_bucket(api.s3, late)


def test_s3_unavailable_at_cold_start_without_a_usable_previous_is_503_then_recovers(api):
    """Both the champion and its previous artifact live in a bucket that is missing at cold start:
    503 naming both refusals; the function recovers by itself once the bucket and artifact appear."""
    current = read_pointer(api.models)
    late = f"driftstack-late-{uuid.uuid4().hex[:8]}"
    _point_at_missing_bucket(api, late, "late-a", current.version, bump=0.5)
    blob = _point_at_missing_bucket(api, late, "late-b", "late-a", bump=0.7)   # previous: late-a, also missing
    env = _cold_start(api)
    try:
        r = wait_for(lambda: status_is(predict(api, {"features": example_features()}), 503),
                     what="503 from a cold container without its model")[0]
        msg = r.json()["message"]
        assert "no model is loaded" in msg and f"s3://{late}/" in msg and "NoSuchBucket" in msg, msg
        assert "the previous champion late-a was refused too" in msg and "no model to serve" in msg, msg
        h = api.http.get(f"{api.base}/health", timeout=30)
        assert h.status_code == 503 and h.json()["status"] == "unavailable"
        # S3 "comes back": the bucket and the named artifact appear.
        api.s3.create_bucket(Bucket=late)
        publish(api.s3, api.models, late, blob, version="late-b", promote=False)
        r = wait_for(lambda: status_is(predict(api, {"features": example_features()}), 200),
                     timeout=90, what="recovery once the bucket exists")[0]
        assert r.json()["model_version"] == "late-b"
    finally:
        restore_env(api, env)
        write_pointer(api.models, model_name=current.model_name, version=current.version, bucket=current.bucket,
                      prefix=current.prefix, sha256=current.sha256, expected_version="late-b")
        _remove_bucket(api.s3, late)


def test_s3_unreachable_at_cold_start_is_503_then_recovers_and_loses_no_record(api):
    """S3 itself unreachable (connection refused), not only a missing bucket: the predict function's
    S3 endpoint is a gate we close and open. Cold start with S3 down: the champion and its previous
    both fail to download -> 503 naming the connection failure. S3 returns: the same containers
    load the champion by themselves. S3 down again under a warm container: it keeps serving from
    memory and logging to its queue (S3 is not on the log's hot path), and every request id served
    reaches the archive (count in = count out)."""
    current = read_pointer(api.models)
    with Gate(urlparse(api.endpoint).port) as s3_gate:          # closed: S3 is unreachable
        env = set_env(api, AWS_ENDPOINT_URL_S3=s3_gate.url)     # and a cold start
        try:
            r = wait_for(lambda: status_is(predict(api, {"features": example_features()}), 503),
                         what="503 from a cold container that cannot reach S3")[0]
            msg = r.json()["message"]
            assert "no model is loaded" in msg and "Could not connect to the endpoint URL" in msg, msg
            assert s3_gate.url in msg and f"refused {current.model_name} {current.version}" in msg, msg
            h = api.http.get(f"{api.base}/health", timeout=30)
            assert h.status_code == 503 and h.json()["status"] == "unavailable", h.text

            s3_gate.open()                                      # S3 returns: no redeploy, no cold start
            r = wait_for(lambda: status_is(predict(api, {"features": example_features()}), 200),
                         timeout=90, what="recovery once S3 answers again")[0]
            assert r.json()["model_version"] == current.version
            served = [r.json()["request_id"]]

            s3_gate.close()                                     # S3 down under a warm container
            for i in range(10):
                r = predict(api, {"features": dict(example_features(), trip_distance=2.0 + i)})
                assert r.status_code == 200 and r.json()["model_version"] == current.version, r.text
                served.append(r.json()["request_id"])
            h = api.health()
            assert h["log_sink_healthy"] is True, h
        finally:
            restore_env(api, env)

    assert len(served) == 11
    _wait_until_archived(api, served)


def _wait_until_archived(api, served: list[str]) -> None:
    """Count in = count out: every request id answered 200 is in the S3 archive once the log
    archiver has drained the queue and merged the spilled messages (a batch's items included)."""
    def missing() -> list[str]:
        return sorted(set(served) - set(api.archived()))
    wait_for(lambda: not missing(), timeout=120, interval=2, what="every served record in the archive")


def _remove_bucket(s3, bucket: str) -> None:
    if not _exists(s3, bucket):
        return
    for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=obj["Key"])
    s3.delete_bucket(Bucket=bucket)


def _exists(s3, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
        return True
    except Exception:  # noqa: BLE001
        return False
