"""The request log's data plane on moto: one queue write per call, the S3 spill when the queue fails,
the archiver's drain (idempotent, crash-safe, concurrent-safe), count in = count out."""

from __future__ import annotations

import json
import random
import threading
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from driftstack.adapters import aggregates as G
from driftstack.adapters import archive as A
from driftstack.usecases import log_drain
from driftstack.contract.api import example_features
from driftstack.adapters.request_log import (LogSettings, LogUnavailable, RequestLog, UnknownRequest, chunks, iso,
                                            make_record, message, new_request_id, parse_message)
from driftstack.settings import LogDrainSettings

BUCKET = "artifacts"
LAYOUT = A.Layout(bucket=BUCKET, slot_minutes=5)


@pytest.fixture
def aws(moto):
    s3, sqs = moto.bucket(BUCKET), boto3.client("sqs")
    url = sqs.create_queue(QueueName="log")["QueueUrl"]
    yield s3, sqs, LogSettings(queue_url=url, layout=LAYOUT)


def _records(n: int, at: datetime | None = None, batch: bool = False) -> list[dict]:
    at = at or datetime.now(timezone.utc)
    rid = new_request_id(at.timestamp())
    return [make_record(request_id=f"{rid}.{i}" if batch else new_request_id(at.timestamp()), ts=iso(at),
                        features=example_features(), prediction=10.0 + i, model_name="fare", model_version="1",
                        model_sha="ab" * 8, latency_ms=1.0, batch_id=rid if batch else None) for i in range(n)]


def _drain(s3, sqs, settings, **kw):
    return log_drain.drain(sqs=sqs, s3=s3, layout=LAYOUT, queue_url=settings.queue_url,
                           load_profile=lambda name, sha: None,
                           options=LogDrainSettings.from_env().options(), **kw)   # LOG_DRAIN_*: conftest's moto fixture


def _archived(s3, start, end, kind=A.REQUESTS) -> list[dict]:
    return list(A.read_records(s3, LAYOUT, kind, start, end))


def _queued(sqs, url) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


class Flaky:
    """Wraps a real (moto) client and fails a share of the named calls the ways AWS does."""

    def __init__(self, client, rate: float, seed: int, methods=("send_message",)):
        self._client, self._rate, self._rng, self._methods = client, rate, random.Random(seed), methods
        self.injected = 0

    def __getattr__(self, name):
        real = getattr(self._client, name)
        if name not in self._methods:
            return real

        def call(**kwargs):
            if self._rng.random() >= self._rate:
                return real(**kwargs)
            self.injected += 1
            if self._rng.random() < 0.3:
                raise ReadTimeoutError(endpoint_url="http://sqs")
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "injected"}}, name)
        return call


# ---------------------------------------------------------------- ids, format, layout

def test_request_ids_carry_their_time_and_foreign_ids_do_not():
    at = datetime(2026, 12, 3, 12, 34, 56, 789000, tzinfo=timezone.utc)
    rid = new_request_id(at.timestamp())
    assert len(rid) == 32 and rid[12] == "7" and A.request_time(rid) == at
    assert A.request_time(rid + ".17") == at                       # a batch item
    assert len({new_request_id(at.timestamp()) for _ in range(1000)}) == 1000
    for foreign in ("0" * 32, "not-an-id", "f" * 31, "z" * 32, ""):
        assert A.request_time(foreign) is None


def test_archive_objects_are_gzip_jsonl_one_per_slot_and_deterministic():
    recs = _records(3)
    assert A.decode(A.encode(recs)) == recs and A.encode(recs) == A.encode(recs)
    assert A.encode(recs)[:2] == b"\x1f\x8b"
    slot = LAYOUT.slot_of("2026-12-03T12:34:56.000001Z")
    assert slot == datetime(2026, 12, 3, 12, 30, tzinfo=timezone.utc)
    key = LAYOUT.key(A.REQUESTS, slot)
    assert key == "requests/dt=2026-12-03/hour=12/slot=1230-5m.jsonl.gz" and LAYOUT.slot_from_key(key) == slot
    assert LAYOUT.key(A.AGGREGATES, slot) == "aggregates/dt=2026-12-03/hour=12/slot=1230-5m.json"
    with pytest.raises(ValueError, match="divide 60"):
        A.Layout(bucket="b", slot_minutes=7)


def test_a_message_is_one_call_and_large_batches_are_split_under_the_sqs_limit():
    single = _records(1)
    assert len(list(chunks(single))) == 1
    big = _records(1000, batch=True)
    parts = list(chunks(big))
    assert len(parts) > 1 and sum(map(len, parts)) == 1000
    assert all(len(message(A.REQUESTS, p)) < 256 * 1024 for p in parts)
    assert parse_message(message(A.REQUESTS, single)) == (A.REQUESTS, single)
    for bad in ("{", '{"v": 1, "kind": "requests", "records": []}', '{"v": 2, "kind": "x", "records": []}',
                '{"v": 2, "kind": "requests", "records": [{"ts": "t"}]}'):
        with pytest.raises(ValueError):
            parse_message(bad)


# ---------------------------------------------------------------- the hot path

def test_one_queue_write_per_call_and_the_drain_archives_everything(aws):
    s3, sqs, settings = aws
    log = RequestLog(settings, sqs=sqs, s3=s3)
    calls = []
    sqs.meta.events.register("before-call.sqs.SendMessage", lambda **kw: calls.append(1))
    t0 = datetime.now(timezone.utc) - timedelta(seconds=1)
    written = []
    for _ in range(30):
        recs = _records(1)
        log.write(recs)
        written += recs
    batch = _records(40, batch=True)
    log.write(batch)
    written += batch
    assert len(calls) == 31 and log.healthy
    report = _drain(s3, sqs, settings)
    assert report.complete and report.requests >= 70 and report.messages >= 31 and _queued(sqs, settings.queue_url) == 0
    got = _archived(s3, t0, t0 + timedelta(minutes=2))
    assert sorted(r["request_id"] for r in got) == sorted(r["request_id"] for r in written)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert all(k.startswith(("requests/", "aggregates/")) for k in keys) and len(keys) <= 4   # 1-2 slots


def test_a_failing_queue_spills_to_s3_and_nothing_is_lost(aws):
    s3, sqs, settings = aws
    flaky = Flaky(sqs, rate=0.4, seed=3)
    log = RequestLog(settings, sqs=flaky, s3=s3)
    t0 = datetime.now(timezone.utc) - timedelta(seconds=1)
    written = []
    for i in range(60):
        recs = _records(1 + i % 3, batch=i % 3 > 0)
        log.write(recs)
        written += recs
    assert flaky.injected > 10 and not log.healthy and "spilled to S3" in log.degraded_reason()
    spilled = s3.list_objects_v2(Bucket=BUCKET, Prefix=LAYOUT.spill_prefix)["KeyCount"]
    assert spilled == flaky.injected
    report = _drain(s3, sqs, settings)
    # (>=: SQS delivers at least once; merging by request_id stores each record once)
    assert report.spilled_objects == spilled and report.requests >= len(written)
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=LAYOUT.spill_prefix)["KeyCount"] == 0
    got = _archived(s3, t0, t0 + timedelta(minutes=2))
    assert sorted(r["request_id"] for r in got) == sorted(r["request_id"] for r in written)   # count in = count out


def test_queue_and_spill_both_down_is_log_unavailable(aws):
    s3, sqs, settings = aws

    def boom(**_):
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "op")

    sqs.send_message = boom
    s3.put_object = boom
    with pytest.raises(LogUnavailable, match="sqs: ServiceUnavailable.*spill to S3: ServiceUnavailable"):
        RequestLog(settings, sqs=sqs, s3=s3).write(_records(1))


def test_feedback_is_queued_for_issued_ids_and_refused_for_others(aws):
    s3, sqs, settings = aws
    log = RequestLog(settings, sqs=sqs, s3=s3)
    old = datetime.now(timezone.utc) - timedelta(days=31)
    for rid in ("nope", "0" * 32, new_request_id(old.timestamp()),
                new_request_id((datetime.now(timezone.utc) + timedelta(hours=1)).timestamp())):
        with pytest.raises(UnknownRequest):
            log.record_feedback(rid, 10.0)
    recs = _records(2)
    log.write(recs)
    doc = log.record_feedback(recs[0]["request_id"], 15.5)
    assert doc["actual_fare"] == 15.5 and doc["request_ts"][:19] == recs[0]["ts"][:19]
    log.record_feedback(recs[0]["request_id"], 16.0)           # a correction: the latest wins
    _drain(s3, sqs, settings)
    t0 = A.parse_iso(recs[0]["ts"]) - timedelta(seconds=1)
    fb = _archived(s3, t0, t0 + timedelta(minutes=1), A.FEEDBACK)
    assert [(f["request_id"], f["actual_fare"]) for f in fb] == [(recs[0]["request_id"], 16.0)]
    joined = A.with_feedback(_archived(s3, t0, t0 + timedelta(minutes=1)), fb)
    assert sum("actual_fare" in r for r in joined) == 1


# ---------------------------------------------------------------- the drain: twice, crashed, concurrent

def test_draining_the_same_messages_twice_stores_each_record_once(aws):
    s3, sqs, settings = aws
    log = RequestLog(settings, sqs=sqs, s3=s3)
    recs = _records(5, batch=True)
    log.write(recs)
    body = message(A.REQUESTS, recs)
    sqs.send_message(QueueUrl=settings.queue_url, MessageBody=body)      # a redelivered duplicate
    _drain(s3, sqs, settings)
    sqs.send_message(QueueUrl=settings.queue_url, MessageBody=body)      # and one after the slot was written
    key = LAYOUT.key(A.REQUESTS, LAYOUT.slot_of(recs[0]["ts"]))
    etag = s3.head_object(Bucket=BUCKET, Key=key)["ETag"]
    _drain(s3, sqs, settings)
    assert s3.head_object(Bucket=BUCKET, Key=key)["ETag"] == etag       # nothing new: not even rewritten
    t0 = A.parse_iso(recs[0]["ts"]) - timedelta(seconds=1)
    assert len(_archived(s3, t0, t0 + timedelta(minutes=1))) == 5


def test_a_drain_that_crashes_mid_write_loses_nothing_and_the_next_one_finishes(aws):
    s3, sqs, settings = aws
    log = RequestLog(settings, sqs=sqs, s3=s3)
    base = LAYOUT.slot_of(datetime.now(timezone.utc) - timedelta(minutes=30))
    written = []
    for minutes in (0, 5, 10, 15):                  # four slots
        recs = _records(3, at=base + timedelta(minutes=minutes))
        log.write(recs)
        written += recs
    real_put, puts = s3.put_object, []

    def crash_on_third(**kw):
        puts.append(kw["Key"])
        if len(puts) == 3:
            raise RuntimeError("killed mid-write")
        return real_put(**kw)

    s3.put_object = crash_on_third
    with pytest.raises(RuntimeError, match="killed mid-write"):
        _drain(s3, sqs, settings, visibility_seconds=1)
    s3.put_object = real_put
    assert _queued(sqs, settings.queue_url) == 4       # nothing was deleted
    import time
    time.sleep(1.2)                                    # the visibility timeout passes
    report = _drain(s3, sqs, settings)
    assert report.messages == 4 and report.complete
    got = _archived(s3, base, base + timedelta(minutes=20))
    assert sorted(r["request_id"] for r in got) == sorted(r["request_id"] for r in written)
    docs, _ = G.read_window(s3, LAYOUT, base, base + timedelta(minutes=20))
    assert [d["requests"] for d in docs] == [3, 3, 3, 3]


def test_concurrent_merges_into_one_slot_keep_every_record(aws):
    s3 = aws[0]
    at = datetime.now(timezone.utc)
    slot = LAYOUT.slot_of(at)
    groups = [_records(20, at=at) for _ in range(6)]
    errors = []

    def merge(recs):
        try:
            A.merge_into(boto3.client("s3"), LAYOUT, A.REQUESTS, slot, recs)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=merge, args=(g,)) for g in groups]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    body, _ = A.get(s3, BUCKET, LAYOUT.key(A.REQUESTS, slot))
    assert len(A.decode(body)) == 120


def test_a_conditional_write_conflict_is_retried_not_overwritten(aws):
    s3 = aws[0]
    at = datetime.now(timezone.utc)
    slot = LAYOUT.slot_of(at)
    first, second = _records(2, at=at), _records(3, at=at)
    A.merge_into(s3, LAYOUT, A.REQUESTS, slot, first)
    real_get, raced = s3.get_object, []

    def get_then_race(**kw):   # another writer lands between our read and our write
        out = real_get(**kw)
        if not raced:
            raced.append(1)
            A.merge_into(boto3.client("s3"), LAYOUT, A.REQUESTS, slot, second)
        return out

    s3.get_object = get_then_race
    third = _records(1, at=at)
    A.merge_into(s3, LAYOUT, A.REQUESTS, slot, third)
    body, _ = A.get(boto3.client("s3"), BUCKET, LAYOUT.key(A.REQUESTS, slot))
    assert len(A.decode(body)) == 6


def test_a_message_that_is_not_a_log_message_is_left_for_the_dead_letter_queue(aws):
    s3, sqs, settings = aws
    sqs.send_message(QueueUrl=settings.queue_url, MessageBody="garbage")
    RequestLog(settings, sqs=sqs, s3=s3).write(_records(2))
    report = _drain(s3, sqs, settings)
    assert report.requests == 2 and report.rejected == 1 and "not JSON" in report.errors[0]
    attrs = sqs.get_queue_attributes(QueueUrl=settings.queue_url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "1" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_late_feedback_updates_its_request_slot_aggregate(aws):
    s3, sqs, settings = aws
    log = RequestLog(settings, sqs=sqs, s3=s3)
    at = datetime.now(timezone.utc) - timedelta(hours=2)
    recs = _records(4, at=at)
    log.write(recs)
    _drain(s3, sqs, settings)
    slot = LAYOUT.slot_of(at)
    agg = json.loads(s3.get_object(Bucket=BUCKET, Key=LAYOUT.key(A.AGGREGATES, slot))["Body"].read())
    assert agg["requests"] == 4 and agg["versions"]["1"]["labelled"] == 0 and agg["versions"]["1"]["profile_missing"]
    for r in recs[:2]:
        log.record_feedback(r["request_id"], r["prediction"] + 3.0)
    _drain(s3, sqs, settings)
    agg = json.loads(s3.get_object(Bucket=BUCKET, Key=LAYOUT.key(A.AGGREGATES, slot))["Body"].read())
    v = agg["versions"]["1"]
    assert v["labelled"] == 2 and v["sq_err_sum"] == pytest.approx(18.0) and v["abs_err_sum"] == pytest.approx(6.0)
