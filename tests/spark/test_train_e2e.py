"""End to end on a small generated month: train -> ONNX -> parity -> profile -> S3 (moto) ->
MLflow (sqlite) -> champion pointer (moto DynamoDB); then batch scoring with the artifact and the
CLI failure paths. The LocalStack end-to-end run is the lead's; here S3/DynamoDB are moto."""

import hashlib
import json

import boto3
import numpy as np
import pytest
from moto import mock_aws

from driftstack.contract import features as F
from driftstack.adapters import registry
from driftstack.data.generate import write_month
from driftstack.data.tlc import read_tlc
from spark_jobs import score_batch, train, verify
from spark_jobs.pipeline import GBTParams
from spark_jobs.publish import MlflowSettings

pytestmark = pytest.mark.spark
BUCKET, TABLE = "driftstack-test-models", "driftstack-test-models-table"


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE",
                    "MLFLOW_TRACKING_URI", "DRIFTSTACK_MLFLOW_ARTIFACTS"):
            mp.delenv(var, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        with mock_aws():
            boto3.client("s3").create_bucket(Bucket=BUCKET)
            boto3.client("dynamodb").create_table(
                TableName=TABLE, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
            yield tmp_path_factory.mktemp("e2e")


def _config(tmp, data, **over):
    cfg = dict(data=str(data), bucket=BUCKET, output_dir=str(tmp / "run"), models_table=TABLE,
               params=GBTParams(max_iter=8, max_depth=4), latency_runs=200,
               mlflow=MlflowSettings(tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
                                     artifact_location=str(tmp / "mlartifacts")))
    cfg.update(over)
    return train.TrainConfig(**cfg)


@pytest.fixture(scope="module")
def trained(spark, aws):
    data = write_month(aws / "data", "2023-01", rows=5000, seed=21)
    return data, train.run(_config(aws, data))


def test_training_publishes_a_verified_artifact(trained):
    data, res = trained
    assert res["status"] == "ok"
    assert res["parity"]["passed"] and res["parity"]["max_abs_diff"] <= 1e-3
    assert res["parity"]["rows"] == res["rows"]["holdout"]  # fewer than 10,000: all of them
    assert res["metrics"]["r2"] > 0.8 and res["metrics"]["rmse"] < 8
    assert res["latency"]["single_row_p50_ms"] > 0
    assert res["prefix"] == registry.artifact_prefix("driftstack-fare", res["sha256"])

    s3 = boto3.client("s3")
    body = s3.get_object(Bucket=BUCKET, Key=res["prefix"] + "model.onnx")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == res["sha256"]
    meta = json.loads(s3.get_object(Bucket=BUCKET, Key=res["prefix"] + "metadata.json")["Body"].read())
    assert meta["sha256"] == res["sha256"] and meta["version"] == "1" and meta["model_name"] == "driftstack-fare"
    assert meta["contract_hash"] == F.contract_hash()
    assert set(meta["metrics"]["holdout"]) >= {"rmse", "mae", "r2", "mape"}
    assert meta["parity"]["max_abs_diff"] == res["parity"]["max_abs_diff"]
    assert meta["latency"]["single_row_p99_ms"] >= meta["latency"]["single_row_p50_ms"]
    assert meta["data"]["rows"]["train"] > meta["data"]["rows"]["holdout"] > 0
    assert meta["data"]["window"]["train"]["to"] <= meta["data"]["window"]["holdout"]["from"]  # time split
    assert meta["data"]["validation"]["rows_dropped"] > 0
    assert {"spark", "onnx", "onnxruntime"} <= set(meta["versions"])
    assert meta["hyper_params"]["max_iter"] == 8 and meta["training_seconds"] > 0

    prof = json.loads(s3.get_object(Bucket=BUCKET, Key=res["prefix"] + "profile.json")["Body"].read())
    assert set(prof["features"]) == set(F.FEATURE_NAMES) and "prediction" in prof
    assert prof["contract_hash"] == F.contract_hash()

    # the artifact predicts like the reported metrics on the holdout rows
    sess = verify.session(body)
    k = read_tlc(data).kept()
    pred = verify.predict(sess, k.features)
    assert np.sqrt(np.mean((pred - k.target) ** 2)) < 8


def test_mlflow_version_alias_and_pointer(trained, aws):
    from mlflow import MlflowClient

    _, res = trained
    client = MlflowClient(tracking_uri=res["mlflow"]["tracking_uri"], registry_uri=res["mlflow"]["tracking_uri"])
    mv = client.get_model_version_by_alias("driftstack-fare", "champion")
    assert str(mv.version) == "1" and mv.tags["sha256"] == res["sha256"]
    run = client.get_run(res["mlflow"]["run_id"])
    assert run.data.params["max_iter"] == "8" and "holdout_rmse" in run.data.metrics
    ptr = registry.read_pointer(boto3.resource("dynamodb").Table(TABLE))
    assert (ptr.version, ptr.prefix, ptr.sha256, ptr.bucket) == ("1", res["prefix"], res["sha256"], BUCKET)


def test_second_model_does_not_steal_the_champion(trained, aws):
    from mlflow import MlflowClient

    data, first = trained
    res = train.run(_config(aws, data, output_dir=str(aws / "run2"),
                            params=GBTParams(max_iter=3, max_depth=3)))
    assert res["version"] == "2" and res["sha256"] != first["sha256"]
    assert res["champion_pointer"]["written"] is False
    client = MlflowClient(tracking_uri=res["mlflow"]["tracking_uri"], registry_uri=res["mlflow"]["tracking_uri"])
    assert str(client.get_model_version_by_alias("driftstack-fare", "champion").version) == "1"
    assert registry.read_pointer(boto3.resource("dynamodb").Table(TABLE)).version == "1"


def test_batch_scoring_with_the_published_artifact(spark, trained, aws):
    import pandas as pd

    data, res = trained
    out = aws / "scored"
    r = score_batch.score(spark, f"s3://{BUCKET}/{res['prefix']}", str(data), str(out))
    assert r["sha256"] == res["sha256"] and r["model_version"] == "1"
    k = read_tlc(data).kept()
    assert r["rows"] == len(k) == r["validation"]["rows_out"]
    scored = pd.read_parquet(out)
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=res["prefix"] + "model.onnx")["Body"].read()
    expected = verify.predict(verify.session(body), k.features)
    np.testing.assert_allclose(np.sort(scored["prediction"].to_numpy()), np.sort(expected), atol=1e-5)


def test_batch_scoring_refuses_a_tampered_artifact(trained):
    _, res = trained
    s3 = boto3.client("s3")
    s3.put_object(Bucket=BUCKET, Key="models/evil/x/model.onnx", Body=b"not the model")
    meta = {"sha256": res["sha256"]}
    s3.put_object(Bucket=BUCKET, Key="models/evil/x/metadata.json", Body=json.dumps(meta).encode())
    with pytest.raises(score_batch.ArtifactError, match="sha256 mismatch"):
        score_batch.load_artifact(f"s3://{BUCKET}/models/evil/x/")


def test_cli_parity_failure_exits_3_and_publishes_nothing(trained, aws, capsys):
    data, _ = trained
    before = boto3.client("s3").list_objects_v2(Bucket=BUCKET)["KeyCount"]
    code = train.main(["--data", str(data), "--bucket", BUCKET, "--max-iter", "2", "--max-depth", "2",
                       "--parity-tolerance", "1e-12", "--output-dir", str(aws / "run3"),
                       "--mlflow-tracking-uri", f"sqlite:///{aws / 'mlflow.db'}", "--latency-runs", "10"])
    assert code == train.EXIT_PARITY
    out = capsys.readouterr()
    assert "parity gate failed" in out.err
    assert json.loads(out.out.strip().splitlines()[-1])["status"] == "parity_failed"
    assert boto3.client("s3").list_objects_v2(Bucket=BUCKET)["KeyCount"] == before


def test_cli_bad_schema_exits_2_naming_the_column(trained, aws, capsys):
    import pyarrow.parquet as pq

    data, _ = trained
    bad = aws / "bad.parquet"
    pq.write_table(pq.read_table(data).drop(["fare_amount"]), bad)
    code = train.main(["--data", str(bad), "--bucket", BUCKET, "--result-json", str(aws / "bad.json")])
    assert code == train.EXIT_BAD_INPUT
    assert "'fare_amount': missing" in capsys.readouterr().err
    assert json.loads((aws / "bad.json").read_text())["status"] == "bad_input"
