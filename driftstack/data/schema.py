"""The raw TLC yellow-taxi columns the feature derivation needs, and the schema check.

Engines describe a file's schema as ``{column: kind}`` with kind one of ``timestamp``, ``integer``,
``float``, ``string`` or ``other`` (see :func:`kind_of_arrow` and ``spark_jobs.data``); the check
is written once, here. Real files: passenger_count and RatecodeID are float64 (they hold NaN),
PULocationID/DOLocationID int32 or int64, payment_type int64, timestamps timestamp[us] (older
files timestamp[ns]).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PICKUP = "tpep_pickup_datetime"
DROPOFF = "tpep_dropoff_datetime"
TARGET_COLUMN = "fare_amount"
NUMBERS = ("integer", "float")


@dataclass(frozen=True)
class RawColumn:
    name: str
    kinds: tuple[str, ...]  # accepted kinds


RAW_COLUMNS: tuple[RawColumn, ...] = (
    RawColumn(PICKUP, ("timestamp",)),
    RawColumn(DROPOFF, ("timestamp",)),
    RawColumn("passenger_count", NUMBERS),
    RawColumn("trip_distance", NUMBERS),
    RawColumn("RatecodeID", NUMBERS),
    RawColumn("PULocationID", NUMBERS),
    RawColumn("DOLocationID", NUMBERS),
    RawColumn("payment_type", NUMBERS),
    RawColumn(TARGET_COLUMN, NUMBERS),
)
RAW_NAMES: tuple[str, ...] = tuple(c.name for c in RAW_COLUMNS)


class SchemaError(ValueError):
    """The input does not have the TLC columns we need; the message names the column."""

    def __init__(self, column: str, message: str):
        super().__init__(f"column {column!r}: {message}")
        self.column = column


def required_columns(require_target: bool = True) -> tuple[RawColumn, ...]:
    return tuple(c for c in RAW_COLUMNS if require_target or c.name != TARGET_COLUMN)


def check_schema(kinds: Mapping[str, str], *, require_target: bool = True, source: str = "input") -> None:
    """Raise :class:`SchemaError` for the first missing or wrongly typed required column."""
    for col in required_columns(require_target):
        if col.name not in kinds:
            near = [k for k in kinds if k.lower() == col.name.lower()]
            hint = f" (found {near[0]!r}: names are case-sensitive)" if near else ""
            raise SchemaError(col.name, f"missing from {source}{hint}")
        if kinds[col.name] not in col.kinds:
            raise SchemaError(col.name, f"has type {kinds[col.name]} in {source}, "
                                        f"expected {' or '.join(col.kinds)}")


def kind_of_arrow(arrow_type) -> str:
    """Map a pyarrow DataType to a schema kind."""
    import pyarrow.types as pt

    if pt.is_timestamp(arrow_type):
        return "timestamp"
    if pt.is_integer(arrow_type):
        return "integer"
    if pt.is_floating(arrow_type) or pt.is_decimal(arrow_type):
        return "float"
    if pt.is_string(arrow_type) or pt.is_large_string(arrow_type):
        return "string"
    return "other"
