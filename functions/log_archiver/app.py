"""Log archiver (EventBridge schedule -> this Lambda): the log queue and any spilled messages ->
the batched S3 archive and its per-slot aggregates (driftstack.usecases.log_drain).

Event: the scheduled event, or {"budget_seconds": N} to bound one run. Returns the drain report.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from driftstack.adapters import aws
from driftstack.contract import names as N
from driftstack.settings import LogArchiverSettings
from driftstack.usecases import log_drain

logger = Logger(service=N.LOG_ARCHIVER_SERVICE)
metrics = Metrics(namespace=N.NAMESPACE, service=N.LOG_ARCHIVER_SERVICE)

SETTINGS = LogArchiverSettings.from_env()
LAYOUT = SETTINGS.layout()
S3 = aws.client("s3", timeout=30)
SQS = aws.client("sqs", timeout=30)
PROFILES = log_drain.ProfileCache(S3, LAYOUT.bucket)
REPORTED = ((N.METRIC_ARCHIVED_REQUESTS, "requests"), (N.METRIC_ARCHIVED_FEEDBACK, "feedback"),
            (N.METRIC_ARCHIVED_SLOTS, "slots"), (N.METRIC_LOG_SPILLS_MERGED, "spilled_objects"),
            (N.METRIC_LOG_MESSAGES_REJECTED, "rejected"))


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict, context: Any) -> dict:
    event = event or {}
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    remaining = remaining_ms() / 1000 if remaining_ms else 300.0
    budget = float(event.get("budget_seconds") or max(5.0, remaining * 0.6))
    report = log_drain.drain(sqs=SQS, s3=S3, layout=LAYOUT, queue_url=SETTINGS.log_queue_url, load_profile=PROFILES,
                             budget_seconds=budget, options=SETTINGS.drain.options(), log=logger)
    for name, attribute in REPORTED:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=getattr(report, attribute))
    return report.to_dict()
