"""Safe rollout of a candidate model next to the champion: shadow scoring and canary routing.

State: one item in the models table, ``pk="pointer#candidate"`` (a registry pointer with role
"candidate", plus ``mode`` shadow|canary, ``share``, ``rollout_id``, ``incumbent_version``,
``started_at``, and ``run_id`` when a retraining run's promotion started it).  It is created with a
conditional write (only when no rollout is active), and ended atomically by a DynamoDB transaction:

- complete: champion pointer := candidate (only if still at ``incumbent_version``) + delete the
  candidate item (only if still this ``rollout_id``) + the outcome record;
- roll back / stop: delete the candidate item (only if still this rollout) + the outcome record.
  The champion pointer never moved during the canary, so every request is back on the previous
  champion as soon as the containers re-read the pointer (``MODEL_REFRESH_SECONDS``).

Outcome records: ``pk="rollout#<rollout_id>"`` and a copy under ``pk="rollout#last"`` (outcome,
reason, evaluation).  Numbers are stored as strings, as the registry does.

Serving side (:class:`RolloutRouter`): the predict function re-reads the candidate item on the
same interval as the champion pointer, loads the candidate through the same verified path
(sha256, contract, smoke test) and exposes an immutable :class:`Active` snapshot.  With no
rollout, ``get()`` is one clock comparison and returns None.  A candidate the container cannot
load for good (sha256 mismatch, missing object, bad graph, failed smoke test; not a transient
download error) is written onto the candidate item (``load_failure``, one conditional update, the
first container wins) and not downloaded again for that rollout: the canary evaluation rolls such
a candidate back at its next run instead of waiting ``max_minutes`` for traffic that never comes.

Canary routing is a pure function of the request id (CRC-32, not Python's salted ``hash``), so the
same request id is always served by the same arm, in every container and on every replay.
"""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from driftstack.adapters.registry import CHAMPION, Pointer, PointerConflict, previous_of, read_pointer, write_pointer

CANDIDATE = "candidate"
SHADOW, CANARY = "shadow", "canary"
MODES = (SHADOW, CANARY)
LAST_OUTCOME_PK = "rollout#last"
EVALUATION_PK = "rollout#evaluation"
_BUCKETS = 10_000  # routing resolution: shares in steps of 0.01 %


class RolloutError(Exception):
    """A rollout cannot be started or changed; the message says why."""


class RolloutConflict(RolloutError):
    """The state changed under us (another rollout, a promotion, or someone else ended it)."""


# ---------------------------------------------------------------- routing

def bucket_of(request_id: str) -> int:
    return zlib.crc32(request_id.encode()) % _BUCKETS


def threshold_of(share: float) -> int:
    return int(round(share * _BUCKETS))


# ---------------------------------------------------------------- state

@dataclass(frozen=True)
class Rollout:
    pointer: Pointer           # the candidate artifact
    mode: str
    share: float               # canary: share of requests served by the candidate; shadow: 1.0
    rollout_id: str
    incumbent_version: str
    started_at: float
    reason: str = ""
    run_id: str = ""           # the retraining run whose promotion started this canary ("" = manual)
    load_failure: str = ""     # why a serving container could not load the candidate ("" = none seen)

    def info(self) -> dict[str, Any]:
        out = {"rollout_id": self.rollout_id, "mode": self.mode, "share": self.share,
               "candidate_version": self.pointer.version, "candidate_sha256": self.pointer.sha256,
               "incumbent_version": self.incumbent_version, "started_at": self.started_at,
               "reason": self.reason}
        out.update({k: v for k, v in (("run_id", self.run_id), ("load_failure", self.load_failure)) if v})
        return out


def read(table) -> Rollout | None:
    """The active rollout (strongly consistent), or None."""
    item = table.get_item(Key={"pk": f"pointer#{CANDIDATE}"}, ConsistentRead=True).get("Item")
    if not item:
        return None
    pointer = Pointer(role=CANDIDATE, model_name=item["model_name"], version=str(item["version"]),
                      bucket=item["bucket"], prefix=item["prefix"], sha256=item["sha256"],
                      updated_at=float(item["updated_at"]))
    return Rollout(pointer=pointer, mode=item["mode"], share=float(item["share"]), rollout_id=item["rollout_id"],
                   incumbent_version=str(item["incumbent_version"]), started_at=float(item["started_at"]),
                   reason=item.get("reason", ""), run_id=item.get("run_id", ""),
                   load_failure=item.get("load_failure", ""))


def start(table, *, mode: str, model_name: str, version: str, bucket: str, prefix: str, sha256: str,
          share: float = 0.1, reason: str = "", expected_incumbent: str | None = None,
          run_id: str = "") -> Rollout:
    """Attach a candidate in ``mode`` next to the current champion. Only one rollout at a time.
    ``expected_incumbent``: refuse (RolloutConflict) unless the champion is still at that version
    (a promotion decided against a champion that has since changed).  ``run_id``: the retraining
    run whose promotion this canary is; its end finishes that promotion (driftstack.usecases.promotion)."""
    if mode not in MODES:
        raise RolloutError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == CANARY and not (0.0 < share < 1.0):
        raise RolloutError(f"share must be strictly between 0 and 1 for a canary, got {share!r}")
    champion = read_pointer(table, CHAMPION)
    if champion is None:
        raise RolloutError("no champion is set: publish one before rolling out a candidate")
    if expected_incumbent is not None and champion.version != str(expected_incumbent):
        raise RolloutConflict(f"the champion is at version {champion.version}, not {expected_incumbent}; not started")
    if champion.sha256 == sha256:
        raise RolloutError(f"the candidate is the champion already (version {champion.version})")
    now = time.time()
    share = 1.0 if mode == SHADOW else float(share)
    rollout_id = f"{mode}-{version}-{int(now * 1000)}"
    try:
        pointer = write_pointer(table, model_name=model_name, version=version, bucket=bucket, prefix=prefix,
                                sha256=sha256, expected_version=None, role=CANDIDATE, mode=mode, share=repr(share),
                                rollout_id=rollout_id, incumbent_version=champion.version,
                                started_at=repr(now), reason=reason, **({"run_id": run_id} if run_id else {}))
    except PointerConflict:
        active = read(table)
        raise RolloutConflict(f"a rollout is already active ({active.rollout_id if active else '?'}); "
                              "complete or roll it back first") from None
    return Rollout(pointer=pointer, mode=mode, share=share, rollout_id=rollout_id,
                   incumbent_version=champion.version, started_at=now, reason=reason, run_id=run_id)


def record_load_failure(table, rollout: Rollout, error: str) -> bool:
    """Note on the candidate item that a container cannot load the candidate.  Conditional: only
    this rollout's item (never re-creates an ended one) and only the first report (N containers,
    one write that counts).  -> True if this call recorded it."""
    from botocore.exceptions import ClientError

    try:
        table.update_item(
            Key={"pk": f"pointer#{CANDIDATE}"},
            UpdateExpression="SET load_failure = :e, load_failed_at = :t",
            ConditionExpression="rollout_id = :r AND attribute_not_exists(load_failure)",
            ExpressionAttributeValues={":e": error[:500], ":t": repr(time.time()), ":r": rollout.rollout_id})
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False  # already recorded, or the rollout ended meanwhile
        raise
    return True


def _record(rollout: Rollout, outcome: str, reason: str, evaluation: Mapping | None) -> dict[str, Any]:
    return {"rollout_id": rollout.rollout_id, "outcome": outcome, "reason": reason, "mode": rollout.mode,
            "share": repr(rollout.share), "candidate_version": rollout.pointer.version,
            "candidate_sha256": rollout.pointer.sha256, "incumbent_version": rollout.incumbent_version,
            "started_at": repr(rollout.started_at), "ended_at": repr(time.time()),
            "evaluation": json.dumps(evaluation or {}, default=str),
            **{k: v for k, v in (("run_id", rollout.run_id), ("load_failure", rollout.load_failure)) if v}}


def _end(table, rollout: Rollout, outcome: str, reason: str, evaluation: Mapping | None,
         promote: bool) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    record = _record(rollout, outcome, reason, evaluation)
    p = rollout.pointer
    items: list[dict[str, Any]] = []
    if promote:
        champion = {"pk": f"pointer#{CHAMPION}", "model_name": p.model_name, "version": p.version,
                    "bucket": p.bucket, "prefix": p.prefix, "sha256": p.sha256, "updated_at": repr(time.time()),
                    "promoted_by": rollout.run_id or f"rollout {rollout.rollout_id}",
                    "rollout_id": rollout.rollout_id}
        cond = {"ConditionExpression": "version = :v", "ExpressionAttributeValues": {":v": rollout.incumbent_version}}
        # Like a direct promotion (registry.write_pointer), keep the replaced champion as ``previous``
        # (the last known good a cold-starting container can fall back to), and only if it is still it.
        current = table.get_item(Key={"pk": f"pointer#{CHAMPION}"}, ConsistentRead=True).get("Item")
        previous = previous_of(current, p.sha256)
        if previous:
            champion["previous"] = previous
        if current:
            cond = {"ConditionExpression": "version = :v AND sha256 = :s",
                    "ExpressionAttributeValues": {":v": rollout.incumbent_version, ":s": current["sha256"]}}
        items.append({"Put": {"TableName": table.name, "Item": champion, **cond}})
    items += [
        {"Delete": {"TableName": table.name, "Key": {"pk": f"pointer#{CANDIDATE}"},
                    "ConditionExpression": "rollout_id = :r",
                    "ExpressionAttributeValues": {":r": rollout.rollout_id}}},
        {"Put": {"TableName": table.name, "Item": {"pk": f"rollout#{rollout.rollout_id}", **record}}},
        {"Put": {"TableName": table.name, "Item": {"pk": LAST_OUTCOME_PK, **record}}},
    ]
    try:
        # a resource Table's client takes plain values (boto3 serialises them)
        table.meta.client.transact_write_items(TransactItems=items)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "TransactionCanceledException":
            raise RolloutConflict(f"rollout {rollout.rollout_id} was not {outcome}: the champion or the rollout "
                                  f"changed meanwhile ({exc.response['Error'].get('Message', '')})") from exc
        raise
    return {**record, "evaluation": dict(evaluation or {})}


def complete(table, rollout: Rollout, *, reason: str, evaluation: Mapping | None = None) -> dict[str, Any]:
    """Candidate becomes the champion (100 %), atomically with ending the rollout."""
    return _end(table, rollout, "completed", reason, evaluation, promote=True)


def rollback(table, rollout: Rollout, *, reason: str, evaluation: Mapping | None = None,
             outcome: str = "rolled_back") -> dict[str, Any]:
    """End the rollout; the champion (which never moved) serves everything again."""
    return _end(table, rollout, outcome, reason, evaluation, promote=False)


def _decode(item: Mapping | None) -> dict[str, Any] | None:
    if not item:
        return None
    out = dict(item)
    out["evaluation"] = json.loads(out.get("evaluation") or "{}")
    for k in ("share", "started_at", "ended_at"):
        if k in out:
            out[k] = float(out[k])
    return out


def last_outcome(table) -> dict[str, Any] | None:
    return _decode(table.get_item(Key={"pk": LAST_OUTCOME_PK}, ConsistentRead=True).get("Item"))


def outcome_of(table, rollout_id: str) -> dict[str, Any] | None:
    return _decode(table.get_item(Key={"pk": f"rollout#{rollout_id}"}, ConsistentRead=True).get("Item"))


def save_evaluation(table, doc: Mapping) -> None:
    table.put_item(Item={"pk": EVALUATION_PK, "doc": json.dumps(doc, default=str)})


def last_evaluation(table) -> dict[str, Any] | None:
    item = table.get_item(Key={"pk": EVALUATION_PK}).get("Item")
    return json.loads(item["doc"]) if item else None


# ---------------------------------------------------------------- serving side

@dataclass(frozen=True)
class Active:
    """What the predict function needs per request, swapped as one reference."""

    rollout: Rollout
    model: Any                 # model_loader.LoadedModel
    threshold: int = field(default=0)

    @property
    def mode(self) -> str:
        return self.rollout.mode

    @property
    def rollout_id(self) -> str:
        return self.rollout.rollout_id

    def routes_to_candidate(self, request_id: str) -> bool:
        return bucket_of(request_id) < self.threshold

    def info(self) -> dict[str, Any]:
        return {**self.rollout.info(), "candidate_loaded": True}


def finite(preds) -> bool:
    return all(math.isfinite(float(v)) for v in preds)


_GONE = ("NoSuchKey", "NoSuchBucket", "NotFound", "404", "AccessDenied", "403")


def permanent(exc: Exception) -> bool:
    """Would every container refuse this candidate the same way?  A bad artifact (sha256, graph,
    contract, smoke test) or a missing/forbidden object: yes.  A timeout, throttling or 5xx while
    downloading: not necessarily -- retried at the next refresh, never reported as the candidate's fault."""
    cause = exc.__cause__
    if cause is None:
        return True
    if isinstance(cause, OSError) or type(cause).__module__.startswith(("botocore", "urllib3")):
        response = getattr(cause, "response", None) or {}  # OSError has .response = None
        return str(response.get("Error", {}).get("Code", "")) in _GONE
    return True


class RolloutRouter:
    """Keeps this container's view of the rollout in step with the candidate item."""

    def __init__(self, table, s3, *, refresh_seconds: float = 30.0,
                 emit: Callable[[str], None] = lambda name: None, log=None,
                 on_end: Callable[[], Any] = lambda: None, clock: Callable[[], float] = time.monotonic) -> None:
        self._table, self._s3 = table, s3
        self.refresh_seconds = refresh_seconds
        self._emit, self._log, self._on_end, self._clock = emit, log, on_end, clock
        self._active: Active | None = None
        self._next_check = 0.0
        self.degraded: dict[str, str] = {}
        self.refused: dict[str, Any] | None = None   # the last candidate this container refused
        self._given_up: str | None = None             # rollout_id whose candidate cannot load, for good

    @property
    def active(self) -> Active | None:
        return self._active

    def get(self) -> Active | None:
        if self._clock() >= self._next_check:
            self.refresh()
        return self._active

    def refresh(self) -> str:
        from driftstack.adapters.model_loader import ModelRefused, load_model

        self._next_check = self._clock() + self.refresh_seconds
        try:
            rollout = read(self._table)
        except Exception as exc:  # noqa: BLE001 - keep the current view; the champion serves regardless
            self.degraded["rollout"] = f"rollout state unreadable: {exc}"
            self._emit("RolloutReadFailures")
            return "unreadable"
        self.degraded.pop("rollout", None)
        current = self._active
        if rollout is None:
            self._active, self.refused, self._given_up = None, None, None
            if current is not None:
                # Completed or rolled back: re-read the champion now so this container switches at once.
                self._on_end()
                if self._log:
                    self._log.info("rollout ended", extra={"rollout_id": current.rollout_id})
                return "ended"
            return "none"
        if current is not None and current.rollout.pointer.sha256 == rollout.pointer.sha256:
            self._active = Active(rollout, current.model, threshold_of(rollout.share))
            return "unchanged"
        if self._given_up == rollout.rollout_id:
            return "refused"  # no second download of an artifact that cannot load; the evaluation ends it
        try:
            model = load_model(self._s3, rollout.pointer)
        except ModelRefused as exc:
            self._active = None
            self.refused = {"rollout_id": rollout.rollout_id, "candidate_version": rollout.pointer.version,
                            "error": str(exc)}
            self.degraded["rollout"] = f"candidate {rollout.pointer.version} refused: {exc}; champion serves all"
            self._emit("CandidateLoadFailures")
            if self._log:
                self._log.warning(self.degraded["rollout"])
            if permanent(exc):
                self._given_up = rollout.rollout_id
                if not rollout.load_failure:
                    self._report(rollout, str(exc))
            return "refused"
        self._active = Active(rollout, model, threshold_of(rollout.share))
        self.refused, self._given_up = None, None
        if self._log:
            self._log.info("rollout active", extra=rollout.info())
        return "loaded"

    def _report(self, rollout: Rollout, error: str) -> None:
        """The durable signal for the canary evaluation: once per rollout per container, only on a
        refusal (never on the request path of a loaded candidate); its failure never fails a request."""
        try:
            record_load_failure(self._table, rollout, error)
        except Exception as exc:  # noqa: BLE001 - the champion serves regardless; max_minutes still ends it
            self._given_up = None  # try again (download + report) at the next refresh
            self._emit("RolloutWriteFailures")
            if self._log:
                self._log.warning("could not record the candidate load failure", extra={"error": str(exc)})

    def info(self) -> dict[str, Any] | None:
        """For /model and /health."""
        a = self._active
        if a is not None:
            return a.info()
        if self.refused:
            return {**self.refused, "candidate_loaded": False}
        return None
