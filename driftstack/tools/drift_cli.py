"""`python -m driftstack.tools.drift_cli`: run the drift check from a shell (to be folded into the CLI)."""

from __future__ import annotations

import json
import os

from driftstack.adapters import archive as A
from driftstack.adapters.drift_store import invoke_check, persist
from driftstack.domain.drift import NO_CHAMPION, DriftConfig, json_default
from driftstack.usecases.drift_check import run_check


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
                                      config=overrides), indent=2, default=json_default))
        return 0
    if not a.bucket or not a.models_table:
        p.error("--bucket and --models-table are required (or ARTIFACT_BUCKET / MODELS_TABLE)")
    cfg = DriftConfig.from_env(os.environ, **overrides)
    s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
    ddb = boto3.resource("dynamodb")
    layout = A.Layout(bucket=a.bucket, slot_minutes=int(os.environ.get("ARCHIVE_SLOT_MINUTES") or A.DEFAULT_SLOT_MINUTES))
    doc = run_check(s3=s3, models_table=ddb.Table(a.models_table), layout=layout, now=a.at, cfg=cfg)
    if not a.no_persist and doc["status"] != NO_CHAMPION:
        persist(doc, s3=s3, bucket=a.bucket, history_table=ddb.Table(a.history_table) if a.history_table else None)
    slim = {k: v for k, v in doc.items() if k not in ("reference", "current_proportions")}
    print(json.dumps(slim, indent=2, default=json_default))
    return 0
