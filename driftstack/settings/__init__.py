"""Settings of the Lambda functions: one pydantic-settings model per function, read from its
environment once (at cold start).  ``base`` holds the machinery, ``functions`` the models."""

from driftstack.settings.base import EnvSettings, SettingsError, Thresholds, thresholds
from driftstack.settings.functions import (ArchiveSettings, CanaryEvalSettings, CanaryThresholds, DecisionThresholds,
                                           DriftCheckSettings, DriftThresholds, LogArchiverSettings, PredictSettings,
                                           PromotionSettings, RetrainSettings, TrainingBackendSettings)

__all__ = ["EnvSettings", "SettingsError", "Thresholds", "thresholds", "ArchiveSettings", "PredictSettings",
           "LogArchiverSettings", "DriftCheckSettings", "CanaryEvalSettings", "RetrainSettings", "PromotionSettings",
           "TrainingBackendSettings", "DriftThresholds", "DecisionThresholds", "CanaryThresholds"]
