"""Promotion as a canary (PROMOTE_CANARY_SHARE): the retrain promote step starts a canary instead of
switching the champion pointer, recorded in the decision record (outcome "canary"); a champion that
moved meanwhile still wins (nothing started).  How the canary evaluation finishes it:
test_rollout_promotion_flow.py."""

from __future__ import annotations

import boto3
import pytest
from test_drift_retrain_handlers import BUCKET, Ctx, _event, app  # noqa: F401

from driftstack.adapters import decision_store
from driftstack.usecases import promotion as P
from driftstack.adapters import registry
from driftstack.adapters import rollout as ro


@pytest.fixture
def canary_app(app, monkeypatch):  # noqa: F811
    monkeypatch.setenv("PROMOTE_CANARY_SHARE", "0.2")
    models = boto3.resource("dynamodb").Table("models")
    registry.write_pointer(models, model_name="fare", version="1", bucket=BUCKET, prefix="models/fare/aaaa/",
                           sha256="a" * 64, expected_version=None)
    return app, models


def test_promote_starts_a_canary_and_leaves_the_champion(canary_app):
    app, models = canary_app
    out = app.promote(_event(), Ctx())
    assert out["outcome"] == P.CANARY and out["rollout"]["mode"] == ro.CANARY and out["rollout"]["share"] == 0.2
    assert registry.read_pointer(models).version == "1"           # the incumbent keeps 80 %
    active = ro.read(models)
    assert (active.pointer.version, active.incumbent_version, active.reason) == ("2", "1", "promotion decision run-1")
    assert active.run_id == "run-1"                               # the evaluation finishes this run's promotion
    rec = decision_store.load_record(boto3.client("s3"), BUCKET, "run-1")
    assert rec["outcome"] == P.CANARY and rec["rollout"]["rollout_id"] == active.rollout_id
    assert "mlflow_alias" not in rec and "promoted_at" not in rec  # not promoted yet: the canary decides


def test_promote_as_canary_refuses_when_the_champion_moved(canary_app):
    app, models = canary_app
    registry.write_pointer(models, model_name="fare", version="7", bucket=BUCKET, prefix="models/fare/7777/",
                           sha256="7" * 64, expected_version="1")
    with pytest.raises(ro.RolloutConflict, match="champion is at version 7, not 1"):
        app.promote(_event(version="1"), Ctx())
    assert ro.read(models) is None and registry.read_pointer(models).version == "7"
