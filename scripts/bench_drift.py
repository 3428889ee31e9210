#!/usr/bin/env python3
"""Benchmark the drift computation and the drift check (prints tables; asserts nothing on time).

    .venv/bin/python scripts/bench_drift.py [--ref-rows 1000000] [--cur-rows 100000] [--repeat 5]
                                            [--no-localstack] [--endpoint URL] [--logged 100000]

Part 1 — PSI for the 12 features (+ predictions), 1M reference rows vs 100K current rows, same run:
  ours      driftstack.domain.profile: the reference is summarised ONCE into the profile (edges + proportions,
            what the training job stores); a check bins the current window with searchsorted.
  numpy     a straightforward per-check implementation: quantile edges from the raw reference every
            time, np.histogram on both sides, pandas value_counts for categoricals.
  evidently Evidently 0.7's PSI stattest (legacy psi_stat_test, what its DataDrift preset runs) (needs pandas<3: run from a throwaway venv under
            .state/bench-evidently, made with `python3.11 -m venv .state/bench-evidently &&
            .state/bench-evidently/bin/pip install evidently "pandas<3"`; skipped with a note when
            absent). Evidently bins numerics its own way (equal-width over reference+current), so to
            compare VALUES with the same binning it is also fed the profile's bin indices as
            categoricals ("evidently, same bins").
  Agreement: ours (eps=0) vs numpy with the profile's bins, and vs Evidently on the same bins.

Part 2 — the drift check end to end on LocalStack over N logged requests: the archive written in
its real formats (per 5-minute slot of a 60-minute window: the gzip JSONL request and feedback
objects and the slot's aggregate built by ``aggregates.build`` with the champion's profile, as the
log archiver stores them; batches of 500 trips like batch predictions, 1 in 10 with feedback), then
``drift_check.run_check`` (read the slots' aggregates + compute + decide) and ``drift_store.persist`` (JSON +
HTML report + history item).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from driftstack.contract import features as F  # noqa: E402
from driftstack.domain import profile as P  # noqa: E402

EVIDENTLY_PY = ROOT / ".state" / "bench-evidently" / "bin" / "python"


def make_data(ref_rows: int, cur_rows: int):
    """Generated trips: January reference vs a drifted July window (derived features)."""
    from driftstack.data.derive import derive
    from driftstack.data.generate import generate_trips

    def cols(n, month, drift, seed):
        b = derive(generate_trips(int(n * 1.08) + 100, month, seed=seed, drift=drift)).kept()
        c = {k: v[:n] for k, v in b.features.items()}
        return c, b.target[:n] * 0.97 + 0.4  # stand-in predictions (what the profile also keeps)
    ref, ref_pred = cols(ref_rows, "2023-01", "none", 1)
    cur, cur_pred = cols(cur_rows, "2023-07", "covariate", 2)
    return ref, ref_pred, cur, cur_pred


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


# ---------------------------------------------------------------- plain numpy/pandas

def plain_psi(ref: dict, cur: dict, ref_pred, cur_pred, bins: int = 10, eps: float = 1e-4) -> dict:
    """The obvious per-check implementation (quantile edges from the raw reference each time)."""
    import pandas as pd

    def numeric(r, c):
        edges = np.unique(np.quantile(r, np.linspace(0, 1, bins + 1)))
        edges[0], edges[-1] = -np.inf, np.inf
        e = np.histogram(r, edges)[0] / len(r)
        a = np.histogram(c, edges)[0] / len(c)
        return _psi(e, a, eps)

    def categorical(r, c):
        e = pd.Series(r).value_counts(normalize=True)
        a = pd.Series(c).value_counts(normalize=True)
        idx = e.index.union(a.index)
        return _psi(e.reindex(idx, fill_value=0).to_numpy(), a.reindex(idx, fill_value=0).to_numpy(), eps)

    out = {f.name: (numeric(ref[f.name], cur[f.name]) if f.kind == "numeric" else categorical(ref[f.name], cur[f.name]))
           for f in F.FEATURES}
    out["prediction"] = numeric(ref_pred, cur_pred)
    return out


def _psi(e, a, eps):
    e, a = (e + eps) / (1 + eps * e.size), (a + eps) / (1 + eps * a.size)
    return float(np.sum((a - e) * np.log(a / e)))


def exact_psi(e, a) -> float:
    """Unsmoothed PSI over the bins populated on both sides (bins empty on both add 0); NaN when a
    bin is empty on one side only (infinite without smoothing; Evidently substitutes 1e-4 there)."""
    e, a = np.asarray(e), np.asarray(a)
    both, one = (e > 0) & (a > 0), (e > 0) ^ (a > 0)
    return float("nan") if one.any() else float(np.sum((a[both] - e[both]) * np.log(a[both] / e[both])))


def plain_same_bins(profile: dict, ref: dict, cur: dict, ref_pred, cur_pred, eps: float = 1e-4) -> dict:
    """Independent re-implementation with the profile's bins (pd.cut / value_counts) -> (smoothed
    PSI like ours, exact PSI) per feature — for the value agreement check."""
    import pandas as pd

    def props(entry, values):
        if entry["kind"] == "numeric":
            edges = np.asarray(entry["edges"])
            x = pd.Series(values, dtype="float64")
            cut = pd.cut(x, np.concatenate([[-np.inf], edges, [np.inf]]), right=False, labels=False)
            counts = np.bincount(cut.dropna().astype(int), minlength=len(edges) + 1)
            counts = np.append(counts, x.isna().sum())
        else:
            cats = entry["categories"][:-1]
            vc = pd.Series(np.asarray(values).astype(str)).value_counts()
            counts = np.array([vc.get(c, 0) for c in cats] + [vc[~vc.index.isin(cats)].sum()])
        return counts / counts.sum()

    out = {}
    for name, entry in [*profile["features"].items(), ("prediction", profile["prediction"])]:
        r = ref_pred if name == "prediction" else ref[name]
        c = cur_pred if name == "prediction" else cur[name]
        e, a = props(entry, r), props(entry, c)
        out[name] = (_psi(e, a, eps), exact_psi(e, a))
    return out


# ---------------------------------------------------------------- Evidently (separate venv)

EVIDENTLY_SCRIPT = r"""
import json, sys, time, warnings
import numpy as np, pandas as pd
warnings.filterwarnings("ignore")
from evidently.legacy.calculations.stattests import psi_stat_test
from evidently.legacy.core import ColumnType
d = np.load(sys.argv[1], allow_pickle=True)
names = json.loads(sys.argv[2]); kinds = json.loads(sys.argv[3])
out = {}
def run(binned):
    res = {}
    for n, k in zip(names, kinds):
        r = pd.Series(d["ref_bin_" + n] if binned else d["ref_" + n])
        c = pd.Series(d["cur_bin_" + n] if binned else d["cur_" + n])
        ft = ColumnType.Categorical if (binned or k == "categorical") else ColumnType.Numerical
        res[n] = float(psi_stat_test.func(r, c, ft, 0.1)[0])
    return res
for binned in (False, True):
    best = 1e9
    for _ in range(int(sys.argv[4])):
        t0 = time.perf_counter(); res = run(binned); best = min(best, time.perf_counter() - t0)
    out["same_bins" if binned else "own_bins"] = {"seconds": best, "psi": res}
import evidently
out["version"] = evidently.__version__
print(json.dumps(out))
"""


def evidently_run(profile, ref, cur, ref_pred, cur_pred, repeat: int) -> dict | None:
    if not EVIDENTLY_PY.exists():
        return None
    names = list(F.FEATURE_NAMES) + ["prediction"]
    kinds = [F.BY_NAME[n].kind for n in F.FEATURE_NAMES] + ["numeric"]
    arrays = {}
    for n in names:
        r = ref_pred if n == "prediction" else ref[n]
        c = cur_pred if n == "prediction" else cur[n]
        entry = profile["prediction"] if n == "prediction" else profile["features"][n]
        arrays[f"ref_{n}"] = np.asarray(r, dtype=np.float64 if F.BY_NAME.get(n, F.TARGET).kind == "numeric" else str)
        arrays[f"cur_{n}"] = np.asarray(c, dtype=arrays[f"ref_{n}"].dtype)
        arrays[f"ref_bin_{n}"] = _bin_index(entry, r)
        arrays[f"cur_bin_{n}"] = _bin_index(entry, c)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.npz")
        np.savez(path, **arrays)
        proc = subprocess.run([str(EVIDENTLY_PY), "-c", EVIDENTLY_SCRIPT, path, json.dumps(names), json.dumps(kinds),
                               str(repeat)], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        print(f"evidently failed: {proc.stderr[-1500:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _bin_index(entry, values) -> np.ndarray:
    if entry["kind"] == "numeric":
        x = np.asarray(values, dtype=np.float64)
        idx = np.searchsorted(np.asarray(entry["edges"]), x, side="right")
        return np.where(np.isnan(x), len(entry["edges"]) + 1, idx).astype(np.int64)
    cats = entry["categories"][:-1]
    pos = {c: i for i, c in enumerate(cats)}
    return np.array([pos.get(str(v), len(cats)) for v in values], dtype=np.int64)


# ---------------------------------------------------------------- part 2: end to end on LocalStack

SLOT_MINUTES = 5        # the archive's default slot (cdk archive_slot_minutes)
WINDOW_MINUTES = 60     # the benchmark's drift window: 12 slots
BATCH = 500             # records per logged predict call (a batch request: one id, items <id>.<i>)
FEEDBACK_EVERY = 10     # one logged trip in this many gets feedback (its fare)


def write_window(s3, layout, end, trips, prof: dict, model: dict) -> dict:
    """The window [end - WINDOW_MINUTES, end) holding every trip as logged predictions, in the
    archive's real formats: per slot, the gzip JSONL request (and feedback) object
    (``archive.encode`` at ``Layout.key``) and its aggregate (``aggregates.build`` with the
    champion's profile, what the log archiver stores). Batches of BATCH trips spread evenly."""
    from concurrent.futures import ThreadPoolExecutor

    from driftstack.adapters import aggregates as G
    from driftstack.adapters import archive as A

    slots = layout.slots(end - timedelta(minutes=WINDOW_MINUTES), end)
    n = len(trips.features)
    starts = list(range(0, n, BATCH))
    step = WINDOW_MINUTES * 60 / max(1, len(starts))
    by_slot: dict = {s: ([], []) for s in slots}
    for k, i in enumerate(starts):
        t = slots[0] + timedelta(seconds=k * step)
        rid, ts = A.new_request_id(t.timestamp()), A.iso(t)
        recs, fbs = by_slot[layout.slot_of(t)]
        for j, (f, fare) in enumerate(zip(trips.features[i:i + BATCH], trips.fares[i:i + BATCH])):
            rec = A.make_record(request_id=f"{rid}.{j}", ts=ts, features=f, prediction=round(fare * 0.97 + 0.4, 4),
                                latency_ms=1.0, batch_id=rid, **model)
            recs.append(rec)
            if (i + j) % FEEDBACK_EVERY == 0:
                fbs.append(A.make_feedback(request_id=rec["request_id"], actual_fare=fare,
                                           ts=A.iso(t + timedelta(minutes=1))))
    out = {"records": 0, "feedback": 0, "objects": 0, "bytes": 0}
    puts = []
    for slot, (recs, fbs) in by_slot.items():
        recs = A.merge_requests([], recs)          # the stored order: (ts, request_id)
        fbs = A.merge_feedback([], fbs)
        doc = G.build(slot, layout.slot_minutes, recs, fbs, lambda name, sha: prof)
        puts.append((layout.key(A.AGGREGATES, slot), json.dumps(doc, separators=(",", ":"), sort_keys=True).encode(),
                     "application/json"))
        if recs:
            puts.append((layout.key(A.REQUESTS, slot), A.encode(recs), "application/x-ndjson"))
        if fbs:
            puts.append((layout.key(A.FEEDBACK, slot), A.encode(fbs), "application/x-ndjson"))
        out["records"] += len(recs)
        out["feedback"] += len(fbs)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda p: s3.put_object(Bucket=layout.bucket, Key=p[0], Body=p[1], ContentType=p[2]), puts))
    out["objects"], out["bytes"] = len(puts), sum(len(p[1]) for p in puts)
    return out


def bench_check(endpoint: str | None, logged: int, repeat: int) -> dict:
    import boto3
    from botocore.config import Config

    from driftstack.adapters import archive as A
    from driftstack.domain import drift
    from driftstack.adapters import drift_store
    from driftstack.usecases import drift_check
    from driftstack.adapters import registry
    from driftstack.tools import localstack_host as lh
    from driftstack.tools.traffic import make_trips

    started = None
    if endpoint is None:
        state = ROOT / ".state" / "bench-drift-localstack"
        started = state
        endpoint = lh.start(lh.free_port(), state).url
    os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    try:
        s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}, max_pool_connections=32))
        ddb = boto3.resource("dynamodb")
        bucket = f"bench-drift-{int(time.time())}"
        s3.create_bucket(Bucket=bucket)
        models = ddb.create_table(TableName=f"{bucket}-models", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                  AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                                  BillingMode="PAY_PER_REQUEST")
        history = ddb.create_table(TableName=f"{bucket}-history",
                                   KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                              {"AttributeName": "sk", "KeyType": "RANGE"}],
                                   AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in ("pk", "sk")],
                                   BillingMode="PAY_PER_REQUEST")
        ref = make_trips(50_000, seed=1)
        cols = {f.name: np.array([t[f.name] for t in ref.features], dtype=float if f.kind == "numeric" else object)
                for f in F.FEATURES}
        cols = {k: (v if F.BY_NAME[k].kind == "numeric" else np.array([F.category_token(x) for x in v], dtype=object))
                for k, v in cols.items()}
        prof = P.build_profile(cols, np.array(ref.fares) * 0.97 + 0.4)
        sha = "0" * 64
        prefix = registry.artifact_prefix("bench", sha)
        s3.put_object(Bucket=bucket, Key=prefix + registry.PROFILE_FILE, Body=json.dumps(prof).encode())
        s3.put_object(Bucket=bucket, Key=prefix + registry.METADATA_FILE,
                      Body=json.dumps({"metrics": {"holdout": {"rmse": 3.0}}}).encode())
        registry.write_pointer(models, model_name="bench", version="1", bucket=bucket, prefix=prefix,
                               sha256=sha, expected_version=None)
        layout = A.Layout(bucket=bucket, slot_minutes=SLOT_MINUTES)
        end = layout.slot_of(A.utc_now())      # a slot boundary: the window is whole slots
        trips = make_trips(logged, month="2023-07", drift="covariate", seed=3)
        t0 = time.perf_counter()
        written = write_window(s3, layout, end, trips, prof,
                               {"model_name": "bench", "model_version": "1", "model_sha": sha[:16]})
        write_s = time.perf_counter() - t0
        cfg = drift.DriftConfig(window_minutes=WINDOW_MINUTES, period_minutes=SLOT_MINUTES)
        runs = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            doc = drift_check.run_check(s3=s3, models_table=models, layout=layout, now=end, cfg=cfg)
            t1 = time.perf_counter()
            drift_store.persist(doc, s3=s3, bucket=bucket, history_table=history)
            t2 = time.perf_counter()
            runs.append({"read": doc["io"]["read_seconds"], "compute": doc["compute_ms"] / 1000,
                         "check": t1 - t0, "persist": t2 - t1, "total": t2 - t0})
        best = min(runs, key=lambda r: r["total"])
        if doc["samples"] != written["records"]:
            raise RuntimeError(f"the check saw {doc['samples']} samples, {written['records']} were written")
        perf = doc.get("performance") or {}
        return {"logged": logged, "aggregates": doc["io"]["aggregates"], "kb": doc["io"]["bytes"] / 1e3,
                "samples": doc["samples"], "labelled": perf.get("labelled"), "rmse": perf.get("rmse"),
                "status": doc["status"], "write_seconds": write_s, "written": written, **best}
    finally:
        if started is not None:
            lh.stop(started)


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref-rows", type=int, default=1_000_000)
    ap.add_argument("--cur-rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--logged", type=int, default=100_000)
    ap.add_argument("--endpoint", help="use this LocalStack instead of starting one")
    ap.add_argument("--no-localstack", action="store_true")
    a = ap.parse_args(argv)

    print(f"generating {a.ref_rows:,} reference and {a.cur_rows:,} current rows ...", flush=True)
    ref, ref_pred, cur, cur_pred = make_data(a.ref_rows, a.cur_rows)
    t0 = time.perf_counter()
    profile = P.build_profile(ref, ref_pred)
    profile_s = time.perf_counter() - t0

    ours_s, ours = best_of(lambda: P.compare(profile, cur, cur_pred), a.repeat)
    plain_s, plain = best_of(lambda: plain_psi(ref, cur, ref_pred, cur_pred), a.repeat)
    same = plain_same_bins(profile, ref, cur, ref_pred, cur_pred)
    entries = {**profile["features"], "prediction": profile["prediction"]}
    values = {**cur, "prediction": cur_pred}
    ours_exact = {n: exact_psi(e["proportions"], P.current_proportions(e, values[n])) for n, e in entries.items()}
    ev = evidently_run(profile, ref, cur, ref_pred, cur_pred, max(1, a.repeat // 2))

    print(f"\nPSI, 12 features + prediction: {a.ref_rows:,} reference rows vs {a.cur_rows:,} current rows "
          f"(best of {a.repeat}; the profile was built once in {profile_s:.2f}s)")
    rows = [("driftstack.domain.profile (stored edges + searchsorted)", ours_s),
            ("plain numpy/pandas (quantiles + histogram per check)", plain_s)]
    if ev:
        rows.append((f"Evidently {ev['version']} PSI (own binning)", ev["own_bins"]["seconds"]))
        rows.append((f"Evidently {ev['version']} PSI (profile bins as categories)", ev["same_bins"]["seconds"]))
    print(f"{'implementation':58s} {'ms':>10s} {'× ours':>8s}")
    for name, s in rows:
        print(f"{name:58s} {s * 1e3:10.1f} {s / ours_s:8.1f}")
    if not ev:
        print("(Evidently skipped: no .state/bench-evidently venv; see the module docstring)")

    print("\nPSI values. 'same bins' = an independent pandas implementation with the profile's bins and the same "
          "smoothing;\n'exact' = unsmoothed over bins populated on both sides (NaN: a bin empty on one side only); "
          "'own' = each tool's own binning")
    hdr = f"{'feature':22s} {'ours':>9s} {'same bins':>10s} {'|diff|':>8s} {'plain own':>9s} {'ours exact':>10s}"
    if ev:
        hdr += f" {'Evidently same':>14s} {'|diff|':>8s} {'Evidently own':>13s}"
    print(hdr)
    worst = worst_ev = 0.0
    for n in [*F.FEATURE_NAMES, "prediction"]:
        d = abs(ours[n]["psi"] - same[n][0])
        worst = max(worst, d)
        line = (f"{n:22s} {ours[n]['psi']:9.4f} {same[n][0]:10.4f} {d:8.1e} {plain[n]:9.4f} {ours_exact[n]:10.6f}")
        if ev:
            de = abs(ours_exact[n] - ev["same_bins"]["psi"][n])
            if de == de:
                worst_ev = max(worst_ev, de)
            line += f" {ev['same_bins']['psi'][n]:14.6f} {de:8.1e} {ev['own_bins']['psi'][n]:13.4f}"
        print(line)
    print(f"max |ours - same bins| = {worst:.2e}" +
          (f"; max |ours exact - Evidently same bins| (where defined) = {worst_ev:.2e}" if ev else ""))
    print("note: 'plain own' misses drift in constant/binary reference features (pickup_month, is_rush_hour): "
          "duplicate quantile edges collapse their bins")

    if not a.no_localstack:
        print(f"\ndrift check end to end on LocalStack over {a.logged:,} logged requests ...", flush=True)
        r = bench_check(a.endpoint, a.logged, max(1, a.repeat // 2))
        print(f"{'stage':44s} {'seconds':>9s}")
        for k, label in (("read", f"read aggregates ({r['aggregates']} objects, {r['kb']:.1f} kB)"),
                         ("compute", "compute PSI/KL/JS + decision"), ("check", "check total (read + compute)"),
                         ("persist", "persist (JSON + HTML report + history item)"), ("total", "end to end")):
            print(f"{label:44s} {r[k]:9.2f}")
        w = r["written"]
        rmse = f"{r['rmse']:.2f}" if r["rmse"] is not None else "-"
        print(f"samples {r['samples']:,} ({r['labelled']:,} labelled, window RMSE {rmse}), status {r['status']}; "
              f"archive written in {r['write_seconds']:.1f}s ({w['records']:,} records, {w['feedback']:,} feedback, "
              f"{w['objects']} objects, {w['bytes'] / 1e6:.1f} MB incl. building the aggregates)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
