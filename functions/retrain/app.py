"""The retraining state machine's Lambda tasks (one function per handler, same code asset).

Each handler runs one step of :class:`driftstack.usecases.retraining.Retraining`, which validates
the execution state it receives (driftstack.contract.documents) and updates the run's decision
record.  The steps and the state they pass: driftstack/usecases/retraining.py.
"""

from __future__ import annotations

from functools import lru_cache

from aws_lambda_powertools import Logger

from driftstack.adapters import aws
from driftstack.contract import names as N
from driftstack.settings import RetrainSettings
from driftstack.usecases import promotion as P
from driftstack.usecases.retraining import RetrainOptions, Retraining

logger = Logger(service=N.RETRAIN_SERVICE)
S3 = aws.client("s3", timeout=30)
client = lru_cache(aws.client)          # events, sns: created on first use, then reused
table = lru_cache(aws.dynamodb_table)


def steps() -> Retraining:
    """The use case, configured from the function's settings (read per invocation: microseconds)."""
    s = RetrainSettings.from_env()
    promotion = P.Promotion(s3=S3, bucket=s.artifact_bucket, history=table(s.history_table), client=client,
                            options=P.PromotionOptions.from_settings(s), log=logger)
    return Retraining(RetrainOptions.from_settings(s), s3=S3, history=table(s.history_table),
                      models=table(s.models_table), layout=s.layout(), promotion=promotion, log=logger)


def step(name: str):
    """The Lambda handler of one step (the CDK app names them ``app.<step>``)."""
    @logger.inject_lambda_context
    def handler(event, context):
        return getattr(steps(), name)(event)
    handler.__name__ = handler.__qualname__ = name
    return handler


prepare, start_training, poll_training = step("prepare"), step("start_training"), step("poll_training")
evaluate, decide = step("evaluate"), step("decide")
request_approval = step("request_approval")   # invoked with a task token (waitForTaskToken)
promote, reject, record_failure, notify = step("promote"), step("reject"), step("record_failure"), step("notify")
