"""boto3 clients for the serving functions: explicit timeouts and bounded retries (a slow
DynamoDB must turn into a fallback, not a hung request) and path-style S3 when an endpoint
override (LocalStack) is set.  Create them at cold start; they are reused across invocations.

``attempts`` counts every try, the first included (botocore's ``total_max_attempts``; its
``max_attempts`` counts retries only, so ``max_attempts=2`` means three tries)."""

from __future__ import annotations

import os

import boto3
from botocore import handlers
from botocore.config import Config


def _config(timeout: float | None, attempts: int) -> Config:
    kwargs = {"retries": {"total_max_attempts": attempts, "mode": "standard"}}
    if timeout is not None:
        kwargs.update(connect_timeout=timeout, read_timeout=timeout)
    return Config(**kwargs)


def client(service: str, *, timeout: float | None = None, attempts: int = 3, small_writes: bool = False):
    """``small_writes`` (S3): send each PUT's body with its headers instead of waiting for
    ``100 Continue`` first -- one round trip less per write, and against a hanging endpoint one
    second less per attempt (botocore waits up to 1 s for the 100 before sending the body)."""
    config = _config(timeout, attempts)
    if service == "s3" and (os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")):
        config = config.merge(Config(s3={"addressing_style": "path"}))
    c = boto3.client(service, config=config)
    if small_writes:
        c.meta.events.unregister("before-call.s3", handlers.add_expect_header)
    return c


def dynamodb_table(name: str, *, timeout: float | None = None, attempts: int = 3):
    """A boto3 resource Table (what :mod:`driftstack.adapters.registry` expects)."""
    return boto3.resource("dynamodb", config=_config(timeout, attempts)).Table(name)
