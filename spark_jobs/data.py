"""TLC Parquet -> validated feature DataFrame in Spark.

Spark does the I/O, the schema check and the (global) duplicate removal; the per-row derivation
and validation is :func:`driftstack.data.derive.derive`, run on each partition by ``mapInPandas``
— the same code the pyarrow reader and the traffic generator use, so the engines cannot disagree.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from driftstack.contract import features as F
from driftstack.data.derive import DUPLICATE, ValidationReport
from driftstack.data.schema import TARGET_COLUMN, check_schema, required_columns

REJECT = "_reject"
PICKUP_OUT = "pickup_datetime"


def _kind(dtype) -> str:
    from pyspark.sql import types as T

    if isinstance(dtype, (T.TimestampType, T.TimestampNTZType)):
        return "timestamp"
    if isinstance(dtype, (T.ByteType, T.ShortType, T.IntegerType, T.LongType)):
        return "integer"
    if isinstance(dtype, (T.FloatType, T.DoubleType, T.DecimalType)):
        return "float"
    if isinstance(dtype, T.StringType):
        return "string"
    return "other"


def stage_input(uri: str) -> str:
    """``s3://bucket/prefix`` is downloaded to a local temp dir (the embedded Spark has no S3A
    connector offline); ``s3a://`` and local paths are handed to Spark unchanged."""
    if not uri.startswith("s3://"):
        return uri
    import boto3

    bucket, _, prefix = uri[5:].partition("/")
    s3 = boto3.client("s3")
    dest = Path(tempfile.mkdtemp(prefix="driftstack-input-"))
    n = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".parquet"):
                target = dest / obj["Key"].replace("/", "__")
                s3.download_file(bucket, obj["Key"], str(target))
                n += 1
    if n == 0:
        raise FileNotFoundError(f"no .parquet objects under {uri}")
    return str(dest)


def output_schema(require_target: bool = True) -> str:
    cols = [f"`{f.name}` {'double' if f.kind == 'numeric' else 'string'}" for f in F.FEATURES]
    if require_target:
        cols.append(f"`{TARGET_COLUMN}` double")
    cols += [f"`{PICKUP_OUT}` timestamp", f"`{REJECT}` string"]
    return ", ".join(cols)


def _derive_partitions(require_target: bool):
    def run(batches):
        import pandas as pd

        from driftstack.data.derive import derive

        for pdf in batches:
            b = derive({c: pdf[c].to_numpy() for c in pdf.columns}, require_target=require_target)
            out = {name: b.features[name] for name in F.FEATURE_NAMES}
            if require_target:
                out[TARGET_COLUMN] = b.target
            out[PICKUP_OUT] = b.pickup
            out[REJECT] = b.reasons
            yield pd.DataFrame(out)
    return run


def read_features(spark, path: str, *, require_target: bool = True):
    """(valid feature DataFrame (cached), ValidationReport) for TLC Parquet at ``path``."""
    from pyspark.sql import functions as Fn

    df = spark.read.parquet(stage_input(path))
    check_schema({f.name: _kind(f.dataType) for f in df.schema.fields}, require_target=require_target,
                 source=path)
    cols = [c.name for c in required_columns(require_target)]
    raw = df.select(*[Fn.col(c) if c.startswith("tpep_") else Fn.col(c).cast("double").alias(c) for c in cols])
    rows_in = raw.count()
    deduped = raw.dropDuplicates(cols)
    derived = deduped.mapInPandas(_derive_partitions(require_target), output_schema(require_target)).cache()
    counts = {r[REJECT]: r["count"] for r in derived.groupBy(REJECT).count().collect()}
    kept = counts.pop(None, 0)
    dups = rows_in - sum(counts.values()) - kept
    if dups:
        counts[DUPLICATE] = dups
    report = ValidationReport(rows_in, kept, dict(sorted(counts.items())))
    return derived.filter(Fn.col(REJECT).isNull()).drop(REJECT), report
