"""Log archiver (EventBridge schedule -> this Lambda): the log queue and any spilled messages ->
the batched S3 archive and its per-slot aggregates (driftstack.usecases.log_drain).

Event: the scheduled event, or {"budget_seconds": N} to bound one run. Returns the drain report.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from driftstack.adapters import archive
from driftstack.usecases import log_drain
from driftstack.adapters import aws

SERVICE = "driftstack-log-archiver"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace="driftstack", service=SERVICE)

LAYOUT = archive.Layout.from_env()
QUEUE_URL = os.environ["LOG_QUEUE_URL"]
S3 = aws.client("s3", timeout=30)
SQS = aws.client("sqs", timeout=30)
PROFILES = log_drain.ProfileCache(S3, LAYOUT.bucket)


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict, context: Any) -> dict:
    event = event or {}
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    remaining = remaining_ms() / 1000 if remaining_ms else 300.0
    budget = float(event.get("budget_seconds") or max(5.0, remaining * 0.6))
    report = log_drain.drain(sqs=SQS, s3=S3, layout=LAYOUT, queue_url=QUEUE_URL, load_profile=PROFILES,
                             budget_seconds=budget, log=logger)
    for name, value in (("ArchivedRequests", report.requests), ("ArchivedFeedback", report.feedback),
                        ("ArchivedSlots", report.slots), ("LogSpillsMerged", report.spilled_objects),
                        ("LogMessagesRejected", report.rejected)):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    return report.to_dict()
