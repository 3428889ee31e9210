"""Where the Spark retraining job runs: a start/poll/cancel interface over training backends.

Spark cannot run inside a Lambda, so the state machine's start Lambda submits the job
(``spark_jobs/retrain.py --spec s3://…``) to a backend and the poll Lambda asks how it is going.
Whatever the backend, the job itself writes its status document (``running`` → ``succeeded`` /
``failed``, with the result key or the error) to S3, so "did it work and where is the result" is
answered the same way everywhere; the backend only adds "is it still alive".

- ``local`` (LocalStack): the job is a host process of the project's Python (path and repo dir come
  from the Lambda environment, set from CDK context). The host Lambda runner runs handlers as host
  processes, so the start Lambda can spawn it; it is double-forked (the Lambda never waits for it)
  and stays in LocalStack's process group, so stopping LocalStack stops it too. Poll notices a job
  that died without writing a final status (pid gone, zombie, or pid reused). Every process of a
  run (the job, its Spark JVM, Spark's Python workers) inherits ``DRIFTSTACK_TRAINING_RUN=<run_id>``;
  cancel stops all of them by that tag (SIGTERM, then SIGKILL after a grace period). A process
  group of its own would be simpler to kill, but would leave the job running when LocalStack stops.
- ``emr-serverless`` (AWS): StartJobRun / GetJobRun / CancelJobRun through boto3.

Lambda-safe: standard library + boto3.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from driftstack.contract.documents import TrainingResult, TrainingStatus, dump, load

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
FINAL = (SUCCEEDED, FAILED)
JOB_MODULE = "spark_jobs.retrain"
RUN_TAG = "DRIFTSTACK_TRAINING_RUN"  # env var every process of a local run inherits: what cancel looks for
CANCEL_GRACE_SECONDS = 10.0
KILL_WAIT_SECONDS = 5.0        # after SIGKILL, how long cancel waits for the processes to be gone


class BackendError(RuntimeError):
    """The backend cannot start/poll a job (misconfiguration, API error); the message says why."""


@dataclass(frozen=True)
class BackendConfig:
    """Which backend, and what it needs.  Field names are the environment variables lower-cased, as
    in driftstack.settings.TrainingBackendSettings: ``BackendConfig(**settings.backend.model_dump())``."""

    training_backend: str = "local"
    training_timeout_seconds: float = 1800.0
    local_training_python: str | None = None
    local_training_repo: str | None = None
    local_training_log_dir: str | None = None
    emr_application_id: str | None = None
    emr_execution_role_arn: str | None = None
    emr_entry_point: str | None = None
    emr_py_files: str | None = None
    emr_log_uri: str | None = None
    emr_spark_params: str = ""

    def require(self, backend: str, *names: str) -> None:
        missing = [n.upper() for n in names if not getattr(self, n)]
        if missing:
            raise BackendError(f"{backend} backend needs {', '.join(missing)}")


@dataclass(frozen=True)
class JobRequest:
    run_id: str
    bucket: str
    spec_key: str          # the job's input (spark_jobs.retrain reads it)
    status_key: str        # the job writes its status document here

    @property
    def spec_uri(self) -> str:
        return f"s3://{self.bucket}/{self.spec_key}"


# ---------------------------------------------------------------- status documents (S3)

def write_status(s3, bucket: str, key: str, state: str, **fields: Any) -> dict:
    doc = dump(TrainingStatus(state=state, updated_at=time.time(), **fields))
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(doc, default=str).encode(),
                  ContentType="application/json")
    return doc


def _read_json(s3, bucket: str, key: str) -> Any:
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except Exception as exc:  # noqa: BLE001
        if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise


def read_status(s3, bucket: str, key: str) -> dict | None:
    """The job's status document, validated (None: not written yet)."""
    raw = _read_json(s3, bucket, key)
    return None if raw is None else dump(load(TrainingStatus, raw, f"s3://{bucket}/{key}"))


def read_result(s3, bucket: str, key: str) -> TrainingResult:
    """The job's result document, validated: a malformed one fails naming its fields."""
    raw = _read_json(s3, bucket, key)
    if raw is None:
        raise BackendError(f"the training job wrote no result at s3://{bucket}/{key}")
    return load(TrainingResult, raw, f"s3://{bucket}/{key}")


class Backend(Protocol):
    name: str

    def start(self, job: JobRequest) -> dict: ...
    def poll(self, handle: Mapping) -> dict: ...
    def cancel(self, handle: Mapping) -> None: ...


def _final_from_status(status: Mapping | None) -> dict | None:
    if status and status.get("state") in FINAL:
        return {"state": status["state"], "reason": status.get("error"), "result_key": status.get("result_key"),
                "status": dict(status)}
    return None


# ---------------------------------------------------------------- local host process

_LAUNCHER = (
    "import json, subprocess, sys\n"
    "a = json.loads(sys.argv[1])\n"
    "log = open(a['log'], 'ab')\n"
    "p = subprocess.Popen(a['cmd'], cwd=a['cwd'], env=a['env'], stdin=subprocess.DEVNULL, stdout=log,\n"
    "                     stderr=subprocess.STDOUT, close_fds=True)\n"
    "print(p.pid, flush=True)\n"
)
# Passed through to the job: AWS endpoint/credentials/region and what Spark needs to find Java.
_PASS_ENV = ("PATH", "JAVA_HOME", "LANG", "TZ", "SPARK_HOME", "MLFLOW_TRACKING_URI")
_PASS_PREFIXES = ("AWS_", "DRIFTSTACK_", "MLFLOW_")


def proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks (field 22 of /proc/pid/stat); None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = stat.rsplit(")", 1)[1].split()  # the command name may contain spaces
    if rest[0] in ("Z", "X"):
        return None
    return int(rest[19])


def run_processes(run_id: str) -> list[int]:
    """Live processes (zombies excluded) tagged with ``RUN_TAG=run_id``: a local run's job, its JVM and
    Spark's workers, orphans included. Exact match, so run "r-1" never matches "r-10"."""
    needle = f"{RUN_TAG}={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            tagged = needle in (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # gone, or not ours to read
            continue
        if tagged and proc_start_time(int(entry.name)) is not None:
            found.append(int(entry.name))
    return found


def _signal_all(pids, sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class LocalBackend:
    """Spawn the job as a detached host process of ``python`` in ``repo_dir``."""

    name = "local"

    def __init__(self, python: str, repo_dir: str, *, log_dir: str | None = None, s3=None,
                 extra_env: Mapping[str, str] | None = None) -> None:
        self.python, self.repo_dir = python, repo_dir
        self.log_dir = log_dir or str(Path(repo_dir) / ".state" / "retrain-logs")
        self._s3 = s3
        self.extra_env = dict(extra_env or {})

    @classmethod
    def from_config(cls, cfg: BackendConfig, s3=None) -> LocalBackend:
        cfg.require("local training (CDK context local_python / local_repo)", "local_training_python",
                    "local_training_repo")
        return cls(cfg.local_training_python, cfg.local_training_repo, log_dir=cfg.local_training_log_dir, s3=s3)

    @property
    def s3(self):
        if self._s3 is None:
            import boto3
            from botocore.config import Config

            self._s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
        return self._s3

    def job_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in _PASS_ENV or k.startswith(_PASS_PREFIXES)}
        env.update({"HOME": str(Path(self.repo_dir) / ".state" / "retrain-home"), "PYTHONUNBUFFERED": "1",
                    "LANG": env.get("LANG", "C.UTF-8")})
        env.update(self.extra_env)
        return env

    def command(self, job: JobRequest, module_args: list[str] | None = None) -> list[str]:
        return [self.python, "-m", JOB_MODULE, *(module_args or ["run", "--spec", job.spec_uri])]

    def _check(self) -> None:
        if not os.access(self.python, os.X_OK):
            raise BackendError(f"local training python {self.python!r} is not executable")
        if not (Path(self.repo_dir) / "spark_jobs" / "retrain.py").is_file():
            raise BackendError(f"local training repo {self.repo_dir!r} has no spark_jobs/retrain.py")

    def start(self, job: JobRequest) -> dict:
        self._check()
        Path(self.log_dir).mkdir(parents=True, exist_ok=True)
        Path(self.job_env()["HOME"]).mkdir(parents=True, exist_ok=True)
        log = str(Path(self.log_dir) / f"{job.run_id}.log")
        env = {**self.job_env(), RUN_TAG: job.run_id}  # inherited by the JVM and Spark's workers: cancel finds them
        args = {"cmd": self.command(job), "cwd": self.repo_dir, "env": env, "log": log}
        proc = subprocess.run([self.python, "-I", "-c", _LAUNCHER, json.dumps(args)], capture_output=True,
                              text=True, timeout=60, cwd=self.repo_dir, env={"PATH": os.environ.get("PATH", "")})
        if proc.returncode != 0 or not proc.stdout.strip().isdigit():
            raise BackendError(f"could not spawn the training job: {proc.stderr.strip()[-500:]}")
        pid = int(proc.stdout.strip())
        return {"backend": self.name, "run_id": job.run_id, "pid": pid, "pid_start": proc_start_time(pid),
                "log": log, "bucket": job.bucket, "status_key": job.status_key, "started_at": time.time()}

    def alive(self, handle: Mapping) -> bool:
        start = proc_start_time(int(handle["pid"]))
        return start is not None and (handle.get("pid_start") is None or start == handle["pid_start"])

    def poll(self, handle: Mapping) -> dict:
        status = read_status(self.s3, handle["bucket"], handle["status_key"])
        final = _final_from_status(status)
        if final:
            return final
        if self.alive(handle):
            return {"state": RUNNING, "reason": None, "status": status}
        # Gone: re-read once (it may have written its final status just before exiting).
        final = _final_from_status(read_status(self.s3, handle["bucket"], handle["status_key"]))
        if final:
            return final
        reason = (f"training process {handle['pid']} exited without reporting a result; "
                  f"log {handle.get('log')}: {_tail(handle.get('log'))}")
        # A crashed job (SIGKILL, OOM) can orphan its children (Spark's JVM, workers): stop them.
        if leftovers := self.cancel(handle, grace=1.0):
            reason += (f"; stopped {len(leftovers)} leftover process{'es' if len(leftovers) > 1 else ''} of the run "
                       f"({', '.join(map(str, leftovers))})")
        return {"state": FAILED, "status": status, "reason": reason}

    def cancel(self, handle: Mapping, grace: float = CANCEL_GRACE_SECONDS) -> list[int]:
        """Stop every process of the run: SIGTERM, then SIGKILL whatever is left after ``grace``
        seconds. Killing only the job's pid is not enough: Spark's JVM would keep running. Returns
        the pids signalled."""
        run_id = str(handle.get("run_id", ""))

        def remaining() -> set[int]:
            pids = set(run_processes(run_id)) if run_id else set()
            return pids | ({int(handle["pid"])} if self.alive(handle) else set())

        targets = remaining()
        _signal_all(targets, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while (left := remaining()) and time.monotonic() < deadline:
            time.sleep(0.2)
        _signal_all(left, signal.SIGKILL)
        deadline = time.monotonic() + KILL_WAIT_SECONDS  # SIGKILL is asynchronous: return once they are gone
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = remaining()
        return sorted(targets)

    def run_sync(self, module_args: list[str], timeout: float = 120) -> dict:
        """Run a short job command and wait for it (e.g. setting an MLflow alias); -> parsed last
        stdout line (JSON)."""
        self._check()
        proc = subprocess.run([self.python, "-m", JOB_MODULE, *module_args], capture_output=True, text=True,
                              timeout=timeout, cwd=self.repo_dir, env=self.job_env())
        if proc.returncode != 0:
            raise BackendError(f"{JOB_MODULE} {module_args[0]} failed: {proc.stderr.strip()[-800:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def _tail(path: str | None, chars: int = 600) -> str:
    try:
        return Path(path).read_text(errors="replace")[-chars:].strip() if path else ""
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- EMR Serverless

_EMR_RUNNING = ("SUBMITTED", "PENDING", "SCHEDULED", "RUNNING", "QUEUED", "CANCELLING")


class EmrServerlessBackend:
    """StartJobRun on an EMR Serverless Spark application (AWS)."""

    name = "emr-serverless"

    def __init__(self, application_id: str, execution_role_arn: str, entry_point: str, *,
                 py_files: str | None = None, log_uri: str | None = None, spark_params: str = "",
                 client=None, s3=None) -> None:
        self.application_id, self.role, self.entry_point = application_id, execution_role_arn, entry_point
        self.py_files, self.log_uri, self.spark_params = py_files, log_uri, spark_params
        self._client, self._s3 = client, s3

    @classmethod
    def from_config(cls, cfg: BackendConfig, **kwargs) -> EmrServerlessBackend:
        cfg.require("emr-serverless", "emr_application_id", "emr_execution_role_arn", "emr_entry_point")
        return cls(cfg.emr_application_id, cfg.emr_execution_role_arn, cfg.emr_entry_point,
                   py_files=cfg.emr_py_files, log_uri=cfg.emr_log_uri, spark_params=cfg.emr_spark_params, **kwargs)

    @property
    def client(self):
        if self._client is None:
            import boto3

            self._client = boto3.client("emr-serverless")
        return self._client

    @property
    def s3(self):
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3")
        return self._s3

    def start(self, job: JobRequest) -> dict:
        params = " ".join(p for p in (f"--py-files {self.py_files}" if self.py_files else "", self.spark_params) if p)
        driver = {"entryPoint": self.entry_point, "entryPointArguments": ["run", "--spec", job.spec_uri]}
        if params:
            driver["sparkSubmitParameters"] = params
        kwargs: dict[str, Any] = {"applicationId": self.application_id, "executionRoleArn": self.role,
                                  "name": job.run_id[:256], "clientToken": job.run_id[:64],
                                  "jobDriver": {"sparkSubmit": driver}}
        if self.log_uri:
            kwargs["configurationOverrides"] = {"monitoringConfiguration": {
                "s3MonitoringConfiguration": {"logUri": self.log_uri}}}
        try:
            resp = self.client.start_job_run(**kwargs)
        except Exception as exc:  # noqa: BLE001 - name the API and the application
            raise BackendError(f"EMR Serverless StartJobRun on {self.application_id} failed: {exc}") from exc
        return {"backend": self.name, "run_id": job.run_id, "application_id": self.application_id,
                "job_run_id": resp["jobRunId"], "bucket": job.bucket, "status_key": job.status_key,
                "started_at": time.time()}

    def poll(self, handle: Mapping) -> dict:
        run = self.client.get_job_run(applicationId=handle["application_id"], jobRunId=handle["job_run_id"])["jobRun"]
        state = run["state"]
        if state in _EMR_RUNNING:
            return {"state": RUNNING, "reason": None, "emr_state": state}
        status = read_status(self.s3, handle["bucket"], handle["status_key"])
        final = _final_from_status(status)
        if state == "SUCCESS" and final:
            return {**final, "emr_state": state}
        if state == "SUCCESS":
            return {"state": FAILED, "emr_state": state,
                    "reason": "EMR job run succeeded but the job wrote no final status"}
        reason = (final or {}).get("reason") or run.get("stateDetails") or state
        return {"state": FAILED, "emr_state": state, "reason": f"EMR job run {state}: {reason}"}

    def cancel(self, handle: Mapping) -> None:
        self.client.cancel_job_run(applicationId=handle["application_id"], jobRunId=handle["job_run_id"])


def get_backend(name: str | None = None, *, config: BackendConfig = BackendConfig(), **kwargs) -> Backend:
    """The backend ``name`` (default: the configured one) with what ``config`` says it needs (read from the
    environment by driftstack.settings.TrainingBackendSettings)."""
    name = name or config.training_backend
    if name == "local":
        return LocalBackend.from_config(config, **kwargs)
    if name == "emr-serverless":
        return EmrServerlessBackend.from_config(config, **kwargs)
    raise BackendError(f"unknown TRAINING_BACKEND {name!r}; expected 'local' or 'emr-serverless'")


def for_handle(handle: Mapping, env: Mapping[str, str] | None = None, **kwargs) -> Backend:
    return get_backend(handle.get("backend"), env, **kwargs)
