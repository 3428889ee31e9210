"""Drains the request-log fallback queue: each message names the records and the sinks
(DynamoDB table, S3 archive) that rejected them; write them there. Failed messages are reported
individually (partial batch response) so SQS redelivers only those and dead-letters them after
the queue's maxReceiveCount."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from driftstack.serving import aws
from driftstack.serving.config import ServingConfig
from driftstack.serving.request_log import LogSettings, replay_message

SERVICE = "driftstack-replay-log"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace="driftstack", service=SERVICE)
tracer = Tracer(service=SERVICE)

CONFIG = ServingConfig.from_env()
SETTINGS = LogSettings(table=CONFIG.request_log_table, bucket=CONFIG.bucket, queue_url=CONFIG.fallback_queue_url,
                       archive_prefix=CONFIG.archive_prefix, feedback_prefix=CONFIG.feedback_prefix,
                       ttl_days=CONFIG.ttl_days, shards=CONFIG.time_bucket_shards)
DYNAMODB = aws.client("dynamodb", timeout=10.0)
S3 = aws.client("s3", timeout=10.0)
processor = BatchProcessor(event_type=EventType.SQS)


def _replay(record: SQSRecord) -> int:
    n = replay_message(record.body, SETTINGS, dynamodb=DYNAMODB, s3=S3)
    metrics.add_metric(name="RequestLogReplayed", unit=MetricUnit.Count, value=n)
    logger.info("replayed fallback message", extra={"message_id": record.message_id, "records": n})
    return n


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict, context: Any) -> dict:
    return process_partial_response(event=event, record_handler=_replay, processor=processor, context=context)
