"""Training backends: the local backend with real host processes (status via S3 in moto), the
EMR Serverless backend against botocore's Stubber."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from driftstack.adapters import training_backend as TB

BUCKET = "artifacts"
ARN = "arn:aws:emr-serverless:us-east-1:123456789012:/applications/app-1/jobruns/jr-1"
JOB = TB.JobRequest("run-1", BUCKET, "retrain/run-1/spec.json", "retrain/run-1/status.json")


@pytest.fixture
def s3(moto):
    yield moto.bucket(BUCKET)


def fake_repo(tmp_path: Path, body: str) -> Path:
    """A repo dir whose spark_jobs.retrain is ``body`` (a stand-in job: what the process does is the
    point here, not Spark)."""
    (tmp_path / "spark_jobs").mkdir()
    (tmp_path / "spark_jobs" / "__init__.py").write_text("")
    (tmp_path / "spark_jobs" / "retrain.py").write_text(body)
    return tmp_path


def wait_for(cond, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_local_job_runs_detached_and_is_polled_until_it_reports(tmp_path, s3):
    repo = fake_repo(tmp_path, "import sys, time\nprint('args', sys.argv[1:], flush=True)\ntime.sleep(30)\n")
    backend = TB.LocalBackend(sys.executable, str(repo), s3=s3)
    handle = backend.start(JOB)
    try:
        assert handle["pid"] != os.getpid() and handle["pid_start"] is not None
        assert backend.poll(handle)["state"] == TB.RUNNING          # alive, no status yet
        TB.write_status(s3, BUCKET, JOB.status_key, TB.RUNNING, pid=handle["pid"])
        assert backend.poll(handle)["state"] == TB.RUNNING
        assert wait_for(lambda: "args" in Path(handle["log"]).read_text())
        assert f"--spec', '{JOB.spec_uri}'" in Path(handle["log"]).read_text()
        TB.write_status(s3, BUCKET, JOB.status_key, TB.SUCCEEDED, result_key="retrain/run-1/result.json")
        done = backend.poll(handle)
        assert done["state"] == TB.SUCCEEDED and done["result_key"] == "retrain/run-1/result.json"
    finally:
        backend.cancel(handle)
    assert wait_for(lambda: not backend.alive(handle))


def test_a_job_that_dies_without_a_final_status_is_failed_with_its_log(tmp_path, s3):
    repo = fake_repo(tmp_path, "import sys\nprint('boom: out of memory', flush=True)\nsys.exit(137)\n")
    backend = TB.LocalBackend(sys.executable, str(repo), s3=s3)
    handle = backend.start(JOB)
    assert wait_for(lambda: not backend.alive(handle))
    res = backend.poll(handle)
    assert res["state"] == TB.FAILED
    assert "exited without reporting a result" in res["reason"] and "boom: out of memory" in res["reason"]


def test_a_failed_status_wins_and_carries_the_error(tmp_path, s3):
    repo = fake_repo(tmp_path, "pass\n")
    backend = TB.LocalBackend(sys.executable, str(repo), s3=s3)
    handle = backend.start(JOB)
    TB.write_status(s3, BUCKET, JOB.status_key, TB.FAILED, error="ValueError: maxDepth given invalid value -1")
    res = backend.poll(handle)
    assert res["state"] == TB.FAILED and "maxDepth" in res["reason"]


def test_cancel_stops_the_job(tmp_path, s3):
    repo = fake_repo(tmp_path, "import time\ntime.sleep(60)\n")
    backend = TB.LocalBackend(sys.executable, str(repo), s3=s3)
    handle = backend.start(JOB)
    assert backend.alive(handle)
    backend.cancel(handle)
    assert wait_for(lambda: not backend.alive(handle))
    assert backend.poll(handle)["state"] == TB.FAILED


# A stand-in for spark_jobs.retrain that, like PySpark, starts a child (the "JVM") and waits. The child
# ignores SIGTERM, so only the SIGKILL escalation stops it.
_JOB_WITH_A_CHILD = """import signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
                          "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
print("child", child.pid, flush=True)
time.sleep(120)
"""


def test_cancel_stops_every_process_of_the_run_not_just_the_job(tmp_path, s3):
    repo = fake_repo(tmp_path, _JOB_WITH_A_CHILD)
    backend = TB.LocalBackend(sys.executable, str(repo), s3=s3)
    handle = backend.start(JOB)
    other = TB.LocalBackend(sys.executable, str(repo), s3=s3).start(
        TB.JobRequest("run-10", BUCKET, "retrain/run-10/spec.json", "retrain/run-10/status.json"))
    try:
        assert wait_for(lambda: len(TB.run_processes("run-1")) == 2 == len(TB.run_processes("run-10")))  # jobs + children
        child = int(Path(handle["log"]).read_text().split()[1])
        assert set(TB.run_processes("run-1")) == {handle["pid"], child}
        signalled = backend.cancel(handle, grace=1.0)
        assert set(signalled) == {handle["pid"], child}
        assert TB.run_processes("run-1") == [] and TB.proc_start_time(child) is None
        assert backend.poll(handle)["state"] == TB.FAILED
        assert backend.alive(other) and len(TB.run_processes("run-10")) == 2  # another run is untouched
    finally:
        backend.cancel(other, grace=1.0)
    assert TB.run_processes("run-10") == []


def test_a_job_that_dies_leaving_its_child_orphaned_is_failed_and_the_orphan_stopped(tmp_path, s3):
    """The driver is SIGKILLed (the OOM killer's choice) while its child runs on: the poll that finds
    the job gone reports the failure and stops the orphan, which would otherwise hold its memory."""
    repo = fake_repo(tmp_path, _JOB_WITH_A_CHILD)
    backend = TB.LocalBackend(sys.executable, str(repo), s3=s3)
    handle = backend.start(JOB)
    try:
        assert wait_for(lambda: len(TB.run_processes("run-1")) == 2)
        child = int(Path(handle["log"]).read_text().split()[1])
        os.kill(handle["pid"], signal.SIGKILL)
        assert wait_for(lambda: not backend.alive(handle))
        assert TB.proc_start_time(child) is not None                  # orphaned, still running
        res = backend.poll(handle)
        assert res["state"] == TB.FAILED and "exited without reporting a result" in res["reason"]
        assert f"stopped 1 leftover process of the run ({child})" in res["reason"], res["reason"]
        assert TB.run_processes("run-1") == [] and TB.proc_start_time(child) is None
        assert backend.poll(handle)["reason"] == res["reason"].split("; stopped")[0]  # nothing left the 2nd time
    finally:
        backend.cancel(handle, grace=1.0)


def test_zombies_and_reused_pids_count_as_dead():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    assert wait_for(lambda: Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z")
    assert TB.proc_start_time(child.pid) is None          # exited, not reaped: a zombie is dead
    child.wait()
    me = TB.proc_start_time(os.getpid())
    backend = TB.LocalBackend(sys.executable, "/nonexistent")
    assert backend.alive({"pid": os.getpid(), "pid_start": me})
    assert not backend.alive({"pid": os.getpid(), "pid_start": me + 1})  # same pid, another process


def test_misconfiguration_is_named():
    with pytest.raises(TB.BackendError, match="LOCAL_TRAINING_REPO"):
        TB.get_backend("local", config=TB.BackendConfig(local_training_python=sys.executable))
    with pytest.raises(TB.BackendError, match="no spark_jobs/retrain.py"):
        TB.LocalBackend(sys.executable, "/tmp").start(JOB)
    with pytest.raises(TB.BackendError, match="EMR_EXECUTION_ROLE_ARN"):
        TB.get_backend("emr-serverless", config=TB.BackendConfig(emr_application_id="a", emr_entry_point="s3://b/r.py"))
    with pytest.raises(TB.BackendError, match="unknown TRAINING_BACKEND 'k8s'"):
        TB.get_backend("k8s")


def _emr(s3):
    client = boto3.client("emr-serverless", region_name="us-east-1")
    backend = TB.EmrServerlessBackend("app-1", "arn:aws:iam::1:role/emr", "s3://code/spark_jobs/retrain.py",
                                      py_files="s3://code/driftstack_code.zip", log_uri="s3://logs/emr/",
                                      client=client, s3=s3)
    return backend, Stubber(client)


def test_emr_serverless_start_poll_cancel(s3):
    backend, stub = _emr(s3)
    stub.add_response("start_job_run", {"applicationId": "app-1", "jobRunId": "jr-1", "arn": ARN}, {
        "applicationId": "app-1", "executionRoleArn": "arn:aws:iam::1:role/emr", "name": "run-1",
        "clientToken": "run-1",
        "jobDriver": {"sparkSubmit": {"entryPoint": "s3://code/spark_jobs/retrain.py",
                                      "entryPointArguments": ["run", "--spec", JOB.spec_uri],
                                      "sparkSubmitParameters": "--py-files s3://code/driftstack_code.zip"}},
        "configurationOverrides": {"monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": "s3://logs/emr/"}}}})

    def run_state(state, details=""):
        return {"jobRun": {"applicationId": "app-1", "jobRunId": "jr-1", "arn": ARN, "createdBy": "arn:aws:iam::123456789012:user/me",
                           "createdAt": 0, "updatedAt": 0, "executionRole": "arn:aws:iam::123456789012:role/emr", "state": state,
                           "stateDetails": details or state.lower(), "releaseLabel": "emr-7.0.0",
                           "jobDriver": {"sparkSubmit": {"entryPoint": "s3://code/spark_jobs/retrain.py"}}}}

    for state in ("SCHEDULED", "RUNNING", "SUCCESS", "FAILED"):
        stub.add_response("get_job_run", run_state(state, "driver OOM" if state == "FAILED" else ""),
                          {"applicationId": "app-1", "jobRunId": "jr-1"})
    stub.add_response("cancel_job_run", {"applicationId": "app-1", "jobRunId": "jr-1"},
                      {"applicationId": "app-1", "jobRunId": "jr-1"})
    with stub:
        handle = backend.start(JOB)
        assert handle["job_run_id"] == "jr-1" and handle["backend"] == "emr-serverless"
        assert backend.poll(handle)["state"] == TB.RUNNING
        assert backend.poll(handle)["state"] == TB.RUNNING
        TB.write_status(s3, BUCKET, JOB.status_key, TB.SUCCEEDED, result_key="r.json")
        ok = backend.poll(handle)
        assert ok["state"] == TB.SUCCEEDED and ok["result_key"] == "r.json"
        s3.delete_object(Bucket=BUCKET, Key=JOB.status_key)
        failed = backend.poll(handle)
        assert failed["state"] == TB.FAILED and "driver OOM" in failed["reason"]
        backend.cancel(handle)
        stub.assert_no_pending_responses()


def test_emr_start_error_names_the_application(s3):
    backend, stub = _emr(s3)
    stub.add_client_error("start_job_run", "ValidationException", "application app-1 is STOPPED")
    with stub, pytest.raises(TB.BackendError, match="app-1.*STOPPED"):
        backend.start(JOB)
