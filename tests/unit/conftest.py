"""Shared unit-test fixtures: moto (fake credentials, every boto3 call served in memory) and the
synthesized CDK stack.

    def test_x(moto):
        s3 = moto.bucket("artifacts")
        models = moto.models_table()      # pk            (registry pointers, rollouts)
        history = moto.history_table()    # pk + sk       (drift checks, decisions)
"""

from __future__ import annotations

import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[2]


class MotoAws:
    def bucket(self, name: str):
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=name)
        return s3

    def models_table(self, name: str = "models"):
        return self._table(name, ("pk",))

    def history_table(self, name: str = "history"):
        return self._table(name, ("pk", "sk"))

    @staticmethod
    def _table(name: str, keys: tuple[str, ...]):
        return boto3.resource("dynamodb").create_table(
            TableName=name, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in zip(keys, ("HASH", "RANGE"))],
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in keys])


@pytest.fixture
def moto(monkeypatch):
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1",
                 # moto's SQS is not safe under concurrent receives, and has one server (no long polls)
                 "LOG_DRAIN_THREADS": "1", "LOG_DRAIN_WAIT_SECONDS": "0"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        yield MotoAws()


@pytest.fixture(scope="session")
def cdk_stack(tmp_path_factory):
    """Factory: cdk_stack(**context) -> (app, the whole stack "T"), built with stand-in layer folders
    (synth only needs them to exist, so the CDK unit tests do not need `make layers`)."""
    cdk = pytest.importorskip("aws_cdk")
    sys.path.insert(0, str(ROOT / "cdk"))
    from driftstack_cdk import serving
    from driftstack_cdk.stack import DriftstackStack

    layers = tmp_path_factory.mktemp("layers")
    for name in ("deps", "shared"):
        (layers / name / "python").mkdir(parents=True)
        (layers / name / "python" / "marker.txt").write_text(name)

    def make(**context):
        original, serving.LAYERS = serving.LAYERS, layers  # layer assets are staged while constructing
        try:
            app = cdk.App(outdir=str(tmp_path_factory.mktemp("cdkout")), context=context)
            return app, DriftstackStack(app, "T", env=cdk.Environment(account="000000000000", region="us-east-1"))
        finally:
            serving.LAYERS = original

    return make
