"""Operations: CloudWatch alarms to the SNS alert topic and one dashboard.

Alarms (each publishes ALARM and OK to the topic):

    Api5xxRate          API Gateway 5XXError / Count (percent, 5 min)       > alarm_5xx_rate_percent (5)
    PredictLatencyP99   in-handler PredictLatency p99 (ms, 5 min)           > alarm_latency_p99_ms (100)
    ApiLatencyP99       API Gateway Latency p99 (ms, 5 min)                 > alarm_api_latency_p99_ms (2000)
    DriftDetected       drift check DriftTriggered (max, per schedule)      >= 1
    RetrainingFailed    state machine ExecutionsFailed + ExecutionsTimedOut >= 1
    CanaryRolledBack    canary evaluation CanaryRollbacks (sum)             >= 1
    (serving's)         log DLQ not empty, ModelLoadFailures, RequestLogSpills (log writes spilled to S3)

The serving construct's alarms are found in its subtree and wired to the same topic, so there is
one place where alarm actions are decided.  ``-c alert_webhook_url=https://hooks.slack.com/...``
adds an HTTPS subscription (Slack/Teams/any webhook behind SNS's confirmation handshake);
``-c alert_email=ops@example.com`` an e-mail one.

Canary evaluation: ``functions/canary_eval`` on an EventBridge schedule
(``canary_schedule_minutes``, 5) completes or rolls back an active canary; criteria from context
``canary_<criterion>`` (e.g. ``-c canary_max_latency_ratio=2``; see driftstack.domain.canary.CanaryCriteria).
A canary started by a promotion (``promote_canary_share``) is finished by this function like a
direct promotion (driftstack.usecases.promotion): it gets exactly what that needs -- decision records
(decisions/* read + put, history PutItem), events:PutEvents on the default bus, publish on the
topic, and the same MLflow-alias settings as the promote step.  The predict function may
UpdateItem only the candidate item of the models table (``dynamodb:LeadingKeys``), to record a
candidate it cannot load, so the evaluation rolls that back at once.

The dashboard shows request rate, latency, errors, per-feature PSI (from the drift check's
FeaturePSI_<feature> metrics; the feature list comes from the feature contract), the model version
over time (a Logs Insights query over the predict function's EMF lines, which carry
``model_version``) and the rollout traffic split.
"""

from __future__ import annotations


from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct

from driftstack.contract import features as fc
from driftstack.contract import names as N
from driftstack.domain.canary import CanaryCriteria
from driftstack.domain.drift import DriftConfig
from driftstack.adapters.rollout import CANDIDATE
from driftstack_cdk.function_env import powertools_env, thresholds_env
from driftstack_cdk.serving import FUNCTIONS, NO_BYTECODE

PERIOD = Duration.minutes(5)
DRIFT_DEFAULTS = DriftConfig()


def app_metric(name: str, service: str, statistic: str = "Sum", period: Duration = PERIOD,
               label: str | None = None) -> cloudwatch.Metric:
    """A custom metric as Powertools emits it: namespace driftstack, dimension service=<service>."""
    return cloudwatch.Metric(namespace=N.NAMESPACE, metric_name=name, statistic=statistic,
                             dimensions_map={"service": service}, period=period, label=label)


class Operations(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, storage, serving, retraining,
                 topic: sns.ITopic) -> None:
        super().__init__(scope, construct_id)
        ctx = self.node.try_get_context
        self.canary_fn = self._canary_evaluation(storage, serving, retraining, topic)
        self.topic = topic
        if ctx("alert_webhook_url"):
            topic.add_subscription(subs.UrlSubscription(str(ctx("alert_webhook_url"))))
        if ctx("alert_email"):
            topic.add_subscription(subs.EmailSubscription(str(ctx("alert_email"))))
        action = cw_actions.SnsAction(topic)
        api = serving.api
        drift_period = Duration.minutes(max(1, int(float(ctx("drift_schedule_minutes") or DRIFT_DEFAULTS.period_minutes))))
        psi = float(ctx("drift_psi_threshold") or DRIFT_DEFAULTS.psi_threshold)  # the drift check's threshold

        api_5xx_rate = cloudwatch.MathExpression(
            expression="IF(requests > 0, 100 * errors / requests, 0)", label="API 5xx rate (%)",
            using_metrics={"errors": api.metric_server_error(period=PERIOD, statistic="Sum"),
                           "requests": api.metric_count(period=PERIOD, statistic="Sum")},
            period=PERIOD)
        self.alarms: dict[str, cloudwatch.Alarm] = {}

        def alarm(name: str, metric: cloudwatch.IMetric, threshold: float, description: str, *,
                  op=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD, periods: int = 1,
                  datapoints: int | None = None) -> cloudwatch.Alarm:
            a = cloudwatch.Alarm(
                self, name, alarm_name=f"{Stack.of(self).stack_name}-{name}", alarm_description=description,
                metric=metric, threshold=threshold, comparison_operator=op, evaluation_periods=periods,
                datapoints_to_alarm=datapoints or periods, treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING)
            self.alarms[name] = a
            return a

        ge = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        alarm("Api5xxRate", api_5xx_rate, float(ctx("alarm_5xx_rate_percent") or 5),
              "share of API requests answered 5xx (percent over 5 minutes)", periods=3, datapoints=2)
        alarm("PredictLatencyP99", app_metric(N.METRIC_PREDICT_LATENCY, N.PREDICT_SERVICE, "p99"),
              float(ctx("alarm_latency_p99_ms") or 100), "in-handler predict latency p99 (ms)",
              periods=3, datapoints=2)
        alarm("ApiLatencyP99", api.metric_latency(period=PERIOD, statistic="p99"),
              float(ctx("alarm_api_latency_p99_ms") or 2000), "end-to-end API latency p99 (ms)",
              periods=3, datapoints=2)
        alarm("DriftDetected", app_metric(N.METRIC_DRIFT_TRIGGERED, N.DRIFT_SERVICE, "Maximum", drift_period), 1,
              "the drift check crossed its thresholds (retraining was requested)", op=ge)
        sm = retraining.state_machine
        failed = cloudwatch.MathExpression(
            expression="failed + timedout", label="retraining executions failed or timed out",
            using_metrics={"failed": sm.metric_failed(period=PERIOD, statistic="Sum"),
                           "timedout": sm.metric_timed_out(period=PERIOD, statistic="Sum")}, period=PERIOD)
        alarm("RetrainingFailed", failed, 1, "a retrain-and-compare execution failed; the champion is unchanged",
              op=ge)
        alarm("CanaryRolledBack", app_metric(N.METRIC_CANARY_ROLLBACKS, N.CANARY_SERVICE), 1,
              "a canary was rolled back on live evidence (reason in `driftstack status`)", op=ge)

        # Every alarm in the stack so far (ours and the serving construct's) notifies the topic.
        serving_alarms = [c for c in serving.node.find_all() if isinstance(c, cloudwatch.Alarm)]
        for a in [*self.alarms.values(), *serving_alarms]:
            a.add_alarm_action(action)
            a.add_ok_action(action)
        self.all_alarms = [*self.alarms.values(), *serving_alarms]

        # ---- dashboard
        p = lambda name, stat="Sum", label=None: app_metric(name, N.PREDICT_SERVICE, stat, Duration.minutes(1), label)  # noqa: E731
        board = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{Stack.of(self).stack_name}-operations",
                                     default_interval=Duration.hours(6))
        board.add_widgets(
            cloudwatch.GraphWidget(title="Request rate (per minute)", width=8, left=[
                api.metric_count(period=Duration.minutes(1), statistic="Sum", label="API requests"),
                p(N.METRIC_PREDICTIONS, label="predicted rows")]),
            cloudwatch.GraphWidget(title="Latency (ms)", width=8, left=[
                p(N.METRIC_PREDICT_LATENCY, "p50", "in-handler p50"), p(N.METRIC_PREDICT_LATENCY, "p99", "in-handler p99"),
                api.metric_latency(period=Duration.minutes(1), statistic="p99", label="API p99")]),
            cloudwatch.GraphWidget(title="Errors", width=8, left=[
                api.metric_server_error(period=Duration.minutes(1), statistic="Sum", label="API 5xx"),
                api.metric_client_error(period=Duration.minutes(1), statistic="Sum", label="API 4xx"),
                p(N.METRIC_REQUEST_LOG_SPILLS, label="log spills"), p(N.METRIC_MODEL_LOAD_FAILURES, label="models refused"),
                p(N.METRIC_CANARY_ERRORS, label="canary errors (served by champion)"),
                p(N.METRIC_SHADOW_ERRORS, label="shadow errors")]),
        )
        board.add_widgets(
            cloudwatch.GraphWidget(
                title="Per-feature PSI (drift check)", width=12,
                left=[app_metric(f"{N.METRIC_FEATURE_PSI}_{n}", N.DRIFT_SERVICE, "Maximum", drift_period, n)
                      for n in fc.FEATURE_NAMES]
                + [app_metric(N.METRIC_PREDICTION_PSI, N.DRIFT_SERVICE, "Maximum", drift_period, "prediction")],
                left_annotations=[cloudwatch.HorizontalAnnotation(value=psi, label=f"PSI {psi:g}")]),
            cloudwatch.LogQueryWidget(
                title="Model version over time (served requests)", width=12,
                # The name, not predict_fn.log_group: that property adds its own LogRetention (never
                # expire) under the id the log_retention aspect (log_retention.py) uses, and the
                # aspect then leaves the function alone - its logs would not get the configured days.
                log_group_names=[f"/aws/lambda/{serving.predict_fn.function_name}"],
                view=cloudwatch.LogQueryVisualizationType.STACKEDAREA,
                query_lines=["fields @timestamp, model_version", "filter ispresent(model_version)",
                             "stats count(*) by model_version, bin(5m)"]),
        )
        board.add_widgets(
            cloudwatch.GraphWidget(title="Rollout traffic", width=12, left=[
                p(N.METRIC_CANARY_REQUESTS, label="served by canary"), p(N.METRIC_PREDICTIONS, label="all predictions"),
                p(N.METRIC_CANARY_ERRORS, label="canary errors"), p(N.METRIC_SHADOW_ERRORS, label="shadow errors")]),
            cloudwatch.AlarmStatusWidget(title="Alarms", width=12, alarms=self.all_alarms),
        )
        self.dashboard = board

        out = Stack.of(self)
        CfnOutput(out, "CanaryEvalFunctionName", value=self.canary_fn.function_name)
        CfnOutput(out, "AlertTopicArn", value=topic.topic_arn)
        CfnOutput(out, "DashboardName", value=board.dashboard_name)
        CfnOutput(out, "AlarmNames", value=",".join(a.alarm_name for a in self.all_alarms))

    def _canary_evaluation(self, storage, serving, retraining, topic: sns.ITopic) -> lambda_.Function:
        ctx = self.node.try_get_context
        env = {N.MODELS_TABLE: storage.models_table.table_name, **serving.archive_env,
               **powertools_env(N.CANARY_SERVICE),
               # finishing a promotion's canary (driftstack.usecases.promotion): same settings as the promote step
               **retraining.promotion_env,
               **thresholds_env(ctx, CanaryCriteria, N.CANARY_PREFIX)}
        fn = lambda_.Function(
            self, "CanaryEval", code=lambda_.Code.from_asset(str(FUNCTIONS / "canary_eval"), exclude=NO_BYTECODE),
            handler="app.handler", runtime=lambda_.Runtime.PYTHON_3_12, architecture=lambda_.Architecture.X86_64,
            layers=serving.layers, timeout=Duration.seconds(180), memory_size=512, environment=env,
            description="driftstack canary evaluation: complete or roll back")
        # Least privilege: the rollout items (read, end by transaction), this rollout's log records,
        # and what finishing a promotion writes (decision record, event, notification).
        storage.models_table.grant(fn, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem")
        serving.grant_archiving(fn)
        # read + write the decision records (exact actions: never a delete, no action wildcard)
        fn.add_to_role_policy(iam.PolicyStatement(actions=["s3:GetObject", "s3:PutObject"],
                                                  resources=[storage.bucket.arn_for_objects(f"{N.S3_DECISIONS}*")]))
        retraining.history_table.grant(fn, "dynamodb:PutItem")
        fn.add_to_role_policy(iam.PolicyStatement(
            actions=["events:PutEvents"],
            resources=[Stack.of(self).format_arn(service="events", resource="event-bus", resource_name="default")]))
        topic.grant_publish(fn)
        # The predict function records a candidate it cannot load on the candidate item, and only there.
        serving.predict_fn.add_to_role_policy(iam.PolicyStatement(
            actions=["dynamodb:UpdateItem"], resources=[storage.models_table.table_arn],
            conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"pointer#{CANDIDATE}"]}}))
        minutes = float(ctx("canary_schedule_minutes") or 5)
        self.canary_rule = events.Rule(
            self, "CanarySchedule", description="driftstack canary evaluation",
            schedule=events.Schedule.rate(Duration.minutes(int(minutes) if minutes == int(minutes) else minutes)),
            targets=[targets.LambdaFunction(fn, retry_attempts=2)])
        return fn
