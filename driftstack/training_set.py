"""Labelled traffic for retraining: logged requests joined with their feedback, validated against
the feature contract, written to S3 as JSON Lines for the Spark job.

The prepare Lambda calls :func:`prepare`; the retraining job (spark_jobs/retrain.py) adds a sample
of the champion's training data and splits off the freshest labelled rows as the holdout neither
model trained on. Lambda-safe: numpy + boto3 + the contract.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from driftstack import features as F
from driftstack.drift import Window, WindowData, load_window

TS = "ts"


class NotEnoughData(ValueError):
    """Fewer valid labelled rows than the job needs."""


def join_feedback(data: WindowData) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(feature columns, actual fares, request ids) of the requests that received feedback."""
    pos = {rid: i for i, rid in enumerate(data.request_ids.tolist())}
    fb_ids = data.feedback["request_id"].tolist()
    pairs = [(pos[r], j) for j, r in enumerate(fb_ids) if r in pos]
    rows = np.array([p[0] for p in pairs], dtype=np.int64)
    fbi = np.array([p[1] for p in pairs], dtype=np.int64)
    cols = {k: v[rows] for k, v in data.columns.items()}
    return cols, data.feedback["actual"][fbi], data.request_ids[rows]


def validate(columns: Mapping[str, np.ndarray], target: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Row mask of contract-valid rows and a report naming what was dropped (first reason per row)."""
    n = len(target)
    reasons = np.full(n, None, dtype=object)

    def reject(mask, reason):
        reasons[mask & (reasons == None)] = reason  # noqa: E711

    for f in F.FEATURES:
        if f.name not in columns:
            raise ValueError(f"labelled traffic has no column {f.name!r}")
        v = columns[f.name]
        if f.kind == "numeric":
            v = np.asarray(v, dtype=np.float64)
            bad = ~((v >= f.low) & (v <= f.high))
            if f.integer:
                bad |= np.mod(np.nan_to_num(v), 1) != 0
            reject(bad, f"{f.name}:out_of_range")
        else:
            allowed = [F.category_token(c) for c in f.categories]
            reject(~np.isin(np.asarray(v, dtype=object).astype(str), allowed), f"{f.name}:unknown_category")
    t = np.asarray(target, dtype=np.float64)
    reject(~((t >= F.TARGET.low) & (t <= F.TARGET.high)), f"{F.TARGET.name}:out_of_range")
    ok = reasons == None  # noqa: E711
    dropped = Counter(reasons[~ok].tolist())
    return ok, {"rows_in": n, "rows_out": int(ok.sum()), "dropped": dict(sorted(dropped.items()))}


def prepare(s3, bucket: str, window: Window, key: str, *, min_rows: int = 200,
            archive_prefix: str = "requests/", feedback_prefix: str = "feedback/",
            model_version: str | None = None) -> dict[str, Any]:
    """Assemble, validate and write the window's labelled traffic; raises NotEnoughData."""
    data = load_window(s3, bucket, window, archive_prefix=archive_prefix, feedback_prefix=feedback_prefix)
    if model_version is not None:
        data = data.select(data.versions == model_version)
    cols, actual, ids = join_feedback(data)
    ok, report = validate(cols, actual)
    report.update({"requests": len(data), "labelled": int(len(actual)), "min_rows": min_rows,
                   "passed": bool(ok.sum() >= min_rows)})
    if not report["passed"]:
        raise NotEnoughData(f"not enough labelled traffic in window {window.id}: {report['rows_out']} valid "
                            f"labelled rows < {min_rows} ({len(data)} requests, {len(actual)} with feedback, "
                            f"dropped {report['dropped']})")
    ts = _request_ts(data, ids)
    lines = []
    for i in np.flatnonzero(ok):
        row = {f.name: (float(cols[f.name][i]) if f.kind == "numeric" else str(cols[f.name][i])) for f in F.FEATURES}
        row[F.TARGET.name] = float(actual[i])
        row[TS] = ts[i]
        lines.append(json.dumps(row, separators=(",", ":")))
    s3.put_object(Bucket=bucket, Key=key, Body=("\n".join(lines) + "\n").encode(), ContentType="application/x-ndjson")
    return {**report, "uri": f"s3://{bucket}/{key}", "key": key}


def _request_ts(data: WindowData, ids: np.ndarray) -> list[str]:
    """Request time per labelled row (for the time-ordered holdout split)."""
    by_id = dict(zip(data.feedback["request_id"].tolist(), data.feedback["request_ts"].tolist()))
    return [by_id.get(r, "") for r in ids.tolist()]
