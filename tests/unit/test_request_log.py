"""Request log: injected DynamoDB/S3 write failures never lose a record (fallback queue + replay)."""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from driftstack.schema import example_features
from driftstack.serving.request_log import (LogSettings, LogUnavailable, RequestLog, UnknownRequest, from_item,
                                            hour_buckets, iso, make_record, query_window, read_archive,
                                            replay_message, table_definition, time_bucket, to_item)

BUCKET, TABLE = "artifacts", "request-log"


@pytest.fixture
def aws(moto):
    s3, ddb, sqs = moto.bucket(BUCKET), boto3.client("dynamodb"), boto3.client("sqs")
    ddb.create_table(**table_definition(TABLE))
    queue_url = sqs.create_queue(QueueName="fallback")["QueueUrl"]
    yield s3, ddb, sqs, LogSettings(table=TABLE, bucket=BUCKET, queue_url=queue_url)


class Flaky:
    """Wraps a real (moto) client and fails a share of its write calls the ways AWS does:
    throttling, server errors, timeouts and, for batch writes, partially unprocessed items."""

    def __init__(self, client, rate: float, seed: int, methods=("put_item", "batch_write_item", "put_object")):
        self._client, self._rate, self._rng, self._methods = client, rate, random.Random(seed), methods
        self.injected = 0

    def __getattr__(self, name):
        real = getattr(self._client, name)
        if name not in self._methods:
            return real

        def call(**kwargs):
            roll = self._rng.random()
            if roll >= self._rate:
                return real(**kwargs)
            self.injected += 1
            kind = self._rng.randrange(4)
            if kind == 3 and name == "batch_write_item":  # write half, report the rest unprocessed
                (table, reqs), = kwargs["RequestItems"].items()
                half = len(reqs) // 2
                if half:
                    real(RequestItems={table: reqs[:half]})
                return {"UnprocessedItems": {table: reqs[half:]}}
            if kind == 2:
                raise ReadTimeoutError(endpoint_url="http://dynamodb")
            code = ("ProvisionedThroughputExceededException", "InternalServerError", "ThrottlingException")[kind % 3]
            raise ClientError({"Error": {"Code": code, "Message": "injected"}}, name)
        return call


def _records(n: int, ts: str, batch: bool) -> list[dict]:
    rid = uuid.uuid4().hex
    feats = example_features()
    if not batch:
        return [make_record(request_id=rid, ts=ts, features=feats, prediction=12.25, model_name="m",
                            model_version="1", latency_ms=0.3)]
    return [make_record(request_id=f"{rid}.{i}", ts=ts, features=dict(feats, trip_distance=1.0 + i),
                        prediction=10.0 + i, model_name="m", model_version="1", latency_ms=0.9, batch_id=rid)
            for i in range(n)]


def _drain(sqs, settings, *, dynamodb, s3) -> int:
    """Run the replay over the queue until it is empty; returns messages replayed."""
    replayed = 0
    while True:
        msgs = sqs.receive_message(QueueUrl=settings.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not msgs:
            return replayed
        for m in msgs:
            replay_message(m["Body"], settings, dynamodb=dynamodb, s3=s3)
            sqs.delete_message(QueueUrl=settings.queue_url, ReceiptHandle=m["ReceiptHandle"])
            replayed += 1


def _all_items(ddb) -> dict[str, dict]:
    items = {}
    for page in ddb.get_paginator("scan").paginate(TableName=TABLE):
        items.update({it["request_id"]["S"]: from_item(it) for it in page["Items"]})
    return items


def test_injected_failures_lose_nothing(aws):
    s3, ddb, sqs, settings = aws
    flaky_ddb, flaky_s3 = Flaky(ddb, 0.3, seed=1), Flaky(s3, 0.2, seed=2)
    counted = []
    log = RequestLog(settings, dynamodb=flaky_ddb, s3=flaky_s3, sqs=sqs,
                     emit=lambda name, value: counted.append((name, value)))
    rng = random.Random(3)
    written: dict[str, dict] = {}
    now = datetime.now(timezone.utc)
    for i in range(120):
        recs = _records(rng.choice([1, 1, 1, 7, 30, 80]), iso(now + timedelta(milliseconds=i)),
                        batch=rng.random() < 0.4)
        log.write(recs)
        written.update({r["request_id"]: r for r in recs})
    log.close()
    assert flaky_ddb.injected > 10 and flaky_s3.injected > 10, "the test must actually inject failures"
    fallback_records = sum(v for name, v in counted if name == "RequestLogFallbacks")
    assert fallback_records > 0
    assert len(_all_items(ddb)) < len(written)  # before the replay, DynamoDB misses records

    assert _drain(sqs, settings, dynamodb=ddb, s3=s3) > 0

    items = _all_items(ddb)
    assert set(items) == set(written)
    for rid, rec in written.items():
        assert items[rid]["prediction"] == rec["prediction"]
        assert items[rid]["features"] == rec["features"]
    archived = list(read_archive(s3, settings, now - timedelta(seconds=1), now + timedelta(seconds=5)))
    assert sorted(r["request_id"] for r in archived) == sorted(written)  # each exactly once


def test_replay_fails_while_dynamodb_is_still_down_then_succeeds(aws):
    s3, ddb, sqs, settings = aws
    log = RequestLog(settings, dynamodb=Flaky(ddb, 1.0, seed=0), s3=s3, sqs=sqs)
    recs = _records(1, iso(datetime.now(timezone.utc)), batch=False)
    log.write(recs)
    msg = sqs.receive_message(QueueUrl=settings.queue_url)["Messages"][0]
    with pytest.raises(Exception):
        replay_message(msg["Body"], settings, dynamodb=Flaky(ddb, 1.0, seed=5), s3=s3)
    replay_message(msg["Body"], settings, dynamodb=ddb, s3=s3)
    replay_message(msg["Body"], settings, dynamodb=ddb, s3=s3)  # redelivery is harmless
    assert set(_all_items(ddb)) == {recs[0]["request_id"]}


def test_big_batch_fallback_is_chunked_under_the_sqs_limit(aws):
    s3, ddb, sqs, settings = aws
    log = RequestLog(settings, dynamodb=Flaky(ddb, 1.0, seed=0), s3=Flaky(s3, 1.0, seed=0), sqs=sqs)
    recs = _records(1000, iso(datetime.now(timezone.utc)), batch=True)
    log.write(recs)
    bodies = []
    while msgs := sqs.receive_message(QueueUrl=settings.queue_url, MaxNumberOfMessages=10).get("Messages"):
        for m in msgs:
            bodies.append(m["Body"])
            sqs.delete_message(QueueUrl=settings.queue_url, ReceiptHandle=m["ReceiptHandle"])
    assert len(bodies) > 2 and max(len(b.encode()) for b in bodies) < 256 * 1024
    for body in bodies:
        replay_message(body, settings, dynamodb=ddb, s3=s3)
    assert len(_all_items(ddb)) == 1000
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="requests/")["Contents"]]
    s3_parts = [b for b in bodies if json.loads(b)["sinks"] == ["s3"]]
    assert len(keys) == len(s3_parts) > 1 and all(".part" in k for k in keys)  # one object per chunk
    lines = [x for k in keys for x in s3.get_object(Bucket=BUCKET, Key=k)["Body"].read().splitlines()]
    assert sorted(json.loads(x)["request_id"] for x in lines) == sorted(r["request_id"] for r in recs)
    now = datetime.now(timezone.utc)
    archived = list(read_archive(s3, settings, now - timedelta(minutes=1), now + timedelta(minutes=1)))
    assert len(archived) == 1000


def test_record_durable_in_s3_when_dynamodb_and_queue_fail(aws):
    s3, ddb, sqs, settings = aws
    log = RequestLog(settings, dynamodb=Flaky(ddb, 1.0, seed=0), s3=s3,
                     sqs=Flaky(sqs, 1.0, seed=0, methods=("send_message",)))
    recs = _records(1, iso(datetime.now(timezone.utc)), batch=False)
    log.write(recs)  # no raise: the S3 archive holds it
    assert not log.healthy


def test_nowhere_to_write_raises(aws):
    s3, ddb, sqs, settings = aws
    log = RequestLog(settings, dynamodb=Flaky(ddb, 1.0, seed=0), s3=Flaky(s3, 1.0, seed=0),
                     sqs=Flaky(sqs, 1.0, seed=0, methods=("send_message",)))
    with pytest.raises(LogUnavailable):
        log.write(_records(1, iso(datetime.now(timezone.utc)), batch=False))


def test_bad_fallback_message_is_rejected(aws):
    s3, ddb, _, settings = aws
    with pytest.raises(ValueError):
        replay_message('{"v": 99, "records": []}', settings, dynamodb=ddb, s3=s3)
    with pytest.raises(ValueError):
        replay_message(json.dumps({"v": 1, "kind": "requests", "sinks": ["tape"], "key": "k",
                                   "records": []}), settings, dynamodb=ddb, s3=s3)


def test_window_query_across_hours_and_shards(aws):
    s3, ddb, sqs, _ = aws
    settings = LogSettings(table=TABLE, bucket=BUCKET, queue_url=None, shards=4)
    log = RequestLog(settings, dynamodb=ddb, s3=s3)
    t0 = datetime(2026, 11, 23, 3, 58, tzinfo=timezone.utc)
    ids = []
    for i in range(40):  # 03:58 .. 04:01:54
        recs = _records(1, iso(t0 + timedelta(seconds=6 * i)), batch=False)
        log.write(recs)
        ids.append(recs[0]["request_id"])
    got = [r["request_id"] for r in query_window(ddb, settings, t0 + timedelta(minutes=1), t0 + timedelta(minutes=3))]
    assert sorted(got) == sorted(ids[10:31])
    buckets = {time_bucket(iso(t0), rid, 4) for rid in ids}
    assert len(buckets) > 1 and all(b.startswith("2026-11-23T03#") for b in buckets)
    assert hour_buckets(t0, t0 + timedelta(minutes=3)) == ["2026-11-23T03", "2026-11-23T04"]
    archived = list(read_archive(s3, settings, t0 + timedelta(minutes=1), t0 + timedelta(minutes=3)))
    assert sorted(r["request_id"] for r in archived) == sorted(ids[10:31])


def test_item_round_trip_and_ttl():
    settings = LogSettings(table=TABLE, bucket=BUCKET, ttl_days=2)
    rec = _records(1, "2026-11-23T04:05:06.000007Z", batch=False)[0]
    item = to_item(rec, settings)
    assert item["time_bucket"] == {"S": "2026-11-23T04"}
    expected_expiry = datetime(2026, 11, 25, 4, 5, 6, tzinfo=timezone.utc).timestamp()
    assert int(item["expires_at"]["N"]) == int(expected_expiry)
    assert from_item(item) == rec


def test_feedback_unknown_and_known(aws):
    s3, ddb, sqs, settings = aws
    log = RequestLog(settings, dynamodb=ddb, s3=s3, sqs=sqs)
    with pytest.raises(UnknownRequest):
        log.record_feedback("nope", 10.0)
    recs = _records(1, iso(datetime.now(timezone.utc)), batch=False)
    log.write(recs)
    rec = log.record_feedback(recs[0]["request_id"], 15.5)
    assert rec["actual_fare"] == 15.5 and rec["prediction"] == 12.25


def test_feedback_archive_failure_goes_to_fallback(aws):
    s3, ddb, sqs, settings = aws
    log = RequestLog(settings, dynamodb=ddb, s3=s3, sqs=sqs)
    recs = _records(1, iso(datetime.now(timezone.utc)), batch=False)
    log.write(recs)
    log._s3 = Flaky(s3, 1.0, seed=0)
    log.record_feedback(recs[0]["request_id"], 15.5)
    assert _drain(sqs, settings, dynamodb=ddb, s3=s3) == 1
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="feedback/")["Contents"]]
    doc = json.loads(s3.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read())
    assert doc["request_id"] == recs[0]["request_id"] and doc["actual_fare"] == 15.5
