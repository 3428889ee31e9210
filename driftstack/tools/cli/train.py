"""`driftstack train`: train, verify and publish a model with local Spark."""

from __future__ import annotations

import click

from driftstack.tools.cli.errors import Failed, NotReady
from driftstack.tools.cli.output import echo_json, json_option
from driftstack.tools.cli.root import cli


@cli.command(context_settings={"ignore_unknown_options": True})
@click.option("--rows", type=int, default=100_000, show_default=True, help="Generated trips (without --data).")
@click.option("--month", default="2023-01", show_default=True, help="Month(s) to generate, YYYY-MM[,YYYY-MM].")
@click.option("--drift", type=click.Choice(["none", "covariate", "concept", "both"]), default="none",
              show_default=True, help="Generator drift preset.")
@click.option("--data", type=click.Path(), help="Real TLC Parquet file or folder instead of generated trips.")
@click.option("--champion/--no-champion", default=True, show_default=True,
              help="Make this model the champion if none is set yet.")
@json_option
@click.argument("train_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def train(ctx: click.Context, rows: int, month: str, drift: str, data: str | None, champion: bool,
          as_json: bool, train_args: tuple[str, ...]) -> None:
    """Train, verify and publish a model with local Spark. Extra arguments go to the training job
    (see `python -m spark_jobs.train --help`, e.g. --max-iter 30). Spark's own output goes to a
    log file under .state/logs (its path is printed); the terminal shows progress and a summary."""
    from driftstack.tools.api_client import StackNotDeployed, _output, stack_outputs

    try:
        outputs = stack_outputs()
    except StackNotDeployed as exc:
        raise NotReady(str(exc)) from exc
    argv = ["--bucket", _output(outputs, "BucketName"), "--months", month, "--drift", drift]
    argv += ["--data", data] if data else ["--generate-rows", str(rows)]
    if champion:
        argv += ["--set-champion-pointer", "--models-table", _output(outputs, "ModelsTableName")]
    from rich.console import Console

    from driftstack.tools import train_view

    console = Console(stderr=as_json)  # with --json, stdout holds only the document
    try:
        result = train_view.train(argv + list(train_args), console)
    except train_view.TrainingFailed as exc:
        raise Failed(str(exc)) from exc
    if as_json:
        echo_json(result)
    else:
        console.print(train_view.summary_table(result))
