"""One settings model per Lambda function, read once from its environment (set by the CDK app;
the names are constants of :mod:`driftstack.contract.names`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from driftstack.adapters.archive import Layout
from driftstack.adapters.request_log import LogSettings
from driftstack.contract import names as N
from driftstack.contract.api import DEFAULT_BATCH_LIMIT
from driftstack.domain.canary import CanaryCriteria
from driftstack.domain.decision import Criteria
from driftstack.domain.drift import DriftConfig
from driftstack.settings.base import EnvSettings, env, thresholds

DriftThresholds = thresholds(DriftConfig, N.DRIFT_PREFIX)
DecisionThresholds = thresholds(Criteria, N.DECISION_PREFIX)
CanaryThresholds = thresholds(CanaryCriteria, N.CANARY_PREFIX)

class ArchiveSettings(EnvSettings):
    """Where the request archive lives (driftstack.adapters.archive)."""

    artifact_bucket: str = env(N.ARTIFACT_BUCKET, min_length=1)
    archive_prefix: str = env(N.ARCHIVE_PREFIX, N.S3_REQUESTS)
    feedback_prefix: str = env(N.FEEDBACK_PREFIX, N.S3_FEEDBACK)
    aggregates_prefix: str = env(N.AGGREGATES_PREFIX, N.S3_AGGREGATES)
    log_spill_prefix: str = env(N.LOG_SPILL_PREFIX, N.S3_LOG_SPILL)
    archive_slot_minutes: int = env(N.ARCHIVE_SLOT_MINUTES, N.DEFAULT_SLOT_MINUTES)

    def layout(self) -> Layout:
        return Layout(bucket=self.artifact_bucket, requests_prefix=self.archive_prefix,
                      feedback_prefix=self.feedback_prefix, aggregates_prefix=self.aggregates_prefix,
                      spill_prefix=self.log_spill_prefix, slot_minutes=self.archive_slot_minutes)

class PredictSettings(ArchiveSettings):
    models_table: str = env(N.MODELS_TABLE, min_length=1)
    log_queue_url: str = env(N.LOG_QUEUE_URL, min_length=1)   # the request log's one durable write
    refresh_seconds: float = env(N.MODEL_REFRESH_SECONDS, N.DEFAULT_MODEL_REFRESH_SECONDS, ge=0)
    batch_limit: int = env(N.BATCH_LIMIT, DEFAULT_BATCH_LIMIT, ge=1)
    max_body_bytes: int = env(N.MAX_BODY_BYTES, N.DEFAULT_MAX_BODY_BYTES, ge=1)
    feedback_max_age_days: float = env(N.FEEDBACK_MAX_AGE_DAYS, N.DEFAULT_FEEDBACK_MAX_AGE_DAYS, gt=0)
    log_timeout_seconds: float = env(N.LOG_TIMEOUT_SECONDS, N.DEFAULT_LOG_TIMEOUT_SECONDS, gt=0)

    def log_settings(self) -> LogSettings:
        return LogSettings(queue_url=self.log_queue_url, layout=self.layout(),
                           retention_days=self.feedback_max_age_days)

class LogArchiverSettings(ArchiveSettings):
    log_queue_url: str = env(N.LOG_QUEUE_URL, min_length=1)

class DriftCheckSettings(ArchiveSettings):
    models_table: str = env(N.MODELS_TABLE, min_length=1)
    history_table: str = env(N.HISTORY_TABLE, min_length=1)
    state_machine_arn: str = env(N.STATE_MACHINE_ARN, min_length=1)
    log_queue_url: str = env(N.LOG_QUEUE_URL, min_length=1)
    retrain_cooldown_minutes: float = env(N.RETRAIN_COOLDOWN_MINUTES, 0.0, ge=0)
    drift: DriftThresholds    # DRIFT_*; .build(event overrides) -> DriftConfig

class TrainingBackendSettings(EnvSettings):
    """driftstack.adapters.training_backend: a host process (LocalStack) or EMR Serverless (AWS)."""

    training_backend: Literal["local", "emr-serverless"] = env(N.TRAINING_BACKEND, "local")
    training_timeout_seconds: float = env(N.TRAINING_TIMEOUT_SECONDS, 1800.0, gt=0)
    local_training_python: str | None = env(N.LOCAL_TRAINING_PYTHON, None)
    local_training_repo: str | None = env(N.LOCAL_TRAINING_REPO, None)
    local_training_log_dir: str | None = env(N.LOCAL_TRAINING_LOG_DIR, None)
    emr_application_id: str | None = env(N.EMR_APPLICATION_ID, None)
    emr_execution_role_arn: str | None = env(N.EMR_EXECUTION_ROLE_ARN, None)
    emr_entry_point: str | None = env(N.EMR_ENTRY_POINT, None)
    emr_py_files: str | None = env(N.EMR_PY_FILES, None)
    emr_log_uri: str | None = env(N.EMR_LOG_URI, None)
    emr_spark_params: str = env(N.EMR_SPARK_PARAMS, "")

class PromotionSettings(ArchiveSettings):
    """Finishing a promotion (MLflow alias, ModelPromoted event, notification): driftstack.usecases.promotion.
    The retraining workflow promotes directly; the canary evaluation finishes a canary's promotion."""

    topic_arn: str | None = env(N.TOPIC_ARN, None)
    event_bus_name: str | None = env(N.EVENT_BUS_NAME, None)
    mlflow: dict = env(N.RETRAIN_MLFLOW, {})
    alias_timeout_seconds: float = env(N.ALIAS_TIMEOUT_SECONDS, 90.0, gt=0)
    backend: TrainingBackendSettings   # the local backend's Python sets the MLflow alias


class CanaryEvalSettings(PromotionSettings):
    models_table: str = env(N.MODELS_TABLE, min_length=1)
    log_queue_url: str = env(N.LOG_QUEUE_URL, min_length=1)
    history_table: str | None = env(N.HISTORY_TABLE, None)   # finishing a retraining run's promotion needs it
    canary: CanaryThresholds  # CANARY_*; .build(event overrides) -> CanaryCriteria


class RetrainSettings(PromotionSettings):
    models_table: str = env(N.MODELS_TABLE, min_length=1)
    history_table: str = env(N.HISTORY_TABLE, min_length=1)
    data_defaults: dict = env(N.RETRAIN_DATA_DEFAULTS, {})
    training_defaults: dict = env(N.RETRAIN_TRAINING_DEFAULTS, {})
    promote_canary_share: float = env(N.PROMOTE_CANARY_SHARE, 0.0, ge=0, le=1)   # > 0: promote as a canary
    decision: DecisionThresholds    # DECISION_*; .build(execution-input criteria) -> Criteria
