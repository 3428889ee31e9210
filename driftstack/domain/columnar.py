"""Validate and encode a whole request at once: numpy over each feature column, not pydantic per row.

This path only ever *accepts*.  It returns the model's feeds when every row is certainly a valid trip
(all 12 fields, nothing else, the contract's types, ranges and categories), and ``None`` otherwise;
the caller then hands the request to the per-row pydantic models (driftstack.contract.api), which
decide and name each bad field.  So the error messages have one source, and the invariant tested in
tests/unit/test_columnar.py is: whatever this accepts, the models accept, with the same values.

Lambda-safe: numpy only.  The rows are what a JSON parser returns (dicts, lists, str, int, float,
bool, None).
"""

from __future__ import annotations

import operator
from itertools import chain
from typing import Any

import numpy as np

from driftstack.contract import features as fc
from driftstack.domain import encoding

_INT_NUMERIC = tuple(f for f in fc.NUMERIC_FEATURES if f.integer)
_FLOAT_NUMERIC = tuple(f for f in fc.NUMERIC_FEATURES if not f.integer)
_INT_CATEGORICAL = tuple(f for f in fc.CATEGORICAL_FEATURES if all(type(c) is int for c in f.categories))
_STR_CATEGORICAL = tuple(f for f in fc.CATEGORICAL_FEATURES if all(type(c) is str for c in f.categories))
assert len(_INT_CATEGORICAL) + len(_STR_CATEGORICAL) == len(fc.CATEGORICAL_FEATURES), "mixed-type categories"

_INTS = _INT_NUMERIC + _INT_CATEGORICAL          # one int64 matrix, one conversion
_ROW_GETTER = operator.itemgetter(*fc.FEATURE_NAMES)
_N_FEATURES = len(fc.FEATURE_NAMES)
_INT_LOW = np.array([f.low for f in _INT_NUMERIC], dtype=np.int64)[:, None]
_INT_HIGH = np.array([f.high for f in _INT_NUMERIC], dtype=np.int64)[:, None]
_STR_ALLOWED = {f.name: frozenset(f.categories) for f in _STR_CATEGORICAL}
_INT_TYPE, _NUMBER_TYPES = {int}, {int, float}


def _token_table(f: fc.CategoricalFeature) -> np.ndarray:
    """Index = the int category, value = its model token (None where the value is no category)."""
    table = np.full(max(f.categories) + 1, None, dtype=object)
    for c in f.categories:
        table[c] = fc.category_token(c)
    return table


_TOKENS = {f.name: _token_table(f) for f in _INT_CATEGORICAL}


def _rule(f: fc.NumericFeature | fc.CategoricalFeature) -> tuple:
    """(name, exact types, low, high, allowed values or None) of one field."""
    if f.kind == "categorical":
        return f.name, (int,) if f in _INT_CATEGORICAL else (str,), None, None, frozenset(f.categories)
    return f.name, (int,) if f.integer else (int, float), f.low, f.high, None


_ROW_RULES = tuple(_rule(f) for f in fc.FEATURES)
_SMALL = 8  # below this many rows, numpy's per-call cost exceeds plain Python checks


def _row_valid(row: Any) -> bool:
    if type(row) is not dict or len(row) != _N_FEATURES:
        return False
    for name, types, low, high, allowed in _ROW_RULES:
        value = row.get(name)
        if type(value) not in types or not (value in allowed if allowed is not None else low <= value <= high):
            return False  # NaN fails the range too
    return True


def _types_exact(int_columns: list[tuple], float_columns: list[tuple]) -> bool:
    # numpy reads True as 1 (and 1.5 and True as floats); the models refuse booleans: check the types.
    return set(map(type, chain.from_iterable(int_columns))) == _INT_TYPE \
        and set(map(type, chain.from_iterable(float_columns))) <= _NUMBER_TYPES


def encode_if_valid(rows: Any) -> dict[str, np.ndarray] | None:
    """The feeds of ``InferenceSession.run`` when every row is a valid trip, else None (validate per row).
    A few rows are checked one by one in plain Python (numpy's per-call cost dominates there)."""
    if type(rows) is not list or not rows:
        return None
    if len(rows) < _SMALL:
        return encoding.encode(rows) if all(map(_row_valid, rows)) else None
    if set(map(type, rows)) != {dict} or set(map(len, rows)) != {_N_FEATURES}:
        return None
    try:
        columns = dict(zip(fc.FEATURE_NAMES, zip(*map(_ROW_GETTER, rows))))  # KeyError: a field is missing
        int_columns = [columns[f.name] for f in _INTS]
        float_columns = [columns[f.name] for f in _FLOAT_NUMERIC]
        if not _types_exact(int_columns, float_columns):
            return None
        ints = np.array(int_columns)
        floats = np.array(float_columns)
        strings_known = all(set(columns[name]) <= allowed for name, allowed in _STR_ALLOWED.items())
    except (KeyError, TypeError, ValueError, OverflowError):  # missing field, unhashable or huge values
        return None
    if ints.dtype != np.int64 or floats.dtype.kind not in "if" or not strings_known:
        return None  # an int beyond 64 bits, an unknown borough
    numeric_ints = ints[:len(_INT_NUMERIC)]
    if not ((numeric_ints >= _INT_LOW).all() and (numeric_ints <= _INT_HIGH).all()):
        return None
    if not all(lo <= col.min() and col.max() <= hi  # NaN compares False: refused here too
               for col, lo, hi in zip(floats, (f.low for f in _FLOAT_NUMERIC), (f.high for f in _FLOAT_NUMERIC))):
        return None
    n = len(rows)
    feeds: dict[str, np.ndarray] = {}
    for i, f in enumerate(_INT_CATEGORICAL, start=len(_INT_NUMERIC)):
        col, table = ints[i], _TOKENS[f.name]
        if col.min() < 0 or col.max() >= len(table):
            return None
        tokens = table[col]
        if None in set(tokens):  # a value between the categories
            return None
        feeds[f.name] = tokens.reshape(n, 1)
    numeric = np.concatenate([numeric_ints, floats]).astype(np.float32)  # one cast, then row views
    for row, f in zip(numeric, _INT_NUMERIC + _FLOAT_NUMERIC):
        feeds[f.name] = row.reshape(n, 1)
    for f in _STR_CATEGORICAL:
        feeds[f.name] = np.array(columns[f.name], dtype=object).reshape(n, 1)
    return {name: feeds[name] for name in fc.FEATURE_NAMES}  # the contract's order, like encoding.encode
