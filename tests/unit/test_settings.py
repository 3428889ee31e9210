"""driftstack.settings: one pydantic-settings model per function, errors naming the variable."""

from __future__ import annotations

import pytest

from driftstack.adapters.archive import Layout
from driftstack.domain.canary import CanaryCriteria
from driftstack.domain.decision import Criteria
from driftstack.domain.drift import DriftConfig
from driftstack.usecases.log_drain import DrainOptions
from driftstack.settings import (CanaryEvalSettings, DriftCheckSettings, LogArchiverSettings, PredictSettings,
                                 RetrainSettings, SettingsError)

BASE = {"ARTIFACT_BUCKET": "bucket", "MODELS_TABLE": "models", "HISTORY_TABLE": "history",
        "LOG_QUEUE_URL": "https://queue", "STATE_MACHINE_ARN": "arn:sm"}


def test_predict_settings_defaults_and_log_settings():
    s = PredictSettings.from_env({**BASE, "BATCH_LIMIT": "50", "FEEDBACK_MAX_AGE_DAYS": "7", "MODEL_REFRESH_SECONDS": ""})
    assert (s.batch_limit, s.refresh_seconds, s.max_body_bytes) == (50, 30.0, 2 * 1024 * 1024)
    log = s.log_settings()
    assert log.queue_url == "https://queue" and log.retention_days == 7.0
    assert log.layout == Layout(bucket="bucket")


def test_missing_and_malformed_variables_are_named():
    with pytest.raises(SettingsError, match="LOG_QUEUE_URL: Field required"):
        PredictSettings.from_env({k: v for k, v in BASE.items() if k != "LOG_QUEUE_URL"})
    with pytest.raises(SettingsError, match="BATCH_LIMIT='lots'"):
        PredictSettings.from_env({**BASE, "BATCH_LIMIT": "lots"})
    with pytest.raises(SettingsError, match="ARCHIVE_SLOT_MINUTES"):
        LogArchiverSettings.from_env({**BASE, "ARCHIVE_SLOT_MINUTES": "five"})


def test_drift_thresholds_from_env_and_overrides():
    s = DriftCheckSettings.from_env({**BASE, "DRIFT_PSI_THRESHOLD": "0.3", "DRIFT_MIN_SAMPLES": "50",
                                     "RETRAIN_COOLDOWN_MINUTES": "15"})
    assert s.retrain_cooldown_minutes == 15.0
    assert s.drift.build() == DriftConfig(psi_threshold=0.3, min_samples=50)
    assert s.drift.build({"min_samples": "7"}).min_samples == 7
    with pytest.raises(SettingsError, match="nope"):
        s.drift.build({"nope": 1})
    with pytest.raises(SettingsError, match="DRIFT_MIN_SAMPLES='many'"):
        DriftCheckSettings.from_env({**BASE, "DRIFT_MIN_SAMPLES": "many"})


def test_decision_thresholds_from_env_and_execution_input_overrides():
    s = RetrainSettings.from_env({**BASE, "DECISION_MIN_RMSE_IMPROVEMENT": "1.5", "DECISION_REQUIRE_APPROVAL": "true"})
    c = s.decision.build({"max_latency_increase": 0.1})
    assert (c.min_rmse_improvement, c.require_approval, c.max_latency_increase) == (1.5, True, 0.1)
    with pytest.raises(SettingsError, match="min_rmse_improvment"):
        s.decision.build({"min_rmse_improvment": 1})
    with pytest.raises(SettingsError, match="min_holdout_rows"):
        s.decision.build({"min_holdout_rows": "lots"})


def test_unknown_prefixed_variable_is_refused():
    with pytest.raises(SettingsError, match="DRIFT_PSI_THRESHHOLD"):
        DriftCheckSettings.from_env({**BASE, "DRIFT_PSI_THRESHHOLD": "0.3"})


def test_domain_validation_runs_at_cold_start():
    with pytest.raises(SettingsError, match="window_minutes"):
        DriftCheckSettings.from_env({**BASE, "DRIFT_WINDOW_MINUTES": "0"})


@pytest.mark.parametrize("raw, expected", [("true", True), ("1", True), ("yes", True), ("false", False),
                                           ("0", False), ("no", False)])
def test_booleans_parse_one_way(raw, expected):
    s = RetrainSettings.from_env({**BASE, "DECISION_REQUIRE_APPROVAL": raw})
    assert s.decision.build().require_approval is expected


def test_malformed_boolean_is_refused():
    with pytest.raises(SettingsError, match="DECISION_REQUIRE_APPROVAL='maybe'"):
        RetrainSettings.from_env({**BASE, "DECISION_REQUIRE_APPROVAL": "maybe"})


def test_retrain_settings():
    s = RetrainSettings.from_env({**BASE, "RETRAIN_MLFLOW": '{"tracking_uri": "http://m"}', "PROMOTE_CANARY_SHARE": "0.3",
                                  "TRAINING_BACKEND": "emr-serverless", "EMR_APPLICATION_ID": "app",
                                  "DECISION_MIN_RMSE_IMPROVEMENT": "1.5"})
    assert s.mlflow == {"tracking_uri": "http://m"} and s.data_defaults == {} and s.promote_canary_share == 0.3
    assert s.backend.training_backend == "emr-serverless" and s.backend.emr_application_id == "app"
    assert s.decision.build({"require_approval": True}) == Criteria(min_rmse_improvement=1.5, require_approval=True)
    with pytest.raises(SettingsError, match="PROMOTE_CANARY_SHARE"):
        RetrainSettings.from_env({**BASE, "PROMOTE_CANARY_SHARE": "2"})
    with pytest.raises(SettingsError, match="TRAINING_BACKEND='spark'"):
        RetrainSettings.from_env({**BASE, "TRAINING_BACKEND": "spark"})


def test_canary_eval_settings():
    s = CanaryEvalSettings.from_env({**BASE, "CANARY_MIN_REQUESTS": "7"})
    assert s.canary.build({"max_latency_ratio": "2.5"}) == CanaryCriteria(min_requests=7, max_latency_ratio=2.5)
    assert CanaryEvalSettings.from_env({k: v for k, v in BASE.items() if k != "HISTORY_TABLE"}).history_table is None
    with pytest.raises(SettingsError, match="max_error_rate='lots'"):
        s.canary.build({"max_error_rate": "lots"})
    with pytest.raises(SettingsError, match="bogus"):
        s.canary.build({"bogus": 1})


def test_reads_os_environ_by_default(monkeypatch):
    for k, v in BASE.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("ARCHIVE_SLOT_MINUTES", "10")
    assert LogArchiverSettings.from_env().layout().slot_minutes == 10
    assert LogArchiverSettings().log_queue_url == "https://queue"


def test_log_drain_settings_in_every_function_that_drains():
    for model in (LogArchiverSettings, DriftCheckSettings, CanaryEvalSettings):
        s = model.from_env({**BASE, "LOG_DRAIN_THREADS": "2", "LOG_DRAIN_WAIT_SECONDS": "0"})
        assert (s.drain.options().threads, s.drain.options().wait_seconds) == (2, 0)
    assert LogArchiverSettings.from_env(BASE).drain.options() == DrainOptions()   # 4 threads, 1 s long polls
    with pytest.raises(SettingsError, match="LOG_DRAIN_THREADS='0'"):
        LogArchiverSettings.from_env({**BASE, "LOG_DRAIN_THREADS": "0"})


def test_canary_eval_can_finish_a_promotion():
    s = CanaryEvalSettings.from_env({**BASE, "TOPIC_ARN": "arn:topic", "RETRAIN_MLFLOW": '{"tracking_uri": "http://m"}',
                                     "LOCAL_TRAINING_PYTHON": "/usr/bin/python3"})
    assert s.topic_arn == "arn:topic" and s.mlflow["tracking_uri"] == "http://m" and s.alias_timeout_seconds == 90.0
    assert s.backend.training_backend == "local" and s.backend.local_training_python == "/usr/bin/python3"
