"""The feature contract: the single definition of the model's inputs and target.

Everything else derives from this module: the pydantic request models (serving), the Spark
schema and validation (training), the ONNX input names and dtypes, the reference profile and
the drift checks. Change a range here and it changes everywhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

BOROUGHS: tuple[str, ...] = ("Manhattan", "Brooklyn", "Queens", "Bronx", "Staten Island", "EWR")


@dataclass(frozen=True)
class NumericFeature:
    name: str
    low: float
    high: float
    integer: bool
    description: str

    kind = "numeric"


@dataclass(frozen=True)
class CategoricalFeature:
    """A categorical feature. ``categories`` are the values a request may carry (ints or strings);
    the model sees them as strings (ONNX StringTensorType), see :func:`category_token`."""

    name: str
    categories: tuple[int | str, ...]
    description: str

    kind = "categorical"


NUMERIC_FEATURES: tuple[NumericFeature, ...] = (
    NumericFeature("trip_distance", 0.1, 100.0, False, "trip distance in miles"),
    NumericFeature("passenger_count", 1, 9, True, "number of passengers"),
    NumericFeature("pickup_hour", 0, 23, True, "hour of pickup, 0-23"),
    NumericFeature("pickup_day_of_week", 1, 7, True, "day of week of pickup, 1=Monday ... 7=Sunday"),
    NumericFeature("pickup_month", 1, 12, True, "month of pickup, 1-12"),
    NumericFeature("trip_duration_minutes", 1.0, 180.0, False, "trip duration in minutes"),
    NumericFeature("is_weekend", 0, 1, True, "1 if the pickup is on Saturday or Sunday"),
    NumericFeature("is_rush_hour", 0, 1, True, "1 if the pickup is on a weekday 7-9h or 16-19h"),
)

CATEGORICAL_FEATURES: tuple[CategoricalFeature, ...] = (
    CategoricalFeature("RatecodeID", (1, 2, 3, 4, 5, 6),
                       "TLC rate code: 1 standard, 2 JFK, 3 Newark, 4 Nassau/Westchester, 5 negotiated, 6 group"),
    CategoricalFeature("payment_type", (1, 2, 3, 4), "1 credit card, 2 cash, 3 no charge, 4 dispute"),
    CategoricalFeature("pickup_borough", BOROUGHS, "borough of the pickup zone"),
    CategoricalFeature("dropoff_borough", BOROUGHS, "borough of the dropoff zone"),
)

FEATURES: tuple[NumericFeature | CategoricalFeature, ...] = NUMERIC_FEATURES + CATEGORICAL_FEATURES
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
NUMERIC_NAMES: tuple[str, ...] = tuple(f.name for f in NUMERIC_FEATURES)
CATEGORICAL_NAMES: tuple[str, ...] = tuple(f.name for f in CATEGORICAL_FEATURES)
BY_NAME: dict[str, NumericFeature | CategoricalFeature] = {f.name: f for f in FEATURES}

TARGET = NumericFeature("fare_amount", 2.5, 200.0, False, "metered fare in USD (target)")


def category_token(value: int | str) -> str:
    """The string the model sees for a category value (RatecodeID 2 -> "2")."""
    return str(value)


def contract_dict() -> dict:
    return {
        "numeric": [asdict(f) for f in NUMERIC_FEATURES],
        "categorical": [{**asdict(f), "categories": [category_token(c) for c in f.categories]}
                        for f in CATEGORICAL_FEATURES],
        "target": asdict(TARGET),
    }


def contract_hash() -> str:
    """sha256 of the canonical contract; stored with every model so a mismatch is detectable."""
    return hashlib.sha256(json.dumps(contract_dict(), sort_keys=True).encode()).hexdigest()
