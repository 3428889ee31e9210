"""Labelled traffic for retraining, assembled by Spark from the batched request archive.

The window's request and feedback objects (gzip JSON Lines, one per archive slot:
driftstack.adapters.archive) are read with ``spark.read.json``, feedback reduced to the latest per request,
joined on request_id, validated against the feature contract (the same ranges, integer and
category rules the API enforces), and the valid rows returned ordered by request time, with a
report of what was dropped and why.  On a cluster the objects are read where they are (``s3://``
paths: EMRFS on EMR Serverless); on a single machine without an S3 filesystem for Spark they are
first copied to a local directory (a few objects: one per slot, not one per request).
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from typing import Any

from driftstack.adapters import archive as A
from driftstack.contract import features as F

from driftstack.usecases.training_set import NotEnoughData

STAGE, DIRECT = "stage", "direct"
__all__ = ["NotEnoughData", "assemble", "invalid_reason"]


def _schemas():
    from pyspark.sql import types as T

    feats = T.StructType([T.StructField(f.name, T.DoubleType() if f.kind == "numeric" else T.StringType())
                          for f in F.FEATURES])
    requests = T.StructType([T.StructField("request_id", T.StringType()), T.StructField("ts", T.StringType()),
                             T.StructField("model_version", T.StringType()), T.StructField("features", feats)])
    feedback = T.StructType([T.StructField("request_id", T.StringType()), T.StructField("ts", T.StringType()),
                             T.StructField("actual_fare", T.DoubleType())])
    return requests, feedback


def invalid_reason():
    """A Spark column: the first contract rule a row breaks (``feature:why``), or null when valid."""
    from pyspark.sql import functions as S

    checks = []
    for f in F.FEATURES:
        c = S.col(f.name)
        if f.kind == "numeric":
            bad = c.isNull() | S.isnan(c) | (c < f.low) | (c > f.high)
            if f.integer:
                bad = bad | (c != S.floor(c))
            checks.append((bad, f"{f.name}:out_of_range"))
        else:
            allowed = [F.category_token(v) for v in f.categories]
            checks.append((c.isNull() | ~c.isin(allowed), f"{f.name}:unknown_category"))
    t = S.col(F.TARGET.name)
    checks.append((t.isNull() | S.isnan(t) | (t < F.TARGET.low) | (t > F.TARGET.high),
                   f"{F.TARGET.name}:out_of_range"))
    return S.coalesce(*[S.when(bad, S.lit(reason)) for bad, reason in checks])


def _paths(s3, layout: A.Layout, kind: str, start: datetime, end: datetime, mode: str, tmp: str) -> list[str]:
    keys = A.list_slot_keys(s3, layout, kind, start, end)
    if mode == DIRECT:
        return [f"s3://{layout.bucket}/{k}" for k in keys]
    out = []
    for k in keys:
        local = os.path.join(tmp, kind, k.replace("/", "_"))
        os.makedirs(os.path.dirname(local), exist_ok=True)
        s3.download_file(layout.bucket, k, local)
        out.append(local)
    return out


def assemble(spark, s3, spec: dict[str, Any], *, min_rows: int = 200):
    """-> (pandas frame of valid labelled rows: features + fare_amount + ts, report).

    ``spec``: {"bucket", "requests_prefix", "feedback_prefix", "slot_minutes", "window": {"start",
    "end"}, "model_version" (optional: only that version's traffic), "read": "stage"|"direct"}."""
    import pandas as pd
    from pyspark.sql import functions as S

    layout = A.Layout(bucket=spec["bucket"], requests_prefix=spec.get("requests_prefix", "requests/"),
                      feedback_prefix=spec.get("feedback_prefix", "feedback/"),
                      slot_minutes=int(spec.get("slot_minutes", A.DEFAULT_SLOT_MINUTES)))
    start, end = A.parse_iso(spec["window"]["start"]), A.parse_iso(spec["window"]["end"])
    first, last = layout.slot_of(start), layout.slot_of(end)
    req_schema, fb_schema = _schemas()
    tmp = tempfile.mkdtemp(prefix="driftstack-labelled-")
    mode = spec.get("read", STAGE)
    req_paths = _paths(s3, layout, A.REQUESTS, first, last + layout.slot, mode, tmp)
    fb_paths = _paths(s3, layout, A.FEEDBACK, first, last + layout.slot, mode, tmp)
    report: dict[str, Any] = {"objects": len(req_paths) + len(fb_paths), "min_rows": min_rows, "read": mode}
    columns = list(F.FEATURE_NAMES) + [F.TARGET.name, "ts"]
    if not req_paths or not fb_paths:
        report.update(requests=0, labelled=0, rows_in=0, rows_out=0, dropped={}, passed=False)
        return _check(pd.DataFrame(columns=columns), report, spec, min_rows)
    req = spark.read.schema(req_schema).json(req_paths) \
        .where((S.col("ts") >= A.iso(start)) & (S.col("ts") <= A.iso(end)))
    if spec.get("model_version") is not None:
        req = req.where(S.col("model_version") == str(spec["model_version"]))
    req = req.dropDuplicates(["request_id"]).select("request_id", "ts", "features.*")
    fb = spark.read.schema(fb_schema).json(fb_paths).groupBy("request_id") \
        .agg(S.max_by("actual_fare", "ts").alias(F.TARGET.name))
    joined = req.join(fb, "request_id").withColumn("_invalid", invalid_reason()).cache()
    report["requests"] = req.count()
    dropped = {r["_invalid"]: r["count"] for r in joined.groupBy("_invalid").count().collect()}
    ok = dropped.pop(None, 0)
    report.update(labelled=ok + sum(dropped.values()), rows_in=ok + sum(dropped.values()), rows_out=ok,
                  dropped=dict(sorted(dropped.items())))
    pdf = joined.where(S.col("_invalid").isNull()).orderBy("ts", "request_id").select(*columns).toPandas()
    joined.unpersist()
    return _check(pdf, report, spec, min_rows)


def _check(pdf, report: dict, spec: dict, min_rows: int):
    report["passed"] = bool(report["rows_out"] >= min_rows)
    if not report["passed"]:
        w = spec["window"]
        raise NotEnoughData(f"not enough labelled traffic in window {w['start']}..{w['end']}: {report['rows_out']} "
                            f"valid labelled rows < {min_rows} ({report['requests']} requests, {report['labelled']} "
                            f"with feedback, dropped {report['dropped']})")
    return pdf, report
