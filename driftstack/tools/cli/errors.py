"""Failures as one line a person can act on: what went wrong and the command to run.

The root group (:class:`driftstack.tools.cli.root.DriftstackGroup`) sends every exception a command
raises through :func:`as_click_error`, so no command handles connection errors on its own and none
ends in a traceback (``--debug`` shows it).

Exit codes: 0 ok, 1 the operation failed (the message says why), 2 usage error (click's), 3 the
environment is not ready (LocalStack not running, stack not deployed, no credentials: the message
names the command to run first).
"""

from __future__ import annotations

import click

EXIT_FAILED, EXIT_USAGE, EXIT_NOT_READY = 1, 2, 3

# ClientError codes that mean "a resource of the stack is not there": the stack is not deployed
# (or was destroyed) on this target.
MISSING_RESOURCE_CODES = {"ResourceNotFoundException", "NoSuchBucket", "StateMachineDoesNotExist",
                          "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "NotFoundException"}
# ClientError codes that mean the credentials are not accepted (or not allowed).
CREDENTIAL_CODES = {"UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException",
                    "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "AccessDeniedException"}


class CliError(click.ClickException):
    """One line on stderr, ``error: <message>``."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))  # one line, whatever the cause wrote

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=True)


class Failed(CliError):
    exit_code = EXIT_FAILED


class NotReady(CliError):
    exit_code = EXIT_NOT_READY


def _where(target) -> str:
    return target.describe() if target is not None else "the configured endpoint"


def explain(exc: BaseException, target=None, stack: str = "Driftstack") -> CliError | None:
    """The one-line error for a failure to reach LocalStack/AWS or a missing stack; None otherwise."""
    import requests
    from botocore import exceptions as be

    from driftstack.tools.api_client import StackNotDeployed
    from driftstack.tools.localstack_host import LocalStackHostError

    local = target is not None and target.is_local
    if isinstance(exc, (StackNotDeployed, LocalStackHostError)):
        return NotReady(str(exc))
    if isinstance(exc, (be.ConnectionError, be.ReadTimeoutError, requests.ConnectionError, requests.Timeout)):
        if local:
            return NotReady(f"LocalStack is not reachable at {target.endpoint_url} — start it with `driftstack up` "
                            "(or `make up`)")
        return NotReady(f"AWS is not reachable ({exc}) — check the network, or --region / AWS_REGION")
    if isinstance(exc, be.ProfileNotFound):
        return NotReady(f"{exc} — create it with `aws configure --profile <name>` or choose another with --profile")
    if isinstance(exc, (be.NoCredentialsError, be.PartialCredentialsError)):
        return NotReady("no AWS credentials found — configure a profile (`aws configure`, then --profile or "
                        "AWS_PROFILE), or use LocalStack: `driftstack up`")
    if isinstance(exc, be.NoRegionError):
        return NotReady("no AWS region configured — pass --region or set AWS_REGION")
    if isinstance(exc, be.ClientError):
        err = exc.response.get("Error", {})
        code, message = str(err.get("Code", "")), str(err.get("Message", exc))
        if code == "ExecutionDoesNotExist":  # a name the user typed, not a missing stack
            return Failed(f"{message} — see `driftstack watch list`")
        if code in CREDENTIAL_CODES:
            return NotReady(f"{_where(target)} refused the call ({code}: {message}) — check the credentials "
                            "(--profile / AWS_PROFILE)")
        if code in MISSING_RESOURCE_CODES or "does not exist" in message:
            return NotReady(f"stack {stack} is not deployed on {_where(target)} ({code}: {message}) — deploy it "
                            f"with `driftstack deploy`" + (" (or `driftstack up`)" if local else ""))
    return None


def as_click_error(exc: Exception, target=None, stack: str = "Driftstack") -> CliError:
    """Every other failure: one line naming the exception (``--debug`` shows the traceback)."""
    known = explain(exc, target, stack)
    if known is not None:
        return known
    first = (str(exc).strip().splitlines() or [""])[0]
    return Failed(f"{type(exc).__name__}: {first} (rerun with --debug for the traceback)")
