"""Every failure to reach LocalStack/AWS ends as one line on stderr and exit code 3 — never a traceback."""

import json
import socket

import pytest
from click.testing import CliRunner

from driftstack.tools.cli import EXIT_NOT_READY, cli
from driftstack.tools.cli.errors import as_click_error

OUTPUTS = {"BucketName": "artifacts", "ModelsTableName": "models", "HistoryTableName": "history",
           "StateMachineArn": "arn:aws:states:us-east-1:000000000000:stateMachine:retrain",
           "DriftCheckFunctionName": "drift", "CanaryEvalFunctionName": "canary", "ApiId": "api1",
           "ApiStage": "prod", "ApiKeyId": "key1", "AlarmNames": "A1", "ArchiveSlotMinutes": "5"}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def deployed_nothing_listening(monkeypatch, tmp_path):
    """Stack outputs present (as after `driftstack up`), LocalStack gone: nothing on the port."""
    from driftstack.tools import api_client

    url = f"http://127.0.0.1:{closed_port()}"
    for var, value in {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "1",
                       "AWS_RETRY_MODE": "standard", "DRIFTSTACK_STATE_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setattr(api_client, "STATE_DIR", tmp_path)
    (tmp_path / "cdk-outputs-Driftstack.json").write_text(json.dumps({"Driftstack": OUTPUTS}))
    return url


AWS_COMMANDS = [["status"], ["status", "--json"], ["decisions"], ["decisions", "--json"], ["decisions", "pending"],
                ["decisions", "show", "run-1"], ["approve", "run-1"], ["reject", "run-1", "--reason", "no"],
                ["watch", "--once"], ["watch", "list"], ["watch", "checks"], ["drift-check"], ["drift-check", "--local"],
                ["report"], ["predict", "--trip-distance", "2"], ["traffic", "--count", "1"], ["rollout", "show"],
                ["rollout", "evaluate"], ["rollout", "rollback", "--reason", "x"]]


@pytest.mark.parametrize("command", AWS_COMMANDS, ids=" ".join)
def test_unreachable_localstack_is_one_line_and_exit_3(deployed_nothing_listening, command):
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == EXIT_NOT_READY, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: LocalStack is not reachable at {deployed_nothing_listening}")
    assert "`driftstack up`" in lines[0]


def test_endpoint_option_overrides_the_environment(deployed_nothing_listening):
    other = f"http://127.0.0.1:{closed_port()}"
    result = CliRunner().invoke(cli, ["--endpoint-url", other, "decisions"])
    assert result.exit_code == EXIT_NOT_READY and f"not reachable at {other}" in result.stderr


def test_debug_shows_the_traceback(deployed_nothing_listening):
    result = CliRunner().invoke(cli, ["--debug", "decisions"])
    assert result.exit_code == 1 and result.exception is not None  # raised, not translated


@pytest.fixture
def aws_without_setup(monkeypatch, tmp_path):
    """Real AWS as the target (no endpoint, no LocalStack state), nothing configured."""
    from driftstack.tools import aws_target

    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(aws_target, "localstack_url_from_state", lambda: None)
    return tmp_path


@pytest.mark.parametrize("args, expected", [
    (["--region", "eu-west-1", "decisions"], "no AWS credentials found"),
    (["decisions"], "no AWS region configured"),
    (["--profile", "nope", "--region", "eu-west-1", "decisions"], "profile (nope) could not be found"),
])
def test_aws_not_configured_is_one_line_and_exit_3(aws_without_setup, monkeypatch, args, expected):
    monkeypatch.setenv("AWS_REGION", "x")  # pinned for monkeypatch: the CLI exports its region
    monkeypatch.delenv("AWS_REGION")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == EXIT_NOT_READY, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr, result.stderr


def test_usage_errors_keep_exit_2(deployed_nothing_listening):
    assert CliRunner().invoke(cli, ["decisions", "--limit", "0"]).exit_code == 2
    assert CliRunner().invoke(cli, ["no-such-command"]).exit_code == 2


def test_missing_stack_resource_and_unexpected_errors():
    from botocore.exceptions import ClientError

    from driftstack.tools.aws_target import Target

    missing = ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "Requested resource not found"}},
                          "Query")
    err = as_click_error(missing, Target("http://localhost:4566"))
    assert err.exit_code == EXIT_NOT_READY and "`driftstack deploy`" in err.message
    err = as_click_error(ValueError("bad\nsecond line"))
    assert err.exit_code == 1 and err.message == "ValueError: bad (rerun with --debug for the traceback)"
