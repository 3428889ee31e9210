"""The request archive on S3: its layout, its file format and the one way to write and read it.

Every logged prediction and every piece of feedback ends up here, grouped by **time slot**
(``slot_minutes``, default 5; a divisor of 60) of the *request's* time::

    requests/dt=2026-12-03/hour=12/slot=1205-5m.jsonl.gz     the slot's request records
    feedback/dt=2026-12-03/hour=12/slot=1205-5m.jsonl.gz     feedback for those requests
    aggregates/dt=2026-12-03/hour=12/slot=1205-5m.json       bin counts of the slot (driftstack.adapters.aggregates)

Objects are gzip JSON Lines (Spark, Athena, DuckDB and pandas read them as they are), one record a
line, sorted by (ts, request_id), written with a fixed gzip header so the same records give the
same bytes.  An object is written by **merging**: read it, add the new records keyed by
``request_id`` (a record seen twice is stored once), write it back with an S3 conditional write
(``If-Match`` the ETag read, ``If-None-Match: *`` when new); a concurrent writer makes the write
fail with 412 and the merge starts over.  So a batch delivered twice, or two drains racing, never
duplicate or drop a record, and the number of objects grows with time (slots), not with requests.

Request ids carry their time (a UUIDv7 in hex: 48-bit Unix milliseconds first), so feedback for
an id finds its request's slot without any lookup table.  Batch items are ``<request_id>.<i>``.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from driftstack.contract import names as N

REQUESTS = "requests"
FEEDBACK = "feedback"
AGGREGATES = "aggregates"
DEFAULT_SLOT_MINUTES = N.DEFAULT_SLOT_MINUTES
_MERGE_ATTEMPTS = 8


class ArchiveError(Exception):
    """An archive object could not be written or read (the message names it)."""


# ---------------------------------------------------------------- request ids carry their time

def new_request_id(now: float | None = None) -> str:
    """A UUIDv7 as 32 hex characters: 48 bits of Unix milliseconds, version 7, 74 random bits."""
    ms = int((time.time() if now is None else now) * 1000)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64 | 0b10 << 62 | rand & (2**62 - 1)
    return f"{value:032x}"


def request_time(request_id: str) -> datetime | None:
    """The time a request id was issued, or None when it is not one of ours (nor a batch item of one)."""
    head = request_id.split(".", 1)[0]
    if len(head) != 32 or head[12] != "7":
        return None
    try:
        ms = int(head[:12], 16)
        int(head, 16)
    except ValueError:
        return None
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


# ---------------------------------------------------------------- time

def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(ts: datetime) -> str:
    """UTC ISO-8601 with microseconds and Z (fixed width, so the strings sort by time)."""
    return ts.astimezone(timezone.utc).isoformat(timespec="microseconds")[:26] + "Z"


def parse_iso(value: str) -> datetime:
    ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


# ---------------------------------------------------------------- layout

@dataclass(frozen=True)
class Layout:
    """Where the archive lives. ``slot_minutes`` must divide 60 (slots never straddle an hour)."""

    bucket: str
    requests_prefix: str = N.S3_REQUESTS
    feedback_prefix: str = N.S3_FEEDBACK
    aggregates_prefix: str = N.S3_AGGREGATES
    spill_prefix: str = N.S3_LOG_SPILL     # the hot path's fallback when the queue refuses a record
    slot_minutes: int = DEFAULT_SLOT_MINUTES

    def __post_init__(self):
        if self.slot_minutes < 1 or 60 % self.slot_minutes:
            raise ValueError(f"archive slot_minutes must divide 60, got {self.slot_minutes}")

    def prefix(self, kind: str) -> str:
        return {REQUESTS: self.requests_prefix, FEEDBACK: self.feedback_prefix,
                AGGREGATES: self.aggregates_prefix}[kind]

    # -- slots
    @property
    def slot(self) -> timedelta:
        return timedelta(minutes=self.slot_minutes)

    def slot_of(self, ts: datetime | str) -> datetime:
        ts = parse_iso(ts) if isinstance(ts, str) else ts.astimezone(timezone.utc)
        seconds = self.slot_minutes * 60
        return datetime.fromtimestamp(int(ts.timestamp()) // seconds * seconds, timezone.utc)

    def slots(self, start: datetime, end: datetime) -> list[datetime]:
        """Slots wholly inside [start, end) (start and end must be slot boundaries)."""
        for t in (start, end):
            if self.slot_of(t) != t.astimezone(timezone.utc):
                raise ValueError(f"{iso(t)} is not a {self.slot_minutes}-minute slot boundary")
        out, t, step = [], start.astimezone(timezone.utc), self.slot
        while t < end:
            out.append(t)
            t += step
        return out

    def key(self, kind: str, slot: datetime) -> str:
        ext = ".json" if kind == AGGREGATES else ".jsonl.gz"
        return (f"{self.prefix(kind)}dt={slot:%Y-%m-%d}/hour={slot:%H}/"
                f"slot={slot:%H%M}-{self.slot_minutes}m{ext}")

    def slot_from_key(self, key: str) -> datetime | None:
        """The slot an archive key holds (any slot length), or None for a foreign key."""
        try:
            day = key.split("dt=", 1)[1][:10]
            hhmm, minutes = key.rsplit("slot=", 1)[1].split("m", 1)[0].split("-")
            return datetime.strptime(f"{day} {hhmm}", "%Y-%m-%d %H%M").replace(tzinfo=timezone.utc)
        except (IndexError, ValueError):
            return None


# ---------------------------------------------------------------- records and their encoding

def make_record(*, request_id: str, ts: str, features: dict[str, Any], prediction: float, model_name: str,
                model_version: str, model_sha: str, latency_ms: float, **extra: Any) -> dict[str, Any]:
    """One logged prediction (a batch writes one per trip, sharing ``batch_id``)."""
    return {"request_id": request_id, "ts": ts, "features": features, "prediction": prediction,
            "model_name": model_name, "model_version": model_version, "model_sha": model_sha,
            "latency_ms": latency_ms, **{k: v for k, v in extra.items() if v is not None}}


def make_feedback(*, request_id: str, actual_fare: float, ts: str) -> dict[str, Any]:
    return {"request_id": request_id, "actual_fare": float(actual_fare), "ts": ts}


def encode(records: Iterable[Mapping[str, Any]]) -> bytes:
    """gzip JSON Lines with a fixed header (mtime 0): equal records, equal bytes."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=6) as gz:
        for r in records:
            gz.write(json.dumps(r, separators=(",", ":"), sort_keys=True).encode() + b"\n")
    return buf.getvalue()


def decode(body: bytes) -> list[dict[str, Any]]:
    """gzip or plain JSON Lines -> records (blank lines skipped; a malformed line raises)."""
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def _sort_key(r: Mapping[str, Any]) -> tuple[str, str]:
    return (str(r.get("ts", "")), str(r.get("request_id", "")))


def merge_requests(existing: list[dict], new: Iterable[dict]) -> list[dict]:
    """By request_id; a record logged again (a replayed message) replaces the stored one."""
    by_id = {r["request_id"]: r for r in existing}
    for r in new:
        by_id[r["request_id"]] = r
    return sorted(by_id.values(), key=_sort_key)


def merge_feedback(existing: list[dict], new: Iterable[dict]) -> list[dict]:
    """By request_id; the latest feedback for a request wins."""
    by_id = {r["request_id"]: r for r in existing}
    for r in new:
        old = by_id.get(r["request_id"])
        if old is None or str(r.get("ts", "")) >= str(old.get("ts", "")):
            by_id[r["request_id"]] = r
    return sorted(by_id.values(), key=_sort_key)


MERGERS: dict[str, Callable[[list[dict], Iterable[dict]], list[dict]]] = {
    REQUESTS: merge_requests, FEEDBACK: merge_feedback}


# ---------------------------------------------------------------- S3: conditional read-modify-write

def error_code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


def _missing(exc: Exception) -> bool:
    return error_code(exc) in ("NoSuchKey", "404", "NotFound")


def _conflict(exc: Exception) -> bool:
    return error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")


def get(s3, bucket: str, key: str) -> tuple[bytes | None, str | None]:
    """(body, ETag), or (None, None) when the object does not exist."""
    try:
        obj = s3.get_object(Bucket=bucket, Key=key)
    except Exception as exc:  # noqa: BLE001
        if _missing(exc):
            return None, None
        raise
    return obj["Body"].read(), obj["ETag"]


def etag(s3, bucket: str, key: str) -> str | None:
    """The object's ETag (a HEAD: the body is not needed), or None when it does not exist."""
    try:
        return s3.head_object(Bucket=bucket, Key=key)["ETag"]
    except Exception as exc:  # noqa: BLE001
        if _missing(exc):
            return None
        raise


def put_if(s3, bucket: str, key: str, body: bytes, etag: str | None, content_type: str) -> bool:
    """Write only if the object is still what we read (ETag), or still absent; False on a conflict."""
    cond = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, **cond)
    except Exception as exc:  # noqa: BLE001
        if _conflict(exc):
            return False
        raise
    return True


def merge_into(s3, layout: Layout, kind: str, slot: datetime, new: list[dict]) -> list[dict]:
    """Merge ``new`` into the slot's object; returns the stored records. Safe under concurrency."""
    key = layout.key(kind, slot)
    for _ in range(_MERGE_ATTEMPTS):
        body, etag = get(s3, layout.bucket, key)
        existing = decode(body) if body is not None else []
        merged = MERGERS[kind](existing, new)
        if body is not None and merged == existing:
            return merged      # nothing new (a redelivered message): no write
        if put_if(s3, layout.bucket, key, encode(merged), etag, "application/x-ndjson"):
            return merged
    raise ArchiveError(f"s3://{layout.bucket}/{key}: still changing after {_MERGE_ATTEMPTS} merge attempts")


# ---------------------------------------------------------------- readers

def list_slot_keys(s3, layout: Layout, kind: str, start: datetime, end: datetime) -> list[str]:
    """Keys of ``kind`` whose slot lies in [start, end): one LIST (page) per day."""
    prefix = layout.prefix(kind)
    day, keys = start.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0), []
    paginator = s3.get_paginator("list_objects_v2")
    while day < end:
        for page in paginator.paginate(Bucket=layout.bucket, Prefix=f"{prefix}dt={day:%Y-%m-%d}/"):
            for obj in page.get("Contents", []):
                slot = layout.slot_from_key(obj["Key"])
                if slot is not None and start <= slot < end:
                    keys.append(obj["Key"])
        day += timedelta(days=1)
    return sorted(keys)


def fetch(s3, bucket: str, keys: list[str], workers: int = 16) -> list[bytes]:
    """GET many objects in parallel (boto3 clients are thread-safe)."""
    if not keys:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(keys))) as pool:
        return list(pool.map(lambda k: s3.get_object(Bucket=bucket, Key=k)["Body"].read(), keys))


def read_records(s3, layout: Layout, kind: str, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
    """Records of ``kind`` (requests or feedback) whose request time lies in [start, end)."""
    lo, hi = iso(start), iso(end)
    first, last = layout.slot_of(start), layout.slot_of(end - timedelta(microseconds=1))
    keys = list_slot_keys(s3, layout, kind, first, last + layout.slot)
    for body in fetch(s3, layout.bucket, keys):
        for r in decode(body):
            ts = r.get("ts") if kind == REQUESTS else iso(request_time(r["request_id"]) or start)
            if lo <= str(ts) < hi:
                yield r


def with_feedback(requests: Iterable[dict[str, Any]], feedback: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Request records with ``actual_fare`` (and ``feedback_ts``) of their feedback, where there is one."""
    fb = {f["request_id"]: f for f in feedback}
    out = []
    for r in requests:
        f = fb.get(r["request_id"])
        out.append({**r, "actual_fare": f["actual_fare"], "feedback_ts": f["ts"]} if f else r)
    return out
