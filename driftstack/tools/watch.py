"""Watch the retraining workflow from a terminal (LocalStack has no console offline):
`driftstack watch [NAME]`, `driftstack watch list`, `driftstack watch checks`.

The live view follows the newest execution (or the named one): every state it entered, which one is
running, succeeded or failed, how long each took, and at the end the decision (outcome, both models'
RMSE, reasons). Resources come from the stack outputs (:func:`resources_from`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from driftstack.adapters import decision_store
from driftstack.contract import names as N
from driftstack.domain import decision as D

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
_STYLE = {RUNNING: "bold yellow", SUCCEEDED: "green", FAILED: "bold red", "SUCCEEDED": "green",
          "RUNNING": "bold yellow", "FAILED": "bold red", "TIMED_OUT": "bold red", "ABORTED": "red",
          D.PROMOTED: "bold green", D.REJECTED: "yellow", D.FAILED: "bold red", D.AWAITING_APPROVAL: "bold cyan",
          D.CANARY: "bold magenta", D.ROLLED_BACK: "bold red"}


@dataclass
class StateRun:
    name: str
    entered: datetime
    exited: datetime | None = None
    status: str = RUNNING
    detail: str = ""
    visits: int = 1

    def seconds(self, now: datetime) -> float:
        return ((self.exited or now) - self.entered).total_seconds()


@dataclass
class ExecutionView:
    name: str
    status: str
    started: datetime
    stopped: datetime | None
    states: list[StateRun] = field(default_factory=list)
    error: str | None = None


def parse_history(events: list[dict]) -> list[StateRun]:
    """State runs from GetExecutionHistory events, in order; a state visited again (the poll loop)
    is folded into one row with a visit count."""
    runs: dict[str, StateRun] = {}
    order: list[str] = []
    current: StateRun | None = None
    for ev in events:
        t = ev["type"]
        if t.endswith("StateEntered"):
            name = ev["stateEnteredEventDetails"]["name"]
            if name in runs:
                r = runs[name]
                r.visits += 1
                r.status, r.exited = RUNNING, None
                # Keep the first entry time: the row's duration spans the whole loop.
            else:
                r = runs[name] = StateRun(name, ev["timestamp"])
                order.append(name)
            current = r
        elif t.endswith("StateExited"):
            name = ev["stateExitedEventDetails"]["name"]
            if name in runs:
                r = runs[name]
                r.exited = ev["timestamp"]
                if r.status == RUNNING:
                    r.status = SUCCEEDED
        elif t.endswith(("Failed", "TimedOut")):
            details = next((v for k, v in ev.items() if k.endswith("EventDetails")), {}) or {}
            if current is not None:
                current.status = FAILED
                current.detail = f"{details.get('error', t)}: {_cause(details.get('cause', ''))}"[:200]
    return [runs[n] for n in order]


def _cause(cause: str) -> str:
    try:
        return json.loads(cause).get("errorMessage", cause)
    except (ValueError, AttributeError):
        return cause or ""


def load_execution(sfn, execution_arn: str) -> ExecutionView:
    desc = sfn.describe_execution(executionArn=execution_arn)
    events, token = [], None
    while True:
        kw = {"executionArn": execution_arn, "maxResults": 1000}
        if token:
            kw["nextToken"] = token
        page = sfn.get_execution_history(**kw)
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            break
    return ExecutionView(desc["name"], desc["status"], desc["startDate"], desc.get("stopDate"),
                         parse_history(events), desc.get("error"))


def _fmt_seconds(s: float) -> str:
    return f"{s:5.1f}s" if s < 120 else f"{s / 60:4.1f}m"


def render_execution(view: ExecutionView, record: dict | None):
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    now = datetime.now(UTC)
    table = Table(expand=True, show_lines=False)
    table.add_column("state")
    table.add_column("status")
    table.add_column("time", justify="right")
    table.add_column("detail", overflow="fold")
    for r in view.states:
        status = r.status if not (r.status == RUNNING and view.status != "RUNNING") else "stopped"
        label = status + (f" ×{r.visits}" if r.visits > 1 else "")
        table.add_row(r.name, Text(label, style=_STYLE.get(status, "")), _fmt_seconds(r.seconds(now)), r.detail)
    total = ((view.stopped or now) - view.started).total_seconds()
    head = Text.assemble(("execution ", "bold"), view.name, "  ",
                         (view.status, _STYLE.get(view.status, "")), f"  {_fmt_seconds(total).strip()}")
    parts: list[Any] = [head, table]
    if record:
        parts.append(render_decision(record))
    return Panel(Group(*parts), title="driftstack retraining", border_style="blue")


def render_decision(record: dict):
    from rich.text import Text

    ev = record.get("evaluation") or {}
    champ = (ev.get("champion") or {}).get("metrics") or {}
    chal = (ev.get("challenger") or {}).get("metrics") or {}
    out = Text()
    outcome = record.get("outcome", "?")
    out.append("decision: ", style="bold")
    out.append(outcome, style=_STYLE.get(outcome, ""))
    if champ and chal:
        out.append(f"   RMSE champion v{(record.get('champion') or {}).get('version')} {champ['rmse']:.3f} → "
                   f"challenger v{(ev.get('challenger') or {}).get('version')} {chal['rmse']:.3f}")
    for r in record.get("reasons") or []:
        out.append(f"\n  • {r}")
    alias = record.get("mlflow_alias")
    if alias:
        out.append(f"\n  MLflow alias {alias.get('alias')} → v{alias.get('version')}: {alias.get('status')}")
    run = (ev.get("challenger") or {}).get("mlflow") or {}
    if run.get("run_id"):  # the challenger's run in `driftstack mlflow`
        from driftstack.settings.mlflow_store import run_url

        out.append(f"\n  MLflow run {run_url(run.get('experiment_id'), run['run_id'])}")
    return out


def _first_reason(reasons: list[str], chars: int = 60) -> str:
    first = reasons[0] if reasons else ""
    first = first if len(first) <= chars else first[:chars - 1] + "…"
    return f"{first} (+{len(reasons) - 1} more)" if len(reasons) > 1 else first


def render_runs(records: list[dict]):
    from rich.table import Table
    from rich.text import Text

    t = Table(title="retraining runs (newest first)", expand=True)
    for c in ("run", "started", "outcome", "champion", "challenger", "RMSE champ → chal"):
        t.add_column(c, overflow="fold")
    t.add_column("first reason", overflow="fold")   # all of them: `driftstack decisions show RUN_ID`
    for r in records:
        cm, hm = r.get("champion_metrics") or {}, r.get("challenger_metrics") or {}
        rmse = f"{cm['rmse']:.3f} → {hm['rmse']:.3f}" if cm.get("rmse") is not None and hm.get("rmse") is not None else ""
        t.add_row(r.get("run_id", ""), (r.get("started_at") or "")[:19], Text(str(r.get("outcome")),
                  style=_STYLE.get(str(r.get("outcome")), "")), str(r.get("champion_version") or ""),
                  str(r.get("challenger_version") or ""), rmse, _first_reason(r.get("reasons") or []))
    return t


def render_checks(checks: list[dict]):
    from rich.table import Table

    t = Table(title="drift checks (newest first)", expand=True)
    for c in ("check", "status", "samples", "drifted features", "max PSI", "pred PSI", "retraining"):
        t.add_column(c, overflow="fold")
    for c in checks:
        t.add_row(c["check_id"], c["status"], str(c.get("samples")), ", ".join(c.get("drifted_features") or []),
                  f"{c['max_psi']:.3f}" if c.get("max_psi") is not None else "",
                  f"{c['prediction_psi']:.3f}" if c.get("prediction_psi") is not None else "",
                  (c.get("execution") or {}).get("message", ""))
    return t


# ---------------------------------------------------------------- resources

def resources_from(outputs: dict[str, str]) -> dict[str, str]:
    """What the live view reads, from the stack outputs."""
    from driftstack.tools.api_client import _output

    return {N.STATE_MACHINE_ARN: _output(outputs, "StateMachineArn"),
            N.HISTORY_TABLE: _output(outputs, "HistoryTableName"), N.ARTIFACT_BUCKET: _output(outputs, "BucketName")}


def clients(target=None) -> tuple:
    """Step Functions and S3 clients of ``target`` (default: boto3's environment)."""
    if target is None:
        from driftstack.tools.aws_target import resolve

        target = resolve()
    return target.client("stepfunctions"), target.client("s3")


def latest_execution(sfn, arn: str, name: str | None = None) -> str | None:
    if name:
        return arn.replace(":stateMachine:", ":execution:") + f":{name}"
    ex = sfn.list_executions(stateMachineArn=arn, maxResults=1).get("executions", [])
    return ex[0]["executionArn"] if ex else None


def watch(res: dict, execution: str | None = None, *, once: bool = False, interval: float = 2.0,
          console=None, aws_clients: tuple | None = None) -> ExecutionView | None:
    """Live view until the execution stops (or once). Returns the last view. ``aws_clients``: the
    Step Functions and S3 clients (default: :func:`clients` of the environment)."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    sfn, s3 = aws_clients or clients()
    console = console or Console()
    arn = latest_execution(sfn, res[N.STATE_MACHINE_ARN], execution)
    if arn is None:
        if once:
            console.print("no executions yet")
            return None
        with console.status("waiting for the first retraining execution (the drift check starts one)..."):
            while arn is None:
                time.sleep(interval)
                arn = latest_execution(sfn, res[N.STATE_MACHINE_ARN])
    view = load_execution(sfn, arn)
    record = decision_store.load_record(s3, res[N.ARTIFACT_BUCKET], view.name)
    if once:
        console.print(render_execution(view, record))
        return view
    with Live(render_execution(view, record), console=console, refresh_per_second=4) as live:
        while view.status == "RUNNING":
            time.sleep(interval)
            view = load_execution(sfn, arn)
            record = decision_store.load_record(s3, res[N.ARTIFACT_BUCKET], view.name)
            live.update(render_execution(view, record))
    if not console.is_terminal:  # a Live view written to a file or pipe ends without a line break
        console.line()
    console.print(Text(f"execution {view.name} {view.status}", style=_STYLE.get(view.status, "")))
    return view
