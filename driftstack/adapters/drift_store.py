"""Where drift results live: the JSON result and HTML report in S3, a summary item in the history
table, the retraining execution started in Step Functions, the drift-check Lambda invoked on demand."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from driftstack.contract import names as N
from driftstack.contract.documents import DriftResult, load
from driftstack.domain.drift import DriftCheckError, execution_input, execution_name, json_default

RESULTS_PREFIX = N.S3_DRIFT_RESULTS
REPORTS_PREFIX = N.S3_DRIFT_REPORTS
HISTORY_DRIFT = "drift"          # history-table partition of drift results


def load_json(s3, bucket: str, key: str) -> dict:
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except Exception as exc:  # noqa: BLE001 - name the object that is missing
        raise DriftCheckError(f"cannot read s3://{bucket}/{key}: {type(exc).__name__}: {exc}") from exc


def result_keys(doc: Mapping) -> tuple[str, str]:
    day = doc["window"]["end"][:10]
    return (f"{RESULTS_PREFIX}dt={day}/{doc['check_id']}.json", f"{REPORTS_PREFIX}dt={day}/{doc['check_id']}.html")


def handed_on(doc: Mapping) -> DriftResult:
    """The drift check's result as it leaves the check (persisted, or starting a run): validated."""
    return load(DriftResult, doc, f"drift check {doc.get('check_id')!r}")


def persist(doc: dict, *, s3, bucket: str, history_table=None) -> dict:
    """Write the JSON result and the HTML report to S3 and a summary item to the history table."""
    from driftstack.domain import report

    handed_on(doc)
    json_key, html_key = result_keys(doc)
    doc["result_uri"], doc["report_uri"] = f"s3://{bucket}/{json_key}", f"s3://{bucket}/{html_key}"
    s3.put_object(Bucket=bucket, Key=json_key, Body=json.dumps(doc, default=json_default).encode(),
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
            "doc": json.dumps(summary, default=json_default)}


def list_checks(history_table, limit: int = 20) -> list[dict]:
    """Most recent drift results first (from the history table)."""
    resp = history_table.query(KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": HISTORY_DRIFT},
                               ScanIndexForward=False, Limit=limit)
    return [json.loads(i["doc"]) for i in resp.get("Items", [])]


def start_retraining(sfn, state_machine_arn: str, doc: Mapping, *, cooldown_minutes: float = 0.0,
                     now: datetime | None = None, **extra: Any) -> dict:
    """Start the state machine for a triggering result, at most once per window.
    -> {"started": bool, "name", "execution_arn"?, "message"}."""
    result = handed_on(doc)
    name = execution_name(result)
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
                                   input=json.dumps(execution_input(result, **extra)))
    except Exception as exc:  # noqa: BLE001
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        if code == "ExecutionAlreadyExists":
            return {"started": False, "name": name,
                    "message": f"not started: an execution for window {result.window.id} already exists ({name})"}
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
