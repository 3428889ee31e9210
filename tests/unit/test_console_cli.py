"""`driftstack console`: the CLI's conventions (exit 3 when the stack or LocalStack is not there), the
URL it prints, and the app it serves on 127.0.0.1."""

from __future__ import annotations

import json

import boto3
import pytest
from click.testing import CliRunner
from test_cli_errors import deployed_nothing_listening  # noqa: F401 - the fixture: outputs, nothing listening

from driftstack.tools import aws_target
from driftstack.tools.cli import EXIT_NOT_READY, cli
from driftstack.tools.cli.root import State
from driftstack.tools.console import app as console_app


@pytest.mark.usefixtures("deployed_nothing_listening")
def test_not_deployed_exits_3(tmp_path):
    (tmp_path / "cdk-outputs-Driftstack.json").unlink()
    result = CliRunner().invoke(cli, ["console", "--no-browser"])
    assert result.exit_code == EXIT_NOT_READY and "deploy first" in result.output


@pytest.mark.usefixtures("deployed_nothing_listening")
def test_localstack_gone_exits_3_in_one_line():
    result = CliRunner().invoke(cli, ["console", "--no-browser"])
    assert result.exit_code == EXIT_NOT_READY, result.output
    assert result.output.startswith("error: LocalStack is not reachable") and len(result.output.splitlines()) == 1


@pytest.fixture
def served(moto, monkeypatch):
    """The console command against a moto stack; `serve` replaced by a recorder that reports ready."""
    arn = boto3.client("stepfunctions").create_state_machine(
        name="retrain", definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/sfn")["stateMachineArn"]
    outputs = {"StateMachineArn": arn, "HistoryTableName": "history", "ModelsTableName": "models", "BucketName": "b"}
    monkeypatch.setattr(State, "outputs", lambda self: outputs)
    monkeypatch.setattr(aws_target, "localstack_url_from_state", lambda: None)  # moto: "AWS"
    calls = []

    def fake_serve(app, port, on_ready=None):
        calls.append((app, port))
        on_ready(f"http://127.0.0.1:{port}")
    monkeypatch.setattr(console_app, "serve", fake_serve)
    monkeypatch.setattr(console_app, "DEFAULT_PORT", console_app.free_port())  # 8765 may be someone's console
    return calls


def test_prints_the_local_url_default_port_and_port_0(served):
    result = CliRunner().invoke(cli, ["--region", "us-east-1", "console", "--no-browser"])
    assert result.exit_code == 0, result.output
    assert served[0][1] == console_app.DEFAULT_PORT
    assert result.output.startswith(f"driftstack console: http://127.0.0.1:{console_app.DEFAULT_PORT}")
    result = CliRunner().invoke(cli, ["--region", "us-east-1", "console", "--no-browser", "--port", "0",
                                      "--mlflow-url", "http://127.0.0.1:5999"])
    port = served[1][1]
    assert result.exit_code == 0 and port not in (0, console_app.DEFAULT_PORT)
    from starlette.testclient import TestClient
    page = TestClient(served[1][0]).get("/retraining").text
    assert 'href="http://127.0.0.1:5999"' in page and "API docs" not in page  # no API in moto: no docs link


def test_a_missing_state_machine_exits_3(served):
    boto3.client("stepfunctions").delete_state_machine(
        stateMachineArn="arn:aws:states:us-east-1:123456789012:stateMachine:retrain")
    result = CliRunner().invoke(cli, ["--region", "us-east-1", "console", "--no-browser"])
    assert result.exit_code == EXIT_NOT_READY and "not deployed" in result.output, result.output


def test_a_port_in_use_is_one_line_and_exit_1(served):
    import socket

    from driftstack.tools.cli import EXIT_FAILED

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["--region", "us-east-1", "console", "--no-browser", "--port", str(port)])
    assert result.exit_code == EXIT_FAILED and not served
    assert result.output.startswith(f"error: cannot listen on 127.0.0.1:{port}") and "--port 0" in result.output
