"""Scheduled drift check (EventBridge rule -> this Lambda).

First archives what the log queue holds (driftstack.usecases.log_drain), so the window holds every
prediction answered before its end; then compares the window's per-slot aggregates with the
champion's reference profile (driftstack.drift), stores the result (S3 JSON + HTML report +
history item), emits metrics, and when the thresholds are crossed starts the retraining state
machine — with an execution name derived from the window, so the same window never starts twice,
and none while one is running.

Event: the scheduled event (its ``time`` fixes the window, so a redelivered event checks the same
window) or a manual one: {"time": ISO, "ignore_cooldown": bool, "config": {drift config overrides},
"execution_extra": {...merged into the execution input}}.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from driftstack.adapters import archive
from driftstack.domain import drift
from driftstack.adapters import drift_store
from driftstack.usecases import drift_check
from driftstack.usecases import log_drain
from driftstack.adapters import aws

logger = Logger(service="driftstack-drift-check")
metrics = Metrics(namespace="driftstack", service="driftstack-drift-check")

LAYOUT = archive.Layout.from_env()
S3 = aws.client("s3", timeout=30)
SQS = aws.client("sqs", timeout=30)
PROFILES = log_drain.ProfileCache(S3, LAYOUT.bucket)
MODELS = aws.dynamodb_table(os.environ["MODELS_TABLE"])
HISTORY = aws.dynamodb_table(os.environ["HISTORY_TABLE"])
SFN = aws.client("stepfunctions")
STATE_MACHINE_ARN = os.environ["STATE_MACHINE_ARN"]
QUEUE_URL = os.environ["LOG_QUEUE_URL"]
COOLDOWN_MINUTES = float(os.environ.get("RETRAIN_COOLDOWN_MINUTES", "0"))


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event, context):
    event = event or {}
    cfg = drift.DriftConfig.from_env(os.environ, **(event.get("config") or {}))
    drained = log_drain.drain(sqs=SQS, s3=S3, layout=LAYOUT, queue_url=QUEUE_URL, load_profile=PROFILES,
                              budget_seconds=120, log=logger)
    # Messages another drain (the archiver's schedule) holds are stored before we read.
    settled = log_drain.wait_for_other_drains(SQS, QUEUE_URL, timeout_seconds=60)
    doc = drift_check.run_check(s3=S3, models_table=MODELS, layout=LAYOUT, now=event.get("time"), cfg=cfg)
    doc["log_drain"] = {**drained.to_dict(), "settled": settled}
    if doc["trigger"]:
        doc["execution"] = drift_store.start_retraining(
            SFN, STATE_MACHINE_ARN, doc, cooldown_minutes=0 if event.get("ignore_cooldown") else COOLDOWN_MINUTES,
            **(event.get("execution_extra") or {}))
        logger.info(doc["execution"]["message"], extra={"execution": doc["execution"]})
    if doc["status"] != drift.NO_CHAMPION:
        drift_store.persist(doc, s3=S3, bucket=LAYOUT.bucket, history_table=HISTORY)
    for name, value, dims in drift.metrics_of(doc):
        if dims:  # per-feature PSI: one metric name per feature keeps EMF simple
            name = f"{name}_{next(iter(dims.values()))}"
        metrics.add_metric(name=name, unit=MetricUnit.Count if "PSI" not in name else MetricUnit.NoUnit,
                           value=value)
    summary = {k: doc.get(k) for k in ("check_id", "status", "trigger", "samples", "requests_in_window",
                                       "drifted_features", "reasons", "result_uri", "report_uri", "execution",
                                       "seconds", "io")}
    summary["prediction_psi"] = (doc.get("prediction") or {}).get("psi")
    summary["log_drain"] = {k: doc["log_drain"][k] for k in ("messages", "requests", "feedback", "slots",
                                                              "complete", "settled", "seconds")}
    logger.info("drift check", extra=summary)
    return summary
