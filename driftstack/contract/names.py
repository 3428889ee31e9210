"""Names shared by the CDK app and the runtime code, defined once: environment keys, S3 prefixes,
CloudWatch metric names, services and the default thresholds the CDK app passes down.

Pure constants (stdlib only): the CDK app imports this module without the Lambda layer's
dependencies.  ``tests/unit/test_names.py`` fails when one of these strings is retyped elsewhere.
"""

from __future__ import annotations

# ---------------------------------------------------------------- environment keys (set by the CDK app)

ARTIFACT_BUCKET = "ARTIFACT_BUCKET"            # artifacts, the request archive and its spill
MODELS_TABLE = "MODELS_TABLE"                  # champion pointer, rollout state
HISTORY_TABLE = "HISTORY_TABLE"                # drift checks, decision records
LOG_QUEUE_URL = "LOG_QUEUE_URL"                # the request log's queue
STATE_MACHINE_ARN = "STATE_MACHINE_ARN"        # the retraining workflow
TOPIC_ARN = "TOPIC_ARN"                        # notifications
EVENT_BUS_NAME = "EVENT_BUS_NAME"              # ModelPromoted events

ARCHIVE_PREFIX = "ARCHIVE_PREFIX"
FEEDBACK_PREFIX = "FEEDBACK_PREFIX"
AGGREGATES_PREFIX = "AGGREGATES_PREFIX"
LOG_SPILL_PREFIX = "LOG_SPILL_PREFIX"
ARCHIVE_SLOT_MINUTES = "ARCHIVE_SLOT_MINUTES"

MODEL_REFRESH_SECONDS = "MODEL_REFRESH_SECONDS"
BATCH_LIMIT = "BATCH_LIMIT"
MAX_BODY_BYTES = "MAX_BODY_BYTES"
FEEDBACK_MAX_AGE_DAYS = "FEEDBACK_MAX_AGE_DAYS"
LOG_TIMEOUT_SECONDS = "LOG_TIMEOUT_SECONDS"
LOG_DRAIN_THREADS = "LOG_DRAIN_THREADS"            # parallel long polls of a drain of the log queue
LOG_DRAIN_WAIT_SECONDS = "LOG_DRAIN_WAIT_SECONDS"  # each long poll's wait

RETRAIN_COOLDOWN_MINUTES = "RETRAIN_COOLDOWN_MINUTES"
TRAINING_BACKEND = "TRAINING_BACKEND"
TRAINING_TIMEOUT_SECONDS = "TRAINING_TIMEOUT_SECONDS"
RETRAIN_DATA_DEFAULTS = "RETRAIN_DATA_DEFAULTS"
RETRAIN_TRAINING_DEFAULTS = "RETRAIN_TRAINING_DEFAULTS"
RETRAIN_MLFLOW = "RETRAIN_MLFLOW"
PROMOTE_CANARY_SHARE = "PROMOTE_CANARY_SHARE"
ALIAS_TIMEOUT_SECONDS = "ALIAS_TIMEOUT_SECONDS"
LOCAL_TRAINING_PYTHON = "LOCAL_TRAINING_PYTHON"
LOCAL_TRAINING_REPO = "LOCAL_TRAINING_REPO"
LOCAL_TRAINING_LOG_DIR = "LOCAL_TRAINING_LOG_DIR"
EMR_APPLICATION_ID = "EMR_APPLICATION_ID"
EMR_EXECUTION_ROLE_ARN = "EMR_EXECUTION_ROLE_ARN"
EMR_ENTRY_POINT = "EMR_ENTRY_POINT"
EMR_PY_FILES = "EMR_PY_FILES"
EMR_LOG_URI = "EMR_LOG_URI"
EMR_SPARK_PARAMS = "EMR_SPARK_PARAMS"

# Threshold groups: <PREFIX><FIELD upper-cased> of the domain dataclass (e.g. DRIFT_PSI_THRESHOLD).
DRIFT_PREFIX = "DRIFT_"                        # driftstack.domain.drift.DriftConfig
DECISION_PREFIX = "DECISION_"                  # driftstack.domain.decision.Criteria
CANARY_PREFIX = "CANARY_"                      # driftstack.domain.canary.CanaryCriteria
DRIFT_PERIOD_MINUTES = DRIFT_PREFIX + "PERIOD_MINUTES"
DRIFT_WINDOW_MINUTES = DRIFT_PREFIX + "WINDOW_MINUTES"
DECISION_REQUIRE_APPROVAL = DECISION_PREFIX + "REQUIRE_APPROVAL"

# Powertools reads these itself.
POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
POWERTOOLS_LOG_LEVEL = "POWERTOOLS_LOG_LEVEL"
POWERTOOLS_LOGGER_SAMPLE_RATE = "POWERTOOLS_LOGGER_SAMPLE_RATE"

# ---------------------------------------------------------------- S3 prefixes (one bucket)

S3_REQUESTS = "requests/"                      # the request archive (driftstack.adapters.archive)
S3_FEEDBACK = "feedback/"
S3_AGGREGATES = "aggregates/"
S3_LOG_SPILL = "log-spill/"                    # request-log messages the queue refused
S3_MODELS = "models/"                          # model artifacts (driftstack.adapters.registry)
S3_DRIFT = "drift/"                            # drift check results and reports
S3_DRIFT_RESULTS = S3_DRIFT + "results/"
S3_DRIFT_REPORTS = S3_DRIFT + "reports/"
S3_DECISIONS = "decisions/"
S3_RETRAIN = "retrain/"                        # per-run spec, status and result

# ---------------------------------------------------------------- CloudWatch (Powertools EMF)

NAMESPACE = "driftstack"
PREDICT_SERVICE = "driftstack-predict"
LOG_ARCHIVER_SERVICE = "driftstack-log-archiver"
DRIFT_SERVICE = "driftstack-drift-check"
CANARY_SERVICE = "driftstack-canary-eval"
RETRAIN_SERVICE = "driftstack-retrain"

METRIC_PREDICTIONS = "Predictions"
METRIC_PREDICT_LATENCY = "PredictLatency"
METRIC_ERRORS = "Errors"                       # predict requests that failed (500)
METRIC_VALIDATION_ERRORS = "ValidationErrors"  # predict requests refused (4xx)
METRIC_NO_MODEL = "NoModel"                     # predict requests with no model to serve
METRIC_DRIFT_TRIGGERED = "DriftTriggered"
METRIC_DRIFT_SAMPLES = "DriftSamples"
METRIC_DRIFTED_FEATURES = "DriftedFeatures"
METRIC_WINDOW_RMSE = "WindowRMSE"              # the window's feedback RMSE (performance drift)
METRIC_PREDICTION_PSI = "PredictionPSI"
METRIC_FEATURE_PSI = "FeaturePSI"              # + "_<feature>"
METRIC_CANARY_REQUESTS = "CanaryRequests"      # predictions the canary candidate served
METRIC_CANARY_ERRORS = "CanaryErrors"          # candidate failures (the champion answered instead)
METRIC_SHADOW_ERRORS = "ShadowErrors"
METRIC_MODEL_LOAD_FAILURES = "ModelLoadFailures"
METRIC_REQUEST_LOG_SPILLS = "RequestLogSpills"
METRIC_CANARY_COMPLETIONS = "CanaryCompletions"
METRIC_CANARY_ROLLBACKS = "CanaryRollbacks"
METRIC_CANARY_EVALUATIONS = "CanaryEvaluations"
METRIC_PROMOTION_FOLLOW_UP_ERRORS = "PromotionFollowUpErrors"
METRIC_ARCHIVED_REQUESTS = "ArchivedRequests"
METRIC_ARCHIVED_FEEDBACK = "ArchivedFeedback"
METRIC_ARCHIVED_SLOTS = "ArchivedSlots"
METRIC_LOG_SPILLS_MERGED = "LogSpillsMerged"
METRIC_LOG_MESSAGES_REJECTED = "LogMessagesRejected"

# ---------------------------------------------------------------- defaults the CDK app passes down

DEFAULT_SLOT_MINUTES = 5                       # archive slot length (divides 60)
DEFAULT_MODEL_REFRESH_SECONDS = 30
DEFAULT_FEEDBACK_MAX_AGE_DAYS = 30
DEFAULT_LOG_TIMEOUT_SECONDS = 2
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
DEFAULT_RETRAIN_COOLDOWN_MINUTES = 60           # the CDK app's; a function without the variable has none
DEFAULT_TRAINING_TIMEOUT_MINUTES = 60           # the CDK app's; a function without the variable: 1800 s
DEFAULT_LOG_SAMPLE_RATE = 0.1
LOG_LEVEL = "INFO"
