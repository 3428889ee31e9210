"""Scheduled canary evaluation (EventBridge rule -> this Lambda).

Reads the active rollout (driftstack.serving.rollout).  A shadow: stores the champion/challenger
comparison (agreement, error on feedback; no verdict).  A canary: reads the request-log
records of this rollout since it started (by_time GSI), evaluates them (driftstack.canary) and
completes the rollout (candidate becomes champion) or rolls it back (champion keeps serving),
atomically, recording the reason.  Every evaluation is stored (``rollout#evaluation``) and visible
in ``driftstack status``.  Metrics: CanaryCompletions, CanaryRollbacks (the CanaryRolledBack alarm).

Event (all optional): {"criteria": {CanaryCriteria overrides}, "now": epoch seconds}.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from driftstack import canary
from driftstack.serving import aws
from driftstack.serving import rollout as ro
from driftstack.serving.request_log import LogSettings, query_window

logger = Logger(service="driftstack-canary-eval")
metrics = Metrics(namespace="driftstack", service="driftstack-canary-eval")

MODELS = aws.dynamodb_table(os.environ["MODELS_TABLE"])
DDB = aws.client("dynamodb")
SETTINGS = LogSettings(table=os.environ["REQUEST_LOG_TABLE"], bucket=os.environ.get("ARTIFACT_BUCKET", ""),
                       shards=int(os.environ.get("TIME_BUCKET_SHARDS", "1")))


def evaluate_active(event: dict) -> dict:
    rollout = ro.read(MODELS)
    if rollout is None:
        return {"status": "idle", "message": "no rollout is active"}
    now = float(event.get("now") or time.time())
    start = datetime.fromtimestamp(rollout.started_at, timezone.utc)
    end = datetime.fromtimestamp(now, timezone.utc)
    records = [r for r in query_window(DDB, SETTINGS, start, end) if r.get("rollout_id") == rollout.rollout_id]
    if rollout.mode == ro.SHADOW:  # no verdict: record how the challenger compares, for people to decide
        doc = {"outcome": "shadow", "rollout_id": rollout.rollout_id, "candidate_version": rollout.pointer.version,
               "incumbent_version": rollout.incumbent_version, "evaluated_at": now,
               "comparison": canary.shadow_comparison(records)}
        ro.save_evaluation(MODELS, doc)
        return {"status": "shadow", **{k: doc[k] for k in ("rollout_id", "candidate_version", "comparison")}}
    criteria = canary.CanaryCriteria.from_env(**(event.get("criteria") or {}))
    doc = canary.evaluate(records, started_at=rollout.started_at, now=now, criteria=criteria)
    doc.update(rollout_id=rollout.rollout_id, candidate_version=rollout.pointer.version,
               incumbent_version=rollout.incumbent_version, evaluated_at=now)
    reason = "; ".join(doc["reasons"])
    try:
        if doc["outcome"] == canary.COMPLETE:
            ro.complete(MODELS, rollout, reason=reason, evaluation=doc)
            metrics.add_metric(name="CanaryCompletions", unit=MetricUnit.Count, value=1)
        elif doc["outcome"] == canary.ROLLBACK:
            ro.rollback(MODELS, rollout, reason=reason, evaluation=doc)
            metrics.add_metric(name="CanaryRollbacks", unit=MetricUnit.Count, value=1)
    except ro.RolloutConflict as exc:
        doc.update(outcome="conflict", reasons=[str(exc)])
    ro.save_evaluation(MODELS, doc)
    metrics.add_metric(name="CanaryEvaluations", unit=MetricUnit.Count, value=1)
    return {"status": doc["outcome"], **{k: doc[k] for k in ("rollout_id", "candidate_version", "incumbent_version",
                                                             "reasons", "candidate", "incumbent", "signals")}}


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event, context):
    out = evaluate_active(event or {})
    logger.info("canary evaluation", extra={k: out.get(k) for k in ("status", "rollout_id", "reasons")})
    return out
