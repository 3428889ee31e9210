"""Champion vs challenger: the promotion criteria and the decision.

:func:`decide` is the ONE place the criteria are applied (the decide Lambda calls it; tests call it).
Defaults: the challenger's holdout RMSE must be at least 0.5 lower, its single-row latency at most
20% higher (differences under a small noise floor are ignored: two GBTs of the same size measured on
a busy host differ by tens of microseconds), and its validation and parity gates must have passed.
All configurable (env ``DECISION_<FIELD>`` on the Lambda, or ``criteria`` in the execution input;
both read by :class:`driftstack.settings.DecisionThresholds`).
Records of each decision: :mod:`driftstack.adapters.decision_store`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from driftstack.contract.documents import Verdict, dump

PROMOTE, REJECT = "promote", "reject"


PROMOTED, REJECTED, FAILED, AWAITING_APPROVAL = "promoted", "rejected", "failed", "awaiting_approval"


CANARY, ROLLED_BACK = "canary", "rolled_back"


@dataclass(frozen=True)
class Criteria:
    min_rmse_improvement: float = 0.5     # champion RMSE - challenger RMSE must be >= this (USD)
    max_latency_increase: float = 0.20    # challenger p50 <= champion p50 x (1 + this) ...
    latency_noise_floor_ms: float = 0.05  # ... or within this many ms of it (measurement noise)
    require_validation: bool = True       # training data passed validation
    require_parity: bool = True           # ONNX matched Spark within tolerance
    min_holdout_rows: int = 50            # too small a holdout cannot tell two models apart
    require_approval: bool = False        # a human confirms a promotion (task token)


def _get(d: Mapping, *path, default=None):
    for p in path:
        if not isinstance(d, Mapping) or p not in d:
            return default
        d = d[p]
    return d


def decide(evaluation: Mapping[str, Any], criteria: Criteria = Criteria()) -> dict[str, Any]:
    """-> {"outcome": promote|reject, "reasons": [...], "checks": [{name, passed, detail}]}.

    ``evaluation``: {"champion": {"metrics", "latency"}, "challenger": {"metrics", "latency",
    "parity", "validation"}, "holdout": {"rows"}}: a dumped
    :class:`driftstack.contract.documents.TrainingResult` (written by spark_jobs.retrain)."""
    checks: list[dict[str, Any]] = []

    def check(name: str, passed: bool, detail: str) -> None:
        checks.append({"name": name, "passed": bool(passed), "detail": detail})

    champ_rmse = _get(evaluation, "champion", "metrics", "rmse")
    chal_rmse = _get(evaluation, "challenger", "metrics", "rmse")
    if champ_rmse is None or chal_rmse is None:
        missing = [n for n, v in (("champion.metrics.rmse", champ_rmse), ("challenger.metrics.rmse", chal_rmse))
                   if v is None]
        raise ValueError(f"evaluation incomplete: missing {', '.join(missing)}")
    gain = float(champ_rmse) - float(chal_rmse)
    check("rmse", gain >= criteria.min_rmse_improvement,
          f"RMSE {chal_rmse:.4f} vs champion {champ_rmse:.4f}: improvement {gain:+.4f} "
          f"(needs >= {criteria.min_rmse_improvement})")

    rows = int(_get(evaluation, "holdout", "rows", default=0) or 0)
    check("holdout_rows", rows >= criteria.min_holdout_rows,
          f"{rows} fresh holdout rows (needs >= {criteria.min_holdout_rows})")

    c_lat = _get(evaluation, "champion", "latency", "single_row_p50_ms")
    n_lat = _get(evaluation, "challenger", "latency", "single_row_p50_ms")
    if c_lat is None or n_lat is None:
        check("latency", False, "single-row latency not measured for both models")
    else:
        limit = max(c_lat * (1 + criteria.max_latency_increase), c_lat + criteria.latency_noise_floor_ms)
        check("latency", n_lat <= limit,
              f"single-row p50 {n_lat:.4f} ms vs champion {c_lat:.4f} ms (limit {limit:.4f} ms: "
              f"+{criteria.max_latency_increase:.0%} or +{criteria.latency_noise_floor_ms} ms)")

    if criteria.require_validation:
        v = _get(evaluation, "challenger", "validation", default={}) or {}
        ok = bool(v.get("passed", False))
        check("validation", ok, f"training data validation {'passed' if ok else 'failed'}: "
              f"{v.get('rows_out', '?')} of {v.get('rows_in', '?')} rows kept"
              + (f" ({v['error']})" if v.get("error") else ""))
    if criteria.require_parity:
        par = _get(evaluation, "challenger", "parity", default={}) or {}
        ok = bool(par.get("passed", False))
        check("parity", ok, f"ONNX vs Spark max abs diff {par.get('max_abs_diff', float('nan')):.3g} on "
              f"{par.get('rows', 0)} rows (tolerance {par.get('tolerance', '?')})")

    failed = [c for c in checks if not c["passed"]]
    outcome = REJECT if failed else PROMOTE
    reasons = [c["detail"] for c in failed] if failed else [c["detail"] for c in checks]
    return dump(Verdict(outcome=outcome, reasons=reasons, checks=checks, criteria=asdict(criteria)))


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def summary(record: Mapping) -> dict:
    def metrics(role):
        m = _get(record, "evaluation", role, "metrics", default={}) or {}
        return {k: m.get(k) for k in ("rmse", "mae", "r2", "mape")} if m else None

    return {"run_id": record.get("run_id"), "outcome": record.get("outcome"), "started_at": record.get("started_at"),
            "updated_at": record.get("updated_at"), "reasons": record.get("reasons", []),
            "champion_version": _get(record, "champion", "version"),
            "challenger_version": _get(record, "evaluation", "challenger", "version"),
            "champion_metrics": metrics("champion"), "challenger_metrics": metrics("challenger"),
            "window": _get(record, "window", "id"), "error": record.get("error")}
