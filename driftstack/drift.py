"""The drift check: a window of logged traffic against the champion's reference profile.

    python -m driftstack.drift --bucket B --models-table T [--window-minutes 1440] [--at ISO]

Steps (each a plain function, so the Lambda, the CLI, the benchmark and the tests share them):

1. :func:`window_for` — the window ``[end - minutes, end]`` with ``end`` floored to the check period,
   so two checks fired for the same period (a retried EventBridge delivery, a manual re-run) see
   the same window and derive the same id (the retraining execution name comes from it).
2. :func:`load_window` — the window's per-slot aggregates (:mod:`driftstack.aggregates`: bin counts
   in the champion's profile bins, feedback error sums), summed: one small object per slot, so
   the cost of a check grows with the window's length, not with its traffic.
3. :func:`compute` — per-feature PSI/KL/JS and prediction PSI with :mod:`driftstack.profile` (the
   one implementation), and performance drift (RMSE/MAE of the window's feedback vs the champion's
   holdout figures).
4. :func:`decide` — thresholds → ``insufficient_data`` / ``no_drift`` / ``drift`` and ``trigger``.
5. :func:`persist` — JSON result + HTML report to S3, a summary item to the history table.

Only numpy, boto3 and the driftstack contract are imported: this module runs inside the Lambda.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from driftstack import aggregates as G
from driftstack import archive as A
from driftstack import features as F
from driftstack import profile as P
from driftstack import registry

RESULTS_PREFIX = "drift/results/"
REPORTS_PREFIX = "drift/reports/"
HISTORY_DRIFT = "drift"          # history-table partition of drift results

INSUFFICIENT = "insufficient_data"
NO_DRIFT = "no_drift"
DRIFT = "drift"
NO_CHAMPION = "no_champion"


class DriftCheckError(Exception):
    """The check cannot run (no profile, bad configuration); the message says what is missing."""


# ---------------------------------------------------------------- configuration

@dataclass(frozen=True)
class DriftConfig:
    """Thresholds and window settings (env: DRIFT_<FIELD upper-cased>, e.g. DRIFT_PSI_THRESHOLD)."""

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

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> DriftConfig:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown drift config field(s) {unknown}; expected some of {sorted(known)}")
        out = {}
        for k, v in values.items():
            typ = type(getattr(cls, k))
            try:
                out[k] = (str(v).lower() in ("1", "true", "yes")) if typ is bool else typ(v)
            except (TypeError, ValueError):
                raise ValueError(f"drift config {k}: cannot read {v!r} as {typ.__name__}") from None
        return cls(**out)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> DriftConfig:
        env = os.environ if env is None else env
        vals = {f.name: env[f"DRIFT_{f.name.upper()}"] for f in fields(cls) if env.get(f"DRIFT_{f.name.upper()}")}
        return cls.from_mapping({**vals, **overrides})


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
        return {"start": _iso(self.start), "end": _iso(self.end), "id": self.id}


def _iso(ts: datetime) -> str:
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


# ---------------------------------------------------------------- reading the aggregates

def check_alignment(cfg: DriftConfig, layout: A.Layout) -> None:
    """A window must be a whole number of archive slots (aggregates cannot be split)."""
    for name in ("window_minutes", "period_minutes"):
        value = getattr(cfg, name)
        if value % layout.slot_minutes:
            raise DriftCheckError(f"drift config {name}={value:g} is not a multiple of the archive's "
                                  f"{layout.slot_minutes}-minute slots (context archive_slot_minutes)")


def load_window(s3, layout: A.Layout, window: Window, champion: registry.Pointer) -> G.WindowCounts:
    """The champion's traffic in the window as summed bin counts (one aggregate object per slot)."""
    docs, nbytes = G.read_window(s3, layout, window.start, window.end)
    counts = G.sum_window(docs, champion.version, champion.sha256[:16])
    counts.bytes_read = nbytes
    return counts


# ---------------------------------------------------------------- computing and deciding

def compute(profile: Mapping, counts: G.WindowCounts, *, holdout_metrics: Mapping | None = None,
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
            cur = G.proportions_of(binned)
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


def performance(counts: G.WindowCounts, holdout_metrics: Mapping | None, cfg: DriftConfig) -> dict:
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


def decide(stats: Mapping, cfg: DriftConfig) -> dict:
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


# ---------------------------------------------------------------- the whole check

def load_json(s3, bucket: str, key: str) -> dict:
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except Exception as exc:  # noqa: BLE001 - name the object that is missing
        raise DriftCheckError(f"cannot read s3://{bucket}/{key}: {type(exc).__name__}: {exc}") from exc


def run_check(*, s3, models_table, layout: A.Layout, now: datetime | str | None = None,
              cfg: DriftConfig = DriftConfig(), champion: registry.Pointer | None = None) -> dict:
    """Read, compute and decide (no writes). Returns the result document.
    The caller drains the log queue first (driftstack.log_drain) so the window is complete."""
    t0 = time.perf_counter()
    check_alignment(cfg, layout)
    window = window_for(now, cfg)
    champion = champion or registry.read_pointer(models_table)
    check_id = f"{window.id}-v{champion.version}" if champion else f"{window.id}-none"
    doc: dict[str, Any] = {"check_id": check_id, "window": window.to_dict(), "checked_at": _iso(datetime.now(timezone.utc)),
                           "config": asdict(cfg)}
    if champion is None:
        return {**doc, "status": NO_CHAMPION, "trigger": False, "samples": 0, "champion": None,
                "reasons": ["no champion pointer: nothing to compare against"]}
    doc["champion"] = {"model_name": champion.model_name, "version": champion.version,
                       "sha256": champion.sha256, "prefix": champion.prefix}
    prof = load_json(s3, champion.bucket, champion.profile_key)
    meta = load_json(s3, champion.bucket, champion.metadata_key)
    if prof.get("contract_hash") not in (None, F.contract_hash()):
        raise DriftCheckError(f"profile {champion.profile_key} was built for another feature contract")
    t_read = time.perf_counter()
    counts = load_window(s3, layout, window, champion)
    read_s = time.perf_counter() - t_read
    stats = compute(prof, counts, holdout_metrics=(meta.get("metrics") or {}).get("holdout"), cfg=cfg)
    verdict = decide(stats, cfg)
    doc.update(stats)
    doc.update(verdict)
    doc["reference"] = {"profile_key": champion.profile_key, "rows": prof.get("rows"),
                        "profile": {name: {k: e[k] for k in ("kind", "proportions", "edges", "categories") if k in e}
                                    for name, e in {**prof["features"], **({"prediction": prof["prediction"]}
                                                                           if "prediction" in prof else {})}.items()}}
    doc["requests_in_window"] = counts.requests_in_window
    doc["versions_in_window"] = counts.versions_seen
    doc["io"] = {"aggregates": counts.slots, "bytes": counts.bytes_read, "read_seconds": round(read_s, 3),
                 "unmatched_feedback": counts.unmatched_feedback, "profile_mismatch": counts.profile_mismatch}
    doc["seconds"] = round(time.perf_counter() - t0, 3)
    return doc


def result_keys(doc: Mapping) -> tuple[str, str]:
    day = doc["window"]["end"][:10]
    return (f"{RESULTS_PREFIX}dt={day}/{doc['check_id']}.json", f"{REPORTS_PREFIX}dt={day}/{doc['check_id']}.html")


def persist(doc: dict, *, s3, bucket: str, history_table=None) -> dict:
    """Write the JSON result and the HTML report to S3 and a summary item to the history table."""
    from driftstack import report

    json_key, html_key = result_keys(doc)
    doc["result_uri"], doc["report_uri"] = f"s3://{bucket}/{json_key}", f"s3://{bucket}/{html_key}"
    s3.put_object(Bucket=bucket, Key=json_key, Body=json.dumps(doc, default=_json_default).encode(),
                  ContentType="application/json")
    s3.put_object(Bucket=bucket, Key=html_key, Body=report.render(doc).encode(), ContentType="text/html")
    if history_table is not None:
        history_table.put_item(Item=history_item(doc))
    return doc


def history_item(doc: Mapping) -> dict:
    """The compact, listable summary (DynamoDB: strings/numbers as Decimal-free strings)."""
    summary = {"check_id": doc["check_id"], "status": doc["status"], "trigger": bool(doc["trigger"]),
               "samples": int(doc.get("samples", 0)), "window": doc["window"],
               "drifted_features": doc.get("drifted_features", []),
               "max_psi": max((v["psi"] for v in doc.get("features", {}).values()), default=None),
               "prediction_psi": (doc.get("prediction") or {}).get("psi"),
               "champion_version": (doc.get("champion") or {}).get("version"),
               "reasons": doc.get("reasons", []), "result_uri": doc.get("result_uri"),
               "report_uri": doc.get("report_uri"), "execution": doc.get("execution")}
    return {"pk": HISTORY_DRIFT, "sk": f"{doc['checked_at']}#{doc['check_id']}",
            "doc": json.dumps(summary, default=_json_default)}


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, datetime):
        return _iso(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def metrics_of(doc: Mapping) -> list[tuple[str, float, dict]]:
    """(name, value, dimensions) for CloudWatch: samples, drifted-feature count, PSI per feature."""
    out = [("DriftSamples", float(doc.get("samples", 0)), {}),
           ("DriftedFeatures", float(len(doc.get("drifted_features", []))), {}),
           ("DriftTriggered", 1.0 if doc.get("trigger") else 0.0, {})]
    for name, s in (doc.get("features") or {}).items():
        out.append(("FeaturePSI", float(s["psi"]), {"feature": name}))
    if doc.get("prediction"):
        out.append(("PredictionPSI", float(doc["prediction"]["psi"]), {}))
    if (doc.get("performance") or {}).get("rmse") is not None:
        out.append(("WindowRMSE", float(doc["performance"]["rmse"]), {}))
    return out


def list_checks(history_table, limit: int = 20) -> list[dict]:
    """Most recent drift results first (from the history table)."""
    resp = history_table.query(KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": HISTORY_DRIFT},
                               ScanIndexForward=False, Limit=limit)
    return [json.loads(i["doc"]) for i in resp.get("Items", [])]


# ---------------------------------------------------------------- starting the retraining workflow

def execution_name(doc: Mapping) -> str:
    """Derived from the window (and the champion it was compared with): the same window can never
    start two executions — Step Functions refuses a second execution with the same name."""
    return f"retrain-{doc['window']['id']}-v{(doc.get('champion') or {}).get('version', 'none')}"[:80]


def execution_input(doc: Mapping, **extra: Any) -> dict:
    return {"run_id": execution_name(doc), "window": doc["window"], "champion": doc.get("champion"),
            "check_id": doc.get("check_id"),
            "drift": {k: doc.get(k) for k in ("status", "drifted_features", "reasons", "samples", "result_uri")},
            **extra}


def start_retraining(sfn, state_machine_arn: str, doc: Mapping, *, cooldown_minutes: float = 0.0,
                     now: datetime | None = None, **extra: Any) -> dict:
    """Start the state machine for a triggering result, at most once per window.
    -> {"started": bool, "name", "execution_arn"?, "message"}."""
    name = execution_name(doc)
    running = sfn.list_executions(stateMachineArn=state_machine_arn, statusFilter="RUNNING",
                                  maxResults=10).get("executions", [])
    if running:
        return {"started": False, "name": name, "execution_arn": running[0]["executionArn"],
                "message": f"not started: execution {running[0]['name']} is still running"}
    if cooldown_minutes > 0:
        latest = sfn.list_executions(stateMachineArn=state_machine_arn, maxResults=1).get("executions", [])
        if latest:
            started = latest[0]["startDate"]
            age = ((now or datetime.now(timezone.utc)) - started).total_seconds() / 60
            if age < cooldown_minutes:
                return {"started": False, "name": name, "execution_arn": latest[0]["executionArn"],
                        "message": f"not started: cooldown, execution {latest[0]['name']} started "
                                   f"{age:.1f} min ago (< {cooldown_minutes} min)"}
    try:
        resp = sfn.start_execution(stateMachineArn=state_machine_arn, name=name,
                                   input=json.dumps(execution_input(doc, **extra), default=_json_default))
    except Exception as exc:  # noqa: BLE001
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        if code == "ExecutionAlreadyExists":
            return {"started": False, "name": name,
                    "message": f"not started: an execution for window {doc['window']['id']} already exists ({name})"}
        raise
    return {"started": True, "name": name, "execution_arn": resp["executionArn"],
            "message": f"started retraining execution {name}"}


def invoke_check(lambda_client, function_name: str, *, at: str | None = None, ignore_cooldown: bool = False,
                 config: Mapping[str, Any] | None = None) -> dict:
    """Run the deployed drift-check Lambda now (what the schedule does; used by `driftstack drift-check`).
    Returns its summary; raises RuntimeError with the function's error message if it failed."""
    event: dict[str, Any] = {"ignore_cooldown": ignore_cooldown}
    if at:
        event["time"] = at
    if config:
        event["config"] = dict(config)
    resp = lambda_client.invoke(FunctionName=function_name, Payload=json.dumps(event).encode())
    payload = json.loads(resp["Payload"].read() or b"null")
    if resp.get("FunctionError"):
        raise RuntimeError(f"drift check failed: {(payload or {}).get('errorMessage', payload)}")
    return payload


# ---------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    import argparse

    import boto3
    from botocore.config import Config

    p = argparse.ArgumentParser(prog="python -m driftstack.drift", description=__doc__.split("\n\n")[0])
    p.add_argument("--bucket", default=os.environ.get("ARTIFACT_BUCKET") or os.environ.get("DRIFTSTACK_BUCKET"))
    p.add_argument("--models-table", default=os.environ.get("MODELS_TABLE"))
    p.add_argument("--history-table", default=os.environ.get("HISTORY_TABLE"),
                   help="also write the summary item here")
    p.add_argument("--at", help="check time (ISO-8601, default now)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="drift config override, e.g. --set window_minutes=60 (repeatable)")
    p.add_argument("--no-persist", action="store_true", help="print the result, write nothing")
    p.add_argument("--invoke", metavar="FUNCTION", default=os.environ.get("DRIFT_CHECK_FUNCTION"),
                   help="run the deployed drift-check Lambda instead (it may start retraining)")
    p.add_argument("--ignore-cooldown", action="store_true", help="with --invoke: start retraining even in cooldown")
    a = p.parse_args(argv)
    overrides = dict(s.split("=", 1) for s in a.set)
    if a.invoke:
        print(json.dumps(invoke_check(boto3.client("lambda"), a.invoke, at=a.at, ignore_cooldown=a.ignore_cooldown,
                                      config=overrides), indent=2, default=_json_default))
        return 0
    if not a.bucket or not a.models_table:
        p.error("--bucket and --models-table are required (or ARTIFACT_BUCKET / MODELS_TABLE)")
    cfg = DriftConfig.from_env(**overrides)
    s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
    ddb = boto3.resource("dynamodb")
    layout = A.Layout(bucket=a.bucket, slot_minutes=int(os.environ.get("ARCHIVE_SLOT_MINUTES") or A.DEFAULT_SLOT_MINUTES))
    doc = run_check(s3=s3, models_table=ddb.Table(a.models_table), layout=layout, now=a.at, cfg=cfg)
    if not a.no_persist and doc["status"] != NO_CHAMPION:
        persist(doc, s3=s3, bucket=a.bucket, history_table=ddb.Table(a.history_table) if a.history_table else None)
    slim = {k: v for k, v in doc.items() if k not in ("reference", "current_proportions")}
    print(json.dumps(slim, indent=2, default=_json_default))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
