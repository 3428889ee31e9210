"""moto for the unit tests: fake credentials, every boto3 call in the test served in memory.

    def test_x(moto):
        s3 = moto.bucket("artifacts")
        models = moto.models_table()      # pk            (registry pointers, rollouts)
        history = moto.history_table()    # pk + sk       (drift checks, decisions)
"""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws


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
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        yield MotoAws()
