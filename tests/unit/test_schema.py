"""The request models and the ONNX encoding follow the feature contract, strictly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from driftstack.domain import encoding
from driftstack.contract import features as fc
from driftstack.contract.api import (FeedbackRequest, SinglePredictRequest, TripFeatures, example_features,
                               predict_request_type)

NUMERIC = [f for f in fc.NUMERIC_FEATURES]
CATEGORICAL = [f for f in fc.CATEGORICAL_FEATURES]


def errors(data) -> dict[tuple, str]:
    with pytest.raises(ValidationError) as info:
        TripFeatures.model_validate(data)
    return {e["loc"]: e["type"] for e in info.value.errors()}


def test_example_is_valid_and_complete():
    row = TripFeatures.model_validate(example_features())
    assert tuple(row.__dict__) == fc.FEATURE_NAMES


@pytest.mark.parametrize("name", fc.FEATURE_NAMES)
def test_every_field_is_required(name):
    row = example_features()
    del row[name]
    assert errors(row) == {(name,): "missing"}


@pytest.mark.parametrize("feat", NUMERIC, ids=lambda f: f.name)
def test_numeric_ranges_come_from_the_contract(feat):
    for edge in (feat.low, feat.high):
        TripFeatures.model_validate(dict(example_features(), **{feat.name: edge}))
    step = 1 if feat.integer else 1e-6
    assert errors(dict(example_features(), **{feat.name: feat.low - step})) == {(feat.name,): "greater_than_equal"}
    assert errors(dict(example_features(), **{feat.name: feat.high + step})) == {(feat.name,): "less_than_equal"}


@pytest.mark.parametrize("feat", CATEGORICAL, ids=lambda f: f.name)
def test_only_known_categories(feat):
    for value in feat.categories:
        TripFeatures.model_validate(dict(example_features(), **{feat.name: value}))
    unknown = 99 if isinstance(feat.categories[0], int) else "Atlantis"
    assert errors(dict(example_features(), **{feat.name: unknown})) == {(feat.name,): "literal_error"}


def test_int_category_sent_as_string_is_rejected():
    assert errors(dict(example_features(), RatecodeID="2")) == {("RatecodeID",): "literal_error"}


@pytest.mark.parametrize("name, value, kind", [
    ("trip_distance", "3.2", "float_type"),
    ("passenger_count", 2.5, "int_type"),
    ("passenger_count", "2", "int_type"),
    ("RatecodeID", True, "int_type"),     # True == 1 in Python: a Literal alone would take it
    ("RatecodeID", 2.5, "literal_error"),
    ("is_weekend", True, "int_type"),
    ("trip_duration_minutes", math.nan, "finite_number"),
    ("trip_duration_minutes", math.inf, "finite_number"),
    ("pickup_borough", 1, "literal_error"),
])
def test_no_type_coercion(name, value, kind):
    assert errors(dict(example_features(), **{name: value})) == {(name,): kind}


@pytest.mark.parametrize("name, value", [("passenger_count", 2.0), ("RatecodeID", 2.0)])
def test_integral_number_is_an_integer_as_in_the_openapi_schema(name, value):
    # JSON Schema's "integer" (and an enum of integers) takes 2.0; the model keeps the int
    assert getattr(TripFeatures.model_validate(dict(example_features(), **{name: value})), name) == 2
    assert type(getattr(TripFeatures.model_validate(dict(example_features(), **{name: value})), name)) is int


def test_int_accepted_for_float_feature():
    TripFeatures.model_validate(dict(example_features(), trip_distance=3))


def test_extra_fields_rejected():
    assert errors(dict(example_features(), tip_amount=1.0)) == {("tip_amount",): "extra_forbidden"}


def test_request_union_and_configurable_batch_limit():
    adapter = TypeAdapter(predict_request_type(3))
    single = adapter.validate_python({"features": example_features()})
    assert isinstance(single, SinglePredictRequest)
    batch = adapter.validate_python({"instances": [example_features()] * 3})
    assert len(batch.instances) == 3
    with pytest.raises(ValidationError) as info:
        adapter.validate_python({"instances": [example_features()] * 4})
    assert [(e["loc"], e["type"]) for e in info.value.errors()] == [(("batch", "instances"), "too_long")]
    with pytest.raises(ValidationError):
        adapter.validate_python({"features": example_features(), "instances": []})
    with pytest.raises(ValueError):
        predict_request_type(0)


def test_json_schema_derived_from_contract():
    schema = TripFeatures.model_json_schema()
    assert list(schema["properties"]) == list(fc.FEATURE_NAMES)
    assert set(schema["required"]) == set(fc.FEATURE_NAMES)
    for f in NUMERIC:
        prop = schema["properties"][f.name]
        assert (prop["minimum"], prop["maximum"]) == (f.low, f.high)
        assert prop["type"] == ("integer" if f.integer else "number")
    for f in CATEGORICAL:
        assert schema["properties"][f.name]["enum"] == list(f.categories)
    batch = TypeAdapter(predict_request_type(7)).json_schema()
    assert batch["$defs"]["BatchPredictRequest"]["properties"]["instances"]["maxItems"] == 7


def test_feedback_request_range_from_target():
    FeedbackRequest.model_validate({"request_id": "abc", "actual_fare": fc.TARGET.low})
    with pytest.raises(ValidationError):
        FeedbackRequest.model_validate({"request_id": "abc", "actual_fare": fc.TARGET.high + 1})
    with pytest.raises(ValidationError):
        FeedbackRequest.model_validate({"request_id": "", "actual_fare": 10.0})


# ------------------------------------------------------------------ encoding

def test_encode_single_row_shapes_and_types():
    row = dict(example_features(), RatecodeID=2, dropoff_borough="Staten Island")
    feeds = encoding.encode([row])
    assert list(feeds) == list(fc.NUMERIC_NAMES) + list(fc.CATEGORICAL_NAMES)
    for name in fc.NUMERIC_NAMES:
        assert feeds[name].dtype == np.float32 and feeds[name].shape == (1, 1)
        assert feeds[name][0, 0] == np.float32(row[name])
    for name in fc.CATEGORICAL_NAMES:
        assert feeds[name].dtype == object and feeds[name].shape == (1, 1)
    assert feeds["RatecodeID"][0, 0] == "2"
    assert feeds["dropoff_borough"][0, 0] == "Staten Island"


def test_encode_batch_matches_single_rows():
    rows = [dict(example_features(), trip_distance=1.0 + i, RatecodeID=1 + i % 6) for i in range(5)]
    batch = encoding.encode(rows)
    for i, row in enumerate(rows):
        one = encoding.encode([row])
        for name in fc.FEATURE_NAMES:
            assert batch[name].shape == (5, 1)
            assert batch[name][i, 0] == one[name][0, 0]


def test_encode_from_validated_models():
    model = TripFeatures.model_validate(json.loads(json.dumps(example_features())))
    assert encoding.encode([model.__dict__])["trip_distance"][0, 0] == np.float32(example_features()["trip_distance"])


class _Input:
    def __init__(self, name, type_):
        self.name, self.type = name, type_


def test_signature_problems():
    good = [_Input(n, t) for n, t in encoding.expected_inputs().items()]
    assert encoding.signature_problems(good) == []
    bad = [i for i in good if i.name != "pickup_hour"] + [_Input("tip", "tensor(float)")]
    bad = [(_Input(i.name, "tensor(int64)") if i.name == "RatecodeID" else i) for i in bad]
    problems = encoding.signature_problems(bad)
    assert any("missing input 'pickup_hour'" in p for p in problems)
    assert any("'RatecodeID' is tensor(int64)" in p for p in problems)
    assert any("unexpected input 'tip'" in p for p in problems)
