"""Settings of the Lambda functions: one pydantic-settings model per function, read from its
environment once (at cold start).  ``base`` holds the machinery; ``serving`` the predict and
log-archiver models (and the shared archive layout); ``workflows`` the drift-check, canary-evaluation
and retraining ones.  Names are imported lazily, so the predict function's cold start does not pay
for the workflow models and the domain modules they are built from."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from driftstack.settings.base import EnvSettings, SettingsError, Thresholds, env, thresholds

_HOME = {
    **dict.fromkeys(("ArchiveSettings", "PredictSettings", "LogArchiverSettings", "LogDrainSettings"), "serving"),
    **dict.fromkeys(("DriftCheckSettings", "CanaryEvalSettings", "RetrainSettings", "PromotionSettings",
                     "TrainingBackendSettings", "DriftThresholds", "DecisionThresholds", "CanaryThresholds"),
                    "workflows"),
}

__all__ = ["EnvSettings", "SettingsError", "Thresholds", "env", "thresholds", *_HOME]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
