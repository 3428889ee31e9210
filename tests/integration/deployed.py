"""The whole stack deployed with cdklocal for one test module, with the clients tests need.

    @pytest.fixture(scope="module")
    def api(localstack):
        with deployed(localstack, "DriftstackXTest", {"model_refresh_seconds": "2"}) as api:
            yield api
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import json
from datetime import datetime, timedelta, timezone

import boto3
import requests

from driftstack.adapters import archive
from driftstack.tools import deploy


@dataclass
class Deployed:
    endpoint: str
    stack: str
    outputs: dict[str, str]
    context: dict[str, str]
    http: requests.Session  # carries the API key
    s3: Any = field(default_factory=lambda: boto3.client("s3"))
    ddb: Any = field(default_factory=lambda: boto3.client("dynamodb"))
    lam: Any = field(default_factory=lambda: boto3.client("lambda"))
    sfn: Any = field(default_factory=lambda: boto3.client("stepfunctions"))
    sqs: Any = field(default_factory=lambda: boto3.client("sqs"))

    @property
    def base(self) -> str:
        """The API's /v1 root through LocalStack's execute-api route."""
        return f"{self.endpoint}/_aws/execute-api/{self.outputs['ApiId']}/{self.outputs['ApiStage']}/v1"

    def url(self, path: str) -> str:
        return self.base + path

    @property
    def bucket(self) -> str:
        return self.outputs["BucketName"]

    @property
    def fn(self) -> str:
        return self.outputs["PredictFunctionName"]

    @property
    def models(self):
        return boto3.resource("dynamodb").Table(self.outputs["ModelsTableName"])

    @property
    def history(self):
        return boto3.resource("dynamodb").Table(self.outputs["HistoryTableName"])

    def health(self) -> dict:
        return self.http.get(self.url("/health"), timeout=30).json()

    # -- the request log
    @property
    def layout(self) -> archive.Layout:
        return archive.Layout(bucket=self.bucket, slot_minutes=int(self.outputs["ArchiveSlotMinutes"]))

    def archive_now(self) -> dict:
        """Run the deployed log archiver now (what its schedule does); returns its drain report."""
        resp = self.lam.invoke(FunctionName=self.outputs["ArchiverFunctionName"], Payload=b"{}")
        payload = json.loads(resp["Payload"].read() or b"null")
        assert not resp.get("FunctionError"), payload
        return payload

    def archived(self, kind: str = archive.REQUESTS, hours: float = 2.0) -> dict[str, dict]:
        """Drain the log queue, then the archive's records of the last ``hours`` by request id."""
        self.archive_now()
        now = datetime.now(timezone.utc)
        return {r["request_id"]: r for r in archive.read_records(
            self.s3, self.layout, kind, now - timedelta(hours=hours), now + timedelta(minutes=5))}


@contextmanager
def deployed(endpoint: str, stack: str, context: dict[str, str] | None = None) -> Iterator[Deployed]:
    context = dict(context or {})
    outputs = deploy.deploy(endpoint, stack=stack, context=context)
    key = boto3.client("apigateway").get_api_key(apiKey=outputs["ApiKeyId"], includeValue=True)["value"]
    http = requests.Session()
    http.headers.update({"x-api-key": key, "content-type": "application/json"})
    try:
        yield Deployed(endpoint=endpoint, stack=stack, outputs=outputs, context=context, http=http)
    finally:
        http.close()
        try:
            deploy.destroy(endpoint, stack=stack)
        except deploy.DeployError as exc:  # teardown must not hide the test result
            print(f"destroy failed: {exc}")
