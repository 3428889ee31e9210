"""Serving: REST API (API key + usage plan) -> predict Lambda; request log table, fallback queue
and its replay Lambda.

Code and layers are local asset folders (no Docker bundling): functions/<name>/ and
build/layers/{deps,shared}/ built by ``python layers/build.py``.  Least privilege: every grant is
a ``grant_*`` on the resource, scoped to the key prefixes each function touches.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ROOT / "build" / "layers"
FUNCTIONS = ROOT / "functions"
ARCHIVE_PREFIX, FEEDBACK_PREFIX, MODELS_PREFIX = "requests/", "feedback/", "models/"
# Bytecode written by local test runs would change the asset hash (a needless redeploy) and can
# vanish mid-fingerprint when another process imports the module.
NO_BYTECODE = ["**/__pycache__", "**/*.pyc", ".build-stamp.json"]


def _layer_dir(name: str) -> str:
    path = LAYERS / name / "python"
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is missing: run `python layers/build.py` before synth/deploy")
    return str(path.parent)


class Serving(Construct):
    """``storage`` provides ``bucket`` (artifacts + archives) and ``models_table`` (champion pointer).

    Context (``-c key=value``) knobs: ``api_stage`` (prod), ``batch_limit`` (1000),
    ``model_refresh_seconds`` (30), ``request_log_ttl_days`` (30), ``predict_memory_mb`` (1024),
    ``api_rate_limit`` / ``api_burst_limit`` (usage-plan throttling, 500/1000 rps),
    ``log_sample_rate`` (0.1: share of invocations logging the per-prediction DEBUG line)."""

    def __init__(self, scope: Construct, construct_id: str, *, storage, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        ctx = self.node.try_get_context
        stage = str(ctx("api_stage") or "prod")

        self.request_log_table = dynamodb.Table(
            self, "RequestLog",
            partition_key=dynamodb.Attribute(name="request_id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute="expires_at",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            removal_policy=removal_policy,
        )
        # "All requests in a window": one partition per UTC hour, sorted by timestamp.
        self.request_log_table.add_global_secondary_index(
            index_name="by_time",
            partition_key=dynamodb.Attribute(name="time_bucket", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="ts", type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )

        self.fallback_dlq = sqs.Queue(
            self, "RequestLogFallbackDLQ", retention_period=Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True)
        replay_timeout = Duration.seconds(60)
        self.fallback_queue = sqs.Queue(
            self, "RequestLogFallback", retention_period=Duration.days(14),
            visibility_timeout=Duration.seconds(6 * replay_timeout.to_seconds()),
            encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=5, queue=self.fallback_dlq))

        deps = lambda_.LayerVersion(
            self, "DepsLayer", code=lambda_.Code.from_asset(_layer_dir("deps"), exclude=NO_BYTECODE),
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
            compatible_architectures=[lambda_.Architecture.X86_64],
            description="numpy, onnxruntime, pydantic, aws-lambda-powertools (layers/requirements.txt)")
        shared = lambda_.LayerVersion(
            self, "SharedLayer", code=lambda_.Code.from_asset(_layer_dir("shared"), exclude=NO_BYTECODE),
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12], description="the driftstack package")

        env = {
            "MODELS_TABLE": storage.models_table.table_name,
            "REQUEST_LOG_TABLE": self.request_log_table.table_name,
            "ARTIFACT_BUCKET": storage.bucket.bucket_name,
            "FALLBACK_QUEUE_URL": self.fallback_queue.queue_url,
            "ARCHIVE_PREFIX": ARCHIVE_PREFIX,
            "FEEDBACK_PREFIX": FEEDBACK_PREFIX,
            "MODEL_REFRESH_SECONDS": str(ctx("model_refresh_seconds") or 30),
            "BATCH_LIMIT": str(ctx("batch_limit") or 1000),
            "REQUEST_LOG_TTL_DAYS": str(ctx("request_log_ttl_days") or 30),
            # per try of a request-log write (two tries, then the fallback queue): keep 4x it under the timeout
            "LOG_TIMEOUT_SECONDS": str(ctx("request_log_timeout_seconds") or 2),
            "POWERTOOLS_METRICS_NAMESPACE": "driftstack",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            # share of invocations that also log DEBUG lines (the per-prediction "predicted" line)
            "POWERTOOLS_LOGGER_SAMPLE_RATE": str(ctx("log_sample_rate") or 0.1),
        }
        self.layers = [deps, shared]  # reused by the monitoring/retraining functions
        common = dict(runtime=lambda_.Runtime.PYTHON_3_12, architecture=lambda_.Architecture.X86_64,
                      handler="app.handler", layers=[deps, shared], tracing=lambda_.Tracing.ACTIVE)

        self.predict_fn = lambda_.Function(
            self, "Predict", code=lambda_.Code.from_asset(str(FUNCTIONS / "predict"), exclude=NO_BYTECODE),
            memory_size=int(ctx("predict_memory_mb") or 1024), timeout=Duration.seconds(15),
            environment={**env, "POWERTOOLS_SERVICE_NAME": "driftstack-predict"},
            description="driftstack prediction API", **common)
        self.replay_fn = lambda_.Function(
            self, "ReplayLog", code=lambda_.Code.from_asset(str(FUNCTIONS / "replay_log"), exclude=NO_BYTECODE),
            memory_size=256, timeout=replay_timeout,
            environment={**env, "POWERTOOLS_SERVICE_NAME": "driftstack-replay-log"},
            description="drains the request-log fallback queue", **common)
        self.replay_fn.add_event_source(sources.SqsEventSource(
            self.fallback_queue, batch_size=10, report_batch_item_failures=True))

        # Least privilege.
        storage.models_table.grant(self.predict_fn, "dynamodb:GetItem")          # champion pointer
        storage.bucket.grant_read(self.predict_fn, f"{MODELS_PREFIX}*")           # artifacts
        storage.bucket.grant_put(self.predict_fn, f"{ARCHIVE_PREFIX}*")
        storage.bucket.grant_put(self.predict_fn, f"{FEEDBACK_PREFIX}*")
        self.request_log_table.grant(self.predict_fn, "dynamodb:PutItem", "dynamodb:BatchWriteItem",
                                     "dynamodb:UpdateItem")
        self.fallback_queue.grant_send_messages(self.predict_fn)
        self.request_log_table.grant(self.replay_fn, "dynamodb:BatchWriteItem")
        for prefix in (ARCHIVE_PREFIX, FEEDBACK_PREFIX):  # replay merges into existing archive objects
            storage.bucket.grant_read(self.replay_fn, f"{prefix}*")
            storage.bucket.grant_put(self.replay_fn, f"{prefix}*")

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
            self, "FallbackDlqNotEmpty", alarm_description="request-log records the replay could not write",
            metric=self.fallback_dlq.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)),
            threshold=0, comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1, treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING)
        for name, what in (("ModelLoadFailures", "a new champion was refused; the previous model keeps serving"),
                           ("RequestLogFallbacks", "request-log writes went to the fallback queue")):
            cloudwatch.Alarm(
                self, f"{name}Alarm", alarm_description=what,
                metric=cloudwatch.Metric(namespace="driftstack", metric_name=name, statistic="Sum",
                                         dimensions_map={"service": "driftstack-predict"},
                                         period=Duration.minutes(5)),
                threshold=0, comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1, treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING)

        out = Stack.of(self)
        CfnOutput(out, "ApiId", value=self.api.rest_api_id)
        CfnOutput(out, "ApiStage", value=self.api.deployment_stage.stage_name)
        CfnOutput(out, "ApiKeyId", value=self.api_key.key_id)
        CfnOutput(out, "RequestLogTableName", value=self.request_log_table.table_name)
        CfnOutput(out, "FallbackQueueUrl", value=self.fallback_queue.queue_url)
        CfnOutput(out, "FallbackDlqUrl", value=self.fallback_dlq.queue_url)
        CfnOutput(out, "PredictFunctionName", value=self.predict_fn.function_name)
        CfnOutput(out, "ReplayFunctionName", value=self.replay_fn.function_name)
