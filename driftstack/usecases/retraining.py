"""The retraining state machine's steps (functions/retrain/app.py: one Lambda task per method).

State passed between tasks (each task's result lands under its own key of the execution state;
the documents are typed in :mod:`driftstack.contract.documents`):

  input    ExecutionInput {run_id, window, champion?, check_id?, drift?, criteria?, training?, data?}
  prepare  -> $.prepared  Prepared {spec_key, status_key, result_key, labelled}
  start    -> $.job       JobHandle (backend handle)
  poll     -> $.poll      Poll {state: running|succeeded|failed, reason, result_key, elapsed, polls}
  evaluate -> $.evaluation  TrainingResult (trimmed)
  decide   -> $.decision  Verdict {outcome: promote|reject, require_approval, reasons, checks, criteria}
  approval (waitForTaskToken) -> $.approval Approval {approved, by, reason}
  promote / reject / record_failure -> $.final ; notify -> $.notified

Every step validates the state it receives (a malformed one fails naming the field: the Step
Functions failure cause) and every outcome (promoted, rejected, failed) updates the run's decision
record (:mod:`driftstack.adapters.decision_store`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from driftstack.adapters import archive, decision_store, registry
from driftstack.adapters import training_backend as TB
from driftstack.contract import documents as doc
from driftstack.contract import names as N
from driftstack.domain import decision as D
from driftstack.usecases import promotion as P
from driftstack.usecases import training_set

STATE = "the execution state"   # where a step's input comes from (named in a validation error)

# what the decide and promote steps need of the training result ($.evaluation)
_CHALLENGER_KEEP = ("metrics", "latency", "parity", "validation", "version", "sha256", "prefix", "bucket", "model_name")


@dataclass(frozen=True)
class RetrainOptions:
    """What the steps read from the function's configuration (see driftstack.settings)."""

    bucket: str
    training_backend: str = "local"
    training_timeout_seconds: float = 1800.0
    data_defaults: Mapping[str, Any] = field(default_factory=dict)
    training_defaults: Mapping[str, Any] = field(default_factory=dict)
    mlflow: Mapping[str, Any] = field(default_factory=dict)
    # the decision criteria with the execution input's overrides applied: RetrainSettings.decision.build,
    # the one parser of DECISION_* and of the overrides (the default: the defaults, typed overrides only)
    criteria_for: Callable[[Mapping[str, Any] | None], D.Criteria] = lambda overrides: D.Criteria(**overrides or {})
    promote_canary_share: float = 0.0
    backend: TB.BackendConfig = TB.BackendConfig()   # what the training backends need (LOCAL_TRAINING_*, EMR_*)

    @classmethod
    def from_settings(cls, s) -> RetrainOptions:
        """From driftstack.settings.RetrainSettings (not imported: settings sit above the use cases)."""
        backend = TB.BackendConfig(**s.backend.model_dump())
        return cls(bucket=s.artifact_bucket, training_backend=backend.training_backend,
                   training_timeout_seconds=backend.training_timeout_seconds, data_defaults=s.data_defaults,
                   training_defaults=s.training_defaults, mlflow=s.mlflow, criteria_for=s.decision.build,
                   promote_canary_share=s.promote_canary_share, backend=backend)


class Retraining:
    """The steps of one run, for one Lambda invocation.  ``s3``, ``history`` (table), ``models``
    (table): the adapters' clients; ``promotion``: what finishes a promotion (shared with the canary)."""

    def __init__(self, opts: RetrainOptions, *, s3, history, models, layout: archive.Layout,
                 promotion: P.Promotion, log) -> None:
        self.opts, self.s3, self.history, self.models, self.layout = opts, s3, history, models, layout
        self.promotion, self.log = promotion, log

    def record(self, run_id: str, **changes) -> dict:
        return decision_store.update_record(self.s3, self.opts.bucket, self.history, run_id, **changes)

    def backend(self, name: str | None = None) -> TB.Backend:
        return TB.get_backend(name or self.opts.training_backend, config=self.opts.backend, s3=self.s3)

    # ------------------------------------------------------------ prepare data

    def prepare(self, event: Mapping) -> dict:
        run = doc.load(doc.ExecutionInput, event, STATE)
        champion = self._champion(run.champion)
        data_opts = {**self.opts.data_defaults, **(run.data or {})}
        base = f"{N.S3_RETRAIN}{run.run_id}/"
        decision_store.save_record(self.s3, self.opts.bucket, self.history, doc.dump(doc.DecisionRecord(
            run_id=run.run_id, outcome="running", started_at=D.now_iso(), window=run.window, champion=champion,
            check_id=run.check_id, drift=run.drift)))
        # A quick count from the aggregates; the Spark job reads and validates the archive itself.
        labelled = training_set.prepare(
            self.s3, self.layout, run.window.start, run.window.end,
            min_rows=int(data_opts.pop("min_labelled", 200)),
            model_version=champion.version if data_opts.pop("champion_traffic_only", False) else None,
            read="direct" if self.opts.training_backend == "emr-serverless" else "stage")
        spec = doc.RetrainSpec(run_id=run.run_id, bucket=self.opts.bucket, champion=champion, window=run.window,
                               archive=labelled.archive, data=data_opts,
                               training={**self.opts.training_defaults, **(run.training or {})},
                               mlflow=dict(self.opts.mlflow), status_key=base + "status.json",
                               result_key=base + "result.json")
        self.s3.put_object(Bucket=self.opts.bucket, Key=base + "spec.json",
                           Body=json.dumps(doc.dump(spec)).encode())
        prepared = doc.Prepared(spec_key=base + "spec.json", status_key=spec.status_key, result_key=spec.result_key,
                                labelled=labelled.summary)
        self.record(run.run_id, labelled=doc.dump(labelled.summary), spec_key=prepared.spec_key)
        self.log.info("prepared", extra={"labelled": doc.dump(labelled.summary)})
        return doc.dump(prepared)

    def _champion(self, given: doc.ChampionRef | None) -> doc.ModelRef:
        """The run's champion, complete (the bucket defaults to ours); none given: the registry's pointer."""
        if given is None:
            ptr = registry.read_pointer(self.models)
            if ptr is None:
                raise RuntimeError("no champion to retrain against")
            given = doc.ChampionRef(model_name=ptr.model_name, version=ptr.version, sha256=ptr.sha256,
                                    prefix=ptr.prefix)
        return doc.load(doc.ModelRef, {"bucket": self.opts.bucket, **doc.dump(given)}, "the execution input's champion")

    # ------------------------------------------------------------ training (backend)

    def start_training(self, event: Mapping) -> dict:
        state = doc.load(doc.StartTrainingState, event, STATE)
        backend = self.backend()
        p = state.prepared
        handle = backend.start(TB.JobRequest(state.run_id, self.opts.bucket, p.spec_key, p.status_key))
        self.record(state.run_id, training={"backend": backend.name, "handle": handle})
        self.log.info("training started", extra={"handle": handle})
        return handle

    def poll_training(self, event: Mapping) -> dict:
        state = doc.load(doc.PollState, event, STATE)
        handle = state.job.model_dump()
        backend = self.backend(state.job.backend)
        status = backend.poll(handle)
        elapsed = time.time() - state.job.started_at
        timeout = self.opts.training_timeout_seconds
        if status["state"] == TB.RUNNING and elapsed > timeout:
            backend.cancel(handle)
            status = {"state": TB.FAILED, "reason": f"training timed out after {elapsed:.0f}s (limit {timeout:.0f}s)"}
        out = doc.Poll(state=status["state"], reason=status.get("reason"), result_key=status.get("result_key"),
                       elapsed=round(elapsed, 1), polls=(state.poll.polls if state.poll else 0) + 1)
        self.log.info("training status", extra=out.model_dump())
        return out.model_dump(mode="json")

    # ------------------------------------------------------------ evaluate, decide

    def evaluate(self, event: Mapping) -> dict:
        state = doc.load(doc.EvaluateState, event, STATE)
        key = state.poll.result_key or state.prepared.result_key
        result = TB.read_result(self.s3, self.opts.bucket, key)
        self.record(state.run_id, evaluation=doc.dump(result))
        trimmed = doc.TrainingResult(
            holdout=result.holdout, champion=result.champion,
            challenger=doc.ChallengerResult.model_validate(
                {k: v for k, v in doc.dump(result.challenger).items() if k in _CHALLENGER_KEEP}),
            training_seconds=result.total_seconds)
        return trimmed.model_dump(mode="json", exclude_unset=True)

    def decide(self, event: Mapping) -> dict:
        state = doc.load(doc.DecideState, event, STATE)
        criteria = self.opts.criteria_for(state.criteria)
        verdict = D.decide(doc.dump(state.evaluation), criteria)
        need_approval = verdict["outcome"] == D.PROMOTE and criteria.require_approval
        self.record(state.run_id, decision=verdict, criteria=verdict["criteria"],
                    outcome=D.AWAITING_APPROVAL if need_approval else "decided", reasons=verdict["reasons"])
        self.log.info("decision", extra={"outcome": verdict["outcome"], "reasons": verdict["reasons"]})
        return {**verdict, "require_approval": need_approval}

    def request_approval(self, event: Mapping) -> dict:
        """Invoked with a task token (waitForTaskToken): park the token, tell a human."""
        state = doc.load(doc.ApprovalState, event, STATE)
        decision_store.store_approval_request(self.history, state.run_id, state.task_token, {
            "reasons": state.decision.reasons, "evaluation": doc.dump(state.evaluation)})
        self.promotion.publish(f"driftstack: approval needed for {state.run_id}", {
            "run_id": state.run_id, "action": f"driftstack approve {state.run_id}  |  driftstack reject {state.run_id}",
            "reasons": state.decision.reasons})
        return {"requested": True}

    # ------------------------------------------------------------ outcomes

    def promote(self, event: Mapping) -> dict:
        state = doc.load(doc.PromoteState, event, STATE)
        chal, expected = state.evaluation.challenger, state.champion.version
        approval = doc.dump(state.approval) if state.approval else None
        if self.opts.promote_canary_share > 0:
            return self._promote_as_canary(state.run_id, chal, expected, approval)
        ptr = registry.write_pointer(self.models, model_name=chal.model_name, version=chal.version,
                                     bucket=chal.bucket or self.opts.bucket, prefix=chal.prefix, sha256=chal.sha256,
                                     expected_version=expected, promoted_by=state.run_id)
        # alias, ModelPromoted event, decision record: driftstack.usecases.promotion (the canary evaluation shares it)
        return self.promotion.finish(state.run_id, model_name=chal.model_name, version=ptr.version,
                                     sha256=chal.sha256, prefix=chal.prefix, previous_version=expected,
                                     pointer_updated_at=ptr.updated_at, metrics=doc.dump(chal.metrics),
                                     champion_metrics=doc.dump(state.evaluation.champion.metrics), approval=approval)

    def _promote_as_canary(self, run_id: str, chal: doc.ChallengerResult, expected: str,
                           approval: dict | None) -> dict:
        """Safe rollout (driftstack.adapters.rollout): the challenger serves ``promote_canary_share``
        of the requests; the scheduled canary evaluation completes it (and then finishes this
        promotion: driftstack.usecases.promotion) or rolls it back.  Until then the run's outcome is
        ``canary``."""
        from driftstack.adapters import rollout

        r = rollout.start(self.models, mode=rollout.CANARY, share=self.opts.promote_canary_share,
                          model_name=chal.model_name, version=chal.version, bucket=chal.bucket or self.opts.bucket,
                          prefix=chal.prefix, sha256=chal.sha256, expected_incumbent=expected,
                          reason=f"promotion decision {run_id}", run_id=run_id)
        rec = self.record(run_id, outcome=P.CANARY, canary_started_at=D.now_iso(), approval=approval,
                          rollout=r.info())
        self.log.info("promoted as canary", extra=r.info())
        return {"outcome": P.CANARY, "version": chal.version, "previous_version": expected, "rollout": r.info(),
                "reasons": rec.get("reasons")}

    def reject(self, event: Mapping) -> dict:
        state = doc.load(doc.RejectState, event, STATE)
        reasons = list(state.decision.reasons)
        if state.approval and not state.approval.approved:
            reasons = [f"rejected by {state.approval.by}: {state.approval.reason or 'no reason given'}"]
        self.record(state.run_id, outcome=D.REJECTED, reasons=reasons,
                    approval=doc.dump(state.approval) if state.approval else None, rejected_at=D.now_iso())
        return {"outcome": D.REJECTED, "reasons": reasons}

    def record_failure(self, event: Mapping) -> dict:
        """The failure path: never fails on the state itself (what it can read, it records)."""
        run_id = str(event.get("run_id") or "unknown")
        err = event.get("error") or {}
        poll = event.get("poll") or {}
        reason = (poll.get("reason") if poll.get("state") == TB.FAILED and not err
                  else f"{err.get('Error', 'Error')}: {lambda_error_message(err.get('Cause', ''))}")
        if event.get("job") and poll.get("state") == TB.RUNNING:
            try:
                self.backend(event["job"].get("backend")).cancel(event["job"])
            except Exception as exc:  # noqa: BLE001
                self.log.warning("could not cancel the training job", extra={"error": str(exc)})
        self.record(run_id, outcome=D.FAILED, error=reason, failed_at=D.now_iso(),
                    reasons=[f"failed: {reason}", "champion unchanged"])
        self.log.error("retraining failed", extra={"run_id": run_id, "reason": reason})
        return {"outcome": D.FAILED, "reason": reason}

    def notify(self, event: Mapping) -> dict:
        subject = self.promotion.notify(event.get("run_id", "unknown"), event.get("final") or {})
        return {"published": True, "subject": subject}


def lambda_error_message(cause: str) -> str:
    """A Lambda error's Cause is a JSON document with errorMessage; anything else is kept as it is."""
    try:
        return json.loads(cause).get("errorMessage", cause)
    except (ValueError, AttributeError):
        return cause
