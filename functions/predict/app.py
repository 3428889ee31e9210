"""Prediction API (API Gateway REST proxy -> this Lambda).

Routes (under /v1): POST /predict, GET /health, GET /model, POST /feedback, GET /openapi.json.
Validation and the OpenAPI document both come from the pydantic models in driftstack.schema
(Powertools ``enable_validation``).  Errors: malformed JSON 400, invalid fields 422 (each field and
why), batch over the limit / body too large 413, unknown route 404, wrong method 405, no model 503.

Cold start (imports, AWS clients, the champion download and its onnxruntime session) happens at
import time, outside the request path.
"""

from __future__ import annotations

import json
import time
import uuid
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

from driftstack import schema
from driftstack.serving import aws
from driftstack.serving.config import ServingConfig
from driftstack.serving.model_loader import ModelManager
from driftstack.serving.request_log import LogSettings, LogUnavailable, RequestLog, UnknownRequest, iso, \
    make_record, utc_now

API_PREFIX = "/v1"
SERVICE = "driftstack-predict"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="driftstack", service=SERVICE)
tracer = Tracer(service=SERVICE)

CONFIG = ServingConfig.from_env()
PredictRequest = schema.predict_request_type(CONFIG.batch_limit)


def _count(name: str, value: float = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


MODELS = ModelManager(
    aws.dynamodb_table(CONFIG.models_table, timeout=2.0),
    aws.client("s3", timeout=10.0),
    refresh_seconds=CONFIG.refresh_seconds, emit=_count, log=logger)
REQUEST_LOG = RequestLog(
    LogSettings(table=CONFIG.request_log_table, bucket=CONFIG.bucket, queue_url=CONFIG.fallback_queue_url,
                archive_prefix=CONFIG.archive_prefix, feedback_prefix=CONFIG.feedback_prefix,
                ttl_days=CONFIG.ttl_days, shards=CONFIG.time_bucket_shards),
    # Short timeout, one retry: a slow sink should turn into a fallback, not a slow response.
    dynamodb=aws.client("dynamodb", timeout=CONFIG.log_timeout_seconds, max_attempts=2),
    s3=aws.client("s3", timeout=CONFIG.log_timeout_seconds, max_attempts=2),
    sqs=aws.client("sqs", timeout=CONFIG.log_timeout_seconds) if CONFIG.fallback_queue_url else None,
    emit=_count, log=logger)
MODELS.refresh()  # cold start: load the champion now, not on the first request

app = APIGatewayRestResolver(enable_validation=True)
_ROUTES: dict[str, set[str]] = {}  # path -> methods, to tell 405 from 404


def _route(method: str, path: str, **kwargs):
    _ROUTES.setdefault(API_PREFIX + path, set()).add(method)
    return app.route(API_PREFIX + path, method=method, **kwargs)


def _doc(model: type, description: str, *errors: int) -> dict:
    out: dict[int, Any] = {200: {"description": description,
                                 "content": {"application/json": {"model": model}}}}
    for code in errors:
        out[code] = {"description": HTTPStatus(code).phrase,
                     "content": {"application/json": {"model": schema.ErrorResponse}}}
    return out


def _json(code: int, body: Any, headers: dict | None = None) -> Response:
    # Serialize here: a str body skips Powertools' recursive jsonable_encoder (~40 µs per request).
    return Response(code, content_types.APPLICATION_JSON, json.dumps(body, separators=(",", ":")), headers=headers)


def _unavailable(message: str) -> ServiceError:
    return ServiceError(HTTPStatus.SERVICE_UNAVAILABLE, message)


# ------------------------------------------------------------------ routes

@_route("POST", "/predict", summary="Predict the fare of one trip or a batch",
        responses=_doc(schema.PredictResponse, "predictions", 400, 413, 422, 503))
def predict(body: Annotated[PredictRequest, Body()]):  # type: ignore[valid-type]
    model = MODELS.get()
    if model is None:
        _count("NoModel")
        raise _unavailable("no model is loaded: " + "; ".join(MODELS.degraded.values()))
    batch = not isinstance(body, schema.SinglePredictRequest)
    rows = [r.__dict__ for r in body.instances] if batch else [body.features.__dict__]
    preds = model.predict(rows)
    latency_ms = round((time.perf_counter() - app.context["started"]) * 1000, 3)

    request_id = uuid.uuid4().hex
    ts = iso(utc_now())
    if batch:
        item_ids = [f"{request_id}.{i}" for i in range(len(rows))]
        records = [make_record(request_id=iid, ts=ts, features=row, prediction=float(p), model_name=model.name,
                               model_version=model.version, latency_ms=latency_ms, batch_id=request_id)
                   for iid, row, p in zip(item_ids, rows, preds)]
    else:
        item_ids = None
        records = [make_record(request_id=request_id, ts=ts, features=rows[0], prediction=float(preds[0]),
                               model_name=model.name, model_version=model.version, latency_ms=latency_ms)]
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
        responses=_doc(schema.HealthResponse, "health", 503))
def health():
    model = MODELS.get()
    reasons = list(MODELS.degraded.values())
    log_reason = REQUEST_LOG.degraded_reason()
    if log_reason:
        reasons.append(log_reason)
    status = "unavailable" if model is None else ("degraded" if reasons else "ok")
    body = {"status": status, "model_loaded": model is not None,
            "model_name": model.name if model else None, "model_version": model.version if model else None,
            "log_sink_healthy": log_reason is None, "degraded_reasons": reasons}
    code = HTTPStatus.SERVICE_UNAVAILABLE if model is None else HTTPStatus.OK
    return _json(code, body)


@_route("GET", "/model", summary="Metadata of the serving model",
        responses=_doc(schema.ModelInfo, "the serving model", 503))
def model_info():
    model = MODELS.get()
    if model is None:
        raise _unavailable("no model is loaded: " + "; ".join(MODELS.degraded.values()))
    return _json(HTTPStatus.OK, model.info())


@_route("POST", "/feedback", summary="Report the actual fare of a past prediction",
        responses=_doc(schema.FeedbackResponse, "feedback stored", 400, 404, 422, 503))
def feedback(body: Annotated[schema.FeedbackRequest, Body()]):
    try:
        record = REQUEST_LOG.record_feedback(body.request_id, body.actual_fare)
    except UnknownRequest:
        raise ServiceError(HTTPStatus.NOT_FOUND, f"unknown request_id {body.request_id!r} "
                           "(never logged, or expired)") from None
    except LogUnavailable as exc:
        raise _unavailable(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - the store failed; the client should retry
        logger.exception("feedback write failed")
        raise _unavailable(f"feedback store unavailable, retry later ({type(exc).__name__})") from exc
    _count("Feedback")
    return _json(HTTPStatus.OK, {
        "request_id": body.request_id, "actual_fare": body.actual_fare,
        "predicted_fare": record["prediction"], "model_version": record["model_version"]})


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
    parts = [str(p) for p in loc[1:] if p not in schema.REQUEST_TAGS]  # drop "body" and union tags
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


def _early(code: int, message: str) -> dict:
    """A response for requests refused before routing (same body shape as every other error)."""
    return {"statusCode": int(code), "headers": {"Content-Type": content_types.APPLICATION_JSON},
            "body": json.dumps({"statusCode": int(code), "message": message}), "isBase64Encoded": False}
