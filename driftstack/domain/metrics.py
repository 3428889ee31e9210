"""Regression metrics (numpy only), shared by the training job and the champion/challenger
evaluation so both report the same numbers the same way."""

from __future__ import annotations

import numpy as np


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y_true, dtype=np.float64).ravel(), np.asarray(y_pred, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y.size} vs {p.size}")
    if y.size == 0:
        raise ValueError("no rows to evaluate")
    return y, p


def rmse(y_true, y_pred) -> float:
    y, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((y - p) ** 2)))


def mae(y_true, y_pred) -> float:
    y, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(y - p)))


def r2(y_true, y_pred) -> float:
    """Coefficient of determination; NaN when the target is constant."""
    y, p = _pair(y_true, y_pred)
    ss_tot = np.sum((y - y.mean()) ** 2)
    return float(1.0 - np.sum((y - p) ** 2) / ss_tot) if ss_tot > 0 else float("nan")


def mape(y_true, y_pred) -> float:
    """Mean absolute percentage error in percent, over rows with a non-zero target."""
    y, p = _pair(y_true, y_pred)
    nz = y != 0
    if not nz.any():
        return float("nan")
    return float(np.mean(np.abs((y[nz] - p[nz]) / y[nz])) * 100.0)


def regression_metrics(y_true, y_pred) -> dict[str, float]:
    return {"rmse": rmse(y_true, y_pred), "mae": mae(y_true, y_pred), "r2": r2(y_true, y_pred),
            "mape": mape(y_true, y_pred), "n": int(np.asarray(y_true).size)}
