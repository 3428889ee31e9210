"""Reference profile and the drift statistics (PSI, KL, JS) — numpy only.

The training job stores a profile with every model (``profile.json``): per numeric feature the
bin edges (reference quantiles) and the reference proportions per bin; per categorical feature the
frequencies over the contract's categories; the same for the model's predictions. The drift
check then bins the live window with the *stored* edges (``np.searchsorted``, no reload of the
training set) and compares proportions. This module is imported by the drift-check Lambda:
numpy and the feature contract only.

Binning. Edges are ``[min] + interior quantiles + [max]`` of the reference (deduplicated; each interior
edge moved halfway down to the previous distinct value, the ends one float32 ulp outside: see
:func:`numeric_edges`),
and bins are left-closed ``[e_i, e_{i+1})``; values below the reference minimum and above the
maximum get their own bins, and NaN has the last bin. So a histogram has ``len(edges) + 2``
counts: ``[< e_0, [e_0,e_1), ..., >= e_last, NaN]``. Consequences: a constant reference feature
still has three real bins (below / equal / above), so a shift is seen; values outside the
reference range are never merged into the end bins. Categoricals: one bin per contract category
plus a final "other" bin for unseen values (None, unknown strings).

Smoothing. Empty bins would make the log-ratio infinite; proportions are smoothed additively,
``p' = (p + eps) / (1 + eps * K)`` with K bins, for both sides.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import numpy as np

from driftstack.contract import features as F

PROFILE_VERSION = 1
DEFAULT_BINS = 10
DEFAULT_EPS = 1e-4
OTHER = "__other__"


# ---------------------------------------------------------------- binning

def numeric_edges(reference: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Bin edges from the reference quantiles (see module doc). Empty/all-NaN -> no edges.

    Served values are float32 (ONNX inputs and outputs) while the reference is float64, and GBT
    predictions and integer features have mass points that quantiles land ON. So each interior
    edge is moved halfway down to the next smaller distinct reference value (same reference
    proportions, but a value rounded by a float32 ulp stays in its bin), and the outer edges sit one
    float32 ulp outside [min, max]."""
    if bins < 1:
        raise ValueError("bins must be >= 1")
    x = np.asarray(reference, dtype=np.float64)
    x = np.sort(x[~np.isnan(x)])
    if x.size == 0:
        return np.empty(0)
    inner = np.unique(np.quantile(x, np.linspace(0.0, 1.0, bins + 1)[1:-1])) if bins > 1 else np.empty(0)
    inner = inner[(inner > x[0]) & (inner <= x[-1])]
    below = x[np.searchsorted(x, inner, side="left") - 1]      # largest reference value < edge
    inner = (below + inner) / 2.0
    lo = float(np.nextafter(np.float32(x[0]), np.float32(-np.inf)))
    hi = float(np.nextafter(np.float32(x[-1]), np.float32(np.inf)))
    lo, hi = min(lo, np.nextafter(x[0], -np.inf)), max(hi, np.nextafter(x[-1], np.inf))
    return np.unique(np.concatenate([[lo], inner, [hi]]))


def numeric_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin for the given edges: ``len(edges) + 2`` (below, inner..., above, NaN)."""
    x = np.asarray(values, dtype=np.float64)
    nan = np.isnan(x)
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), x[~nan], side="right")
    counts = np.bincount(idx, minlength=len(edges) + 1)
    return np.append(counts, nan.sum()).astype(np.int64)


def categorical_counts(values, categories) -> np.ndarray:
    """Counts per category (tokens, in order) plus a final bin for anything else."""
    cats = [str(c) for c in categories]
    pos = {c: i for i, c in enumerate(cats)}
    vals = np.asarray(values)
    if vals.dtype.kind in "iuf":  # codes logged as numbers (2, 2.0) are the tokens "2"
        u, back = np.unique(vals, return_inverse=True)
        vals = np.array([F.category_token(int(v)) if v == v and float(v).is_integer() else str(v)
                         for v in u.tolist()], dtype=object)[back.reshape(-1)]
    # Count the distinct values with a hash table (np.unique on an object array sorts with Python
    # comparisons: ~6x slower), then map each distinct value to its slot by its string form.
    # None/NaN become "None"/"nan" -> not a category -> OTHER bin.
    counts = np.zeros(len(cats) + 1, dtype=np.int64)
    for value, n in Counter(vals.astype(object).tolist()).items():
        counts[pos.get(str(value), len(cats))] += n
    return counts


def proportions(counts: np.ndarray) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if total <= 0:
        raise ValueError("no values to compute proportions from")
    return c / total


# ---------------------------------------------------------------- divergences

def smooth(p: np.ndarray, eps: float = DEFAULT_EPS) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return (p + eps) / (1.0 + eps * p.size)


def _pair(expected, actual, eps):
    e, a = np.asarray(expected, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape:
        raise ValueError(f"distributions differ in length: {e.shape} vs {a.shape}")
    return smooth(e, eps), smooth(a, eps)


def psi(expected, actual, eps: float = DEFAULT_EPS) -> float:
    """Population stability index: sum((a - e) * ln(a / e)) over bins."""
    e, a = _pair(expected, actual, eps)
    return float(np.sum((a - e) * np.log(a / e)))


def kl_divergence(expected, actual, eps: float = DEFAULT_EPS) -> float:
    """KL(actual || expected) in nats: how surprising the live window is under the reference."""
    e, a = _pair(expected, actual, eps)
    return float(np.sum(a * np.log(a / e)))


def js_divergence(expected, actual, eps: float = DEFAULT_EPS) -> float:
    """Jensen-Shannon divergence in bits (0 = identical, 1 = disjoint)."""
    e, a = _pair(expected, actual, eps)
    m = 0.5 * (e + a)
    return float(0.5 * np.sum(e * np.log2(e / m)) + 0.5 * np.sum(a * np.log2(a / m)))


# ---------------------------------------------------------------- profiles

def _numeric_entry(values, bins: int) -> dict:
    x = np.asarray(values, dtype=np.float64)
    edges = numeric_edges(x, bins)
    finite = x[~np.isnan(x)]
    stats = ({"mean": float(finite.mean()), "std": float(finite.std()), "min": float(finite.min()),
              "max": float(finite.max())} if finite.size else {})
    return {"kind": "numeric", "edges": edges.tolist(),
            "proportions": proportions(numeric_counts(x, edges)).tolist(), "count": int(x.size), **stats}


def _categorical_entry(values, categories) -> dict:
    cats = [F.category_token(c) for c in categories]
    return {"kind": "categorical", "categories": cats + [OTHER],
            "proportions": proportions(categorical_counts(values, cats)).tolist(),
            "count": int(np.asarray(values).size)}


def build_profile(columns: Mapping[str, np.ndarray], predictions: np.ndarray | None = None, *,
                  bins: int = DEFAULT_BINS, eps: float = DEFAULT_EPS) -> dict:
    """The reference profile of a training set (JSON-serialisable dict)."""
    missing = [n for n in F.FEATURE_NAMES if n not in columns]
    if missing:
        raise KeyError(f"profile needs every contract feature; missing {missing}")
    prof = {"version": PROFILE_VERSION, "contract_hash": F.contract_hash(), "bins": bins, "epsilon": eps,
            "features": {}}
    for f in F.FEATURES:
        prof["features"][f.name] = (_numeric_entry(columns[f.name], bins) if f.kind == "numeric"
                                    else _categorical_entry(columns[f.name], f.categories))
    if predictions is not None:
        prof["prediction"] = _numeric_entry(predictions, bins)
    return prof


def current_proportions(entry: Mapping, values) -> np.ndarray:
    """The live window's proportions in the bins of one profile entry."""
    if entry["kind"] == "numeric":
        return proportions(numeric_counts(values, np.asarray(entry["edges"])))
    return proportions(categorical_counts(values, entry["categories"][:-1]))


def compare_entry(entry: Mapping, values, eps: float | None = None) -> dict:
    """PSI/KL/JS of one feature's live values against its profile entry."""
    eps = DEFAULT_EPS if eps is None else eps
    ref = np.asarray(entry["proportions"])
    cur = current_proportions(entry, values)
    return {"psi": psi(ref, cur, eps), "kl": kl_divergence(ref, cur, eps), "js": js_divergence(ref, cur, eps),
            "n": int(np.asarray(values).size)}


def compare(profile: Mapping, columns: Mapping[str, np.ndarray], predictions=None) -> dict:
    """Per-feature (and prediction) drift statistics of a live window against a profile."""
    eps = profile.get("epsilon", DEFAULT_EPS)
    out = {name: compare_entry(entry, columns[name], eps)
           for name, entry in profile["features"].items() if name in columns}
    if predictions is not None and "prediction" in profile:
        out["prediction"] = compare_entry(profile["prediction"], predictions, eps)
    return out
