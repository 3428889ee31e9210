"""The pyarrow TLC reader on Parquet fixtures written here with the real column names and dtypes."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from driftstack.data.schema import SchemaError
from driftstack.data.tlc import read_tlc


def tlc_table(ts_unit="us", id_type=pa.int64(), drop=None, **override):
    """A small file shaped like yellow_tripdata_2023-01.parquet (19 columns, real dtypes)."""
    pick = np.array(["2023-01-01T00:32:10", "2023-01-01T00:55:08", "2023-01-01T00:25:04", "2023-01-01T00:03:48",
                     "2023-01-01T00:10:29", "2023-01-01T00:10:29"], dtype=f"datetime64[{ts_unit}]")
    drop_ = np.array(["2023-01-01T00:40:36", "2023-01-01T01:01:27", "2023-01-01T00:37:49", "2023-01-01T00:13:25",
                      "2023-01-01T00:21:19", "2023-01-01T00:21:19"], dtype=f"datetime64[{ts_unit}]")
    cols = {
        "VendorID": pa.array([2, 2, 2, 1, 2, 2], pa.int64()),
        "tpep_pickup_datetime": pa.array(pick), "tpep_dropoff_datetime": pa.array(drop_),
        "passenger_count": pa.array([1.0, 1.0, None, 0.0, 1.0, 1.0], pa.float64()),
        "trip_distance": pa.array([0.97, 1.10, 2.51, 1.90, 1.43, 1.43], pa.float64()),
        "RatecodeID": pa.array([1.0, 1.0, None, 1.0, 1.0, 1.0], pa.float64()),
        "store_and_fwd_flag": pa.array(["N", "N", None, "N", "N", "N"]),
        "PULocationID": pa.array([161, 43, 48, 138, 107, 107], id_type),
        "DOLocationID": pa.array([141, 237, 238, 7, 79, 79], id_type),
        "payment_type": pa.array([2, 1, 0, 1, 1, 1], pa.int64()),
        "fare_amount": pa.array([9.3, 7.9, 14.9, 12.1, 11.4, 11.4], pa.float64()),
        "extra": pa.array([1.0] * 6), "mta_tax": pa.array([0.5] * 6), "tip_amount": pa.array([0.0] * 6),
        "tolls_amount": pa.array([0.0] * 6), "improvement_surcharge": pa.array([1.0] * 6),
        "total_amount": pa.array([14.3] * 6), "congestion_surcharge": pa.array([2.5] * 6),
        "airport_fee": pa.array([0.0, 0.0, 0.0, 1.25, 0.0, 0.0]),
    }
    cols.update(override)
    if drop:
        cols.pop(drop)
    return pa.table(cols)


@pytest.mark.parametrize("ts_unit,id_type", [("us", pa.int64()), ("ns", pa.int32())])
def test_reads_real_layout(tmp_path, ts_unit, id_type):
    path = tmp_path / "yellow_tripdata_2023-01.parquet"
    pq.write_table(tlc_table(ts_unit, id_type), path)
    b = read_tlc(path)
    rep = b.report()
    # row 3: flex row (null passenger_count, RatecodeID; payment 0); row 4: zero passengers;
    # row 6: duplicate of row 5
    assert rep.dropped == {"duplicate": 1, "passenger_count:null": 1, "passenger_count:out_of_range": 1}
    assert (rep.rows_in, rep.rows_out) == (6, 3)
    k = b.kept()
    assert k.features["pickup_borough"].tolist() == ["Manhattan", "Manhattan", "Manhattan"]
    assert k.features["dropoff_borough"].tolist() == ["Manhattan", "Manhattan", "Manhattan"]
    assert k.features["pickup_hour"].tolist() == [0, 0, 0]
    assert k.features["pickup_day_of_week"].tolist() == [7, 7, 7]  # 2023-01-01 was a Sunday
    assert k.features["is_weekend"].tolist() == [1, 1, 1]
    np.testing.assert_allclose(k.features["trip_duration_minutes"], [8 + 26 / 60, 6 + 19 / 60, 10 + 50 / 60],
                               rtol=1e-6)
    assert k.target.tolist() == [9.3, 7.9, 11.4]
    assert k.pickup.dtype == np.dtype("datetime64[us]")


def test_directory_of_months(tmp_path):
    pq.write_table(tlc_table(), tmp_path / "yellow_tripdata_2023-01.parquet")
    pq.write_table(tlc_table("ns", pa.int32()), tmp_path / "yellow_tripdata_2023-02.parquet")
    b = read_tlc(tmp_path)
    assert len(b) == 12
    assert b.report().dropped["duplicate"] == 7  # the second file repeats the first


def test_wrong_schema_names_the_column(tmp_path):
    pq.write_table(tlc_table(drop="trip_distance"), tmp_path / "a.parquet")
    with pytest.raises(SchemaError, match="'trip_distance': missing"):
        read_tlc(tmp_path / "a.parquet")
    pq.write_table(tlc_table(fare_amount=pa.array(["9.3"] * 6)), tmp_path / "b.parquet")
    with pytest.raises(SchemaError, match="'fare_amount': has type string"):
        read_tlc(tmp_path / "b.parquet")


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_tlc(tmp_path / "nope.parquet")
    with pytest.raises(FileNotFoundError, match="no .parquet"):
        read_tlc(tmp_path)
