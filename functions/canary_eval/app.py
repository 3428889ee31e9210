"""Scheduled canary evaluation (EventBridge rule -> this Lambda).

Reads the active rollout (driftstack.adapters.rollout).  A shadow: stores the champion/challenger
comparison (agreement, error on feedback; no verdict).  A canary: reads the request-log
records of this rollout since it started (from the archive, after a drain), evaluates them (driftstack.domain.canary) and
completes the rollout (candidate becomes champion) or rolls it back (champion keeps serving),
atomically, recording the reason.  A candidate the predict function could not load (``load_failure``
on the rollout item) is rolled back at once.  A canary started by a retraining run's promotion
(``run_id`` on the rollout) is finished like a direct promotion when it completes (MLflow alias,
ModelPromoted event, decision record, SNS notification: driftstack.usecases.promotion); a rolled-back one
updates that run's decision record and notifies.  Every evaluation is stored (``rollout#evaluation``)
and visible in ``driftstack status``.  Metrics: CanaryCompletions, CanaryRollbacks (the
CanaryRolledBack alarm), PromotionFollowUpErrors.

Event (all optional): {"criteria": {CanaryCriteria overrides}, "now": epoch seconds}.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from driftstack.adapters import archive
from driftstack.domain import canary
from driftstack.usecases import log_drain
from driftstack.usecases import promotion as P
from driftstack.adapters import aws
from driftstack.adapters import rollout as ro

logger = Logger(service="driftstack-canary-eval")
metrics = Metrics(namespace="driftstack", service="driftstack-canary-eval")

MODELS = aws.dynamodb_table(os.environ["MODELS_TABLE"])
LAYOUT = archive.Layout.from_env()
S3 = aws.client("s3", timeout=30)
SQS = aws.client("sqs", timeout=30)
QUEUE_URL = os.environ["LOG_QUEUE_URL"]


def rollout_records(rollout: ro.Rollout, start: datetime, end: datetime) -> list[dict]:
    """The rollout's logged requests: archive what is queued, then read the archive's slots."""
    log_drain.drain(sqs=SQS, s3=S3, layout=LAYOUT, queue_url=QUEUE_URL,
                    load_profile=log_drain.ProfileCache(S3, LAYOUT.bucket), budget_seconds=60, log=logger)
    log_drain.wait_for_other_drains(SQS, QUEUE_URL, timeout_seconds=30)
    records = [r for r in archive.read_records(S3, LAYOUT, archive.REQUESTS, start, end)
               if r.get("rollout_id") == rollout.rollout_id]
    return archive.with_feedback(records, archive.read_records(S3, LAYOUT, archive.FEEDBACK, start, end))


def evaluate_active(event: dict) -> dict:
    rollout = ro.read(MODELS)
    if rollout is None:
        return {"status": "idle", "message": "no rollout is active"}
    now = float(event.get("now") or time.time())
    start = datetime.fromtimestamp(rollout.started_at, timezone.utc)
    end = datetime.fromtimestamp(now, timezone.utc)
    records = rollout_records(rollout, start, end + timedelta(seconds=1))
    if rollout.mode == ro.SHADOW:  # no verdict: record how the challenger compares, for people to decide
        doc = {"outcome": "shadow", "rollout_id": rollout.rollout_id, "candidate_version": rollout.pointer.version,
               "incumbent_version": rollout.incumbent_version, "evaluated_at": now,
               "comparison": canary.shadow_comparison(records)}
        if rollout.load_failure:  # no verdict on a shadow, but say why it has no predictions
            doc["load_failure"] = rollout.load_failure
        ro.save_evaluation(MODELS, doc)
        return {"status": "shadow", **{k: doc[k] for k in ("rollout_id", "candidate_version", "comparison")}}
    criteria = canary.CanaryCriteria.from_env(os.environ, **(event.get("criteria") or {}))
    doc = canary.evaluate(records, started_at=rollout.started_at, now=now, criteria=criteria,
                          load_failure=rollout.load_failure)
    doc.update(rollout_id=rollout.rollout_id, candidate_version=rollout.pointer.version,
               incumbent_version=rollout.incumbent_version, evaluated_at=now)
    reason = "; ".join(doc["reasons"])
    ended = None
    try:
        if doc["outcome"] == canary.COMPLETE:
            ended = ro.complete(MODELS, rollout, reason=reason, evaluation=doc)
            metrics.add_metric(name="CanaryCompletions", unit=MetricUnit.Count, value=1)
        elif doc["outcome"] == canary.ROLLBACK:
            ended = ro.rollback(MODELS, rollout, reason=reason, evaluation=doc)
            metrics.add_metric(name="CanaryRollbacks", unit=MetricUnit.Count, value=1)
    except ro.RolloutConflict as exc:
        doc.update(outcome="conflict", reasons=[str(exc)])
    if ended is not None and rollout.run_id:
        doc["promotion"] = finish_promotion(rollout, ended)
    ro.save_evaluation(MODELS, doc)
    metrics.add_metric(name="CanaryEvaluations", unit=MetricUnit.Count, value=1)
    keys = ("rollout_id", "candidate_version", "incumbent_version", "reasons", "candidate", "incumbent", "signals",
            "promotion")
    return {"status": doc["outcome"], **{k: doc[k] for k in keys if k in doc}}


def finish_promotion(rollout: ro.Rollout, ended: dict) -> dict:
    """The canary came from a retraining run's promotion: finish it like a direct promotion
    (completed) or record why it did not happen (rolled back), then notify.  The rollout has
    ended whatever happens here, so failures are reported, not raised (a retry would find no rollout)."""
    try:
        promotion = P.Promotion(s3=aws.client("s3", timeout=30), bucket=os.environ["ARTIFACT_BUCKET"],
                                history=aws.dynamodb_table(os.environ["HISTORY_TABLE"]), client=aws.client, log=logger)
        if ended["outcome"] == "completed":
            final = promotion.finish_canary(rollout, ended)
        else:
            final = promotion.rolled_back(rollout, ended)
    except Exception as exc:  # noqa: BLE001 - e.g. HISTORY_TABLE not configured
        final = {"outcome": ended["outcome"], "errors": [f"promotion not finished: {type(exc).__name__}: {exc}"]}
    else:
        try:
            promotion.notify(rollout.run_id, final)
        except Exception as exc:  # noqa: BLE001
            final = {**final, "errors": [*final.get("errors", []), f"notification not sent: {exc}"]}
    if final.get("errors"):
        metrics.add_metric(name="PromotionFollowUpErrors", unit=MetricUnit.Count, value=1)
        logger.warning("promotion follow-up incomplete", extra={"run_id": rollout.run_id, "errors": final["errors"]})
    return {"run_id": rollout.run_id, **final}


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event, context):
    out = evaluate_active(event or {})
    logger.info("canary evaluation", extra={k: out.get(k) for k in ("status", "rollout_id", "reasons")})
    return out
