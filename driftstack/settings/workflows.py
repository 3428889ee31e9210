"""Settings of the scheduled and workflow functions: drift_check, canary_eval and the retraining
tasks, with their threshold groups (DRIFT_*, CANARY_*, DECISION_*) built from the domain dataclasses."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from driftstack.contract import names as N
from driftstack.domain.canary import CanaryCriteria
from driftstack.domain.decision import Criteria
from driftstack.domain.drift import DriftConfig
from driftstack.settings.base import EnvSettings, env, thresholds
from driftstack.settings.serving import ArchiveSettings, LogDrainSettings

DriftThresholds = thresholds(DriftConfig, N.DRIFT_PREFIX)
DecisionThresholds = thresholds(Criteria, N.DECISION_PREFIX)
CanaryThresholds = thresholds(CanaryCriteria, N.CANARY_PREFIX)

class DriftCheckSettings(ArchiveSettings):
    models_table: str = env(N.MODELS_TABLE, min_length=1)
    history_table: str = env(N.HISTORY_TABLE, min_length=1)
    state_machine_arn: str = env(N.STATE_MACHINE_ARN, min_length=1)
    log_queue_url: str = env(N.LOG_QUEUE_URL, min_length=1)
    retrain_cooldown_minutes: float = env(N.RETRAIN_COOLDOWN_MINUTES, 0.0, ge=0)
    drain: LogDrainSettings = Field(default_factory=LogDrainSettings)   # LOG_DRAIN_*: the check drains the log queue first
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
    drain: LogDrainSettings = Field(default_factory=LogDrainSettings)   # LOG_DRAIN_*: the evaluation drains the log queue first
    canary: CanaryThresholds  # CANARY_*; .build(event overrides) -> CanaryCriteria


class RetrainSettings(PromotionSettings):
    models_table: str = env(N.MODELS_TABLE, min_length=1)
    history_table: str = env(N.HISTORY_TABLE, min_length=1)
    data_defaults: dict = env(N.RETRAIN_DATA_DEFAULTS, {})
    training_defaults: dict = env(N.RETRAIN_TRAINING_DEFAULTS, {})
    promote_canary_share: float = env(N.PROMOTE_CANARY_SHARE, 0.0, ge=0, le=1)   # > 0: promote as a canary
    decision: DecisionThresholds    # DECISION_*; .build(execution-input criteria) -> Criteria
