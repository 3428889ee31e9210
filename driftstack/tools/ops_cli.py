"""Operations from the terminal: the figures the CloudWatch dashboard shows where LocalStack cannot
render it (``driftstack status``), and the rollout commands (``driftstack rollout ...``).

``collect(outputs)`` reads the deployed stack: rollout state, last rollout outcome and canary
evaluation, last drift check, last retraining decision, and the state of every alarm.  Each part
fails on its own ("unavailable: ...") so status always prints what it can.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import click


def _tables(outputs: dict[str, str]):
    import boto3

    from driftstack.tools.api_client import _output

    ddb = boto3.resource("dynamodb")
    return ddb.Table(_output(outputs, "ModelsTableName")), ddb.Table(_output(outputs, "HistoryTableName"))


def _safe(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - one missing piece must not hide the others
        return f"unavailable: {type(exc).__name__}: {exc}"


def _drift_summary(doc: dict) -> dict:
    return {k: doc.get(k) for k in ("check_id", "checked_at", "status", "trigger", "samples", "drifted_features",
                                    "reasons", "report_uri")}


def alarm_states(outputs: dict[str, str]) -> list[dict]:
    import boto3

    names = [n for n in (outputs.get("AlarmNames") or "").split(",") if n]
    if not names:
        return []
    cw = boto3.client("cloudwatch")
    found = {}
    for i in range(0, len(names), 100):
        for a in cw.describe_alarms(AlarmNames=names[i:i + 100]).get("MetricAlarms", []):
            found[a["AlarmName"]] = {"alarm": a["AlarmName"], "state": a["StateValue"],
                                     "since": str(a.get("StateUpdatedTimestamp", "")),
                                     "reason": a.get("StateReason", "")}
    return [found.get(n, {"alarm": n, "state": "NOT_FOUND"}) for n in names]


# The dashboard's serving figures, as the predict function emits them (EMF, namespace driftstack).
TRAFFIC_METRICS = (("requests", "Predictions", "Sum"), ("errors", "Errors", "Sum"),
                   ("validation_errors", "ValidationErrors", "Sum"), ("no_model", "NoModel", "Sum"),
                   ("log_spills", "RequestLogSpills", "Sum"),
                   ("latency_ms_avg", "PredictLatency", "Average"), ("latency_ms_max", "PredictLatency", "Maximum"))


def traffic(minutes: int = 60, service: str = "driftstack-predict") -> dict[str, float | None]:
    """The last ``minutes`` of the predict function's metrics, one figure each (what the dashboard
    plots; LocalStack cannot render dashboards, so `driftstack status` prints these)."""
    from datetime import datetime, timedelta, timezone

    import boto3

    end = datetime.now(timezone.utc) + timedelta(minutes=1)  # the API takes whole seconds: keep "now" inside
    queries = [{"Id": f"m{i}", "ReturnData": True, "MetricStat": {
        "Metric": {"Namespace": "driftstack", "MetricName": metric, "Dimensions": [{"Name": "service", "Value": service}]},
        "Period": (minutes + 1) * 60, "Stat": stat}} for i, (_, metric, stat) in enumerate(TRAFFIC_METRICS)]
    results = boto3.client("cloudwatch").get_metric_data(
        MetricDataQueries=queries, StartTime=end - timedelta(minutes=minutes + 1), EndTime=end)["MetricDataResults"]
    values = {r["Id"]: r["Values"] for r in results}
    out: dict[str, float | None] = {"minutes": minutes}
    for i, (label, _, stat) in enumerate(TRAFFIC_METRICS):
        vals = values.get(f"m{i}") or []
        # No datapoint: nothing happened (a count is 0) or nothing to measure (a latency is unknown).
        out[label] = (sum(vals) if stat == "Sum" else max(vals)) if vals else (0 if stat == "Sum" else None)
    return out


def collect(outputs: dict[str, str]) -> dict[str, Any]:
    from driftstack.adapters import decision_store
    from driftstack.adapters import drift_store
    from driftstack.adapters import rollout as ro

    models, history = _tables(outputs)

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

    def last_check():
        checks = drift_store.list_checks(history, 1)
        return _drift_summary(checks[0]) if checks else None

    def last_decision():
        records = decision_store.list_records(history, 1)
        return records[0] if records else None

    return {"rollout": _safe(active), "last_rollout": _safe(last_outcome), "last_canary_evaluation": _safe(last_eval),
            "last_drift_check": _safe(last_check), "last_decision": _safe(last_decision),
            "alarms": _safe(lambda: alarm_states(outputs)), "traffic": _safe(traffic)}


def render(ops: dict[str, Any]) -> list[str]:
    lines = []
    r = ops.get("rollout")
    if isinstance(r, dict):
        share = f" {r['share']:.0%}" if r["mode"] == "canary" else ""
        lines.append(f"rollout: {r['mode']}{share} of {r['candidate_version']} next to {r['incumbent_version']} "
                     f"({r['rollout_id']})")
    else:
        lines.append(f"rollout: {r or 'none'}")
    for key in ("last_rollout", "last_canary_evaluation", "last_drift_check", "last_decision"):
        lines.append(f"{key.replace('_', ' ')}: {json.dumps(ops.get(key), default=str)}")
    t = ops.get("traffic")
    if isinstance(t, dict):
        latency = (f"latency avg {t['latency_ms_avg']:.2f} ms, max {t['latency_ms_max']:.2f} ms"
                   if t.get("latency_ms_avg") is not None else "latency: no data")
        lines.append(f"traffic, last {t['minutes']} min (CloudWatch): {t['requests']:.0f} predictions, "
                     f"{t['errors']:.0f} errors, {t['validation_errors']:.0f} rejected as invalid, "
                     f"{t['no_model']:.0f} without a model, {t['log_spills']:.0f} log spills; {latency}")
    elif t is not None:
        lines.append(f"traffic: {t}")
    alarms = ops.get("alarms")
    if isinstance(alarms, list):
        firing = [a for a in alarms if a["state"] == "ALARM"]
        lines.append(f"alarms: {len(alarms)} ({len(firing)} in ALARM)")
        for a in alarms:
            lines.append(f"  {a['state']:<17} {a['alarm']}" + (f"  {a['reason'][:100]}" if a["state"] == "ALARM" else ""))
    else:
        lines.append(f"alarms: {alarms}")
    return lines


# ---------------------------------------------------------------- driftstack rollout ...

def _outputs() -> dict[str, str]:
    from driftstack.tools.api_client import StackNotDeployed, stack_outputs

    try:
        return stack_outputs()
    except StackNotDeployed as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def rollout() -> None:
    """Shadow or canary a candidate model next to the champion; complete or roll back."""


@rollout.command("start")
@click.argument("prefix")
@click.option("--mode", type=click.Choice(["shadow", "canary"]), default="canary", show_default=True)
@click.option("--share", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.1, show_default=True,
              help="Canary: share of requests served by the candidate.")
@click.option("--reason", default="", help="Recorded with the rollout.")
def start_cmd(prefix: str, mode: str, share: float, reason: str) -> None:
    """Attach the artifact under PREFIX (models/<name>/<sha16>/, see `driftstack decisions`) as candidate."""
    import boto3

    from driftstack.adapters.registry import METADATA_FILE, MODEL_FILE
    from driftstack.adapters import rollout as ro

    outputs = _outputs()
    bucket = outputs.get("BucketName") or ""
    prefix = prefix.removeprefix(f"s3://{bucket}/").rstrip("/") + "/"
    s3 = boto3.client("s3")
    try:
        meta = json.loads(s3.get_object(Bucket=bucket, Key=prefix + METADATA_FILE)["Body"].read())
        blob = s3.get_object(Bucket=bucket, Key=prefix + MODEL_FILE)["Body"].read()
    except Exception as exc:  # noqa: BLE001
        raise click.ClickException(f"no model artifact under s3://{bucket}/{prefix}: {exc}") from exc
    models, _ = _tables(outputs)
    try:
        r = ro.start(models, mode=mode, share=share, model_name=meta.get("model_name", "taxi-fare"),
                     version=str(meta.get("version") or hashlib.sha256(blob).hexdigest()[:8]), bucket=bucket,
                     prefix=prefix, sha256=hashlib.sha256(blob).hexdigest(), reason=reason)
    except ro.RolloutError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(r.info(), indent=2, default=str))


@rollout.command("show")
def show_cmd() -> None:
    """The active rollout, the last outcome and the last canary evaluation."""
    ops = collect(_outputs())
    click.echo(json.dumps({k: ops[k] for k in ("rollout", "last_rollout", "last_canary_evaluation")},
                          indent=2, default=str))


@rollout.command("evaluate")
@click.option("--criteria", default="{}", help='JSON overrides, e.g. \'{"min_requests": 50}\'.')
def evaluate_cmd(criteria: str) -> None:
    """Run the deployed canary evaluation now (what its schedule does)."""
    import boto3

    from driftstack.tools.api_client import _output

    fn = _output(_outputs(), "CanaryEvalFunctionName")
    resp = boto3.client("lambda").invoke(FunctionName=fn, Payload=json.dumps({"criteria": json.loads(criteria)}))
    body = json.loads(resp["Payload"].read() or b"null")
    if resp.get("FunctionError"):
        raise click.ClickException(f"canary evaluation failed: {body}")
    click.echo(json.dumps(body, indent=2, default=str))


def _end(complete: bool, reason: str) -> None:
    from driftstack.adapters import rollout as ro

    models, _ = _tables(_outputs())
    active = ro.read(models)
    if active is None:
        raise click.ClickException("no rollout is active")
    try:
        rec = (ro.complete if complete else ro.rollback)(models, active, reason=f"manual: {reason}")
    except ro.RolloutConflict as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(rec, indent=2, default=str))


@rollout.command("complete")
@click.option("--reason", required=True)
def complete_cmd(reason: str) -> None:
    """Make the candidate the champion now (100 %)."""
    _end(True, reason)


@rollout.command("rollback")
@click.option("--reason", required=True)
def rollback_cmd(reason: str) -> None:
    """End the rollout now; the champion serves everything."""
    _end(False, reason)
