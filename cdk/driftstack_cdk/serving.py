"""Serving: REST API (API key + usage plan) -> predict Lambda; the request log (log queue + its
dead-letter queue) and the log archiver (scheduled Lambda: queue -> batched S3 archive + aggregates).

Code and layers are local asset folders (no Docker bundling): functions/<name>/ and
build/layers/{deps,shared}/ built by ``python layers/build.py``.  Least privilege: every grant is
a ``grant_*`` on the resource, scoped to the key prefixes each function touches.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from driftstack.contract import names as N
from driftstack.contract.api import DEFAULT_BATCH_LIMIT
from driftstack.domain.drift import DriftConfig
from driftstack_cdk.function_env import powertools_env

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ROOT / "build" / "layers"
FUNCTIONS = ROOT / "functions"
ARCHIVE_PREFIXES = (N.S3_REQUESTS, N.S3_FEEDBACK, N.S3_AGGREGATES, N.S3_LOG_SPILL)
# Bytecode written by local test runs would change the asset hash (a needless redeploy) and can
# vanish mid-fingerprint when another process imports the module.
NO_BYTECODE = ["**/__pycache__", "**/*.pyc", ".build-stamp.json"]


def default_slot_minutes(*drift_minutes) -> int:
    """5-minute slots, or the largest divisor of 60 below that which the drift schedule and window
    (whole slots) allow: a 1-minute demo schedule gets 1-minute slots."""
    given = [float(m) for m in drift_minutes if m is not None] or [DriftConfig().period_minutes]
    return next(s for s in range(N.DEFAULT_SLOT_MINUTES, 0, -1) if all(m % s == 0 for m in given))


def _layer_dir(name: str) -> str:
    path = LAYERS / name / "python"
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is missing: run `python layers/build.py` before synth/deploy")
    return str(path.parent)


class Serving(Construct):
    """``storage`` provides ``bucket`` (artifacts + archives) and ``models_table`` (champion pointer).

    Context (``-c key=value``) knobs: ``api_stage`` (prod), ``batch_limit`` (1000),
    ``model_refresh_seconds`` (30), ``feedback_max_age_days`` (30), ``predict_memory_mb`` (1024),
    ``archive_slot_minutes`` (5: the archive's time slots; divides 60, and the drift schedule and
    window are multiples of it), ``archive_schedule_minutes`` (5: how often the archiver runs),
    ``api_rate_limit`` / ``api_burst_limit`` (usage-plan throttling, 500/1000 rps),
    ``log_sample_rate`` (0.1: share of invocations logging the per-prediction DEBUG line)."""

    def __init__(self, scope: Construct, construct_id: str, *, storage, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        ctx = self.node.try_get_context
        stage = str(ctx("api_stage") or "prod")

        slot = int(ctx("archive_slot_minutes") or default_slot_minutes(ctx("drift_schedule_minutes"),
                                                                        ctx("drift_window_minutes")))
        if slot < 1 or 60 % slot:
            raise ValueError(f"archive_slot_minutes must divide 60, got {slot}")
        self.slot_minutes = slot

        # The request log: one SQS message per predict call (durable when SendMessage returns).
        # Messages the archiver cannot parse move to the DLQ after 5 receives.
        self.log_dlq = sqs.Queue(
            self, "RequestLogDLQ", retention_period=Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True)
        self.log_queue = sqs.Queue(
            self, "RequestLogQueue", retention_period=Duration.days(14),
            visibility_timeout=Duration.minutes(10),   # the archiver's receives set their own (600 s)
            encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=5, queue=self.log_dlq))
        self.archive_env = {
            N.ARTIFACT_BUCKET: storage.bucket.bucket_name,
            N.LOG_QUEUE_URL: self.log_queue.queue_url,
            N.ARCHIVE_PREFIX: N.S3_REQUESTS, N.FEEDBACK_PREFIX: N.S3_FEEDBACK,
            N.AGGREGATES_PREFIX: N.S3_AGGREGATES, N.LOG_SPILL_PREFIX: N.S3_LOG_SPILL,
            N.ARCHIVE_SLOT_MINUTES: str(slot),
        }
        self._storage = storage

        deps = lambda_.LayerVersion(
            self, "DepsLayer", code=lambda_.Code.from_asset(_layer_dir("deps"), exclude=NO_BYTECODE),
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
            compatible_architectures=[lambda_.Architecture.X86_64],
            description="numpy, onnxruntime, pydantic, aws-lambda-powertools (layers/requirements.txt)")
        shared = lambda_.LayerVersion(
            self, "SharedLayer", code=lambda_.Code.from_asset(_layer_dir("shared"), exclude=NO_BYTECODE),
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12], description="the driftstack package")

        env = {
            N.MODELS_TABLE: storage.models_table.table_name,
            **self.archive_env,
            N.MODEL_REFRESH_SECONDS: str(ctx("model_refresh_seconds") or N.DEFAULT_MODEL_REFRESH_SECONDS),
            N.BATCH_LIMIT: str(ctx("batch_limit") or DEFAULT_BATCH_LIMIT),
            N.FEEDBACK_MAX_AGE_DAYS: str(ctx("feedback_max_age_days") or N.DEFAULT_FEEDBACK_MAX_AGE_DAYS),
            # per try of the log queue write (two tries, then the S3 spill): keep 4x it under the timeout
            N.LOG_TIMEOUT_SECONDS: str(ctx("request_log_timeout_seconds") or N.DEFAULT_LOG_TIMEOUT_SECONDS),
            # share of invocations that also log DEBUG lines (the per-prediction "predicted" line)
            N.POWERTOOLS_LOGGER_SAMPLE_RATE: str(ctx("log_sample_rate") or N.DEFAULT_LOG_SAMPLE_RATE),
        }
        self.layers = [deps, shared]  # reused by the monitoring/retraining functions
        common = dict(runtime=lambda_.Runtime.PYTHON_3_12, architecture=lambda_.Architecture.X86_64,
                      handler="app.handler", layers=[deps, shared], tracing=lambda_.Tracing.ACTIVE)

        self.predict_fn = lambda_.Function(
            self, "Predict", code=lambda_.Code.from_asset(str(FUNCTIONS / "predict"), exclude=NO_BYTECODE),
            memory_size=int(ctx("predict_memory_mb") or 1024), timeout=Duration.seconds(15),
            environment={**env, **powertools_env(N.PREDICT_SERVICE)},
            description="driftstack prediction API", **common)
        self.archiver_fn = lambda_.Function(
            self, "LogArchiver", code=lambda_.Code.from_asset(str(FUNCTIONS / "log_archiver"), exclude=NO_BYTECODE),
            memory_size=1024, timeout=Duration.seconds(300),
            environment={**env, **powertools_env(N.LOG_ARCHIVER_SERVICE)},
            description="request log queue -> batched S3 archive + per-slot aggregates", **common)
        archive_minutes = int(ctx("archive_schedule_minutes") or 5)
        self.archive_rule = events.Rule(
            self, "ArchiveSchedule", description="driftstack log archiver",
            schedule=events.Schedule.rate(Duration.minutes(archive_minutes)),
            targets=[targets.LambdaFunction(self.archiver_fn, retry_attempts=2)])

        # Least privilege.
        storage.models_table.grant(self.predict_fn, "dynamodb:GetItem")          # champion pointer
        storage.bucket.grant_read(self.predict_fn, f"{N.S3_MODELS}*")             # artifacts
        storage.bucket.grant_put(self.predict_fn, f"{N.S3_LOG_SPILL}*")           # the log's fallback
        self.log_queue.grant_send_messages(self.predict_fn)
        self.grant_archiving(self.archiver_fn)

        self.api = apigw.LambdaRestApi(
            self, "Api", handler=self.predict_fn, proxy=True,
            rest_api_name=f"{Stack.of(self).stack_name}-predict",
            description="driftstack prediction API (routes under /v1)",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            api_key_source_type=apigw.ApiKeySourceType.HEADER,
            default_method_options=apigw.MethodOptions(api_key_required=True),
            cloud_watch_role=False,
            deploy_options=apigw.StageOptions(
                stage_name=stage, tracing_enabled=True,
                throttling_rate_limit=float(ctx("api_rate_limit") or 500),
                throttling_burst_limit=int(ctx("api_burst_limit") or 1000)),
        )
        self.api_key = self.api.add_api_key("ApiKey", description="driftstack client key")
        plan = self.api.add_usage_plan(
            "UsagePlan", description="driftstack clients",
            throttle=apigw.ThrottleSettings(rate_limit=float(ctx("api_rate_limit") or 500),
                                            burst_limit=int(ctx("api_burst_limit") or 1000)),
            api_stages=[apigw.UsagePlanPerApiStage(api=self.api, stage=self.api.deployment_stage)])
        plan.add_api_key(self.api_key)

        # Alarms (no actions wired: the monitoring construct's SNS topic can subscribe to them).
        cloudwatch.Alarm(
            self, "LogDlqNotEmpty", alarm_description="request-log messages the archiver could not read",
            metric=self.log_dlq.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)),
            threshold=0, comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1, treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING)
        for name, what in ((N.METRIC_MODEL_LOAD_FAILURES, "a new champion was refused; the previous model keeps serving"),
                           (N.METRIC_REQUEST_LOG_SPILLS, "request-log writes spilled to S3 (the log queue failed)")):
            cloudwatch.Alarm(
                self, f"{name}Alarm", alarm_description=what,
                metric=cloudwatch.Metric(namespace=N.NAMESPACE, metric_name=name, statistic="Sum",
                                         dimensions_map={"service": N.PREDICT_SERVICE},
                                         period=Duration.minutes(5)),
                threshold=0, comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1, treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING)

        out = Stack.of(self)
        CfnOutput(out, "ApiId", value=self.api.rest_api_id)
        CfnOutput(out, "ApiStage", value=self.api.deployment_stage.stage_name)
        CfnOutput(out, "ApiKeyId", value=self.api_key.key_id)
        CfnOutput(out, "LogQueueUrl", value=self.log_queue.queue_url)
        CfnOutput(out, "LogDlqUrl", value=self.log_dlq.queue_url)
        CfnOutput(out, "PredictFunctionName", value=self.predict_fn.function_name)
        CfnOutput(out, "ArchiverFunctionName", value=self.archiver_fn.function_name)
        CfnOutput(out, "ArchiveSlotMinutes", value=str(slot))

    def grant_archiving(self, fn: lambda_.IFunction) -> None:
        """What a function that drains the log and maintains the archive needs (the archiver, the
        drift check, the canary evaluation): consume the queue; read, write and delete archive keys;
        read the models' reference profiles."""
        self.log_queue.grant_consume_messages(fn)
        bucket = self._storage.bucket
        for prefix in ARCHIVE_PREFIXES:
            bucket.grant_read(fn, f"{prefix}*")
            bucket.grant_put(fn, f"{prefix}*")
        bucket.grant_delete(fn, f"{N.S3_LOG_SPILL}*")
        bucket.grant_read(fn, f"{N.S3_MODELS}*")
