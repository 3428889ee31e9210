"""What the console shows, read from the deployed stack: one :class:`StackReader` per console, over
the stack outputs and a :class:`~driftstack.tools.aws_target.Target` (so it reads LocalStack or AWS
the way every other command does). Everything returns plain JSON-ready dicts."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from driftstack.contract import features as F
from driftstack.contract import names as N
from driftstack.tools.api_client import _output
from driftstack.tools.aws_target import Target
from driftstack.tools.console import graph

# The operations dashboard's figures (cdk/driftstack_cdk/operations.py): panel -> (label, metric, service, stat).
_P, _D = N.PREDICT_SERVICE, N.DRIFT_SERVICE
PANELS: dict[str, list[tuple[str, str, str, str]]] = {
    "Request rate (per minute)": [("predicted rows", N.METRIC_PREDICTIONS, _P, "Sum")],
    "Latency (ms)": [("p50", N.METRIC_PREDICT_LATENCY, _P, "p50"), ("p99", N.METRIC_PREDICT_LATENCY, _P, "p99")],
    "Errors": [("errors (500)", N.METRIC_ERRORS, _P, "Sum"), ("refused (4xx)", N.METRIC_VALIDATION_ERRORS, _P, "Sum"),
               ("no model", N.METRIC_NO_MODEL, _P, "Sum"), ("models refused", N.METRIC_MODEL_LOAD_FAILURES, _P, "Sum")],
    "Log fallbacks": [("request-log spills", N.METRIC_REQUEST_LOG_SPILLS, _P, "Sum")],
    "Drift (PSI per check)": [(name, f"{N.METRIC_FEATURE_PSI}_{name}", _D, "Maximum") for name in F.FEATURE_NAMES]
    + [("prediction", N.METRIC_PREDICTION_PSI, _D, "Maximum")],
    "Rollout traffic": [("served by canary", N.METRIC_CANARY_REQUESTS, _P, "Sum"),
                        ("canary errors", N.METRIC_CANARY_ERRORS, _P, "Sum"),
                        ("shadow errors", N.METRIC_SHADOW_ERRORS, _P, "Sum")],
}
# What a series asks for when the endpoint has no percentiles (LocalStack's CloudWatch).
PERCENTILE_FALLBACK = {"p50": "Average", "p99": "Maximum"}
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


class NotFound(LookupError):
    """A named execution, check or decision the stack does not have."""


class StackReader:
    def __init__(self, target: Target, outputs: dict[str, str]) -> None:
        self.target, self.outputs = target, outputs
        self._results: dict[str, dict] = {}  # drift result documents by URI: written once, never change

    def _out(self, suffix: str) -> str:
        return _output(self.outputs, suffix)

    @cached_property
    def sfn(self):
        return self.target.client("stepfunctions")

    @cached_property
    def s3(self):
        return self.target.client("s3")

    @cached_property
    def history(self):
        return self.target.resource("dynamodb").Table(self._out("HistoryTableName"))

    @cached_property
    def models_table(self):
        return self.target.resource("dynamodb").Table(self._out("ModelsTableName"))

    @property
    def state_machine_arn(self) -> str:
        return self._out("StateMachineArn")

    # ------------------------------------------------------------ retraining

    def state_machine(self) -> dict:
        desc = self.sfn.describe_state_machine(stateMachineArn=self.state_machine_arn)
        return {"name": desc["name"], "arn": desc["stateMachineArn"], "graph": graph.graph_of(desc["definition"])}

    def executions(self, limit: int = 50) -> list[dict]:
        page = self.sfn.list_executions(stateMachineArn=self.state_machine_arn, maxResults=limit)
        return [{"name": e["name"], "arn": e["executionArn"], "status": e["status"], "started": str(e["startDate"]),
                 "stopped": str(e.get("stopDate") or "")} for e in page.get("executions", [])]

    def execution_arn(self, name: str) -> str:
        return self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"

    def execution(self, name: str) -> dict:
        """One execution: its status, a status per state, the event history, a pending approval."""
        from botocore.exceptions import ClientError

        arn = self.execution_arn(name)
        try:
            desc = self.sfn.describe_execution(executionArn=arn)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ExecutionDoesNotExist":
                raise NotFound(f"no execution {name!r}") from exc
            raise
        events = [e for page in self.sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
                  for e in page["events"]]
        approval = next((p for p in self.pending_approvals() if p["run_id"] == name), None)
        return {"name": name, "arn": arn, "status": desc["status"], "terminal": desc["status"] in TERMINAL,
                "started": str(desc["startDate"]), "stopped": str(desc.get("stopDate") or ""),
                "input": desc.get("input"), "output": desc.get("output"), "error": desc.get("error"),
                "cause": desc.get("cause"), "states": graph.state_statuses(events),
                "events": graph.event_rows(events),
                "approval": {k: v for k, v in approval.items() if k != "task_token"} if approval else None}

    def pending_approvals(self) -> list[dict]:
        from driftstack.adapters import decision_store

        return decision_store.pending_approvals(self.history)

    def answer_approval(self, run_id: str, approved: bool, reason: str, by: str) -> dict:
        from driftstack.tools.operations import complete_approval

        return complete_approval(self.sfn, self.history, run_id, approved, by=by, reason=reason)

    # ------------------------------------------------------------ drift

    def thresholds(self) -> dict[str, float]:
        """The deployed drift check's PSI thresholds (its DRIFT_* environment; else the defaults)."""
        from driftstack.domain.drift import DriftConfig

        cfg = DriftConfig()
        env: dict[str, str] = {}
        if "DriftCheckFunctionName" in self.outputs:
            conf = self.target.client("lambda").get_function_configuration(FunctionName=self._out("DriftCheckFunctionName"))
            env = (conf.get("Environment") or {}).get("Variables") or {}
        return {f.name: float(env.get(N.DRIFT_PREFIX + f.name.upper(), getattr(cfg, f.name)))
                for f in dataclasses.fields(cfg) if f.name in ("psi_threshold", "prediction_psi_threshold")}

    def _result(self, uri: str | None) -> dict:
        if not uri:
            return {}
        if uri not in self._results:
            from driftstack.adapters.drift_store import load_json

            bucket, _, key = uri.removeprefix("s3://").partition("/")
            self._results[uri] = load_json(self.s3, bucket, key)
        return self._results[uri]

    def drift_checks(self, limit: int = 50) -> list[dict]:
        """The newest ``limit`` checks, oldest first (a trend reads left to right), with the PSI of
        every feature and of the prediction from each check's result document."""
        from driftstack.adapters import drift_store

        out = []
        for check in reversed(drift_store.list_checks(self.history, limit)):
            result = self._result(check.get("result_uri"))
            out.append({**check, "checked_at": result.get("checked_at") or check["window"]["end"],
                        "feature_psi": {k: v.get("psi") for k, v in (result.get("features") or {}).items()},
                        "has_report": bool(check.get("report_uri"))})
        return out

    def report(self, check_id: str) -> str:
        from driftstack.adapters import drift_store

        check = next((c for c in drift_store.list_checks(self.history, 500) if c["check_id"] == check_id), None)
        if not check or not check.get("report_uri"):
            raise NotFound(f"no report for drift check {check_id!r}")
        bucket, _, key = check["report_uri"].removeprefix("s3://").partition("/")
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()

    # ------------------------------------------------------------ models

    def models(self, limit: int = 50) -> dict:
        from driftstack.adapters import decision_store, registry
        from driftstack.tools.operations import collect_rollout

        champion = registry.read_pointer(self.models_table)
        return {"champion": _pointer(champion), "previous": _pointer(champion.previous) if champion else None,
                "decisions": decision_store.list_records(self.history, limit), **collect_rollout(self.models_table)}

    def decision(self, run_id: str) -> dict:
        from driftstack.adapters import decision_store

        record = decision_store.load_record(self.s3, self._out("BucketName"), run_id)
        if record is None:
            raise NotFound(f"no decision record for run {run_id!r}")
        return record

    # ------------------------------------------------------------ operations

    def metrics(self, minutes: int = 180, period: int = 60) -> dict[str, list[dict]]:
        """Every dashboard panel's series over the last ``minutes``: ``{panel: [{label, points: [[t, v]]}]}``.

        Percentiles (p50/p99) are asked one by one: an endpoint without them (LocalStack) answers
        that series with its fallback statistic, labelled so, instead of failing the whole page."""
        from botocore.exceptions import ClientError

        end = datetime.now(UTC) + timedelta(minutes=1)
        window = {"StartTime": end - timedelta(minutes=minutes), "EndTime": end, "period": period}
        rows = [(panel, *row) for panel, series in PANELS.items() for row in series]
        out: dict[str, list[dict]] = {panel: [] for panel in PANELS}
        plain = [r for r in rows if r[4] not in PERCENTILE_FALLBACK]
        for row, points in zip(plain, self._series(plain, **window)):
            out[row[0]].append({"label": row[1], "points": points})
        for row in (r for r in rows if r[4] in PERCENTILE_FALLBACK):
            panel, label, metric, service, stat = row
            try:
                [points] = self._series([row], **window)
            except ClientError:
                fallback = PERCENTILE_FALLBACK[stat]
                [points] = self._series([(panel, label, metric, service, fallback)], **window)
                label = f"{label} n/a here: {fallback.lower()}"
            out[panel].append({"label": label, "points": points})
        return out

    def _series(self, rows: list[tuple], StartTime, EndTime, period: int) -> list[list[list]]:
        queries = [{"Id": f"m{i}", "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": N.NAMESPACE, "MetricName": metric, "Dimensions": [{"Name": "service", "Value": service}]},
            "Period": period, "Stat": stat}} for i, (_, _, metric, service, stat) in enumerate(rows)]
        found: dict[str, list] = {}
        cw = self.target.client("cloudwatch")
        for i in range(0, len(queries), 500):  # GetMetricData takes up to 500 queries
            for r in cw.get_metric_data(MetricDataQueries=queries[i:i + 500], StartTime=StartTime,
                                        EndTime=EndTime)["MetricDataResults"]:
                found[r["Id"]] = sorted([t.isoformat(), v] for t, v in zip(r["Timestamps"], r["Values"]))
        return [found.get(q["Id"], []) for q in queries]

    def alarms(self) -> list[dict]:
        from driftstack.tools.operations import alarm_states

        return alarm_states(self.target, self.outputs)


def _pointer(p) -> dict | None:
    if p is None:
        return None
    return {"model_name": p.model_name, "version": p.version, "sha256": p.sha256, "prefix": p.prefix,
            "updated_at": datetime.fromtimestamp(float(p.updated_at), UTC).isoformat(timespec="seconds")}


def mlflow_links(record: dict, mlflow_url: str) -> list[dict]:
    """Links into the MLflow UI for every run id a decision record names (the challenger's training
    run, the champion's), found wherever the record keeps an ``mlflow`` block."""
    links, seen = [], set()

    def walk(node: Any, role: str) -> None:
        if isinstance(node, dict):
            ml = node.get("mlflow")
            if isinstance(ml, dict) and ml.get("run_id") and ml["run_id"] not in seen:
                seen.add(ml["run_id"])
                exp = ml.get("experiment_id")
                path = f"#/experiments/{exp}/runs/{ml['run_id']}" if exp else f"#/runs/{ml['run_id']}"
                links.append({"role": role, "run_id": ml["run_id"], "url": f"{mlflow_url.rstrip('/')}/{path}"})
            for k, v in node.items():
                walk(v, k if k in ("champion", "challenger") else role)
        elif isinstance(node, list):
            for v in node:
                walk(v, role)

    walk(record, "run")
    return links


def dumps(data: Any) -> str:
    return json.dumps(data, default=str)
