"""The scheduled canary evaluation (functions/canary_eval/app.py).

Reads the active rollout (driftstack.adapters.rollout).  A shadow: stores the champion/challenger
comparison (agreement, error on feedback; no verdict).  A canary: reads the request-log records of
this rollout since it started (from the archive, after a drain), evaluates them
(driftstack.domain.canary) and completes the rollout (candidate becomes champion) or rolls it back
(champion keeps serving), atomically, recording the reason.  A candidate the predict function could
not load (``load_failure`` on the rollout item) is rolled back at once.  A canary started by a
retraining run's promotion (``run_id`` on the rollout) is finished like a direct promotion when it
completes (MLflow alias, ModelPromoted event, decision record, SNS notification:
driftstack.usecases.promotion); a rolled-back one updates that run's decision record and notifies.
Every evaluation (:class:`driftstack.contract.documents.CanaryEvaluation`) is stored
(``rollout#evaluation``) and visible in ``driftstack status``.  Counts: CanaryEvaluations,
CanaryCompletions, CanaryRollbacks, PromotionFollowUpErrors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from driftstack.adapters import archive
from driftstack.adapters import rollout as ro
from driftstack.contract import documents as doc
from driftstack.contract import names as N
from driftstack.domain import canary
from driftstack.usecases import log_drain
from driftstack.usecases import promotion as P

# what the handler returns of a canary evaluation (the stored document has everything)
SUMMARY_KEYS = ("rollout_id", "candidate_version", "incumbent_version", "reasons", "candidate", "incumbent", "signals",
                "promotion")


class CanaryEvaluator:
    """``count(metric_name)``: one CloudWatch count; ``promotion()``: what finishes a retraining
    run's promotion (made only when a rollout of a run ends; it may raise, e.g. no history table)."""

    def __init__(self, *, models, s3, sqs, layout: archive.Layout, queue_url: str,
                 promotion: Callable[[], P.Promotion], count: Callable[[str], None], log,
                 drain: log_drain.DrainOptions = log_drain.DrainOptions()) -> None:
        self.models, self.s3, self.sqs, self.layout, self.queue_url = models, s3, sqs, layout, queue_url
        self.drain = drain
        self.promotion, self.count, self.log = promotion, count, log

    def rollout_records(self, rollout: ro.Rollout, start: datetime, end: datetime) -> list[dict]:
        """The rollout's logged requests: archive what is queued, then read the archive's slots."""
        log_drain.drain(sqs=self.sqs, s3=self.s3, layout=self.layout, queue_url=self.queue_url,
                        load_profile=log_drain.ProfileCache(self.s3, self.layout.bucket), budget_seconds=60,
                        options=self.drain, log=self.log)
        log_drain.wait_for_other_drains(self.sqs, self.queue_url, timeout_seconds=30)
        records = [r for r in archive.read_records(self.s3, self.layout, archive.REQUESTS, start, end)
                   if r.get("rollout_id") == rollout.rollout_id]
        return archive.with_feedback(records, archive.read_records(self.s3, self.layout, archive.FEEDBACK, start, end))

    def evaluate_active(self, criteria: canary.CanaryCriteria, now: float | None = None) -> dict:
        rollout = ro.read(self.models)
        if rollout is None:
            return {"status": "idle", "message": "no rollout is active"}
        now = float(now or time.time())
        start = datetime.fromtimestamp(rollout.started_at, timezone.utc)
        records = self.rollout_records(rollout, start, datetime.fromtimestamp(now, timezone.utc) + timedelta(seconds=1))
        ids = dict(rollout_id=rollout.rollout_id, candidate_version=rollout.pointer.version,
                   incumbent_version=rollout.incumbent_version, evaluated_at=now)
        if rollout.mode == ro.SHADOW:  # no verdict: record how the challenger compares, for people to decide
            shadow = doc.CanaryEvaluation(outcome="shadow", **ids, comparison=canary.shadow_comparison(records),
                                          **({"load_failure": rollout.load_failure} if rollout.load_failure else {}))
            ro.save_evaluation(self.models, doc.dump(shadow))
            return {"status": "shadow", "rollout_id": shadow.rollout_id, "candidate_version": shadow.candidate_version,
                    "comparison": shadow.comparison}
        verdict = canary.evaluate(records, started_at=rollout.started_at, now=now, criteria=criteria,
                                  load_failure=rollout.load_failure)
        evaluation = doc.dump(doc.CanaryEvaluation(**verdict, **ids))
        ended = self._end(rollout, evaluation)
        if ended is not None and rollout.run_id:
            evaluation["promotion"] = self.finish_promotion(rollout, ended)
        ro.save_evaluation(self.models, evaluation)
        self.count(N.METRIC_CANARY_EVALUATIONS)
        return {"status": evaluation["outcome"], **{k: evaluation[k] for k in SUMMARY_KEYS if k in evaluation}}

    def _end(self, rollout: ro.Rollout, evaluation: dict) -> dict | None:
        """Complete or roll back as the verdict says (atomically); a concurrent change is a conflict."""
        reason = "; ".join(evaluation["reasons"])
        try:
            if evaluation["outcome"] == canary.COMPLETE:
                ended = ro.complete(self.models, rollout, reason=reason, evaluation=evaluation)
                self.count(N.METRIC_CANARY_COMPLETIONS)
                return ended
            if evaluation["outcome"] == canary.ROLLBACK:
                ended = ro.rollback(self.models, rollout, reason=reason, evaluation=evaluation)
                self.count(N.METRIC_CANARY_ROLLBACKS)
                return ended
        except ro.RolloutConflict as exc:
            evaluation.update(outcome="conflict", reasons=[str(exc)])
        return None

    def finish_promotion(self, rollout: ro.Rollout, ended: dict) -> dict:
        """The canary came from a retraining run's promotion: finish it like a direct promotion
        (completed) or record why it did not happen (rolled back), then notify.  The rollout has
        ended whatever happens here, so failures are reported, not raised (a retry would find no rollout)."""
        try:
            promotion = self.promotion()
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
            self.count(N.METRIC_PROMOTION_FOLLOW_UP_ERRORS)
            self.log.warning("promotion follow-up incomplete", extra={"run_id": rollout.run_id, "errors": final["errors"]})
        return {"run_id": rollout.run_id, **final}
