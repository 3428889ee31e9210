"""Concurrency: racing promotions and racing drift triggers.

* Promotions: N threads call ``registry.write_pointer`` with the same expected version at the same
  instant (a barrier), round after round, while reader threads keep reading the pointer. Exactly one
  writer wins each round, the others get ``PointerConflict``, and no reader ever sees a torn
  pointer (fields from two different writers). Against moto (fast) and against LocalStack's
  DynamoDB (our moto-backed provider behind the real HTTP gateway).
* Drift triggers: N threads call ``drift_store.start_retraining`` for the same window against LocalStack
  Step Functions: exactly one execution exists afterwards.
"""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from driftstack.domain import drift
from driftstack.adapters import drift_store
from driftstack.adapters.registry import PointerConflict, artifact_prefix, read_pointer, write_pointer

WRITERS, ROUNDS, READERS = 8, 6, 2
NAME = "taxi-fare"


def _sha(version: int) -> str:
    return f"{version:064x}"


def _consistent(p) -> bool:
    """Every field of a pointer comes from the same writer (version n -> sha n -> prefix of sha n)."""
    n = int(p.version[1:])
    return p.sha256 == _sha(n) and p.prefix == artifact_prefix(p.model_name, p.sha256) and p.bucket == f"b{n % 7}"


def race_promotions(table) -> dict:
    """ROUNDS rounds of WRITERS concurrent promotions from the current version; readers run throughout."""
    write_pointer(table, model_name=NAME, version="v0", bucket="b0", prefix=artifact_prefix(NAME, _sha(0)),
                  sha256=_sha(0), expected_version=None)
    stop, torn, reads = threading.Event(), [], [0]

    def reader():
        while not stop.is_set():
            p = read_pointer(table)
            reads[0] += 1
            if p is None or not _consistent(p):
                torn.append(p)

    winners, conflicts = [], 0
    readers = [threading.Thread(target=reader) for _ in range(READERS)]
    for t in readers:
        t.start()
    try:
        with ThreadPoolExecutor(WRITERS) as pool:
            for r in range(ROUNDS):
                current = read_pointer(table).version
                barrier = threading.Barrier(WRITERS)

                def promote(i: int, r=r, current=current, barrier=barrier):
                    n = 1000 * (r + 1) + i
                    barrier.wait()
                    try:
                        write_pointer(table, model_name=NAME, version=f"v{n}", bucket=f"b{n % 7}",
                                      prefix=artifact_prefix(NAME, _sha(n)), sha256=_sha(n), expected_version=current)
                        return f"v{n}"
                    except PointerConflict:
                        return None

                results = list(pool.map(promote, range(WRITERS)))
                won = [v for v in results if v]
                winners.append(won)
                conflicts += results.count(None)
                final = read_pointer(table)
                assert len(won) == 1, f"round {r}: {len(won)} winners {won}"
                assert final.version == won[0] and _consistent(final), final
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert not torn, f"torn pointer reads: {torn[:3]}"
    assert reads[0] > 0
    return {"rounds": ROUNDS, "writers": WRITERS, "conflicts": conflicts, "reads": reads[0], "winners": winners}


def _create_table(ddb_client, name: str):
    ddb_client.create_table(TableName=name, AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
    ddb_client.get_waiter("table_exists").wait(TableName=name)


def test_concurrent_promotions_one_winner_on_moto(monkeypatch):
    from moto import mock_aws

    # moto alone handles requests from several threads without a lock (a conditional write is
    # check-then-act: CI once saw two winners). Our LocalStack DynamoDB provider serializes them as
    # DynamoDB does; use the same module here.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "localstack" / "plugin"))
    from driftstack_localstack import dynamodb_atomic

    dynamodb_atomic.install()

    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        _create_table(boto3.client("dynamodb", region_name="us-east-1"), "models")
        out = race_promotions(boto3.resource("dynamodb", region_name="us-east-1").Table("models"))
    assert out["conflicts"] == ROUNDS * (WRITERS - 1)


@pytest.mark.localstack
def test_concurrent_promotions_one_winner_on_localstack(localstack):
    name = f"models-race-{uuid.uuid4().hex[:8]}"
    cfg = Config(max_pool_connections=WRITERS + READERS + 2, retries={"max_attempts": 2})
    kw = dict(endpoint_url=localstack, region_name="us-east-1", aws_access_key_id="test",
              aws_secret_access_key="test", config=cfg)
    client = boto3.client("dynamodb", **kw)
    _create_table(client, name)
    try:
        out = race_promotions(boto3.resource("dynamodb", **kw).Table(name))
        assert out["conflicts"] == ROUNDS * (WRITERS - 1)
    finally:
        client.delete_table(TableName=name)


@pytest.mark.localstack
def test_concurrent_drift_triggers_start_one_execution(localstack):
    cfg = Config(max_pool_connections=WRITERS + 2, retries={"max_attempts": 2})
    sfn = boto3.client("stepfunctions", endpoint_url=localstack, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test", config=cfg)
    definition = {"StartAt": "Train", "States": {"Train": {"Type": "Wait", "Seconds": 30, "End": True}}}
    arn = sfn.create_state_machine(name=f"race-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition),
                                   roleArn="arn:aws:iam::000000000000:role/driftstack-test")["stateMachineArn"]
    doc = {"window": {"id": "20260101T0000-20260102T0000", "start": "2026-01-01T00:00:00Z",
                      "end": "2026-01-02T00:00:00Z"},
           "champion": {"version": "v1"}, "check_id": "c1", "status": "drift", "drifted_features": ["a", "b", "c"],
           "reasons": ["3 features with PSI >= 0.2"], "samples": 500, "result_uri": "s3://b/drift/x.json"}
    try:
        barrier = threading.Barrier(WRITERS)

        def trigger(_):
            barrier.wait()
            return drift_store.start_retraining(sfn, arn, doc)

        with ThreadPoolExecutor(WRITERS) as pool:
            results = list(pool.map(trigger, range(WRITERS)))
        executions = sfn.list_executions(stateMachineArn=arn)["executions"]
        assert len(executions) == 1, executions
        assert executions[0]["name"] == drift.execution_name(doc)
        # Every caller either started that one execution (Step Functions treats an identical
        # StartExecution as idempotent) or was told why it did not start one.
        assert {r.get("execution_arn") for r in results if r["started"]} <= {executions[0]["executionArn"]}
        assert any(r["started"] for r in results)
        for r in results:
            assert r["started"] or r["message"].startswith("not started"), r
        # Later checks of the same window never start a second one.
        again = drift_store.start_retraining(sfn, arn, doc)
        assert not again["started"] and len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 1
    finally:
        for e in sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]:
            sfn.stop_execution(executionArn=e["executionArn"])
        sfn.delete_state_machine(stateMachineArn=arn)
