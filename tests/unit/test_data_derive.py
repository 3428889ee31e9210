"""The one feature derivation and its validation (no Spark)."""

import numpy as np
import pytest

from driftstack.contract import features as F
from driftstack.data.derive import ValidationReport, derive
from driftstack.data.schema import SchemaError, check_schema


def raw(**over):
    cols = {
        "tpep_pickup_datetime": np.array(["2023-01-02T08:15:00", "2023-01-07T23:59:59", "2023-03-15T17:00:00"],
                                         dtype="datetime64[us]"),
        "tpep_dropoff_datetime": np.array(["2023-01-02T08:30:30", "2023-01-08T00:10:59", "2023-03-15T17:45:00"],
                                          dtype="datetime64[us]"),
        "passenger_count": np.array([1.0, 2.0, 6.0]),
        "trip_distance": np.array([2.5, 1.2, 17.8]),
        "RatecodeID": np.array([1.0, 1.0, 2.0]),
        "PULocationID": np.array([236, 1, 132], dtype=np.int32),
        "DOLocationID": np.array([161, 3, 230], dtype=np.int64),
        "payment_type": np.array([1, 2, 1], dtype=np.int64),
        "fare_amount": np.array([14.2, 9.3, 70.0]),
    }
    cols.update(over)
    return cols


def test_features_hand_computed():
    b = derive(raw())
    assert list(b.features) == list(F.FEATURE_NAMES)
    f = b.features
    assert b.valid.all()
    assert f["pickup_hour"].tolist() == [8, 23, 17]
    assert f["pickup_day_of_week"].tolist() == [1, 6, 3]  # Monday, Saturday, Wednesday
    assert f["pickup_month"].tolist() == [1, 1, 3]
    assert f["is_weekend"].tolist() == [0, 1, 0]
    assert f["is_rush_hour"].tolist() == [1, 0, 1]
    np.testing.assert_allclose(f["trip_duration_minutes"], [15.5, 11.0, 45.0], rtol=1e-6)
    assert f["RatecodeID"].tolist() == ["1", "1", "2"]
    assert f["payment_type"].tolist() == ["1", "2", "1"]
    assert f["pickup_borough"].tolist() == ["Manhattan", "EWR", "Queens"]
    assert f["dropoff_borough"].tolist() == ["Manhattan", "Bronx", "Manhattan"]
    assert b.target.tolist() == [14.2, 9.3, 70.0]


def test_numeric_features_are_float32_exact():
    b = derive(raw())
    for name in F.NUMERIC_NAMES:
        v = b.features[name]
        assert np.array_equal(v, v.astype(np.float32).astype(np.float64)), name


@pytest.mark.parametrize("column,value,reason", [
    ("passenger_count", 0.0, "passenger_count:out_of_range"),
    ("passenger_count", np.nan, "passenger_count:null"),
    ("passenger_count", 1.5, "passenger_count:out_of_range"),
    ("trip_distance", 0.0, "trip_distance:out_of_range"),
    ("trip_distance", 250.0, "trip_distance:out_of_range"),
    ("RatecodeID", 99.0, "RatecodeID:unknown_category"),
    ("RatecodeID", np.nan, "RatecodeID:null"),
    ("payment_type", 0, "payment_type:unknown_category"),
    ("PULocationID", 264, "pickup_borough:unknown_zone"),
    ("DOLocationID", 265, "dropoff_borough:unknown_zone"),
    ("DOLocationID", 9999, "dropoff_borough:unknown_zone"),
    ("fare_amount", -12.0, "fare_amount:out_of_range"),
    ("fare_amount", 500.0, "fare_amount:out_of_range"),
])
def test_out_of_contract_rows_are_rejected_with_a_reason(column, value, reason):
    cols = raw()
    arr = cols[column].astype(np.float64 if np.isnan(value) else cols[column].dtype)
    arr[1] = value
    cols[column] = arr
    b = derive(cols)
    assert b.reasons.tolist() == [None, reason, None]
    rep = b.report()
    assert (rep.rows_in, rep.rows_out, rep.dropped) == (3, 2, {reason: 1})
    assert len(b.kept()) == 2


def test_duration_bounds_and_null_timestamp():
    cols = raw()
    cols["tpep_dropoff_datetime"] = cols["tpep_dropoff_datetime"].copy()
    cols["tpep_dropoff_datetime"][0] = cols["tpep_pickup_datetime"][0] + np.timedelta64(30, "s")
    cols["tpep_dropoff_datetime"][1] = np.datetime64("NaT")
    cols["tpep_dropoff_datetime"][2] = cols["tpep_pickup_datetime"][2] + np.timedelta64(181, "m")
    assert derive(cols).reasons.tolist() == ["trip_duration_minutes:out_of_range", "tpep_dropoff_datetime:null",
                                             "trip_duration_minutes:out_of_range"]


def test_duplicates_and_first_reason_wins():
    cols = raw(passenger_count=np.array([0.0, 1.0, 1.0]), fare_amount=np.array([-1.0, 9.3, 70.0]))
    b = derive(cols, duplicate=np.array([False, False, True]))
    assert b.reasons.tolist() == ["passenger_count:out_of_range", None, "duplicate"]
    assert b.report().dropped == {"duplicate": 1, "passenger_count:out_of_range": 1}


def test_scoring_without_target():
    cols = raw()
    del cols["fare_amount"]
    b = derive(cols, require_target=False)
    assert b.target is None and b.valid.all()


def test_report_merge_and_summary():
    a = ValidationReport(10, 8, {"x": 2})
    b = ValidationReport(5, 4, {"x": 1, "y": 0})
    m = a.add(b)
    assert (m.rows_in, m.rows_out, m.dropped["x"]) == (15, 12, 3)
    assert "15 rows in, 12 kept" in m.summary()


def test_schema_errors_name_the_column():
    good = {"tpep_pickup_datetime": "timestamp", "tpep_dropoff_datetime": "timestamp",
            "passenger_count": "float", "trip_distance": "float", "RatecodeID": "float",
            "PULocationID": "integer", "DOLocationID": "integer", "payment_type": "integer",
            "fare_amount": "float"}
    check_schema(good)
    missing = {k: v for k, v in good.items() if k != "trip_distance"}
    with pytest.raises(SchemaError, match="'trip_distance': missing") as exc:
        check_schema(missing)
    assert exc.value.column == "trip_distance"
    with pytest.raises(SchemaError, match="'tpep_pickup_datetime': has type string"):
        check_schema({**good, "tpep_pickup_datetime": "string"})
    renamed = {("ratecodeid" if k == "RatecodeID" else k): v for k, v in good.items()}
    with pytest.raises(SchemaError, match="case-sensitive"):
        check_schema(renamed)
    no_target = {k: v for k, v in good.items() if k != "fare_amount"}
    check_schema(no_target, require_target=False)
    with pytest.raises(SchemaError, match="fare_amount"):
        check_schema(no_target)
