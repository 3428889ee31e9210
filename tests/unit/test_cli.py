"""CLI: help everywhere, clear errors with meaningful exit codes when the environment is not ready."""

import json

import pytest
from click.testing import CliRunner

from driftstack.tools import cli as cli_mod
from driftstack.tools.cli import cli
from driftstack.tools.cli.root import State


@pytest.fixture
def runner(monkeypatch, tmp_path):
    monkeypatch.setenv("DRIFTSTACK_STATE_DIR", str(tmp_path))
    # The CLI exports its target into os.environ; pin those variables here so monkeypatch restores
    # them and later moto tests in this process are not sent elsewhere.
    for var in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.setenv(var, "http://127.0.0.1:9" if var == "AWS_ENDPOINT_URL" else "testing")
    from driftstack.tools import api_client
    monkeypatch.setattr(api_client, "STATE_DIR", tmp_path)
    return CliRunner()


@pytest.mark.parametrize("command", [[], ["up"], ["down"], ["status"], ["deploy"], ["destroy"], ["train"],
                                     ["predict"], ["traffic"], ["drift-check"], ["watch"], ["watch", "list"],
                                     ["watch", "checks"], ["decisions"], ["decisions", "pending"], ["approve"],
                                     ["reject"], ["report"], ["rollout"], ["localstack"], ["localstack", "status"]])
def test_help(runner, command):
    result = runner.invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_top_level_help_lists_every_command_on_one_line(runner):
    result = runner.invoke(cli, ["--help"])
    commands = result.output.split("Commands:")[1].strip().splitlines()
    assert {line.split()[0] for line in commands} == set(cli.commands)
    assert all(len(line.split(None, 1)) == 2 and not line.endswith("...") for line in commands)  # one whole line


def test_tools_find_the_repository():
    from driftstack.tools import deploy, localstack_host

    assert (deploy.CDK_DIR / "app.py").exists() and (localstack_host.REPO / "Makefile").exists()


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


def _fake_api(monkeypatch, status_code, body, sent):
    class FakeClient:
        def predict(self, feats):
            sent.update(feats)
            return status_code, body

    monkeypatch.setattr(State, "api", lambda self: FakeClient())


def test_predict_flags_build_the_request(runner, monkeypatch):
    sent = {}
    _fake_api(monkeypatch, 200, {"predicted_fare": 12.3}, sent)
    result = runner.invoke(cli, ["predict", "--trip-distance", "2.5", "--ratecodeid", "2",
                                 "--pickup-borough", "Queens"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"predicted_fare": 12.3}
    assert sent == {"trip_distance": 2.5, "RatecodeID": 2, "pickup_borough": "Queens"}


def test_predict_api_error_exits_1(runner, monkeypatch):
    _fake_api(monkeypatch, 422, {"errors": [{"field": "trip_distance"}]}, {})
    result = runner.invoke(cli, ["predict", "--trip-distance", "500"])
    assert result.exit_code == 1
    assert "trip_distance" in result.output


def test_unknown_choice_is_a_usage_error(runner):
    result = runner.invoke(cli, ["predict", "--pickup-borough", "Atlantis"])
    assert result.exit_code == 2
    assert "Atlantis" in result.output


@pytest.mark.parametrize("command", [["drift-check"], ["watch", "--once"], ["watch", "list"], ["decisions"],
                                     ["decisions", "pending"], ["report"], ["approve", "run-1"],
                                     ["train", "--rows", "10"]])
def test_loop_commands_without_stack_exit_3(runner, command):
    result = runner.invoke(cli, command)
    assert result.exit_code == cli_mod.EXIT_NOT_READY, result.output
    assert "deploy first" in result.output


def test_reject_requires_a_reason(runner):
    result = runner.invoke(cli, ["reject", "run-1"])
    assert result.exit_code == 2
    assert "--reason" in result.output


def test_traffic_drift_preset_is_not_the_aws_profile(runner):
    help_text = runner.invoke(cli, ["traffic", "--help"]).output
    assert "--drift, --scenario" in help_text and "  --profile" not in help_text
    assert "--profile NAME" in runner.invoke(cli, ["--help"]).output


def test_drift_check_set_must_be_field_equals_value(runner):
    result = runner.invoke(cli, ["drift-check", "--set", "window_minutes"])
    assert result.exit_code == 2 and "FIELD=VALUE" in result.output
    assert runner.invoke(cli, ["drift-check", "--no-persist"]).exit_code == 2  # needs --local
