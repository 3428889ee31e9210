"""Prediction API (API Gateway REST proxy -> this Lambda): the routes, status codes and error bodies
are driftstack.usecases.prediction_api; serving itself (champion, canary/shadow, request log) is
driftstack.usecases.serve.

Cold start (imports, settings, AWS clients, the champion download and its onnxruntime session)
happens at import time, outside the request path.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.lambda_context import build_lambda_context_model
from aws_lambda_powertools.metrics import MetricUnit

from driftstack.contract import names as N
from driftstack.settings import PredictSettings
from driftstack.usecases.prediction_api import PredictionApi
from driftstack.usecases.serve import Serving

logger = Logger(service=N.PREDICT_SERVICE)
metrics = Metrics(namespace=N.NAMESPACE, service=N.PREDICT_SERVICE)
# A Tracer builds the X-Ray recorder and its X-Ray client (~0.35 s) even when tracing is off: only when it is on.
tracer = None if Tracer._is_tracer_disabled() else Tracer(service=N.PREDICT_SERVICE)

SETTINGS = PredictSettings.from_env()


def _count(name: str, value: float = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


SERVING = Serving.connect(models_table=SETTINGS.models_table, log_settings=SETTINGS.log_settings(),
                          refresh_seconds=SETTINGS.refresh_seconds, log_timeout_seconds=SETTINGS.log_timeout_seconds,
                          count=_count, log=logger)
API = PredictionApi(SERVING, batch_limit=SETTINGS.batch_limit, max_body_bytes=SETTINGS.max_body_bytes,
                    feedback_max_age_days=SETTINGS.feedback_max_age_days, metrics=metrics, logger=logger)
_cold_start = True


def _sample_debug() -> None:
    """The sampled share of invocations logs DEBUG (POWERTOOLS_LOGGER_SAMPLE_RATE), drawn per invocation;
    the level is set only when it changes (setLevel clears the cache of every logger in the process)."""
    if logger.sampling_rate:
        level = logging.DEBUG if random.random() <= float(logger.sampling_rate) else logger.initial_log_level
        if logger.log_level != level:
            logger.setLevel(level)


def _handler(event: dict, context: Any) -> dict:
    # What @logger.inject_lambda_context(correlation_id_path=API_GATEWAY_REST) and
    # @metrics.log_metrics(capture_cold_start_metric=True) do, without their per-call JMESPath query,
    # context model and environment reads (~40 µs, as much as the model): the Lambda context keys and the
    # API Gateway request id on every log line, the DEBUG sample, the ColdStart metric, the EMF flush.
    global _cold_start
    cold, _cold_start = _cold_start, False
    if cold:
        logger.append_keys(**build_lambda_context_model(context).__dict__)
    else:
        _sample_debug()
    logger.append_keys(cold_start=cold, function_request_id=context.aws_request_id,
                       correlation_id=(event.get("requestContext") or {}).get("requestId"))
    try:
        return API.handle(event, context)
    finally:
        if cold:
            metrics.provider.add_cold_start_metric(context)
        # A served prediction printed its own EMF line (API.emf); Powertools flushes the rest (error
        # counts...), and only when there is any (an empty flush warns on every invocation).
        if metrics.provider.metric_set:
            metrics.flush_metrics()


# X-Ray subsegments only when tracing is on (Powertools' disabled tracer still builds dummy segments).
handler = _handler if tracer is None else tracer.capture_lambda_handler(_handler, capture_response=False)
