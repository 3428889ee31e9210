"""The request log: every prediction written to DynamoDB and archived to S3, nothing lost.

Record (one per predicted trip; a batch shares ``batch_id``)::

    {"request_id", "ts" (ISO-8601 UTC, µs), "features" {12}, "prediction", "model_name",
     "model_version", "latency_ms", ["batch_id"]}          later: "actual_fare", "feedback_ts"

DynamoDB (table ``REQUEST_LOG_TABLE``): pk ``request_id`` ("this request"), GSI ``by_time`` with
partition ``time_bucket`` = the UTC hour ``YYYY-MM-DDTHH`` (``#k`` suffix when sharded) and sort key
``ts`` ("all requests in a window": one Query per hour), TTL attribute ``expires_at``.

S3 archive (bulk reads for the drift check): JSON Lines, one object per predict call, under
``requests/dt=YYYY-MM-DD/hour=HH/<ts>-<request_id>.jsonl``; feedback under
``feedback/dt=…/hour=…/<ts>-<request_id>.json``.  Keys are deterministic, so a replay that writes
the same record twice is harmless (DynamoDB puts are idempotent by request_id too). A fallback
too big for one SQS message is split, each part archived under ``<key>.partN.jsonl``.

Both sinks are written concurrently before the response returns.  When one rejects or times
out, the affected records go to the fallback SQS queue with the list of sinks still owed; the
replay function (functions/replay_log) drains it.  Only when no sink and no fallback accepted a
record does :meth:`RequestLog.write` raise :class:`LogUnavailable` (the caller answers 503 rather
than serve an unlogged prediction).
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

DYNAMODB = "dynamodb"
S3 = "s3"
GSI_NAME = "by_time"
MESSAGE_VERSION = 1
_BATCH_WRITE_MAX = 25
_SQS_CHUNK_BYTES = 200_000       # stay well under SQS's 256 KiB message limit
_UNHEALTHY_FOR_SECONDS = 300.0   # /health reports the log degraded this long after a fallback


class LogUnavailable(Exception):
    """Neither a sink nor the fallback accepted a record."""


class UnknownRequest(Exception):
    """Feedback for a request_id the log does not hold."""


@dataclass(frozen=True)
class LogSettings:
    table: str
    bucket: str
    queue_url: str | None = None
    archive_prefix: str = "requests/"
    feedback_prefix: str = "feedback/"
    ttl_days: float = 30.0
    shards: int = 1


def table_definition(name: str) -> dict[str, Any]:
    """CreateTable arguments of the request-log table (the CDK construct declares the same keys;
    tests and tools use this to make an identical table in moto/LocalStack)."""
    return {
        "TableName": name,
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"}
                                 for n in ("request_id", "time_bucket", "ts")],
        "KeySchema": [{"AttributeName": "request_id", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [{
            "IndexName": GSI_NAME,
            "KeySchema": [{"AttributeName": "time_bucket", "KeyType": "HASH"},
                          {"AttributeName": "ts", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"}}],
        "BillingMode": "PAY_PER_REQUEST",
    }


# ---------------------------------------------------------------- records, keys, items

def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(ts: datetime) -> str:
    """UTC ISO-8601 with microseconds and Z (fixed width, so strings sort by time)."""
    return ts.astimezone(timezone.utc).isoformat(timespec="microseconds")[:26] + "Z"


def make_record(*, request_id: str, ts: str, features: dict[str, Any], prediction: float,
                model_name: str, model_version: str, latency_ms: float,
                batch_id: str | None = None) -> dict[str, Any]:
    record = {"request_id": request_id, "ts": ts, "features": features, "prediction": prediction,
              "model_name": model_name, "model_version": model_version, "latency_ms": latency_ms}
    if batch_id is not None:
        record["batch_id"] = batch_id
    return record


def time_bucket(ts: str, request_id: str = "", shards: int = 1) -> str:
    """GSI partition for a record: its UTC hour, optionally sharded by request_id."""
    hour = ts[:13]
    return hour if shards <= 1 else f"{hour}#{zlib.crc32(request_id.encode()) % shards}"


def hour_buckets(start: datetime, end: datetime, shards: int = 1) -> list[str]:
    """Every GSI partition that can hold a record with start <= ts <= end."""
    hour = start.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    out = []
    while hour <= end:
        h = hour.strftime("%Y-%m-%dT%H")
        out += [h] if shards <= 1 else [f"{h}#{k}" for k in range(shards)]
        hour += timedelta(hours=1)
    return out


def _av(value: Any) -> dict[str, Any]:
    """Python value -> DynamoDB AttributeValue (hand-rolled: TypeSerializer needs Decimals)."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": repr(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, dict):
        return {"M": {k: _av(v) for k, v in value.items()}}
    if value is None:
        return {"NULL": True}
    raise TypeError(f"cannot store {type(value).__name__} in the request log")


def _py(av: dict[str, Any]) -> Any:
    (kind, value), = av.items()
    if kind == "N":
        f = float(value)
        return int(f) if f.is_integer() and "." not in value and "e" not in value.lower() else f
    if kind == "M":
        return {k: _py(v) for k, v in value.items()}
    if kind == "NULL":
        return None
    return value


def to_item(record: dict[str, Any], settings: LogSettings) -> dict[str, Any]:
    epoch = datetime.fromisoformat(record["ts"]).timestamp()
    item = {k: _av(v) for k, v in record.items()}
    item["time_bucket"] = {"S": time_bucket(record["ts"], record["request_id"], settings.shards)}
    item["expires_at"] = {"N": str(int(epoch + settings.ttl_days * 86400))}
    return item


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _py(v) for k, v in item.items() if k not in ("time_bucket", "expires_at")}


def _partition(prefix: str, ts: str) -> str:
    return f"{prefix}dt={ts[:10]}/hour={ts[11:13]}/"


def _compact(ts: str) -> str:
    return ts.replace("-", "").replace(":", "").replace(".", "")


def archive_key(prefix: str, records: Sequence[dict[str, Any]]) -> str:
    first = records[0]
    name = first.get("batch_id") or first["request_id"]
    return f"{_partition(prefix, first['ts'])}{_compact(first['ts'])}-{name}.jsonl"


def jsonl(records: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()


# ---------------------------------------------------------------- writer

@dataclass
class WriteResult:
    fallback_sinks: list[str] = field(default_factory=list)   # sinks owed by the fallback queue
    errors: list[str] = field(default_factory=list)


class RequestLog:
    """Writes records to DynamoDB + S3, falling back to SQS. Create once per container."""

    def __init__(self, settings: LogSettings, *, dynamodb, s3, sqs=None,
                 emit: Callable[[str, float], None] = lambda name, value: None, log=None,
                 workers: int = 8) -> None:
        self.settings = settings
        self._ddb, self._s3, self._sqs = dynamodb, s3, sqs
        self._emit, self._log = emit, log
        # Two pools: the DynamoDB task fans its batch chunks out to the second one (no self-deadlock).
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reqlog")
        self._chunks = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reqlog-chunk")
        self.last_fallback: tuple[float, str] | None = None   # (time, error) of the latest fallback
        self.fallbacks = 0

    # -- health
    @property
    def healthy(self) -> bool:
        return self.last_fallback is None or time.time() - self.last_fallback[0] > _UNHEALTHY_FOR_SECONDS

    def degraded_reason(self) -> str | None:
        if self.healthy:
            return None
        return (f"request log: {self.fallbacks} write(s) went to the fallback queue; "
                f"latest: {self.last_fallback[1]}")

    # -- predictions
    def write(self, records: list[dict[str, Any]]) -> WriteResult:
        """Persist ``records`` (one predict call) before the response returns."""
        key = archive_key(self.settings.archive_prefix, records)
        ddb_future = self._pool.submit(self._put_dynamodb, records)
        s3_error = self._put_archive(key, records)  # on this thread, concurrently with DynamoDB
        ddb_failed, ddb_error = ddb_future.result()
        result = WriteResult()
        owed: dict[str, list[dict]] = {}
        if ddb_failed:
            result.errors.append(f"dynamodb: {ddb_error}")
            owed[DYNAMODB] = ddb_failed
        if s3_error:
            result.errors.append(f"s3: {s3_error}")
            owed[S3] = records
        if owed:
            self._fallback(owed, key, result, kind="requests", total=len(records))
        return result

    def _put_dynamodb(self, records: list[dict[str, Any]]) -> tuple[list[dict], str | None]:
        """Returns (records not written, last error)."""
        try:
            if len(records) == 1:
                self._ddb.put_item(TableName=self.settings.table, Item=to_item(records[0], self.settings))
                return [], None
        except Exception as exc:  # noqa: BLE001 - rejected, throttled, timed out: all go to the fallback
            return records, _describe(exc)
        chunks = [records[i:i + _BATCH_WRITE_MAX] for i in range(0, len(records), _BATCH_WRITE_MAX)]
        failed: list[dict] = []
        error = None
        for chunk_failed, chunk_error in self._chunks.map(self._batch_write, chunks) if len(chunks) > 1 \
                else map(self._batch_write, chunks):
            failed += chunk_failed
            error = chunk_error or error
        return failed, error

    def _batch_write(self, chunk: list[dict[str, Any]]) -> tuple[list[dict], str | None]:
        by_id = {r["request_id"]: r for r in chunk}
        requests = [{"PutRequest": {"Item": to_item(r, self.settings)}} for r in chunk]
        for attempt in range(3):
            try:
                resp = self._ddb.batch_write_item(RequestItems={self.settings.table: requests})
            except Exception as exc:  # noqa: BLE001
                return [by_id[_rid(r)] for r in requests], _describe(exc)
            requests = resp.get("UnprocessedItems", {}).get(self.settings.table, [])
            if not requests:
                return [], None
            time.sleep(0.02 * 2 ** attempt)
        return [by_id[_rid(r)] for r in requests], f"{len(requests)} items unprocessed after retries"

    def _put_archive(self, key: str, records: list[dict[str, Any]]) -> str | None:
        try:
            self._s3.put_object(Bucket=self.settings.bucket, Key=key, Body=jsonl(records),
                                ContentType="application/x-ndjson")
            return None
        except Exception as exc:  # noqa: BLE001
            return _describe(exc)

    # -- fallback
    def _fallback(self, owed: dict[str, list[dict]], key: str, result: WriteResult, *,
                  kind: str, total: int) -> None:
        """Queue what each sink still owes; raise LogUnavailable if some record ends up nowhere."""
        reason = "; ".join(result.errors)
        self.fallbacks += 1
        self.last_fallback = (time.time(), reason)
        try:
            if not self._sqs or not self.settings.queue_url:
                raise RuntimeError("no fallback queue configured")
            for sink, recs in owed.items():
                chunks = list(_size_chunks(recs))
                for i, chunk in enumerate(chunks):
                    # Each chunk owns its archive key: replays never read-modify-write a shared object.
                    part = key if len(chunks) == 1 else _part_key(key, i)
                    body = {"v": MESSAGE_VERSION, "kind": kind, "sinks": [sink], "key": part, "records": chunk}
                    self._sqs.send_message(QueueUrl=self.settings.queue_url,
                                           MessageBody=json.dumps(body, separators=(",", ":")))
                result.fallback_sinks.append(sink)
                self._emit("RequestLogFallbacks", len(recs))
        except Exception as exc:  # noqa: BLE001
            # The fallback failed too. A record is lost only if it also missed every sink.
            # (Feedback is already in DynamoDB when only its archive copy is owed.)
            lost_everywhere = S3 in owed and DYNAMODB in owed
            self._emit("RequestLogFallbackFailures", 1)
            if self._log:
                # Last resort: the records themselves go to CloudWatch Logs.
                self._log.error("request log fallback failed", extra={
                    "error": _describe(exc), "sink_errors": reason, "records": owed})
            if lost_everywhere:
                raise LogUnavailable(f"request log unavailable ({reason}; fallback: {_describe(exc)})") from exc
            return
        if self._log:
            self._log.warning("request log write fell back to the queue",
                              extra={"errors": reason, "sinks": list(owed), "records": total})

    # -- feedback
    def record_feedback(self, request_id: str, actual_fare: float) -> dict[str, Any]:
        """Attach ground truth to a logged prediction; returns the updated record.
        Raises UnknownRequest when the id is not in the log (or has expired)."""
        now = iso(utc_now())
        try:
            resp = self._ddb.update_item(
                TableName=self.settings.table, Key={"request_id": {"S": request_id}},
                UpdateExpression="SET actual_fare = :f, feedback_ts = :t",
                ConditionExpression="attribute_exists(request_id)",
                ExpressionAttributeValues={":f": _av(float(actual_fare)), ":t": {"S": now}},
                ReturnValues="ALL_NEW")
        except Exception as exc:  # noqa: BLE001
            if _error_code(exc) == "ConditionalCheckFailedException":
                raise UnknownRequest(request_id) from exc
            raise
        record = from_item(resp["Attributes"])
        doc = {"request_id": request_id, "actual_fare": float(actual_fare), "ts": now,
               "request_ts": record["ts"], "prediction": record["prediction"],
               "model_version": record["model_version"]}
        key = f"{_partition(self.settings.feedback_prefix, now)}{_compact(now)}-{request_id}.json"
        error = self._put_archive(key, [doc])
        if error:
            result = WriteResult(errors=[f"s3: {error}"])
            self._fallback({S3: [doc]}, key, result, kind="feedback", total=1)
        return record

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._chunks.shutdown(wait=True)


# ---------------------------------------------------------------- replay and readers

def replay_message(body: str | dict, settings: LogSettings, *, dynamodb, s3) -> int:
    """Write one fallback message to the sinks it still owes. Idempotent; raises on failure so
    the queue redelivers (and, after maxReceiveCount, dead-letters) the message."""
    msg = json.loads(body) if isinstance(body, str) else body
    if msg.get("v") != MESSAGE_VERSION or msg.get("kind") not in ("requests", "feedback"):
        raise ValueError(f"not a request-log fallback message: {str(body)[:200]}")
    records = msg["records"]
    for sink in msg["sinks"]:
        if sink == DYNAMODB:
            for i in range(0, len(records), _BATCH_WRITE_MAX):
                pending = [{"PutRequest": {"Item": to_item(r, settings)}} for r in records[i:i + _BATCH_WRITE_MAX]]
                for attempt in range(5):
                    resp = dynamodb.batch_write_item(RequestItems={settings.table: pending})
                    pending = resp.get("UnprocessedItems", {}).get(settings.table, [])
                    if not pending:
                        break
                    time.sleep(0.05 * 2 ** attempt)
                if pending:
                    raise RuntimeError(f"{len(pending)} items still unprocessed")
        elif sink == S3:
            s3.put_object(Bucket=settings.bucket, Key=msg["key"], Body=jsonl(records),
                          ContentType="application/x-ndjson")
        else:
            raise ValueError(f"unknown sink {sink!r}")
    return len(records)


def query_window(dynamodb, settings: LogSettings, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
    """All logged records with start <= ts <= end, via the by_time GSI (one Query per hour)."""
    lo, hi = iso(start.astimezone(timezone.utc)), iso(end.astimezone(timezone.utc))
    paginator = dynamodb.get_paginator("query")
    for bucket in hour_buckets(start, end, settings.shards):
        for page in paginator.paginate(
                TableName=settings.table, IndexName=GSI_NAME,
                KeyConditionExpression="time_bucket = :b AND ts BETWEEN :lo AND :hi",
                ExpressionAttributeValues={":b": {"S": bucket}, ":lo": {"S": lo}, ":hi": {"S": hi}}):
            for item in page["Items"]:
                yield from_item(item)


def read_archive(s3, settings: LogSettings, start: datetime, end: datetime,
                 prefix: str | None = None) -> Iterator[dict[str, Any]]:
    """All archived records with start <= ts <= end (lists only the hour partitions needed)."""
    prefix = settings.archive_prefix if prefix is None else prefix
    lo, hi = iso(start.astimezone(timezone.utc)), iso(end.astimezone(timezone.utc))
    paginator = s3.get_paginator("list_objects_v2")
    for hour in hour_buckets(start, end):
        for page in paginator.paginate(Bucket=settings.bucket, Prefix=_partition(prefix, hour + ":")):
            for obj in page.get("Contents", []):
                body = s3.get_object(Bucket=settings.bucket, Key=obj["Key"])["Body"].read()
                for line in body.splitlines():
                    if line.strip():
                        rec = json.loads(line)
                        if lo <= rec["ts"] <= hi:
                            yield rec


def _part_key(key: str, i: int) -> str:
    stem, dot, ext = key.rpartition(".")
    return f"{stem}.part{i}.{ext}" if dot else f"{key}.part{i}"


def _size_chunks(records: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk, size = [], 0
    for r in records:
        n = len(json.dumps(r, separators=(",", ":")))
        if chunk and size + n > _SQS_CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(r)
        size += n
    if chunk:
        yield chunk


def _rid(put_request: dict[str, Any]) -> str:
    return put_request["PutRequest"]["Item"]["request_id"]["S"]


def _error_code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


def _describe(exc: Exception) -> str:
    code = _error_code(exc)
    if code:
        return f"{code}: {exc.response.get('Error', {}).get('Message', '')}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]
