"""Per-slot aggregates: what a drift check needs, in a size that does not grow with traffic.

Drift statistics are functions of bin counts, and counts add up: the counts of a 24-hour window
are the sum of its slots' counts.  So for every archive slot we keep, per serving model version,
the counts of its requests in **that version's reference-profile bins** (each feature and the
prediction), the number of requests, and what performance drift needs from feedback (labelled
count, sums of squared and absolute errors).  A check reads one small object per slot.

Aggregates are recomputed from the slot's request and feedback objects whenever either changes,
so they are always exactly what the raw records say (duplicates already merged away), and late
records or late feedback update the slot they belong to.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from driftstack.adapters import archive as A
from driftstack.contract import features as F
from driftstack.domain import profile as P

AGGREGATE_VERSION = 1

ProfileLoader = Callable[[str, str], "Mapping | None"]   # (model_name, model_sha) -> profile or None


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _column(records: list[dict], feature: F.Feature) -> np.ndarray:
    feats = [r.get("features") or {} for r in records]
    if feature.kind == "numeric":
        return np.fromiter((_num(x.get(feature.name)) for x in feats), dtype=np.float64, count=len(feats))
    vals = np.empty(len(feats), dtype=object)
    vals[:] = [None if x.get(feature.name) is None else F.category_token(x.get(feature.name)) for x in feats]
    return vals


def counts_for(entry: Mapping, values) -> list[int]:
    """Counts of ``values`` in the bins of one profile entry (numeric: below, inner…, above, NaN)."""
    if entry["kind"] == "numeric":
        return P.numeric_counts(values, np.asarray(entry["edges"])).tolist()
    return P.categorical_counts(values, entry["categories"][:-1]).tolist()


def proportions_of(counts) -> np.ndarray:
    """Summed counts -> proportions comparable with a profile entry's ``proportions`` (same bins)."""
    return P.proportions(np.asarray(counts, dtype=np.float64))


def build(slot: datetime, slot_minutes: int, requests: list[dict], feedback: list[dict],
          load_profile: ProfileLoader) -> dict[str, Any]:
    """The aggregate document of one slot."""
    by_version: dict[str, list[dict]] = {}
    for r in requests:
        by_version.setdefault(str(r.get("model_version")), []).append(r)
    fb = {f["request_id"]: f for f in feedback}
    matched = 0
    versions: dict[str, Any] = {}
    for version, recs in sorted(by_version.items()):
        name, sha = recs[0].get("model_name"), recs[0].get("model_sha")
        out: dict[str, Any] = {"model_name": name, "model_sha": sha, "n": len(recs),
                               "latency_ms_sum": float(sum(_num(r.get("latency_ms")) for r in recs))}
        profile = load_profile(name, sha) if name and sha else None
        if profile is None:
            out["profile_missing"] = True
        else:
            out["features"] = {f.name: counts_for(profile["features"][f.name], _column(recs, f))
                               for f in F.FEATURES if f.name in profile["features"]}
            if "prediction" in profile:
                preds = np.fromiter((_num(r.get("prediction")) for r in recs), dtype=np.float64, count=len(recs))
                out["prediction"] = counts_for(profile["prediction"], preds)
        err = np.array([_num(r.get("prediction")) - _num(fb[r["request_id"]].get("actual_fare"))
                        for r in recs if r["request_id"] in fb], dtype=np.float64)
        err = err[np.isfinite(err)]
        matched += err.size
        out.update(labelled=int(err.size), sq_err_sum=float(np.sum(err ** 2)), abs_err_sum=float(np.sum(np.abs(err))))
        versions[version] = out
    return {"v": AGGREGATE_VERSION, "slot": A.iso(slot), "slot_minutes": slot_minutes,
            "requests": len(requests), "feedback": len(feedback), "unmatched_feedback": len(feedback) - matched,
            "versions": versions}


def refresh(s3, layout: A.Layout, slot: datetime, load_profile: ProfileLoader, attempts: int = 8) -> dict:
    """Recompute and store the slot's aggregate from its current request and feedback objects.

    Read the aggregate's ETag first, then the slot objects, then write on that ETag: whichever
    writer wins last read the slot objects after every earlier slot write it could have missed,
    so concurrent drains converge on the aggregate of the final records."""
    key = layout.key(A.AGGREGATES, slot)
    for _ in range(attempts):
        etag = A.etag(s3, layout.bucket, key)
        req_body, _ = A.get(s3, layout.bucket, layout.key(A.REQUESTS, slot))
        fb_body, _ = A.get(s3, layout.bucket, layout.key(A.FEEDBACK, slot))
        doc = build(slot, layout.slot_minutes, A.decode(req_body) if req_body else [],
                    A.decode(fb_body) if fb_body else [], load_profile)
        body = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
        if A.put_if(s3, layout.bucket, key, body, etag, "application/json"):
            return doc
    raise A.ArchiveError(f"s3://{layout.bucket}/{key}: still changing after {attempts} attempts")


# ---------------------------------------------------------------- a window = a sum of slots

@dataclass
class WindowCounts:
    """One model version's traffic in a window, as summed bin counts."""

    version: str
    samples: int = 0
    features: dict[str, np.ndarray] = field(default_factory=dict)
    prediction: np.ndarray | None = None
    labelled: int = 0
    sq_err_sum: float = 0.0
    abs_err_sum: float = 0.0
    requests_in_window: int = 0               # every version
    slots: int = 0                            # aggregate objects read
    versions_seen: dict[str, int] = field(default_factory=dict)
    profile_mismatch: int = 0                 # requests of this version binned with another profile
    unmatched_feedback: int = 0
    bytes_read: int = 0

    def add(self, name: str, counts) -> None:
        c = np.asarray(counts, dtype=np.int64)
        self.features[name] = c if name not in self.features else self.features[name] + c


def sum_window(docs: Iterable[Mapping], version: str, model_sha: str | None) -> WindowCounts:
    """Sum the slot aggregates of ``version`` (served with the artifact ``model_sha``)."""
    out = WindowCounts(version=version)
    for doc in docs:
        out.slots += 1
        out.requests_in_window += int(doc.get("requests", 0))
        out.unmatched_feedback += int(doc.get("unmatched_feedback", 0))
        for v, agg in (doc.get("versions") or {}).items():
            out.versions_seen[v] = out.versions_seen.get(v, 0) + int(agg.get("n", 0))
            if v != version:
                continue
            if model_sha and agg.get("model_sha") != model_sha or agg.get("profile_missing"):
                out.profile_mismatch += int(agg.get("n", 0))
                continue
            out.samples += int(agg["n"])
            for name, counts in (agg.get("features") or {}).items():
                out.add(name, counts)
            if agg.get("prediction") is not None:
                p = np.asarray(agg["prediction"], dtype=np.int64)
                out.prediction = p if out.prediction is None else out.prediction + p
            out.labelled += int(agg.get("labelled", 0))
            out.sq_err_sum += float(agg.get("sq_err_sum", 0.0))
            out.abs_err_sum += float(agg.get("abs_err_sum", 0.0))
    return out


def read_window(s3, layout: A.Layout, start: datetime, end: datetime, workers: int = 16) -> tuple[list[dict], int]:
    """The aggregate documents of the slots in [start, end) and the bytes read."""
    keys = A.list_slot_keys(s3, layout, A.AGGREGATES, start, end)
    bodies = A.fetch(s3, layout.bucket, keys, workers)
    return [json.loads(b) for b in bodies], sum(map(len, bodies))
