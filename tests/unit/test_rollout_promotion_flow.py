"""A promotion rolled out as a canary, end to end with the real handlers on moto: the retrain
promote step starts the canary, the predict function serves it, the canary evaluation ends it.

A completed canary ends in the same state as a direct promotion (one helper asserts both): the
champion pointer, the MLflow alias (pending on a non-local backend; really set in an MLflow
registry with the local backend), the decision record, the ModelPromoted event and the SNS
notification.  A rolled-back one updates the run's record (outcome rolled_back, the reason) and
notifies.  A failing write after the pointer moved is reported, never hides the promotion."""

from __future__ import annotations

import importlib.util
import json
import uuid
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from test_predict_handler import BUCKET, aws_env, champion  # noqa: F401
from test_rollout_handler import Ctx, app, candidate, evaluator, predict, trips  # noqa: F401

from driftstack.domain import decision as D
from driftstack.adapters import decision_store
from driftstack.usecases import promotion as P
from driftstack.adapters.registry import read_pointer
from driftstack.adapters import rollout as ro
from driftstack.tools.toy_model import build_toy_model

ROOT = Path(__file__).resolve().parents[2]
RUN = "run-7"
METRICS = {"champion": {"rmse": 9.0}, "challenger": {"rmse": 4.0}}


@pytest.fixture
def flow(aws_env, champion, moto, monkeypatch):  # noqa: F811
    history = moto.history_table("history")
    sqs, sns, events = boto3.client("sqs"), boto3.client("sns"), boto3.client("events")

    def queue(name: str) -> tuple[str, str]:
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    notes_url, notes_arn = queue("notifications")
    topic = sns.create_topic(Name="driftstack-notifications")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=notes_arn)
    events_url, events_arn = queue("promoted-events")
    events.put_rule(Name="promoted", EventPattern=json.dumps({"source": ["driftstack"],
                                                              "detail-type": ["ModelPromoted"]}))
    events.put_targets(Rule="promoted", Targets=[{"Id": "q", "Arn": events_arn}])
    for k, v in {"HISTORY_TABLE": "history", "TOPIC_ARN": topic, "TRAINING_BACKEND": "emr-serverless",
                 "EVENT_BUS_NAME": "default"}.items():
        monkeypatch.setenv(k, v)
    spec = importlib.util.spec_from_file_location(f"retrain_{uuid.uuid4().hex}", ROOT / "functions/retrain/app.py")
    retrain = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(retrain)

    seen: dict[str, list[dict]] = {notes_url: [], events_url: []}

    def messages(url: str) -> list[dict]:
        """Every message the queue has received so far, oldest first."""
        while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            seen[url] += [json.loads(m["Body"]) for m in msgs]
            sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                            for i, m in enumerate(msgs)])
        return list(seen[url])
    yield SimpleNamespace(retrain=retrain, history=history, monkeypatch=monkeypatch, s3=aws_env.s3, models=aws_env.models,
                          notifications=lambda: messages(notes_url), events=lambda: messages(events_url))


def _decided(flow, cand: dict) -> dict:
    """The run as the workflow has it when promote runs: evaluated, decided (its record exists)."""
    evaluation = {"holdout": {"rows": 300},
                  "champion": {"model_name": "taxi-fare", "version": "1", "metrics": METRICS["champion"]},
                  "challenger": {"model_name": "taxi-fare", "version": cand["version"], "sha256": cand["sha256"],
                                 "prefix": cand["prefix"], "bucket": BUCKET, "metrics": METRICS["challenger"]}}
    decision_store.save_record(flow.s3, BUCKET, flow.history, {"run_id": RUN, "outcome": "decided", "evaluation": evaluation,
                                                  "reasons": ["RMSE 4.0 vs champion 9.0"]})
    return {"run_id": RUN, "champion": {"model_name": "taxi-fare", "version": "1"}, "evaluation": evaluation,
            "decision": {"outcome": "promote", "reasons": ["RMSE 4.0 vs champion 9.0"]}}


def _canary(flow, app, evaluator, blob: bytes, *, long_share=0.0, criteria=None,  # noqa: F811
            evaluation_env=None):
    """promote (canary) -> the workflow's notify -> traffic -> the scheduled evaluation (whose
    environment may differ: ``evaluation_env``; both functions read their settings per invocation)."""
    event = _decided(flow, candidate(aws_env_of(flow), blob))
    started = flow.retrain.promote(event, Ctx())
    flow.retrain.notify({"run_id": RUN, "final": started}, Ctx())
    assert started["outcome"] == P.CANARY and ro.read(flow.models).run_id == RUN
    a = app()
    for i, row in enumerate(trips(240, seed=11, long_share=long_share)):
        assert predict(a, row, f"promo-{i:05d}")[0] == 200
    for k, v in (evaluation_env or {}).items():
        flow.monkeypatch.setenv(k, v)
    return evaluator.handler({"criteria": {"min_requests": 40, **(criteria or {})}}, Ctx())


def aws_env_of(flow):
    return SimpleNamespace(s3=flow.s3, models=flow.models)


def assert_promoted(flow, version: str, previous: str) -> dict:
    """What a promotion leaves behind, however it happened."""
    ptr = read_pointer(flow.models)
    assert (ptr.version, ptr.model_name) == (version, "taxi-fare")
    assert flow.models.get_item(Key={"pk": "pointer#champion"})["Item"]["promoted_by"] == RUN
    rec = decision_store.load_record(flow.s3, BUCKET, RUN)
    assert rec["outcome"] == D.PROMOTED and rec["promoted_at"] and rec["pointer"]["version"] == version
    assert rec["mlflow_alias"] == {"model_name": "taxi-fare", "alias": "champion", "version": version,
                                   "status": "pending", "note": rec["mlflow_alias"]["note"]}
    assert decision_store.list_records(flow.history)[0]["outcome"] == D.PROMOTED
    events = flow.events()
    assert [e["detail-type"] for e in events] == ["ModelPromoted"]
    detail = events[0]["detail"]
    assert (detail["run_id"], detail["version"], detail["previous_version"]) == (RUN, version, previous)
    assert (detail["metrics"], detail["champion_metrics"]) == (METRICS["challenger"], METRICS["champion"])
    notes = [n for n in flow.notifications() if n["Subject"].endswith(": promoted")]
    assert [n["Subject"] for n in notes] == [f"driftstack retraining {RUN}: promoted"]
    body = json.loads(notes[0]["Message"])
    assert (body["run_id"], body["outcome"], body["version"], body["previous_version"]) == (RUN, "promoted", version,
                                                                                             previous)
    return rec


def test_a_direct_promotion_sets_everything(flow, monkeypatch):
    monkeypatch.delenv("PROMOTE_CANARY_SHARE", raising=False)
    cand = candidate(aws_env_of(flow), build_toy_model(per_mile=2.52))
    final = flow.retrain.promote(_decided(flow, cand), Ctx())
    flow.retrain.notify({"run_id": RUN, "final": final}, Ctx())  # the workflow's Notify step
    rec = assert_promoted(flow, "2", "1")
    assert "promoted_via" not in rec and "errors" not in final


def test_a_completed_promotion_canary_ends_like_a_direct_promotion(flow, app, evaluator, monkeypatch):  # noqa: F811
    monkeypatch.setenv("PROMOTE_CANARY_SHARE", "0.3")
    out = _canary(flow, app, evaluator, build_toy_model(per_mile=2.52))
    assert out["status"] == "complete", out["reasons"]
    assert out["promotion"]["outcome"] == D.PROMOTED and "errors" not in out["promotion"]
    assert [n["Subject"] for n in flow.notifications()][0] == f"driftstack retraining {RUN}: canary"
    rec = assert_promoted(flow, "2", "1")
    assert rec["promoted_via"] == "canary" and rec["canary"]["outcome"] == "completed"
    assert rec["canary"]["evaluation"]["outcome"] == "complete" and rec["canary"]["evaluation"]["candidate"]["requests"] > 0
    assert ro.read(flow.models) is None and ro.last_outcome(flow.models)["run_id"] == RUN


def test_a_rolled_back_promotion_canary_is_recorded_and_notified(flow, app, evaluator, monkeypatch):  # noqa: F811
    monkeypatch.setenv("PROMOTE_CANARY_SHARE", "0.3")
    out = _canary(flow, app, evaluator, build_toy_model(nan_above_distance=10.5), long_share=0.3)
    assert out["status"] == "rollback" and out["promotion"]["outcome"] == P.ROLLED_BACK
    assert read_pointer(flow.models).version == "1" and flow.events() == []
    rec = decision_store.load_record(flow.s3, BUCKET, RUN)
    assert rec["outcome"] == P.ROLLED_BACK and "mlflow_alias" not in rec
    assert rec["reasons"][0].startswith("canary rolled back: candidate error rate")
    assert rec["canary"]["outcome"] == "rolled_back" and rec["canary"]["evaluation"]["candidate"]["errors"] > 0
    assert decision_store.list_records(flow.history)[0]["outcome"] == P.ROLLED_BACK
    subjects = [n["Subject"] for n in flow.notifications()]
    assert subjects == [f"driftstack retraining {RUN}: canary", f"driftstack retraining {RUN}: rolled_back"]


@pytest.mark.parametrize("var, value, error, detail", [
    ("EVENT_BUS_NAME", "deleted-bus", "ModelPromoted event not sent", "deleted-bus"),
    ("HISTORY_TABLE", "no-such-table", "decision record not updated", "ResourceNotFoundException"),
])
def test_a_failing_write_after_the_pointer_moved_is_reported_not_hidden(flow, app, evaluator, monkeypatch,  # noqa: F811
                                                                        var, value, error, detail):
    monkeypatch.setenv("PROMOTE_CANARY_SHARE", "0.3")
    # read by the canary evaluation when it finishes the promotion
    out = _canary(flow, app, evaluator, build_toy_model(per_mile=2.52), evaluation_env={var: value})
    assert out["status"] == "complete" and read_pointer(flow.models).version == "2"  # the canary completed
    errors = out["promotion"]["errors"]
    assert len(errors) == 1 and errors[0].startswith(error) and detail in errors[0], errors
    assert ro.last_evaluation(flow.models)["promotion"]["errors"] == errors          # the evidence is kept
    assert flow.notifications()[-1]["Subject"] == f"driftstack retraining {RUN}: promoted"
    if var == "EVENT_BUS_NAME":  # the record could be written: it says what is missing
        rec = decision_store.load_record(flow.s3, BUCKET, RUN)
        assert rec["outcome"] == D.PROMOTED and rec["promotion_errors"] == errors
        assert json.loads(flow.notifications()[-1]["Message"])["errors"] == errors


def test_local_backend_sets_the_mlflow_alias_after_the_canary(flow, app, evaluator, monkeypatch, tmp_path):  # noqa: F811
    """The local training backend: the project Python sets the alias in a real MLflow registry,
    bounded by ALIAS_TIMEOUT_SECONDS (a timeout is recorded, the canary still completes)."""
    import sys

    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("taxi-fare")
    for _ in range(2):
        client.create_model_version("taxi-fare", source=str(tmp_path))
    for k, v in {"PROMOTE_CANARY_SHARE": "0.3", "TRAINING_BACKEND": "local", "LOCAL_TRAINING_PYTHON": sys.executable,
                 "LOCAL_TRAINING_REPO": str(ROOT), "RETRAIN_MLFLOW": json.dumps({"tracking_uri": uri})}.items():
        monkeypatch.setenv(k, v)
    out = _canary(flow, app, evaluator, build_toy_model(per_mile=2.52))
    assert out["status"] == "complete", out["reasons"]
    alias = decision_store.load_record(flow.s3, BUCKET, RUN)["mlflow_alias"]
    assert (alias["status"], alias["version"], alias["tracking_uri"]) == ("set", "2", uri), alias
    assert str(client.get_model_version_by_alias("taxi-fare", "champion").version) == "2"


def test_an_alias_timeout_is_recorded_and_the_canary_still_completes(flow, app, evaluator, monkeypatch):  # noqa: F811
    import sys

    for k, v in {"PROMOTE_CANARY_SHARE": "0.3", "TRAINING_BACKEND": "local", "LOCAL_TRAINING_PYTHON": sys.executable,
                 "LOCAL_TRAINING_REPO": str(ROOT), "ALIAS_TIMEOUT_SECONDS": "0.05"}.items():
        monkeypatch.setenv(k, v)
    out = _canary(flow, app, evaluator, build_toy_model(per_mile=2.52))
    assert out["status"] == "complete" and read_pointer(flow.models).version == "2"
    alias = decision_store.load_record(flow.s3, BUCKET, RUN)["mlflow_alias"]
    assert alias["status"] == "failed" and "timed out" in alias["error"], alias
    assert out["promotion"]["mlflow_alias"]["status"] == "failed"


def test_the_evaluation_may_do_what_finishing_a_promotion_needs_and_no_more(cdk_stack):
    """Synthesized IAM: the canary evaluation reads/writes decision records (no delete, no action
    wildcard), puts events on the default bus, publishes to the topic; the predict function may
    update only the candidate item (to record a candidate it cannot load)."""
    from aws_cdk.assertions import Template

    t = Template.from_stack(cdk_stack()[1])
    fns = {k: v["Properties"] for k, v in t.find_resources("AWS::Lambda::Function").items()}

    def statements(fn_props) -> list[dict]:
        role = fn_props["Role"]["Fn::GetAtt"][0]
        return [st for v in t.find_resources("AWS::IAM::Policy").values() if {"Ref": role} in v["Properties"]["Roles"]
                for st in v["Properties"]["PolicyDocument"]["Statement"]]
    (ev,) = [p for k, p in fns.items() if "CanaryEval" in k]
    assert {"HISTORY_TABLE", "TOPIC_ARN", "EVENT_BUS_NAME", "TRAINING_BACKEND", "LOCAL_TRAINING_PYTHON",
            "LOCAL_TRAINING_REPO", "RETRAIN_MLFLOW"} <= set(ev["Environment"]["Variables"])
    sts = statements(ev)
    actions = {a for st in sts for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])}
    assert {"s3:GetObject", "s3:PutObject", "events:PutEvents", "sns:Publish"} <= actions
    # Wildcard action families only from draining the log (archive prefixes); deletes only of spilled log messages.
    for st in sts:
        acts = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
        res = json.dumps(st["Resource"])
        if any(a.endswith("*") and a.startswith("s3:") for a in acts):
            assert any(f'"/{p}/*"' in res for p in ("requests", "feedback", "aggregates", "log-spill", "models")), st
        if any(a.startswith("s3:Delete") for a in acts):
            assert res.endswith('"/log-spill/*"]]}'), st
    (s3_st,) = [st for st in sts if st["Action"] == ["s3:GetObject", "s3:PutObject"]]
    assert json.dumps(s3_st["Resource"]).endswith('"/decisions/*"]]}')
    (predict,) = [p for k, p in fns.items() if k.startswith("ServingPredict")]
    (upd,) = [st for st in statements(predict) if st["Action"] == "dynamodb:UpdateItem"]
    assert upd["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["pointer#candidate"]}}
