"""Read TLC yellow-taxi Parquet files (real or generated) without Spark: pyarrow + the one
derivation in :mod:`driftstack.data.derive`. Used by tests, the benchmark's scikit-learn baseline
and the traffic generator; the Spark job runs the same derivation inside ``mapInPandas``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from driftstack.data.derive import DerivedBatch, derive
from driftstack.data.schema import RAW_NAMES, check_schema, kind_of_arrow, required_columns


def parquet_files(path: str | os.PathLike) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*.parquet") if f.is_file())
        if not files:
            raise FileNotFoundError(f"no .parquet files under {p}")
        return files
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    return [p]


def read_raw(path: str | os.PathLike, *, require_target: bool = True) -> dict[str, np.ndarray]:
    """The required raw TLC columns of one file or a directory of files, schema-checked."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for f in parquet_files(path):
        schema = pq.read_schema(f)
        check_schema({n: kind_of_arrow(schema.field(n).type) for n in schema.names},
                     require_target=require_target, source=str(f))
        cols = [c.name for c in required_columns(require_target)]
        t = pq.read_table(f, columns=cols)
        # Normalise across TLC vintages (int32 vs int64 ids, timestamp[ns] vs [us]).
        tables.append(t.cast(pa.schema([(c, _norm_type(t.schema.field(c).type)) for c in cols])))
    table = pa.concat_tables(tables)
    return {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}


def _norm_type(t):
    import pyarrow as pa
    import pyarrow.types as pt

    return pa.timestamp("us") if pt.is_timestamp(t) else pa.float64()


def duplicate_mask(cols: dict[str, np.ndarray]) -> np.ndarray:
    """True for rows repeating an earlier row on all raw columns we use (first one is kept)."""
    import pandas as pd

    frame = pd.DataFrame({k: cols[k] for k in RAW_NAMES if k in cols})
    return frame.duplicated(keep="first").to_numpy()


def read_tlc(path: str | os.PathLike, *, require_target: bool = True) -> DerivedBatch:
    """Features for every row of the file(s), with reasons; ``.kept()`` / ``.report()`` from there."""
    cols = read_raw(path, require_target=require_target)
    return derive(cols, require_target=require_target, duplicate=duplicate_mask(cols))
