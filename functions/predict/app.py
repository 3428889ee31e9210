"""Prediction API (API Gateway REST proxy -> this Lambda): the routes, status codes and error bodies
are driftstack.usecases.prediction_api; serving itself (champion, canary/shadow, request log) is
driftstack.usecases.serve.

Cold start (imports, settings, AWS clients, the champion download and its onnxruntime session)
happens at import time, outside the request path.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from driftstack.contract import names as N
from driftstack.settings import PredictSettings
from driftstack.usecases.prediction_api import PredictionApi
from driftstack.usecases.serve import Serving

logger = Logger(service=N.PREDICT_SERVICE)
metrics = Metrics(namespace=N.NAMESPACE, service=N.PREDICT_SERVICE)
tracer = Tracer(service=N.PREDICT_SERVICE)

SETTINGS = PredictSettings.from_env()


def _count(name: str, value: float = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


SERVING = Serving.connect(models_table=SETTINGS.models_table, log_settings=SETTINGS.log_settings(),
                          refresh_seconds=SETTINGS.refresh_seconds, log_timeout_seconds=SETTINGS.log_timeout_seconds,
                          count=_count, log=logger)
API = PredictionApi(SERVING, batch_limit=SETTINGS.batch_limit, max_body_bytes=SETTINGS.max_body_bytes,
                    feedback_max_age_days=SETTINGS.feedback_max_age_days, metrics=metrics, logger=logger)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context: Any) -> dict:
    return API.handle(event, context)
