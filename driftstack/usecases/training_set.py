"""Labelled traffic for retraining: what the prepare step hands the Spark job.

The prepare Lambda does not read request records: it checks the window's per-slot aggregates
(labelled counts, a few small objects) so a window without enough feedback fails fast, and writes
where the window's archive lies.  The retraining job (spark_jobs/labelled.py) then reads the
batched archive with Spark — joins requests with feedback, validates them against the feature
contract — so assembly scales with the cluster, not with one Lambda.  Lambda-safe: boto3 + numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

from driftstack.adapters import aggregates as G
from driftstack.adapters import archive as A
from driftstack.contract.documents import ArchiveSpec, LabelledSummary


class NotEnoughData(ValueError):
    """Fewer valid labelled rows than the job needs."""


@dataclass(frozen=True)
class LabelledWindow:
    archive: ArchiveSpec          # the Spark job's archive spec (part of the retrain job spec)
    summary: LabelledSummary      # the counts from the aggregates


def prepare(s3, layout: A.Layout, window_start: str, window_end: str, *, min_rows: int = 200,
            model_version: str | None = None, read: str = "stage") -> LabelledWindow:
    """-> the Spark job's archive spec and the window's counts; raises NotEnoughData
    when the window's feedback cannot reach ``min_rows`` (before any Spark time is spent)."""
    start, end = A.parse_iso(window_start), A.parse_iso(window_end)
    first = layout.slot_of(start)
    last = layout.slot_of(end)
    docs, _ = G.read_window(s3, layout, first, last + layout.slot)
    labelled = requests = 0
    for doc in docs:
        for version, agg in (doc.get("versions") or {}).items():
            if model_version is None or version == str(model_version):
                labelled += int(agg.get("labelled", 0))
                requests += int(agg.get("n", 0))
    if labelled < min_rows:
        raise NotEnoughData(f"not enough labelled traffic in window {window_start}..{window_end}: {labelled} "
                            f"requests with feedback < {min_rows} ({requests} requests"
                            f"{f' served by version {model_version}' if model_version is not None else ''})")
    spec = ArchiveSpec(bucket=layout.bucket, requests_prefix=layout.requests_prefix,
                       feedback_prefix=layout.feedback_prefix, slot_minutes=layout.slot_minutes,
                       window={"start": window_start, "end": window_end}, model_version=model_version,
                       read=read, min_rows=min_rows)
    return LabelledWindow(spec, LabelledSummary(labelled=labelled, requests=requests, slots=len(docs)))

