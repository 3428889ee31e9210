"""Prediction API (API Gateway REST proxy -> this Lambda).

Routes (under /v1): POST /predict, GET /health, GET /model, POST /feedback, GET /openapi.json.
Validation and the OpenAPI document both come from the pydantic models in driftstack.contract.api
(Powertools ``enable_validation``).  Errors: malformed JSON 400, invalid fields 422 (each field and
why), batch over the limit / body too large 413, unknown route 404, wrong method 405, no model 503.

Cold start (imports, AWS clients, the champion download and its onnxruntime session) happens at
import time, outside the request path.
"""

from __future__ import annotations

import json
import re
import time
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType, \
    RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from driftstack.adapters import archive
from driftstack.domain import encoding
from driftstack.contract import api
from driftstack.adapters import aws
from driftstack.adapters import rollout as ro
from driftstack.settings import PredictSettings
from driftstack.adapters.model_loader import ModelManager
from driftstack.adapters.request_log import LogUnavailable, RequestLog, UnknownRequest, iso, \
    make_record, new_request_id, utc_now

API_PREFIX = "/v1"
SERVICE = "driftstack-predict"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="driftstack", service=SERVICE)
tracer = Tracer(service=SERVICE)

CONFIG = PredictSettings.from_env()
PredictRequest = api.predict_request_type(CONFIG.batch_limit)


def _count(name: str, value: float = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


_MODELS_TABLE, _S3 = aws.dynamodb_table(CONFIG.models_table, timeout=2.0), aws.client("s3", timeout=10.0)
MODELS = ModelManager(_MODELS_TABLE, _S3, refresh_seconds=CONFIG.refresh_seconds, emit=_count, log=logger)
# Shadow/canary candidate (driftstack.adapters.rollout): None on the hot path when no rollout is active.
ROLLOUT = ro.RolloutRouter(_MODELS_TABLE, _S3, refresh_seconds=CONFIG.refresh_seconds, emit=_count, log=logger,
                           on_end=MODELS.refresh)
REQUEST_LOG = RequestLog(
    CONFIG.log_settings(),
    # Short timeout, one retry: a slow queue should turn into a spill to S3, not a slow response
    # (a hanging queue costs at most 2 x log_timeout_seconds; the spill as much again).
    sqs=aws.client("sqs", timeout=CONFIG.log_timeout_seconds, attempts=2),
    s3=aws.client("s3", timeout=CONFIG.log_timeout_seconds, attempts=2, small_writes=True),
    emit=_count, log=logger)
MODELS.refresh()  # cold start: load the champion now, not on the first request
ROLLOUT.refresh()
REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")



def _loads(text: str) -> Any:
    """json.loads, with the bodies it refuses by other means reported as malformed JSON (400, not 500):
    an integer over 4,300 digits (ValueError) or nesting deeper than the interpreter stack (RecursionError)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except ValueError as exc:
        raise json.JSONDecodeError(f"number too long ({str(exc).split(';')[0]})", text, 0) from None
    except RecursionError:
        raise json.JSONDecodeError("nesting too deep", text, 0) from None


app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=_loads)
_ROUTES: dict[str, set[str]] = {}  # path -> methods, to tell 405 from 404


def _route(method: str, path: str, **kwargs):
    _ROUTES.setdefault(API_PREFIX + path, set()).add(method)
    return app.route(API_PREFIX + path, method=method, **kwargs)


def _doc(model: type, description: str, *errors: int) -> dict:
    out: dict[int, Any] = {200: {"description": description,
                                 "content": {"application/json": {"model": model}}}}
    for code in errors:
        out[code] = {"description": HTTPStatus(code).phrase,
                     "content": {"application/json": {"model": api.ErrorResponse}}}
    return out


def _json(code: int, body: Any, headers: dict | None = None) -> Response:
    # Serialize here: a str body skips Powertools' recursive jsonable_encoder (~40 µs per request).
    return Response(code, content_types.APPLICATION_JSON, json.dumps(body, separators=(",", ":")), headers=headers)


def _unavailable(message: str) -> ServiceError:
    return ServiceError(HTTPStatus.SERVICE_UNAVAILABLE, message)


def _client_request_id() -> str | None:
    """The client's X-Request-Id, if it sends one: logged beside our id, and it picks the canary arm
    (a replay keeps its arm). Our own request id always carries the time (driftstack.adapters.archive)."""
    rid = app.current_event.headers.get(REQUEST_ID_HEADER)  # case-insensitive (Powertools v3)
    if rid is not None and not _REQUEST_ID.fullmatch(rid):
        raise ServiceError(HTTPStatus.BAD_REQUEST, f"header X-Request-Id must be 8-64 characters of "
                                                   f"[A-Za-z0-9._:-], got {rid[:80]!r}")
    return rid


def _serve_with_rollout(active: ro.Active, champion, feeds, routing_id: str):
    """Canary: the request id's hash picks the arm; a failing candidate falls back to the champion
    (the request still succeeds, the failure is logged and counted). Shadow: the champion serves."""
    extra: dict[str, Any] = {"rollout_id": active.rollout_id, "rollout_mode": active.mode}
    if active.mode == ro.CANARY and active.routes_to_candidate(routing_id):
        extra["arm"] = "candidate"
        t0 = time.perf_counter()
        try:
            preds = active.model.run(feeds)
            if not ro.finite(preds):
                raise ValueError("non-finite prediction")
            extra["model_ms"] = round((time.perf_counter() - t0) * 1000, 4)
            _count("CanaryRequests")
            return preds, active.model, extra
        except Exception as exc:  # noqa: BLE001 - any candidate failure: the champion answers instead
            _count("CanaryErrors")
            extra["candidate_error"] = f"{type(exc).__name__}: {exc}"[:300]
    elif active.mode == ro.CANARY:
        extra["arm"] = "incumbent"
    t0 = time.perf_counter()
    preds = champion.run(feeds)
    extra["model_ms"] = round((time.perf_counter() - t0) * 1000, 4)
    return preds, champion, extra


def _shadow(active: ro.Active, feeds, n: int) -> list[dict[str, Any]]:
    """The candidate's predictions for the log (one dict per row); errors are recorded, not raised."""
    version = active.model.version
    t0 = time.perf_counter()
    try:
        preds = active.model.run(feeds)
        if len(preds) != n:
            raise ValueError(f"{len(preds)} predictions for {n} rows")
    except Exception as exc:  # noqa: BLE001 - the shadow must never fail the request
        _count("ShadowErrors")
        err = f"{type(exc).__name__}: {exc}"[:300]
        return [{"shadow_version": version, "shadow_error": err}] * n
    ms = round((time.perf_counter() - t0) * 1000, 4)  # no per-request metric: add_metric costs ~10 µs
    # non-finite values are logged as an error: DynamoDB cannot store NaN
    return [{"shadow_version": version, "shadow_prediction": float(p), "shadow_ms": ms} if p == p and abs(p) != float("inf")
            else {"shadow_version": version, "shadow_error": "non-finite prediction"} for p in preds]


# ------------------------------------------------------------------ routes

@_route("POST", "/predict", summary="Predict the fare of one trip or a batch",
        responses=_doc(api.PredictResponse, "predictions", 400, 413, 422, 503))
def predict(body: Annotated[PredictRequest, Body()]):  # type: ignore[valid-type]
    model = MODELS.get()
    if model is None:
        _count("NoModel")
        raise _unavailable("no model is loaded: " + "; ".join(MODELS.degraded.values()))
    batch = not isinstance(body, api.SinglePredictRequest)
    rows = [r.__dict__ for r in body.instances] if batch else [body.features.__dict__]
    client_id = _client_request_id()
    request_id = new_request_id()
    active = ROLLOUT.get()
    if active is None:  # the common path: no extra work
        preds = model.predict(rows)
        latency_ms = round((time.perf_counter() - app.context["started"]) * 1000, 3)
        extra = shadow = None
    else:
        feeds = encoding.encode(rows)  # once, for both models (same feature contract)
        preds, model, extra = _serve_with_rollout(active, model, feeds, client_id or request_id)
        latency_ms = round((time.perf_counter() - app.context["started"]) * 1000, 3)
        # Shadow: after the champion's answer exists; never changes it, never fails the request.
        shadow = _shadow(active, feeds, len(rows)) if active.mode == ro.SHADOW else None

    ts = iso(utc_now())
    common = dict(ts=ts, model_name=model.name, model_version=model.version, model_sha=model.pointer.sha256[:16],
                  latency_ms=latency_ms, client_request_id=client_id)
    if batch:
        item_ids = [f"{request_id}.{i}" for i in range(len(rows))]
        records = [make_record(request_id=iid, features=row, prediction=float(p), batch_id=request_id, **common)
                   for iid, row, p in zip(item_ids, rows, preds)]
    else:
        item_ids = None
        records = [make_record(request_id=request_id, features=rows[0], prediction=float(preds[0]), **common)]
    if extra is not None:
        for i, rec in enumerate(records):
            rec.update(extra)
            if shadow is not None:
                rec.update(shadow[i])
    try:
        REQUEST_LOG.write(records)  # before the response: an unlogged prediction is not served
    except LogUnavailable as exc:
        raise _unavailable(str(exc)) from exc

    # One structured line per request: the EMF metrics blob carries request_id and model_version
    # (CloudWatch Logs Insights can query them). The Logger line below costs ~30-150 µs, so it is
    # DEBUG, emitted for the sampled share of invocations (POWERTOOLS_LOGGER_SAMPLE_RATE).
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=len(rows))
    metrics.add_metric(name="PredictLatency", unit=MetricUnit.Milliseconds, value=latency_ms)
    metrics.add_metadata(key="request_id", value=request_id)
    metrics.add_metadata(key="model_version", value=model.version)
    logger.debug("predicted", extra={"request_id": request_id, "model_version": model.version,
                                     "rows": len(rows), "latency_ms": latency_ms})
    out = {"request_id": request_id,
           "predicted_fare": [round(float(p), 4) for p in preds] if batch else round(float(preds[0]), 4),
           "model_name": model.name, "model_version": model.version, "latency_ms": latency_ms}
    if batch:
        out["item_ids"] = item_ids
    return _json(HTTPStatus.OK, out)


@_route("GET", "/health", summary="Model loaded, its version, log sink health, degraded reasons",
        responses=_doc(api.HealthResponse, "health", 503))
def health():
    model = MODELS.get()
    ROLLOUT.get()
    reasons = list(MODELS.degraded.values()) + list(ROLLOUT.degraded.values())
    log_reason = REQUEST_LOG.degraded_reason()
    if log_reason:
        reasons.append(log_reason)
    status = "unavailable" if model is None else ("degraded" if reasons else "ok")
    body = {"status": status, "model_loaded": model is not None,
            "model_name": model.name if model else None, "model_version": model.version if model else None,
            "log_sink_healthy": log_reason is None, "degraded_reasons": reasons}
    rollout = ROLLOUT.info()
    if rollout is not None:  # only while a shadow/canary is attached (or its candidate was refused)
        body["rollout"] = rollout
    code = HTTPStatus.SERVICE_UNAVAILABLE if model is None else HTTPStatus.OK
    return _json(code, body)


@_route("GET", "/model", summary="Metadata of the serving model",
        responses=_doc(api.ModelInfo, "the serving model", 503))
def model_info():
    model = MODELS.get()
    if model is None:
        raise _unavailable("no model is loaded: " + "; ".join(MODELS.degraded.values()))
    ROLLOUT.get()
    info, rollout = model.info(), ROLLOUT.info()
    if MODELS.fallback is not None:  # cold start with a refused champion: the previous one serves
        info["fallback"] = MODELS.fallback
    if rollout is not None:
        info["rollout"] = rollout
    return _json(HTTPStatus.OK, info)


@_route("POST", "/feedback", summary="Report the actual fare of a past prediction",
        responses={202: {"description": "feedback accepted (joined with its prediction by the log archiver)",
                         "content": {"application/json": {"model": api.FeedbackResponse}}},
                   **{k: v for k, v in _doc(api.FeedbackResponse, "", 400, 404, 422, 503).items() if k != 200}})
def feedback(body: Annotated[api.FeedbackRequest, Body()]):
    try:
        doc = REQUEST_LOG.record_feedback(body.request_id, body.actual_fare)
    except UnknownRequest:
        raise ServiceError(HTTPStatus.NOT_FOUND, f"unknown request_id {body.request_id!r}: not issued by this API "
                           f"or older than {CONFIG.feedback_max_age_days:g} days") from None
    except LogUnavailable as exc:
        raise _unavailable(str(exc)) from exc
    _count("Feedback")
    return _json(HTTPStatus.ACCEPTED, {"request_id": body.request_id, "actual_fare": body.actual_fare,
                                       "request_ts": doc["request_ts"], "status": "accepted"})


OPENAPI_JSON = ""  # filled below, once all routes exist


@_route("GET", "/openapi.json", summary="This document", include_in_schema=False)
def openapi():
    return Response(HTTPStatus.OK, content_types.APPLICATION_JSON, OPENAPI_JSON)


OPENAPI_JSON = app.get_openapi_json_schema(
    title="driftstack prediction API", version="1.0.0",
    description="NYC taxi fare predictions from the champion model; every request is logged for drift checks.",
    security_schemes={"apiKey": APIKey(name="x-api-key", in_=APIKeyIn.header)},
    security=[{"apiKey": []}])


# ------------------------------------------------------------------ errors

def _error(code: int, message: str, errors: list[dict] | None = None, headers: dict | None = None) -> Response:
    body: dict[str, Any] = {"statusCode": int(code), "message": message}
    if errors is not None:
        body["errors"] = errors
    return _json(code, body, headers)


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc[1:] if p not in api.REQUEST_TAGS]  # drop "body" and union tags
    return ".".join(parts) or "body"


@app.exception_handler(RequestValidationError)
def _validation_error(exc: RequestValidationError) -> Response:
    errors = exc.errors()
    bad_json = [e for e in errors if e["type"] == "json_invalid"]
    if bad_json:
        ctx = bad_json[0].get("ctx") or {}
        pos = bad_json[0]["loc"][-1] if len(bad_json[0]["loc"]) > 1 else "?"
        return _error(HTTPStatus.BAD_REQUEST, f"malformed JSON body: {ctx.get('error', 'decode error')} "
                                              f"at position {pos}")
    if any(e["type"] == "too_long" and _field(e["loc"]) == "instances" for e in errors):
        return _error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                      f"batch too large: at most {CONFIG.batch_limit} instances per request")
    details = [{"field": _field(e["loc"]), "type": e["type"], "message": e.get("msg", e["type"])}
               for e in errors]
    _count("ValidationErrors")
    return _error(HTTPStatus.UNPROCESSABLE_ENTITY,
                  "invalid request: " + "; ".join(f"{d['field']}: {d['message']}" for d in details), details)


@app.exception_handler(RequestUnsupportedContentType)
def _unsupported_media_type(_: RequestUnsupportedContentType) -> Response:
    return _error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "the body must be JSON (Content-Type: application/json)")


@app.not_found
def _not_found(_: NotFoundError) -> Response:
    path, method = app.current_event.path, app.current_event.http_method.upper()
    allowed = _ROUTES.get(path.rstrip("/") or "/")
    if allowed:
        return _error(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed on {path}; use "
                      f"{', '.join(sorted(allowed))}", headers={"Allow": ", ".join(sorted(allowed))})
    return _error(HTTPStatus.NOT_FOUND, f"no route {method} {path}; see GET {API_PREFIX}/openapi.json")


@app.exception_handler(ServiceError)
def _service_error(exc: ServiceError) -> Response:
    return _error(exc.status_code, exc.msg if isinstance(exc.msg, str) else str(exc.msg))


@app.exception_handler(Exception)
def _unexpected(exc: Exception) -> Response:
    logger.exception("unhandled error")
    _count("Errors")
    return _error(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error ({type(exc).__name__})")


# ------------------------------------------------------------------ entry point

@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context: Any) -> dict:
    started = time.perf_counter()
    body = event.get("body") or ""
    if body and event.get("isBase64Encoded"):
        # API Gateway base64-encodes a body that is not valid UTF-8; Powertools would decode it as
        # UTF-8 and fail with UnicodeDecodeError (a 500). Refuse it here, naming the bad byte.
        if (refused := _undecodable(body)) is not None:
            return refused
    if body:
        # Checked before Powertools parses anything: it would json-decode a huge body first, and it
        # would parse a form-encoded body (curl -d without -H) as a form and report odd field errors.
        if len(body) > CONFIG.max_body_bytes:
            _count("BodyTooLarge")
            return _early(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                          f"request body is {len(body)} bytes; the limit is {CONFIG.max_body_bytes}")
        ctype = _content_type(event)
        if ctype and not (ctype.startswith("application/json") or "+json" in ctype):
            return _early(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                          f"Content-Type {ctype!r} is not supported; send JSON with Content-Type: application/json")
    app.append_context(started=started)
    return app.resolve(event, context)


def _content_type(event: dict) -> str:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == "content-type":
            return (value or "").strip().lower()
    return ""


def _undecodable(body: str) -> dict | None:
    """400 for a base64 body that is not valid base64 or whose bytes are not UTF-8; None when it is fine."""
    import base64  # here, not at the top: only this rare path needs them
    import binascii

    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return _early(HTTPStatus.BAD_REQUEST, "malformed body: isBase64Encoded is set but the body is not base64; "
                                              "send JSON encoded as UTF-8")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        _count("InvalidEncoding")
        return _early(HTTPStatus.BAD_REQUEST,
                      f"request body is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at position {exc.start}: "
                      f"{exc.reason}); send JSON encoded as UTF-8")
    return None


def _early(code: int, message: str) -> dict:
    """A response for requests refused before routing (same body shape as every other error)."""
    return {"statusCode": int(code), "headers": {"Content-Type": content_types.APPLICATION_JSON},
            "body": json.dumps({"statusCode": int(code), "message": message}), "isBase64Encoded": False}
