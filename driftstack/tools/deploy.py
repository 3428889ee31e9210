"""Deploy the CDK app to LocalStack with cdklocal (or to AWS with cdk), offline:
`driftstack deploy` / `driftstack destroy` (the target as the CLI resolves it).

cdklocal only sets environment variables; everything it needs is set here so the same call works
from the CLI, the demo and the tests. The CDK CLI makes no network calls (telemetry, version check
and notices are off).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # driftstack/tools/deploy.py -> the repository
CDK_DIR = ROOT / "cdk"
STATE_DIR = Path(os.environ.get("DRIFTSTACK_STATE_DIR", ROOT / ".state"))
DEFAULT_STACK = "Driftstack"


class DeployError(RuntimeError):
    pass


def cdk_env(endpoint: str | None) -> dict[str, str]:
    """Environment for the CDK CLI: offline, and pointed at LocalStack when ``endpoint`` is given."""
    env = dict(os.environ)
    env.update({
        "CDK_DISABLE_CLI_TELEMETRY": "1",
        "CDK_DISABLE_VERSION_CHECK": "1",
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    })
    if endpoint:
        env.update({
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_S3_FORCE_PATH_STYLE": "1",
            "AWS_ENVAR_ALLOWLIST": "AWS_S3_FORCE_PATH_STYLE",
            "AWS_ACCESS_KEY_ID": env.get("AWS_ACCESS_KEY_ID", "test"),
            "AWS_SECRET_ACCESS_KEY": env.get("AWS_SECRET_ACCESS_KEY", "test"),
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "CDK_DEFAULT_ACCOUNT": "000000000000",
            "CDK_DEFAULT_REGION": "us-east-1",
        })
    return env


def _cli(endpoint: str | None) -> str:
    name = "cdklocal" if endpoint else "cdk"
    path = CDK_DIR / "node_modules" / ".bin" / name
    if not path.exists():
        raise DeployError(f"{path} not found: run `make setup` to install the CDK CLI")
    return str(path)


def _run(args: list[str], env: dict[str, str], cwd: Path, quiet: bool) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=env, text=True,
                          stdout=subprocess.PIPE if quiet else None,
                          stderr=subprocess.STDOUT if quiet else None)
    if proc.returncode != 0:
        tail = (proc.stdout or "")[-4000:]
        raise DeployError(f"`{' '.join(args[:2])}` failed (exit {proc.returncode}):\n{tail}")
    return proc


def build_assets() -> None:
    """Build the Lambda layers the stack references (skips when up to date)."""
    build = ROOT / "layers" / "build.py"
    if build.exists():
        subprocess.run([sys.executable, str(build)], check=True)


def deploy(endpoint: str | None = "http://localhost:4566", *, app_dir: Path = CDK_DIR,
           stack: str = DEFAULT_STACK, context: dict[str, str] | None = None,
           outputs_file: Path | None = None, quiet: bool = True, build: bool = True,
           hotswap: bool = False) -> dict[str, str]:
    """Bootstrap (once) and deploy ``stack`` from the CDK app in ``app_dir``; returns its outputs."""
    if build:
        build_assets()
    env = cdk_env(endpoint)
    cli = _cli(endpoint)
    outputs_file = outputs_file or STATE_DIR / f"cdk-outputs-{stack}.json"
    outputs_file.parent.mkdir(parents=True, exist_ok=True)
    out_dir = ROOT / "build" / f"cdk.out-{stack}"
    common = ["--app", f"{sys.executable} app.py", "--output", str(out_dir), "--no-notices"]
    for key, value in (context or {}).items():
        common += ["--context", f"{key}={value}"]
    common += ["--context", f"stack_name={stack}"]
    if endpoint:
        _run([cli, "bootstrap", *common, "aws://000000000000/us-east-1"], env, app_dir, quiet)
    args = [cli, "deploy", stack, *common, "--require-approval", "never",
            "--outputs-file", str(outputs_file)]
    if hotswap:
        args.append("--hotswap-fallback")
    _run(args, env, app_dir, quiet)
    return json.loads(outputs_file.read_text()).get(stack, {})


def destroy(endpoint: str | None = "http://localhost:4566", *, app_dir: Path = CDK_DIR,
            stack: str = DEFAULT_STACK, context: dict[str, str] | None = None,
            quiet: bool = True) -> None:
    env = cdk_env(endpoint)
    common = ["--app", f"{sys.executable} app.py", "--output", str(ROOT / "build" / f"cdk.out-{stack}"),
              "--no-notices", "--context", f"stack_name={stack}"]
    for key, value in (context or {}).items():
        common += ["--context", f"{key}={value}"]
    _run([_cli(endpoint), "destroy", stack, *common, "--force"], env, app_dir, quiet)
