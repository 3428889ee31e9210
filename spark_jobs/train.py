"""Train the taxi-fare GBT in Spark, export it to ONNX, prove parity, publish.

    spark-submit spark_jobs/train.py --data PATH --bucket BUCKET [...]
    python -m spark_jobs.train --generate-rows 200000 --bucket BUCKET [...]

Stages (each timed and printed to stderr): read+validate -> time-based split -> fit -> holdout
metrics -> ONNX export (fixed converter) -> parity gate (>= 10,000 holdout rows, Spark vs
onnxruntime, max abs diff <= tolerance else exit 3 and nothing is published) -> latency ->
reference profile -> publish (S3 + MLflow [+ champion pointer]).
The last stdout line is the result as JSON (also written to --result-json), so a caller running
this as a subprocess gets the artifact location, sha256 and metrics. Python callers use
:func:`main` (argv list -> exit code) or :func:`run` (TrainConfig -> result dict).
"""

from __future__ import annotations

if __package__ in (None, ""):  # spark-submit spark_jobs/train.py: make the repo importable
    import os as _os
    import sys as _sys

    _sys.path.insert(0, _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))

import argparse
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from driftstack.contract import features as F
from driftstack.data.schema import SchemaError
from spark_jobs.pipeline import PREDICTION, GBTParams
from spark_jobs.publish import ROOT, MlflowSettings, PublishRequest
from spark_jobs.verify import DEFAULT_PARITY_ROWS, DEFAULT_TOLERANCE, ParityError

EXIT_BAD_INPUT, EXIT_PARITY = 2, 3
DEFAULT_MODEL_NAME = "driftstack-fare"


@dataclass
class TrainConfig:
    data: str | None = None
    generate_rows: int = 0
    months: tuple[str, ...] = ("2023-01",)
    drift: str = "none"
    seed: int | None = None
    model_name: str = DEFAULT_MODEL_NAME
    bucket: str | None = None
    publish: bool = True
    create_bucket: bool = False
    output_dir: str | None = None
    holdout_fraction: float = 0.2
    params: GBTParams = field(default_factory=GBTParams)
    parity_rows: int = DEFAULT_PARITY_ROWS
    tolerance: float = DEFAULT_TOLERANCE
    latency_runs: int = 2000
    profile_rows: int = 100_000
    profile_bins: int = 10
    master: str | None = None
    mlflow: MlflowSettings = field(default_factory=MlflowSettings)
    models_table: str | None = None
    result_json: str | None = None


class Progress:
    def __init__(self):
        self.t0 = time.perf_counter()
        self.stages: dict[str, float] = {}

    def log(self, msg: str) -> None:
        print(f"[train {time.perf_counter() - self.t0:7.1f}s] {msg}", file=sys.stderr, flush=True)

    def stage(self, name: str):
        prog = self

        class _Stage:
            def __enter__(self):
                prog.log(f"{name} ...")
                self.start = time.perf_counter()

            def __exit__(self, exc_type, *_):
                dt = time.perf_counter() - self.start
                prog.stages[name] = round(dt, 3)
                if exc_type is None:
                    prog.log(f"{name} done in {dt:.1f}s")
        return _Stage()


def _versions() -> dict:
    import mlflow
    import onnx
    import onnxmltools
    import onnxruntime
    import pyspark

    return {"spark": pyspark.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "onnxmltools": onnxmltools.__version__, "mlflow": mlflow.__version__,
            "python": sys.version.split()[0]}


def generate_data(cfg: TrainConfig, prog: Progress) -> str:
    from driftstack.data.generate import write_month

    out = Path(cfg.output_dir or ROOT / ".state" / "data") / "generated"
    rows = max(1, cfg.generate_rows // len(cfg.months))
    for m in cfg.months:
        p = write_month(out, m, rows=rows, drift=cfg.drift, seed=cfg.seed)
        prog.log(f"generated {rows} trips for {m} (drift={cfg.drift}) -> {p}")
    return str(out)


def time_split(df, holdout_fraction: float):
    """Everything picked up before the (1 - fraction) time quantile trains; the rest is holdout.
    Returns (train, holdout, cutoff, {"train"|"holdout": {"rows", "from", "to"}}) — one pass for
    the counts and windows."""
    from pyspark.sql import functions as Fn

    ts = Fn.col("pickup_datetime").cast("double")
    cutoff = df.select(ts.alias("t")).approxQuantile("t", [1.0 - holdout_fraction], 1e-4)[0]
    side = Fn.when(ts < cutoff, "train").otherwise("holdout")
    stats = {r["side"]: {"rows": r["rows"], "from": r["a"].isoformat(), "to": r["b"].isoformat()}
             for r in df.groupBy(side.alias("side")).agg(Fn.count(Fn.lit(1)).alias("rows"),
                                                           Fn.min("pickup_datetime").alias("a"),
                                                           Fn.max("pickup_datetime").alias("b")).collect()}
    for k in ("train", "holdout"):
        stats.setdefault(k, {"rows": 0, "from": None, "to": None})
    return df.filter(ts < cutoff), df.filter(ts >= cutoff), datetime.fromtimestamp(cutoff, timezone.utc), stats


def run(cfg: TrainConfig) -> dict:
    """The whole job; returns the result document. Raises ParityError / SchemaError on failure."""
    from driftstack.domain import metrics
    from driftstack.domain.profile import build_profile
    from spark_jobs import verify
    from spark_jobs.data import read_features
    from spark_jobs.onnx_export import export_onnx
    from spark_jobs.pipeline import build_pipeline
    from spark_jobs.publish import publish, sha256_hex
    from spark_jobs.session import get_spark

    prog = Progress()
    started = datetime.now(timezone.utc)
    bucket = cfg.bucket or os.environ.get("DRIFTSTACK_BUCKET")
    if cfg.publish and not bucket:
        raise ValueError("no bucket: pass --bucket or set DRIFTSTACK_BUCKET (or --no-publish)")
    data = cfg.data
    if not data:
        if cfg.generate_rows <= 0:
            raise ValueError("no data: pass --data PATH or --generate-rows N")
        with prog.stage("generate"):
            data = generate_data(cfg, prog)

    with prog.stage("spark_start"):
        spark = get_spark("driftstack-train", cfg.master)
        prog.log(f"Spark {spark.version} master={spark.sparkContext.master}")
    with prog.stage("read_validate"):
        df, report = read_features(spark, data)
        prog.log(f"validation: {report.summary()}")
        if report.rows_out == 0:
            raise ValueError(f"no valid rows in {data}: {report.summary()}")
    with prog.stage("split"):
        train, holdout, cutoff, split = time_split(df, cfg.holdout_fraction)
        n_train, n_holdout = split["train"]["rows"], split["holdout"]["rows"]
        prog.log(f"time split at {cutoff.isoformat()}: {n_train} train / {n_holdout} holdout rows")
        if n_train == 0 or n_holdout == 0:
            raise ValueError("time split left an empty side; need data spanning more than one instant")
        window = {k: {"from": v["from"], "to": v["to"]} for k, v in split.items()}
    with prog.stage("fit"):
        prog.log(f"GBT params {cfg.params.to_dict()}")
        model = build_pipeline(cfg.params).fit(train)
    with prog.stage("evaluate"):
        cols = list(F.FEATURE_NAMES) + [F.TARGET.name, PREDICTION]
        hold = model.transform(holdout).select(*cols).toPandas()
        m = metrics.regression_metrics(hold[F.TARGET.name].to_numpy(), hold[PREDICTION].to_numpy())
        prog.log("holdout " + " ".join(f"{k}={v:.4f}" for k, v in m.items() if k != "n"))
    with prog.stage("export_onnx"):
        onnx_model = export_onnx(model, spark, name=cfg.model_name)
        model_bytes = onnx_model.SerializeToString()
        prog.log(f"ONNX model {len(model_bytes) / 1e6:.2f} MB sha256={sha256_hex(model_bytes)[:16]}")
    with prog.stage("parity"):
        rows = hold if len(hold) <= cfg.parity_rows else hold.sample(n=cfg.parity_rows, random_state=0)
        sess = verify.session(model_bytes)
        par = verify.parity(sess, {c: rows[c].to_numpy() for c in F.FEATURE_NAMES}, rows[PREDICTION].to_numpy(),
                            cfg.tolerance)
        prog.log(f"parity OK: max |onnx - spark| = {par['max_abs_diff']:.3g} on {par['rows']} rows "
                 f"(tolerance {cfg.tolerance})")
    with prog.stage("latency"):
        lat = verify.latency(sess, {c: hold[c].to_numpy() for c in F.FEATURE_NAMES}, runs=cfg.latency_runs)
        prog.log(f"onnxruntime single row p50={lat['single_row_p50_ms']:.3f} ms "
                 f"p99={lat['single_row_p99_ms']:.3f} ms")
    with prog.stage("profile"):
        frac = min(1.0, cfg.profile_rows / n_train)
        ref = model.transform(train.sample(fraction=frac, seed=7) if frac < 1 else train) \
            .select(*cols).toPandas()
        profile = build_profile({c: ref[c].to_numpy() for c in F.FEATURE_NAMES}, ref[PREDICTION].to_numpy(),
                                bins=cfg.profile_bins)
        profile.update({"rows": len(ref), "source": "training set sample", "data_window": window["train"]})
        train_rmse = metrics.rmse(ref[F.TARGET.name].to_numpy(), ref[PREDICTION].to_numpy())
    df.unpersist()  # read_features cached it; Spark is done with the data now

    metadata = {
        "model_name": cfg.model_name, "sha256": sha256_hex(model_bytes), "contract_hash": F.contract_hash(), "feature_names": list(F.FEATURE_NAMES), "target": F.TARGET.name,
        "onnx": {"inputs": [{"name": i.name, "type": "float" if f.kind == "numeric" else "string", "shape": [None, 1]}
                            for i, f in zip(onnx_model.graph.input, F.FEATURES)],
                 "output": onnx_model.graph.output[0].name, "opset": {o.domain or "ai.onnx": o.version
                                                                      for o in onnx_model.opset_import}},
        "metrics": {"holdout": m, "train_sample_rmse": train_rmse},
        "parity": par, "latency": lat, "data": {"source": data, "window": window,
                                                "split_cutoff": cutoff.isoformat(),
                                                "holdout_fraction": cfg.holdout_fraction,
                                                "rows": {"train": n_train, "holdout": n_holdout},
                                                "validation": report.to_dict()},
        "hyper_params": cfg.params.to_dict(), "versions": _versions(),
        "trained_at": started.isoformat(), "training_seconds": prog.stages.get("fit"),
        "stage_seconds": dict(prog.stages),
    }
    out_dir = Path(cfg.output_dir or ROOT / ".state" / "runs" / started.strftime("%Y%m%dT%H%M%S"))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.onnx").write_bytes(model_bytes)
    (out_dir / "profile.json").write_text(json.dumps(profile))

    result = {"status": "ok", "model_name": cfg.model_name, "sha256": sha256_hex(model_bytes),
              "local_dir": str(out_dir), "metrics": m, "parity": par, "latency": lat,
              "rows": metadata["data"]["rows"], "validation": report.to_dict()}
    if cfg.publish:
        with prog.stage("publish"):
            flat = {f"holdout_{k}": v for k, v in m.items()}
            flat.update({"parity_max_abs_diff": par["max_abs_diff"],
                         "latency_p50_ms": lat["single_row_p50_ms"], "latency_p99_ms": lat["single_row_p99_ms"]})
            pub = publish(PublishRequest(cfg.model_name, model_bytes, metadata, profile, bucket,
                                         params=cfg.params.to_dict(), metrics=flat, mlflow=cfg.mlflow,
                                         create_bucket=cfg.create_bucket, models_table=cfg.models_table),
                          onnx_model=onnx_model)
            metadata = pub.pop("metadata")
            result.update(pub)
            prog.log(f"published s3://{bucket}/{pub['prefix']} version={pub['version']}")
    metadata["stage_seconds"] = dict(prog.stages)
    (out_dir / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str))
    result["stage_seconds"] = dict(prog.stages)
    result["total_seconds"] = round(time.perf_counter() - prog.t0, 3)
    return result


def parse_args(argv=None) -> TrainConfig:
    p = argparse.ArgumentParser(prog="spark_jobs.train", description=__doc__.split("\n\n")[0])
    d = GBTParams()
    p.add_argument("--data", help="TLC Parquet file/dir (local, s3:// downloaded first, or s3a://)")
    p.add_argument("--generate-rows", type=int, default=0, help="no --data: generate this many trips first")
    p.add_argument("--months", default="2023-01", help="months to generate, comma separated (YYYY-MM)")
    p.add_argument("--drift", default="none", help="generator drift preset: none|covariate|concept|both")
    p.add_argument("--seed", type=int, default=None, help="generator seed (default: derived from month)")
    p.add_argument("--model-name", default=DEFAULT_MODEL_NAME)
    p.add_argument("--bucket", help="artifact bucket (default $DRIFTSTACK_BUCKET)")
    p.add_argument("--no-publish", action="store_true", help="skip S3 and MLflow; keep artifacts locally")
    p.add_argument("--create-bucket", action="store_true", help="create the bucket if it does not exist")
    p.add_argument("--output-dir", help="local artifact dir (default .state/runs/<timestamp>)")
    p.add_argument("--holdout-fraction", type=float, default=0.2)
    p.add_argument("--max-iter", type=int, default=d.max_iter)
    p.add_argument("--max-depth", type=int, default=d.max_depth)
    p.add_argument("--step-size", type=float, default=d.step_size)
    p.add_argument("--subsampling-rate", type=float, default=d.subsampling_rate)
    p.add_argument("--max-bins", type=int, default=d.max_bins)
    p.add_argument("--min-instances-per-node", type=int, default=d.min_instances_per_node)
    p.add_argument("--gbt-seed", type=int, default=d.seed)
    p.add_argument("--parity-rows", type=int, default=DEFAULT_PARITY_ROWS)
    p.add_argument("--parity-tolerance", type=float, default=DEFAULT_TOLERANCE)
    p.add_argument("--latency-runs", type=int, default=2000)
    p.add_argument("--profile-rows", type=int, default=100_000)
    p.add_argument("--profile-bins", type=int, default=10)
    p.add_argument("--master", help="Spark master (default $DRIFTSTACK_SPARK_MASTER, spark-submit's, local[*])")
    p.add_argument("--no-mlflow", action="store_true")
    p.add_argument("--mlflow-tracking-uri", help="default $MLFLOW_TRACKING_URI or sqlite in .state/mlflow")
    p.add_argument("--mlflow-experiment", default="driftstack")
    p.add_argument("--mlflow-artifacts", help="artifact root for a new experiment, e.g. s3://bucket/mlflow")
    p.add_argument("--set-champion-pointer", action="store_true",
                   help="write the DynamoDB champion pointer if none exists (needs --models-table)")
    p.add_argument("--models-table", help="DynamoDB table holding the champion pointer")
    p.add_argument("--result-json", help="also write the result document here")
    a = p.parse_args(argv)
    if a.set_champion_pointer and not a.models_table:
        p.error("--set-champion-pointer needs --models-table")
    if not 0.0 < a.holdout_fraction < 1.0:
        p.error("--holdout-fraction must be in (0, 1)")
    return TrainConfig(
        data=a.data, generate_rows=a.generate_rows, months=tuple(m.strip() for m in a.months.split(",") if m.strip()),
        drift=a.drift, seed=a.seed, model_name=a.model_name, bucket=a.bucket, publish=not a.no_publish,
        create_bucket=a.create_bucket, output_dir=a.output_dir, holdout_fraction=a.holdout_fraction,
        params=GBTParams(a.max_iter, a.max_depth, a.step_size, a.subsampling_rate, a.max_bins,
                         a.min_instances_per_node, a.gbt_seed),
        parity_rows=a.parity_rows, tolerance=a.parity_tolerance, latency_runs=a.latency_runs,
        profile_rows=a.profile_rows, profile_bins=a.profile_bins, master=a.master,
        mlflow=MlflowSettings(enabled=not a.no_mlflow, tracking_uri=a.mlflow_tracking_uri,
                              experiment=a.mlflow_experiment, artifact_location=a.mlflow_artifacts),
        models_table=a.models_table if a.set_champion_pointer else None, result_json=a.result_json)


def _emit(result: dict, path: str | None) -> None:
    line = json.dumps(result, default=str)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(line)
    print(line, flush=True)


def main(argv=None) -> int:
    cfg = parse_args(argv)
    try:
        result = run(cfg)
    except ParityError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        _emit({"status": "parity_failed", "error": str(exc)}, cfg.result_json)
        return EXIT_PARITY
    except (SchemaError, FileNotFoundError, ValueError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        _emit({"status": "bad_input", "error": str(exc)}, cfg.result_json)
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - report, then non-zero exit
        traceback.print_exc()
        _emit({"status": "failed", "error": f"{type(exc).__name__}: {exc}"}, cfg.result_json)
        return 1
    _emit(result, cfg.result_json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
