"""Retraining: the retrain-and-compare Step Functions state machine, its Lambda tasks, the history
table (drift results, decision records, pending approvals) and the notification topic.

    Prepare → StartTraining → (Wait → PollTraining)* → Evaluate → Decide ─┬─ promote ─(Approval?)→ Promote ─┐
                                 │ failed / timed out                     └─ reject ─────────────→ Reject ──┤→ Notify → Succeed
    any task error (Catch) ──────┴──→ RecordFailure → NotifyFailure → Fail   (champion untouched)

Context knobs (``-c key=value``): ``training_backend`` (local | emr-serverless), ``local_python`` /
``local_repo`` (the host Python with pyspark and the repo dir, for the local backend; default: the
interpreter and repo running the CDK app), ``training_poll_seconds`` (10), ``training_timeout_minutes``
(60), ``approval`` (false: true adds the human approval step), ``approval_timeout_hours`` (24),
``retrain_training`` (JSON of GBT params, e.g. '{"max_iter": 20}'), ``retrain_data`` (JSON, e.g.
'{"reference_rows": 5000, "min_labelled": 200}'), ``decision_<criterion>`` (e.g.
decision_min_rmse_improvement=0.5), ``emr_application_id`` / ``emr_execution_role_arn`` /
``emr_entry_point`` / ``emr_py_files`` / ``emr_log_uri``, ``promote_canary_share`` (e.g. 0.1: promote = start
a canary that the scheduled canary evaluation completes or rolls back; unset: switch the pointer).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from driftstack.contract import names as N
from driftstack.domain.decision import Criteria
from driftstack_cdk.function_env import powertools_env, thresholds_env

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "functions"
EMR_SETTINGS = (N.EMR_APPLICATION_ID, N.EMR_EXECUTION_ROLE_ARN, N.EMR_ENTRY_POINT, N.EMR_PY_FILES, N.EMR_LOG_URI)
LAMBDA_ERRORS = ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                 "Lambda.TooManyRequestsException"]


class Retraining(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, storage, layers: list, archive_env: dict,
                 removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        ctx = self.node.try_get_context
        backend = str(ctx("training_backend") or "local")
        approval = str(ctx("approval") or "false").lower() == "true"
        bucket, models = storage.bucket, storage.models_table

        self.history_table = dynamodb.Table(
            self, "History",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST, removal_policy=removal_policy,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True))  # decision records are the audit trail
        self.topic = sns.Topic(self, "Notifications", display_name="driftstack retraining", enforce_ssl=True)

        # what finishing a promotion needs (driftstack.usecases.promotion): shared with the canary evaluation
        self.promotion_env = {
            N.HISTORY_TABLE: self.history_table.table_name, N.TOPIC_ARN: self.topic.topic_arn,
            N.TRAINING_BACKEND: backend, N.EVENT_BUS_NAME: "default",
            N.RETRAIN_MLFLOW: _json_ctx(ctx("retrain_mlflow")),
        }
        if backend == "local":
            self.promotion_env.update({N.LOCAL_TRAINING_PYTHON: str(ctx("local_python") or sys.executable),
                                       N.LOCAL_TRAINING_REPO: str(ctx("local_repo") or ROOT)})
        training_minutes = float(ctx("training_timeout_minutes") or N.DEFAULT_TRAINING_TIMEOUT_MINUTES)
        env = {
            **archive_env,   # where the request archive and its aggregates live (the prepare step)
            N.ARTIFACT_BUCKET: bucket.bucket_name, N.MODELS_TABLE: models.table_name, **self.promotion_env,
            N.TRAINING_TIMEOUT_SECONDS: str(int(training_minutes * 60)),
            N.RETRAIN_TRAINING_DEFAULTS: _json_ctx(ctx("retrain_training")),
            N.RETRAIN_DATA_DEFAULTS: _json_ctx(ctx("retrain_data")),
            N.DECISION_REQUIRE_APPROVAL: "true" if approval else "false",
            **powertools_env(N.RETRAIN_SERVICE, metrics=False),
            # require_approval comes from the approval knob above
            **thresholds_env(ctx, Criteria, N.DECISION_PREFIX, skip=("require_approval",)),
        }
        if ctx("promote_canary_share"):  # issue 9: promote = start a canary (see driftstack_cdk/operations.py)
            env[N.PROMOTE_CANARY_SHARE] = str(ctx("promote_canary_share"))
        if backend != "local":
            env.update({k: str(ctx(k.lower())) for k in EMR_SETTINGS if ctx(k.lower())})
        code = lambda_.Code.from_asset(str(FUNCTIONS / "retrain"))

        def fn(name: str, handler: str, *, timeout: int = 60, memory: int = 512) -> lambda_.Function:
            return lambda_.Function(self, name, code=code, handler=f"app.{handler}",
                                    runtime=lambda_.Runtime.PYTHON_3_12, architecture=lambda_.Architecture.X86_64,
                                    layers=layers, timeout=Duration.seconds(timeout), memory_size=memory,
                                    environment=env, description=f"driftstack retraining: {handler}")

        f = {
            "prepare": fn("PrepareFn", "prepare", timeout=300, memory=1024),
            "start": fn("StartTrainingFn", "start_training"),
            "poll": fn("PollTrainingFn", "poll_training"),
            "evaluate": fn("EvaluateFn", "evaluate"),
            "decide": fn("DecideFn", "decide"),
            "approval": fn("RequestApprovalFn", "request_approval"),
            "promote": fn("PromoteFn", "promote", timeout=120),
            "reject": fn("RejectFn", "reject"),
            "failure": fn("RecordFailureFn", "record_failure"),
            "notify": fn("NotifyFn", "notify"),
        }
        self.functions = f

        # Least privilege: every function gets exactly the prefixes/tables/APIs it uses.
        for name, func in f.items():
            if name != "notify":
                bucket.grant_read(func, f"{N.S3_DECISIONS}*")  # read + put: no function deletes a record
                bucket.grant_put(func, f"{N.S3_DECISIONS}*")
                self.history_table.grant(func, "dynamodb:PutItem")
        bucket.grant_read(f["prepare"], f"{N.S3_AGGREGATES}*")   # counts only: the Spark job reads the archive
        bucket.grant_put(f["prepare"], f"{N.S3_RETRAIN}*")
        models.grant(f["prepare"], "dynamodb:GetItem")
        for name in ("start", "poll", "evaluate", "failure"):
            bucket.grant_read(f[name], f"{N.S3_RETRAIN}*")
        models.grant(f["promote"], "dynamodb:PutItem", "dynamodb:GetItem")
        f["promote"].add_to_role_policy(iam.PolicyStatement(
            actions=["events:PutEvents"],
            resources=[Stack.of(self).format_arn(service="events", resource="event-bus", resource_name="default")]))
        for name in ("approval", "notify"):
            self.topic.grant_publish(f[name])
        if backend == "emr-serverless":
            app_arn = Stack.of(self).format_arn(service="emr-serverless", resource="/applications",
                                                resource_name=f"{ctx('emr_application_id') or '*'}*")
            for name, actions in (("start", ["emr-serverless:StartJobRun"]),
                                  ("poll", ["emr-serverless:GetJobRun", "emr-serverless:CancelJobRun"]),
                                  ("failure", ["emr-serverless:CancelJobRun"])):
                f[name].add_to_role_policy(iam.PolicyStatement(actions=actions, resources=[app_arn]))
            if ctx("emr_execution_role_arn"):
                f["start"].add_to_role_policy(iam.PolicyStatement(
                    actions=["iam:PassRole"], resources=[str(ctx("emr_execution_role_arn"))]))

        # ---- the state machine
        def invoke(id_: str, func, result_path: str, **kw) -> tasks.LambdaInvoke:
            t = tasks.LambdaInvoke(self, id_, lambda_function=func, payload_response_only=True,
                                   retry_on_service_exceptions=False, result_path=result_path, **kw)
            t.add_retry(errors=LAMBDA_ERRORS, interval=Duration.seconds(2), max_attempts=3, backoff_rate=2)
            return t

        failed = sfn.Fail(self, "RetrainingFailed", error="RetrainingFailed",
                          cause="a step failed; the champion is unchanged (see the decision record)")
        record_failure = invoke("RecordFailure", f["failure"], "$.final")
        notify_failure = invoke("NotifyFailure", f["notify"], "$.notified")
        notify_failure.add_catch(failed, errors=["States.ALL"], result_path="$.notify_error")
        record_failure.add_catch(failed, errors=["States.ALL"], result_path="$.record_error")
        on_failure = record_failure.next(notify_failure).next(failed)

        def guarded(t: tasks.LambdaInvoke) -> tasks.LambdaInvoke:
            t.add_catch(record_failure, errors=["States.ALL"], result_path="$.error")
            return t

        poll_seconds = int(ctx("training_poll_seconds") or 10)
        prepare = guarded(invoke("PrepareData", f["prepare"], "$.prepared"))
        start = guarded(invoke("StartTraining", f["start"], "$.job"))
        wait = sfn.Wait(self, "WaitForTraining", time=sfn.WaitTime.duration(Duration.seconds(poll_seconds)))
        poll = guarded(invoke("PollTraining", f["poll"], "$.poll"))
        evaluate = guarded(invoke("Evaluate", f["evaluate"], "$.evaluation"))
        decide = guarded(invoke("Decide", f["decide"], "$.decision"))
        promote = guarded(invoke("Promote", f["promote"], "$.final"))
        reject = guarded(invoke("Reject", f["reject"], "$.final"))
        notify = invoke("Notify", f["notify"], "$.notified")
        notify.add_catch(sfn.Succeed(self, "DoneNotifyFailed"), errors=["States.ALL"], result_path="$.notify_error")
        done = notify.next(sfn.Succeed(self, "Done"))
        promote.next(done)
        reject.next(done)

        outcome = sfn.Choice(self, "PromoteOrReject?")
        if approval:
            ask = guarded(tasks.LambdaInvoke(
                self, "WaitForApproval", lambda_function=f["approval"],
                integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
                payload=sfn.TaskInput.from_object({
                    "run_id": sfn.JsonPath.string_at("$.run_id"), "task_token": sfn.JsonPath.task_token,
                    "decision": sfn.JsonPath.object_at("$.decision"),
                    "evaluation": sfn.JsonPath.object_at("$.evaluation")}),
                result_path="$.approval",
                task_timeout=sfn.Timeout.duration(Duration.hours(float(ctx("approval_timeout_hours") or 24)))))
            approved = sfn.Choice(self, "Approved?").when(
                sfn.Condition.boolean_equals("$.approval.approved", True), promote).otherwise(reject)
            outcome.when(sfn.Condition.boolean_equals("$.decision.require_approval", True), ask.next(approved))
        outcome.when(sfn.Condition.string_equals("$.decision.outcome", "promote"), promote).otherwise(reject)

        training_done = (sfn.Choice(self, "TrainingDone?")
                         .when(sfn.Condition.string_equals("$.poll.state", "succeeded"),
                               evaluate.next(decide).next(outcome))
                         .when(sfn.Condition.string_equals("$.poll.state", "failed"), on_failure)
                         .otherwise(wait))
        definition = prepare.next(start).next(wait).next(poll).next(training_done)

        self.state_machine = sfn.StateMachine(
            self, "RetrainAndCompare", definition_body=sfn.DefinitionBody.from_chainable(definition),
            state_machine_name=f"{Stack.of(self).stack_name}-retrain-and-compare", tracing_enabled=True,
            timeout=Duration.minutes(training_minutes + 30
                                     + (float(ctx("approval_timeout_hours") or 24) * 60 if approval else 0)),
            comment="driftstack: retrain a challenger, compare it with the champion, promote only a better one")

        out = Stack.of(self)
        CfnOutput(out, "StateMachineArn", value=self.state_machine.state_machine_arn)
        CfnOutput(out, "HistoryTableName", value=self.history_table.table_name)
        CfnOutput(out, "NotificationTopicArn", value=self.topic.topic_arn)


def _json_ctx(value) -> str:
    """Context values arrive as strings (-c) or objects (cdk.json): normalise to a JSON string."""
    if value in (None, ""):
        return "{}"
    if isinstance(value, str):
        json.loads(value)  # fail at synth, not at run time
        return value
    return json.dumps(value)
