"""The EMF line of a served prediction, laid out once by Powertools' own serializer.

Powertools' ``add_metric`` x2 + ``flush_metrics`` validate names and units, read the environment,
build the blob and json-dump it on every invocation (about a third of the handler around the model).
The line's shape never changes between predictions: only the timestamp, the two values, request_id
and model_version do. So :class:`PredictionEmf` serializes the blob once with placeholders and, per
prediction, joins the pre-split text with the values (one string join, no dict, no validation).
Every other metric (ColdStart, error counts) still goes through Powertools ``Metrics``.
"""

from __future__ import annotations

import json
import time
from json.encoder import encode_basestring_ascii as _json_str  # what json.dumps uses for a str

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from driftstack.contract import names as N

# Placeholders, in the order Powertools lays the blob out (_aws.Timestamp, dimensions, metadata, metrics).
_SLOTS = ("timestamp", "request_id", "model_version", "rows", "latency_ms")


def _hole(slot: str) -> str:
    return f"\x00{slot}\x00"


class PredictionEmf:
    """One EMF line per prediction: Predictions (Count) and PredictLatency (Milliseconds) under the
    same namespace and dimensions as ``metrics``, with request_id and model_version as properties."""

    def __init__(self, metrics: Metrics) -> None:
        # A provider of its own: Metrics instances share their metric set (class attributes).
        provider = AmazonCloudWatchEMFProvider(namespace=metrics.namespace, service=metrics.service,
                                               default_dimensions=dict(metrics.provider.default_dimensions))
        provider.add_metric(name=N.METRIC_PREDICTIONS, unit=MetricUnit.Count, value=0)
        provider.add_metric(name=N.METRIC_PREDICT_LATENCY, unit=MetricUnit.Milliseconds, value=0)
        blob = provider.serialize_metric_set(metadata={"request_id": _hole("request_id"),
                                                       "model_version": _hole("model_version")})
        blob["_aws"]["Timestamp"] = _hole("timestamp")
        blob[N.METRIC_PREDICTIONS] = [_hole("rows")]
        blob[N.METRIC_PREDICT_LATENCY] = [_hole("latency_ms")]
        text = json.dumps(blob, separators=(",", ":"))  # as Powertools' flush_metrics prints it
        self._parts: list[str] = []
        for slot in _SLOTS:
            before, text = text.split(json.dumps(_hole(slot)))
            self._parts.append(before)
        self._parts.append(text)
        # Read once per container (Powertools reads it per flush): a Lambda's environment does not change.
        self.disabled = is_metrics_disabled()

    def line(self, request_id: str, model_version: str, rows: int, latency_ms: float,
             timestamp_ms: int | None = None) -> str:
        """The JSON line Powertools would print for these values (floats as json.dumps writes them)."""
        p = self._parts
        ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        return (f"{p[0]}{ts}{p[1]}{_json_str(request_id)}{p[2]}{_json_str(model_version)}"
                f"{p[3]}{float(rows)!r}{p[4]}{float(latency_ms)!r}{p[5]}")

    def emit(self, request_id: str, model_version: str, rows: int, latency_ms: float) -> None:
        if not self.disabled:
            print(self.line(request_id, model_version, rows, latency_ms))  # stdout, one line, as Powertools
