"""`driftstack mlflow`: the MLflow UI over the project's one store (driftstack.settings.mlflow_store),
where `driftstack train`, the demo and the retraining job register their runs and models."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import click

from driftstack.settings.mlflow_store import (
    UI_HOST,
    UI_PORT,
    MlflowStore,
    project_store,
    ui_url,
)
from driftstack.tools.cli.errors import Failed, NotReady
from driftstack.tools.cli.root import cli

STOP_SECONDS = 10.0  # after Ctrl-C, how long the server gets for each step of stopping


def server_env() -> dict[str, str]:
    """No job runner (MLflow's GenAI jobs, 7 more processes): the UI needs runs, models and artifacts."""
    return {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def server_argv(store: MlflowStore, host: str, port: int, python: str = sys.executable) -> list[str]:
    """`mlflow server` on the store: runs and registry from its sqlite db, run files served from its
    artifacts dir; one worker (the UI is for one person, the machine may be small)."""
    return [python, "-m", "mlflow", "server", "--backend-store-uri", store.tracking_uri,
            "--artifacts-destination", store.artifacts.as_uri(), "--host", host, "--port", str(port),
            "--workers", "1"]


def _port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def serve(argv: list[str]) -> int:
    """Run the server in the foreground until it ends or Ctrl-C; returns its exit code (0 after Ctrl-C).

    Its own process group: `mlflow server` starts uvicorn and a job runner as children, and
    stopping must reach all of them, not only the parent."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True, env=server_env())
    previous = signal.signal(signal.SIGTERM, _interrupted)  # `kill`, `timeout`: stop it as Ctrl-C does
    try:
        return proc.wait()
    except KeyboardInterrupt:
        stop(proc)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted(signum, frame):
    raise KeyboardInterrupt


def stop(proc: subprocess.Popen) -> None:
    """SIGINT to the server's group (what Ctrl-C sends), SIGTERM, SIGKILL: each when the server has not
    ended after the one before; then SIGTERM to whatever of its group outlived it."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        _signal_group(proc.pid, sig)
        try:
            proc.wait(STOP_SECONDS)
            break
        except subprocess.TimeoutExpired:
            continue
    _signal_group(proc.pid, signal.SIGTERM)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


@cli.command("mlflow")
@click.option("--port", type=click.IntRange(1, 65535), default=UI_PORT, show_default=True)
@click.option("--host", default=UI_HOST, show_default=True,
              help="Interface to listen on (127.0.0.1: this machine only).")
def mlflow_cmd(port: int, host: str) -> None:
    """MLflow UI on the project's runs and models.

    One store for `driftstack train`, the demo and retraining (<state dir>/mlflow); serves it in
    the foreground until Ctrl-C."""
    store = project_store()
    if _port_taken(host, port):
        raise NotReady(f"port {port} on {host} is in use (another `driftstack mlflow`?) — choose one with --port")
    store.artifacts.mkdir(parents=True, exist_ok=True)
    click.echo(f"MLflow UI: {ui_url(host, port)}   store {store.db}   (Ctrl-C stops it)")
    code = serve(server_argv(store, host, port))
    if code:
        raise Failed(f"the MLflow server exited with code {code}")
