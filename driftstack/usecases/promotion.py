"""Finishing a promotion: what follows the champion pointer naming a retraining run's challenger,
in ONE place, whether the pointer moved at once (the retrain workflow's promote step) or at the
end of the canary that promotion started (the scheduled canary evaluation, issue 9):

- the MLflow ``champion`` alias (:func:`set_alias`: local training backend -> the project Python
  sets it in the registry the training job used, bounded by ``ALIAS_TIMEOUT_SECONDS``; elsewhere the
  intent is recorded as pending);
- the ``ModelPromoted`` EventBridge event;
- the run's decision record (outcome ``promoted``; after a canary also ``promoted_via: canary`` and
  the canary's outcome and evaluation);
- the SNS notification (:meth:`Promotion.notify`: the workflow's Notify step sends it after a
  direct promotion, the canary evaluation after a canary).

A canary started by a promotion records the run's outcome as ``canary`` until the evaluation ends
it: ``promoted`` (above) or ``rolled_back`` (:meth:`Promotion.rolled_back`: the reason, the
evaluation, a notification; the champion never changed).

The pointer is what serves, so once it has moved nothing here may undo or hide it: the alias, the
event and the record are each attempted, and what failed is returned in ``errors`` (and written
into the record when the record itself could be written).

Configuration (:class:`PromotionOptions`, from the function's settings): TOPIC_ARN (optional),
EVENT_BUS_NAME (default), TRAINING_BACKEND, LOCAL_TRAINING_PYTHON / LOCAL_TRAINING_REPO,
RETRAIN_MLFLOW, ALIAS_TIMEOUT_SECONDS.  Lambda-safe: standard library + boto3.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from driftstack.domain import decision as D
from driftstack.adapters import decision_store
from driftstack.adapters import registry
from driftstack.adapters import training_backend as TB

CANARY, ROLLED_BACK = D.CANARY, D.ROLLED_BACK  # re-exported: the canary outcomes of a promotion
EVENT_SOURCE, EVENT_TYPE = "driftstack", "ModelPromoted"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromotionOptions:
    """What finishing a promotion needs of the function's configuration."""

    topic_arn: str | None = None                  # no topic: no notification
    event_bus_name: str = "default"
    mlflow: Mapping[str, Any] = field(default_factory=dict)   # RETRAIN_MLFLOW: tracking_uri of the job's registry
    alias_timeout_seconds: float = 90.0
    backend: TB.BackendConfig = TB.BackendConfig()

    @classmethod
    def from_settings(cls, s) -> PromotionOptions:
        """From a function's settings (driftstack.settings.PromotionSettings: not imported, it sits above)."""
        return cls(topic_arn=s.topic_arn, event_bus_name=s.event_bus_name or "default", mlflow=s.mlflow,
                   alias_timeout_seconds=s.alias_timeout_seconds, backend=TB.BackendConfig(**s.backend.model_dump()))


def set_alias(model_name: str, version: str, opts: PromotionOptions, log=None) -> dict:
    """MLflow alias 'champion' -> ``version``.  Never raises: the pointer (what serves) has already
    switched; a failure is recorded (``status: failed``) instead."""
    log = log or _log
    intent = {"model_name": model_name, "alias": registry.CHAMPION, "version": str(version)}
    if opts.backend.training_backend != "local":
        return {**intent, "status": "pending", "note": "set by `driftstack` CLI / tracking server sync"}
    try:
        uri = opts.mlflow.get("tracking_uri")
        args = ["set-alias", "--model-name", model_name, "--version", str(version)] + (["--tracking-uri", uri] if uri else [])
        done = TB.LocalBackend.from_config(opts.backend).run_sync(args, timeout=opts.alias_timeout_seconds)
        return {**intent, "status": "set", "tracking_uri": done.get("tracking_uri")}
    except Exception as exc:  # noqa: BLE001 - includes subprocess.TimeoutExpired
        log.warning("MLflow alias not set", extra={"error": str(exc)})
        return {**intent, "status": "failed", "error": str(exc)[:500]}


class Promotion:
    """The side effects of a promotion, for one Lambda.  ``client(name)`` makes boto3 clients
    (created on first use, so a function that never notifies needs no SNS client)."""

    def __init__(self, *, s3, bucket: str, history, client: Callable[[str], Any],
                 options: PromotionOptions = PromotionOptions(), log=None) -> None:
        self.s3, self.bucket, self.history, self._client = s3, bucket, history, client
        self.options = options
        self.log = log or _log
        self._clients: dict[str, Any] = {}

    def client(self, name: str):
        if name not in self._clients:
            self._clients[name] = self._client(name)
        return self._clients[name]

    def record(self, run_id: str, **changes) -> dict:
        return decision_store.update_record(self.s3, self.bucket, self.history, run_id, **changes)

    # ------------------------------------------------------------ promoted

    def finish(self, run_id: str, *, model_name: str, version: str, sha256: str, prefix: str,
               previous_version: str, pointer_updated_at: float, metrics: Mapping | None = None,
               champion_metrics: Mapping | None = None, **record_changes) -> dict:
        """The pointer names ``version`` now: alias, event, decision record.  -> the final result
        ({outcome, version, previous_version, mlflow_alias, reasons[, errors]})."""
        errors: list[str] = []
        if metrics is None or champion_metrics is None:  # after a canary: from the run's record
            try:
                evaluation = (decision_store.load_record(self.s3, self.bucket, run_id) or {}).get("evaluation") or {}
            except Exception as exc:  # noqa: BLE001
                evaluation = {}
                errors.append(f"decision record unreadable: {exc}")
            metrics = metrics or D._get(evaluation, "challenger", "metrics")
            champion_metrics = champion_metrics or D._get(evaluation, "champion", "metrics")
        alias = set_alias(model_name, version, self.options, self.log)
        detail = {"run_id": run_id, "model_name": model_name, "version": str(version),
                  "previous_version": str(previous_version), "sha256": sha256, "prefix": prefix,
                  "metrics": metrics, "champion_metrics": champion_metrics}
        if record_changes.get("promoted_via"):
            detail["promoted_via"] = record_changes["promoted_via"]
        try:
            resp = self.client("events").put_events(Entries=[{
                "Source": EVENT_SOURCE, "DetailType": EVENT_TYPE, "Detail": json.dumps(detail, default=str),
                "EventBusName": self.options.event_bus_name}])
            if resp.get("FailedEntryCount"):  # PutEvents reports a refused entry in the body, not as an error
                entry = (resp.get("Entries") or [{}])[0]
                raise RuntimeError(f"{entry.get('ErrorCode')}: {entry.get('ErrorMessage')}")
        except Exception as exc:  # noqa: BLE001 - the new champion serves already; say what is missing
            errors.append(f"{EVENT_TYPE} event not sent: {exc}")
        changes = dict(outcome=D.PROMOTED, promoted_at=D.now_iso(), mlflow_alias=alias,
                       pointer={"version": str(version), "updated_at": pointer_updated_at}, **record_changes)
        reasons = None
        try:
            rec = self.record(run_id, **changes, **({"promotion_errors": errors} if errors else {}))
            reasons = rec.get("reasons")
        except Exception as exc:  # noqa: BLE001
            errors.append(f"decision record not updated: {exc}")
        out = {"outcome": D.PROMOTED, "version": str(version), "previous_version": str(previous_version),
               "mlflow_alias": alias, "reasons": reasons}
        if record_changes.get("promoted_via"):
            out["promoted_via"] = record_changes["promoted_via"]
        if errors:
            out["errors"] = errors
            self.log.warning("promotion finished with errors", extra={"run_id": run_id, "errors": errors})
        else:
            self.log.info("promoted", extra=detail)
        return out

    def finish_canary(self, rollout, outcome: Mapping) -> dict:
        """A promotion's canary completed (driftstack.adapters.rollout.complete has moved the
        pointer): the same end state as a direct promotion, plus the canary's evidence."""
        p = rollout.pointer
        return self.finish(rollout.run_id, model_name=p.model_name, version=p.version, sha256=p.sha256,
                           prefix=p.prefix, previous_version=rollout.incumbent_version,
                           pointer_updated_at=float(outcome.get("ended_at") or 0),
                           promoted_via="canary", canary=_canary_summary(rollout, outcome))

    # ------------------------------------------------------------ rolled back

    def rolled_back(self, rollout, outcome: Mapping) -> dict:
        """A promotion's canary was rolled back: the run's record says so and why; the champion
        (which never moved) keeps serving."""
        reason = outcome.get("reason") or "rolled back"
        out = {"outcome": ROLLED_BACK, "version": rollout.pointer.version,
               "champion_version": rollout.incumbent_version, "reasons": [f"canary rolled back: {reason}"]}
        try:
            self.record(rollout.run_id, outcome=ROLLED_BACK, rolled_back_at=D.now_iso(), reasons=out["reasons"],
                        canary=_canary_summary(rollout, outcome))
        except Exception as exc:  # noqa: BLE001
            out["errors"] = [f"decision record not updated: {exc}"]
        return out

    # ------------------------------------------------------------ notification

    def notify(self, run_id: str, final: Mapping) -> str:
        """The run's outcome to the SNS topic (TOPIC_ARN; none configured: nothing sent). -> subject"""
        subject = f"driftstack retraining {run_id}: {final.get('outcome', 'finished')}"
        self.publish(subject, {"run_id": run_id, **final})
        return subject

    def publish(self, subject: str, message: Mapping) -> None:
        topic = self.options.topic_arn
        if topic:
            self.client("sns").publish(TopicArn=topic, Subject=subject[:99],
                                       Message=json.dumps(message, default=str, indent=2))


def _canary_summary(rollout, outcome: Mapping) -> dict:
    return {"rollout_id": rollout.rollout_id, "share": rollout.share, "outcome": outcome.get("outcome"),
            "reason": outcome.get("reason"), "started_at": rollout.started_at, "ended_at": outcome.get("ended_at"),
            "evaluation": outcome.get("evaluation")}
