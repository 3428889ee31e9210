"""The request log's hot path: one durable write per predict call, before the response.

A predict call's records (one per trip) — and a feedback call's record — are sent as one SQS
message (split only when over ~200 KB: a large batch) to the **log queue**.  SQS has stored the
message redundantly when SendMessage returns, so the prediction is logged; the log archiver
(:mod:`driftstack.usecases.log_drain`, scheduled, and run again by every drift check before it reads)
merges queued records into the batched S3 archive (:mod:`driftstack.adapters.archive`) and its per-slot
aggregates.

Why SQS (see the README's cost model): at list prices a message costs $0.40 per million, against
$1.25 for a DynamoDB item (+$1.25 per GSI) and $5.00 for an S3 PUT per request; it is durable on
return, it is served by LocalStack exactly as by AWS, and it needs no capacity planning.

When the queue refuses or does not answer in time, the message is written to S3 under the spill
prefix instead (the archiver merges and deletes spilled messages).  Only when both fail does
:meth:`RequestLog.write` raise :class:`LogUnavailable`: the caller answers 503 rather than serve
an unlogged prediction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from driftstack.adapters import archive as A
from driftstack.contract import names as N

MESSAGE_VERSION = 2
KINDS = (A.REQUESTS, A.FEEDBACK)
_CHUNK_BYTES = 200_000           # stay well under SQS's 256 KiB message limit
_UNHEALTHY_FOR_SECONDS = 300.0   # /health reports the log degraded this long after a spill

# Re-exported: the record format has one home (driftstack.adapters.archive).
iso, utc_now, make_record, new_request_id = A.iso, A.utc_now, A.make_record, A.new_request_id


class LogUnavailable(Exception):
    """Neither the queue nor the spill accepted a record."""


class UnknownRequest(Exception):
    """Feedback for a request id this API never issued (or one older than the log keeps)."""


@dataclass(frozen=True)
class LogSettings:
    queue_url: str
    layout: A.Layout
    retention_days: float = 30.0      # feedback for older requests is refused (404)


@dataclass
class WriteResult:
    messages: int = 0
    spilled: int = 0
    errors: list[str] = field(default_factory=list)


def message(kind: str, records: list[dict[str, Any]]) -> str:
    return json.dumps({"v": MESSAGE_VERSION, "kind": kind, "records": records}, separators=(",", ":"))


def parse_message(body: str | bytes) -> tuple[str, list[dict[str, Any]]]:
    """(kind, records) of a log message; ValueError when it is not one."""
    try:
        msg = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"not JSON: {str(body)[:120]!r}") from exc
    if not isinstance(msg, dict) or msg.get("v") != MESSAGE_VERSION or msg.get("kind") not in KINDS \
            or not isinstance(msg.get("records"), list):
        raise ValueError(f"not a request-log message (v{MESSAGE_VERSION}): {str(body)[:120]!r}")
    for r in msg["records"]:
        if not isinstance(r, dict) or not isinstance(r.get("request_id"), str) \
                or (msg["kind"] == A.REQUESTS and not isinstance(r.get("ts"), str)):
            raise ValueError(f"malformed {msg['kind']} record: {str(r)[:120]!r}")
    return msg["kind"], msg["records"]


def chunks(records: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Split records so each message stays under the SQS size limit."""
    chunk, size = [], 0
    for r in records:
        n = len(json.dumps(r, separators=(",", ":"))) + 1
        if chunk and size + n > _CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(r)
        size += n
    if chunk:
        yield chunk


class RequestLog:
    """Writes log messages to the queue, spilling to S3 when it fails. Create once per container."""

    def __init__(self, settings: LogSettings, *, sqs, s3,
                 emit: Callable[[str, float], None] = lambda name, value: None, log=None) -> None:
        self.settings = settings
        self._sqs, self._s3 = sqs, s3
        self._emit, self._log = emit, log
        self.last_spill: tuple[float, str] | None = None    # (time, error) of the latest spill
        self.spills = 0

    # -- health
    @property
    def healthy(self) -> bool:
        return self.last_spill is None or time.time() - self.last_spill[0] > _UNHEALTHY_FOR_SECONDS

    def degraded_reason(self) -> str | None:
        if self.healthy:
            return None
        return (f"request log: {self.spills} write(s) spilled to S3 because the log queue failed; "
                f"latest: {self.last_spill[1]}")

    # -- writes
    def write(self, records: list[dict[str, Any]], kind: str = A.REQUESTS) -> WriteResult:
        """Durably accept ``records`` before the response returns; raises LogUnavailable."""
        result = WriteResult()
        for i, chunk in enumerate(chunks(records)):
            body = message(kind, chunk)
            try:
                self._sqs.send_message(QueueUrl=self.settings.queue_url, MessageBody=body)
                result.messages += 1
                continue
            except Exception as exc:  # noqa: BLE001 - refused, throttled, timed out: spill
                queue_error = f"sqs: {_describe(exc)}"
            self._spill(body, chunk, i, queue_error, result)
        return result

    def _spill(self, body: str, chunk: list[dict], i: int, queue_error: str, result: WriteResult) -> None:
        first = chunk[0]
        key = (f"{self.settings.layout.spill_prefix}{_compact(first.get('ts') or iso(utc_now()))}-"
               f"{first['request_id']}-{i}.json")
        self.spills += 1
        self.last_spill = (time.time(), queue_error)
        try:
            self._s3.put_object(Bucket=self.settings.layout.bucket, Key=key, Body=body.encode(),
                                ContentType="application/json")
        except Exception as exc:  # noqa: BLE001
            self._emit("RequestLogUnavailable", len(chunk))
            if self._log:   # last resort: the records themselves reach CloudWatch Logs
                self._log.error("request log unavailable", extra={"error": queue_error, "spill_error": _describe(exc),
                                                                  "records": chunk})
            raise LogUnavailable(f"request log unavailable ({queue_error}; spill to S3: {_describe(exc)})") from exc
        result.spilled += len(chunk)
        result.errors.append(queue_error)
        self._emit(N.METRIC_REQUEST_LOG_SPILLS, len(chunk))
        if self._log:
            self._log.warning("request log spilled to S3", extra={"error": queue_error, "key": key,
                                                                  "records": len(chunk)})

    def record_feedback(self, request_id: str, actual_fare: float) -> dict[str, Any]:
        """Accept ground truth for a logged prediction (joined with it by the archiver).
        Raises UnknownRequest for an id this API did not issue or that is past the retention."""
        now = utc_now()
        issued = A.request_time(request_id)
        if issued is None or issued > now + timedelta(minutes=5) \
                or now - issued > timedelta(days=self.settings.retention_days):
            raise UnknownRequest(request_id)
        doc = A.make_feedback(request_id=request_id, actual_fare=actual_fare, ts=iso(now))
        self.write([doc], kind=A.FEEDBACK)
        return {**doc, "request_ts": iso(issued)}


def _compact(ts: str) -> str:
    return ts.replace("-", "").replace(":", "").replace(".", "")


def _describe(exc: Exception) -> str:
    code = A.error_code(exc)
    if code:
        return f"{code}: {exc.response.get('Error', {}).get('Message', '')}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]
