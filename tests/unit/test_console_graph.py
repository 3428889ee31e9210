"""The console's state-machine graph (from the ASL definition) and state statuses (from the history)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from driftstack.tools.console import graph as G

DEFINITION = {
    "StartAt": "Prepare",
    "States": {
        "Prepare": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:0:function:prep", "Next": "Fan",
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "RecordFailure"}]},
        "Fan": {"Type": "Parallel", "Next": "Decide", "Branches": [
            {"StartAt": "Left", "States": {"Left": {"Type": "Pass", "End": True}}},
            {"StartAt": "Each", "States": {"Each": {"Type": "Map", "End": True, "ItemProcessor": {
                "StartAt": "Inner", "States": {"Inner": {"Type": "Pass", "End": True}}}}}}]},
        "Decide": {"Type": "Choice", "Default": "Reject", "Choices": [
            {"Variable": "$.decision.outcome", "StringEquals": "promote", "Next": "WaitForApproval"},
            {"And": [{"Variable": "$.rmse", "NumericLessThan": 3}, {"Not": {"Variable": "$.x", "IsPresent": True}}],
             "Next": "Reject"}]},
        "WaitForApproval": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                            "Next": "Promote"},
        "Promote": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:0:function:promote", "Next": "Done"},
        "Reject": {"Type": "Pass", "Next": "Done"},
        "Done": {"Type": "Succeed"},
        "RecordFailure": {"Type": "Pass", "Next": "Failed"},
        "Failed": {"Type": "Fail", "Error": "RetrainFailed"},
        "NeverReached": {"Type": "Pass", "End": True},
    },
}


def test_every_state_is_a_node_inner_states_inside_their_parent():
    g = G.graph_of(json.dumps(DEFINITION))
    nodes = {n["id"]: n for n in g["nodes"]}
    assert set(nodes) == {*DEFINITION["States"], "Left", "Each", "Inner", G.START, G.END}
    assert nodes["Left"]["parent"] == "Fan" and nodes["Each"]["parent"] == "Fan" and nodes["Inner"]["parent"] == "Each"
    assert nodes["Decide"]["type"] == "Choice" and "parent" not in nodes["Prepare"]


def test_edges_follow_next_choices_default_catch_and_end():
    edges = {(e["source"], e["target"], e["kind"]): e["label"] for e in G.graph_of(DEFINITION)["edges"]}
    assert (G.START, "Prepare", "start") in edges
    assert edges[("Prepare", "RecordFailure", "catch")] == "catch States.ALL"
    assert edges[("Decide", "WaitForApproval", "choice")] == '$.decision.outcome == "promote"'
    assert edges[("Decide", "Reject", "choice")] == "$.rmse < 3 and not ($.x is present)"
    assert edges[("Decide", "Reject", "default")] == "default"
    assert ("Fan", "Decide", "next") in edges and ("Done", G.END, "end") in edges and ("Failed", G.END, "end") in edges
    assert ("NeverReached", G.END, "end") in edges
    # inner branch ends stay inside their branch
    assert not any(src in ("Left", "Each", "Inner") for src, _, kind in edges if kind == "end")


T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def ev(i, typ, **details):
    return {"id": i, "type": typ, "timestamp": T0 + timedelta(seconds=i), **details}


def entered(i, name, data="{}"):
    return ev(i, "TaskStateEntered", stateEnteredEventDetails={"name": name, "input": data})


def exited(i, name, data="{}"):
    return ev(i, "TaskStateExited", stateExitedEventDetails={"name": name, "output": data})


def test_history_gives_succeeded_caught_failed_and_keeps_input_output_error():
    events = [ev(0, "ExecutionStarted"), entered(1, "Prepare", '{"run_id": "r1"}'),
              ev(2, "LambdaFunctionFailed", lambdaFunctionFailedEventDetails={"error": "ValueError", "cause": "no data"}),
              exited(3, "Prepare", '{"error": "ValueError"}'),
              entered(4, "RecordFailure"), exited(5, "RecordFailure", '{"recorded": true}'),
              ev(6, "FailStateEntered", stateEnteredEventDetails={"name": "Failed", "input": "{}"}),
              ev(7, "ExecutionFailed", executionFailedEventDetails={"error": "RetrainFailed", "cause": "see record"})]
    st = G.state_statuses(events)
    assert {k: v["status"] for k, v in st.items()} == {"Prepare": G.CAUGHT, "RecordFailure": G.SUCCEEDED,
                                                      "Failed": G.FAILED}
    assert st["Prepare"]["error"] == "ValueError" and st["Prepare"]["cause"] == "no data"
    assert st["Prepare"]["input"] == '{"run_id": "r1"}' and st["RecordFailure"]["output"] == '{"recorded": true}'
    assert st["Failed"]["error"] == "RetrainFailed"
    assert "NeverReached" not in st


def test_a_running_state_a_retried_task_and_a_loop():
    events = [entered(1, "Train"), ev(2, "LambdaFunctionFailed", lambdaFunctionFailedEventDetails={"error": "Throttled"}),
              ev(3, "LambdaFunctionScheduled"), ev(4, "LambdaFunctionSucceeded"), exited(5, "Train"),
              entered(6, "Poll"), exited(7, "Poll"), entered(8, "Poll"),
              ev(9, "TaskSubmitted", taskSubmittedEventDetails={"resource": "invoke.waitForTaskToken"})]
    st = G.state_statuses(events)
    assert st["Train"]["status"] == G.SUCCEEDED and st["Train"]["error"] is None  # the retry worked
    assert st["Poll"]["status"] == G.RUNNING and st["Poll"]["visits"] == 2 and st["Poll"]["output"] is None


def test_an_uncaught_task_error_fails_its_state():
    events = [entered(1, "Promote"),
              ev(2, "TaskFailed", taskFailedEventDetails={"error": "States.TaskFailed", "cause": "boom"}),
              ev(3, "ExecutionFailed", executionFailedEventDetails={"error": "States.TaskFailed"})]
    st = G.state_statuses(events)["Promote"]
    assert st["status"] == G.FAILED and st["error"] == "States.TaskFailed" and st["cause"] == "boom"


def test_event_rows_name_the_state_and_the_error():
    rows = G.event_rows([entered(1, "Prepare"), ev(2, "TaskFailed", taskFailedEventDetails={"error": "E", "cause": "c"})])
    assert rows[0]["state"] == "Prepare" and rows[0]["type"] == "TaskStateEntered"
    assert rows[1]["detail"] == "E: c" and rows[1]["state"] == "Prepare"  # a task event belongs to its state
