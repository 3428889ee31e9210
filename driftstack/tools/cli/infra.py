"""Infrastructure: `driftstack up|down|deploy|destroy` and `driftstack localstack ...`."""

from __future__ import annotations

import time
from dataclasses import asdict

import click

from driftstack.tools import deploy as cdk
from driftstack.tools import localstack_host as lh
from driftstack.tools.aws_target import FROM_OPTION, Target
from driftstack.tools.cli.errors import Failed, NotReady
from driftstack.tools.cli.output import echo_json, json_option
from driftstack.tools.cli.root import State, cli, pass_state

port_option = click.option("--port", type=int, default=lh.DEFAULT_PORT, show_default=True,
                           envvar="DRIFTSTACK_LOCALSTACK_PORT", help="LocalStack's port on this host.")


def _deploy(state: State, endpoint: str | None, quiet: bool) -> dict[str, str]:
    started = time.monotonic()
    try:
        outputs = cdk.deploy(endpoint, stack=state.stack, quiet=quiet)
    except cdk.DeployError as exc:
        raise Failed(str(exc).splitlines()[0] + " (the CDK output above says why)") from exc
    click.echo(f"deployed {state.stack} to {state.target.describe()} in {time.monotonic() - started:.0f}s", err=True)
    return outputs


def _print_outputs(outputs: dict[str, str]) -> None:
    for key, value in sorted(outputs.items()):
        click.echo(f"  {key} = {value}")


@cli.command()
@port_option
@click.option("--no-deploy", is_flag=True, help="Only start LocalStack.")
@pass_state
def up(state: State, port: int, no_deploy: bool) -> None:
    """Start LocalStack here and deploy the stack (idempotent)."""
    st = lh.start(port=port)
    click.echo(f"LocalStack healthy at {st.url} (pid {st.pid})")
    if not no_deploy:
        state.target = Target(st.url, None, state.target.region, FROM_OPTION)  # the LocalStack just started
        state.target.export()
        _print_outputs(_deploy(state, st.url, quiet=True))


@cli.command()
def down() -> None:
    """Stop LocalStack and everything it started.

    Lambda runtimes and training jobs included (its whole process group)."""
    click.echo("stopped" if lh.stop() else "not running")


@cli.command("deploy")
@json_option
@pass_state
def deploy_cmd(state: State, as_json: bool) -> None:
    """(Re)deploy the stack to the target.

    cdklocal on LocalStack, cdk on AWS; prints the stack outputs."""
    outputs = _deploy(state, state.target.endpoint_url, quiet=False)
    echo_json(outputs) if as_json else _print_outputs(outputs)


@cli.command()
@click.confirmation_option(prompt="Destroy the stack and everything in it?")
@pass_state
def destroy(state: State) -> None:
    """Destroy the deployed stack, its bucket and tables."""
    try:
        cdk.destroy(state.target.endpoint_url, stack=state.stack, quiet=False)
    except cdk.DeployError as exc:
        raise Failed(str(exc).splitlines()[0] + " (the CDK output above says why)") from exc
    click.echo(f"destroyed {state.stack} on {state.target.describe()}")


@cli.group()
def localstack() -> None:
    """LocalStack on this host: start, stop, status, logs."""


@localstack.command("start")
@port_option
def ls_start(port: int) -> None:
    """Start LocalStack in the background (or reuse ours) and wait until healthy."""
    t0 = time.monotonic()
    st = lh.start(port)
    click.echo(f"LocalStack healthy at {st.url} (pid {st.pid}) in {time.monotonic() - t0:.1f}s; state {st.state_dir}")


@localstack.command("stop")
def ls_stop() -> None:
    """Stop LocalStack and its whole process group."""
    click.echo("stopped" if lh.stop() else "not running")


@localstack.command("status")
@json_option
def ls_status(as_json: bool) -> None:
    """Whether LocalStack runs and answers (exit 3 if not)."""
    st = lh.status()
    if as_json:
        echo_json(asdict(st))
    else:
        click.echo(f"LocalStack {'healthy' if st.healthy else 'running, not healthy' if st.running else 'not running'}"
                   + (f" at {st.url} (pid {st.pid})" if st.running else "") + f"; state {st.state_dir}")
    if not (st.running and st.healthy):
        raise click.exceptions.Exit(NotReady.exit_code)


@localstack.command("logs")
@click.option("--lines", type=click.IntRange(1), default=100, show_default=True)
def ls_logs(lines: int) -> None:
    """The last lines of LocalStack's log."""
    click.echo(lh.logs(lines=lines))


@localstack.command("prepare")
def ls_prepare() -> None:
    """One-time preparation (`make setup` runs it): Lambda runtime packages, service catalog."""
    lh.prepare()
    click.echo(f"prepared: Lambda runtime packages in {lh.LAMBDA_RUNTIME_DIR}, service catalog in {lh.CATALOG_CACHE}")
