"""LocalStack restarted mid-run, on a LocalStack of this test's own (the session's is never restarted).

What the README promises, checked on the real thing: LocalStack keeps its state in memory, so a
restart loses the deployed stack and everything in it (stack, bucket and artifacts, tables and the
champion pointer, the API); clients in flight get errors, never a hang and never a prediction:
connection refused while it is down, then, for the vanished API, a 404 naming its id once
LocalStack's API Gateway service is up (before that LocalStack answers an empty 200 — a client must
not take that for success). The documented recovery (`driftstack up` = deploy, then republish the
model) brings the same system back, serving again.

The stack is the full one (deployed twice, destroyed once): a smaller stand-in would not show that
the documented recovery works for what users actually run.
"""

from __future__ import annotations

import os
import shutil
import threading
import time

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from driftstack.tools import deploy
from driftstack.tools import localstack_host
from driftstack.tools.polling import wait_for
from driftstack.contract.api import example_features
from driftstack.tools.toy_model import build_toy_model, publish
from deployed import deployed

pytestmark = [pytest.mark.localstack, pytest.mark.e2e, pytest.mark.slow]

STACK = "DriftstackRestartTest"
CLIENT_TIMEOUT = 30  # a request still waiting after this is a hang (requests raises Timeout)


@pytest.fixture
def own_localstack(monkeypatch):
    """A LocalStack for this test only (a restart would break every other test on the shared one)."""
    state = localstack_host.STATE_ROOT / "pytest-localstack" / f"restart-{os.getpid()}"
    port = localstack_host.free_port()
    url = localstack_host.start(port, state).url
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)  # every boto3 client of this test (credentials: session fixture)
    try:
        yield port, state, url
    finally:
        localstack_host.stop(state)
        shutil.rmtree(state, ignore_errors=True)


class Traffic(threading.Thread):
    """A client predicting in a loop; records (status code or error name, body) for each request."""

    def __init__(self, headers: dict, url: str) -> None:
        super().__init__(daemon=True)
        self.http, self.url, self.outcomes, self.done = requests.Session(), url, [], threading.Event()
        self.http.headers.update(headers)

    def run(self) -> None:
        while not self.done.is_set():
            try:
                r = self.http.post(self.url, json={"features": example_features()}, timeout=CLIENT_TIMEOUT)
                self.outcomes.append((r.status_code, r.text))
            except requests.Timeout:
                self.outcomes.append(("timeout", ""))
            except requests.ConnectionError:
                self.outcomes.append(("connection error", ""))
            time.sleep(0.2)

    def predictions(self, since: int = 0) -> int:
        return sum(1 for code, body in self.outcomes[since:] if code == 200 and "predicted_fare" in body)

    def first(self, kind) -> int:
        return next(i for i, (code, _) in enumerate(self.outcomes) if code == kind)


def _gone(call, code: str) -> bool:
    try:
        call()
    except ClientError as exc:
        return code == exc.response["Error"]["Code"] or code in str(exc)
    return False


def test_restart_loses_the_stack_and_deploy_plus_republish_recovers(own_localstack):
    port, state, url = own_localstack
    with deployed(url, STACK, {"model_refresh_seconds": "2"}) as api:
        publish(api.s3, api.models, api.bucket, build_toy_model(), version="1")
        wait_for(lambda: api.health().get("model_version") == "1", what="version 1 served")
        bucket, models_table, old_predict = api.bucket, api.outputs["ModelsTableName"], api.url("/predict")

        traffic = Traffic(dict(api.http.headers), old_predict)
        traffic.start()
        try:
            wait_for(lambda: traffic.predictions() >= 3, what="traffic served before the restart")
            assert localstack_host.stop(state) and not localstack_host.status(state).running
            # Down: refused at once (nothing listens), not a hang.
            wait_for(lambda: ("connection error", "") in traffic.outcomes, what="the client to see LocalStack down")
            with pytest.raises(requests.ConnectionError):
                api.http.get(api.url("/health"), timeout=CLIENT_TIMEOUT)
            assert localstack_host.start(port, state).url == url
            n = len(traffic.outcomes)
            wait_for(lambda: len(traffic.outcomes) > n + 3, what="answers after the restart")
            # API Gateway's state is gone; once its service is up, the old API id is a 404 naming it.
            assert boto3.client("apigateway").get_rest_apis()["items"] == []
            m = len(traffic.outcomes)
            wait_for(lambda: any(code == 404 for code, _ in traffic.outcomes[m:]), what="a 404 for the vanished API")
        finally:
            traffic.done.set()
            traffic.join(CLIENT_TIMEOUT + 10)
        assert not traffic.is_alive(), "a client request hung across the restart"
        assert all(code != "timeout" for code, _ in traffic.outcomes), traffic.outcomes
        after = traffic.outcomes[traffic.first("connection error"):]
        assert traffic.predictions(since=traffic.first("connection error")) == 0, after  # nothing pretends to work
        api_id = api.outputs["ApiId"]
        assert any(code == 404 and f"API id '{api_id}' does not correspond" in body for code, body in after), after
        print("outcomes after the restart:", sorted({(c, b[:60]) for c, b in after}, key=str))

        # Lost: everything LocalStack held (in memory).
        cfn, s3, ddb = boto3.client("cloudformation"), boto3.client("s3"), boto3.client("dynamodb")
        assert _gone(lambda: cfn.describe_stacks(StackName=STACK), "does not exist")
        assert _gone(lambda: s3.head_bucket(Bucket=bucket), "404")
        assert _gone(lambda: ddb.describe_table(TableName=models_table), "ResourceNotFoundException")
        r = api.http.get(api.url("/health"), timeout=CLIENT_TIMEOUT)
        assert r.status_code >= 400, r.text

        # The documented recovery: redeploy (`driftstack up`), then republish (`driftstack train`).
        api.outputs.update(deploy.deploy(url, stack=STACK, context=api.context))
        key = boto3.client("apigateway").get_api_key(apiKey=api.outputs["ApiKeyId"], includeValue=True)["value"]
        api.http.headers["x-api-key"] = key
        r = wait_for(lambda: [x for x in [api.http.get(api.url("/health"), timeout=CLIENT_TIMEOUT)]
                              if x.status_code == 503],
                     what="the redeployed API (no model yet)")[0]
        assert "no champion pointer is set" in " ".join(r.json()["degraded_reasons"]), r.text
        publish(api.s3, api.models, api.bucket, build_toy_model(), version="1")
        wait_for(lambda: api.health().get("model_version") == "1", what="the republished model served")
        r = api.http.post(api.url("/predict"), json={"features": example_features()}, timeout=CLIENT_TIMEOUT)
        assert r.status_code == 200 and r.json()["model_version"] == "1", r.text
