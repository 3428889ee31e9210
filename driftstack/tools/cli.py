"""The driftstack command line: `driftstack --help`.

Exit codes: 0 ok, 1 the operation failed (the message says why), 2 usage error (click's),
3 the environment is not ready (LocalStack not running, stack not deployed: the message says which
command to run first).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from driftstack.contract import features as fc

EXIT_FAILED, EXIT_NOT_READY = 1, 3
DEFAULT_ENDPOINT = "http://localhost:4566"


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


class NotReady(click.ClickException):
    exit_code = EXIT_NOT_READY


def _endpoint(ctx: click.Context) -> str:
    return ctx.obj["endpoint"]


def _client(ctx: click.Context):
    from driftstack.tools.api_client import ApiClient, StackNotDeployed

    try:
        return ApiClient.from_stack(_endpoint(ctx))
    except StackNotDeployed as exc:
        raise NotReady(str(exc)) from exc
    except Exception as exc:  # LocalStack down: connection refused
        raise NotReady(f"cannot reach the API at {_endpoint(ctx)} ({exc}); is LocalStack up? `driftstack up`") from exc


def _aws_env(endpoint: str) -> None:
    """Point boto3 (and the training job it spawns) at LocalStack."""
    os.environ.setdefault("AWS_ENDPOINT_URL", endpoint)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--endpoint", envvar="DRIFTSTACK_ENDPOINT", default=DEFAULT_ENDPOINT, show_default=True,
              help="LocalStack (or AWS-compatible) endpoint URL.")
@click.version_option(package_name="driftstack")
@click.pass_context
def cli(ctx: click.Context, endpoint: str) -> None:
    """driftstack: Spark-trained models served from Lambda, watched for drift, retrained safely."""
    ctx.ensure_object(dict)
    ctx.obj["endpoint"] = endpoint
    _aws_env(endpoint)


# --- infrastructure -------------------------------------------------------------------------

@cli.command()
@click.option("--port", type=int, default=4566, show_default=True)
@click.option("--no-deploy", is_flag=True, help="Only start LocalStack.")
@click.pass_context
def up(ctx: click.Context, port: int, no_deploy: bool) -> None:
    """Start LocalStack on this host and deploy the stack (idempotent)."""
    from driftstack.tools import deploy
    from driftstack.tools import localstack_host

    try:
        st = localstack_host.start(port=port)
    except localstack_host.LocalStackHostError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"LocalStack healthy at {st.url} (pid {st.pid})")
    if not no_deploy:
        with click.progressbar(length=1, label="cdklocal deploy") as bar:
            try:
                outputs = deploy.deploy(st.url)
            except deploy.DeployError as exc:
                raise click.ClickException(str(exc)) from exc
            bar.update(1)
        for k, v in sorted(outputs.items()):
            click.echo(f"  {k} = {v}")


@cli.command()
def down() -> None:
    """Stop LocalStack and every process it started (Lambda runtimes, training jobs)."""
    from driftstack.tools import localstack_host

    localstack_host.stop()
    click.echo("stopped")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """LocalStack, the stack and the serving model at a glance."""
    from dataclasses import asdict

    from driftstack.tools import localstack_host

    st = localstack_host.status()
    out: dict[str, Any] = {"localstack": asdict(st)}
    if st.healthy:
        try:
            client = _client(ctx)
            out["health"] = client.health()[1]
            out["model"] = client.model()[1]
            from driftstack.tools import ops_cli  # rollout, last drift check/decision, alarm states

            out["operations"] = ops_cli.collect(_outputs())
        except NotReady as exc:
            out["stack"] = str(exc.message)
    if as_json:
        _echo_json(out)
    else:
        click.echo(f"LocalStack: {'healthy' if st.healthy else 'not running'}"
                   + (f" at {st.url} (pid {st.pid})" if st.running else ""))
        for key in ("stack", "health", "model"):
            if key in out:
                click.echo(f"{key}: {json.dumps(out[key], default=str)}")
        if "operations" in out:
            from driftstack.tools import ops_cli

            for line in ops_cli.render(out["operations"]):
                click.echo(line)
    if not st.healthy:
        ctx.exit(EXIT_NOT_READY)


@cli.command("deploy")
@click.pass_context
def deploy_cmd(ctx: click.Context) -> None:
    """(Re)deploy the CDK app to the endpoint with cdklocal."""
    from driftstack.tools import deploy

    try:
        outputs = deploy.deploy(_endpoint(ctx), quiet=False)
    except deploy.DeployError as exc:
        raise click.ClickException(str(exc)) from exc
    _echo_json(outputs)


# --- model ----------------------------------------------------------------------------------

@cli.command(context_settings={"ignore_unknown_options": True})
@click.option("--rows", type=int, default=100_000, show_default=True, help="Generated trips (without --data).")
@click.option("--month", default="2023-01", show_default=True, help="Month(s) to generate, YYYY-MM[,YYYY-MM].")
@click.option("--drift", type=click.Choice(["none", "covariate", "concept", "both"]), default="none",
              show_default=True, help="Generator drift preset.")
@click.option("--data", type=click.Path(), help="Real TLC Parquet file or folder instead of generated trips.")
@click.option("--champion/--no-champion", default=True, show_default=True,
              help="Make this model the champion if none is set yet.")
@click.argument("train_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def train(ctx: click.Context, rows: int, month: str, drift: str, data: str | None, champion: bool,
          train_args: tuple[str, ...]) -> None:
    """Train, verify and publish a model with local Spark. Extra arguments go to the training job
    (see `python -m spark_jobs.train --help`, e.g. --max-iter 30)."""
    from driftstack.tools.api_client import StackNotDeployed, _output, stack_outputs

    try:
        outputs = stack_outputs()
    except StackNotDeployed as exc:
        raise NotReady(str(exc)) from exc
    argv = ["--bucket", _output(outputs, "BucketName"), "--months", month, "--drift", drift]
    argv += ["--data", data] if data else ["--generate-rows", str(rows)]
    if champion:
        argv += ["--set-champion-pointer", "--models-table", _output(outputs, "ModelsTableName")]
    from spark_jobs import train as train_job

    code = train_job.main(argv + list(train_args))
    ctx.exit(code or 0)


def _feature_options(func):
    """One --flag per contract feature (e.g. --trip-distance 2.5 --pickup-borough Manhattan)."""
    for f in reversed(fc.FEATURES):
        if f.kind == "categorical":
            typ: Any = click.Choice([str(c) for c in f.categories])
        else:
            typ = int if f.integer else float
        func = click.option(f"--{f.name.replace('_', '-').lower()}", f.name, type=typ,
                            help=f.description)(func)
    return func


@cli.command()
@click.option("--json", "body", type=click.File("r"), help="A JSON file ('-' for stdin): features dict, "
              "{'features': {...}} or {'instances': [...]}.")
@_feature_options
@click.pass_context
def predict(ctx: click.Context, body, **flags) -> None:
    """Predict a fare through the deployed API. Flags override/complete --json."""
    payload: dict[str, Any] = {}
    if body:
        try:
            payload = json.load(body)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--json") from exc
    if "instances" in payload:
        status_code, resp = _client(ctx).predict_batch(payload["instances"])
    else:
        feats = dict(payload.get("features", payload))
        for f in fc.FEATURES:
            v = flags.get(f.name)
            if v is not None:
                feats[f.name] = int(v) if f.kind == "categorical" and isinstance(f.categories[0], int) else v
        status_code, resp = _client(ctx).predict(feats)
    _echo_json(resp)
    if status_code >= 400:
        ctx.exit(EXIT_FAILED)


@cli.command()
@click.option("--count", type=click.IntRange(1, 1_000_000), default=500, show_default=True)
@click.option("--rate", type=float, default=None, help="Requests per second (default: as fast as possible).")
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--profile", "drift", type=click.Choice(["none", "covariate", "concept", "both"]), default="none",
              show_default=True, help="Traffic like the reference month (none) or drifted.")
@click.option("--month", default="2023-01", show_default=True)
@click.option("--seed", type=int, default=None)
@click.option("--feedback/--no-feedback", default=False, show_default=True,
              help="Also send the true fare for each request (ground truth).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def traffic(ctx: click.Context, count: int, rate: float | None, concurrency: int, drift: str, month: str,
            seed: int | None, feedback: bool, as_json: bool) -> None:
    """Send generated trips through the API (bounded: exactly --count requests)."""
    from driftstack.tools import traffic as tr

    client = _client(ctx)
    trips = tr.make_trips(count, month=month, drift=drift, seed=seed)
    with click.progressbar(length=len(trips.features), label=f"traffic ({drift})",
                           file=sys.stderr) as bar:
        result = tr.send(lambda b: client.predict(b), trips.features, rate=rate,
                         concurrency=concurrency, on_progress=bar.update)
    summary = result.summary()
    if feedback:
        pairs = [(resp[1]["request_id"], fare) for resp, fare in zip(result.responses, trips.fares)
                 if resp and resp[0] == 200]
        fb = tr.send(lambda p: client.feedback(*p), pairs, concurrency=concurrency)
        summary["feedback"] = {"sent": fb.sent, "errors": fb.errors}
    if as_json:
        _echo_json(summary)
    else:
        click.echo(" ".join(f"{k}={v}" for k, v in summary.items()))
    if result.errors:
        ctx.exit(EXIT_FAILED)


# --- the loop -------------------------------------------------------------------------------

def _outputs() -> dict[str, str]:
    from driftstack.tools.api_client import StackNotDeployed, stack_outputs

    try:
        return stack_outputs()
    except StackNotDeployed as exc:
        raise NotReady(str(exc)) from exc


def _history_table():
    import boto3

    from driftstack.tools.api_client import _output

    return boto3.resource("dynamodb").Table(_output(_outputs(), "HistoryTableName"))


@cli.command("drift-check")
@click.option("--at", help="Check time, ISO-8601 (default now): the window ends there.")
@click.option("--ignore-cooldown", is_flag=True, help="Start retraining even within the cooldown.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def drift_check(ctx: click.Context, at: str | None, ignore_cooldown: bool, as_json: bool) -> None:
    """Run the deployed drift check now (what the schedule does) and print its result.
    It starts retraining when its thresholds are crossed."""
    import boto3

    from driftstack.adapters import drift_store
    from driftstack.tools.api_client import _output

    fn = _output(_outputs(), "DriftCheckFunctionName")
    try:
        doc = drift_store.invoke_check(boto3.client("lambda"), fn, at=at, ignore_cooldown=ignore_cooldown)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        _echo_json(doc)
        return
    from rich.console import Console

    from driftstack.tools.watch import render_checks

    checks = drift_store.list_checks(_history_table(), 10)
    mine = [c for c in checks if c["check_id"] == doc.get("check_id")] or checks[:1]
    Console().print(render_checks(mine))
    click.echo(f"report: {(mine[0] if mine else doc).get('report_uri')}")


@cli.command()
@click.argument("execution", required=False)
@click.option("--once", is_flag=True, help="Print the current state and exit.")
def watch(execution: str | None, once: bool) -> None:
    """Live view of a retraining execution (default: the newest; waits for one)."""
    from driftstack.tools import watch as w

    _outputs()
    view = w.watch(w.resources(), execution, once=once)
    if view is not None and view.status not in ("RUNNING", "SUCCEEDED"):
        raise click.exceptions.Exit(EXIT_FAILED)


@cli.command()
@click.argument("run_id", required=False)
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def decisions(run_id: str | None, limit: int, as_json: bool) -> None:
    """List retraining decisions (newest first), or show one decision record in full."""
    import boto3

    from driftstack.adapters import decision_store
    from driftstack.tools.api_client import _output

    if run_id:
        record = decision_store.load_record(boto3.client("s3"), _output(_outputs(), "BucketName"), run_id)
        if record is None:
            raise click.ClickException(f"no decision record for run {run_id!r}; see `driftstack decisions`")
        _echo_json(record)
        return
    records = decision_store.list_records(_history_table(), limit)
    if as_json:
        _echo_json(records)
    else:
        from rich.console import Console

        from driftstack.tools.watch import render_runs

        Console().print(render_runs(records))


def _complete(run_id: str, approved: bool, reason: str) -> None:
    import boto3

    from driftstack.adapters import decision_store

    table = _history_table()
    try:
        out = decision_store.complete_approval(boto3.client("stepfunctions"), table, run_id, approved,
                                         by=os.environ.get("USER", "cli"), reason=reason)
    except Exception as exc:  # unknown run, token expired
        raise click.ClickException(f"cannot {'approve' if approved else 'reject'} {run_id}: {exc}") from exc
    _echo_json(out)


@cli.command()
@click.argument("run_id")
@click.option("--reason", default="", help="Recorded with the decision.")
def approve(run_id: str, reason: str) -> None:
    """Approve a promotion waiting for a human (stacks deployed with -c approval=true)."""
    _complete(run_id, True, reason)


@cli.command()
@click.argument("run_id")
@click.option("--reason", required=True, help="Why (recorded with the decision).")
def reject(run_id: str, reason: str) -> None:
    """Reject a promotion waiting for a human."""
    _complete(run_id, False, reason)


@cli.command()
@click.option("--open", "open_it", is_flag=True, help="Open it in the default browser.")
def report(open_it: bool) -> None:
    """Download the latest drift report (HTML with plots) and print its local path."""
    import boto3

    from driftstack.adapters import drift_store
    from driftstack.tools.deploy import STATE_DIR

    checks = [c for c in drift_store.list_checks(_history_table(), 20) if c.get("report_uri")]
    if not checks:
        raise click.ClickException("no drift report yet: wait for the schedule or run `driftstack drift-check`")
    uri = checks[0]["report_uri"]
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    path = STATE_DIR / "reports" / key.rsplit("/", 1)[-1]
    path.parent.mkdir(parents=True, exist_ok=True)
    boto3.client("s3").download_file(bucket, key, str(path))
    click.echo(f"{uri}\n{path}")
    if open_it:
        import webbrowser

        webbrowser.open(path.as_uri())


from driftstack.tools.ops_cli import rollout as _rollout  # noqa: E402 - `driftstack rollout ...`

cli.add_command(_rollout)


def main() -> None:
    cli(obj={})


if __name__ == "__main__":
    main()
