"""Request rows -> the ONNX model's inputs.

The exported pipeline takes one ``[n, 1]`` tensor per feature, named like the feature:
``tensor(float)`` for numerics and ``tensor(string)`` (numpy object array of
:func:`driftstack.contract.features.category_token`) for categoricals.  Lambda-safe: numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from driftstack.contract import features as fc

NUMERIC_ONNX_TYPE = "tensor(float)"
CATEGORICAL_ONNX_TYPE = "tensor(string)"

_token = fc.category_token


def expected_inputs() -> dict[str, str]:
    """{input name: ONNX type} the model must declare."""
    return {**{n: NUMERIC_ONNX_TYPE for n in fc.NUMERIC_NAMES},
            **{n: CATEGORICAL_ONNX_TYPE for n in fc.CATEGORICAL_NAMES}}


def signature_problems(inputs: Sequence[Any]) -> list[str]:
    """Differences between a session's inputs (``InferenceSession.get_inputs()``) and the
    contract; empty when the model can be fed by :func:`encode`."""
    want = expected_inputs()
    got = {i.name: i.type for i in inputs}
    problems = [f"missing input {n!r} ({t})" for n, t in want.items() if n not in got]
    problems += [f"input {n!r} is {got[n]}, expected {t}" for n, t in want.items()
                 if n in got and got[n] != t]
    problems += [f"unexpected input {n!r}" for n in got if n not in want]
    return problems


def encode(rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Feed dict for ``InferenceSession.run`` from validated rows (dicts keyed by feature name)."""
    n = len(rows)
    if n == 1:  # the hot single-trip path: no intermediate lists
        row = rows[0]
        feeds = {name: np.array([[row[name]]], dtype=np.float32) for name in fc.NUMERIC_NAMES}
        for name in fc.CATEGORICAL_NAMES:
            feeds[name] = np.array([[_token(row[name])]], dtype=object)
        return feeds
    feeds = {name: np.fromiter((r[name] for r in rows), dtype=np.float32, count=n).reshape(n, 1)
             for name in fc.NUMERIC_NAMES}
    for name in fc.CATEGORICAL_NAMES:
        col = np.empty((n, 1), dtype=object)
        col[:, 0] = [_token(r[name]) for r in rows]
        feeds[name] = col
    return feeds
