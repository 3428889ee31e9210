"""Serving configuration, read once from the function's environment (set by the CDK construct)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from driftstack.schema import DEFAULT_BATCH_LIMIT


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name, default)
    return value if value not in ("", None) else default


@dataclass(frozen=True)
class ServingConfig:
    models_table: str
    request_log_table: str
    bucket: str                          # request archive (and feedback archive) bucket
    fallback_queue_url: str | None = None
    archive_prefix: str = "requests/"
    feedback_prefix: str = "feedback/"
    refresh_seconds: float = 30.0        # champion pointer re-check interval
    batch_limit: int = DEFAULT_BATCH_LIMIT
    max_body_bytes: int = 2 * 1024 * 1024
    ttl_days: float = 30.0               # request log TTL
    time_bucket_shards: int = 1          # >1 spreads one hour's writes over several GSI partitions
    log_timeout_seconds: float = 2.0     # DynamoDB/S3 log write timeout before the fallback is used

    @classmethod
    def from_env(cls) -> ServingConfig:
        missing = [n for n in ("MODELS_TABLE", "REQUEST_LOG_TABLE", "ARTIFACT_BUCKET") if not _env(n)]
        if missing:
            raise RuntimeError(f"serving configuration incomplete: set {', '.join(missing)}")
        d = cls.__dataclass_fields__
        return cls(
            models_table=_env("MODELS_TABLE"),
            request_log_table=_env("REQUEST_LOG_TABLE"),
            bucket=_env("ARTIFACT_BUCKET"),
            fallback_queue_url=_env("FALLBACK_QUEUE_URL"),
            archive_prefix=_env("ARCHIVE_PREFIX", d["archive_prefix"].default),
            feedback_prefix=_env("FEEDBACK_PREFIX", d["feedback_prefix"].default),
            refresh_seconds=float(_env("MODEL_REFRESH_SECONDS", "30")),
            batch_limit=int(_env("BATCH_LIMIT", str(DEFAULT_BATCH_LIMIT))),
            max_body_bytes=int(_env("MAX_BODY_BYTES", str(d["max_body_bytes"].default))),
            ttl_days=float(_env("REQUEST_LOG_TTL_DAYS", "30")),
            time_bucket_shards=int(_env("TIME_BUCKET_SHARDS", "1")),
            log_timeout_seconds=float(_env("LOG_TIMEOUT_SECONDS", "2")),
        )
