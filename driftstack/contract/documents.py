"""The documents that cross process boundaries (Lambda, Step Functions, the Spark job, S3), typed.

Producers build the model and dump it (``model_dump(mode="json", exclude_unset=True)``: a field
nobody set is not written, so the JSON shapes stay the ones the state machine's JSONPath and the
readers know); consumers validate where a document ENTERS their process, so a malformed one fails
with a :class:`pydantic.ValidationError` naming the field (``challenger.metrics.rmse: Field
required``), which becomes the Step Functions failure cause, never a KeyError deep inside.

Extra fields, chosen per kind of document:

- persisted (:class:`DecisionRecord`, :class:`TrainingResult`, :class:`TrainingStatus`,
  :class:`DriftResult`, :class:`CanaryEvaluation`, :class:`RetrainSpec`): ``extra="allow"``.
  Records written by older (or newer) versions must still load, and a load-modify-save of a
  decision record must not drop fields this version does not know.  Only what a reader needs is
  required.
- step payloads (:class:`RunState` and its per-step subclasses): ``extra="ignore"``.  Each
  Lambda task receives the whole execution state, which accumulates every earlier step's result
  (``$.prepared``, ``$.job``, ``$.error`` …); a step reads only its fields.
- the execution input as it starts a run (:class:`ExecutionInput`): ``extra="forbid"``.  It is
  written by the drift check or by a person (``criteria``/``training``/``data`` overrides), so a
  misspelt key fails the first step by name instead of being silently ignored.

Version numbers are strings everywhere (registry pointers are); a number given by a person is
accepted and read as a string.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

TrainingState = Literal["running", "succeeded", "failed"]


class _Persisted(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)


class _Step(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


def dump(doc: BaseModel) -> dict[str, Any]:
    """What goes over the wire: JSON types, only the fields that were set (shapes stay compatible);
    an extra value JSON cannot hold is written as its string (as ``json.dumps(default=str)`` did)."""
    return doc.model_dump(mode="json", exclude_unset=True, fallback=str)


class MalformedDocument(ValueError):
    """A document does not match its contract; the message names the document, where it came
    from and every bad field (``challenger.metrics.rmse: Field required``)."""


M = TypeVar("M", bound=BaseModel)


def load(model: type[M], raw: Any, source: str) -> M:
    """Validate ``raw`` (read from ``source``, e.g. an S3 URI) as ``model``."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise MalformedDocument(f"{model.__name__} from {source} is malformed: {field_errors(exc)}") from None


def field_errors(exc: ValidationError) -> str:
    """One line per bad field, joined: what a Step Functions failure cause shows."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(document)'}: {e['msg']}" for e in exc.errors())


# ---------------------------------------------------------------- shared parts

class Window(_Persisted):
    """A drift-check window (ISO-8601 UTC strings, as written by driftstack.domain.drift.Window)."""

    start: str
    end: str
    id: str | None = None


class ChampionRef(_Persisted):
    """The champion a run compares against, as named in the execution input; the prepare step
    completes a missing one from the registry pointer (:class:`ModelRef` is the complete one)."""

    version: str
    model_name: str | None = None
    sha256: str | None = None
    prefix: str | None = None
    bucket: str | None = None


class ModelRef(ChampionRef):
    """A model artifact in S3, complete (what the Spark job loads)."""

    model_name: str
    version: str
    sha256: str
    prefix: str
    bucket: str


# ---------------------------------------------------------------- drift check -> retraining

class DriftSummary(_Persisted):
    """The drift verdict a retraining run carries (audit: why did this run start)."""

    status: str | None = None
    drifted_features: list[str] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    samples: int | None = None
    result_uri: str | None = None


class DriftResult(_Persisted):
    """The drift check's result document (``drift/results/dt=…/<check_id>.json``); the statistics
    (features, prediction, performance, reference, io, …) are carried as they are."""

    check_id: str
    window: Window
    status: str
    trigger: bool = False
    samples: int = 0
    checked_at: str | None = None
    champion: ChampionRef | None = None
    drifted_features: list[str] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    features: dict[str, dict[str, Any]] = Field(default_factory=dict)
    prediction: dict[str, Any] | None = None
    result_uri: str | None = None
    report_uri: str | None = None
    execution: dict[str, Any] | None = None


class ExecutionInput(BaseModel):
    """The retraining state machine's input (drift check: driftstack.adapters.drift_store; or a person)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    run_id: str = Field(min_length=1)
    window: Window
    champion: ChampionRef | None = None
    check_id: str | None = None
    drift: DriftSummary | None = None
    criteria: dict[str, Any] | None = None    # decision criteria overrides (driftstack.domain.decision.Criteria)
    training: dict[str, Any] | None = None    # GBT parameter overrides for the Spark job
    data: dict[str, Any] | None = None        # data options (min_labelled, champion_traffic_only, reference_rows…)


# ---------------------------------------------------------------- the Spark job: spec, status, result

class ArchiveSpec(_Persisted):
    """Where the window's labelled traffic lies (driftstack.usecases.training_set -> spark_jobs.labelled)."""

    bucket: str
    requests_prefix: str
    feedback_prefix: str
    slot_minutes: int
    window: Window
    model_version: str | None = None
    read: Literal["stage", "direct"] = "stage"
    min_rows: int = 1


class RetrainSpec(_Persisted):
    """The job's input, ``retrain/<run_id>/spec.json`` (written by the prepare step)."""

    run_id: str
    bucket: str
    champion: ModelRef
    window: Window
    archive: ArchiveSpec
    data: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    mlflow: dict[str, Any] = Field(default_factory=dict)
    status_key: str
    result_key: str


class TrainingStatus(_Persisted):
    """The job's status document (``status_key``): how the poll step learns the outcome, whatever ran it."""

    state: TrainingState
    updated_at: float | None = None
    result_key: str | None = None
    error: str | None = None


class Metrics(_Persisted):
    rmse: float
    mae: float | None = None
    r2: float | None = None
    mape: float | None = None


class Holdout(_Persisted):
    rows: int
    window: dict[str, Any] | None = None


class ChampionResult(_Persisted):
    version: str | None = None
    sha256: str | None = None
    metrics: Metrics
    latency: dict[str, Any] | None = None


class ChallengerResult(_Persisted):
    model_name: str | None = None
    version: str
    sha256: str
    prefix: str
    bucket: str | None = None
    metrics: Metrics
    latency: dict[str, Any] | None = None
    parity: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None
    mlflow: dict[str, Any] | None = None


class TrainingResult(_Persisted):
    """The job's result (``result_key``): both models on the same fresh holdout (spark_jobs.retrain.run)."""

    run_id: str | None = None
    holdout: Holdout
    champion: ChampionResult
    challenger: ChallengerResult
    training_rows: int | None = None
    stage_seconds: dict[str, float] | None = None
    total_seconds: float | None = None


# ---------------------------------------------------------------- step results ($.prepared, $.poll, $.decision …)

class LabelledSummary(_Persisted):
    labelled: int
    requests: int
    slots: int


class Prepared(_Step):
    """$.prepared"""

    spec_key: str
    status_key: str
    result_key: str | None = None
    labelled: LabelledSummary | None = None


class JobHandle(_Persisted):
    """$.job: the backend's handle (backend-specific fields kept as they are)."""

    backend: str
    run_id: str
    bucket: str
    status_key: str
    started_at: float


class Poll(_Step):
    """$.poll"""

    state: TrainingState
    reason: str | None = None
    result_key: str | None = None
    elapsed: float = 0.0
    polls: int = 0


class Check(_Persisted):
    name: str
    passed: bool
    detail: str


class Verdict(_Persisted):
    """driftstack.domain.decision.decide's answer; $.decision adds ``require_approval``."""

    outcome: Literal["promote", "reject"]
    reasons: list[str]
    checks: list[Check] = Field(default_factory=list)
    criteria: dict[str, Any] = Field(default_factory=dict)
    require_approval: bool = False


class Approval(_Persisted):
    """$.approval: a person's answer (driftstack.adapters.decision_store.complete_approval)."""

    approved: bool
    by: str = "a human"
    reason: str = ""
    at: str | None = None


class StepError(_Persisted):
    """$.error: what a Catch hands the failure step (Error, Cause)."""

    Error: str = "Error"
    Cause: str = ""


# ---------------------------------------------------------------- the execution state, per step

class RunState(_Step):
    """What every step receives: the execution input plus earlier steps' results."""

    run_id: str = Field(min_length=1)
    window: Window | None = None
    champion: ChampionRef | None = None
    criteria: dict[str, Any] | None = None
    prepared: Prepared | None = None
    job: dict[str, Any] | None = None
    poll: Poll | None = None
    evaluation: TrainingResult | None = None
    decision: Verdict | None = None
    approval: Approval | None = None
    error: StepError | None = None
    final: dict[str, Any] | None = None


class StartTrainingState(RunState):
    prepared: Prepared


class PollState(RunState):
    job: JobHandle


class EvaluateState(RunState):
    prepared: Prepared
    poll: Poll


class DecideState(RunState):
    evaluation: TrainingResult


class ApprovalState(RunState):
    task_token: str
    decision: Verdict
    evaluation: TrainingResult


class PromoteState(RunState):
    champion: ChampionRef
    evaluation: TrainingResult


class RejectState(RunState):
    decision: Verdict


# ---------------------------------------------------------------- decision record

Outcome = Literal["running", "decided", "awaiting_approval", "promoted", "rejected", "failed", "canary",
                  "rolled_back"]


class DecisionRecord(_Persisted):
    """``decisions/<run_id>.json``: one per retraining run, updated by every step (audit trail).
    Everything but the run id is optional: a run that failed early has only a few fields."""

    run_id: str
    outcome: Outcome | None = None
    started_at: str | None = None
    updated_at: str | None = None
    window: Window | None = None
    champion: ChampionRef | None = None
    check_id: str | None = None
    drift: DriftSummary | None = None
    # Validated as a TrainingResult when the evaluate step read it; kept as written here, so a record
    # stays readable whatever version of the job produced its evaluation.
    evaluation: dict[str, Any] | None = None
    decision: Verdict | None = None
    criteria: dict[str, Any] | None = None
    reasons: list[str] = Field(default_factory=list)
    approval: Approval | None = None
    error: str | None = None


# ---------------------------------------------------------------- canary evaluation

class CanaryEvent(BaseModel):
    """The scheduled canary evaluation's event (all optional)."""

    model_config = ConfigDict(extra="ignore")   # EventBridge adds its envelope fields

    criteria: dict[str, Any] = Field(default_factory=dict)
    now: float | None = None


class CanaryEvaluation(_Persisted):
    """One evaluation of the active rollout (``rollout#evaluation``, and on the ended rollout).
    ``shadow`` evaluations carry ``comparison``; canary ones the arms, signals and reasons."""

    outcome: Literal["complete", "rollback", "wait", "conflict", "shadow"]
    rollout_id: str
    candidate_version: str
    incumbent_version: str | None = None
    evaluated_at: float
    reasons: list[str] = Field(default_factory=list)
    criteria: dict[str, Any] | None = None
    candidate: dict[str, Any] | None = None
    incumbent: dict[str, Any] | None = None
    signals: dict[str, Any] | None = None
    comparison: dict[str, Any] | None = None
    load_failure: str | None = None
    promotion: dict[str, Any] | None = None
