"""Training-set assembly by Spark from the batched archive (spark_jobs.labelled) on moto S3: the
window's requests joined with their latest feedback, validated against the feature contract with
the reasons counted, ordered by request time; too little labelled traffic fails with the figures."""

from datetime import datetime, timedelta, timezone

import boto3
import pytest
from moto import mock_aws

from driftstack.adapters import archive as A
from driftstack.contract import features as F
from driftstack.contract.api import example_features
from driftstack.usecases.training_set import NotEnoughData
from spark_jobs.labelled import assemble

pytestmark = pytest.mark.spark
BUCKET = "archive"
LAYOUT = A.Layout(bucket=BUCKET, slot_minutes=5)
START = datetime(2026, 12, 3, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def s3(monkeypatch):
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    for k, v in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _request(at: datetime, i: int, version: str = "1", **changes) -> dict:
    rid = A.new_request_id(at.timestamp())
    return A.make_record(request_id=rid, ts=A.iso(at), features={**example_features(), "trip_distance": 1.0 + i, **changes},
                         prediction=10.0, model_name="fare", model_version=version, model_sha="ab" * 8, latency_ms=1.0)


def _write(s3, requests: list[dict], feedback: list[dict]) -> None:
    for kind, recs in ((A.REQUESTS, requests), (A.FEEDBACK, feedback)):
        by_slot: dict = {}
        for r in recs:
            when = r["ts"] if kind == A.REQUESTS else A.request_time(r["request_id"])
            by_slot.setdefault(LAYOUT.slot_of(when), []).append(r)
        for slot, rs in by_slot.items():
            A.merge_into(s3, LAYOUT, kind, slot, rs)


def _spec(**kw) -> dict:
    return {"bucket": BUCKET, "slot_minutes": 5, "window": {"start": A.iso(START), "end": A.iso(START + timedelta(hours=1))},
            "read": "stage", **kw}


def test_assembles_valid_labelled_rows_from_the_archive(spark, s3):
    reqs = [_request(START + timedelta(minutes=2 * i), i) for i in range(20)]
    reqs.append(_request(START + timedelta(minutes=3), 99, pickup_borough="Atlantis"))    # invalid category
    reqs.append(_request(START + timedelta(minutes=4), 98, version="2"))                  # another version
    outside = _request(START - timedelta(minutes=10), 97)                                  # before the window
    fb = [A.make_feedback(request_id=r["request_id"], actual_fare=12.0 + k, ts=A.iso(START + timedelta(hours=2)))
          for k, r in enumerate(reqs + [outside])]
    fb.append(A.make_feedback(request_id=reqs[0]["request_id"], actual_fare=55.0,          # a later correction
                              ts=A.iso(START + timedelta(hours=3))))
    fb.append(A.make_feedback(request_id=reqs[1]["request_id"], actual_fare=500.0,         # fare out of range
                              ts=A.iso(START + timedelta(hours=3))))
    _write(s3, reqs + [outside], fb)

    pdf, report = assemble(spark, s3, _spec(), min_rows=10)
    assert report["requests"] == 22 and report["labelled"] == 22 and report["rows_out"] == 20
    assert report["dropped"] == {"pickup_borough:unknown_category": 1, "fare_amount:out_of_range": 1}
    assert list(pdf.columns) == [*F.FEATURE_NAMES, F.TARGET.name, "ts"]
    assert list(pdf["ts"]) == sorted(pdf["ts"])
    assert pdf.loc[pdf["trip_distance"] == 1.0, F.TARGET.name].item() == 55.0              # latest feedback wins
    assert report["objects"] >= 2

    only_v1, rep1 = assemble(spark, s3, _spec(model_version="1"), min_rows=10)
    assert rep1["requests"] == 21 and len(only_v1) == 19


def test_too_little_labelled_traffic_names_the_figures(spark, s3):
    reqs = [_request(START + timedelta(minutes=i), i) for i in range(5)]
    _write(s3, reqs, [A.make_feedback(request_id=r["request_id"], actual_fare=20.0, ts=A.iso(START + timedelta(hours=1)))
                      for r in reqs[:3]])
    with pytest.raises(NotEnoughData, match=r"3 valid labelled rows < 50 \(5 requests, 3 with feedback"):
        assemble(spark, s3, _spec(), min_rows=50)
    with pytest.raises(NotEnoughData, match="0 valid labelled rows"):
        assemble(spark, s3, {**_spec(), "window": {"start": "2026-12-01T00:00:00.000000Z",
                                                   "end": "2026-12-01T01:00:00.000000Z"}}, min_rows=1)
