"""The root `driftstack` group: global AWS options, the per-run state, and the one place where a
failure becomes a one-line error (:class:`DriftstackGroup`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from driftstack.tools.aws_target import Target, environment_restored, resolve
from driftstack.tools.cli.errors import as_click_error
from driftstack.tools.deploy import DEFAULT_STACK


@dataclass
class State:
    """What every command needs: where to send AWS calls and which stack to read."""

    target: Target
    stack: str = DEFAULT_STACK
    debug: bool = False
    _outputs: dict[str, str] | None = field(default=None, repr=False)
    _api: object = field(default=None, repr=False)

    def outputs(self) -> dict[str, str]:
        if self._outputs is None:
            from driftstack.tools.api_client import deployed_outputs

            self._outputs = deployed_outputs(self.target, self.stack)
        return self._outputs

    def output(self, suffix: str) -> str:
        from driftstack.tools.api_client import _output

        return _output(self.outputs(), suffix)

    def client(self, service: str):
        return self.target.client(service)

    def table(self, output_suffix: str):
        return self.target.resource("dynamodb").Table(self.output(output_suffix))

    def api(self):
        """The API client of the stack (its key read once)."""
        if self._api is None:
            from driftstack.tools.api_client import ApiClient

            self._api = ApiClient.from_stack(stack=self.stack, target=self.target)
        return self._api


pass_state = click.make_pass_decorator(State)


class DriftstackGroup(click.Group):
    """Turns whatever a command raises into one line and an exit code (errors.py), once for all
    commands and subgroups (they run inside the root's invoke)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            state = ctx.find_object(State)
            if state and state.debug:
                raise
            raise as_click_error(exc, state.target if state else None,
                                 state.stack if state else DEFAULT_STACK) from exc


class DefaultCommandGroup(click.Group):
    """A group that runs ``default`` when no subcommand is named: `driftstack watch` is
    `driftstack watch live`, `driftstack watch NAME` is `driftstack watch live NAME`."""

    def __init__(self, *args, default: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.default = default

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in self.get_help_option_names(ctx)):
            args = [self.default, *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter) -> None:
        formatter.write_usage(ctx.command_path, f"[{self.default.upper()} OPTIONS] | COMMAND [ARGS]...")


@click.group(cls=DriftstackGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--endpoint-url", "--endpoint", "endpoint_url", metavar="URL",
              help="Send AWS calls here (LocalStack); overrides AWS_ENDPOINT_URL. Default: this host's "
                   "LocalStack once `driftstack up` has run, else AWS.")
@click.option("--profile", metavar="NAME", help="AWS profile; overrides AWS_PROFILE.")
@click.option("--region", metavar="REGION", help="AWS region; overrides AWS_REGION / AWS_DEFAULT_REGION.")
@click.option("--stack", default=DEFAULT_STACK, show_default=True, help="CloudFormation stack name.")
@click.option("--debug", is_flag=True, help="Show the traceback of a failure.")
@click.version_option(package_name="driftstack")
@click.pass_context
def cli(ctx: click.Context, endpoint_url: str | None, profile: str | None, region: str | None, stack: str,
        debug: bool) -> None:
    """driftstack: Spark-trained models served from Lambda, watched for drift, retrained safely.

    AWS calls go where the AWS CLI would send them (--endpoint-url/--profile/--region, then
    AWS_ENDPOINT_URL/AWS_PROFILE/AWS_REGION), else to this host's LocalStack once `driftstack up`
    has run, else to AWS. Exit codes: 1 failed, 2 usage, 3 environment not ready.
    """
    state = State(resolve(endpoint_url, profile, region), stack, debug)
    ctx.with_resource(environment_restored())  # for this command only
    state.target.export()  # code that builds its own clients (training job, CDK CLI) follows the target
    ctx.obj = state
