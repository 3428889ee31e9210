"""Canary evaluation: compare the candidate arm with the incumbent arm on live request-log records
and decide to complete the rollout, roll it back, or wait for more evidence.

Signals (records of this rollout only, ``rollout_id`` stamped by the predict function):

- error rate: candidate requests whose candidate prediction failed (the champion answered them
  instead: ``candidate_error``) / candidate-arm requests;
- latency p95: the arm's model time (``model_ms``: inference only, so the model is compared, not the
  shared validation/logging cost), candidate / incumbent, ignored below a noise floor and confirmed
  by the median (p50 ratio at least half the limit): a few scheduler stalls on a busy host land in
  either arm's tail and must not roll back a healthy model, while a slow model is slow throughout;
- prediction distribution shift: PSI of candidate predictions against the incumbent's (quantile
  bins of the incumbent): both arms see the same traffic mix, because routing hashes request ids.
  Two samples of the SAME distribution have a PSI of about (bins-1)(1/n_c + 1/n_i) (PSI is
  Jeffreys' divergence: n_c n_i/(n_c+n_i) x PSI ~ chi-square(bins-1)), and a bin left empty by
  chance costs far more than that.  So the bins adapt to the smaller arm (about 20 predictions per
  bin, 3 to 10 bins) and a breach needs PSI above the limit AND above the 99th percentile of that
  noise (``prediction_psi_noise``), like latency needs p95 and median: measured on two samples of
  one distribution, 10 fixed bins put PSI over 0.25 in 87 % of 40-vs-35 draws and 22 % of
  100-vs-100 draws; this rule in about 1 %;
- error against feedback: RMSE on requests with ``actual_fare``, where both arms have enough.

A candidate the serving containers could not load (``load_failure`` on the rollout, written by the
predict function: sha256 mismatch, missing object, bad graph) → ``rollback`` at once: it serves
nothing, so waiting for traffic would only delay the inevitable until ``max_minutes``.
Any breach → ``rollback`` with every reason; all clear with ``min_requests`` per arm (and the
canary at least ``min_minutes`` old) → ``complete``; not enough traffic after ``max_minutes`` →
``rollback`` (a canary must not linger); otherwise ``wait``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from driftstack.domain.profile import psi

COMPLETE, ROLLBACK, WAIT = "complete", "rollback", "wait"


@dataclass(frozen=True)
class CanaryCriteria:
    """Read from CANARY_<FIELD> by driftstack.settings.CanaryEvalSettings (event overrides: ``.canary.build``)."""

    min_requests: int = 100           # per arm, before any verdict except max_minutes
    max_error_rate: float = 0.01      # candidate failures / candidate requests
    max_latency_ratio: float = 3.0    # candidate p95 model_ms / incumbent p95 model_ms
    latency_floor_ms: float = 0.2     # p95s below this are noise, never a breach
    max_prediction_psi: float = 0.25
    max_rmse_ratio: float = 1.10      # candidate RMSE / incumbent RMSE on feedback
    min_feedback: int = 30            # per arm, for the RMSE signal
    min_minutes: float = 0.0          # never complete a younger canary
    max_minutes: float = 1440.0       # roll back a canary that never gathered enough traffic


def _p95(values: list[float]) -> float | None:
    return float(np.percentile(values, 95)) if values else None


def _rmse(pairs: list[tuple[float, float]]) -> float | None:
    if not pairs:
        return None
    a = np.asarray(pairs, dtype=np.float64)
    return float(np.sqrt(np.mean((a[:, 0] - a[:, 1]) ** 2)))


def arm_stats(records: Iterable[Mapping]) -> dict[str, dict[str, Any]]:
    arms: dict[str, dict[str, list]] = {a: {"preds": [], "ms": [], "fb": [], "errors": [], "n": []}
                                        for a in ("candidate", "incumbent")}
    for r in records:
        arm = arms.get(r.get("arm"))
        if arm is None:
            continue
        arm["n"].append(1)
        if r.get("candidate_error"):
            arm["errors"].append(r["candidate_error"])
            continue  # served by the champion: not the candidate's prediction or latency
        arm["preds"].append(float(r["prediction"]))
        if r.get("model_ms") is not None:
            arm["ms"].append(float(r["model_ms"]))
        if r.get("actual_fare") is not None:
            arm["fb"].append((float(r["prediction"]), float(r["actual_fare"])))
    out = {}
    for name, a in arms.items():
        n = len(a["n"])
        out[name] = {"requests": n, "errors": len(a["errors"]), "error_rate": len(a["errors"]) / n if n else 0.0,
                     "latency_p95_ms": _p95(a["ms"]),
                     "latency_p50_ms": float(np.median(a["ms"])) if a["ms"] else None, "feedback": len(a["fb"]), "rmse": _rmse(a["fb"]),
                     "prediction_mean": float(np.mean(a["preds"])) if a["preds"] else None,
                     "first_errors": sorted(set(a["errors"]))[:3], "_preds": a["preds"]}
    return out


def psi_bins(n_incumbent: int, n_candidate: int) -> int:
    """About 20 predictions per bin in the smaller arm, 3 to 10 bins."""
    return int(min(10, max(3, min(n_incumbent, n_candidate) // 20)))


def psi_noise(n_incumbent: int, n_candidate: int, bins: int = 10, z: float = 2.326) -> float:
    """The PSI two same-distribution samples of these sizes stay below 99 % of the time
    (chi-square(bins-1) quantile by Wilson-Hilferty: numpy only, no scipy in the Lambda layer)."""
    df = bins - 1
    q = df * (1 - 2 / (9 * df) + z * (2 / (9 * df)) ** 0.5) ** 3
    return q * (1 / max(n_incumbent, 1) + 1 / max(n_candidate, 1))


def prediction_psi(incumbent: list[float], candidate: list[float], bins: int | None = None) -> float | None:
    """PSI over quantile bins of the incumbent (``bins``: :func:`psi_bins` of the sizes); None
    below 10 predictions per bin."""
    bins = bins or psi_bins(len(incumbent), len(candidate))
    if len(incumbent) < 10 * bins or len(candidate) < 10 * bins:
        return None
    edges = np.unique(np.quantile(np.asarray(incumbent), np.linspace(0, 1, bins + 1)[1:-1]))
    e = np.bincount(np.searchsorted(edges, incumbent, side="right"), minlength=len(edges) + 1)
    c = np.bincount(np.searchsorted(edges, candidate, side="right"), minlength=len(edges) + 1)
    return psi(e / e.sum(), c / c.sum())


def evaluate(records: Iterable[Mapping], *, started_at: float, now: float,
             criteria: CanaryCriteria = CanaryCriteria(), load_failure: str = "") -> dict[str, Any]:
    """The verdict and the figures behind it (JSON-ready).  ``load_failure``: why the serving
    containers refused the candidate, if they did."""
    stats = arm_stats(records)
    cand, inc = stats["candidate"], stats["incumbent"]
    age_min = (now - started_at) / 60.0
    inc_preds, cand_preds = inc.pop("_preds"), cand.pop("_preds")
    signals: dict[str, Any] = {"age_minutes": round(age_min, 2),
                               "prediction_psi": prediction_psi(inc_preds, cand_preds),
                               "prediction_psi_noise": round(psi_noise(len(inc_preds), len(cand_preds),
                                                                       psi_bins(len(inc_preds), len(cand_preds))), 4)}
    doc = {"criteria": asdict(criteria), "candidate": cand, "incumbent": inc, "signals": signals}
    if load_failure:
        signals["load_failure"] = load_failure
        return {**doc, "outcome": ROLLBACK, "reasons": [f"candidate could not be loaded: {load_failure}"]}
    enough = cand["requests"] >= criteria.min_requests and inc["requests"] >= criteria.min_requests
    if not enough:
        if age_min >= criteria.max_minutes:
            return {**doc, "outcome": ROLLBACK, "reasons": [
                f"not enough traffic after {age_min:.0f} min: candidate {cand['requests']}, incumbent "
                f"{inc['requests']} requests (need {criteria.min_requests} each)"]}
        return {**doc, "outcome": WAIT, "reasons": [
            f"waiting for traffic: candidate {cand['requests']}, incumbent {inc['requests']} requests "
            f"(need {criteria.min_requests} each)"]}

    reasons = []
    if cand["error_rate"] > criteria.max_error_rate:
        reasons.append(f"candidate error rate {cand['error_rate']:.1%} > {criteria.max_error_rate:.1%} "
                       f"({cand['errors']} of {cand['requests']}; e.g. {cand['first_errors'][0]})")
    cp, ip = cand["latency_p95_ms"], inc["latency_p95_ms"]
    if cp is not None and ip is not None and cp > criteria.latency_floor_ms:
        ratio = cp / max(ip, 1e-9)
        median_ratio = cand["latency_p50_ms"] / max(inc["latency_p50_ms"], 1e-9)
        signals.update(latency_ratio=round(ratio, 2), latency_p50_ratio=round(median_ratio, 2))
        if ratio > criteria.max_latency_ratio and median_ratio > criteria.max_latency_ratio / 2:
            reasons.append(f"candidate latency p95 {cp:.3f} ms is {ratio:.1f}x the incumbent's {ip:.3f} ms "
                           f"(limit {criteria.max_latency_ratio}x)")
    shift = signals["prediction_psi"]
    if shift is not None and shift > max(criteria.max_prediction_psi, signals["prediction_psi_noise"]):
        reasons.append(f"prediction distribution shift PSI {shift:.3f} > {criteria.max_prediction_psi} "
                       f"(sampling noise at these sizes: {signals['prediction_psi_noise']:.3f})")
    if cand["feedback"] >= criteria.min_feedback and inc["feedback"] >= criteria.min_feedback:
        ratio = cand["rmse"] / max(inc["rmse"], 1e-9)
        signals["rmse_ratio"] = round(ratio, 3)
        if ratio > criteria.max_rmse_ratio:
            reasons.append(f"candidate RMSE {cand['rmse']:.3f} is {ratio:.2f}x the incumbent's {inc['rmse']:.3f} "
                           f"on feedback (limit {criteria.max_rmse_ratio}x)")
    if reasons:
        return {**doc, "outcome": ROLLBACK, "reasons": reasons}
    if age_min < criteria.min_minutes:
        return {**doc, "outcome": WAIT, "reasons": [f"healthy; canary is {age_min:.1f} min old, completes after "
                                                     f"{criteria.min_minutes} min"]}
    return {**doc, "outcome": COMPLETE, "reasons": [
        f"healthy on {cand['requests']} candidate / {inc['requests']} incumbent requests: error rate "
        f"{cand['error_rate']:.1%}, latency ratio {signals.get('latency_ratio', 'n/a')}, prediction PSI "
        f"{signals['prediction_psi'] if signals['prediction_psi'] is None else round(signals['prediction_psi'], 3)}"
        + (f", RMSE ratio {signals['rmse_ratio']}" if "rmse_ratio" in signals else "")]}


def shadow_comparison(records: Iterable[Mapping]) -> dict[str, Any]:
    """Champion vs shadow challenger on the same live requests: agreement, and error where feedback
    exists.  No verdict: a shadow informs the promotion decision, it does not take it."""
    pairs, fb, errors = [], [], 0
    for r in records:
        if r.get("shadow_error"):
            errors += 1
        elif r.get("shadow_prediction") is not None:
            pairs.append((float(r["prediction"]), float(r["shadow_prediction"])))
            if r.get("actual_fare") is not None:
                fb.append((float(r["prediction"]), float(r["shadow_prediction"]), float(r["actual_fare"])))
    n = len(pairs) + errors
    out: dict[str, Any] = {"requests": n, "shadow_errors": errors, "shadow_error_rate": errors / n if n else 0.0,
                           "compared": len(pairs), "feedback": len(fb)}
    if pairs:
        a = np.asarray(pairs)
        diff = np.abs(a[:, 1] - a[:, 0])
        out.update(mean_abs_diff=float(diff.mean()), p95_abs_diff=float(np.percentile(diff, 95)),
                   within_1_usd=float(np.mean(diff <= 1.0)), mean_shift=float(np.mean(a[:, 1] - a[:, 0])),
                   prediction_psi=prediction_psi(list(a[:, 0]), list(a[:, 1])))
    if fb:
        f = np.asarray(fb)
        out.update(champion_rmse=float(np.sqrt(np.mean((f[:, 0] - f[:, 2]) ** 2))),
                   shadow_rmse=float(np.sqrt(np.mean((f[:, 1] - f[:, 2]) ** 2))))
    return out
