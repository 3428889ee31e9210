"""`python -m driftstack.tools.decision_cli`: list, show, approve and reject decisions (to be folded into the CLI)."""

from __future__ import annotations

import json
import os
from typing import Any

from driftstack.adapters.decision_store import complete_approval, list_records, load_record, pending_approvals


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
