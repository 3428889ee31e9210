"""Apps that are not ours, deployed the way their authors would, on other Lambda runtimes.

- an order pipeline written like LocalStack's own samples: plain boto3 create-function (python3.9,
  python3.10, nodejs20.x, python3.13) + a Step Functions state machine (Task, Map, Task, Task);
- a REST API made with Chalice, deployed with `chalice deploy` (the runtime Chalice picks: the
  Python running it, python3.11 here) and called through API Gateway.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.localstack

APPS = Path(__file__).resolve().parent / "apps"
ROLE = "arn:aws:iam::000000000000:role/sample-app"


def zip_files(*paths: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in paths:
            zf.write(p, p.name)
    return buf.getvalue()


def test_step_functions_pipeline_on_four_runtimes(aws_client):
    lam, sfn, s3 = aws_client("lambda"), aws_client("stepfunctions"), aws_client("s3")
    app = APPS / "sfn_pipeline"
    suffix = uuid.uuid4().hex[:6]
    bucket = f"receipts-{suffix}"
    s3.create_bucket(Bucket=bucket)
    functions = {"Split": ("split.py", "split.handler", "python3.9"),
                 "Price": ("price.py", "price.handler", "python3.10"),
                 "Total": ("total.js", "total.handler", "nodejs20.x"),
                 "Audit": ("audit.py", "audit.handler", "python3.13")}
    arns = {}
    try:
        for key, (file, handler, runtime) in functions.items():
            arns[key] = lam.create_function(
                FunctionName=f"sample-{key.lower()}-{suffix}", Runtime=runtime, Role=ROLE, Handler=handler,
                Code={"ZipFile": zip_files(app / file)}, Timeout=30,
                Environment={"Variables": {"RECEIPTS_BUCKET": bucket}})["FunctionArn"]
        for arn in arns.values():
            lam.get_waiter("function_active_v2").wait(FunctionName=arn, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
        definition = (app / "state_machine.json").read_text()
        for key, arn in arns.items():
            definition = definition.replace("${%sArn}" % key, arn)
        machine = sfn.create_state_machine(name=f"orders-{suffix}", definition=definition,
                                           roleArn="arn:aws:iam::000000000000:role/sample-sfn")["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=machine, input=json.dumps(
            {"order_id": "o-1", "items": {"apple": 4, "pear": 2, "melon": 1}}))["executionArn"]
        deadline = time.monotonic() + 120
        while (desc := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "execution still running after 120 s"
            time.sleep(0.5)
        assert desc["status"] == "SUCCEEDED", sfn.get_execution_history(executionArn=execution)["events"][-3:]
        out = json.loads(desc["output"])
        assert out["total_cents"] == 4 * 50 + 2 * 75 + 320
        assert out["audited_on"] == "3.13"
        receipt = out["receipt"]
        assert receipt["lines"] == 3 and receipt["node"].split(".")[0].isdigit()
        assert "/lambda-runtime/nodejs/node_modules/@aws-sdk/client-s3/" in receipt["sdk"]  # the runtime's SDK
        stored = json.loads(s3.get_object(Bucket=bucket, Key="receipts/o-1.json")["Body"].read())
        assert stored["total_cents"] == out["total_cents"]
        assert out["split_on"] == "3.9" and out["priced_on"] == ["3.10"]  # each step on its own runtime
    finally:
        for arn in arns.values():
            lam.delete_function(FunctionName=arn)


def test_chalice_rest_api(localstack, aws_client, tmp_path):
    project = tmp_path / "chalice_api"
    subprocess.run(["cp", "-r", str(APPS / "chalice_api"), str(project)], check=True)
    env = {**os.environ, "AWS_ENDPOINT_URL": localstack, "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    chalice = [str(Path(sys.executable).parent / "chalice")]
    deployed = subprocess.run([*chalice, "deploy", "--stage", "dev"], cwd=project, env=env,
                              capture_output=True, text=True, timeout=300)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    try:
        record = json.loads((project / ".chalice" / "deployed" / "dev.json").read_text())
        resources = {r["name"]: r for r in record["resources"]}
        api_id = resources["rest_api"]["rest_api_id"]
        function = resources["api_handler"]["lambda_arn"]
        runtime = aws_client("lambda").get_function_configuration(FunctionName=function)["Runtime"]
        assert runtime == "python%d.%d" % sys.version_info[:2]
        base = f"{localstack}/_aws/execute-api/{api_id}/api"
        r = requests.get(f"{base}/", timeout=30)
        assert r.status_code == 200 and r.json() == {"hello": "world", "python": runtime[6:]}, r.text
        r = requests.post(f"{base}/todos", json={"title": "ship it"}, timeout=30)
        assert r.status_code == 200 and r.json()["title"] == "ship it", r.text
        assert requests.get(f"{base}/todos/{r.json()['id']}", timeout=30).json()["title"] == "ship it"
        r = requests.post(f"{base}/todos", json={}, timeout=30)
        assert r.status_code == 400 and "title is required" in r.text
        r = requests.get(f"{base}/boto3", timeout=30)
        assert r.status_code == 200 and r.json()["account"] == "000000000000", r.text
    finally:
        subprocess.run([*chalice, "delete", "--stage", "dev"], cwd=project, env=env, capture_output=True, timeout=120)
