"""Champion vs challenger: the promotion criteria, the decision, and the decision records.

    python -m driftstack.decision list|show RUN_ID|approve RUN_ID|reject RUN_ID [--reason TEXT]

:func:`decide` is the ONE place the criteria are applied (the decide Lambda calls it; tests call it).
Defaults: the challenger's holdout RMSE must be at least 0.5 lower, its single-row latency at most
20% higher (differences under a small noise floor are ignored: two GBTs of the same size measured on
a busy host differ by tens of microseconds), and its validation and parity gates must have passed.
All configurable (env ``DECISION_<FIELD>`` on the Lambda, or ``criteria`` in the execution input).

Every retraining run leaves one decision record: ``decisions/<run_id>.json`` in S3 (the whole
document: criteria, both models' metrics, outcome, reasons) and a summary item in the history table
(pk ``decision``, sk ``<started_at>#<run_id>``) so runs list newest first with one Query.
Lambda-safe: standard library + boto3 only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from typing import Any

DECISIONS_PREFIX = "decisions/"
HISTORY_DECISION = "decision"
HISTORY_APPROVAL = "approval"

PROMOTE, REJECT = "promote", "reject"
PROMOTED, REJECTED, FAILED, AWAITING_APPROVAL = "promoted", "rejected", "failed", "awaiting_approval"
# a promotion rolled out as a canary: "canary" while it runs, then "promoted" or "rolled_back"
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

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> Criteria:
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown decision criteria {unknown}; expected some of {sorted(known)}")
        out = {}
        for k, v in values.items():
            typ = type(getattr(cls, k))
            try:
                out[k] = (v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes")) if typ is bool \
                    else typ(v)
            except (TypeError, ValueError):
                raise ValueError(f"decision criterion {k}: cannot read {v!r} as {typ.__name__}") from None
        return cls(**out)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> Criteria:
        env = os.environ if env is None else env
        vals = {f.name: env[f"DECISION_{f.name.upper()}"] for f in fields(cls)
                if env.get(f"DECISION_{f.name.upper()}")}
        return cls.from_mapping({**vals, **(overrides or {})})


def _get(d: Mapping, *path, default=None):
    for p in path:
        if not isinstance(d, Mapping) or p not in d:
            return default
        d = d[p]
    return d


def decide(evaluation: Mapping[str, Any], criteria: Criteria = Criteria()) -> dict[str, Any]:
    """-> {"outcome": promote|reject, "reasons": [...], "checks": [{name, passed, detail}]}.

    ``evaluation``: {"champion": {"metrics", "latency"}, "challenger": {"metrics", "latency",
    "parity", "validation"}, "holdout": {"rows"}} (see spark_jobs.retrain)."""
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
    return {"outcome": outcome, "reasons": reasons, "checks": checks, "criteria": asdict(criteria)}


# ---------------------------------------------------------------- records

def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_key(run_id: str) -> str:
    return f"{DECISIONS_PREFIX}{run_id}.json"


def load_record(s3, bucket: str, run_id: str) -> dict | None:
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=record_key(run_id))["Body"].read())
    except Exception as exc:  # noqa: BLE001
        if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise


def save_record(s3, bucket: str, history_table, record: dict) -> dict:
    """Write the whole record to S3 and its summary to the history table (idempotent per run_id)."""
    record = {**record, "updated_at": now_iso()}
    record.setdefault("started_at", record["updated_at"])
    s3.put_object(Bucket=bucket, Key=record_key(record["run_id"]),
                  Body=json.dumps(record, indent=2, default=str).encode(), ContentType="application/json")
    if history_table is not None:
        history_table.put_item(Item={"pk": HISTORY_DECISION, "sk": f"{record['started_at']}#{record['run_id']}",
                                     "run_id": record["run_id"], "doc": json.dumps(summary(record), default=str)})
    return record


def update_record(s3, bucket: str, history_table, run_id: str, **changes) -> dict:
    """Merge ``changes`` into the run's record (creating it if the run failed before it existed)."""
    record = load_record(s3, bucket, run_id) or {"run_id": run_id}
    record.update(changes)
    return save_record(s3, bucket, history_table, record)


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


def list_records(history_table, limit: int = 20) -> list[dict]:
    """Decision summaries, newest first."""
    resp = history_table.query(KeyConditionExpression="pk = :p",
                               ExpressionAttributeValues={":p": HISTORY_DECISION},
                               ScanIndexForward=False, Limit=limit)
    return [json.loads(i["doc"]) for i in resp.get("Items", [])]


# ---------------------------------------------------------------- human approval (task token)

def store_approval_request(history_table, run_id: str, task_token: str, details: Mapping) -> None:
    history_table.put_item(Item={"pk": HISTORY_APPROVAL, "sk": run_id, "task_token": task_token,
                                 "requested_at": now_iso(), "doc": json.dumps(dict(details), default=str)})


def pending_approvals(history_table) -> list[dict]:
    resp = history_table.query(KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": HISTORY_APPROVAL})
    return [{"run_id": i["sk"], "requested_at": i.get("requested_at"), **json.loads(i.get("doc", "{}"))}
            for i in resp.get("Items", [])]


def complete_approval(sfn, history_table, run_id: str, approved: bool, *, by: str = "cli", reason: str = "") -> dict:
    """Answer a waiting approval step (SendTaskSuccess with the decision); raises KeyError when the
    run has no pending approval."""
    item = history_table.get_item(Key={"pk": HISTORY_APPROVAL, "sk": run_id}, ConsistentRead=True).get("Item")
    if not item:
        raise KeyError(f"no pending approval for run {run_id!r}")
    answer = {"approved": bool(approved), "by": by, "reason": reason, "at": now_iso()}
    sfn.send_task_success(taskToken=item["task_token"], output=json.dumps(answer))
    history_table.delete_item(Key={"pk": HISTORY_APPROVAL, "sk": run_id})
    return answer


# ---------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    import argparse

    import boto3
    from botocore.config import Config

    p = argparse.ArgumentParser(prog="python -m driftstack.decision", description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=["list", "show", "approve", "reject", "pending"])
    p.add_argument("run_id", nargs="?")
    p.add_argument("--bucket", default=os.environ.get("ARTIFACT_BUCKET") or os.environ.get("DRIFTSTACK_BUCKET"))
    p.add_argument("--history-table", default=os.environ.get("HISTORY_TABLE"))
    p.add_argument("--reason", default="")
    p.add_argument("--limit", type=int, default=20)
    a = p.parse_args(argv)
    if not a.history_table:
        p.error("--history-table (or HISTORY_TABLE) is required")
    table = boto3.resource("dynamodb").Table(a.history_table)
    if a.action == "list":
        out: Any = list_records(table, a.limit)
    elif a.action == "pending":
        out = pending_approvals(table)
    elif not a.run_id:
        p.error(f"{a.action} needs RUN_ID")
    elif a.action == "show":
        if not a.bucket:
            p.error("--bucket (or ARTIFACT_BUCKET) is required")
        out = load_record(boto3.client("s3", config=Config(s3={"addressing_style": "path"})), a.bucket, a.run_id)
    else:
        out = complete_approval(boto3.client("stepfunctions"), table, a.run_id, a.action == "approve",
                                by=os.environ.get("USER", "cli"), reason=a.reason)
    print(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
