"""Drift: `driftstack drift-check` (the deployed Lambda, or --local here) and `driftstack report`."""

from __future__ import annotations

import json

import click

from driftstack.tools.cli.errors import Failed
from driftstack.tools.cli.output import console, echo_json, json_option
from driftstack.tools.cli.root import State, cli, pass_state


def _overrides(ctx, param, values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for value in values:
        field, sep, setting = value.partition("=")
        if not sep or not field:
            raise click.BadParameter(f"{value!r} is not FIELD=VALUE", ctx=ctx, param=param)
        pairs[field.strip()] = setting.strip()
    return pairs


def _run_here(state: State, at: str | None, overrides: dict[str, str], persist: bool) -> dict:
    """The check in this process, reading the request archive directly (what the Lambda does)."""
    from driftstack.adapters import archive
    from driftstack.adapters.drift_store import persist as persist_check
    from driftstack.domain.drift import NO_CHAMPION
    from driftstack.settings import DriftThresholds
    from driftstack.usecases.drift_check import run_check

    bucket = state.output("BucketName")
    slot = int(state.outputs().get("ArchiveSlotMinutes") or archive.DEFAULT_SLOT_MINUTES)
    s3 = state.client("s3")
    doc = run_check(s3=s3, models_table=state.table("ModelsTableName"), layout=archive.Layout(bucket=bucket, slot_minutes=slot),
                    now=at, cfg=DriftThresholds.from_env().build(overrides))
    if persist and doc["status"] != NO_CHAMPION:
        persist_check(doc, s3=s3, bucket=bucket, history_table=state.table("HistoryTableName"))
    return doc


@cli.command("drift-check")
@click.option("--at", help="Check time, ISO-8601 (default now): the window ends there.")
@click.option("--set", "overrides", multiple=True, metavar="FIELD=VALUE", callback=_overrides,
              help="Drift config override, e.g. --set window_minutes=60 (repeatable).")
@click.option("--local", is_flag=True, help="Run the check in this process instead of invoking the deployed "
              "Lambda (never starts retraining).")
@click.option("--no-persist", is_flag=True, help="With --local: print the result, write nothing.")
@click.option("--ignore-cooldown", is_flag=True, help="Start retraining even within the cooldown.")
@json_option
@pass_state
def drift_check(state: State, at: str | None, overrides: dict[str, str], local: bool, no_persist: bool,
                ignore_cooldown: bool, as_json: bool) -> None:
    """Run the drift check now and print its result.

    What the schedule does: the deployed check starts retraining when its thresholds are crossed
    (--local runs it here and never retrains)."""
    from driftstack.adapters import drift_store
    from driftstack.domain.drift import json_default
    from driftstack.tools.watch import render_checks

    if no_persist and not local:
        raise click.UsageError("--no-persist needs --local (the deployed check always records its result)")
    if local:
        doc = _run_here(state, at, overrides, persist=not no_persist)
        if as_json:
            click.echo(json.dumps({k: v for k, v in doc.items() if k not in ("reference", "current_proportions")},
                                  indent=2, default=json_default))
            return
        row = json.loads(drift_store.history_item(doc)["doc"]) if "window" in doc else doc
        console().print(render_checks([row]))
    else:
        fn = state.output("DriftCheckFunctionName")
        try:
            doc = drift_store.invoke_check(state.client("lambda"), fn, at=at, ignore_cooldown=ignore_cooldown,
                                           config=overrides)
        except RuntimeError as exc:
            raise Failed(str(exc)) from exc
        if as_json:
            echo_json(doc)
            return
        checks = drift_store.list_checks(state.table("HistoryTableName"), 10)
        mine = [c for c in checks if c["check_id"] == doc.get("check_id")] or [doc]  # not recorded: no champion
        console().print(render_checks(mine))
        doc = mine[0]
    if doc.get("report_uri"):
        click.echo(f"report: {doc['report_uri']}")


@cli.command()
@click.option("--open", "open_it", is_flag=True, help="Open it in the default browser.")
@pass_state
def report(state: State, open_it: bool) -> None:
    """Download the latest drift report (HTML with plots).

    Prints its S3 URI and its local path."""
    from driftstack.adapters import drift_store
    from driftstack.tools.deploy import STATE_DIR

    checks = [c for c in drift_store.list_checks(state.table("HistoryTableName"), 20) if c.get("report_uri")]
    if not checks:
        raise Failed("no drift report yet: wait for the schedule or run `driftstack drift-check`")
    uri = checks[0]["report_uri"]
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    path = STATE_DIR / "reports" / key.rsplit("/", 1)[-1]
    path.parent.mkdir(parents=True, exist_ok=True)
    state.client("s3").download_file(bucket, key, str(path))
    click.echo(f"{uri}\n{path}")
    if open_it:
        import webbrowser

        webbrowser.open(path.as_uri())
