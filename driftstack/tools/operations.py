"""The operations figures of a deployed stack, read from its tables and CloudWatch: what the dashboard
shows where LocalStack cannot render it (``driftstack status``, ``driftstack rollout show``).

``collect(target, outputs)`` reads the rollout state, last rollout outcome and canary evaluation,
the newest drift checks and retraining decisions, the state of every alarm and the serving traffic.
Each part fails on its own ("unavailable: ...") so status always prints what it can.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from driftstack.contract import names as N
from driftstack.tools.api_client import _output
from driftstack.tools.aws_target import Target


def tables(target: Target, outputs: dict[str, str]):
    """The models table and the history table of the stack."""
    ddb = target.resource("dynamodb")
    return ddb.Table(_output(outputs, "ModelsTableName")), ddb.Table(_output(outputs, "HistoryTableName"))


def _safe(fn: Callable[[], Any]) -> Any:
    from botocore import exceptions as be

    try:
        return fn()
    except (be.ConnectionError, be.NoCredentialsError, be.NoRegionError, be.ProfileNotFound):
        raise  # nothing can be read: the CLI says what to start or configure
    except Exception as exc:  # noqa: BLE001 - one missing piece must not hide the others
        return f"unavailable: {type(exc).__name__}: {exc}"


def _drift_summary(doc: dict) -> dict:
    return {k: doc.get(k) for k in ("check_id", "checked_at", "status", "trigger", "samples", "drifted_features",
                                    "max_psi", "prediction_psi", "reasons", "execution", "report_uri")}


def alarm_states(target: Target, outputs: dict[str, str]) -> list[dict]:
    names = [n for n in (outputs.get("AlarmNames") or "").split(",") if n]
    if not names:
        return []
    cw = target.client("cloudwatch")
    found = {}
    for i in range(0, len(names), 100):
        for a in cw.describe_alarms(AlarmNames=names[i:i + 100]).get("MetricAlarms", []):
            found[a["AlarmName"]] = {"alarm": a["AlarmName"], "state": a["StateValue"],
                                     "since": str(a.get("StateUpdatedTimestamp", "")),
                                     "reason": a.get("StateReason", "")}
    return [found.get(n, {"alarm": n, "state": "NOT_FOUND"}) for n in names]


# The dashboard's serving figures, as the predict function emits them (EMF, namespace driftstack).
TRAFFIC_METRICS = (("requests", N.METRIC_PREDICTIONS, "Sum"), ("errors", N.METRIC_ERRORS, "Sum"),
                   ("validation_errors", N.METRIC_VALIDATION_ERRORS, "Sum"), ("no_model", N.METRIC_NO_MODEL, "Sum"),
                   ("log_spills", N.METRIC_REQUEST_LOG_SPILLS, "Sum"),
                   ("latency_ms_avg", N.METRIC_PREDICT_LATENCY, "Average"),
                   ("latency_ms_max", N.METRIC_PREDICT_LATENCY, "Maximum"))


def traffic(target: Target, minutes: int = 60, service: str = N.PREDICT_SERVICE) -> dict[str, float | None]:
    """The last ``minutes`` of the predict function's metrics, one figure each (what the dashboard
    plots; LocalStack cannot render dashboards, so `driftstack status` prints these)."""
    end = datetime.now(UTC) + timedelta(minutes=1)  # the API takes whole seconds: keep "now" inside
    queries = [{"Id": f"m{i}", "ReturnData": True, "MetricStat": {
        "Metric": {"Namespace": "driftstack", "MetricName": metric, "Dimensions": [{"Name": "service", "Value": service}]},
        "Period": (minutes + 1) * 60, "Stat": stat}} for i, (_, metric, stat) in enumerate(TRAFFIC_METRICS)]
    results = target.client("cloudwatch").get_metric_data(
        MetricDataQueries=queries, StartTime=end - timedelta(minutes=minutes + 1), EndTime=end)["MetricDataResults"]
    values = {r["Id"]: r["Values"] for r in results}
    out: dict[str, float | None] = {"minutes": minutes}
    for i, (label, _, stat) in enumerate(TRAFFIC_METRICS):
        vals = values.get(f"m{i}") or []
        # No datapoint: nothing happened (a count is 0) or nothing to measure (a latency is unknown).
        out[label] = (sum(vals) if stat == "Sum" else max(vals)) if vals else (0 if stat == "Sum" else None)
    return out


def collect_rollout(models) -> dict[str, Any]:
    """The active rollout, the last rollout's outcome and the last canary evaluation (each part on its own)."""
    from driftstack.adapters import rollout as ro

    def active():
        r = ro.read(models)
        return r.info() if r else None

    def last_outcome():
        o = ro.last_outcome(models)
        return {k: o.get(k) for k in ("rollout_id", "outcome", "reason", "mode", "candidate_version",
                                      "incumbent_version", "ended_at")} if o else None

    def last_eval():
        e = ro.last_evaluation(models)
        keys = ("rollout_id", "outcome", "reasons", "signals", "comparison", "evaluated_at")
        return {k: e[k] for k in keys if k in e} if e else None

    return {"rollout": _safe(active), "last_rollout": _safe(last_outcome), "last_canary_evaluation": _safe(last_eval)}


def collect(target: Target, outputs: dict[str, str], checks: int = 1, decisions: int = 1) -> dict[str, Any]:
    """Everything `driftstack status` shows beyond the API; ``checks``/``decisions``: how many of the
    newest drift checks and retraining decisions."""
    from driftstack.adapters import decision_store, drift_store

    models, history = tables(target, outputs)
    return {**collect_rollout(models),
            "drift_checks": _safe(lambda: [_drift_summary(c) for c in drift_store.list_checks(history, checks)]),
            "decisions": _safe(lambda: decision_store.list_records(history, decisions)),
            "alarms": _safe(lambda: alarm_states(target, outputs)), "traffic": _safe(lambda: traffic(target))}


class ApprovalError(Exception):
    """The run has no pending approval, or its workflow stopped waiting (token expired, execution ended)."""


def complete_approval(sfn, history, run_id: str, approved: bool, *, by: str, reason: str = "") -> dict:
    """Answer a promotion waiting for a human (`driftstack approve/reject`, the console's buttons)."""
    from botocore.exceptions import ClientError

    from driftstack.adapters import decision_store

    try:
        return decision_store.complete_approval(sfn, history, run_id, approved, by=by, reason=reason)
    except KeyError as exc:
        raise ApprovalError(f"run {run_id!r} has no pending approval; see `driftstack decisions pending`") from exc
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken"):
            raise
        raise ApprovalError(f"cannot {'approve' if approved else 'reject'} {run_id}: {exc}") from exc
