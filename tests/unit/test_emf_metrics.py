"""The LocalStack EMF patch's parser: Powertools' own metric lines become the right MetricData."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "localstack" / "plugin"))
from driftstack_localstack.emf_metrics import metric_data  # noqa: E402


def _powertools_line(**metrics: float) -> str:
    m = Metrics(namespace="driftstack", service="driftstack-drift-check")
    for name, value in metrics.items():
        m.add_metric(name=name, unit=MetricUnit.Count, value=value)
    m.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=1.5)
    m.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=2.5)
    line = json.dumps(m.serialize_metric_set())
    m.clear_metrics()
    return line


def test_a_powertools_line_becomes_metric_data_with_its_dimension_unit_and_time():
    [(namespace, data)] = metric_data(_powertools_line(DriftTriggered=1))
    assert namespace == "driftstack"
    by_name = {d["MetricName"]: d for d in data}
    trig = by_name["DriftTriggered"]
    assert trig["Value"] == 1.0 and trig["Unit"] == "Count"
    assert trig["Dimensions"] == [{"Name": "service", "Value": "driftstack-drift-check"}]
    assert trig["Timestamp"].tzinfo is not None
    assert by_name["Latency"]["Values"] == [1.5, 2.5] and by_name["Latency"]["Unit"] == "Milliseconds"


@pytest.mark.parametrize("message", [
    "", "START RequestId: 1 Version: $LATEST", '{"level": "INFO", "message": "drift check"}',
    '{"_aws": ', '{"_aws": {"CloudWatchMetrics": "nope"}}', "[1, 2]",
    '{"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "n", "Dimensions": [["missing"]],'
    ' "Metrics": [{"Name": "M"}]}]}, "M": 1}',
    '{"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "n", "Dimensions": [[]],'
    ' "Metrics": [{"Name": "M"}]}]}, "M": "not a number"}',
])
def test_anything_else_is_left_alone(message):
    assert metric_data(message) == []


def test_non_finite_values_are_dropped_and_no_dimensions_is_allowed():
    doc = {"_aws": {"Timestamp": 1_700_000_000_000, "CloudWatchMetrics": [
        {"Namespace": "n", "Dimensions": [[]], "Metrics": [{"Name": "A", "Unit": "Count"}, {"Name": "B"}]}]},
        "A": [1, float("nan"), 3], "B": float("inf")}
    [(ns, data)] = metric_data(json.dumps(doc))
    assert ns == "n" and data == [{"MetricName": "A", "Unit": "Count", "Dimensions": [],
                                   "Timestamp": data[0]["Timestamp"], "Values": [1.0, 3.0]}]
