"""Serving configuration, read once from the function's environment (set by the CDK construct)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from driftstack.contract.api import DEFAULT_BATCH_LIMIT


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name, default)
    return value if value not in ("", None) else default


@dataclass(frozen=True)
class ServingConfig:
    models_table: str
    log_queue_url: str                   # the request log's one durable write (driftstack.adapters.request_log)
    bucket: str                          # artifacts, and the request archive + its spill
    refresh_seconds: float = 30.0        # champion pointer re-check interval
    batch_limit: int = DEFAULT_BATCH_LIMIT
    max_body_bytes: int = 2 * 1024 * 1024
    feedback_max_age_days: float = 30.0  # feedback for older requests is refused
    log_timeout_seconds: float = 2.0     # per try of the queue write before the record spills to S3

    @classmethod
    def from_env(cls) -> ServingConfig:
        missing = [n for n in ("MODELS_TABLE", "LOG_QUEUE_URL", "ARTIFACT_BUCKET") if not _env(n)]
        if missing:
            raise RuntimeError(f"serving configuration incomplete: set {', '.join(missing)}")
        d = cls.__dataclass_fields__
        return cls(
            models_table=_env("MODELS_TABLE"),
            log_queue_url=_env("LOG_QUEUE_URL"),
            bucket=_env("ARTIFACT_BUCKET"),
            refresh_seconds=float(_env("MODEL_REFRESH_SECONDS", "30")),
            batch_limit=int(_env("BATCH_LIMIT", str(DEFAULT_BATCH_LIMIT))),
            max_body_bytes=int(_env("MAX_BODY_BYTES", str(d["max_body_bytes"].default))),
            feedback_max_age_days=float(_env("FEEDBACK_MAX_AGE_DAYS", "30")),
            log_timeout_seconds=float(_env("LOG_TIMEOUT_SECONDS", "2")),
        )
