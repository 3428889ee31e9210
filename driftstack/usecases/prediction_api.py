"""The prediction API over HTTP (API Gateway REST proxy, Powertools event handler) on top of
:class:`driftstack.usecases.serve.Serving`.

Routes (under /v1): POST /predict, GET /health, GET /model, POST /feedback, GET /openapi.json, GET /docs
(Swagger UI, served offline).
Validation and the OpenAPI document both come from the pydantic models in driftstack.contract.api
(Powertools ``enable_validation``).  Errors: malformed JSON 400, invalid fields 422 (each field and
why), batch over the limit / body too large 413, unsupported media type 415, unknown route 404,
wrong method 405, no model or no request log 503; every error body is ``{statusCode, message[, errors]}``.
"""

# No ``from __future__ import annotations`` here: the route signatures are evaluated when the routes
# are built, so the request model sized by the batch limit (a local) is what Powertools validates against.

import json
import re
import time
from http import HTTPStatus
from typing import Annotated, Any

import numpy as np
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import (
    APIGatewayRestResolver,
    Response,
    content_types,
)
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.metrics import MetricUnit
from pydantic_core import from_json, to_json

from driftstack.contract import api
from driftstack.contract import names as N
from driftstack.domain import columnar
from driftstack.usecases.emf_line import PredictionEmf
from driftstack.usecases.serve import Serving, Unavailable, UnknownRequest

API_PREFIX = "/v1"
PREDICT_PATH = API_PREFIX + "/predict"
DOCS_PATH = API_PREFIX + "/docs"
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


def _error(code: int, message: str, errors: list[dict] | None = None, headers: dict | None = None) -> Response:
    body: dict[str, Any] = {"statusCode": int(code), "message": message}
    if errors is not None:
        body["errors"] = errors
    return _json(code, body, headers)


def _early(code: int, message: str) -> dict:
    """A response for requests refused before routing (same body shape as every other error)."""
    return {"statusCode": int(code), "headers": {"Content-Type": content_types.APPLICATION_JSON},
            "body": json.dumps({"statusCode": int(code), "message": message}), "isBase64Encoded": False}


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc[1:] if p not in api.REQUEST_TAGS]  # drop "body" and union tags
    return ".".join(parts) or "body"


def _content_type(event: dict) -> str:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == "content-type":
            return (value or "").strip().lower()
    return ""


class _Headers:
    """Case-insensitive ``get`` over an API Gateway event's headers (what Powertools' event gives the route)."""

    def __init__(self, headers: dict | None) -> None:
        self._headers = headers or {}

    def get(self, name: str) -> str | None:
        return next((v for k, v in self._headers.items() if k.lower() == name), None)


def _client_request_id(headers) -> str | None:
    """The client's X-Request-Id, if it sends one: logged beside our id, and it picks the canary arm
    (a replay keeps its arm). Our own request id always carries the time (driftstack.adapters.archive)."""
    rid = headers.get(REQUEST_ID_HEADER)  # case-insensitive
    if rid is not None and not _REQUEST_ID.fullmatch(rid):
        raise ServiceError(HTTPStatus.BAD_REQUEST, f"header X-Request-Id must be 8-64 characters of "
                                                   f"[A-Za-z0-9._:-], got {rid[:80]!r}")
    return rid


class PredictionApi:
    """The routes and error mapping of one container; :meth:`handle` is the Lambda entry point's one call."""

    def __init__(self, serving: Serving, *, batch_limit: int, max_body_bytes: int, feedback_max_age_days: float,
                 metrics: Metrics, logger: Logger) -> None:
        self.serving, self.metrics, self.logger = serving, metrics, logger
        self.emf = PredictionEmf(metrics)
        self.batch_limit, self.max_body_bytes, self.feedback_max_age_days = \
            batch_limit, max_body_bytes, feedback_max_age_days
        self._app: APIGatewayRestResolver | None = None
        self._routes: dict[str, set[str]] = {}  # path -> methods, to tell 405 from 404
        self.openapi_json = ""

    @property
    def app(self) -> APIGatewayRestResolver:
        """The Powertools router, built on first use: a container whose first requests are valid predictions
        (the columnar path) starts without its ~0.3 s of OpenAPI imports, models and schema generation."""
        if self._app is None:
            self._build_router()
        return self._app

    def _build_router(self) -> None:
        from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

        self._app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=_loads)
        self._add_routes(api.predict_request_type(self.batch_limit))
        self._add_error_handlers()
        document = {
            "title": "driftstack prediction API", "version": "1.0.0",
            "description": "NYC taxi fare predictions from the champion model; every request is logged for drift checks.",
            "security_schemes": {"apiKey": APIKey(name="x-api-key", in_=APIKeyIn.header)},
            "security": [{"apiKey": []}]}
        self.openapi_json = self.app.get_openapi_json_schema(**document)
        # Swagger UI with its script and styles inlined from the Powertools package (no swagger_base_url:
        # nothing is fetched from a CDN), the document embedded; ?format=json gives the document alone.
        self._routes.setdefault(DOCS_PATH, set()).add("GET")
        self.app.enable_swagger(path=DOCS_PATH, persist_authorization=True, **document)

    def count(self, name: str, value: float = 1) -> None:
        self.metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)

    def _route(self, method: str, path: str, **kwargs):
        self._routes.setdefault(API_PREFIX + path, set()).add(method)
        return self.app.route(API_PREFIX + path, method=method, **kwargs)

    # ------------------------------------------------------------------ routes

    def _add_routes(self, request_type: type) -> None:
        from aws_lambda_powertools.event_handler.openapi.params import Body

        serving = self.serving

        @self._route("POST", "/predict", summary="Predict the fare of one trip or a batch",
                     responses=_doc(api.PredictResponse, "predictions", 400, 413, 422, 503))
        def predict(body: Annotated[request_type, Body()]):
            batch = not isinstance(body, api.SinglePredictRequest)
            rows = [r.__dict__ for r in body.instances] if batch else [body.features.__dict__]
            return self._predict(rows, None, batch, self.app.current_event.headers, self.app.context["started"])

        @self._route("GET", "/health", summary="Model loaded, its version, log sink health, degraded reasons",
                     responses=_doc(api.HealthResponse, "health", 503))
        def health():
            body = serving.health()
            return _json(HTTPStatus.OK if body["model_loaded"] else HTTPStatus.SERVICE_UNAVAILABLE, body)

        @self._route("GET", "/model", summary="Metadata of the serving model",
                     responses=_doc(api.ModelInfo, "the serving model", 503))
        def model_info():
            return _json(HTTPStatus.OK, serving.model_info())

        @self._route("POST", "/feedback", summary="Report the actual fare of a past prediction",
                     responses={202: {"description": "feedback accepted (joined with its prediction by the log archiver)",
                                      "content": {"application/json": {"model": api.FeedbackResponse}}},
                                **{k: v for k, v in _doc(api.FeedbackResponse, "", 400, 404, 422, 503).items()
                                   if k != 200}})
        def feedback(body: Annotated[api.FeedbackRequest, Body()]):
            try:
                doc = serving.feedback(body.request_id, body.actual_fare)
            except UnknownRequest:
                raise ServiceError(HTTPStatus.NOT_FOUND, f"unknown request_id {body.request_id!r}: not issued by "
                                   f"this API or older than {self.feedback_max_age_days:g} days") from None
            return _json(HTTPStatus.ACCEPTED, {"request_id": body.request_id, "actual_fare": body.actual_fare,
                                               "request_ts": doc["request_ts"], "status": "accepted"})

        @self._route("GET", "/openapi.json", summary="This document", include_in_schema=False)
        def openapi():
            return Response(HTTPStatus.OK, content_types.APPLICATION_JSON, self.openapi_json)

    def _predict(self, rows: list, feeds: dict | None, batch: bool, headers, started: float) -> Response:
        """POST /predict once the body is valid (``feeds``: already encoded by the columnar path)."""
        champion = self.serving.champion()  # no model: 503, before the request's own checks
        served = self.serving.predict(rows, batch=batch, client_request_id=_client_request_id(headers),
                                      started=started, champion=champion, feeds=feeds)
        self._record_metrics(served.request_id, served.model.version, len(rows), served.latency_ms)
        out = {"request_id": served.request_id,
               "predicted_fare": np.round(served.predictions, 4).tolist() if batch else round(served.predictions[0], 4),
               "model_name": served.model.name, "model_version": served.model.version,
               "latency_ms": served.latency_ms}
        if batch:
            out["item_ids"] = served.item_ids
        # pydantic-core's serializer: a thousand floats cost a quarter of json.dumps's
        return Response(HTTPStatus.OK, content_types.APPLICATION_JSON, to_json(out).decode())

    def _predict_columnar(self, event: dict, body: str, started: float) -> dict | None:
        """POST /v1/predict without the router when the whole body is valid at first sight (parsed once,
        validated and encoded per column: driftstack.domain.columnar); None sends the request through
        Powertools, whose per-row models decide and name every bad field (400, 413, 422)."""
        try:
            parsed = from_json(body)
        except ValueError:  # malformed JSON: the router's parser says where (400)
            return None
        batch = type(parsed) is dict and len(parsed) == 1 and "instances" in parsed
        rows = parsed["instances"] if batch else [parsed.get("features")] if type(parsed) is dict \
            and len(parsed) == 1 else None
        if rows is None or (batch and not 0 < len(rows) <= self.batch_limit):
            return None
        feeds = columnar.encode_if_valid(rows)
        if feeds is None:
            return None
        try:
            response = self._predict(rows, feeds, batch, _Headers(event.get("headers")), started)
        except (Unavailable, ServiceError) as exc:
            response = self._on_unavailable(exc) if isinstance(exc, Unavailable) else self._on_service_error(exc)
        except Exception as exc:  # noqa: BLE001 - the router's catch-all, on this path too
            response = self._on_unexpected(exc)
        return {"statusCode": response.status_code, "body": response.body, "isBase64Encoded": False,
                "multiValueHeaders": {"Content-Type": [content_types.APPLICATION_JSON]}}


    def _record_metrics(self, request_id: str, model_version: str, rows: int, latency_ms: float) -> None:
        # One structured line per request: the EMF metrics blob carries request_id and model_version
        # (CloudWatch Logs Insights can query them), laid out once by Powertools (usecases.emf_line).
        # The Logger line below costs ~30-150 µs, so it is DEBUG, emitted for the sampled share of
        # invocations (POWERTOOLS_LOGGER_SAMPLE_RATE).
        self.emf.emit(request_id, model_version, rows, latency_ms)
        self.logger.debug("predicted", extra={"request_id": request_id, "model_version": model_version,
                                              "rows": rows, "latency_ms": latency_ms})

    # ------------------------------------------------------------------ errors

    def _add_error_handlers(self) -> None:
        from aws_lambda_powertools.event_handler.openapi.exceptions import (
            RequestUnsupportedContentType,
            RequestValidationError,
        )

        app = self.app

        @app.exception_handler(RequestValidationError)
        def validation_error(exc: RequestValidationError) -> Response:
            errors = exc.errors()
            bad_json = [e for e in errors if e["type"] == "json_invalid"]
            if bad_json:
                ctx = bad_json[0].get("ctx") or {}
                pos = bad_json[0]["loc"][-1] if len(bad_json[0]["loc"]) > 1 else "?"
                return _error(HTTPStatus.BAD_REQUEST, f"malformed JSON body: {ctx.get('error', 'decode error')} "
                                                      f"at position {pos}")
            if any(e["type"] == "too_long" and _field(e["loc"]) == "instances" for e in errors):
                return _error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                              f"batch too large: at most {self.batch_limit} instances per request")
            details = [{"field": _field(e["loc"]), "type": e["type"], "message": e.get("msg", e["type"])}
                       for e in errors]
            self.count(N.METRIC_VALIDATION_ERRORS)
            return _error(HTTPStatus.UNPROCESSABLE_ENTITY,
                          "invalid request: " + "; ".join(f"{d['field']}: {d['message']}" for d in details), details)

        @app.exception_handler(RequestUnsupportedContentType)
        def unsupported_media_type(_: RequestUnsupportedContentType) -> Response:
            return _error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "the body must be JSON (Content-Type: application/json)")

        @app.not_found
        def not_found(_: NotFoundError) -> Response:
            path, method = app.current_event.path, app.current_event.http_method.upper()
            allowed = self._routes.get(path.rstrip("/") or "/")
            if allowed:
                return _error(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed on {path}; use "
                              f"{', '.join(sorted(allowed))}", headers={"Allow": ", ".join(sorted(allowed))})
            return _error(HTTPStatus.NOT_FOUND, f"no route {method} {path}; see GET {API_PREFIX}/openapi.json")

        app.exception_handler(Unavailable)(self._on_unavailable)
        app.exception_handler(ServiceError)(self._on_service_error)
        app.exception_handler(Exception)(self._on_unexpected)

    @staticmethod
    def _on_unavailable(exc: Unavailable) -> Response:
        return _error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc))

    @staticmethod
    def _on_service_error(exc: ServiceError) -> Response:
        return _error(exc.status_code, exc.msg if isinstance(exc.msg, str) else str(exc.msg))

    def _on_unexpected(self, exc: Exception) -> Response:
        self.logger.exception("unhandled error")
        self.count(N.METRIC_ERRORS)
        return _error(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error ({type(exc).__name__})")

    # ------------------------------------------------------------------ entry point

    def handle(self, event: dict, context: Any) -> dict:
        started = time.perf_counter()
        body = event.get("body") or ""
        if body and event.get("isBase64Encoded"):
            # API Gateway base64-encodes a body that is not valid UTF-8; Powertools would decode it as
            # UTF-8 and fail with UnicodeDecodeError (a 500). Refuse it here, naming the bad byte.
            if (refused := self._undecodable(body)) is not None:
                return refused
        if body:
            # Checked before Powertools parses anything: it would json-decode a huge body first, and it
            # would parse a form-encoded body (curl -d without -H) as a form and report odd field errors.
            if len(body) > self.max_body_bytes:
                self.count("BodyTooLarge")
                return _early(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                              f"request body is {len(body)} bytes; the limit is {self.max_body_bytes}")
            ctype = _content_type(event)
            if ctype and not (ctype.startswith("application/json") or "+json" in ctype):
                return _early(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"Content-Type {ctype!r} is not supported; "
                                                                 f"send JSON with Content-Type: application/json")
            if event.get("path") == PREDICT_PATH and event.get("httpMethod") == "POST" \
                    and not event.get("isBase64Encoded") and (not ctype or ctype.startswith("application/json")):
                fast = self._predict_columnar(event, body, started)
                if fast is not None:
                    return fast
        self.app.append_context(started=started)
        return self.app.resolve(event, context)

    def _undecodable(self, body: str) -> dict | None:
        """400 for a base64 body that is not valid base64 or whose bytes are not UTF-8; None when it is fine."""
        import base64  # here, not at the top: only this rare path needs them
        import binascii

        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return _early(HTTPStatus.BAD_REQUEST, "malformed body: isBase64Encoded is set but the body is not "
                                                  "base64; send JSON encoded as UTF-8")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.count("InvalidEncoding")
            return _early(HTTPStatus.BAD_REQUEST,
                          f"request body is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at position {exc.start}: "
                          f"{exc.reason}); send JSON encoded as UTF-8")
        return None
