"""`driftstack mlflow`: the MLflow server on the project's one store, in the foreground; and the store
itself, the one that training, the demo and retraining name."""

from __future__ import annotations

import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftstack.settings.mlflow_store import project_store, run_url
from driftstack.tools.cli import cli
from driftstack.tools.cli import mlflow as mlflow_cli
from driftstack.tools.localstack_host import free_port
from driftstack.tools.polling import wait_for


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("DRIFTSTACK_STATE_DIR", str(tmp_path))
    return tmp_path


def test_the_store_lies_under_the_state_dir(state):
    store = project_store()
    assert store.tracking_uri == f"sqlite:///{state / 'mlflow' / 'mlflow.db'}"
    assert store.artifacts == state / "mlflow" / "artifacts"


def test_training_publishes_to_the_same_store(state, monkeypatch):
    from spark_jobs.publish import MlflowSettings

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DRIFTSTACK_MLFLOW_ARTIFACTS", raising=False)
    settings = MlflowSettings()
    assert settings.resolved_uri() == project_store().tracking_uri
    assert settings.resolved_artifacts() == str(project_store().artifacts)


def test_the_demo_passes_the_store_to_the_retraining_job(state):
    import json

    from driftstack.tools.demo import Demo, parse_args

    demo = Demo(parse_args([]))
    assert json.loads(demo.context["retrain_mlflow"]) == {"tracking_uri": project_store().tracking_uri}


def test_run_url_points_into_the_ui():
    assert run_url("3", "abc") == "http://127.0.0.1:5000/#/experiments/3/runs/abc"
    assert run_url(None, "abc", base="http://127.0.0.1:5001/") == "http://127.0.0.1:5001/#/runs/abc"


def test_the_command_serves_the_store_and_prints_the_url(state, monkeypatch):
    seen = {}
    monkeypatch.setattr(mlflow_cli, "serve", lambda argv: seen.setdefault("argv", argv) and 0)
    port = free_port()
    result = CliRunner().invoke(cli, ["mlflow", "--port", str(port)])
    assert result.exit_code == 0, result.output
    assert f"http://127.0.0.1:{port}" in result.output and str(state / "mlflow" / "mlflow.db") in result.output
    argv = seen["argv"]
    assert argv[1:4] == ["-m", "mlflow", "server"]
    opts = dict(zip(argv[4::2], argv[5::2]))
    assert opts == {"--backend-store-uri": project_store().tracking_uri,
                    "--artifacts-destination": (state / "mlflow" / "artifacts").as_uri(),
                    "--host": "127.0.0.1", "--port": str(port), "--workers": "1"}
    assert (state / "mlflow" / "artifacts").is_dir()


def test_a_port_in_use_is_refused_before_starting(state, monkeypatch):
    monkeypatch.setattr(mlflow_cli, "serve", lambda argv: pytest.fail("must not start"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = CliRunner().invoke(cli, ["mlflow", "--port", str(busy.getsockname()[1])])
    assert result.exit_code == 3 and "in use" in result.output


def test_a_server_that_fails_exits_1(state, monkeypatch):
    monkeypatch.setattr(mlflow_cli, "serve", lambda argv: 2)
    result = CliRunner().invoke(cli, ["mlflow", "--port", str(free_port())])
    assert result.exit_code == 1 and "exited with code 2" in result.output


def test_the_server_answers_and_stops_with_its_children(state):
    """The real `mlflow server` on a fresh store (about 10 s to start here)."""
    port, store = free_port(), project_store()
    store.artifacts.mkdir(parents=True)
    proc = subprocess.Popen(mlflow_cli.server_argv(store, "127.0.0.1", port), start_new_session=True,
                            env=mlflow_cli.server_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def home() -> int | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    return resp.status
            except OSError:
                assert proc.poll() is None, "the server exited"
                return None

        assert wait_for(home, 90, "the MLflow UI to answer", 0.5) == 200
    finally:
        mlflow_cli.stop(proc)
    assert proc.returncode is not None
    wait_for(lambda: not _running_in_group(proc.pid), 15, "the server's children to end", 0.2)


def _running_in_group(pgid: int) -> list[int]:
    """Processes of the group that are not zombies (/proc/<pid>/stat: pid (comm) state ppid pgrp ...)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(pgrp) == pgid and state != "Z":
            alive.append(int(stat.parent.name))
    return alive


def test_a_published_run_lands_in_the_store_under_the_url_training_prints(state, monkeypatch):
    from mlflow import MlflowClient

    from spark_jobs.publish import MlflowSettings, PublishRequest, log_mlflow
    from tests.unit.test_train_publish import tiny_model

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DRIFTSTACK_MLFLOW_ARTIFACTS", raising=False)
    model = tiny_model(1.0)
    req = PublishRequest("tiny", model.SerializeToString(), {"contract_hash": "c"}, {}, "b", mlflow=MlflowSettings())
    ml = log_mlflow(req.mlflow, req, "ab" * 32, model)
    store = project_store()
    assert ml["tracking_uri"] == store.tracking_uri and store.db.exists()
    run = MlflowClient(tracking_uri=store.tracking_uri).get_run(ml["run_id"])
    assert run.info.experiment_id == ml["experiment_id"]
    assert run.info.artifact_uri.startswith(store.artifacts.as_uri())
    assert run_url(ml["experiment_id"], ml["run_id"]).endswith(f"/#/experiments/{ml['experiment_id']}/runs/{ml['run_id']}")
