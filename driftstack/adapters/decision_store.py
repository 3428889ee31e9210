"""Every retraining run leaves one decision record: ``decisions/<run_id>.json`` in S3 (the whole
document: criteria, both models' metrics, outcome, reasons) and a summary item in the history table
(pk ``decision``, sk ``<started_at>#<run_id>``) so runs list newest first with one Query.  Human
approvals wait here too (a Step Functions task token per run)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from driftstack.contract import names as N
from driftstack.contract.documents import DecisionRecord, dump, load
from driftstack.domain.decision import now_iso, summary

DECISIONS_PREFIX = N.S3_DECISIONS
HISTORY_DECISION = "decision"
HISTORY_APPROVAL = "approval"


def record_key(run_id: str) -> str:
    return f"{DECISIONS_PREFIX}{run_id}.json"


def load_record(s3, bucket: str, run_id: str) -> dict | None:
    """The run's record as stored (validated: a malformed one raises MalformedDocument naming the field)."""
    key = record_key(run_id)
    try:
        raw = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except Exception as exc:  # noqa: BLE001
        if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    return dump(load(DecisionRecord, raw, f"s3://{bucket}/{key}"))


def save_record(s3, bucket: str, history_table, record: dict) -> dict:
    """Write the whole record to S3 and its summary to the history table (idempotent per run_id)."""
    record = {**record, "updated_at": now_iso()}
    record.setdefault("started_at", record["updated_at"])
    record = dump(load(DecisionRecord, record, f"run {record.get('run_id')!r}"))
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


def list_records(history_table, limit: int = 20) -> list[dict]:
    """Decision summaries, newest first."""
    resp = history_table.query(KeyConditionExpression="pk = :p",
                               ExpressionAttributeValues={":p": HISTORY_DECISION},
                               ScanIndexForward=False, Limit=limit)
    return [json.loads(i["doc"]) for i in resp.get("Items", [])]


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
