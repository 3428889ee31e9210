"""The project's one MLflow store: training (`driftstack train`, spark_jobs), the demo, the retraining
job the workflow starts on this host, and `driftstack mlflow` all name it from here.

    <state dir>/mlflow/mlflow.db        runs, metrics, the model registry (sqlite)
    <state dir>/mlflow/artifacts/       the runs' files (ONNX model, metadata.json, profile.json)

The state dir is DRIFTSTACK_STATE_DIR, else .state in the repository. Here, below both the tools and
the Spark jobs (.importlinter), so neither has its own copy of the rule. Host-side only: the Lambda
functions never open the store.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # driftstack/settings/mlflow_store.py -> the repository
STATE_DIR_ENV = "DRIFTSTACK_STATE_DIR"
UI_HOST, UI_PORT = "127.0.0.1", 5000  # where `driftstack mlflow` serves the UI by default


@dataclass(frozen=True)
class MlflowStore:
    root: Path

    @property
    def db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.db}"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"


def project_store(environ: Mapping[str, str] | None = None) -> MlflowStore:
    env = os.environ if environ is None else environ
    state = Path(env.get(STATE_DIR_ENV) or REPO / ".state")
    return MlflowStore(state.resolve() / "mlflow")


def ui_url(host: str = UI_HOST, port: int = UI_PORT) -> str:
    return f"http://{host}:{port}"


def run_url(experiment_id: str | None, run_id: str, base: str | None = None) -> str:
    """The run's page in the MLflow UI (`driftstack mlflow`)."""
    base = (base or ui_url()).rstrip("/")
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}" if experiment_id else f"{base}/#/runs/{run_id}"
