"""The drift verdict, pure: thresholds, the check window, per-feature statistics, the decision.

Steps (the I/O lives in :mod:`driftstack.usecases.drift_check` and :mod:`driftstack.adapters.drift_store`):

1. :func:`window_for` — the window ``[end - minutes, end]`` with ``end`` floored to the check period,
   so two checks fired for the same period (a retried EventBridge delivery, a manual re-run) see
   the same window and derive the same id (the retraining execution name comes from it).
2. :func:`compute` — per-feature PSI/KL/JS and prediction PSI with :mod:`driftstack.domain.profile`
   (the one implementation), and performance drift (RMSE/MAE of the window's feedback vs the
   champion's holdout figures), from the window's summed bin counts.
3. :func:`verdict` — thresholds -> ``insufficient_data`` / ``no_drift`` / ``drift`` and ``trigger``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from driftstack.contract import features as F
from driftstack.contract import names as N
from driftstack.contract.documents import DriftResult, DriftSummary, ExecutionInput, dump
from driftstack.domain import profile as P


INSUFFICIENT = "insufficient_data"


NO_DRIFT = "no_drift"


DRIFT = "drift"


NO_CHAMPION = "no_champion"


class DriftCheckError(Exception):
    """The check cannot run (no profile, bad configuration); the message says what is missing."""


@dataclass(frozen=True)
class DriftConfig:
    """Thresholds and window settings (read by driftstack.settings.DriftThresholds: DRIFT_<FIELD>, e.g.
    DRIFT_PSI_THRESHOLD)."""

    psi_threshold: float = 0.2              # a feature with PSI >= this counts as drifted
    min_drifted_features: int = 3           # this many drifted features trigger
    prediction_psi_threshold: float = 0.2   # prediction PSI >= this triggers
    rmse_degradation: float = 0.20          # window RMSE >= (1 + this) x holdout RMSE triggers
    min_samples: int = 100                  # fewer requests: "insufficient data", no trigger
    min_feedback: int = 30                  # fewer labelled requests: no performance verdict
    window_minutes: float = 1440.0          # how far back the window reaches
    period_minutes: float = 60.0            # the window end is floored to this (the schedule rate)

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
                raise ValueError(f"drift config {f.name} must be >= 0, got {v}")
        if self.window_minutes <= 0 or self.period_minutes <= 0:
            raise ValueError("drift config window_minutes and period_minutes must be > 0")


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @property
    def id(self) -> str:
        """Stable, Step-Functions-name-safe id of the window."""
        minutes = round((self.end - self.start).total_seconds() / 60)
        return f"{self.end.strftime('%Y%m%dT%H%MZ')}-{minutes}m"

    def to_dict(self) -> dict:
        return {"start": iso(self.start), "end": iso(self.end), "id": self.id}


def iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).isoformat(timespec="microseconds")[:26] + "Z"


def parse_time(value: str | datetime | None) -> datetime:
    if value is None:
        return datetime.now(timezone.utc)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    try:
        ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO-8601 time: {value!r}") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def window_for(now: datetime | str | None, cfg: DriftConfig) -> Window:
    """``[end - window, end]`` with end floored to the period (UTC epoch multiples)."""
    now = parse_time(now)
    period = cfg.period_minutes * 60
    end = datetime.fromtimestamp(int(now.timestamp() // period * period), timezone.utc)
    return Window(end - timedelta(minutes=cfg.window_minutes), end)


def compute(profile: Mapping, counts: Any, *, holdout_metrics: Mapping | None = None,
            cfg: DriftConfig = DriftConfig()) -> dict:
    """Statistics of the window's champion traffic (summed bin counts) against its profile."""
    t0 = time.perf_counter()
    n = counts.samples
    out: dict[str, Any] = {"samples": n, "features": {}, "prediction": None, "performance": None,
                           "current_proportions": {}}
    if n:
        eps = profile.get("epsilon", P.DEFAULT_EPS)
        entries = [(name, profile["features"][name], counts.features.get(name), cfg.psi_threshold)
                   for name in F.FEATURE_NAMES if name in profile["features"]]
        if "prediction" in profile:
            entries.append(("prediction", profile["prediction"], counts.prediction, cfg.prediction_psi_threshold))
        for name, entry, binned, threshold in entries:
            if binned is None:
                continue
            cur = P.proportions(np.asarray(binned, dtype=np.float64))
            ref = np.asarray(entry["proportions"])
            s = {"psi": P.psi(ref, cur, eps), "kl": P.kl_divergence(ref, cur, eps),
                 "js": P.js_divergence(ref, cur, eps), "n": n}
            s["drifted"] = bool(s["psi"] >= threshold)
            out["current_proportions"][name] = cur.tolist()
            if name == "prediction":
                out["prediction"] = s
            else:
                out["features"][name] = s
    out["performance"] = performance(counts, holdout_metrics, cfg)
    out["compute_ms"] = round((time.perf_counter() - t0) * 1000, 3)
    return out


def performance(counts: Any, holdout_metrics: Mapping | None, cfg: DriftConfig) -> dict:
    """RMSE/MAE of the window's labelled champion requests vs the champion's holdout RMSE."""
    n = counts.labelled
    ref = (holdout_metrics or {}).get("rmse")
    res: dict[str, Any] = {"labelled": int(n), "reference_rmse": ref, "rmse": None, "mae": None,
                           "degradation": None, "degraded": False, "enough": bool(n >= max(cfg.min_feedback, 1))}
    if n:
        res["rmse"] = float(np.sqrt(counts.sq_err_sum / n))
        res["mae"] = float(counts.abs_err_sum / n)
        if ref:
            res["degradation"] = res["rmse"] / float(ref) - 1.0
            res["degraded"] = bool(res["enough"] and res["degradation"] >= cfg.rmse_degradation)
    return res


def verdict(stats: Mapping, cfg: DriftConfig) -> dict:
    """-> {"status", "trigger", "drifted_features", "reasons"}."""
    drifted = [k for k, v in stats["features"].items() if v["drifted"]]
    reasons = []
    if stats["samples"] < cfg.min_samples:
        return {"status": INSUFFICIENT, "trigger": False, "drifted_features": drifted,
                "reasons": [f"{stats['samples']} samples in the window < min_samples {cfg.min_samples}"]}
    if len(drifted) >= cfg.min_drifted_features:
        reasons.append(f"{len(drifted)} features with PSI >= {cfg.psi_threshold} "
                       f"(>= {cfg.min_drifted_features}): {', '.join(drifted)}")
    pred = stats.get("prediction")
    if pred and pred["drifted"]:
        reasons.append(f"prediction PSI {pred['psi']:.3f} >= {cfg.prediction_psi_threshold}")
    perf = stats.get("performance") or {}
    if perf.get("degraded"):
        reasons.append(f"RMSE {perf['rmse']:.3f} on {perf['labelled']} labelled requests is "
                       f"{perf['degradation'] * 100:.0f}% above the holdout RMSE {perf['reference_rmse']:.3f} "
                       f"(>= {cfg.rmse_degradation * 100:.0f}%)")
    trigger = bool(reasons)
    if not trigger:
        reasons.append(f"{len(drifted)} drifted feature(s) (< {cfg.min_drifted_features}), prediction PSI "
                       f"{(pred or {}).get('psi', float('nan')):.3f}, performance "
                       f"{'not degraded' if perf.get('enough') else 'not enough feedback'}")
    return {"status": DRIFT if trigger else NO_DRIFT, "trigger": trigger, "drifted_features": drifted,
            "reasons": reasons}


def json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, datetime):
        return iso(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def metrics_of(doc: Mapping) -> list[tuple[str, float, dict]]:
    """(name, value, dimensions) for CloudWatch: samples, drifted-feature count, PSI per feature."""
    out = [(N.METRIC_DRIFT_SAMPLES, float(doc.get("samples", 0)), {}),
           (N.METRIC_DRIFTED_FEATURES, float(len(doc.get("drifted_features", []))), {}),
           (N.METRIC_DRIFT_TRIGGERED, 1.0 if doc.get("trigger") else 0.0, {})]
    for name, s in (doc.get("features") or {}).items():
        out.append((N.METRIC_FEATURE_PSI, float(s["psi"]), {"feature": name}))
    if doc.get("prediction"):
        out.append((N.METRIC_PREDICTION_PSI, float(doc["prediction"]["psi"]), {}))
    if (doc.get("performance") or {}).get("rmse") is not None:
        out.append((N.METRIC_WINDOW_RMSE, float(doc["performance"]["rmse"]), {}))
    return out


def execution_name(result: DriftResult | Mapping) -> str:
    """Derived from the window (and the champion it was compared with): the same window can never
    start two executions — Step Functions refuses a second execution with the same name."""
    result = result if isinstance(result, DriftResult) else DriftResult.model_validate(result)
    return f"retrain-{result.window.id}-v{result.champion.version if result.champion else 'none'}"[:80]


def execution_input(result: DriftResult, **extra: Any) -> dict:
    """The retraining run's input (``extra``: criteria/training/data overrides), as the state machine reads it."""
    summary = DriftSummary(**{k: getattr(result, k) for k in ("status", "drifted_features", "reasons", "samples",
                                                             "result_uri")})
    return dump(ExecutionInput(run_id=execution_name(result), window=result.window, champion=result.champion,
                               check_id=result.check_id, drift=summary, **extra))
