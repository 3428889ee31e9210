"""Schema-based fuzzing of the DEPLOYED prediction API with schemathesis: the stack deployed with
cdklocal, the API's own OpenAPI document read through API Gateway (``GET /v1/openapi.json``), and
every operation in it called over real HTTP through API Gateway with the API key, serving a toy
champion. Positive cases (valid per the document) and negative ones (schemathesis breaks types,
bounds, required fields), plus feedback on request ids the API really issued (202).

Bounded: ``EXAMPLES`` per operation and mode (at most 300 requests in all), no deadline, no
shrinking. Invariants asserted: 0 responses with status >= 500, every 4xx body is JSON with a
``message``. Schemathesis' own checks (status codes and bodies against the document, negative data
rejected, positive data accepted) are run on every response and their failures reported, not
asserted (API Gateway's own 403/404 and our 415 are not in the document). Counts per status are
printed (``-s`` to see them).

The same deployment (with ``log_retention_days=7``) also shows the log retention aspect on LocalStack:
every function's log group keeps its logs 7 days (CDK's Node.js LogRetention provider ran).
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
import requests

from deployed import deployed
from driftstack.tools.polling import wait_for
from driftstack.contract.api import example_features
from driftstack.tools.toy_model import build_toy_model, publish

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

pytestmark = [pytest.mark.localstack, pytest.mark.e2e, pytest.mark.slow]

STACK = "DriftstackSchemathesisTest"
RETENTION_DAYS = 7
# (method, path, mode) -> examples; 295 requests in all (+1 for the document, + a few seeds)
EXAMPLES = {
    ("POST", "/v1/predict", "positive"): 75, ("POST", "/v1/predict", "negative"): 75,
    ("POST", "/v1/feedback", "positive"): 35, ("POST", "/v1/feedback", "negative"): 35,
    ("POST", "/v1/feedback", "issued"): 35,
    ("GET", "/v1/health", "positive"): 20, ("GET", "/v1/model", "positive"): 20,
}
MAX_REQUESTS = 300
TIME_BUDGET_S = 150  # the fuzzing itself; the deploy comes on top


@pytest.fixture(scope="module")
def api(localstack):
    with deployed(localstack, STACK, {"model_refresh_seconds": "2",
                                      "log_retention_days": str(RETENTION_DAYS)}) as api:
        yield api


@pytest.fixture(scope="module")
def champion(api):
    v1 = publish(api.s3, api.models, api.bucket, build_toy_model(), version="1")
    wait_for(lambda: api.health().get("model_version") == "1", what="version 1 to be served")
    return v1


def test_every_function_keeps_its_logs_the_configured_days(api, localstack, aws_client):
    ours = [f["FunctionName"] for page in api.lam.get_paginator("list_functions").paginate()
            for f in page["Functions"]
            if f["FunctionName"].startswith(STACK) and f["Runtime"].startswith("python")]  # not CDK's provider
    assert len(ours) >= 5, ours
    logs = aws_client("logs")
    retention = {}
    for name in ours:
        groups = logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"]
        retention[name] = [g.get("retentionInDays") for g in groups if g["logGroupName"] == f"/aws/lambda/{name}"]
    assert retention == {name: [RETENTION_DAYS] for name in ours}


def test_schemathesis_finds_no_server_error(api, champion):
    root = api.base[: -len("/v1")]  # the document's paths carry /v1
    doc = api.http.get(api.url("/openapi.json"), timeout=30)
    assert doc.status_code == 200, doc.text
    schema = schemathesis.openapi.from_dict(doc.json())
    operations = {(op.method.upper(), op.path): op for op in (r.ok() for r in schema.get_all_operations())}
    assert {(m, p) for m, p, _ in EXAMPLES} == set(operations), sorted(operations)

    # request ids the API issued, for feedback it must accept (202)
    issued = []
    for _ in range(5):
        r = api.http.post(api.url("/predict"), data=json.dumps({"features": example_features()}), timeout=30)
        assert r.status_code == 200, r.text
        issued.append(r.json()["request_id"])

    statuses: Counter[tuple[str, int]] = Counter()
    server_errors: list[str] = []
    bad_4xx: list[str] = []
    mismatches: Counter[str] = Counter()
    mismatch_example: dict[str, str] = {}
    sent = 0
    started = time.monotonic()

    def call(case, label: str) -> None:
        nonlocal sent
        if sent >= MAX_REQUESTS or time.monotonic() - started > TIME_BUDGET_S:
            return
        sent += 1
        try:
            resp = case.call(base_url=root, session=api.http, timeout=60)
        except requests.RequestException as exc:  # a hang or reset is a failure too
            server_errors.append(f"{label}: {type(exc).__name__}: {exc} body={str(case.body)[:200]}")
            return
        statuses[(label, resp.status_code)] += 1
        what = f"{label} -> {resp.status_code} body={str(case.body)[:200]!r} headers={case.headers} " \
               f"query={case.query} response={resp.text[:300]!r}"
        if resp.status_code >= 500:
            server_errors.append(what)
        elif resp.status_code >= 400:
            try:
                message = resp.json().get("message")
            except (ValueError, AttributeError):
                message = None
            if not (isinstance(message, str) and message):
                bad_4xx.append(what)
        try:
            case.validate_response(resp)
        except BaseExceptionGroup as group:  # schemathesis' FailureGroup: reported, not asserted
            failures = list(group.exceptions)
        except Exception as exc:  # noqa: BLE001 - a single check failure
            failures = [exc]
        else:
            failures = []
        for exc in failures:
            key = f"{label}: {getattr(exc, 'title', type(exc).__name__)}"
            mismatches[key] += 1
            mismatch_example.setdefault(key, what)

    def run(label: str, strategy, examples: int) -> None:
        @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck), derandomize=False)
        @given(case=strategy)
        def fuzz(case):
            call(case, label)

        fuzz()

    for (method, path, mode), examples in EXAMPLES.items():
        op = operations[(method, path)]
        label = f"{method} {path} {mode}"
        if mode == "issued":
            def with_issued(pair):
                case, request_id = pair
                if isinstance(case.body, dict):
                    case.body["request_id"] = request_id
                return case
            strategy = st.tuples(op.as_strategy(GenerationMode.POSITIVE), st.sampled_from(issued)).map(with_issued)
        else:
            strategy = op.as_strategy(GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE)
        run(label, strategy, examples)

    elapsed = time.monotonic() - started
    per_status = Counter()
    for (_, code), n in statuses.items():
        per_status[code] += n
    print(f"\nschemathesis: {sent} requests in {elapsed:.1f}s through API Gateway; per status: "
          f"{dict(sorted(per_status.items()))}")
    for (label, code), n in sorted(statuses.items()):
        print(f"  {label:32} {code}: {n}")
    if mismatches:
        print("schemathesis checks that flagged documented-vs-actual differences (reported, not asserted):")
        for what, n in mismatches.most_common(15):
            print(f"  {n:4} x {what}\n         e.g. {mismatch_example[what][:400]}")

    assert not server_errors, f"{len(server_errors)} responses >= 500 (or no response):\n" + \
        "\n".join(server_errors[:20])
    assert not bad_4xx, "4xx without a message:\n" + "\n".join(bad_4xx[:20])
    assert sent >= 150, f"only {sent} requests within {TIME_BUDGET_S}s"
    assert statuses[("POST /v1/predict positive", 200)] > 0, statuses
    assert statuses[("POST /v1/feedback issued", 202)] > 0, statuses
    assert any(code in (400, 422) for (label, code) in statuses if label == "POST /v1/predict negative"), statuses
