"""The retraining state machine's Lambda tasks (one function per handler, same code asset).

Each handler runs one step of :class:`driftstack.usecases.retraining.Retraining`, which validates
the execution state it receives (driftstack.contract.documents) and updates the run's decision
record.  The steps and the state they pass: driftstack/usecases/retraining.py.
"""

from __future__ import annotations

from functools import lru_cache

from aws_lambda_powertools import Logger

from driftstack.adapters import aws
from driftstack.adapters import training_backend as TB
from driftstack.settings import RetrainSettings
from driftstack.usecases import promotion as P
from driftstack.usecases.retraining import RetrainOptions, Retraining

logger = Logger(service="driftstack-retrain")
S3 = aws.client("s3", timeout=30)
client = lru_cache(aws.client)          # events, sns: created on first use, then reused
table = lru_cache(aws.dynamodb_table)


def steps() -> Retraining:
    """The use case, configured from the function's settings (read per invocation: microseconds)."""
    s = RetrainSettings.from_env()
    backend = TB.BackendConfig(**s.backend.model_dump())
    promotion = P.Promotion(s3=S3, bucket=s.artifact_bucket, history=table(s.history_table), client=client, log=logger,
                            options=P.PromotionOptions(topic_arn=s.topic_arn, event_bus_name=s.event_bus_name or "default",
                                                       mlflow=s.mlflow, alias_timeout_seconds=s.alias_timeout_seconds,
                                                       backend=backend))
    opts = RetrainOptions(bucket=s.artifact_bucket, training_backend=backend.training_backend,
                          training_timeout_seconds=backend.training_timeout_seconds, data_defaults=s.data_defaults,
                          training_defaults=s.training_defaults, mlflow=s.mlflow, criteria=s.decision.build(),
                          promote_canary_share=s.promote_canary_share, backend=backend)
    return Retraining(opts, s3=S3, history=table(s.history_table), models=table(s.models_table), layout=s.layout(),
                      promotion=promotion, log=logger)


@logger.inject_lambda_context
def prepare(event, context):
    return steps().prepare(event)


@logger.inject_lambda_context
def start_training(event, context):
    return steps().start_training(event)


@logger.inject_lambda_context
def poll_training(event, context):
    return steps().poll_training(event)


@logger.inject_lambda_context
def evaluate(event, context):
    return steps().evaluate(event)


@logger.inject_lambda_context
def decide(event, context):
    return steps().decide(event)


@logger.inject_lambda_context
def request_approval(event, context):
    """Invoked with a task token (waitForTaskToken): park the token, tell a human."""
    return steps().request_approval(event)


@logger.inject_lambda_context
def promote(event, context):
    return steps().promote(event)


@logger.inject_lambda_context
def reject(event, context):
    return steps().reject(event)


@logger.inject_lambda_context
def record_failure(event, context):
    return steps().record_failure(event)


@logger.inject_lambda_context
def notify(event, context):
    return steps().notify(event)
