"""The publish step on its own (no Spark): S3 layout via moto, MLflow sqlite, champion rules."""

import hashlib
import json

import boto3
import onnx
import pytest
from onnx import TensorProto, helper

from driftstack.adapters import registry
from spark_jobs.publish import MlflowSettings, PublishRequest, publish


def tiny_model(bias: float) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])
    y = helper.make_tensor_value_info("prediction", TensorProto.FLOAT, [None, 1])
    b = helper.make_tensor("b", TensorProto.FLOAT, [1], [bias])
    g = helper.make_graph([helper.make_node("Add", ["x", "b"], ["prediction"])], "tiny", [x], [y], [b])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def env(moto, monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    moto.models_table()
    yield tmp_path


def request(tmp, bias, **over):
    m = tiny_model(bias)
    kw = dict(model_name="tiny", model_bytes=m.SerializeToString(), metadata={"contract_hash": "c"},
              profile={"features": {}}, bucket="tiny-models", params={"max_iter": 1}, metrics={"holdout_rmse": 1.0},
              mlflow=MlflowSettings(tracking_uri=f"sqlite:///{tmp / 'm.db'}", artifact_location=str(tmp / "art")),
              create_bucket=True, models_table="models")
    kw.update(over)
    return PublishRequest(**kw), m


def test_publish_layout_versions_and_champion(env):
    req, m = request(env, 1.0)
    first = publish(req, onnx_model=m)
    sha = hashlib.sha256(req.model_bytes).hexdigest()
    assert first["sha256"] == sha and first["prefix"] == registry.artifact_prefix("tiny", sha)
    s3 = boto3.client("s3")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="tiny-models")["Contents"]}
    assert keys == {first["prefix"] + f for f in (registry.MODEL_FILE, registry.METADATA_FILE, registry.PROFILE_FILE)}
    meta = json.loads(s3.get_object(Bucket="tiny-models", Key=first["prefix"] + registry.METADATA_FILE)["Body"].read())
    assert (meta["version"], meta["sha256"], meta["contract_hash"]) == ("1", sha, "c")
    assert first["mlflow"]["champion_alias_set"] and first["champion_pointer"] == {"written": True, "version": "1"}

    req2, m2 = request(env, 2.0)
    second = publish(req2, onnx_model=m2)
    assert second["version"] == "2" and not second["mlflow"]["champion_alias_set"]
    assert second["champion_pointer"]["written"] is False and second["champion_pointer"]["current_version"] == "1"
    assert registry.read_pointer(boto3.resource("dynamodb").Table("models")).sha256 == sha


def test_missing_bucket_is_a_clear_error(env):
    req, m = request(env, 1.0, create_bucket=False, bucket="nope")
    with pytest.raises(RuntimeError, match="'nope' is not reachable"):
        publish(req, onnx_model=m)


def test_without_mlflow_the_version_is_the_sha_prefix(env):
    req, m = request(env, 3.0, mlflow=MlflowSettings(enabled=False), models_table=None)
    res = publish(req)
    assert res["version"] == res["sha256"][:16] and res["mlflow"] is None
