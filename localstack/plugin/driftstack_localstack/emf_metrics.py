"""CloudWatch embedded metric format (EMF): log lines become metrics, as CloudWatch Logs does on AWS.

Powertools ``Metrics`` writes each invocation's metrics as one JSON log line with an ``_aws``
block; on AWS, CloudWatch Logs extracts them into CloudWatch metrics. LocalStack keeps the line as a
log event and no metric appears, so no alarm could ever fire from our own metrics locally. This
patch makes ``PutLogEvents`` do the extraction, after the events are stored (a metric that cannot
be written never costs a log line). LocalStack's alarm scheduler then evaluates alarms on the data.

``metric_data`` is pure (no LocalStack import) so it is unit-tested in the project's environment.
DRIFTSTACK_EMF_METRICS=0 leaves the patch out.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from datetime import datetime, timezone

LOG = logging.getLogger(__name__)
MAX_DATUMS_PER_CALL = 1000  # PutMetricData's limit


def _values(raw) -> list[float]:
    items = raw if isinstance(raw, list) else [raw]
    return [float(v) for v in items
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def metric_data(message: str) -> list[tuple[str, list[dict]]]:
    """One log message -> ``[(namespace, MetricData)]``; ``[]`` when it is not a valid EMF document.

    Follows the EMF specification: each directive in ``_aws.CloudWatchMetrics`` names a namespace,
    dimension sets (each a list of keys of the document) and metrics (keys whose value is a number or
    a list of numbers); ``_aws.Timestamp`` is epoch milliseconds.
    """
    text = message.strip()
    if not text.startswith("{") or '"_aws"' not in text:
        return []
    try:
        doc = json.loads(text)
    except ValueError:
        return []
    meta = doc.get("_aws") if isinstance(doc, dict) else None
    if not isinstance(meta, dict) or not isinstance(meta.get("CloudWatchMetrics"), list):
        return []
    ts = meta.get("Timestamp")
    when = datetime.fromtimestamp(ts / 1000, timezone.utc) if isinstance(ts, (int, float)) else None
    out: list[tuple[str, list[dict]]] = []
    for directive in meta["CloudWatchMetrics"]:
        if not isinstance(directive, dict) or not isinstance(directive.get("Namespace"), str):
            continue
        dimension_sets = directive.get("Dimensions") or [[]]
        data = []
        for metric in directive.get("Metrics") or []:
            name = metric.get("Name") if isinstance(metric, dict) else None
            values = _values(doc.get(name)) if isinstance(name, str) else []
            if not values:
                continue
            for dims in dimension_sets:
                if not isinstance(dims, list) or any(not isinstance(d, str) or d not in doc for d in dims):
                    continue
                datum = {"MetricName": name, "Unit": metric.get("Unit") or "None",
                         "Dimensions": [{"Name": d, "Value": str(doc[d])} for d in dims]}
                if when:
                    datum["Timestamp"] = when
                if len(values) == 1:
                    datum["Value"] = values[0]
                else:
                    datum["Values"] = values
                data.append(datum)
        if data:
            out.append((directive["Namespace"], data))
    return out


def install() -> None:
    from localstack.aws.connect import connect_to
    from localstack.services.logs.provider import LogsProvider
    from localstack.utils.patch import patch

    @functools.lru_cache(maxsize=64)
    def cloudwatch_client(account_id: str, region: str):
        return connect_to(aws_access_key_id=account_id, region_name=region).cloudwatch  # ~ms to build: once

    @patch(LogsProvider.put_log_events)
    def put_log_events(fn, self, context, log_group_name, log_stream_name, log_events, *args, **kwargs):
        result = fn(self, context, log_group_name, log_stream_name, log_events, *args, **kwargs)
        batches = [b for event in log_events or [] for b in metric_data(str(event.get("message", "")))]
        if batches:
            try:
                cloudwatch = cloudwatch_client(context.account_id, context.region)
                for namespace, data in batches:
                    for i in range(0, len(data), MAX_DATUMS_PER_CALL):
                        cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[i:i + MAX_DATUMS_PER_CALL])
            except Exception:  # noqa: BLE001 - the log events are stored; say why the metrics are not
                LOG.exception("EMF: could not put metric data from %s", log_group_name)
        return result
