"""Spark reads TLC Parquet through the same derivation as the pyarrow reader: same rows, same
features, same validation report."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from driftstack.contract import features as F
from driftstack.data.generate import write_month
from driftstack.data.schema import SchemaError
from driftstack.data.tlc import read_tlc
from spark_jobs.data import read_features

pytestmark = pytest.mark.spark


def test_spark_and_pyarrow_paths_agree(spark, tmp_path):
    path = write_month(tmp_path, "2023-03", rows=4000, seed=9, dirty=0.05)
    df, report = read_features(spark, str(path))
    local = read_tlc(path)
    assert report.to_dict() == local.report().to_dict()
    assert report.rows_dropped > 100
    got = df.toPandas().sort_values(["pickup_datetime", "trip_distance", "fare_amount"]).reset_index(drop=True)
    k = local.kept()
    order = np.lexsort((k.target, k.features["trip_distance"], k.pickup))
    assert len(got) == len(order)
    for name in F.FEATURE_NAMES:
        expected = k.features[name][order]
        if F.BY_NAME[name].kind == "numeric":
            np.testing.assert_array_equal(got[name].to_numpy(), expected, err_msg=name)
        else:
            assert got[name].tolist() == expected.tolist(), name
    np.testing.assert_array_equal(got["fare_amount"].to_numpy(), k.target[order])


def test_wrong_schema_fails_naming_the_column(spark, tmp_path):
    path = write_month(tmp_path, "2023-01", rows=50, seed=1)
    t = pq.read_table(path)
    pq.write_table(t.drop(["PULocationID"]), tmp_path / "bad.parquet")
    with pytest.raises(SchemaError, match="'PULocationID': missing"):
        read_features(spark, str(tmp_path / "bad.parquet"))
    idx = t.schema.get_field_index("tpep_dropoff_datetime")
    pq.write_table(t.set_column(idx, "tpep_dropoff_datetime", t.column(idx).cast("string")), tmp_path / "bad2.parquet")
    with pytest.raises(SchemaError, match="'tpep_dropoff_datetime': has type string"):
        read_features(spark, str(tmp_path / "bad2.parquet"))
