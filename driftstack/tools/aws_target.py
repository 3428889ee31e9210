"""Where the tools send their AWS calls — LocalStack or AWS — decided once, the way the AWS CLI does.

Precedence, highest first (as `aws` has it): the CLI options ``--endpoint-url``, ``--profile``,
``--region``; then the environment (AWS_ENDPOINT_URL, AWS_PROFILE, AWS_REGION / AWS_DEFAULT_REGION;
boto3 itself reads the service-specific AWS_ENDPOINT_URL_<SERVICE> and the profile's config); then
LocalStack on this host when its state directory exists (``driftstack up`` made it); else real AWS.

Every boto3 client of the tools and the API client's base URL come from one :class:`Target`, so
boto3 calls and HTTP calls never talk to different hosts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

LOCALSTACK_REGION = "us-east-1"
LOCALSTACK_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
# How an endpoint was chosen: an option overrides the service-specific variables (like `aws
# --endpoint-url`); one from the environment leaves them to boto3.
FROM_OPTION, FROM_ENV, FROM_LOCALSTACK_STATE = "option", "environment", "LocalStack state"


@dataclass(frozen=True)
class Target:
    endpoint_url: str | None = None  # None: real AWS
    profile: str | None = None
    region: str | None = None
    endpoint_source: str | None = None

    @property
    def is_local(self) -> bool:
        return self.endpoint_url is not None

    def describe(self) -> str:
        if self.is_local:
            return f"LocalStack at {self.endpoint_url}"
        return "AWS" + "".join(f", {k} {v}" for k, v in (("profile", self.profile), ("region", self.region)) if v)

    @cached_property
    def _session(self):
        """One boto3 session per target: credentials and config are resolved once."""
        import boto3

        kwargs: dict[str, str] = {}
        if self.profile:
            kwargs["profile_name"] = self.profile
        if self.region:
            kwargs["region_name"] = self.region
        elif self.is_local:
            kwargs["region_name"] = LOCALSTACK_REGION
        if self.is_local and not self.profile and not os.environ.get("AWS_ACCESS_KEY_ID"):
            kwargs.update(LOCALSTACK_CREDENTIALS)  # LocalStack accepts any; boto3 insists on some
        return boto3.Session(**kwargs)

    def _endpoint_kwargs(self, service: str) -> dict:
        from botocore.config import Config

        kwargs: dict = {}
        if self.endpoint_source != FROM_ENV and self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        if self.is_local and service == "s3":
            kwargs["config"] = Config(s3={"addressing_style": "path"})  # no bucket.localhost DNS offline
        return kwargs

    def client(self, service: str):
        return self._session.client(service, **self._endpoint_kwargs(service))

    def resource(self, service: str):
        return self._session.resource(service, **self._endpoint_kwargs(service))

    def export(self, environ: MutableMapping[str, str] | None = None) -> None:
        """Write the target into the environment, for code that builds its own clients (the training
        job, the CDK CLI): they then reach the same place as the tools."""
        env = os.environ if environ is None else environ
        if self.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
            if self.endpoint_source == FROM_OPTION:
                for key in [k for k in env if k.startswith("AWS_ENDPOINT_URL_")]:
                    del env[key]
            if not self.profile:
                env.setdefault("AWS_ACCESS_KEY_ID", LOCALSTACK_CREDENTIALS["aws_access_key_id"])
                env.setdefault("AWS_SECRET_ACCESS_KEY", LOCALSTACK_CREDENTIALS["aws_secret_access_key"])
        if self.profile:
            env["AWS_PROFILE"] = self.profile
        region = self.region or (LOCALSTACK_REGION if self.is_local else None)
        if region:
            env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region


@contextmanager
def environment_restored() -> Iterator[None]:
    """Give os.environ back as it was: :meth:`Target.export` changes it for one command, and a
    command run in-process (tests, a notebook) must not send the next one elsewhere."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def localstack_url_from_state() -> str | None:
    """The URL of this host's LocalStack when `driftstack up` has run here (running or not)."""
    from driftstack.tools import localstack_host

    st = localstack_host.status()
    if st.running and st.url:
        return st.url
    if Path(localstack_host.DEFAULT_STATE_DIR).exists():
        port = int(os.environ.get("DRIFTSTACK_LOCALSTACK_PORT") or localstack_host.DEFAULT_PORT)
        return f"http://localhost:{port}"
    return None


def resolve(endpoint_url: str | None = None, profile: str | None = None, region: str | None = None,
            environ: Mapping[str, str] | None = None) -> Target:
    env = os.environ if environ is None else environ
    profile = profile or env.get("AWS_PROFILE") or None
    region = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
    if endpoint_url:
        return Target(endpoint_url.rstrip("/"), profile, region, FROM_OPTION)
    if env.get("AWS_ENDPOINT_URL"):
        return Target(env["AWS_ENDPOINT_URL"].rstrip("/"), profile, region, FROM_ENV)
    if not profile and (url := localstack_url_from_state()):
        return Target(url, None, region, FROM_LOCALSTACK_STATE)
    return Target(None, profile, region)
