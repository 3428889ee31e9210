"""PSI/KL/JS and the reference profile (numpy only; the drift-check Lambda uses this module)."""

import bisect
import json
import math

import numpy as np
import pytest

from driftstack.contract import features as F
from driftstack.domain import profile as P


# ------------------------------------------------------------ a plain reference implementation

def ref_hist(values, edges):
    counts = [0] * (len(edges) + 2)
    for v in values:
        if v != v:  # NaN
            counts[-1] += 1
        else:
            counts[bisect.bisect_right(list(edges), v)] += 1
    return counts


def ref_smooth(p, eps):
    k = len(p)
    return [(x + eps) / (1 + eps * k) for x in p]


def ref_psi(e, a, eps):
    e, a = ref_smooth(e, eps), ref_smooth(a, eps)
    return sum((ai - ei) * math.log(ai / ei) for ei, ai in zip(e, a))


def ref_kl(e, a, eps):
    e, a = ref_smooth(e, eps), ref_smooth(a, eps)
    return sum(ai * math.log(ai / ei) for ei, ai in zip(e, a))


def ref_js(e, a, eps):
    e, a = ref_smooth(e, eps), ref_smooth(a, eps)
    m = [(x + y) / 2 for x, y in zip(e, a)]
    return 0.5 * sum(x * math.log2(x / z) for x, z in zip(e, m)) + 0.5 * sum(y * math.log2(y / z) for y, z in zip(a, m))


def props(counts):
    s = sum(counts)
    return [c / s for c in counts]


# ------------------------------------------------------------ tests

def test_identical_distributions_give_zero():
    rng = np.random.default_rng(0)
    x = rng.lognormal(0.5, 0.7, 50_000)
    edges = P.numeric_edges(x)
    p = P.proportions(P.numeric_counts(x, edges))
    assert P.psi(p, p) == pytest.approx(0.0, abs=1e-15)
    assert P.kl_divergence(p, p) == pytest.approx(0.0, abs=1e-15)
    assert P.js_divergence(p, p) == pytest.approx(0.0, abs=1e-15)
    # a fresh sample from the same distribution: small
    y = rng.lognormal(0.5, 0.7, 50_000)
    assert P.psi(p, P.proportions(P.numeric_counts(y, edges))) < 0.005


def test_known_shift_matches_the_analytic_value():
    e, a = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    expected = 0.4 * math.log(0.9 / 0.5) + (-0.4) * math.log(0.1 / 0.5)
    assert P.psi(e, a, eps=0.0) == pytest.approx(expected, rel=1e-12)
    assert P.kl_divergence(e, a, eps=0.0) == pytest.approx(0.9 * math.log(1.8) + 0.1 * math.log(0.2), rel=1e-12)
    # normal mean shift of 0.5 sd, decile bins: PSI from the exact bin probabilities
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 1, 400_000)
    cur = rng.normal(0.5, 1, 400_000)
    edges = P.numeric_edges(ref)
    got = P.psi(P.proportions(P.numeric_counts(ref, edges)), P.proportions(P.numeric_counts(cur, edges)), eps=1e-9)
    cdf = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    inner = [cdf(q) for q in np.quantile(ref, np.linspace(0, 1, 11)[1:-1])]
    qs = [0.0] + inner + [1.0]
    pe = np.diff(qs)
    pa = np.diff([0.0] + [cdf(q - 0.5) for q in np.quantile(ref, np.linspace(0, 1, 11)[1:-1])] + [1.0])
    analytic = float(np.sum((pa - pe) * np.log(pa / pe)))
    assert got == pytest.approx(analytic, rel=0.03)
    assert 0.2 < got < 0.3  # the textbook "significant shift" zone


def test_agrees_with_plain_reference_implementation():
    rng = np.random.default_rng(2)
    for trial in range(5):
        ref = rng.gamma(2.0, 2.0, 5000)
        ref[rng.random(5000) < 0.02] = np.nan
        cur = rng.gamma(2.2, 2.1, 3000) + trial * 0.3
        cur[rng.random(3000) < 0.05] = np.nan
        edges = P.numeric_edges(ref, bins=8)
        h_ref, h_cur = P.numeric_counts(ref, edges), P.numeric_counts(cur, edges)
        assert h_ref.tolist() == ref_hist(ref.tolist(), edges.tolist())
        assert h_cur.tolist() == ref_hist(cur.tolist(), edges.tolist())
        e, a = props(h_ref.tolist()), props(h_cur.tolist())
        for eps in (1e-4, 1e-6):
            assert P.psi(e, a, eps) == pytest.approx(ref_psi(e, a, eps), abs=1e-9)
            assert P.kl_divergence(e, a, eps) == pytest.approx(ref_kl(e, a, eps), abs=1e-9)
            assert P.js_divergence(e, a, eps) == pytest.approx(ref_js(e, a, eps), abs=1e-9)


def test_constant_feature():
    ref = np.full(1000, 3.0)
    edges = P.numeric_edges(ref)
    assert len(edges) == 2  # below / equal / above / NaN
    p = P.proportions(P.numeric_counts(ref, edges))
    assert P.psi(p, P.proportions(P.numeric_counts(np.full(500, 3.0), edges))) == pytest.approx(0, abs=1e-15)
    # a new month on a one-month reference must show, in either direction
    assert P.psi(p, P.proportions(P.numeric_counts(np.full(500, 4.0), edges))) > 1.0
    assert P.psi(p, P.proportions(P.numeric_counts(np.full(500, 2.0), edges))) > 1.0


def test_empty_bins_are_finite_and_values_beyond_the_reference_get_their_own_bin():
    ref = np.arange(100, dtype=float)
    edges = P.numeric_edges(ref, bins=4)
    counts = P.numeric_counts(np.array([500.0, 600.0, -5.0]), edges)
    assert counts[0] == 1 and counts[-2] == 2 and counts[-1] == 0
    v = P.psi(P.proportions(P.numeric_counts(ref, edges)), P.proportions(counts))
    assert math.isfinite(v) and v > 5


def test_nan_has_its_own_bin_and_all_nan_reference():
    edges = P.numeric_edges(np.array([1.0, 2.0, 3.0]))
    assert P.numeric_counts(np.array([np.nan, 2.0]), edges)[-1] == 1
    assert P.numeric_edges(np.array([np.nan, np.nan])).size == 0
    assert P.numeric_counts(np.array([1.0, np.nan]), np.empty(0)).tolist() == [1, 1]


def test_unseen_categories_go_to_other():
    counts = P.categorical_counts(np.array(["1", "2", "7", None, "2"], dtype=object), ["1", "2", "3"])
    assert counts.tolist() == [1, 2, 0, 2]
    # numeric codes as a request log may hold them count as their tokens
    assert P.categorical_counts(np.array([2, 2, 7]), ["1", "2"]).tolist() == [0, 2, 1]
    assert P.categorical_counts(np.array([1.0, np.nan]), ["1", "2"]).tolist() == [1, 0, 1]
    ref = P.proportions(P.categorical_counts(["1"] * 90 + ["2"] * 10, ["1", "2"]))
    cur = P.proportions(P.categorical_counts(["1"] * 50 + ["9"] * 50, ["1", "2"]))
    assert math.isfinite(P.psi(ref, cur)) and P.psi(ref, cur) > 1


def test_js_bounds_and_errors():
    assert P.js_divergence([1, 0], [0, 1], eps=1e-12) == pytest.approx(1.0, abs=1e-6)
    assert P.kl_divergence([0.3, 0.7], [0.6, 0.4]) > 0
    with pytest.raises(ValueError, match="no values"):
        P.proportions(P.numeric_counts(np.array([]), np.array([1.0])))
    with pytest.raises(ValueError, match="differ in length"):
        P.psi([0.5, 0.5], [1.0])
    with pytest.raises(ValueError):
        P.numeric_edges(np.ones(3), bins=0)


def _columns(rng, n, shift=0.0):
    cols = {}
    for f in F.NUMERIC_FEATURES:
        v = rng.uniform(f.low, f.high, n) + shift * (f.high - f.low) * 0.3
        cols[f.name] = np.round(v) if f.integer else v
    for f in F.CATEGORICAL_FEATURES:
        cols[f.name] = np.array([F.category_token(c) for c in rng.choice(f.categories, n)], dtype=object)
    return cols


def test_build_profile_and_compare():
    rng = np.random.default_rng(3)
    ref = _columns(rng, 20_000)
    prof = P.build_profile(ref, predictions=rng.normal(15, 5, 20_000))
    prof = json.loads(json.dumps(prof))  # what the Lambda reads back from S3
    assert prof["contract_hash"] == F.contract_hash()
    assert set(prof["features"]) == set(F.FEATURE_NAMES)
    for entry in prof["features"].values():
        assert sum(entry["proportions"]) == pytest.approx(1.0)
    assert prof["features"]["RatecodeID"]["categories"][-1] == P.OTHER
    same = P.compare(prof, _columns(np.random.default_rng(4), 5000), predictions=rng.normal(15, 5, 5000))
    assert max(v["psi"] for v in same.values()) < 0.05
    shifted = P.compare(prof, _columns(np.random.default_rng(5), 5000, shift=1.0))
    assert all(shifted[n]["psi"] > 0.2 for n in ("trip_distance", "trip_duration_minutes", "pickup_hour"))
    assert shifted["RatecodeID"]["psi"] < 0.05
    with pytest.raises(KeyError, match="trip_distance"):
        P.build_profile({k: v for k, v in ref.items() if k != "trip_distance"})
