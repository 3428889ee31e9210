"""Benchmark: the training job on 500K generated trips with local[2], against scikit-learn.

    .venv/bin/python scripts/bench_train.py [--rows 500000] [--master local[2]] [--bucket B]

Prints wall time per stage, holdout RMSE/MAE/R2 and — on the same rows, same time split, same
run — scikit-learn's HistGradientBoostingRegressor RMSE and fit time, with ratios. Publishing goes
to the S3 at $AWS_ENDPOINT_URL when --bucket is given (e.g. LocalStack), otherwise to an
in-process moto S3 (noted in the table). MLflow: a fresh sqlite store under .state/bench/.
A script, not a test: it never asserts on time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from driftstack.contract import features as F  # noqa: E402
from driftstack.domain import metrics as M  # noqa: E402


def hgb_baseline(data: Path, cutoff_iso: str) -> dict:
    """scikit-learn HistGradientBoostingRegressor on the same validated rows and time split."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    from driftstack.data.tlc import read_tlc

    k = read_tlc(data).kept()
    cutoff = np.datetime64(cutoff_iso.replace("+00:00", ""), "us")
    train = k.pickup < cutoff
    cols = []
    for f in F.FEATURES:
        v = k.features[f.name]
        if f.kind == "categorical":  # native categorical support: integer codes
            pos = {F.category_token(c): i for i, c in enumerate(f.categories)}
            v = np.array([pos[x] for x in v], dtype=np.float64)
        cols.append(v)
    X = np.column_stack(cols)
    model = HistGradientBoostingRegressor(categorical_features=[f.kind == "categorical" for f in F.FEATURES],
                                          random_state=0)
    t0 = time.perf_counter()
    model.fit(X[train], k.target[train])
    fit_s = time.perf_counter() - t0
    m = M.regression_metrics(k.target[~train], model.predict(X[~train]))
    return {**m, "fit_seconds": fit_s, "train_rows": int(train.sum()), "iterations": int(model.n_iter_)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--month", default="2023-01")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--bucket", help="publish to this bucket at $AWS_ENDPOINT_URL instead of moto")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="extra spark_jobs.train flags")
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")

    from driftstack.data.generate import write_month
    from spark_jobs import train

    base = ROOT / ".state" / "bench"
    shutil.rmtree(base, ignore_errors=True)
    t0 = time.perf_counter()
    data = write_month(base / "data", a.month, rows=a.rows)
    gen_s = time.perf_counter() - t0

    bucket = a.bucket or "driftstack-bench"
    moto = contextlib.nullcontext()
    if not a.bucket:
        from moto import mock_aws

        for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            os.environ.pop(var, None)
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
        moto = mock_aws()
    argv_train = ["--data", str(data), "--bucket", bucket, "--create-bucket", "--master", a.master,
                  "--output-dir", str(base / "run"), "--result-json", str(base / "result.json"),
                  "--mlflow-tracking-uri", f"sqlite:///{base / 'mlflow.db'}",
                  "--mlflow-artifacts", str(base / "mlartifacts"), *a.extra]
    t0 = time.perf_counter()
    with moto:
        code = train.main(argv_train)
    job_s = time.perf_counter() - t0
    if code != 0:
        print(f"training job failed with exit code {code}", file=sys.stderr)
        return code
    res = json.loads((base / "result.json").read_text())
    meta = json.loads((base / "run" / "metadata.json").read_text())
    hgb = hgb_baseline(data, meta["data"]["split_cutoff"])

    sm, st = res["metrics"], res["stage_seconds"]
    lines = [f"driftstack training benchmark: {a.rows:,} generated trips ({a.month}), Spark {meta['versions']['spark']}"
             f" master={a.master}, {os.cpu_count()} cores; S3 = {'moto (in-process)' if not a.bucket else bucket}",
             "", f"{'stage':<22}{'seconds':>10}", "-" * 32, f"{'generate data (numpy)':<22}{gen_s:>10.1f}"]
    lines += [f"{k:<22}{v:>10.1f}" for k, v in st.items()]
    lines += ["-" * 32, f"{'job total (wall)':<22}{job_s:>10.1f}   target < 240 s: {'OK' if job_s < 240 else 'MISSED'}",
              f"{'data + job':<22}{job_s + gen_s:>10.1f}", ""]
    lines += [f"rows: {res['validation']['rows_in']:,} in, {res['validation']['rows_out']:,} valid "
              f"({res['validation']['rows_dropped']:,} dropped & counted); train {res['rows']['train']:,} / "
              f"holdout {res['rows']['holdout']:,} (time split)", ""]
    lines += [f"{'holdout metric':<16}{'Spark GBT':>12}{'sklearn HGB':>14}{'ratio':>9}", "-" * 51]
    for k in ("rmse", "mae", "r2", "mape"):
        lines.append(f"{k:<16}{sm[k]:>12.4f}{hgb[k]:>14.4f}{sm[k] / hgb[k]:>9.3f}")
    lines.append(f"{'fit seconds':<16}{st['fit']:>12.1f}{hgb['fit_seconds']:>14.1f}{st['fit'] / hgb['fit_seconds']:>9.1f}")
    ok = sm["rmse"] <= 1.10 * hgb["rmse"]
    lines += ["", f"RMSE within 10% of HistGradientBoosting: {'OK' if ok else 'MISSED'} "
                  f"({(sm['rmse'] / hgb['rmse'] - 1) * 100:+.1f}%)",
              f"GBT params: {meta['hyper_params']}; HGB: defaults (early stopping at {hgb['iterations']} iterations)",
              f"parity: max |onnx - spark| = {res['parity']['max_abs_diff']:.2e} on {res['parity']['rows']:,} holdout rows"
              f" (gate 1e-3, target 1e-4: {'OK' if res['parity']['max_abs_diff'] <= 1e-4 else 'MISSED'})",
              f"onnxruntime single row: p50 {res['latency']['single_row_p50_ms'] * 1000:.0f} us, "
              f"p99 {res['latency']['single_row_p99_ms'] * 1000:.0f} us; {res['latency']['batch_rows']:,}-row batch "
              f"{res['latency']['batch_ms']:.1f} ms",
              f"artifact: s3://{bucket}/{res['prefix']} (version {res['version']})"]
    print("\n".join(lines))
    (base / "table.txt").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
