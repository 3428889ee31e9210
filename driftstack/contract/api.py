"""Request/response models of the prediction API, derived from the feature contract.

Nothing here restates a range or a category: every field of :class:`TripFeatures` is built from
:mod:`driftstack.contract.features`, so a change of the contract changes validation, the OpenAPI document
and the ONNX encoding together.  The models are strict on purpose: all 12 fields required, the
contract's ranges, only known categories, no extra fields, no type coercion ("3" is not a number,
true is not 1, 2.5 is not a passenger count), no NaN/inf.  One exception, so that the OpenAPI document
and the validator agree: an integer field takes a number with no fractional part (2.0 is 2), because
that is what JSON Schema's ``integer`` (and an ``enum`` of integers) means; the value is kept as an int.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, create_model
from pydantic_core import PydanticKnownError

from driftstack.contract import features as fc

DEFAULT_BATCH_LIMIT = 1000

_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _example_value(f: fc.NumericFeature | fc.CategoricalFeature) -> Any:
    """A valid value for the OpenAPI example (inside the range / first category)."""
    if f.kind == "categorical":
        return f.categories[0]
    mid = f.low + (f.high - f.low) / 10
    return int(round(mid)) if f.integer else round(mid, 2)


def example_features() -> dict[str, Any]:
    """One valid feature dict, used for docs, sample events and smoke-testing a loaded model."""
    return {f.name: _example_value(f) for f in fc.FEATURES}


def _json_integer(value: Any) -> Any:
    """JSON Schema's integer: 9.0 is 9 (kept as the int), true is not 1 (Python's True == 1 would pass a Literal)."""
    if type(value) is float and value.is_integer():
        return int(value)
    if type(value) is bool:
        raise PydanticKnownError("int_type")
    return value


_INTEGER = BeforeValidator(_json_integer)


def _field(f: fc.NumericFeature | fc.CategoricalFeature) -> tuple[Any, Any]:
    if f.kind == "categorical":
        # Literal of the contract's own values: an int category (RatecodeID 2) must arrive as a JSON integer.
        typ = Literal[f.categories]  # type: ignore[valid-type]
        if all(type(c) is int for c in f.categories):
            typ = Annotated[typ, _INTEGER]
        return typ, Field(description=f.description)
    typ = Annotated[int, _INTEGER] if f.integer else float
    return typ, Field(ge=f.low, le=f.high, description=f"{f.description} ({f.low}..{f.high})")


TripFeatures: type[BaseModel] = create_model(
    "TripFeatures",
    __config__=ConfigDict(**_STRICT, json_schema_extra={"examples": [example_features()]}),
    __doc__="The 12 model features of one taxi trip (the feature contract).",
    **{f.name: _field(f) for f in fc.FEATURES},
)


class _CheapRepr(BaseModel):
    # Powertools' route adapter logs the validated arguments with an eager f-string
    # (logger.debug(f"... {route_args}")), so repr runs on every request even with debug off:
    # ~35 µs for one trip, milliseconds for a batch of 1000. Keep it O(1).
    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class SinglePredictRequest(_CheapRepr):
    """Predict one trip."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"features": example_features()}]})
    features: TripFeatures  # type: ignore[valid-type]


class _BatchBase(_CheapRepr):
    model_config = ConfigDict(extra="forbid")


def _batch_model(limit: int) -> type[BaseModel]:
    return create_model(
        "BatchPredictRequest",
        __base__=_BatchBase,
        __doc__=f"Predict up to {limit} trips in one request.",
        __module__=__name__,
        instances=(list[TripFeatures],  # type: ignore[valid-type]
                   Field(min_length=1, max_length=limit, description=f"1..{limit} trips")),
    )


def _request_kind(value: Any) -> str:
    # Pick the branch by the key present, so errors name fields of one branch only.
    return "batch" if isinstance(value, dict) and "instances" in value else "single"


@lru_cache(maxsize=None)
def predict_request_type(batch_limit: int = DEFAULT_BATCH_LIMIT) -> Any:
    """The POST /predict body: a single trip or a batch (limit configurable per deployment)."""
    if batch_limit < 1:
        raise ValueError(f"batch_limit must be >= 1, got {batch_limit}")
    batch = _batch_model(batch_limit)
    return Annotated[
        Union[Annotated[SinglePredictRequest, Tag("single")], Annotated[batch, Tag("batch")]],
        Discriminator(_request_kind),
    ]


# Tags of the union above; stripped from error locations so a client sees body.features.x.
REQUEST_TAGS = frozenset({"single", "batch"})


class PredictResponse(BaseModel):
    request_id: str = Field(description="id of this request; single: the id to send feedback for")
    predicted_fare: float | list[float] = Field(description="USD; a list (in order) for a batch")
    item_ids: list[str] | None = Field(None, description="batch only: the feedback id of each instance")
    model_name: str
    model_version: str
    latency_ms: float = Field(description="validation + encoding + inference time in the function")


class FeedbackRequest(BaseModel):
    """Ground truth for a past prediction."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    request_id: str = Field(min_length=1, max_length=128, description="request_id or item_id of a prediction")
    actual_fare: float = Field(ge=fc.TARGET.low, le=fc.TARGET.high, description=fc.TARGET.description)


class FeedbackResponse(BaseModel):
    request_id: str
    actual_fare: float
    request_ts: str = Field(description="when the prediction was made (from its request id)")
    status: Literal["accepted"]


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded", "unavailable"]
    model_loaded: bool
    model_name: str | None = None
    model_version: str | None = None
    log_sink_healthy: bool
    degraded_reasons: list[str]
    rollout: dict[str, Any] | None = Field(None, description="the attached shadow or canary (mode, share, "
                                           "candidate version, rollout_id), or its refused candidate")


class ModelInfo(BaseModel):
    model_name: str
    model_version: str
    sha256: str
    loaded_at: str = Field(description="ISO-8601 UTC time this container loaded the model")
    pointer_updated_at: float
    artifact: str = Field(description="s3://bucket/prefix of the artifact")
    metadata: dict[str, Any] = Field(description="the artifact's metadata.json (metrics, data window, ...)")
    fallback: dict[str, str] | None = Field(None, description="set while this container serves the pointer's "
                                            "previous champion because the named one was refused at cold start: "
                                            "pointer_version, serving_version, reason")
    rollout: dict[str, Any] | None = Field(None, description="the attached shadow or canary (mode, share, "
                                           "candidate version, rollout_id), or its refused candidate")


class ErrorDetail(BaseModel):
    field: str = Field(description="dotted location, e.g. features.trip_distance or instances.3.RatecodeID")
    type: str
    message: str


class ErrorResponse(BaseModel):
    statusCode: int
    message: str
    errors: list[ErrorDetail] | None = None
