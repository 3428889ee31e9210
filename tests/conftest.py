"""Session fixtures: a real LocalStack on the host (started once per test session) and AWS clients.

Tests marked ``localstack`` get it automatically. Set DRIFTSTACK_LOCALSTACK_URL to reuse a LocalStack
that is already running (e.g. `driftstack localstack start`); otherwise the session
starts its own on a free port, with its own state directory, and stops it (and every Lambda process)
at the end.
"""

from __future__ import annotations

import io
import os
import shutil
import time
import zipfile
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from driftstack.tools import localstack_host

REPO = Path(__file__).resolve().parents[1]
LAMBDA_FIXTURES = Path(__file__).resolve().parent / "lambda_fixtures"
REGION = "us-east-1"
ACCOUNT = "000000000000"
LAMBDA_ROLE = f"arn:aws:iam::{ACCOUNT}:role/driftstack-test-lambda"
SESSION_STATES = localstack_host.STATE_ROOT / "pytest-localstack"


def _remove_stale_states() -> None:
    """Leftovers of crashed sessions: dirs are named by the pytest pid; other live sessions are kept."""
    for d in SESSION_STATES.glob("*"):
        owner = d.name.rsplit("-", 1)[-1]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            if d.is_dir():
                localstack_host.stop(d)  # its LocalStack, if it survived
                shutil.rmtree(d, ignore_errors=True)
            else:
                d.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def localstack():
    """Endpoint URL of a healthy LocalStack; AWS_* env points every boto3 client at it."""
    url = os.environ.get("DRIFTSTACK_LOCALSTACK_URL")
    state = None
    if url:
        if localstack_host.health(url) is None:
            pytest.fail(f"DRIFTSTACK_LOCALSTACK_URL={url} does not answer /_localstack/health")
    else:
        _remove_stale_states()
        state = SESSION_STATES / str(os.getpid())
        try:
            url = localstack_host.start(localstack_host.free_port(), state).url
        except localstack_host.LocalStackHostError as e:
            pytest.fail(f"cannot start LocalStack: {e}")
    (SESSION_STATES).mkdir(parents=True, exist_ok=True)
    aws_config = SESSION_STATES / f"aws-config-{os.getpid()}"
    aws_config.write_text("[default]\ns3 =\n    addressing_style = path\n")  # no bucket.localhost DNS
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", url)
        mp.setenv("AWS_ACCESS_KEY_ID", "test")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "test")
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        mp.setenv("AWS_REGION", REGION)
        mp.setenv("AWS_CONFIG_FILE", str(aws_config))
        mp.delenv("AWS_PROFILE", raising=False)
        mp.delenv("AWS_SESSION_TOKEN", raising=False)
        try:
            yield url
        finally:
            aws_config.unlink(missing_ok=True)
            if state is not None:
                localstack_host.stop(state)
                shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(autouse=True)
def _localstack_for_marked_tests(request, monkeypatch):
    """Tests marked `localstack` get the session's LocalStack. All others are kept away from it:
    once the session fixture has pointed AWS_ENDPOINT_URL at LocalStack, a later moto test would
    otherwise send its calls there instead of to moto."""
    if request.node.get_closest_marker("localstack"):
        request.getfixturevalue("localstack")
    else:
        for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE"):
            monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def aws_client(localstack):
    """Factory: aws_client("s3") -> a boto3 client for the session's LocalStack."""
    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2},
                    read_timeout=120, connect_timeout=5)

    def make(service: str, **kwargs):
        return boto3.client(service, endpoint_url=localstack, region_name=REGION,
                            aws_access_key_id="test", aws_secret_access_key="test",
                            config=config, **kwargs)

    return make


def zip_dir(directory: Path, prefix: str = "") -> bytes:
    """Zip a directory's files (no __pycache__) with paths under prefix, in memory."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, prefix + str(path.relative_to(directory)))
    return buf.getvalue()


@pytest.fixture(scope="session")
def fixture_code_zip() -> bytes:
    return zip_dir(LAMBDA_FIXTURES)


@pytest.fixture(scope="session")
def lambda_function(aws_client, fixture_code_zip):
    """Factory: create a python3.12 function from tests/lambda_fixtures and wait until Active.

    lambda_function("handlers.echo", timeout=3, env={...}, layers=[arn]) -> function name.
    Functions are deleted at the end of the session (their runtime processes stop with them)."""
    lam = aws_client("lambda")
    created = []

    def create(handler: str, *, timeout: int = 10, env: dict | None = None, layers: list[str] | None = None,
               runtime: str = "python3.12", name: str | None = None, memory: int = 256) -> str:
        name = name or f"t-{handler.replace('.', '-').replace('_', '-')}-{len(created)}-{int(time.time() * 1000) % 100000}"
        lam.create_function(
            FunctionName=name, Runtime=runtime, Role=LAMBDA_ROLE, Handler=handler,
            Code={"ZipFile": fixture_code_zip}, Timeout=timeout, MemorySize=memory,
            Environment={"Variables": env or {}}, Layers=layers or [],
        )
        created.append(name)
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
        return name

    yield create
    for name in created:
        try:
            lam.delete_function(FunctionName=name)
        except lam.exceptions.ResourceNotFoundException:
            pass
