"""The terminal view: execution history -> state rows, and rendering of runs/decisions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from rich.console import Console

from driftstack.tools import watch as W

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)


def ev(t, typ, **details):
    e = {"type": typ, "timestamp": T0 + timedelta(seconds=t)}
    e.update(details)
    return e


def entered(t, name):
    return ev(t, "TaskStateEntered" if name[0].isupper() and "?" not in name else "ChoiceStateEntered",
              stateEnteredEventDetails={"name": name})


def exited(t, name):
    return ev(t, "TaskStateExited", stateExitedEventDetails={"name": name})


def test_poll_loop_is_folded_and_a_failure_is_attributed_to_its_state():
    events = [entered(0, "PrepareData"), exited(2, "PrepareData"),
              entered(2, "WaitForTraining"), exited(5, "WaitForTraining"), entered(5, "PollTraining"), exited(6, "PollTraining"),
              entered(6, "WaitForTraining"), exited(9, "WaitForTraining"), entered(9, "PollTraining"),
              ev(10, "LambdaFunctionFailed", lambdaFunctionFailedEventDetails={
                  "error": "ValueError", "cause": '{"errorMessage": "training result is missing challenger.prefix"}'})]
    rows = W.parse_history(events)
    assert [r.name for r in rows] == ["PrepareData", "WaitForTraining", "PollTraining"]
    wait, poll = rows[1], rows[2]
    assert wait.visits == 2 and wait.status == W.SUCCEEDED and wait.seconds(T0) == 7
    assert poll.visits == 2 and poll.status == W.FAILED
    assert poll.detail == "ValueError: training result is missing challenger.prefix"


def test_render_execution_runs_and_checks():
    view = W.ExecutionView("retrain-x", "SUCCEEDED", T0, T0 + timedelta(seconds=90),
                           W.parse_history([entered(0, "Promote"), exited(3, "Promote")]))
    record = {"outcome": "promoted", "champion": {"version": "1"},
              "evaluation": {"champion": {"metrics": {"rmse": 9.9}}, "challenger": {"version": "2", "metrics": {"rmse": 4.4}}},
              "reasons": ["RMSE 4.4 vs champion 9.9"], "mlflow_alias": {"alias": "champion", "version": "2", "status": "set"}}
    console = Console(record=True, width=120)
    console.print(W.render_execution(view, record))
    console.print(W.render_runs([{"run_id": "retrain-x", "outcome": "rejected", "champion_metrics": {"rmse": 4.0},
                                  "challenger_metrics": {"rmse": 3.9}, "reasons": ["RMSE improvement +0.1"]}]))
    console.print(W.render_checks([{"check_id": "c1", "status": "drift", "samples": 1400, "max_psi": 0.31,
                                    "prediction_psi": 0.25, "drifted_features": ["trip_distance"],
                                    "execution": {"message": "started retraining execution retrain-x"}}]))
    text = console.export_text()
    assert "retrain-x" in text and "promoted" in text and "9.900 → challenger v2 4.400" in text
    assert "MLflow alias champion → v2: set" in text and "4.000 → 3.900" in text
    assert "started retraining execution" in text and "0.310" in text


def test_runs_table_shows_the_first_reason_shortened_and_counts_the_rest():
    long = "RMSE 3.7009 vs champion 9.5924: improvement +5.8914 (needs >= 0.5) and then some more words"
    console = Console(record=True, width=200)
    console.print(W.render_runs([{"run_id": "retrain-y", "outcome": "promoted", "reasons": [long, "b", "c"]}]))
    text = console.export_text()
    assert "RMSE 3.7009 vs champion 9.5924: improvement +5.8914 (needs …" in text and "(+2 more)" in text
    assert "then some more words" not in text  # all of them: `driftstack decisions show RUN_ID`


def test_decision_names_the_challengers_mlflow_run():
    console = Console(record=True, width=200)
    record = {"outcome": "promoted", "reasons": ["better"],
              "evaluation": {"challenger": {"version": "2", "mlflow": {"experiment_id": "7", "run_id": "abc123"}}}}
    console.print(W.render_decision(record))
    assert "MLflow run http://127.0.0.1:5000/#/experiments/7/runs/abc123" in console.export_text(clear=False)
    console.print(W.render_decision({"outcome": "rejected", "evaluation": {"challenger": {"mlflow": {}}}}))
    assert console.export_text().count("MLflow run") == 1  # no run id, no link
