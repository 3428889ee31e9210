"""Score a Parquet dataset with a published ONNX artifact, in Spark (``mapInPandas``).

    python -m spark_jobs.score_batch --model s3://BUCKET/models/NAME/SHA16/ --input PATH --output PATH
    spark-submit spark_jobs/score_batch.py --model .state/runs/X/model.onnx --input ... --output ...

--model is an artifact prefix (model.onnx + metadata.json; the sha256 is verified), a model.onnx
URI/path (verified against a metadata.json next to it when there is one). --input holds either
the 12 contract feature columns or raw TLC trips (derived and validated like training data).
The same artifact serves online (Lambda) and batch: one onnxruntime session per Python worker.
"""

from __future__ import annotations

if __package__ in (None, ""):  # spark-submit spark_jobs/score_batch.py
    import os as _os
    import sys as _sys

    _sys.path.insert(0, _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from driftstack.contract import features as F
from driftstack.adapters import registry
from driftstack.data.schema import SchemaError

_SESSIONS: dict[str, object] = {}  # per Python worker: sha256 -> onnxruntime session


class ArtifactError(RuntimeError):
    pass


def _read(uri: str) -> bytes | None:
    if uri.startswith("s3://"):
        from botocore.exceptions import ClientError

        from spark_jobs.publish import s3_client

        bucket, _, key = uri[5:].partition("/")
        try:
            return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise
    p = Path(uri)
    return p.read_bytes() if p.is_file() else None


def load_artifact(model: str) -> tuple[bytes, dict | None]:
    """(model bytes, metadata or None); raises ArtifactError when missing or sha256 mismatches."""
    if model.endswith("/") or (not model.endswith(".onnx") and not model.startswith("s3://")
                               and Path(model).is_dir()):
        base = model.rstrip("/") + "/"
        model_uri = base + registry.MODEL_FILE
    else:
        model_uri, base = model, model.rsplit("/", 1)[0] + "/" if "/" in model else ""
    data = _read(model_uri)
    if data is None:
        raise ArtifactError(f"no model at {model_uri}")
    raw_meta = _read(base + registry.METADATA_FILE) if base else None
    meta = json.loads(raw_meta) if raw_meta else None
    sha = hashlib.sha256(data).hexdigest()
    if meta and meta.get("sha256") and meta["sha256"] != sha:
        raise ArtifactError(f"sha256 mismatch for {model_uri}: file {sha}, metadata {meta['sha256']}")
    if meta and meta.get("contract_hash") and meta["contract_hash"] != F.contract_hash():
        raise ArtifactError(f"{model_uri} was trained for another feature contract "
                            f"({meta['contract_hash'][:12]} != {F.contract_hash()[:12]})")
    return data, meta


def _scorer(model_bc, sha: str):
    def score(batches):
        import numpy as np

        from spark_jobs.verify import onnx_feed, session

        sess = _SESSIONS.get(sha)
        if sess is None:
            sess = _SESSIONS[sha] = session(model_bc.value)
        for pdf in batches:
            if len(pdf):
                out = sess.run(None, onnx_feed({c: pdf[c].to_numpy() for c in F.FEATURE_NAMES}))[0]
                pdf["prediction"] = np.asarray(out, dtype=np.float64).ravel()
            else:
                pdf["prediction"] = np.empty(0)
            yield pdf
    return score


def score(spark, model: str, input_path: str, output_path: str) -> dict:
    from pyspark.sql import types as T

    from spark_jobs.data import read_features, stage_input

    t0 = time.perf_counter()
    data, meta = load_artifact(model)
    sha = hashlib.sha256(data).hexdigest()
    df = spark.read.parquet(stage_input(input_path))
    report = None
    if not set(F.FEATURE_NAMES) <= set(df.columns):  # raw TLC trips: the training derivation
        df, report = read_features(spark, input_path, require_target=F.TARGET.name in df.columns)
    schema = T.StructType(df.schema.fields + [T.StructField("prediction", T.DoubleType())])
    scored = df.mapInPandas(_scorer(spark.sparkContext.broadcast(data), sha), schema)
    scored.write.mode("overwrite").parquet(output_path)
    rows = spark.read.parquet(output_path).count()
    return {"status": "ok", "rows": rows, "output": output_path, "sha256": sha,
            "model_version": (meta or {}).get("version"), "validation": report.to_dict() if report else None,
            "seconds": round(time.perf_counter() - t0, 3)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="spark_jobs.score_batch", description="Score Parquet with an ONNX artifact")
    p.add_argument("--model", required=True, help="artifact prefix (…/<sha16>/) or model.onnx path/URI")
    p.add_argument("--input", required=True, help="Parquet with feature columns or raw TLC trips")
    p.add_argument("--output", required=True, help="output Parquet directory (overwritten)")
    p.add_argument("--master", help="Spark master (default $DRIFTSTACK_SPARK_MASTER / spark-submit / local[*])")
    a = p.parse_args(argv)
    from spark_jobs.session import get_spark

    try:
        result = score(get_spark("driftstack-score-batch", a.master), a.model, a.input, a.output)
    except (ArtifactError, SchemaError, FileNotFoundError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        print(json.dumps({"status": "failed", "error": str(exc)}))
        return 2
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
