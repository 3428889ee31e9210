"""What the demo prints: training through the Spark runner (a summary, not its JSON document), a
final summary in tables, and with --json one JSON line on stdout while the story goes to stderr."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pytest
from rich.console import Console

from driftstack.tools import demo, train_view

RECORD = {"outcome": "promoted", "reasons": ["RMSE 3.10 → 2.20: better by 0.90 (≥ 0.5)"],
          "champion": {"version": "1"},
          "evaluation": {"champion": {"metrics": {"rmse": 3.1}}, "challenger": {"version": "2", "metrics": {"rmse": 2.2}}}}
TRAIN_RESULT = {"status": "ok", "model_name": "driftstack-fare", "sha256": "cd" * 32, "version": "1",
                "metrics": {"rmse": 3.1, "mae": 2.0, "r2": 0.9, "mape": 12.0, "n": 100},
                "rows": {"train": 400, "holdout": 100}, "model_uri": "s3://b/models/m/model.onnx"}


@pytest.fixture
def out(monkeypatch, tmp_path):
    monkeypatch.setenv("DRIFTSTACK_STATE_DIR", str(tmp_path))
    buffer = io.StringIO()
    monkeypatch.setattr(demo, "console", Console(file=buffer, width=150, color_system=None))
    return buffer


def _demo(*argv: str) -> demo.Demo:
    d = demo.Demo(demo.parse_args(list(argv)))
    d.out = {"BucketName": "bucket", "ModelsTableName": "models"}
    d.execution = "run-7"
    d.champion = SimpleNamespace(model_name="driftstack-fare", version="1")
    d.t.phases = [("1. LocalStack on the host", 3.0), ("3. Train", 60.0)]
    return d


def test_summary_is_tables_not_dicts(out):
    pointer = SimpleNamespace(version="2")
    doc = _demo().summary({"report_uri": "s3://bucket/reports/x.html"},
                          {"record": RECORD, "pointer": pointer,
                           "prediction": {"model_version": "2", "predicted_fare": 17.456}})
    text = out.getvalue()

    assert doc["serving_now"] == "2" and doc["decision_record"] == "s3://bucket/decisions/run-7.json"
    for expected in ("decision: promoted", "version 1 before the drift, version 2 serving now",
                     "version 2 predicted $17.46", "s3://bucket/reports/x.html", "s3://bucket/decisions/run-7.json",
                     "Time per phase"):
        assert expected in text, expected
    assert "{" not in text and "prediction_check" not in text


def test_champion_training_shows_a_summary_and_logs_under_the_state_dir(out, monkeypatch, tmp_path):
    seen = {}

    def fake_train(argv, console, log_path=None):
        seen.update(argv=argv, log_path=log_path)
        return TRAIN_RESULT

    monkeypatch.setattr(train_view, "train", fake_train)
    monkeypatch.setattr(demo, "wait_for", lambda *a, **k: None)
    monkeypatch.setattr("driftstack.adapters.registry.read_pointer",
                        lambda table: SimpleNamespace(model_name="driftstack-fare", version="1"))
    d = _demo("--rows", "5000")
    monkeypatch.setattr(d, "_table", lambda name: None)
    d.train_champion()

    text = out.getvalue()
    assert seen["log_path"].parent == tmp_path / "logs" and seen["log_path"].name.startswith("train-")
    assert ["--generate-rows", "5000"] == seen["argv"][seen["argv"].index("--generate-rows"):][:2]
    assert "RMSE 3.100" in text and "400 train / 100 holdout" in text and "champion driftstack-fare v1" in text
    assert json.dumps(TRAIN_RESULT)[:10] not in text


def test_json_goes_alone_to_stdout(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("DRIFTSTACK_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(demo, "console", Console(color_system=None))  # resolves stdout/stderr when printing
    doc = {"outcome": "promoted", "serving_now": "2"}

    def run(self):
        demo.console.print("phase lines a person reads")
        return doc

    monkeypatch.setattr(demo.Demo, "run", run)
    assert demo.main(["--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == doc
    assert "phase lines a person reads" in captured.err


def test_training_failure_ends_the_demo_with_the_log_path(out, monkeypatch, tmp_path):
    failed = train_view.TrainingFailed(SimpleNamespace(result={"error": "parity gate failed"}, exit_code=3,
                                                       log_path=tmp_path / "logs" / "train-x.log"))

    def run(self):
        raise failed

    monkeypatch.setattr(demo.Demo, "run", run)
    assert demo.main([]) == 1
    text = out.getvalue()
    assert "demo failed" in text and "parity gate failed" in text and "train-x.log" in text
