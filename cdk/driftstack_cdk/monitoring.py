"""Monitoring: an EventBridge schedule runs the drift-check Lambda, which may start retraining.

Context knobs: ``drift_schedule_minutes`` (60; the demo uses 1), ``drift_window_minutes`` (1440),
``drift_psi_threshold`` (0.2), ``drift_min_drifted_features`` (3), ``drift_prediction_psi_threshold``
(0.2), ``drift_rmse_degradation`` (0.2), ``drift_min_samples`` (100), ``drift_min_feedback`` (30),
``retrain_cooldown_minutes`` (60: no new execution within this long after the last one started).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from driftstack.contract import names as N
from driftstack.domain.drift import DriftConfig
from driftstack_cdk.function_env import powertools_env, thresholds_env

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = DriftConfig()


class Monitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, storage, serving, retraining) -> None:
        super().__init__(scope, construct_id)
        ctx = self.node.try_get_context
        rate = float(ctx("drift_schedule_minutes") or DEFAULTS.period_minutes)
        window = float(ctx("drift_window_minutes") or DEFAULTS.window_minutes)
        for name, minutes in (("drift_schedule_minutes", rate), ("drift_window_minutes", window)):
            if minutes % serving.slot_minutes:  # aggregates are per slot: a window is whole slots
                raise ValueError(f"{name}={minutes:g} must be a multiple of archive_slot_minutes={serving.slot_minutes}")
        cooldown = ctx("retrain_cooldown_minutes")
        env = {
            **serving.archive_env,
            N.MODELS_TABLE: storage.models_table.table_name,
            N.HISTORY_TABLE: retraining.history_table.table_name,
            N.STATE_MACHINE_ARN: retraining.state_machine.state_machine_arn,
            N.DRIFT_PERIOD_MINUTES: str(rate),
            N.DRIFT_WINDOW_MINUTES: str(window),
            N.RETRAIN_COOLDOWN_MINUTES: str(cooldown if cooldown is not None else N.DEFAULT_RETRAIN_COOLDOWN_MINUTES),
            **powertools_env(N.DRIFT_SERVICE),
            # the window and period come from the schedule above
            **thresholds_env(ctx, DriftConfig, N.DRIFT_PREFIX, skip=("period_minutes", "window_minutes")),
        }
        self.function = lambda_.Function(
            self, "DriftCheck", code=lambda_.Code.from_asset(str(ROOT / "functions" / "drift_check")),
            handler="app.handler", runtime=lambda_.Runtime.PYTHON_3_12, architecture=lambda_.Architecture.X86_64,
            layers=serving.layers, timeout=Duration.seconds(300), memory_size=1024, environment=env,
            description="driftstack scheduled drift check")
        # Least privilege: drain the log into the archive (it reads what it checks), read the
        # champion's artifacts, write drift results.
        serving.grant_archiving(self.function)
        storage.bucket.grant_read(self.function, f"{N.S3_MODELS}*")
        storage.bucket.grant_put(self.function, f"{N.S3_DRIFT}*")
        storage.models_table.grant(self.function, "dynamodb:GetItem")
        retraining.history_table.grant(self.function, "dynamodb:PutItem")
        retraining.state_machine.grant_start_execution(self.function)
        # ListExecutions only (one running at a time); grant_read would add Describe*/List* on "*".
        self.function.add_to_role_policy(iam.PolicyStatement(
            actions=["states:ListExecutions"], resources=[retraining.state_machine.state_machine_arn]))

        minutes = int(rate) if rate == int(rate) else rate
        self.rule = events.Rule(
            self, "Schedule", description="driftstack drift check",
            schedule=events.Schedule.rate(Duration.minutes(minutes)),
            targets=[targets.LambdaFunction(self.function, retry_attempts=2)])

        out = Stack.of(self)
        CfnOutput(out, "DriftCheckFunctionName", value=self.function.function_name)
        CfnOutput(out, "DriftScheduleRuleName", value=self.rule.rule_name)
