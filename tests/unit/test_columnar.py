"""driftstack.domain.columnar: what it accepts the per-row models accept, with the same encoding; what
the models refuse it refuses (and leaves to them to explain)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from driftstack.contract import features as fc
from driftstack.contract.api import example_features, predict_request_type
from driftstack.domain import columnar, encoding
from driftstack.tools.traffic import make_trips

REQUEST = TypeAdapter(predict_request_type(1000))
VALID = make_trips(40, seed=7).features


def model_rows(rows: list) -> list[dict] | None:
    """The rows as the per-row models validate them (None: refused)."""
    try:
        body = REQUEST.validate_python({"instances": rows})
    except ValidationError:
        return None
    return [r.__dict__ for r in body.instances]


def assert_same_feeds(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for name, expected in want.items():
        assert got[name].shape == expected.shape and got[name].dtype == expected.dtype, name
        assert got[name].tolist() == expected.tolist(), name


@pytest.mark.parametrize("n", [1, 2, 7, 8, 40])
def test_valid_rows_are_encoded_like_the_per_row_encoder(n):
    assert_same_feeds(columnar.encode_if_valid(VALID[:n]), encoding.encode(VALID[:n]))


def _with(i: int, **changes) -> list[dict]:
    rows = [dict(r) for r in VALID[:20]]
    rows[i].update(changes)
    return rows


def _without(i: int, name: str) -> list[dict]:
    rows = [dict(r) for r in VALID[:20]]
    del rows[i][name]
    return rows


BAD = {
    "missing field": _without(3, "pickup_hour"),
    "extra field": _with(5, tip=1.0),
    "missing + extra (12 keys)": [*_without(4, "payment_type")[:4], {**_without(4, "payment_type")[4], "tip": 1},
                                  *VALID[5:20]],
    "string for a number": _with(0, trip_distance="3.2"),
    "fractional int": _with(7, passenger_count=2.5),
    "boolean int": _with(9, is_weekend=True),
    "boolean float": _with(9, trip_distance=False),
    "boolean category": _with(1, RatecodeID=True),
    "null": _with(2, pickup_month=None),
    "NaN": _with(11, trip_duration_minutes=math.nan),
    "inf": _with(11, trip_duration_minutes=math.inf),
    "below range": _with(6, trip_distance=0.01),
    "above range": _with(6, pickup_hour=24),
    "huge int": _with(6, passenger_count=2 ** 70),
    "unknown category": _with(8, pickup_borough="Hoboken"),
    "int category as string": _with(8, RatecodeID="2"),
    "int category between the categories": _with(8, payment_type=0),
    "int category above": _with(8, RatecodeID=7),
    "list value": _with(8, dropoff_borough=["Queens"]),
    "row not an object": [*VALID[:5], ["Queens"] * 12, *VALID[6:20]],
    "several bad rows, several errors each": _with(0, trip_distance=-1, pickup_hour=99) + [
        dict(VALID[1], RatecodeID="x", is_rush_hour=2.5)],
}


@pytest.mark.parametrize("name", BAD)
def test_invalid_rows_are_left_to_the_models(name):
    rows = BAD[name]
    assert model_rows(rows) is None, "the models accept it: not a bad row"
    assert columnar.encode_if_valid(rows) is None
    assert columnar.encode_if_valid(rows[:5]) is None or model_rows(rows[:5]) is not None  # the small-batch path


def test_integral_floats_go_through_the_models_which_keep_ints():
    rows = _with(3, passenger_count=2.0, RatecodeID=1.0)
    assert columnar.encode_if_valid(rows) is None  # normalized by the models (2.0 -> 2) instead
    assert model_rows(rows)[3]["passenger_count"] == 2 and model_rows(rows)[3]["RatecodeID"] == 1


_ODD = st.one_of(st.booleans(), st.none(), st.text(max_size=3), st.floats(allow_nan=True, allow_infinity=True),
                 st.integers(-3, 30), st.integers(min_value=2 ** 62, max_value=2 ** 80),
                 st.sampled_from([2.0, 1.0, 0.5, "Queens", "2", [], {}]))


@st.composite
def mutated_rows(draw):
    n = draw(st.sampled_from([1, 3, 8, 12]))
    rows = [dict(r) for r in VALID[:n]]
    for _ in range(draw(st.integers(0, 3))):
        row = rows[draw(st.integers(0, n - 1))]
        action = draw(st.sampled_from(["set", "drop", "add"]))
        name = draw(st.sampled_from(fc.FEATURE_NAMES))
        if action == "set":
            row[name] = draw(_ODD)
        elif action == "drop":
            row.pop(name, None)
        else:
            row["extra_" + name] = draw(_ODD)
    return rows


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=mutated_rows())
def test_accepted_means_the_models_accept_with_the_same_encoding(rows):
    feeds = columnar.encode_if_valid(rows)
    validated = model_rows(rows)
    if feeds is not None:
        assert validated is not None
        assert_same_feeds(feeds, encoding.encode(validated))


def test_the_example_is_valid_and_empty_or_non_list_bodies_are_not():
    assert columnar.encode_if_valid([example_features()]) is not None
    assert columnar.encode_if_valid([]) is None
    assert columnar.encode_if_valid({"instances": VALID}) is None
    assert columnar.encode_if_valid([None]) is None
    assert np.isfinite(columnar.encode_if_valid(VALID)["trip_distance"]).all()
