"""cdklocal deploys a CDK app to the host LocalStack, and a redeploy after a code change updates
the function (the update path)."""

import json
from pathlib import Path

import pytest

from driftstack.tools import deploy

pytestmark = [pytest.mark.localstack, pytest.mark.slow]

HELLO_APP = Path(__file__).resolve().parent.parent / "cdk_apps" / "hello"
HANDLER = 'def handler(event, context):\n    return {"version": "%s"}\n'


def _invoke(lambda_client, name):
    resp = lambda_client.invoke(FunctionName=name, Payload=b"{}")
    assert "FunctionError" not in resp, resp["Payload"].read()
    return json.loads(resp["Payload"].read())


def test_deploy_then_redeploy_updates_code(localstack, aws_client, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(HANDLER % "v1")
    ctx = {"code_dir": str(code)}

    outputs = deploy.deploy(localstack, app_dir=HELLO_APP, stack="DriftstackHello", context=ctx,
                            build=False)
    name = outputs["FunctionName"]
    lam = aws_client("lambda")
    assert _invoke(lam, name) == {"version": "v1"}

    (code / "app.py").write_text(HANDLER % "v2")
    outputs = deploy.deploy(localstack, app_dir=HELLO_APP, stack="DriftstackHello", context=ctx,
                            build=False)
    assert outputs["FunctionName"] == name
    assert _invoke(lam, name) == {"version": "v2"}

    deploy.destroy(localstack, app_dir=HELLO_APP, stack="DriftstackHello", context=ctx)
    names = [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    assert name not in names
