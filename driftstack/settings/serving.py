"""Settings of the serving functions (predict, log_archiver) and the archive layout every function
shares.  Kept apart from the workflow settings so the predict function's cold start imports no
more than it needs."""

from __future__ import annotations

from pydantic import Field

from driftstack.adapters.archive import Layout
from driftstack.adapters.request_log import LogSettings
from driftstack.contract import names as N
from driftstack.contract.api import DEFAULT_BATCH_LIMIT
from driftstack.settings.base import EnvSettings, env


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

class LogDrainSettings(EnvSettings):
    """How a drain of the log queue polls it (driftstack.usecases.log_drain.DrainOptions)."""

    threads: int = env(N.LOG_DRAIN_THREADS, 4, ge=1)
    wait_seconds: int = env(N.LOG_DRAIN_WAIT_SECONDS, 1, ge=0, le=20)   # SQS long polls wait at most 20 s

    def options(self):
        from driftstack.usecases.log_drain import DrainOptions   # not on the predict function's cold start

        return DrainOptions(threads=self.threads, wait_seconds=self.wait_seconds)


class LogArchiverSettings(ArchiveSettings):
    log_queue_url: str = env(N.LOG_QUEUE_URL, min_length=1)
    drain: LogDrainSettings = Field(default_factory=LogDrainSettings)
