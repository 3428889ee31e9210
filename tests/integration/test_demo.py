"""The demo flow end to end (small sizes), with its outcomes checked on the deployed system itself,
not from the demo's printout: a promotion happened, the API serves the new version, and the
decision record and the drift report exist in S3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import requests

from driftstack.domain import decision
from driftstack.adapters import decision_store
from driftstack.tools import deploy
from driftstack.adapters import registry

pytestmark = [pytest.mark.localstack, pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
STACK = "DriftstackDemoTest"


def _cli(endpoint: str, env: dict, *args: str):
    """`driftstack --endpoint-url … --stack … ARGS --json` as a person runs it; its JSON document."""
    proc = subprocess.run([sys.executable, "-m", "driftstack.tools.cli", "--endpoint-url", endpoint, "--stack", STACK,
                           *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"driftstack {' '.join(args)} -> {proc.returncode}: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout)


def test_demo_runs_the_whole_loop(localstack, tmp_path):
    env = {**os.environ, "DRIFTSTACK_STATE_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "driftstack.tools.demo", "--endpoint", localstack, "--stack", STACK,
         "--rows", "6000", "--max-iter", "10", "--normal-requests", "300", "--drift-requests", "600", "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])

    outputs = json.loads((tmp_path / f"cdk-outputs-{STACK}.json").read_text())[STACK]
    s3 = boto3.client("s3")
    bucket = outputs["BucketName"]
    try:
        # The champion pointer moved to a new version ...
        pointer = registry.read_pointer(boto3.resource("dynamodb").Table(outputs["ModelsTableName"]))
        assert pointer.version != summary["champion_before"]
        # ... the decision record in S3 says why ...
        record = decision_store.load_record(s3, bucket, summary["decision_record"].rsplit("/", 1)[-1][:-5])
        assert record["outcome"] == decision.PROMOTED, record.get("reasons")
        assert record["evaluation"]["challenger"]["version"] == pointer.version
        # ... the drift report exists ...
        report_key = summary["drift_report"].split(f"{bucket}/", 1)[1]
        assert b"<svg" in s3.get_object(Bucket=bucket, Key=report_key)["Body"].read()
        # ... and a real request through API Gateway is answered by the new champion.
        key = boto3.client("apigateway").get_api_key(apiKey=outputs["ApiKeyId"], includeValue=True)["value"]
        base = f"{localstack}/_aws/execute-api/{outputs['ApiId']}/{outputs['ApiStage']}/v1"
        health = requests.get(base + "/health", headers={"x-api-key": key}, timeout=30).json()
        assert health["model_version"] == pointer.version
        # ... and the commands the demo's last line names see the same through the deployed stack.
        runs = _cli(localstack, env, "watch", "list", "--json")
        assert runs[0]["outcome"] == decision.PROMOTED and runs[0]["challenger_version"] == pointer.version, runs[0]
        status = _cli(localstack, env, "status", "--json")
        assert status["health"]["model_version"] == pointer.version, status["health"]
    finally:
        from driftstack.tools.demo import _empty_bucket

        _empty_bucket(s3, bucket)
        try:
            deploy.destroy(localstack, stack=STACK, context={"retrain_mlflow": "{}"})
        except deploy.DeployError as exc:  # teardown must not hide the result
            print(f"destroy failed: {exc}")
