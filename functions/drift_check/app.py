"""Scheduled drift check (EventBridge rule -> this Lambda): driftstack.usecases.drift_check.ScheduledCheck
drains the log queue, compares the window's aggregates with the champion's reference profile, stores
the result (S3 JSON + HTML report + history item) and, when the thresholds are crossed, starts the
retraining state machine (an execution name derived from the window: the same window never starts
twice, and none starts while one is running).  Metrics per result; the summary is the answer.

Event: the scheduled event (its ``time`` fixes the window, so a redelivered event checks the same
window) or a manual one: {"time": ISO, "ignore_cooldown": bool, "config": {drift config overrides},
"execution_extra": {...merged into the execution input}}.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from driftstack.adapters import aws
from driftstack.contract import names as N
from driftstack.settings import DriftCheckSettings
from driftstack.usecases import drift_check

logger = Logger(service=N.DRIFT_SERVICE)
metrics = Metrics(namespace=N.NAMESPACE, service=N.DRIFT_SERVICE)

SETTINGS = DriftCheckSettings.from_env()
CHECK = drift_check.ScheduledCheck(
    s3=aws.client("s3", timeout=30), sqs=aws.client("sqs", timeout=30), sfn=aws.client("stepfunctions"),
    models_table=aws.dynamodb_table(SETTINGS.models_table), history_table=aws.dynamodb_table(SETTINGS.history_table),
    layout=SETTINGS.layout(), queue_url=SETTINGS.log_queue_url, state_machine_arn=SETTINGS.state_machine_arn,
    cooldown_minutes=SETTINGS.retrain_cooldown_minutes, drain=SETTINGS.drain.options(), log=logger)


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event, context):
    event = event or {}
    doc = CHECK.run(SETTINGS.drift.build(event.get("config")), now=event.get("time"),
                    ignore_cooldown=bool(event.get("ignore_cooldown")), execution_extra=event.get("execution_extra"))
    for name, value, is_count in drift_check.metric_values(doc):
        metrics.add_metric(name=name, unit=MetricUnit.Count if is_count else MetricUnit.NoUnit, value=value)
    summary = drift_check.summary(doc)
    logger.info("drift check", extra=summary)
    return summary
