"""Retrain-and-compare: the training backend's job (Spark), run by the retraining state machine.

    python -m spark_jobs.retrain run --spec s3://BUCKET/retrain/<run_id>/spec.json
    spark-submit spark_jobs/retrain.py run --spec s3://…            (EMR Serverless: entry point)
    python -m spark_jobs.retrain set-alias --model-name M --version V [--alias champion]

``run`` stages: labelled traffic (read from the batched archive and validated by Spark: spark_jobs.labelled) sorted by request
time, the freshest ``holdout_fraction`` kept aside as the holdout NEITHER model trained on → training
set = a sample of the champion's training data + the older labelled traffic (+ optional extra TLC
files), validated → fit the challenger (spark_jobs.train's pipeline) → ONNX export + parity gate →
reference profile → publish (S3 + MLflow, NOT as champion) → evaluate champion and challenger on the
same holdout with onnxruntime (RMSE/MAE/R²/MAPE, interleaved single-row latency) → result JSON.

Status (``running`` → ``succeeded``/``failed`` with the error) goes to the spec's ``status_key`` so
the poll Lambda reads the outcome the same way whatever backend ran the job.
"""

from __future__ import annotations

if __package__ in (None, ""):  # spark-submit spark_jobs/retrain.py
    import os as _os
    import sys as _sys

    _sys.path.insert(0, _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))

import argparse
import io
import json
import os
import sys
import time
import traceback
from datetime import datetime, timezone

import numpy as np

from driftstack.contract import features as F
from driftstack.adapters import registry
from driftstack.adapters.training_backend import FAILED, RUNNING, SUCCEEDED, write_status
from driftstack.contract.documents import MalformedDocument, RetrainSpec, TrainingResult, dump, load

DEFAULTS = {"holdout_fraction": 0.3, "reference_rows": 100_000, "min_train_rows": 300, "latency_runs": 400,
            "latency_rounds": 3, "parity_rows": 10_000, "parity_tolerance": 1e-3}


def split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"expected an s3:// URI, got {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def _s3():
    from spark_jobs.publish import s3_client

    return s3_client()


def _get(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def read_labelled(spark, s3, spec: dict):
    """The window's labelled traffic, read from the batched archive by Spark (spark_jobs.labelled)
    -> (pandas frame sorted by request time, categoricals as strings; report)."""
    from spark_jobs.labelled import assemble

    arch = spec["archive"]
    df, report = assemble(spark, s3, arch, min_rows=int(arch.get("min_rows", 1)))
    for n in F.CATEGORICAL_NAMES:
        df[n] = df[n].astype(object)
    # As in driftstack.data.derive: numerics rounded to float32 before Spark learns thresholds on
    # them, so the float32 ONNX inputs decide every split the same way (the parity gate needs it).
    for n in F.NUMERIC_NAMES + (F.TARGET.name,):
        df[n] = df[n].to_numpy(dtype=np.float64).astype(np.float32).astype(np.float64) if n != F.TARGET.name \
            else df[n].to_numpy(dtype=np.float64)
    return df.reset_index(drop=True), report


def read_reference(source: str, rows: int, seed: int = 7):
    """A sample of the champion's training data: raw TLC Parquet (through the one derivation,
    driftstack.data.tlc) or a feature-level training set written by an earlier retraining run;
    ``s3://`` sources are downloaded first."""
    import pandas as pd
    import pyarrow.parquet as pq

    from driftstack.data.tlc import read_tlc
    from spark_jobs.data import stage_input

    local = stage_input(source) if source.startswith("s3://") and not source.endswith(".parquet") else source
    if source.startswith("s3://") and source.endswith(".parquet"):
        bucket, key = split_uri(source)
        local = os.path.join(_tmpdir(), os.path.basename(key))
        _s3().download_file(bucket, key, local)
    names = set(pq.read_schema(local).names) if os.path.isfile(local) else set()
    rng = np.random.default_rng(seed)
    if set(F.FEATURE_NAMES) | {F.TARGET.name} <= names:   # a feature-level training set
        df = pd.read_parquet(local)[list(F.FEATURE_NAMES) + [F.TARGET.name]]
        df = df.iloc[rng.choice(len(df), size=min(rows, len(df)), replace=False)] if len(df) else df
        df = df.astype({n: object for n in F.CATEGORICAL_NAMES})
        return df.reset_index(drop=True), {"source": source, "kind": "features", "rows_used": int(len(df))}
    batch = read_tlc(local).kept()
    n = len(batch)
    idx = rng.choice(n, size=min(rows, n), replace=False) if n else np.empty(0, int)
    df = pd.DataFrame({name: batch.features[name][idx] for name in F.FEATURE_NAMES})
    df[F.TARGET.name] = batch.target[idx]
    return df, {"source": source, "kind": "tlc", "rows_available": n, "rows_used": int(len(idx))}


def _tmpdir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="driftstack-retrain-")


def columns(df) -> dict[str, np.ndarray]:
    return {n: df[n].to_numpy() for n in F.FEATURE_NAMES}


def latency_pair(champion, challenger, cols, runs: int, rounds: int) -> tuple[dict, dict]:
    """Single-row latency of both sessions, measured in alternating rounds (same host, same moment),
    median of the rounds' p50/p99."""
    from spark_jobs import verify

    res = {"champion": [], "challenger": []}
    for _ in range(rounds):
        for name, sess in (("champion", champion), ("challenger", challenger)):
            res[name].append(verify.latency(sess, cols, runs=runs))
    out = []
    for name in ("champion", "challenger"):
        r = res[name]
        out.append({"single_row_p50_ms": float(np.median([x["single_row_p50_ms"] for x in r])),
                    "single_row_p99_ms": float(np.median([x["single_row_p99_ms"] for x in r])),
                    "runs": runs * rounds, "rounds": rounds})
    return out[0], out[1]


def run(spec: dict, s3=None) -> dict:
    """The whole job (see module doc). Returns the result document (also written to S3)."""
    import pandas as pd

    from driftstack.domain import metrics
    from driftstack.domain.profile import build_profile
    from spark_jobs import verify
    from spark_jobs.onnx_export import export_onnx
    from spark_jobs.pipeline import PREDICTION, GBTParams, build_pipeline
    from spark_jobs.publish import MlflowSettings, PublishRequest, publish, sha256_hex
    from spark_jobs.session import get_spark
    from spark_jobs.train import Progress, _versions

    s3 = s3 or _s3()
    prog = Progress()
    opts = {**DEFAULTS, **(spec.get("data") or {})}
    train_opts = dict(spec.get("training") or {})
    bucket, run_id = spec["bucket"], spec["run_id"]
    champ = spec["champion"]

    with prog.stage("spark_start"):
        spark = get_spark("driftstack-retrain", train_opts.get("master"))
    with prog.stage("labelled"):
        labelled, labelled_report = read_labelled(spark, s3, spec)
        n_hold = max(1, int(round(len(labelled) * float(opts["holdout_fraction"]))))
        if len(labelled) - n_hold < 1:
            raise ValueError(f"{len(labelled)} labelled rows cannot be split into training and holdout")
        holdout, lab_train = labelled.iloc[-n_hold:], labelled.iloc[:-n_hold]
        prog.log(f"{len(labelled)} labelled rows ({labelled_report['objects']} archive objects): "
                 f"{len(lab_train)} train / {n_hold} fresh holdout (from {holdout['ts'].iloc[0]})")

    champ_meta = json.loads(_get(s3, champ["bucket"], champ["prefix"] + registry.METADATA_FILE))
    with prog.stage("reference"):
        parts, sources = [lab_train.drop(columns=["ts"])], []
        ref_src = opts.get("reference_source") or (champ_meta.get("data") or {}).get("source")
        if ref_src and int(opts["reference_rows"]) > 0:
            try:
                ref, info = read_reference(ref_src, int(opts["reference_rows"]))
                parts.append(ref)
                sources.append(info)
            except Exception as exc:  # noqa: BLE001 - unreadable reference: train on the labelled traffic
                sources.append({"source": ref_src, "error": f"{type(exc).__name__}: {exc}"})
                prog.log(f"reference data {ref_src} not used: {exc}")
        for extra in opts.get("extra_sources") or []:
            ref, info = read_reference(extra, int(opts.get("extra_rows", 10**9)))
            parts.append(ref)
            sources.append(info)
        train_pdf = pd.concat(parts, ignore_index=True)
        validation = {"rows_in": int(len(train_pdf)), "rows_out": int(len(train_pdf)),
                      "labelled": labelled_report, "sources": sources,
                      "min_train_rows": int(opts["min_train_rows"])}
        validation["passed"] = bool(len(train_pdf) >= int(opts["min_train_rows"]))
        if not validation["passed"]:
            raise ValueError(f"training set has {len(train_pdf)} rows < min_train_rows {opts['min_train_rows']}")
        prog.log(f"training set {len(train_pdf)} rows ({len(lab_train)} labelled traffic + reference)")
        s3.put_object(Bucket=bucket, Key=f"retrain/{run_id}/training_set.parquet",
                      Body=_parquet(train_pdf), ContentType="application/octet-stream")

    params = GBTParams(**{k: v for k, v in train_opts.items() if k in GBTParams.__dataclass_fields__})
    with prog.stage("fit"):
        sdf = spark.createDataFrame(train_pdf[list(F.FEATURE_NAMES) + [F.TARGET.name]])
        model = build_pipeline(params).fit(sdf)
    with prog.stage("export_onnx"):
        onnx_model = export_onnx(model, spark, name=spec.get("model_name") or champ["model_name"])
        model_bytes = onnx_model.SerializeToString()
    with prog.stage("parity"):
        both = pd.concat([train_pdf, holdout.drop(columns=["ts"])], ignore_index=True)
        rows = both if len(both) <= int(opts["parity_rows"]) else both.sample(n=int(opts["parity_rows"]), random_state=0)
        scored = model.transform(spark.createDataFrame(rows[list(F.FEATURE_NAMES) + [F.TARGET.name]])) \
            .select(*F.FEATURE_NAMES, PREDICTION).toPandas()
        chal_sess = verify.session(model_bytes)
        par = verify.parity(chal_sess, columns(scored), scored[PREDICTION].to_numpy(), float(opts["parity_tolerance"]))
        prog.log(f"parity OK: max |onnx - spark| = {par['max_abs_diff']:.3g} on {par['rows']} rows")
    with prog.stage("profile"):
        frac = min(1.0, int(opts.get("profile_rows", 200_000)) / max(1, len(train_pdf)))
        ref_scored = model.transform(sdf.sample(fraction=frac, seed=7) if frac < 1 else sdf) \
            .select(*F.FEATURE_NAMES, PREDICTION).toPandas()
        profile = build_profile(columns(ref_scored), ref_scored[PREDICTION].to_numpy())
        profile.update({"rows": len(ref_scored), "source": "retraining set", "run_id": run_id})
    with prog.stage("evaluate"):
        champ_bytes = _get(s3, champ["bucket"], champ["prefix"] + registry.MODEL_FILE)
        if sha256_hex(champ_bytes) != champ["sha256"]:
            raise ValueError(f"champion artifact s3://{champ['bucket']}/{champ['prefix']} does not match its sha256")
        champ_sess = verify.session(champ_bytes)
        hcols = columns(holdout)
        y = holdout[F.TARGET.name].to_numpy()
        m_champ = metrics.regression_metrics(y, verify.predict(champ_sess, hcols))
        m_chal = metrics.regression_metrics(y, verify.predict(chal_sess, hcols))
        lat_champ, lat_chal = latency_pair(champ_sess, chal_sess, hcols, int(opts["latency_runs"]),
                                           int(opts["latency_rounds"]))
        prog.log(f"holdout ({len(holdout)} rows) RMSE champion {m_champ['rmse']:.4f} vs challenger "
                 f"{m_chal['rmse']:.4f}; p50 {lat_champ['single_row_p50_ms']:.4f} vs "
                 f"{lat_chal['single_row_p50_ms']:.4f} ms")
    window = {"from": str(holdout["ts"].iloc[0]), "to": str(holdout["ts"].iloc[-1])}
    metadata = {
        "model_name": spec.get("model_name") or champ["model_name"], "contract_hash": F.contract_hash(),
        "feature_names": list(F.FEATURE_NAMES), "target": F.TARGET.name, "role": "challenger",
        "metrics": {"holdout": m_chal, "champion_on_same_holdout": m_champ},
        "parity": par, "latency": lat_chal, "hyper_params": params.to_dict(), "versions": _versions(),
        "data": {"source": f"s3://{bucket}/retrain/{run_id}/training_set.parquet", "run_id": run_id,
                 "rows": {"train": int(len(train_pdf)), "holdout": int(len(holdout))}, "holdout_window": window,
                 "validation": validation, "reference_source": ref_src},
        "trained_at": datetime.now(timezone.utc).isoformat(), "parent_version": champ["version"],
    }
    with prog.stage("publish"):
        ml = spec.get("mlflow") or {}
        mls = MlflowSettings(enabled=ml.get("enabled", True), tracking_uri=ml.get("tracking_uri"),
                             experiment=ml.get("experiment", "driftstack"))
        flat = {f"holdout_{k}": v for k, v in m_chal.items()}
        flat.update({f"champion_holdout_{k}": v for k, v in m_champ.items()})
        pub = publish(PublishRequest(metadata["model_name"], model_bytes, metadata, profile, bucket,
                                     params=params.to_dict(), metrics=flat, mlflow=mls), onnx_model=onnx_model)
        pub.pop("metadata", None)
        prog.log(f"challenger published s3://{bucket}/{pub['prefix']} version={pub['version']}")
    return {
        "run_id": run_id, "holdout": {"rows": int(len(holdout)), "window": window},
        "champion": {"version": champ["version"], "sha256": champ["sha256"], "metrics": m_champ, "latency": lat_champ},
        "challenger": {"model_name": pub["model_name"], "version": pub["version"], "sha256": pub["sha256"],
                       "bucket": pub["bucket"], "prefix": pub["prefix"], "metrics": m_chal, "latency": lat_chal,
                       "parity": par, "validation": validation, "mlflow": pub.get("mlflow")},
        "training_rows": int(len(train_pdf)), "stage_seconds": dict(prog.stages),
        "total_seconds": round(time.perf_counter() - prog.t0, 3),
    }


def _parquet(df) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df.astype({n: str for n in F.CATEGORICAL_NAMES})), buf)
    return buf.getvalue()


def run_spec(spec_uri: str) -> int:
    """Load the spec, run, write status/result; exit code 0 on success, 1 on failure."""
    s3 = _s3()
    bucket, key = split_uri(spec_uri)
    raw = json.loads(_get(s3, bucket, key))
    try:
        spec = dump(load(RetrainSpec, raw, spec_uri))
    except MalformedDocument as exc:  # report it where the poll step looks, if the spec says where
        print(exc, file=sys.stderr, flush=True)
        if isinstance(raw, dict) and isinstance(raw.get("status_key"), str):
            write_status(s3, bucket, raw["status_key"], FAILED, pid=os.getpid(), error=str(exc)[:1500])
        return 1
    status_key, result_key = spec["status_key"], spec["result_key"]
    started = time.time()
    write_status(s3, bucket, status_key, RUNNING, pid=os.getpid(), started_at=started)
    try:
        result = dump(TrainingResult.model_validate(run(spec, s3)))   # what the evaluate step will validate
    except BaseException as exc:  # noqa: BLE001 - every failure must be reported, then re-raised as exit 1
        tb = traceback.format_exc()
        print(tb, file=sys.stderr, flush=True)
        write_status(s3, bucket, status_key, FAILED, pid=os.getpid(), started_at=started,
                     error=f"{type(exc).__name__}: {str(exc)[:1500]}", traceback=tb[-4000:])
        return 1
    s3.put_object(Bucket=bucket, Key=result_key, Body=json.dumps(result, indent=2).encode(),
                  ContentType="application/json")
    write_status(s3, bucket, status_key, SUCCEEDED, pid=os.getpid(), started_at=started, result_key=result_key,
                 seconds=round(time.time() - started, 1))
    print(json.dumps({"state": SUCCEEDED, "result_key": result_key}), flush=True)
    return 0


def set_alias(model_name: str, version: str, alias: str = registry.CHAMPION, tracking_uri: str | None = None) -> dict:
    """Point an MLflow registered-model alias at a version (the registry the training job used)."""
    from mlflow import MlflowClient

    from spark_jobs.publish import MlflowSettings

    uri = MlflowSettings(tracking_uri=tracking_uri).resolved_uri()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias(model_name, alias, str(version))
    got = client.get_model_version_by_alias(model_name, alias)
    return {"model_name": model_name, "alias": alias, "version": str(got.version), "tracking_uri": uri}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="spark_jobs.retrain", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a retraining spec")
    r.add_argument("--spec", required=True, help="s3://bucket/key of the spec JSON")
    a = sub.add_parser("set-alias", help="set an MLflow alias")
    a.add_argument("--model-name", required=True)
    a.add_argument("--version", required=True)
    a.add_argument("--alias", default=registry.CHAMPION)
    a.add_argument("--tracking-uri")
    args = p.parse_args(argv)
    if args.cmd == "run":
        return run_spec(args.spec)
    print(json.dumps(set_alias(args.model_name, args.version, args.alias, args.tracking_uri)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
