"""`driftstack watch [NAME]` (live view of a retraining execution), `watch list` (past runs and their
decisions, as `driftstack decisions`), `watch checks` (drift checks)."""

from __future__ import annotations

import click

from driftstack.tools.cli.decisions import list_cmd as decisions_list
from driftstack.tools.cli.errors import EXIT_FAILED
from driftstack.tools.cli.output import console, echo_json, json_option
from driftstack.tools.cli.root import DefaultCommandGroup, State, cli, pass_state


@cli.group(cls=DefaultCommandGroup, default="live")
def watch() -> None:
    """Retraining from the terminal: live view, runs, drift checks.

    Without a subcommand: `live` (`driftstack watch [EXECUTION] [--once]`)."""


@watch.command("live")
@click.argument("execution", required=False)
@click.option("--once", is_flag=True, help="Print the current state and exit.")
@pass_state
def live_cmd(state: State, execution: str | None, once: bool) -> None:
    """Live view of a retraining execution (default: the newest; waits for one)."""
    from driftstack.tools import watch as w

    view = w.watch(w.resources_from(state.outputs()), execution, once=once,
                   aws_clients=w.clients(state.target))
    if view is not None and view.status not in ("RUNNING", "SUCCEEDED"):
        raise click.exceptions.Exit(EXIT_FAILED)


watch.add_command(decisions_list, "list")  # past runs and their decisions: the same listing


@watch.command("checks")
@click.option("--limit", type=click.IntRange(1, 500), default=10, show_default=True)
@json_option
@pass_state
def checks_cmd(state: State, limit: int, as_json: bool) -> None:
    """Recent drift checks, newest first."""
    from driftstack.adapters import drift_store
    from driftstack.tools.watch import render_checks

    checks = drift_store.list_checks(state.table("HistoryTableName"), limit)
    if as_json:
        echo_json(checks)
    else:
        console().print(render_checks(checks) if checks else "no drift checks yet")
