"""`driftstack status`: the deployment at a glance, as tables (``--json``: one document)."""

from __future__ import annotations

from typing import Any

import click

from driftstack.tools.cli.output import console, echo_json, json_option
from driftstack.tools.cli.root import State, cli, pass_state


def _stack(state: State) -> dict[str, Any]:
    """The stack as CloudFormation has it; raises when the target cannot be reached (exit 3)."""
    found = state.client("cloudformation").describe_stacks(StackName=state.stack)["Stacks"][0]
    return {"name": found["StackName"], "status": found["StackStatus"],
            "updated": str(found.get("LastUpdatedTime") or found.get("CreationTime") or "")}


def _target(state: State) -> dict[str, Any]:
    if state.target.is_local:
        from dataclasses import asdict

        from driftstack.tools import localstack_host

        st = localstack_host.status()
        mine = st.running and st.url == state.target.endpoint_url
        return {"endpoint": state.target.endpoint_url, "localstack": asdict(st) if mine else None}
    sts = state.client("sts")
    ident = sts.get_caller_identity()
    return {"account": ident["Account"], "identity": ident["Arn"], "profile": state.target.profile,
            "region": sts.meta.region_name}


def _serving(state: State) -> dict[str, Any]:
    from driftstack.tools.operations import _safe

    def call(path: str):
        code, body = state.api().call("GET", path)
        return body if code < 400 else f"unavailable: HTTP {code}: {body}"

    return {"health": _safe(lambda: call("/health")), "model": _safe(lambda: call("/model"))}


def collect(state: State, recent: int) -> dict[str, Any]:
    from driftstack.tools import operations

    doc: dict[str, Any] = {"target": _target(state), "stack": _stack(state)}
    doc.update(_serving(state))
    doc["operations"] = operations.collect(state.target, state.outputs(), checks=recent, decisions=recent)
    return doc


@cli.command()
@click.option("--recent", type=click.IntRange(1, 50), default=3, show_default=True,
              help="How many drift checks and decisions to show.")
@json_option
@pass_state
def status(state: State, recent: int, as_json: bool) -> None:
    """The deployment at a glance, as tables.

    Where the CLI points, the stack, the champion model, the rollout, recent drift checks and
    decisions, traffic and alarms (--json: one document)."""
    doc = collect(state, recent)
    if as_json:
        echo_json(doc)
        return
    from driftstack.tools.cli.status_view import render_status

    out = console()
    for part in render_status(state.target.describe(), doc):
        out.print(part)
