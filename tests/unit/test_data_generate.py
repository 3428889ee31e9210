"""The generator: real TLC layout, calibration facts (DESIGN §1), reproducibility, drift knobs."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from driftstack.data import generate as G
from driftstack.data.tlc import read_tlc
from driftstack.domain.profile import categorical_counts, numeric_counts, numeric_edges, proportions, psi

ROWS = 60_000


@pytest.fixture(scope="module")
def jan(tmp_path_factory):
    path = G.write_month(tmp_path_factory.mktemp("gen"), "2023-01", rows=ROWS, seed=11)
    return path, read_tlc(path)


def share(values, value):
    return float(np.mean(np.asarray(values) == value))


def test_writes_real_tlc_layout(jan):
    path, _ = jan
    assert path.name == "yellow_tripdata_2023-01.parquet"
    schema = pq.read_schema(path)
    types = {n: str(schema.field(n).type) for n in schema.names}
    assert types["tpep_pickup_datetime"] == "timestamp[us]"
    assert types["passenger_count"] == types["RatecodeID"] == "double"
    assert types["PULocationID"] == types["payment_type"] == "int64"
    assert {"VendorID", "airport_fee", "congestion_surcharge", "total_amount"} <= set(types)


def test_calibration(jan):
    _, b = jan
    rep = b.report()
    assert 0.005 < rep.rows_dropped / rep.rows_in < 0.05  # some real-world dirt, all counted
    assert rep.dropped.get("duplicate", 0) > 0
    k = b.kept()
    f = k.features
    assert 1.5 <= np.median(f["trip_distance"]) <= 2.1            # median ~1.8 mi
    assert np.quantile(f["trip_distance"], 0.99) > 15             # long tail (airports)
    assert 0.92 <= share(f["RatecodeID"], "1") <= 0.96            # ~94% standard rate
    assert 0.75 <= share(f["payment_type"], "1") <= 0.81          # ~78% card
    assert 0.16 <= share(f["payment_type"], "2") <= 0.22          # ~19% cash
    assert 0.70 <= share(f["passenger_count"], 1.0) <= 0.77       # ~73% single passenger
    assert set(np.unique(f["pickup_month"])) == {1.0}
    jfk = f["RatecodeID"] == "2"
    assert np.all(k.target[jfk] == G.FareRules().jfk_flat)        # JFK <-> Manhattan flat $70
    assert set(f["pickup_borough"][jfk]) | set(f["dropoff_borough"][jfk]) == {"Queens", "Manhattan"}
    newark = f["RatecodeID"] == "3"
    assert np.all(f["dropoff_borough"][newark] == "EWR") and np.all(k.target[newark] >= 23.0)
    std = f["RatecodeID"] == "1"
    units = (k.target[std] - 3.0) / 0.70                          # $3.00 + $0.70 per unit
    np.testing.assert_allclose(units, np.round(units), atol=1e-6)
    per_mile = np.median(k.target[std & (f["trip_distance"] > 5)] / f["trip_distance"][std & (f["trip_distance"] > 5)])
    assert 3.0 < per_mile < 6.0                                   # ~$3.50/mile plus slow time
    speed = f["trip_distance"] / f["trip_duration_minutes"] * 60
    manhattan = std & (f["pickup_borough"] == "Manhattan") & (f["dropoff_borough"] == "Manhattan")
    rush = np.median(speed[manhattan & (f["is_rush_hour"] == 1)])
    night = np.median(speed[manhattan & (f["pickup_hour"] <= 4)])
    assert night > 1.3 * rush                                     # rush hour is slower
    hours = np.bincount(f["pickup_hour"].astype(int), minlength=24)
    assert hours[18] > 3 * hours[4]                               # evening peak vs small hours


def test_reproducible_and_seeded():
    a = G.generate_trips(2000, "2023-02", seed=5)
    b = G.generate_trips(2000, "2023-02", seed=5)
    c = G.generate_trips(2000, "2023-02", seed=6)
    assert all(np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f") for k in a)
    assert not np.array_equal(a["trip_distance"], c["trip_distance"])


def test_month_knob():
    t = G.generate_trips(3000, "2024-07", seed=1)["tpep_pickup_datetime"]
    months = t.astype("datetime64[M]")
    assert np.all(months == np.datetime64("2024-07"))


def test_covariate_drift_moves_what_it_claims(jan):
    _, base = jan
    drifted = read_tlc(G.write_month(G.Path(jan[0]).parent / "cov", "2023-01", rows=ROWS, seed=11,
                                     drift="covariate")).kept().features
    ref = base.kept().features
    assert np.median(drifted["trip_distance"]) > 1.25 * np.median(ref["trip_distance"])   # longer trips
    airport = lambda f: np.mean((f["RatecodeID"] == "2") | (f["dropoff_borough"] == "EWR"))  # noqa: E731
    assert airport(drifted) > 1.8 * airport(ref)                                          # more airport trips
    edges = numeric_edges(ref["pickup_hour"])
    hour_psi = psi(proportions(numeric_counts(ref["pickup_hour"], edges)),
                   proportions(numeric_counts(drifted["pickup_hour"], edges)))
    assert hour_psi > 0.1                                                                 # hours shifted
    cats = ["1", "2", "3", "4"]
    pay_psi = psi(proportions(categorical_counts(ref["payment_type"], cats)),
                  proportions(categorical_counts(drifted["payment_type"], cats)))
    assert pay_psi < 0.01                                                                 # untouched


def test_concept_drift_changes_fares_not_features():
    a = G.generate_trips(20_000, "2023-01", seed=3, dirty=0.0)
    b = G.generate_trips(20_000, "2023-01", seed=3, dirty=0.0, drift="concept")
    for col in ("trip_distance", "tpep_pickup_datetime", "tpep_dropoff_datetime", "PULocationID", "RatecodeID"):
        assert np.array_equal(a[col], b[col]), col
    std = a["RatecodeID"] == 1
    assert np.median(b["fare_amount"][std] / a["fare_amount"][std]) > 1.15
    assert np.all(b["fare_amount"][a["RatecodeID"] == 2] == G.PRESETS["concept"].fares.jfk_flat)


def test_bad_knobs():
    with pytest.raises(ValueError, match="YYYY-MM"):
        G.generate_trips(10, "January")
    with pytest.raises(ValueError, match="1..12"):
        G.generate_trips(10, "2023-13")
    with pytest.raises(ValueError, match="unknown drift preset"):
        G.generate_trips(10, drift="sideways")


def test_feature_records_are_request_ready():
    from driftstack.contract import features as F

    recs = G.feature_records(500, "2023-05", seed=2, drift="covariate")
    assert 450 < len(recs) <= 500
    for r in recs[:50]:
        assert list(r)[:12] == list(F.FEATURE_NAMES) and "fare_amount" in r
        for f in F.FEATURES:
            if f.kind == "categorical":
                assert r[f.name] in f.categories
            else:
                assert f.low <= r[f.name] <= f.high
                assert isinstance(r[f.name], int if f.integer else float)
        assert r["pickup_month"] == 5
