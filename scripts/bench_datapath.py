#!/usr/bin/env python3
"""Benchmark the request-log data plane (issue #14, point 5) against a real LocalStack, old vs new.

    flock /tmp/driftstack-heavy.lock .venv/bin/python scripts/bench_datapath.py [--sizes 100K,1M,10M]
        [--old-objects 10000] [--hot-writes 500] [--drain-messages 20000] [--quick] [--json] [--save FILE]
    .venv/bin/python scripts/bench_datapath.py --from-json FILE      # re-print a saved run

Full run ~10 min on 2 cores (most of it writing the 10M window's aggregates); --quick ~1.5 min.

A benchmark, not a test: it prints tables with ratios against the old design measured in the same
run and never asserts on time.  It starts its own LocalStack on a free port (state under
.state/bench-datapath, stopped at the end) unless DRIFTSTACK_LOCALSTACK_URL points at one.
Requests are COUNTED with botocore event hooks on the very clients each step uses
(``before-call.*.*`` = API calls, ``before-send.*.*`` = HTTP attempts), and the cost model is
computed from those counts at AWS list prices.

1. Drift check end to end (``driftstack.usecases.drift_check.run_check``) over a 24 h window (288 five-minute
   slots) holding N logged single-trip predictions, one subprocess per N (wall time, peak RSS,
   tracemalloc peak, requests).  The archive is written directly in its real formats
   (``archive.encode`` / ``Layout.key``; ``aggregates.build`` with the champion's real reference
   profile, built by ``profile.build_profile`` from ``traffic.make_trips``).  Above
   ``--archive-max`` records only the aggregates are written (still built by ``aggregates.build``
   from every one of the N generated records): the check reads nothing else.
   Old design (one S3 object per prediction, drift check = LIST + GET every object + parse; the
   reader of commit 61e6f67 reimplemented inline): measured at ``--old-objects`` objects,
   extrapolated linearly (and labelled so) to the sizes above.
2. Hot path: one predict call's log write, old (DynamoDB PutItem on a table with the old GSI +
   S3 PutObject, concurrently, as ``RequestLog.write`` did) vs new (``RequestLog.write``: one SQS
   SendMessage), interleaved, with the serving functions' client settings.
3. Archive path: ``log_drain.drain`` over N queued single-trip messages (records/s, requests,
   objects), then a steady-state schedule at 1M predictions/day (5-minute drains of 3,472 messages).
4. Cost per 1M single predictions (at 1M/day), before vs after, from the counted requests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from driftstack.adapters import aggregates as G  # noqa: E402
from driftstack.adapters import archive as A  # noqa: E402
from driftstack.adapters import drift_store  # noqa: E402
from driftstack.domain import drift as D  # noqa: E402
from driftstack.usecases import drift_check  # noqa: E402
from driftstack.contract import features as F  # noqa: E402
from driftstack.domain import profile as P  # noqa: E402
from driftstack.adapters import registry  # noqa: E402

STATE = REPO / ".state" / "bench-datapath"
MODEL = "bench-fare"
SHA = "5eed" * 16                      # the champion artifact's sha256 (content is irrelevant here)
SLOT_MINUTES = A.DEFAULT_SLOT_MINUTES  # 5 -> 288 slots in 24 h
WINDOW_MINUTES = 1440
PERIOD_MINUTES = 60                    # the drift schedule (CDK drift_schedule_minutes default)
ARCHIVE_SCHEDULE_MINUTES = 5           # the archiver schedule (CDK archive_schedule_minutes default)
LAMBDA_GB = 1.0                        # predict, archiver and drift-check functions: 1024 MB (CDK)
HANDLER_MS_ASSUMED = 1.0               # predict handler without the log write (README: 0.26 ms in-process)

# AWS list prices, us-east-1 (USD per request unless named otherwise)
PRICE = {
    "apigw_rest": 3.50 / 1e6,
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_s": 0.0000166667,
    "s3_put": 0.005 / 1000,      # PUT, COPY, POST
    "s3_list": 0.005 / 1000,
    "s3_get": 0.0004 / 1000,     # GET, HEAD
    "sqs": 0.40 / 1e6,           # per request per 64 KB chunk of payload
    "ddb_wru": 1.25 / 1e6,       # on-demand write unit (1 KB); each GSI write is another
    "ddb_rru": 0.25 / 1e6,       # on-demand read unit (4 KB strongly consistent)
}
S3_PUT_OPS = {"PutObject", "CopyObject", "PostObject", "DeleteObjects", "CreateMultipartUpload",
              "UploadPart", "CompleteMultipartUpload"}
S3_LIST_OPS = {"ListObjectsV2", "ListObjects", "ListBuckets"}
S3_GET_OPS = {"GetObject", "HeadObject"}


# ====================================================================== counting requests

def _dynamo_size(av: Any) -> int:
    """Approximate DynamoDB size of an AttributeValue (names + values, as AWS documents it)."""
    (kind, value), = av.items()
    if kind == "S":
        return len(value.encode())
    if kind == "N":
        digits = len(value.replace("-", "").replace(".", "").lstrip("0")) or 1
        return 1 + (digits + 1) // 2
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _dynamo_size(v) for k, v in value.items())
    if kind == "L":
        return 3 + sum(1 + _dynamo_size(v) for v in value)
    return len(json.dumps(value))


def item_size(item: dict) -> int:
    return sum(len(k.encode()) + _dynamo_size(v) for k, v in item.items())


class Calls:
    """Counts API calls (``before-call``), HTTP attempts (``before-send``), payload bytes and billing
    units of every client it is attached to.  Thread-safe; ``take()`` returns and resets."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self.calls: Counter = Counter()      # "service.Operation" -> API calls
            self.attempts: Counter = Counter()   # "service.Operation" -> HTTP requests sent
            self.units: Counter = Counter()      # billing units: sqs chunks, ddb WRU/RRU
            self.bytes: Counter = Counter()      # payload bytes sent (PUT bodies, messages)
            self.seconds: Counter = Counter()    # "service.Operation" -> summed wall time of its calls
            self.keys_put: set[str] = set()

    def attach(self, *clients) -> Calls:
        for c in clients:
            ev = c.meta.events
            ev.register("before-parameter-build.*.*", self._params)
            ev.register("before-call.*.*", self._call)
            ev.register("after-call.*.*", self._done)
            ev.register("before-send.*.*", self._send)
            ev.register("after-call.sqs.ReceiveMessage", self._received)
        return self

    @staticmethod
    def _op(event_name: str) -> str:
        _, service, op = event_name.split(".", 2)
        return f"{service}.{op}"

    def _params(self, params, event_name, **_):
        op = self._op(event_name)
        with self._lock:
            if op == "s3.PutObject":
                body = params.get("Body", b"")
                self.bytes[op] += len(body) if isinstance(body, (bytes, str)) else 0
                self.keys_put.add(f"{params.get('Bucket')}/{params.get('Key')}")
            elif op == "sqs.SendMessage":
                n = len(params.get("MessageBody", "").encode())
                self.bytes[op] += n
                self.units["sqs"] += max(1, math.ceil(n / 65536))
            elif op == "sqs.SendMessageBatch":
                n = sum(len(e.get("MessageBody", "").encode()) for e in params.get("Entries", []))
                self.bytes[op] += n
                self.units["sqs"] += max(1, math.ceil(n / 65536))
            elif op.startswith("sqs.") and op != "sqs.ReceiveMessage":
                self.units["sqs"] += 1

    _local = threading.local()

    def _done(self, event_name, **_):
        t0 = getattr(self._local, "t0", None)
        if t0 is not None:
            with self._lock:
                self.seconds[self._op(event_name)] += time.perf_counter() - t0

    def _call(self, params, event_name, **_):
        op = self._op(event_name)
        self._local.t0 = time.perf_counter()
        with self._lock:
            self.calls[op] += 1
            if op.startswith("dynamodb."):
                try:
                    body = json.loads(params.get("body") or b"{}")
                except ValueError:
                    body = {}
                if "Item" in body:
                    self.units["ddb_wru"] += max(1, math.ceil(item_size(body["Item"]) / 1024))
                    self.units[f"ddb_item_bytes:{body.get('TableName')}"] += item_size(body["Item"])
                    self.units[f"ddb_puts:{body.get('TableName')}"] += 1
                elif op in ("dynamodb.GetItem", "dynamodb.Query", "dynamodb.Scan"):
                    self.units["ddb_rru"] += 1

    def _send(self, event_name, **_):
        with self._lock:
            self.attempts[self._op(event_name)] += 1

    def _received(self, parsed, **_):
        n = sum(len(m.get("Body", "").encode()) for m in parsed.get("Messages", []))
        with self._lock:
            self.bytes["sqs.ReceiveMessage"] += n
            self.units["sqs"] += max(1, math.ceil(n / 65536))

    def take(self) -> dict[str, Any]:
        with self._lock:
            out = {"calls": dict(self.calls), "attempts": dict(self.attempts), "units": dict(self.units),
                   "bytes": dict(self.bytes), "objects_put": len(self.keys_put),
                   "op_seconds": {k: round(v, 3) for k, v in self.seconds.items()}}
        self.reset()
        return out


def s3_classes(calls: dict[str, int]) -> dict[str, int]:
    out = {"put": 0, "get": 0, "list": 0, "delete": 0}
    for op, n in calls.items():
        service, name = op.split(".", 1)
        if service != "s3":
            continue
        if name in S3_PUT_OPS:
            out["put"] += n
        elif name in S3_GET_OPS:
            out["get"] += n
        elif name in S3_LIST_OPS:
            out["list"] += n
        elif name == "DeleteObject":
            out["delete"] += n
    return out


def svc(calls: dict[str, int], service: str) -> int:
    return sum(n for op, n in calls.items() if op.startswith(service + "."))


def request_cost(counted: dict[str, Any]) -> float:
    """USD of one counted step (S3 + SQS + DynamoDB requests)."""
    c = s3_classes(counted["calls"])
    u = counted.get("units", {})
    return (c["put"] * PRICE["s3_put"] + c["get"] * PRICE["s3_get"] + c["list"] * PRICE["s3_list"]
            + u.get("sqs", 0) * PRICE["sqs"] + u.get("ddb_wru", 0) * PRICE["ddb_wru"]
            + u.get("ddb_rru", 0) * PRICE["ddb_rru"])


def fmt_calls(calls: dict[str, int]) -> str:
    return ", ".join(f"{op.split('.', 1)[1]} {n:,}" for op, n in sorted(calls.items())) or "-"


# ====================================================================== memory, percentiles

def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    return _status_mb("VmRSS")


def maxrss_mb() -> float:
    """Peak RSS of this process since it started.  VmHWM, not getrusage's ru_maxrss: a child
    spawned by subprocess inherits the parent's RSS in ru_maxrss (vfork + exec)."""
    hwm = _status_mb("VmHWM")
    return hwm if hwm == hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else float("nan")


# ====================================================================== AWS plumbing

def use_endpoint(url: str) -> None:
    os.environ.update({"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"})
    os.environ.pop("AWS_ENDPOINT_URL_S3", None)


def setup_clients():
    from driftstack.adapters import aws
    return aws


def reference_profile() -> dict:
    """A real reference profile: 50K generated January trips, predictions = a decent stand-in model."""
    from driftstack.tools.traffic import make_trips
    ref = make_trips(50_000, seed=1)
    cols = {}
    for f in F.FEATURES:
        vals = [t[f.name] for t in ref.features]
        cols[f.name] = (np.array(vals, dtype=np.float64) if f.kind == "numeric"
                        else np.array([F.category_token(v) for v in vals], dtype=object))
    return P.build_profile(cols, np.asarray(ref.fares) * 0.98 + 0.2)


def put_artifacts(s3, bucket: str, prof: dict) -> None:
    prefix = registry.artifact_prefix(MODEL, SHA)
    s3.put_object(Bucket=bucket, Key=prefix + registry.PROFILE_FILE, Body=json.dumps(prof).encode())
    s3.put_object(Bucket=bucket, Key=prefix + registry.METADATA_FILE,
                  Body=json.dumps({"metrics": {"holdout": {"rmse": 4.3}}}).encode())


def make_bucket(s3, name: str, prof: dict) -> str:
    s3.create_bucket(Bucket=name)
    put_artifacts(s3, name, prof)   # the archiver loads profiles from the archive bucket
    return name


def pk_table(ddb, name: str, sort: bool = False) -> None:
    keys = [("pk", "HASH")] + ([("sk", "RANGE")] if sort else [])
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys],
                     AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys],
                     BillingMode="PAY_PER_REQUEST")


def old_log_table(ddb, name: str) -> None:
    """The old request-log table (commit 61e6f67 request_log.table_definition): pk request_id,
    GSI by_time (time_bucket = UTC hour, ts), projection ALL."""
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("request_id", "time_bucket", "ts")],
        KeySchema=[{"AttributeName": "request_id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_time",
                                 "KeySchema": [{"AttributeName": "time_bucket", "KeyType": "HASH"},
                                               {"AttributeName": "ts", "KeyType": "RANGE"}],
                                 "Projection": {"ProjectionType": "ALL"}}])


# ====================================================================== records

class Pool:
    """Generated trips cycled to make any number of records (request ids and times are unique)."""

    def __init__(self, n: int = 100_000, seed: int = 2):
        from driftstack.tools.traffic import make_trips
        trips = make_trips(n, seed=seed)
        self.features, self.fares = trips.features, trips.fares
        self.i = 0

    def records(self, times: list[datetime], *, model_sha: str = SHA[:16]) -> tuple[list[dict], list[float]]:
        out, fares = [], []
        n = len(self.features)
        for t in times:
            k = self.i % n
            self.i += 1
            fare = self.fares[k]
            out.append(A.make_record(request_id=A.new_request_id(t.timestamp()), ts=A.iso(t),
                                     features=self.features[k], prediction=round(fare * 0.98 + 0.2, 4),
                                     model_name=MODEL, model_version="1", model_sha=model_sha, latency_ms=0.3))
            fares.append(fare)
        return out, fares


def split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


# ====================================================================== 1. drift check: writing the window

def write_new_window(s3, bucket: str, n_total: int, end: datetime, pool: Pool, prof: dict, *,
                     materialize: bool, feedback_every: int) -> dict:
    """The window [end - 24 h, end) holding n_total single-trip predictions, spread evenly over
    its 288 slots, in the archive's real formats."""
    layout = A.Layout(bucket=bucket, slot_minutes=SLOT_MINUTES)
    slots = layout.slots(end - timedelta(minutes=WINDOW_MINUTES), end)
    counts = split(n_total, len(slots))
    out = {"records": 0, "feedback": 0, "request_objects": 0, "request_bytes": 0, "feedback_objects": 0,
           "aggregate_objects": 0, "aggregate_bytes": 0}
    t0 = time.perf_counter()
    pending = []
    load = lambda name, sha: prof  # noqa: E731 - the champion's profile (what ProfileCache returns)
    with ThreadPoolExecutor(8) as pool_io:
        for slot, n in zip(slots, counts):
            if not n:
                continue
            step = SLOT_MINUTES * 60 / n
            recs, fares = pool.records([slot + timedelta(seconds=j * step) for j in range(n)])
            fb_at = A.iso(slot + timedelta(minutes=SLOT_MINUTES, seconds=30))
            fb = sorted((A.make_feedback(request_id=r["request_id"], actual_fare=f, ts=fb_at)
                         for r, f in list(zip(recs, fares))[::feedback_every]),
                        key=lambda r: (r["ts"], r["request_id"])) if feedback_every else []
            doc = G.build(slot, SLOT_MINUTES, recs, fb, load)
            agg = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
            puts = [(layout.key(A.AGGREGATES, slot), agg, "application/json")]
            if materialize:
                body = A.encode(recs)
                puts.append((layout.key(A.REQUESTS, slot), body, "application/x-ndjson"))
                out["request_objects"] += 1
                out["request_bytes"] += len(body)
                if fb:
                    puts.append((layout.key(A.FEEDBACK, slot), A.encode(fb), "application/x-ndjson"))
                    out["feedback_objects"] += 1
            out["records"] += n
            out["feedback"] += len(fb)
            out["aggregate_objects"] += 1
            out["aggregate_bytes"] += len(agg)
            for key, body, ctype in puts:
                pending.append(pool_io.submit(s3.put_object, Bucket=bucket, Key=key, Body=body, ContentType=ctype))
            if len(pending) > 64:
                for f in pending:
                    f.result()
                pending = []
        for f in pending:
            f.result()
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["materialized"] = materialize
    return out


# -- the old design's archive and reader (commit 61e6f67: serving/request_log.py + drift.load_window)

def _old_compact(ts: str) -> str:
    return ts.replace("-", "").replace(":", "").replace(".", "")


def old_archive_key(record: dict) -> str:
    ts = record["ts"]
    return f"requests/dt={ts[:10]}/hour={ts[11:13]}/{_old_compact(ts)}-{record.get('batch_id') or record['request_id']}.jsonl"


def old_jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()


def old_record(r: dict) -> dict:
    """The old record format (no model_sha)."""
    return {k: v for k, v in r.items() if k != "model_sha"}


def write_old_window(s3, bucket: str, n_objects: int, end: datetime, pool: Pool) -> dict:
    """One object per predict call (single trip), spread over [end - 24 h, end)."""
    start = end - timedelta(minutes=WINDOW_MINUTES)
    step = WINDOW_MINUTES * 60 / n_objects
    recs, _ = pool.records([start + timedelta(seconds=(j + 0.5) * step) for j in range(n_objects)])
    t0 = time.perf_counter()
    with ThreadPoolExecutor(16) as io:
        list(io.map(lambda r: s3.put_object(Bucket=bucket, Key=old_archive_key(r), Body=old_jsonl([old_record(r)]),
                                            ContentType="application/x-ndjson"), recs))
    secs = time.perf_counter() - t0
    return {"objects": n_objects, "records": n_objects, "seconds": round(secs, 1),
            "puts_per_s": round(n_objects / secs, 1), "bytes": sum(len(old_jsonl([old_record(r)])) for r in recs)}


def _old_hour_prefixes(prefix: str, start: datetime, end: datetime) -> list[str]:
    hour = start.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    out = []
    while hour <= end:
        out.append(f"{prefix}dt={hour:%Y-%m-%d}/hour={hour:%H}/")
        hour += timedelta(hours=1)
    return out


def _old_list_keys(s3, bucket: str, prefixes: list[str]) -> list[str]:
    keys = []
    paginator = s3.get_paginator("list_objects_v2")
    for prefix in prefixes:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def _old_fetch(s3, bucket: str, keys: list[str], workers: int = 16) -> list[bytes]:
    if not keys:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(keys))) as pool:
        return list(pool.map(lambda k: s3.get_object(Bucket=bucket, Key=k)["Body"].read(), keys))


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def old_run_check(*, s3, models_table, bucket: str, now: datetime, cfg: D.DriftConfig) -> dict:
    """The old drift check: read pointer + profile, LIST the window's hour prefixes, GET every object,
    parse every line into columns, bin them against the profile, PSI/KL/JS, decide."""
    t0 = time.perf_counter()
    window = D.window_for(now, cfg)
    champion = registry.read_pointer(models_table)
    prof = drift_store.load_json(s3, champion.bucket, champion.profile_key)
    drift_store.load_json(s3, champion.bucket, champion.metadata_key)
    lo, hi = A.iso(window.start), A.iso(window.end)
    t_read = time.perf_counter()
    keys = _old_list_keys(s3, bucket, _old_hour_prefixes("requests/", window.start, window.end))
    bodies = _old_fetch(s3, bucket, keys)
    records = [r for b in bodies for line in b.splitlines() if line.strip()
               for r in (json.loads(line),) if "ts" in r and lo <= r["ts"] <= hi]
    # feedback: LIST from the window start to now (none written here: the LISTs still happen)
    fkeys = _old_list_keys(s3, bucket, _old_hour_prefixes("feedback/", window.start, max(window.end, now)))
    _old_fetch(s3, bucket, fkeys)
    read_s = time.perf_counter() - t_read
    feats = [r.get("features") or {} for r in records]
    cols = {}
    for f in F.FEATURES:
        if f.kind == "numeric":
            cols[f.name] = np.fromiter((_num(x.get(f.name)) for x in feats), dtype=np.float64, count=len(feats))
        else:
            v = np.empty(len(feats), dtype=object)
            v[:] = [None if x.get(f.name) is None else F.category_token(x.get(f.name)) for x in feats]
            cols[f.name] = v
    preds = np.fromiter((_num(r.get("prediction")) for r in records), dtype=np.float64, count=len(records))
    versions = np.array([str(r.get("model_version")) for r in records], dtype=object)
    mask = versions == champion.version
    stats = P.compare(prof, {k: v[mask] for k, v in cols.items()}, preds[mask])
    drifted = [k for k, s in stats.items() if k != "prediction" and s["psi"] >= cfg.psi_threshold]
    return {"samples": int(mask.sum()), "objects": len(keys) + len(fkeys), "bytes": sum(map(len, bodies)),
            "drifted_features": drifted, "read_seconds": round(read_s, 3),
            "seconds": round(time.perf_counter() - t0, 3)}


def old_model(runs: list[dict]) -> dict:
    """seconds(N) and peak RSS(N) of the old check as lines through the two measured sizes."""
    (n1, n2) = (r["measured"]["objects"] for r in runs)
    (s1, s2) = (r["measured"]["seconds"] for r in runs)
    (m1, m2) = (r["measured"]["peak_rss_mb"] for r in runs)
    s_per = max((s2 - s1) / (n2 - n1), 0.0) if n2 != n1 else s2 / n2
    m_per = max((m2 - m1) / (n2 - n1), 0.0) if n2 != n1 else 0.0
    return {"seconds_fixed": round(max(s2 - s_per * n2, 0.0), 3), "seconds_per_object": s_per,
            "rss_fixed_mb": round(m2 - m_per * n2, 1), "rss_mb_per_object": m_per,
            "measured_at": [n1, n2]}


def old_seconds(model: dict, n: int) -> float:
    return model["seconds_fixed"] + model["seconds_per_object"] * n


def old_rss_mb(model: dict, n: int) -> float:
    return model["rss_fixed_mb"] + model["rss_mb_per_object"] * n


def old_list_calls(n_objects: int, window_hours: int = 24) -> int:
    """LIST requests of the old check: one page (1,000 keys) per hour prefix of requests (25 prefixes
    for a 24 h window: both ends included), and one per feedback hour prefix."""
    per_hour = n_objects / window_hours
    return (window_hours + 1) * (max(1, math.ceil(per_hour / 1000)) + 1)


# ====================================================================== 1b. the check, in a subprocess per size

def child_main(spec: dict) -> dict:
    use_endpoint(spec["endpoint"])
    from driftstack.usecases import log_drain
    from driftstack.adapters import aws

    s3 = aws.client("s3", timeout=30)
    models = aws.dynamodb_table(spec["models_table"])
    calls = Calls().attach(s3, models.meta.client)
    cfg = D.DriftConfig(window_minutes=WINDOW_MINUTES, period_minutes=PERIOD_MINUTES)
    at = A.parse_iso(spec["at"])
    out: dict[str, Any] = {"rss_before_mb": round(rss_mb(), 1)}
    if spec["mode"] == "old":
        t0 = time.perf_counter()
        doc = old_run_check(s3=s3, models_table=models, bucket=spec["bucket"], now=at, cfg=cfg)
        out["seconds"] = round(time.perf_counter() - t0, 3)
        out["peak_rss_mb"] = round(maxrss_mb(), 1)
        out["counted"] = calls.take()
        out.update({k: doc[k] for k in ("samples", "objects", "bytes", "read_seconds")})
        return out

    layout = A.Layout(bucket=spec["bucket"], slot_minutes=SLOT_MINUTES)
    runs = []
    for i in range(spec["repeats"]):
        t0 = time.perf_counter()
        doc = drift_check.run_check(s3=s3, models_table=models, layout=layout, now=at, cfg=cfg)
        runs.append(time.perf_counter() - t0)
        counted = calls.take()
        if i == 0:
            out["counted"] = counted
            out["peak_rss_mb"] = round(maxrss_mb(), 1)
            out["doc"] = {"samples": doc["samples"], "status": doc["status"], "io": doc["io"],
                          "requests_in_window": doc["requests_in_window"], "compute_ms": doc["compute_ms"],
                          "labelled": (doc.get("performance") or {}).get("labelled"),
                          "rmse": (doc.get("performance") or {}).get("rmse"),
                          "max_psi": max(s["psi"] for s in doc["features"].values()) if doc["features"] else None}
    out["seconds_first"] = round(runs[0], 3)
    out["seconds_warm"] = [round(r, 3) for r in runs[1:]]
    tracemalloc.start()
    drift_check.run_check(s3=s3, models_table=models, layout=layout, now=at, cfg=cfg)
    out["tracemalloc_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    tracemalloc.stop()
    calls.take()

    # What the drift-check Lambda does around it: drain the (empty) log queue, wait for other drains,
    # run the check, persist the result (JSON + HTML report to S3, summary item to DynamoDB).
    sqs = aws.client("sqs", timeout=30)
    history = aws.dynamodb_table(spec["history_table"])
    calls.attach(sqs, history.meta.client)
    steps: dict[str, Any] = {}
    t = time.perf_counter()
    log_drain.drain(sqs=sqs, s3=s3, layout=layout, queue_url=spec["queue_url"],
                    load_profile=log_drain.ProfileCache(s3, layout.bucket), budget_seconds=120)
    steps["drain"] = {"seconds": round(time.perf_counter() - t, 3), **calls.take()}
    t = time.perf_counter()
    log_drain.wait_for_other_drains(sqs, spec["queue_url"], timeout_seconds=60)
    steps["wait_for_other_drains"] = {"seconds": round(time.perf_counter() - t, 3), **calls.take()}
    t = time.perf_counter()
    doc = drift_check.run_check(s3=s3, models_table=models, layout=layout, now=at, cfg=cfg)
    steps["run_check"] = {"seconds": round(time.perf_counter() - t, 3), **calls.take()}
    t = time.perf_counter()
    drift_store.persist(doc, s3=s3, bucket=layout.bucket, history_table=history)
    steps["persist"] = {"seconds": round(time.perf_counter() - t, 3), **calls.take()}
    out["lambda_path"] = steps
    out["peak_rss_mb_all"] = round(maxrss_mb(), 1)
    return out


def run_child(spec: dict) -> dict:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                          capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"child {spec['mode']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ====================================================================== 2. hot path

def _av(value: Any) -> dict[str, Any]:
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
    raise TypeError(type(value).__name__)


def old_to_item(record: dict, ttl_days: float = 30.0) -> dict:
    epoch = datetime.fromisoformat(record["ts"].replace("Z", "+00:00")).timestamp()
    item = {k: _av(v) for k, v in record.items()}
    item["time_bucket"] = {"S": record["ts"][:13]}
    item["expires_at"] = {"N": str(int(epoch + ttl_days * 86400))}
    return item


class OldRequestLog:
    """The old hot path (commit 61e6f67 RequestLog.write, one trip): DynamoDB PutItem on a helper
    thread, concurrently with the S3 PutObject of the call's own archive object."""

    def __init__(self, *, dynamodb, s3, table: str, bucket: str):
        self._ddb, self._s3, self.table, self.bucket = dynamodb, s3, table, bucket
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reqlog")

    def write(self, records: list[dict]) -> None:
        key = old_archive_key(records[0])
        fut = self._pool.submit(self._ddb.put_item, TableName=self.table, Item=old_to_item(records[0]))
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=old_jsonl(records), ContentType="application/x-ndjson")
        fut.result()

    def close(self) -> None:
        self._pool.shutdown()


def bench_hot_path(aws, *, writes: int, pool: Pool, queue_url: str, table: str, bucket: str) -> dict:
    from driftstack.adapters.request_log import LogSettings, RequestLog

    timeout = 2.0   # the predict function's log_timeout_seconds default; two tries (attempts=2)
    old_ddb = aws.client("dynamodb", timeout=timeout, attempts=2)
    old_s3 = aws.client("s3", timeout=timeout, attempts=2, small_writes=True)
    new_sqs = aws.client("sqs", timeout=timeout, attempts=2)
    new_s3 = aws.client("s3", timeout=timeout, attempts=2, small_writes=True)
    c_old, c_new = Calls().attach(old_ddb, old_s3), Calls().attach(new_sqs, new_s3)
    old = OldRequestLog(dynamodb=old_ddb, s3=old_s3, table=table, bucket=bucket)
    new = RequestLog(LogSettings(queue_url=queue_url, layout=A.Layout(bucket=bucket)), sqs=new_sqs, s3=new_s3)

    def one(log, kind: str) -> float:
        now = datetime.now(timezone.utc)
        recs, _ = pool.records([now])
        rec = old_record(recs[0]) if kind == "old" else recs[0]
        t0 = time.perf_counter()
        result = log.write([rec])
        ms = (time.perf_counter() - t0) * 1000
        if kind == "new" and (result.spilled or result.messages != 1):
            raise RuntimeError(f"new log write did not go to the queue: {result}")
        return ms

    for _ in range(50):                              # warm connections (and LocalStack) on both paths
        one(old, "old")
        one(new, "new")
    c_old.take()
    c_new.take()
    lat = {"old": [], "new": []}
    for i in range(writes):                          # interleaved, alternating who goes first
        order = ("old", "new") if i % 2 == 0 else ("new", "old")
        for kind in order:
            lat[kind].append(one(old if kind == "old" else new, kind))
    old.close()
    out = {"writes": writes}
    for kind, counted in (("old", c_old.take()), ("new", c_new.take())):
        v = lat[kind]
        out[kind] = {"p50_ms": round(pct(v, 50), 2), "p95_ms": round(pct(v, 95), 2), "p99_ms": round(pct(v, 99), 2),
                     "mean_ms": round(statistics.fmean(v), 2), "max_ms": round(max(v), 2),
                     "counted": counted,
                     "per_write": {op: round(n / writes, 3) for op, n in counted["calls"].items()}}
    out["old"]["item_bytes"] = round(out["old"]["counted"]["units"].get(f"ddb_item_bytes:{table}", 0) / writes)
    out["old"]["archive_object_bytes"] = round(out["old"]["counted"]["bytes"].get("s3.PutObject", 0) / writes)
    out["new"]["message_bytes"] = round(out["new"]["counted"]["bytes"].get("sqs.SendMessage", 0) / writes)
    return out


# ====================================================================== 3. archive path

def enqueue(sqs, queue_url: str, bodies: list[str]) -> float:
    t0 = time.perf_counter()
    batches = [bodies[i:i + 10] for i in range(0, len(bodies), 10)]

    def send(batch):
        resp = sqs.send_message_batch(QueueUrl=queue_url, Entries=[{"Id": str(j), "MessageBody": b}
                                                                   for j, b in enumerate(batch)])
        if resp.get("Failed"):
            raise RuntimeError(f"send_message_batch failed: {resp['Failed'][:2]}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, batches))
    return time.perf_counter() - t0


def queue_count(sqs, url: str) -> tuple[int, int]:
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                               "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def stored_requests(s3, layout: A.Layout, start: datetime, end: datetime) -> int:
    docs, _ = G.read_window(s3, layout, layout.slot_of(start),
                            layout.slot_of(end) + timedelta(minutes=layout.slot_minutes))
    return sum(int(d.get("requests", 0)) for d in docs)


def one_drain(aws, sqs, s3, calls: Calls, layout: A.Layout, queue_url: str, records: list[dict]) -> dict:
    from driftstack.usecases import log_drain
    from driftstack.adapters.request_log import message

    enqueue_s = enqueue(sqs, queue_url, [message(A.REQUESTS, [r]) for r in records])
    calls.take()
    cache = log_drain.ProfileCache(s3, layout.bucket)
    t0 = time.perf_counter()
    report = log_drain.drain(sqs=sqs, s3=s3, layout=layout, queue_url=queue_url, load_profile=cache,
                             budget_seconds=600)
    secs = time.perf_counter() - t0
    counted = calls.take()
    return {"messages": len(records), "enqueue_seconds": round(enqueue_s, 2), "seconds": round(secs, 3),
            "records_per_s": round(report.requests / secs, 1), "report": report.to_dict(), "counted": counted}


def bench_archive_path(aws, *, messages: int, steady_drains: int, steady_messages: int, pool: Pool,
                       prof: dict, queue_url: str, s3_admin) -> dict:
    sqs = aws.client("sqs", timeout=30)
    s3 = aws.client("s3", timeout=30)
    calls = Calls().attach(sqs, s3)
    out: dict[str, Any] = {}

    # (a) throughput: N single-trip messages answered over the 5 minutes before the drain
    layout = A.Layout(bucket=make_bucket(s3_admin, "bench-dp-drain", prof), slot_minutes=SLOT_MINUTES)
    now = datetime.now(timezone.utc)
    rng = random.Random(7)
    times = sorted(now - timedelta(seconds=rng.uniform(0, 300)) for _ in range(messages))
    recs, _ = pool.records(times)
    d = one_drain(aws, sqs, s3, calls, layout, queue_url, recs)
    d["stored"] = stored_requests(s3_admin, layout, times[0], times[-1])
    d["queue_after"] = queue_count(sqs, queue_url)
    out["throughput"] = d

    # (b) steady state at 1M predictions/day: a drain every 5 minutes over the last 5 minutes of
    # traffic (3,472 messages), the schedule not aligned with the slots (each drain touches 2 slots,
    # each slot is written by 2 drains: the second merges into the object the first wrote).
    layout = A.Layout(bucket=make_bucket(s3_admin, "bench-dp-steady", prof), slot_minutes=SLOT_MINUTES)
    base = layout.slot_of(datetime.now(timezone.utc)) - timedelta(minutes=SLOT_MINUTES * (steady_drains + 2)) \
        + timedelta(seconds=150)
    drains = []
    for k in range(steady_drains):
        lo = base + timedelta(minutes=ARCHIVE_SCHEDULE_MINUTES * k)
        step = ARCHIVE_SCHEDULE_MINUTES * 60 / steady_messages
        recs, _ = pool.records([lo + timedelta(seconds=j * step) for j in range(steady_messages)])
        drains.append(one_drain(aws, sqs, s3, calls, layout, queue_url, recs))
    keys = [o["Key"] for page in s3_admin.get_paginator("list_objects_v2").paginate(Bucket=layout.bucket)
            for o in page.get("Contents", []) if not o["Key"].startswith("models/")]
    slots = {layout.slot_from_key(k) for k in keys} - {None}
    out["steady"] = {"drains": drains, "messages_per_drain": steady_messages,
                     "stored": stored_requests(s3_admin, layout, base,
                                               base + timedelta(minutes=ARCHIVE_SCHEDULE_MINUTES * steady_drains)),
                     "archive_objects": len(keys), "slots": len(slots),
                     "objects_per_slot": round(len(keys) / max(1, len(slots)), 2)}
    return out


# ====================================================================== 4. cost model

def cost_model(res: dict) -> dict:
    """USD per 1M single predictions at 1M predictions/day, from the counted requests."""
    per_day = 1_000_000
    hot_old, hot_new = res["hot_path"]["old"], res["hot_path"]["new"]
    w = res["hot_path"]["writes"]
    checks_per_day = 1440 // PERIOD_MINUTES
    drains_per_day = 1440 // ARCHIVE_SCHEDULE_MINUTES

    def lambda_gb_s(ms: float) -> float:
        return math.ceil(ms) / 1000 * LAMBDA_GB * PRICE["lambda_gb_s"]   # 1 ms billing granularity

    # ---------------- before
    b: list[tuple[str, float, str]] = []
    c = hot_old["counted"]
    s3_puts = s3_classes(c["calls"])["put"] / w
    ddb_wru = c["units"].get("ddb_wru", 0) / w
    gsi_wru = ddb_wru   # the by_time GSI projects ALL: every item write is written again to the index
    ms_old = HANDLER_MS_ASSUMED + hot_old["p50_ms"]
    b.append(("API Gateway REST", per_day * PRICE["apigw_rest"], "1 request per prediction"))
    b.append(("predict Lambda requests", per_day * PRICE["lambda_request"], ""))
    b.append(("predict Lambda GB-s", per_day * lambda_gb_s(ms_old),
              f"{HANDLER_MS_ASSUMED:g} ms handler (assumed) + {hot_old['p50_ms']:.1f} ms log write p50 -> "
              f"{math.ceil(ms_old)} ms billed x 1 GB"))
    b.append(("S3 PUT (archive object per call)", per_day * s3_puts * PRICE["s3_put"], f"{s3_puts:g} PUT/prediction counted"))
    b.append(("DynamoDB request-log item", per_day * ddb_wru * PRICE["ddb_wru"],
              f"{ddb_wru:g} WRU/prediction counted (item ~{hot_old['item_bytes']} B)"))
    b.append(("DynamoDB GSI by_time write", per_day * gsi_wru * PRICE["ddb_wru"], "projection ALL: +1 write per item"))
    om = res["old_check"]["model"]
    objects_in_window = per_day * WINDOW_MINUTES / 1440
    gets = checks_per_day * objects_in_window
    lists = checks_per_day * old_list_calls(int(objects_in_window))
    b.append(("drift check S3 GET (every object)", gets * PRICE["s3_get"],
              f"{checks_per_day} checks/day x {objects_in_window:,.0f} objects in the 24 h window"))
    b.append(("drift check S3 LIST", lists * PRICE["s3_list"], f"{lists / checks_per_day:,.0f} LIST/check"))
    secs = old_seconds(om, int(objects_in_window))
    b.append(("drift check Lambda GB-s (extrapolated)", checks_per_day * secs * LAMBDA_GB * PRICE["lambda_gb_s"],
              f"{secs:,.0f} s/check extrapolated ({om['seconds_per_object'] * 1000:.2f} ms/object measured)"
              + (" - over Lambda's 900 s limit" if secs > 900 else "")))
    b.append(("drift check Lambda requests", checks_per_day * PRICE["lambda_request"], ""))

    # ---------------- after
    a: list[tuple[str, float, str]] = []
    c = hot_new["counted"]
    sqs_units = c["units"].get("sqs", 0) / w
    ms_new = HANDLER_MS_ASSUMED + hot_new["p50_ms"]
    a.append(("API Gateway REST", per_day * PRICE["apigw_rest"], "1 request per prediction"))
    a.append(("predict Lambda requests", per_day * PRICE["lambda_request"], ""))
    a.append(("predict Lambda GB-s", per_day * lambda_gb_s(ms_new),
              f"{HANDLER_MS_ASSUMED:g} ms handler (assumed) + {hot_new['p50_ms']:.1f} ms log write p50 -> "
              f"{math.ceil(ms_new)} ms billed x 1 GB"))
    a.append(("SQS SendMessage", per_day * sqs_units * PRICE["sqs"], f"{sqs_units:g} request/prediction counted "
              f"({hot_new['message_bytes']} B message)"))
    st = res["archive"]["steady"]
    n_dr = len(st["drains"])
    msgs = st["messages_per_drain"]
    scale = (per_day / drains_per_day) / msgs   # counted drains hold 5 min of 1M/day (scale 1.0)
    drain_sqs = sum(d["counted"]["units"].get("sqs", 0) for d in st["drains"]) / n_dr
    drain_s3 = {k: sum(s3_classes(d["counted"]["calls"])[k] for d in st["drains"]) / n_dr for k in ("put", "get", "list")}
    drain_secs = sum(d["seconds"] for d in st["drains"]) / n_dr
    a.append(("archiver SQS receive/delete", drains_per_day * drain_sqs * scale * PRICE["sqs"],
              f"{drain_sqs:,.0f} SQS requests/drain counted ({drains_per_day} drains/day)"))
    a.append(("archiver S3 GET/PUT/LIST", drains_per_day * (drain_s3["put"] * PRICE["s3_put"] + drain_s3["get"] * PRICE["s3_get"]
                                                           + drain_s3["list"] * PRICE["s3_list"]),
              f"per drain counted: {drain_s3['get']:.1f} GET, {drain_s3['put']:.1f} PUT, {drain_s3['list']:.1f} LIST"))
    a.append(("archiver Lambda requests + GB-s", drains_per_day * (PRICE["lambda_request"]
                                                                   + lambda_gb_s(drain_secs * 1000 * scale)),
              f"{drain_secs:.2f} s/drain measured x 1 GB"))
    ref_size = res["sizes"].get("1000000") or next(iter(res["sizes"].values()))
    lp = ref_size["new"]["lambda_path"]
    check_cost = sum(request_cost(step) for step in lp.values())
    check_secs = sum(step["seconds"] for step in lp.values())
    a.append(("drift check requests (drain+check+persist)", checks_per_day * check_cost,
              f"{checks_per_day} checks/day, counted: " + "; ".join(
                  f"{name} {fmt_calls(step['calls'])}" for name, step in lp.items())))
    a.append(("drift check Lambda requests + GB-s", checks_per_day * (PRICE["lambda_request"] + check_secs * LAMBDA_GB
                                                                      * PRICE["lambda_gb_s"]),
              f"{check_secs:.2f} s/check measured at {ref_size['n']:,} predictions/window"))
    tb, ta = sum(x[1] for x in b), sum(x[1] for x in a)
    fixed = sum(x[1] for x in a if x[0].startswith("drift check") or x[0] == "archiver S3 GET/PUT/LIST")
    return {"per_day": per_day, "before": [{"item": i, "usd": round(u, 4), "basis": s} for i, u, s in b],
            "after": [{"item": i, "usd": round(u, 4), "basis": s} for i, u, s in a],
            "before_usd": round(tb, 3), "after_usd": round(ta, 3), "ratio": round(tb / ta, 2), "target_usd": 4.50,
            "after_fixed_usd_per_day": round(fixed, 4), "after_variable_usd_per_1m": round(ta - fixed, 4),
            "predict_ms_usd_per_1m": round(1e6 * 0.001 * LAMBDA_GB * PRICE["lambda_gb_s"], 4),
            "assumptions": [
                f"{per_day:,} single-trip predictions/day; API Gateway REST, predict Lambda at 1024 MB",
                f"predict billed duration = {HANDLER_MS_ASSUMED:g} ms handler (assumed; README: 0.26 ms in-process) "
                "+ the log write p50 measured here on LocalStack (AWS latencies differ)",
                f"drift check every {PERIOD_MINUTES} min over {WINDOW_MINUTES // 60} h ({checks_per_day}/day), 1024 MB; "
                f"archiver every {ARCHIVE_SCHEDULE_MINUTES} min ({drains_per_day}/day), 1024 MB",
                "request prices only: storage, data transfer, CloudWatch and the free S3 DELETEs excluded; "
                "the champion-pointer reads of the predict function are the same before and after and excluded",
                "old design: no feedback objects; the fallback/replay path idle; new design: no spills",
            ]}


# ====================================================================== printing

def table(title: str, header: list[str], rows: list[list[Any]], notes: list[str] = ()) -> str:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]
    lines = [title, "=" * len(title),
             "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))),
             "  ".join("-" * w for w in widths)]
    for r in cells:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    lines += [f"  {n}" for n in notes]
    return "\n".join(lines) + "\n"


def human(n: int) -> str:
    for unit, div in (("M", 1_000_000), ("K", 1_000)):
        if n >= div and n % (div // 10 or 1) == 0:
            v = n / div
            return f"{v:g}{unit}"
    return f"{n:,}"


def parse_size(s: str) -> int:
    s = s.strip().upper().replace("_", "")
    mult = {"K": 1_000, "M": 1_000_000}.get(s[-1:], 1)
    return int(float(s[:-1] if mult > 1 else s) * mult)


def render(res: dict) -> str:
    out = []
    meta = res["meta"]
    out.append(f"driftstack data-plane benchmark (issue #14) - {meta['started']} - LocalStack {meta['endpoint']}"
               f" - {os.cpu_count()} cores, load avg at start {meta['loadavg']}, at end {meta.get('loadavg_end', '?')}\n")

    # -- what was written
    rows = []
    for key, s in res["sizes"].items():
        w = s["written"]
        rows.append([human(s["n"]), f"{w['records']:,}", f"{w['feedback']:,}", w["aggregate_objects"],
                     f"{w['aggregate_bytes'] / 1024:,.0f} KiB",
                     f"{w['request_objects']} ({w['request_bytes'] / 2**20:,.1f} MiB gz)" if w["materialized"]
                     else "none (aggregates only)", f"{w['seconds']:.0f} s"])
    o = res["old_check"]["written"]
    out.append(table("What each window holds (24 h, 288 five-minute slots)",
                     ["window", "predictions", "feedback", "aggregates", "agg size", "request objects", "write time"], rows,
                     ["aggregates: driftstack.adapters.aggregates.build over every generated record of the slot (real profile "
                      "bins), written as refresh() writes them", "request/feedback objects: driftstack.adapters.archive.encode at "
                      "Layout.key (the check never reads them; above --archive-max they are not written)",
                      f"feedback: 1 in {res['meta']['feedback_every']} predictions labelled",
                      f"old design window: {o['objects']:,} single-trip objects (one per predict call, "
                      f"{o['bytes'] / o['objects']:.0f} B each), written at {o['puts_per_s']:,.0f} PUT/s"]))

    # -- drift check
    oc = res["old_check"]
    om = oc["model"]
    rows = []
    for key, s in res["sizes"].items():
        n, new = s["n"], s["new"]
        warm = statistics.median(new["seconds_warm"]) if new["seconds_warm"] else new["seconds_first"]
        cc = s3_classes(new["counted"]["calls"])
        old_s = old_seconds(om, n)
        old_mem = old_rss_mb(om, n)
        rows.append([human(n), f"{new['doc']['samples']:,}", f"{new['seconds_first']:.2f}", f"{warm:.2f}",
                     f"{new['peak_rss_mb']:.0f}", f"{new['tracemalloc_peak_mb']:.1f}",
                     f"{cc['get']} / {cc['list']} / {svc(new['counted']['calls'], 'dynamodb')}",
                     f"{old_s:,.0f} (extrap.)", f"{n:,} / {old_list_calls(n)}", f"{old_mem:,.0f} (extrap.)",
                     f"{old_s / new['seconds_first']:,.0f}x", f"{(n + old_list_calls(n)) / max(1, cc['get'] + cc['list']):,.0f}x"])
    for r in oc["runs"]:
        m = r["measured"]
        mc = s3_classes(m["counted"]["calls"])
        rows.append([f"{human(m['objects'])} (old, measured)", f"{m['samples']:,}", "", "", "", "",
                     "", f"{m['seconds']:.1f}", f"{mc['get']:,} / {mc['list']}", f"{m['peak_rss_mb']:.0f}", "", ""])
    out.append(table("Drift check end to end: driftstack.usecases.drift_check.run_check (new) vs GET-every-object (old)",
                     ["window", "samples", "new s (1st)", "new s (warm)", "new peak RSS MB", "tracemalloc MB",
                      "new GET/LIST/DDB", "old s", "old GET / LIST", "old peak RSS MB", "time old/new",
                      "S3 req old/new"], rows,
                     ["new: one subprocess per size; 1st = first run in a fresh process (new connections), warm = "
                      f"median of {res['meta']['repeats'] - 1} more; peak RSS = VmHWM of that process "
                      "(interpreter + numpy + boto3 included)",
                      "old: measured at " + " and ".join(
                          f"{r['measured']['objects']:,} objects ({r['measured']['seconds'] / r['measured']['objects'] * 1000:.2f} "
                          f"ms/object, {r['measured']['objects'] / r['measured']['read_seconds']:,.0f} GET/s incl. LIST + parse)"
                          for r in oc["runs"]) + "; EXTRAPOLATED linearly through both: "
                      f"{om['seconds_fixed']:.2f} s + {om['seconds_per_object'] * 1000:.2f} ms/object, "
                      f"{om['rss_fixed_mb']:.0f} MB + {om['rss_mb_per_object'] * 1024:.1f} KiB/object",
                      "old LISTs: page formula (1,000 keys/page over 25 hour prefixes + 1 per feedback hour prefix; "
                      f"formula at {m['objects']:,}: {old_list_calls(m['objects'])}, counted: {mc['list']})",
                      "targets (new, LocalStack here): <= 5 s at 1M, <= 10 s at 10M, <= 512 MB"]))

    # -- lambda path
    rows = []
    for key, s in res["sizes"].items():
        lp = s["new"]["lambda_path"]
        total = sum(v["seconds"] for v in lp.values())
        rows.append([human(s["n"])] + [f"{lp[k]['seconds']:.2f}" for k in lp] + [f"{total:.2f}",
                    "; ".join(f"{k}: {fmt_calls(v['calls'])}" for k, v in lp.items())])
    first = next(iter(res["sizes"].values()))["new"]["lambda_path"]
    out.append(table("The drift-check Lambda's work, new design (empty log queue)",
                     ["window"] + [f"{k} s" for k in first] + ["total s", "requests counted"], rows,
                     ["drain of an empty queue = 4 receive threads each ending on a 1 s long poll (log_drain defaults)"]))

    # -- hot path
    hp = res["hot_path"]
    ho, hn = hp["old"], hp["new"]
    rows = [[name, d["p50_ms"], d["p95_ms"], d["p99_ms"], d["mean_ms"], d["max_ms"],
             ", ".join(f"{op} {v:g}" for op, v in sorted(d["per_write"].items())), b]
            for name, d, b in (("old: DynamoDB PutItem + S3 PutObject (concurrent)", ho,
                                f"item ~{ho['item_bytes']} B + object {ho['archive_object_bytes']} B"),
                               ("new: RequestLog.write -> SQS SendMessage", hn, f"message {hn['message_bytes']} B"))]
    rows.append(["ratio old/new", *(f"{ho[k] / hn[k]:.2f}x" for k in ("p50_ms", "p95_ms", "p99_ms", "mean_ms", "max_ms")),
                 "", ""])
    out.append(table(f"Hot path: one single-trip predict call's log write ({hp['writes']} each, interleaved, LocalStack)",
                     ["path", "p50 ms", "p95 ms", "p99 ms", "mean ms", "max ms", "requests per write", "payload"], rows,
                     ["clients as in functions/predict: 2 s timeouts, 2 tries, S3 without 100-Continue; 50 warm-up writes each",
                      "full predict through API Gateway: not measured (needs a deployed stack and a Spark-trained model)"]))

    # -- archive path
    ap = res["archive"]
    t = ap["throughput"]
    tc = t["counted"]
    rows = [[f"{t['messages']:,} msgs / 5 min", f"{t['enqueue_seconds']:.1f}", f"{t['seconds']:.2f}",
             f"{t['records_per_s']:,.0f}", t["report"]["slots"], f"{t['stored']:,}",
             fmt_calls({k: v for k, v in tc["calls"].items() if k.startswith("sqs.")}),
             fmt_calls({k: v for k, v in tc["calls"].items() if k.startswith("s3.")}), tc["objects_put"]]]
    for i, d in enumerate(ap["steady"]["drains"]):
        dc = d["counted"]
        rows.append([f"steady drain {i + 1}: {d['messages']:,} msgs", f"{d['enqueue_seconds']:.1f}", f"{d['seconds']:.2f}",
                     f"{d['records_per_s']:,.0f}", d["report"]["slots"], "",
                     fmt_calls({k: v for k, v in dc["calls"].items() if k.startswith("sqs.")}),
                     fmt_calls({k: v for k, v in dc["calls"].items() if k.startswith("s3.")}), dc["objects_put"]])
    st = ap["steady"]
    drains_per_day = 1440 // ARCHIVE_SCHEDULE_MINUTES
    puts_per_drain = statistics.fmean(s3_classes(d["counted"]["calls"])["put"] for d in st["drains"])
    objs_per_slot = st["objects_per_slot"]   # requests + aggregates (+1 feedback object when a slot has feedback)
    objs_per_1m = objs_per_slot * 288        # 1M/day: one day of 5-minute slots holds 1M predictions
    out.append(table("Archive path: log_drain.drain (SQS -> archive + aggregates on S3)",
                     ["drain", "enqueue s", "drain s", "records/s", "slots", "stored", "SQS requests", "S3 requests",
                      "objects written"], rows,
                     [f"throughput run: stored = requests counted in the touched slots' aggregates afterwards "
                      f"(queue after: {t['queue_after'][0]} visible, {t['queue_after'][1]} in flight)",
                      f"steady state = 1M predictions/day: a drain every {ARCHIVE_SCHEDULE_MINUTES} min over 5 min of traffic, "
                      f"not slot-aligned; stored after {len(st['drains'])} drains: {st['stored']:,} of "
                      f"{len(st['drains']) * st['messages_per_drain']:,}",
                      f"objects per 1M predictions (at 1M/day): measured {st['archive_objects']} objects in {st['slots']} slots "
                      f"after the steady drains = {objs_per_slot:g}/slot (requests + aggregates; a slot with feedback has a 3rd) "
                      f"x 288 slots/day = {objs_per_1m:,.0f} objects per 1M predictions vs 1,000,000 before "
                      f"({1e6 / objs_per_1m:,.0f}x fewer); S3 PUTs {puts_per_drain:.1f}/drain x {drains_per_day} drains = "
                      f"{puts_per_drain * drains_per_day:,.0f}/day vs 1,000,000 before",
                      f"throughput run: {tc['objects_put']} objects for {t['messages']:,} predictions = "
                      f"{tc['objects_put'] / t['messages'] * 1e6:,.0f} per 1M at that rate"]))

    rows = []
    for name, d in [("throughput", t)] + [(f"steady {i + 1}", d) for i, d in enumerate(st["drains"])]:
        sec = d["counted"]["op_seconds"]
        top = sorted(sec.items(), key=lambda kv: -kv[1])
        rows.append([name, f"{d['seconds']:.2f}"] + [
            f"{sec.get(op, 0):.2f} ({d['counted']['calls'].get(op, 0):,})"
            for op in ("sqs.ReceiveMessage", "sqs.DeleteMessageBatch", "s3.GetObject", "s3.PutObject")])
    out.append(table("Where a drain's time goes: seconds inside each call kind, summed over threads (calls)",
                     ["drain", "wall s", "ReceiveMessage", "DeleteMessageBatch", "S3 GetObject", "S3 PutObject"], rows,
                     ["receives run on 4 threads (the last one per thread waits out a 1 s long poll); "
                      "DeleteMessageBatch runs one call at a time after the merge; the rest of the wall time is "
                      "parsing, merging, encoding and binning (CPU)"]))

    # -- cost
    cm = res["cost"]
    rows = [[r["item"], f"{r['usd']:.4f}", r["basis"]] for r in cm["before"]]
    rows.append(["TOTAL before", f"{cm['before_usd']:.3f}", ""])
    out.append(table("Cost per 1M single predictions, BEFORE (1M/day, AWS list prices, from counted requests)",
                     ["item", "USD", "basis"], rows))
    rows = [[r["item"], f"{r['usd']:.4f}", r["basis"]] for r in cm["after"]]
    rows.append(["TOTAL after", f"{cm['after_usd']:.3f}", f"target <= ${cm['target_usd']:.2f}"])
    out.append(table("Cost per 1M single predictions, AFTER", ["item", "USD", "basis"], rows,
                     [f"before / after = {cm['ratio']:.2f}x",
                      f"after = ${cm['after_variable_usd_per_1m']:.3f} per 1M (volume-proportional) + "
                      f"${cm['after_fixed_usd_per_day']:.4f}/day (drift checks, archiver S3) - e.g. at 100K/day "
                      f"${cm['after_variable_usd_per_1m'] + 10 * cm['after_fixed_usd_per_day']:.3f} per 1M",
                      f"sensitivity: each 1 ms of predict duration = ${cm['predict_ms_usd_per_1m']:.4f} per 1M"]
                     + [f"assumption: {x}" for x in cm["assumptions"]]))
    return "\n".join(out)


# ====================================================================== main

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sizes", default="100K,1M,10M", help="predictions per 24 h window for the drift check")
    p.add_argument("--archive-max", default="1M",
                   help="write request/feedback objects for windows up to this size (above: aggregates only)")
    p.add_argument("--old-objects", type=int, default=10_000, help="old design: single-trip objects measured")
    p.add_argument("--hot-writes", type=int, default=500, help="log writes per path")
    p.add_argument("--drain-messages", type=int, default=20_000, help="messages for the drain throughput run")
    p.add_argument("--steady-drains", type=int, default=3, help="5-minute drains at 1M/day")
    p.add_argument("--repeats", type=int, default=4, help="run_check runs per size (first + warm)")
    p.add_argument("--feedback-every", type=int, default=100, help="label 1 in N predictions (0: none)")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run (~1.5 min)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON (stable names) instead")
    p.add_argument("--save", metavar="FILE", help="also write the raw figures (JSON) to FILE")
    p.add_argument("--from-json", metavar="FILE", help="print the tables of a saved run (no LocalStack)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child_main(json.loads(a.child))))
        return 0
    if a.from_json:
        res = json.loads(Path(a.from_json).read_text())
        print(json.dumps(res, indent=1) if a.json else render(res))
        return 0
    if a.quick:
        a.sizes, a.old_objects, a.hot_writes, a.drain_messages, a.steady_drains, a.repeats = "10K,100K", 500, 100, 2000, 2, 2
    sizes = [parse_size(s) for s in a.sizes.split(",") if s.strip()]
    archive_max = parse_size(a.archive_max)
    steady_messages = round(1_000_000 / (1440 / ARCHIVE_SCHEDULE_MINUTES))   # 3,472

    from driftstack.tools import localstack_host as lh

    url = os.environ.get("DRIFTSTACK_LOCALSTACK_URL")
    started = None
    if not url:
        shutil.rmtree(STATE, ignore_errors=True)
        started = STATE
        url = lh.start(lh.free_port(), STATE).url
    use_endpoint(url)
    log = (lambda *x: print(*x, file=sys.stderr, flush=True))
    res: dict[str, Any] = {"meta": {"started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                                    "endpoint": url, "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                                    "sizes": sizes, "archive_max": archive_max, "repeats": a.repeats,
                                    "feedback_every": a.feedback_every, "slot_minutes": SLOT_MINUTES,
                                    "window_minutes": WINDOW_MINUTES, "quick": a.quick}}
    t_all = time.perf_counter()
    try:
        import boto3
        aws = setup_clients()
        s3 = aws.client("s3", timeout=60)
        ddb = boto3.client("dynamodb")
        sqs = aws.client("sqs", timeout=30)
        run = f"{int(time.time()) % 100000}"
        log(f"LocalStack {url}; building the reference profile and the trip pool")
        prof = reference_profile()
        pool = Pool()
        artifacts = make_bucket(s3, f"bench-dp-artifacts-{run}", prof)
        models_table, history_table, old_table = f"bench-dp-models-{run}", f"bench-dp-history-{run}", f"bench-dp-oldlog-{run}"
        pk_table(ddb, models_table)
        pk_table(ddb, history_table, sort=True)
        old_log_table(ddb, old_table)
        for t in (models_table, history_table, old_table):
            ddb.get_waiter("table_exists").wait(TableName=t)
        models = aws.dynamodb_table(models_table)
        registry.write_pointer(models, model_name=MODEL, version="1", bucket=artifacts,
                               prefix=registry.artifact_prefix(MODEL, SHA), sha256=SHA, expected_version=None)
        log_queue = sqs.create_queue(QueueName=f"bench-dp-log-{run}", Attributes={"VisibilityTimeout": "600"})["QueueUrl"]
        hot_queue = sqs.create_queue(QueueName=f"bench-dp-hot-{run}")["QueueUrl"]
        hot_bucket = make_bucket(s3, f"bench-dp-hot-{run}", prof)

        # 3. archive path
        log(f"archive path: drain of {a.drain_messages:,} messages, then {a.steady_drains} steady drains")
        res["archive"] = bench_archive_path(aws, messages=a.drain_messages, steady_drains=a.steady_drains,
                                            steady_messages=steady_messages, pool=pool, prof=prof,
                                            queue_url=log_queue, s3_admin=s3)

        # 2. hot path (LocalStack warm by now; writes interleaved so both see the same conditions)
        log(f"hot path: {a.hot_writes} writes per design")
        res["hot_path"] = bench_hot_path(aws, writes=a.hot_writes, pool=pool, queue_url=hot_queue,
                                         table=old_table, bucket=hot_bucket)
        sqs.purge_queue(QueueUrl=hot_queue)

        # 1. drift check, new design, one window per size
        end = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        res["meta"]["window_end"] = A.iso(end)
        res["sizes"] = {}
        for n in sizes:
            bucket = make_bucket(s3, f"bench-dp-n{n}-{run}", prof)
            log(f"drift check {human(n)}: writing the window")
            written = write_new_window(s3, bucket, n, end, pool, prof, materialize=n <= archive_max,
                                       feedback_every=a.feedback_every)
            log(f"drift check {human(n)}: written in {written['seconds']} s; checking (subprocess)")
            new = run_child({"mode": "new", "endpoint": url, "bucket": bucket, "models_table": models_table,
                             "history_table": history_table, "queue_url": log_queue, "at": A.iso(end),
                             "repeats": a.repeats})
            res["sizes"][str(n)] = {"n": n, "written": written, "new": new}
            log(f"  samples {new['doc']['samples']:,} status {new['doc']['status']} first {new['seconds_first']} s "
                f"warm {new['seconds_warm']} peak RSS {new['peak_rss_mb']} MB")

        # 1b. old design, measured at two smaller sizes (a line through both: fixed part + per object)
        res["old_check"] = {"runs": []}
        for n_old in (max(100, a.old_objects // 5), a.old_objects):
            old_bucket = make_bucket(s3, f"bench-dp-old{n_old}-{run}", prof)
            log(f"old drift check: writing {n_old:,} single-trip objects")
            written = write_old_window(s3, old_bucket, n_old, end, pool)
            log(f"  written in {written['seconds']} s; checking (subprocess)")
            measured = run_child({"mode": "old", "endpoint": url, "bucket": old_bucket, "models_table": models_table,
                                  "at": A.iso(end)})
            log(f"  old check {measured['seconds']} s for {measured['objects']:,} objects, peak RSS "
                f"{measured['peak_rss_mb']} MB")
            res["old_check"]["runs"].append({"written": written, "measured": measured})
        res["old_check"]["written"] = res["old_check"]["runs"][-1]["written"]
        res["old_check"]["measured"] = res["old_check"]["runs"][-1]["measured"]
        res["old_check"]["model"] = old_model(res["old_check"]["runs"])

        res["meta"]["seconds"] = round(time.perf_counter() - t_all, 1)
        res["meta"]["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        if a.save:
            Path(a.save).parent.mkdir(parents=True, exist_ok=True)
            Path(a.save).write_text(json.dumps(res, indent=1, default=str))
        res["cost"] = cost_model(res)
        if a.save:
            Path(a.save).write_text(json.dumps(res, indent=1, default=str))
    finally:
        if started is not None:
            lh.stop(started)
            shutil.rmtree(STATE, ignore_errors=True)
    if a.json:
        print(json.dumps(res, indent=1, default=str))
    else:
        print(render(res))
        print(f"total wall time {res['meta']['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
