"""Scheduled canary evaluation (EventBridge rule -> this Lambda): evaluates the active rollout and
completes it, rolls it back or waits (driftstack.usecases.canary_eval).  Metrics: CanaryEvaluations,
CanaryCompletions, CanaryRollbacks (the CanaryRolledBack alarm), PromotionFollowUpErrors.

Event (all optional): {"criteria": {CanaryCriteria overrides}, "now": epoch seconds}.
"""

from __future__ import annotations

from functools import lru_cache

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from driftstack.adapters import aws
from driftstack.contract import names as N
from driftstack.contract.documents import CanaryEvent, load
from driftstack.settings import CanaryEvalSettings
from driftstack.usecases import promotion as P
from driftstack.usecases.canary_eval import CanaryEvaluator

logger = Logger(service=N.CANARY_SERVICE)
metrics = Metrics(namespace=N.NAMESPACE, service=N.CANARY_SERVICE)

S3 = aws.client("s3", timeout=30)
SQS = aws.client("sqs", timeout=30)
table = lru_cache(aws.dynamodb_table)


def count(name: str) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def evaluator(s: CanaryEvalSettings) -> CanaryEvaluator:
    def promotion() -> P.Promotion:  # only when a retraining run's canary ends
        if not s.history_table:
            raise RuntimeError("HISTORY_TABLE is not set: no decision records to finish the promotion in")
        return P.Promotion(s3=S3, bucket=s.artifact_bucket, history=table(s.history_table), client=aws.client,
                           options=P.PromotionOptions.from_settings(s), log=logger)

    return CanaryEvaluator(models=table(s.models_table), s3=S3, sqs=SQS, layout=s.layout(), queue_url=s.log_queue_url,
                           promotion=promotion, count=count, log=logger, drain=s.drain.options())


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event, context):
    s = CanaryEvalSettings.from_env()  # per invocation (microseconds): the settings the rollout ends with
    ev = load(CanaryEvent, event or {}, "the event")
    out = evaluator(s).evaluate_active(s.canary.build(ev.criteria), now=ev.now)
    logger.info("canary evaluation", extra={k: out.get(k) for k in ("status", "rollout_id", "reasons")})
    return out
