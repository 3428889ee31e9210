"""The retraining state machine's Lambda tasks (one function per handler, same code asset).

State passed between tasks (each task's result lands under its own key of the execution state):
  input    {run_id, window, champion, check_id, drift, criteria?, training?, data?}
  prepare  -> $.prepared {spec_key, status_key, result_key, labelled}
  start    -> $.job      (backend handle)
  poll     -> $.poll     {state: running|succeeded|failed, reason, result_key, elapsed}
  evaluate -> $.evaluation
  decide   -> $.decision {outcome: promote|reject, require_approval, reasons, checks}
  approval (waitForTaskToken) -> $.approval {approved, by, reason}
  promote / reject / record_failure -> $.final ; notify -> $.notified
Every outcome (promoted, rejected, failed) updates the run's decision record (driftstack.decision).
"""

from __future__ import annotations

import json
import os
import time

from aws_lambda_powertools import Logger

from driftstack.domain import decision as D
from driftstack.adapters import decision_store
from driftstack.adapters import archive
from driftstack.adapters import registry
from driftstack.usecases import training_set
from driftstack.usecases import promotion as P
from driftstack.adapters import training_backend as TB
from driftstack.adapters import aws

logger = Logger(service="driftstack-retrain")

BUCKET = os.environ["ARTIFACT_BUCKET"]
S3 = aws.client("s3", timeout=30)
HISTORY = aws.dynamodb_table(os.environ["HISTORY_TABLE"])
_clients: dict = {}


def _client(name: str):
    if name not in _clients:
        _clients[name] = aws.client(name)
    return _clients[name]


def _models():
    return aws.dynamodb_table(os.environ["MODELS_TABLE"])


def _record(run_id: str, **changes) -> dict:
    return decision_store.update_record(S3, BUCKET, HISTORY, run_id, **changes)


# ---------------------------------------------------------------- prepare data

@logger.inject_lambda_context
def prepare(event, context):
    run_id = event["run_id"]
    champion = event.get("champion")
    if not champion:
        ptr = registry.read_pointer(_models())
        if ptr is None:
            raise RuntimeError("no champion to retrain against")
        champion = {"model_name": ptr.model_name, "version": ptr.version, "sha256": ptr.sha256, "prefix": ptr.prefix}
    champion.setdefault("bucket", BUCKET)
    data_opts = {**json.loads(os.environ.get("RETRAIN_DATA_DEFAULTS", "{}")), **(event.get("data") or {})}
    base = f"retrain/{run_id}/"
    decision_store.save_record(S3, BUCKET, HISTORY, {
        "run_id": run_id, "outcome": "running", "started_at": D.now_iso(), "window": event["window"],
        "champion": champion, "check_id": event.get("check_id"), "drift": event.get("drift")})
    # A quick count from the aggregates; the Spark job reads and validates the archive itself.
    labelled = training_set.prepare(
        S3, archive.Layout.from_env(), event["window"]["start"], event["window"]["end"],
        min_rows=int(data_opts.pop("min_labelled", 200)),
        model_version=champion["version"] if data_opts.pop("champion_traffic_only", False) else None,
        read="direct" if os.environ.get("TRAINING_BACKEND") == "emr-serverless" else "stage")
    spec = {"run_id": run_id, "bucket": BUCKET, "champion": champion, "window": event["window"],
            "archive": labelled["archive"], "data": data_opts,
            "training": {**json.loads(os.environ.get("RETRAIN_TRAINING_DEFAULTS", "{}")), **(event.get("training") or {})},
            "mlflow": json.loads(os.environ.get("RETRAIN_MLFLOW", "{}")),
            "status_key": base + "status.json", "result_key": base + "result.json"}
    S3.put_object(Bucket=BUCKET, Key=base + "spec.json", Body=json.dumps(spec, default=str).encode())
    summary = {k: labelled[k] for k in ("labelled", "requests", "slots")}
    _record(run_id, labelled=summary, spec_key=base + "spec.json")
    logger.info("prepared", extra={"labelled": summary})
    return {"spec_key": base + "spec.json", "status_key": spec["status_key"], "result_key": spec["result_key"],
            "labelled": summary}


# ---------------------------------------------------------------- training (backend)

@logger.inject_lambda_context
def start_training(event, context):
    p = event["prepared"]
    backend = TB.get_backend(s3=S3)
    handle = backend.start(TB.JobRequest(event["run_id"], BUCKET, p["spec_key"], p["status_key"]))
    _record(event["run_id"], training={"backend": backend.name, "handle": handle})
    logger.info("training started", extra={"handle": handle})
    return handle


@logger.inject_lambda_context
def poll_training(event, context):
    handle = event["job"]
    backend = TB.for_handle(handle, s3=S3)
    status = backend.poll(handle)
    elapsed = time.time() - float(handle["started_at"])
    timeout = float(os.environ.get("TRAINING_TIMEOUT_SECONDS", "1800"))
    if status["state"] == TB.RUNNING and elapsed > timeout:
        backend.cancel(handle)
        status = {"state": TB.FAILED, "reason": f"training timed out after {elapsed:.0f}s (limit {timeout:.0f}s)"}
    out = {"state": status["state"], "reason": status.get("reason"), "result_key": status.get("result_key"),
           "elapsed": round(elapsed, 1), "polls": int((event.get("poll") or {}).get("polls", 0)) + 1}
    logger.info("training status", extra=out)
    return out


# ---------------------------------------------------------------- evaluate, decide

REQUIRED = (("champion", "metrics", "rmse"), ("challenger", "metrics", "rmse"), ("challenger", "prefix"),
            ("challenger", "sha256"), ("challenger", "version"), ("holdout", "rows"))


@logger.inject_lambda_context
def evaluate(event, context):
    key = event["poll"]["result_key"] or event["prepared"]["result_key"]
    result = json.loads(S3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    missing = [".".join(p) for p in REQUIRED if D._get(result, *p) is None]
    if missing:
        raise ValueError(f"training result s3://{BUCKET}/{key} is missing {', '.join(missing)}")
    _record(event["run_id"], evaluation=result)
    keep = ("metrics", "latency", "parity", "validation", "version", "sha256", "prefix", "bucket", "model_name")
    return {"holdout": result["holdout"], "champion": result["champion"],
            "challenger": {k: result["challenger"].get(k) for k in keep},
            "training_seconds": result.get("total_seconds")}


@logger.inject_lambda_context
def decide(event, context):
    criteria = D.Criteria.from_env(os.environ, overrides=event.get("criteria"))
    verdict = D.decide(event["evaluation"], criteria)
    need_approval = verdict["outcome"] == D.PROMOTE and criteria.require_approval
    _record(event["run_id"], decision=verdict, criteria=verdict["criteria"],
            outcome=D.AWAITING_APPROVAL if need_approval else "decided", reasons=verdict["reasons"])
    logger.info("decision", extra={"outcome": verdict["outcome"], "reasons": verdict["reasons"]})
    return {**verdict, "require_approval": need_approval}


@logger.inject_lambda_context
def request_approval(event, context):
    """Invoked with a task token (waitForTaskToken): park the token, tell a human."""
    run_id = event["run_id"]
    decision_store.store_approval_request(HISTORY, run_id, event["task_token"],
                             {"reasons": event["decision"]["reasons"], "evaluation": event["evaluation"]})
    _publish(f"driftstack: approval needed for {run_id}",
             {"run_id": run_id, "action": f"driftstack approve {run_id}  |  driftstack reject {run_id}",
              "reasons": event["decision"]["reasons"]})
    return {"requested": True}


# ---------------------------------------------------------------- outcomes

@logger.inject_lambda_context
def promote(event, context):
    run_id, chal = event["run_id"], event["evaluation"]["challenger"]
    expected = event["champion"]["version"]
    if float(os.environ.get("PROMOTE_CANARY_SHARE") or 0) > 0:
        return _promote_as_canary(event, chal, expected)
    ptr = registry.write_pointer(_models(), model_name=chal["model_name"], version=chal["version"],
                                 bucket=chal.get("bucket") or BUCKET, prefix=chal["prefix"], sha256=chal["sha256"],
                                 expected_version=expected, promoted_by=run_id)
    # alias, ModelPromoted event, decision record: driftstack.usecases.promotion (the canary evaluation shares it)
    return _promotion().finish(run_id, model_name=chal["model_name"], version=ptr.version, sha256=chal["sha256"],
                               prefix=chal["prefix"], previous_version=expected, pointer_updated_at=ptr.updated_at,
                               metrics=chal["metrics"], champion_metrics=event["evaluation"]["champion"]["metrics"],
                               approval=event.get("approval"))


def _promote_as_canary(event, chal: dict, expected: str) -> dict:
    """Safe rollout (driftstack.adapters.rollout): the challenger serves PROMOTE_CANARY_SHARE of the
    requests; the scheduled canary evaluation completes it (and then finishes this promotion:
    driftstack.usecases.promotion) or rolls it back.  Until then the run's outcome is ``canary``."""
    from driftstack.adapters import rollout

    r = rollout.start(_models(), mode=rollout.CANARY, share=float(os.environ["PROMOTE_CANARY_SHARE"]),
                      model_name=chal["model_name"], version=chal["version"], bucket=chal.get("bucket") or BUCKET,
                      prefix=chal["prefix"], sha256=chal["sha256"], expected_incumbent=expected,
                      reason=f"promotion decision {event['run_id']}", run_id=event["run_id"])
    rec = _record(event["run_id"], outcome=P.CANARY, canary_started_at=D.now_iso(), approval=event.get("approval"),
                  rollout=r.info())
    logger.info("promoted as canary", extra=r.info())
    return {"outcome": P.CANARY, "version": chal["version"], "previous_version": expected, "rollout": r.info(),
            "reasons": rec.get("reasons")}


def _promotion() -> P.Promotion:
    return P.Promotion(s3=S3, bucket=BUCKET, history=HISTORY, client=_client, log=logger)


@logger.inject_lambda_context
def reject(event, context):
    run_id = event["run_id"]
    approval = event.get("approval")
    reasons = list(event["decision"]["reasons"])
    if approval and not approval.get("approved", False):
        reasons = [f"rejected by {approval.get('by', 'a human')}: {approval.get('reason') or 'no reason given'}"]
    _record(run_id, outcome=D.REJECTED, reasons=reasons, approval=approval, rejected_at=D.now_iso())
    return {"outcome": D.REJECTED, "reasons": reasons}


@logger.inject_lambda_context
def record_failure(event, context):
    run_id = event.get("run_id", "unknown")
    err = event.get("error") or {}
    cause = err.get("Cause", "")
    try:  # a Lambda error's Cause is a JSON document with errorMessage
        cause = json.loads(cause).get("errorMessage", cause)
    except (ValueError, AttributeError):
        pass
    poll = event.get("poll") or {}
    reason = poll.get("reason") if poll.get("state") == TB.FAILED and not err else f"{err.get('Error', 'Error')}: {cause}"
    if event.get("job") and poll.get("state") == TB.RUNNING:
        try:
            TB.for_handle(event["job"], s3=S3).cancel(event["job"])
        except Exception as exc:  # noqa: BLE001
            logger.warning("could not cancel the training job", extra={"error": str(exc)})
    _record(run_id, outcome=D.FAILED, error=reason, failed_at=D.now_iso(),
            reasons=[f"failed: {reason}", "champion unchanged"])
    logger.error("retraining failed", extra={"run_id": run_id, "reason": reason})
    return {"outcome": D.FAILED, "reason": reason}


@logger.inject_lambda_context
def notify(event, context):
    subject = _promotion().notify(event.get("run_id", "unknown"), event.get("final") or {})
    return {"published": True, "subject": subject}


def _publish(subject: str, message: dict) -> None:
    _promotion().publish(subject, message)
