"""boto3 clients for the serving functions: explicit timeouts and bounded retries (a slow
DynamoDB must turn into a fallback, not a hung request) and path-style S3 when an endpoint
override (LocalStack) is set.  Create them at cold start; they are reused across invocations."""

from __future__ import annotations

import os

import boto3
from botocore.config import Config


def client(service: str, *, timeout: float | None = None, max_attempts: int = 3):
    kwargs = {"retries": {"max_attempts": max_attempts, "mode": "standard"}}
    if timeout is not None:
        kwargs.update(connect_timeout=timeout, read_timeout=timeout)
    if service == "s3" and (os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")):
        kwargs["s3"] = {"addressing_style": "path"}
    return boto3.client(service, config=Config(**kwargs))


def dynamodb_table(name: str, *, timeout: float | None = None, max_attempts: int = 3):
    """A boto3 resource Table (what :mod:`driftstack.registry` expects)."""
    kwargs = {"retries": {"max_attempts": max_attempts, "mode": "standard"}}
    if timeout is not None:
        kwargs.update(connect_timeout=timeout, read_timeout=timeout)
    return boto3.resource("dynamodb", config=Config(**kwargs)).Table(name)
