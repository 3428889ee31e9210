"""The state machine as a graph, and an execution's history as a status per state.

:func:`graph_of` reads the Amazon States Language definition itself (DescribeStateMachine), so every
state is drawn, reached or not: Next, Default and Choice branches, Catch routes, End, and the inner
states of Parallel branches and Map iterators as children of their parent. :func:`state_statuses`
folds GetExecutionHistory events into running / succeeded / failed / caught per state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

START, END = "__start__", "__end__"
RUNNING, SUCCEEDED, FAILED, CAUGHT = "running", "succeeded", "failed", "caught"
_EXECUTION_ENDS = {"ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"}
_COMPARISONS = {"Equals": "==", "GreaterThan": ">", "GreaterThanEquals": ">=", "LessThan": "<",
                "LessThanEquals": "<=", "Matches": "matches"}


def condition_label(rule: Mapping[str, Any]) -> str:
    """A Choice rule as short text: ``$.outcome == "promote"``, ``not (...)``, ``a and b``."""
    if "Condition" in rule:  # JSONata
        return str(rule["Condition"])
    for combinator in ("And", "Or"):
        if combinator in rule:
            return f" {combinator.lower()} ".join(condition_label(r) for r in rule[combinator])
    if "Not" in rule:
        return f"not ({condition_label(rule['Not'])})"
    var = rule.get("Variable", "?")
    for key, value in rule.items():
        if key in ("Variable", "Next"):
            continue
        op = next((sym for word, sym in _COMPARISONS.items() if key.endswith(word)), key)
        if key.startswith("Is"):  # IsPresent, IsNull, IsString…: true or false
            return f"{var} is {'' if value else 'not '}{key[2:].lower()}"
        return f"{var} {op} {json.dumps(value)}"
    return var


def _inner_machines(state: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if state.get("Type") == "Parallel":
        return list(state.get("Branches") or [])
    if state.get("Type") == "Map":
        inner = state.get("ItemProcessor") or state.get("Iterator")
        return [inner] if inner else []
    return []


def graph_of(definition: Mapping[str, Any] | str) -> dict[str, list[dict]]:
    """``{"nodes": [...], "edges": [...]}`` of the whole definition (Cytoscape's element shape).

    Nodes: ``{"id", "label", "type", "parent"?}`` with a start and an end node; edges:
    ``{"id", "source", "target", "kind" (next|choice|default|catch|end|start), "label"}``."""
    if isinstance(definition, str):
        definition = json.loads(definition)
    nodes: list[dict] = [{"id": START, "label": "Start", "type": "Start"}]
    edges: list[dict] = []

    def edge(source: str, target: str, kind: str, label: str = "") -> None:
        edges.append({"id": f"{source}->{target}#{len(edges)}", "source": source, "target": target,
                      "kind": kind, "label": label})

    def walk(machine: Mapping[str, Any], parent: str | None, start_from: str | None) -> None:
        if start_from is not None:
            edge(start_from, machine["StartAt"], "start")
        for name, state in machine.get("States", {}).items():
            node = {"id": name, "label": name, "type": state.get("Type", "")}
            if parent:
                node["parent"] = parent
            nodes.append(node)
            for inner in _inner_machines(state):
                walk(inner, name, None)
            if state.get("Next"):
                edge(name, state["Next"], "next")
            for rule in state.get("Choices") or []:
                edge(name, rule["Next"], "choice", condition_label(rule))
            if state.get("Default"):
                edge(name, state["Default"], "default", "default")
            for catch in state.get("Catch") or []:
                edge(name, catch["Next"], "catch", "catch " + ", ".join(catch.get("ErrorEquals") or []))
            # Inner states end their branch, not the workflow: only top-level ends reach End.
            if parent is None and (state.get("End") or state.get("Type") in ("Succeed", "Fail")):
                edge(name, END, "end")

    walk(definition, None, START)
    nodes.append({"id": END, "label": "End", "type": "End"})
    return {"nodes": nodes, "edges": edges}


def _details(event: Mapping[str, Any]) -> dict:
    return next((v for k, v in event.items() if k.endswith("EventDetails")), None) or {}


def _is_error(event_type: str) -> bool:
    return event_type not in _EXECUTION_ENDS and event_type.endswith(("Failed", "TimedOut", "Aborted"))


def state_statuses(events: Iterable[Mapping[str, Any]]) -> dict[str, dict]:
    """Per state name: ``status`` (running | succeeded | failed | caught), ``visits``, ``input``,
    ``output``, ``error``, ``cause``, ``entered``, ``exited``.

    An error followed by the state's exit was caught (a Catch routed it on); an error that ends the
    execution failed it; a later success of the same task (a Retry) clears the error."""
    states: dict[str, dict] = {}
    open_states: list[str] = []  # entered, not exited; the newest last
    for ev in events:
        kind, d = ev["type"], _details(ev)
        if kind.endswith("StateEntered"):
            s = states.setdefault(d["name"], {"visits": 0})
            s.update(status=RUNNING, visits=s["visits"] + 1, input=d.get("input"), output=None, error=None,
                     cause=None, entered=str(ev["timestamp"]), exited=None)
            open_states.append(d["name"])
        elif kind.endswith("StateExited") and d.get("name") in states:
            s = states[d["name"]]
            s.update(status=CAUGHT if s.get("error") else SUCCEEDED, output=d.get("output"), exited=str(ev["timestamp"]))
            if d["name"] in open_states:
                open_states.remove(d["name"])
        elif kind.endswith("Succeeded") and kind != "ExecutionSucceeded" and open_states:
            states[open_states[-1]].update(error=None, cause=None)  # a retry that worked
        elif _is_error(kind) and open_states:
            states[open_states[-1]].update(error=d.get("error") or kind, cause=d.get("cause"))
        elif kind in _EXECUTION_ENDS:
            for name in open_states:
                s = states[name]
                s.update(status=FAILED, error=s.get("error") or d.get("error") or kind,
                         cause=s.get("cause") or d.get("cause"))
            open_states.clear()
    return states


def event_rows(events: Iterable[Mapping[str, Any]]) -> list[dict]:
    """The event history as the table shows it: id, time, type, state, and the detail (error or
    the state's input/output, cut short)."""
    rows, state = [], ""
    for ev in events:
        d = _details(ev)
        if ev["type"].endswith("StateEntered"):
            state = d.get("name", "")
        detail = d.get("error") or ""
        if d.get("cause"):
            detail += f": {d['cause']}"
        # Task events name no state: they belong to the one entered last.
        rows.append({"id": ev.get("id"), "timestamp": str(ev["timestamp"]), "type": ev["type"],
                     "state": d.get("name") or (state if not ev["type"].startswith("Execution") else ""),
                     "detail": detail[:300]})
    return rows
