"""Retraining decisions: `driftstack decisions [list|show|pending|approve|reject]`
(`driftstack approve|reject` too)."""

from __future__ import annotations

import os

import click

from driftstack.tools.cli.errors import Failed
from driftstack.tools.cli.output import console, echo_json, json_option
from driftstack.tools.cli.root import DefaultCommandGroup, State, cli, pass_state


@cli.group(cls=DefaultCommandGroup, default="list")
def decisions() -> None:
    """Retraining decisions: list, show, pending, approve, reject.

    Without a subcommand: `list`."""


def _show(state: State, run_id: str) -> None:
    from driftstack.adapters import decision_store

    record = decision_store.load_record(state.client("s3"), state.output("BucketName"), run_id)
    if record is None:
        raise Failed(f"no decision record for run {run_id!r}; see `driftstack decisions`")
    echo_json(record)


@decisions.command("list")
@click.argument("run_id", required=False)
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@json_option
@pass_state
def list_cmd(state: State, run_id: str | None, limit: int, as_json: bool) -> None:
    """Decisions, newest first (with RUN_ID: that decision record in full)."""
    from driftstack.adapters import decision_store
    from driftstack.tools.watch import render_runs

    if run_id:
        return _show(state, run_id)
    records = decision_store.list_records(state.table("HistoryTableName"), limit)
    if as_json:
        echo_json(records)
    else:
        console().print(render_runs(records) if records else "no retraining decisions yet")


@decisions.command("show")
@click.argument("run_id")
@pass_state
def show_cmd(state: State, run_id: str) -> None:
    """One decision record in full (JSON)."""
    _show(state, run_id)


@decisions.command("pending")
@json_option
@pass_state
def pending_cmd(state: State, as_json: bool) -> None:
    """Promotions waiting for a human (stacks deployed with -c approval=true)."""
    from rich.table import Table

    from driftstack.adapters import decision_store

    waiting = decision_store.pending_approvals(state.table("HistoryTableName"))
    if as_json:
        return echo_json(waiting)
    t = Table(title="waiting for approval", title_justify="left")
    for c in ("run", "requested", "details"):
        t.add_column(c, overflow="fold")
    for w in waiting:
        details = {k: v for k, v in w.items() if k not in ("run_id", "requested_at", "task_token")}
        t.add_row(w["run_id"], str(w.get("requested_at") or ""), ", ".join(f"{k}={v}" for k, v in details.items())[:300])
    console().print(t if waiting else "nothing waiting for approval")


def _complete(state: State, run_id: str, approved: bool, reason: str) -> None:
    from driftstack.tools.operations import ApprovalError, complete_approval

    try:
        out = complete_approval(state.client("stepfunctions"), state.table("HistoryTableName"), run_id, approved,
                                by=os.environ.get("USER", "cli"), reason=reason)
    except ApprovalError as exc:
        raise Failed(str(exc)) from exc
    echo_json(out)


@click.command()
@click.argument("run_id")
@click.option("--reason", default="", help="Recorded with the decision.")
@pass_state
def approve(state: State, run_id: str, reason: str) -> None:
    """Approve a promotion waiting for a human.

    Stacks deployed with -c approval=true wait for this (or `reject`)."""
    _complete(state, run_id, True, reason)


@click.command()
@click.argument("run_id")
@click.option("--reason", required=True, help="Why (recorded with the decision).")
@pass_state
def reject(state: State, run_id: str, reason: str) -> None:
    """Reject a promotion waiting for a human."""
    _complete(state, run_id, False, reason)


for group in (cli, decisions):  # `driftstack approve` and `driftstack decisions approve` are one command
    group.add_command(approve)
    group.add_command(reject)
