"""CLI: help everywhere, clear errors with meaningful exit codes when the environment is not ready."""

import json

import pytest
from click.testing import CliRunner

from driftstack.tools import cli as cli_mod
from driftstack.tools.cli import cli


@pytest.fixture
def runner(monkeypatch, tmp_path):
    monkeypatch.setenv("DRIFTSTACK_STATE_DIR", str(tmp_path))
    # The CLI points boto3 at the endpoint through os.environ (setdefault); pin those variables here
    # so monkeypatch restores them and later moto tests in this process are not sent to LocalStack.
    for var in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(var, "http://127.0.0.1:9" if var == "AWS_ENDPOINT_URL" else "testing")
    import driftstack.tools.api_client as api_client
    monkeypatch.setattr(api_client, "STATE_DIR", tmp_path)
    return CliRunner()


@pytest.mark.parametrize("command", [[], ["up"], ["down"], ["status"], ["deploy"], ["train"], ["predict"],
                                     ["traffic"], ["drift-check"], ["watch"], ["decisions"], ["approve"],
                                     ["reject"], ["report"]])
def test_help(runner, command):
    result = runner.invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_predict_without_stack_says_what_to_do(runner):
    result = runner.invoke(cli, ["predict", "--trip-distance", "2.5"])
    assert result.exit_code == cli_mod.EXIT_NOT_READY
    assert "deploy first" in result.output


def test_predict_rejects_bad_json_file(runner, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = runner.invoke(cli, ["predict", "--json", str(bad)])
    assert result.exit_code == 2
    assert "not valid JSON" in result.output


def test_predict_flags_build_the_request(runner, monkeypatch):
    sent = {}

    class FakeClient:
        def predict(self, feats):
            sent.update(feats)
            return 200, {"predicted_fare": 12.3}

    monkeypatch.setattr(cli_mod, "_client", lambda ctx: FakeClient())
    result = runner.invoke(cli, ["predict", "--trip-distance", "2.5", "--ratecodeid", "2",
                                 "--pickup-borough", "Queens"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"predicted_fare": 12.3}
    assert sent == {"trip_distance": 2.5, "RatecodeID": 2, "pickup_borough": "Queens"}


def test_predict_api_error_exits_1(runner, monkeypatch):
    class FakeClient:
        def predict(self, feats):
            return 422, {"errors": [{"field": "trip_distance"}]}

    monkeypatch.setattr(cli_mod, "_client", lambda ctx: FakeClient())
    result = runner.invoke(cli, ["predict", "--trip-distance", "500"])
    assert result.exit_code == 1
    assert "trip_distance" in result.output


def test_unknown_choice_is_a_usage_error(runner):
    result = runner.invoke(cli, ["predict", "--pickup-borough", "Atlantis"])
    assert result.exit_code == 2
    assert "Atlantis" in result.output


@pytest.mark.parametrize("command", [["drift-check"], ["watch", "--once"], ["decisions"], ["report"],
                                     ["approve", "run-1"], ["train", "--rows", "10"]])
def test_loop_commands_without_stack_exit_3(runner, command):
    result = runner.invoke(cli, command)
    assert result.exit_code == cli_mod.EXIT_NOT_READY, result.output
    assert "deploy first" in result.output


def test_reject_requires_a_reason(runner):
    result = runner.invoke(cli, ["reject", "run-1"])
    assert result.exit_code == 2
    assert "--reason" in result.output
