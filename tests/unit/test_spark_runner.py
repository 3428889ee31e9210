"""The Spark job runner with a fake job (no Spark): noise goes to the log file, progress lines reach
the caller, the last JSON line on stdout is the result; a failure shows the log's tail."""

from __future__ import annotations

import io
import json
import textwrap

import pytest
from rich.console import Console

from driftstack.tools import spark_runner, train_view

FAKE_JOB = textwrap.dedent('''
    import json, sys, warnings

    # spark_jobs.train prints progress on stderr, beside the JVM's noise; other jobs may use stdout.
    PROGRESS_STREAM = sys.stderr if "--progress-on-stderr" in sys.argv else sys.stdout

    def progress(msg):
        print(f"[train {1.5:7.1f}s] {msg}", file=PROGRESS_STREAM, flush=True)

    print("26/12/03 15:00:00 WARN NativeCodeLoader: Unable to load native-hadoop library", file=sys.stderr)
    warnings.warn("a worker warning", FutureWarning)
    progress("spark_start ...")
    print("py4j noise on stdout")
    progress("fit done in 8.1s")
    fail = "--fail" in sys.argv
    if fail:
        print("Traceback (most recent call last): boom", file=sys.stderr)
    doc = {"status": "parity_failed", "error": "parity gate failed: 0.5 > 0.001"} if fail else RESULT
    print(json.dumps(doc), flush=True)
    sys.exit(3 if fail else 0)
''')

RESULT = {
    "status": "ok", "model_name": "driftstack-fare", "sha256": "ab" * 32, "local_dir": "/tmp/run",
    "metrics": {"rmse": 2.3456, "mae": 1.2, "r2": 0.95, "mape": 9.87, "n": 1200},
    "parity": {"rows": 1200, "max_abs_diff": 3.1e-6, "mean_abs_diff": 1e-7, "tolerance": 0.001, "passed": True},
    "latency": {"single_row_p50_ms": 0.041, "single_row_p99_ms": 0.09, "runs": 100, "batch_rows": 10,
                "batch_ms": 1.0},
    "rows": {"train": 4800, "holdout": 1200},
    "validation": {"rows_in": 6010, "rows_out": 6000, "rows_dropped": 10, "dropped": {"fare": 10}},
    "version": "1", "model_uri": "s3://bucket/models/driftstack-fare/abab/model.onnx",
    "mlflow": {"tracking_uri": "sqlite:///m.db", "experiment_id": "7", "run_id": "r123", "version": "1", "champion_alias_set": True},
    "champion_pointer": {"written": True, "version": "1"}, "total_seconds": 42.0,
}


@pytest.fixture
def fake_job(tmp_path, monkeypatch):
    (tmp_path / "fake_job.py").write_text(f"RESULT = {RESULT!r}\n" + FAKE_JOB)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setattr(spark_runner, "TRAIN_MODULE", "fake_job")
    return "fake_job"


@pytest.mark.parametrize("argv", [[], ["--progress-on-stderr"]])
def test_noise_goes_to_the_log_progress_to_the_caller(fake_job, tmp_path, argv):
    seen = []
    run = spark_runner.run_job(fake_job, argv, log_path=tmp_path / "logs" / "job.log", on_progress=seen.append)

    assert run.ok and run.result == RESULT
    assert [p.message for p in seen] == ["spark_start ...", "fit done in 8.1s"]
    assert seen[0] == spark_runner.Progress("train", 1.5, "spark_start ...")
    log = run.log_path.read_text()
    for noise in ("WARN NativeCodeLoader", "FutureWarning: a worker warning", "py4j noise", "fit done"):
        assert noise in log


def test_failure_keeps_exit_code_error_and_tail(fake_job, tmp_path):
    run = spark_runner.run_job(fake_job, ["--fail"], log_path=tmp_path / "job.log")

    assert not run.ok and run.exit_code == 3
    assert run.result["status"] == "parity_failed"
    assert any("Traceback" in line for line in run.tail())
    assert run.tail()[-1] == "exit code 3"


def test_log_path_is_under_the_state_dir():
    path = spark_runner.new_log_path("train")
    assert path.parent.name == "logs" and path.name.startswith("train-") and path.suffix == ".log"


def _console() -> Console:
    return Console(file=io.StringIO(), width=140, color_system=None)


def test_train_view_prints_progress_and_returns_the_result(fake_job, tmp_path):
    console = _console()
    result = train_view.train([], console, log_path=tmp_path / "train.log")

    out = console.file.getvalue()
    assert result == RESULT
    assert str(tmp_path / "train.log") in out and "fit done in 8.1s" in out
    assert "NativeCodeLoader" not in out and "worker warning" not in out and "{" not in out


def test_train_view_failure_shows_the_tail_and_the_log_path(fake_job, tmp_path):
    console = _console()
    with pytest.raises(train_view.TrainingFailed) as failed:
        train_view.train(["--fail"], console, log_path=tmp_path / "train.log")

    out = console.file.getvalue()
    assert "Traceback" in out and "exit code 3" in out
    assert "parity gate failed" in str(failed.value) and str(tmp_path / "train.log") in str(failed.value)


def test_summary_is_a_small_table_not_json():
    console = _console()
    console.print(train_view.summary_table(RESULT))
    out = console.file.getvalue()

    for expected in ("4,800 train / 1,200 holdout", "10 invalid rows dropped", "RMSE 2.346", "MAE 1.200",
                     "R² 0.950", "MAPE 9.9%", "passed", "1,200 rows", RESULT["model_uri"],
                     "http://127.0.0.1:5000/#/experiments/7/runs/r123", "now version 1"):
        assert expected in out, expected
    assert len(out.splitlines()) < 20 and json.dumps(RESULT)[:20] not in out


def test_summary_of_an_unpublished_run():
    doc = {k: v for k, v in RESULT.items() if k not in ("version", "model_uri", "mlflow", "champion_pointer")}
    console = _console()
    console.print(train_view.summary_table(doc))
    assert "/tmp/run (not published)" in console.file.getvalue()


@pytest.fixture
def invoke(fake_job, tmp_path, monkeypatch):
    """`driftstack …` on a deployed stack (outputs faked), the fake job as the training job."""
    from click.testing import CliRunner

    from driftstack.tools.cli import cli

    outputs = {"StorageBucketName": "bucket", "RegistryModelsTableName": "models"}
    monkeypatch.setattr("driftstack.tools.api_client.stack_outputs", lambda *a, **k: outputs)
    monkeypatch.setattr(spark_runner, "default_log_dir", lambda: tmp_path / "logs")
    return lambda *args: CliRunner().invoke(cli, list(args))


def test_cli_train_shows_a_summary(invoke, tmp_path):
    result = invoke("train", "--rows", "500")

    assert result.exit_code == 0, result.output
    assert "fit done in 8.1s" in result.output and "RMSE 2.346" in result.output
    assert str(tmp_path / "logs" / "train-") in result.output and "NativeCodeLoader" not in result.output


def test_cli_train_json_prints_only_the_document(invoke):
    result = invoke("train", "--json")

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == RESULT
    assert "fit done in 8.1s" in result.stderr


def test_cli_train_failure_is_one_error_line_after_the_log_tail(invoke, tmp_path):
    result = invoke("train", "--fail")

    assert result.exit_code == 1
    assert "Traceback" in result.stdout  # the log's tail, shown for the person
    assert result.stderr.startswith("error: training failed: parity gate failed")
    assert str(tmp_path / "logs") in result.stderr
