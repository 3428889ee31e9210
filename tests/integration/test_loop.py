"""The loop, end to end on a real LocalStack: the deployed stack's EventBridge schedule runs the drift
check, which starts the Step Functions retraining workflow, whose Lambdas run the Spark job through
the local training backend, compare, and promote (or not) — and the predict API picks the new
champion up without a redeploy.

Tests run in file order against one deployment (each builds on the previous one's state):
normal traffic → no drift, no execution; drifted traffic + feedback → exactly one execution started
by the schedule (and re-triggering the same window starts none) → challenger promoted → served,
and the DriftDetected alarm fired from the check's own metric;
retraining again on the same data → challenger not better → rejected, champion unchanged; a training
run that fails → failure path, champion unchanged, failure recorded; a training run over its time
limit → stopped (no process of it left), failure recorded, champion unchanged; a training job killed
mid-fit → failure recorded, champion unchanged, no orphaned Spark JVM; with the approval step deployed,
a run waits for a human (task token) and `reject` completes it. Data is small (a few thousand
rows, 10 GBT iterations) so the file runs in minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest

from driftstack.domain import decision as D
from driftstack.adapters import decision_store
from driftstack.tools import deploy
from driftstack.domain import drift
from driftstack.adapters import drift_store
from driftstack.tools import operations
from driftstack.tools.aws_target import resolve
from driftstack.adapters import registry
from driftstack.adapters import training_backend as TB
from driftstack.tools.traffic import make_trips
from deployed import deployed

from driftstack.tools.polling import wait_for

pytestmark = [pytest.mark.localstack, pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
STACK = "DriftstackLoopTest"
GBT = {"max_iter": 10, "max_depth": 4}



@pytest.fixture(scope="module")
def loop(localstack, tmp_path_factory):
    state = tmp_path_factory.mktemp("loop")
    mlflow_uri = f"sqlite:///{state / 'mlflow.db'}"
    context = {"drift_schedule_minutes": "1", "drift_window_minutes": "30", "training_poll_seconds": "3",
               "model_refresh_seconds": "3", "retrain_cooldown_minutes": "0",
               "retrain_training": json.dumps(GBT), "retrain_mlflow": json.dumps({"tracking_uri": mlflow_uri}),
               "retrain_data": json.dumps({"reference_rows": 1000, "min_labelled": 200})}
    with deployed(localstack, STACK, context) as loop:
        loop.state, loop.mlflow_uri, loop.arn = state, mlflow_uri, loop.outputs["StateMachineArn"]
        yield loop


def executions(loop) -> list[dict]:
    return loop.sfn.list_executions(stateMachineArn=loop.arn)["executions"]


def send(loop, trips, feedback: bool) -> str:
    """Batch-predict the trips through the API (and post their true fares); returns the last ts."""
    ids = []
    for i in range(0, len(trips.features), 250):
        r = loop.http.post(loop.base + "/predict", json={"instances": trips.features[i:i + 250]}, timeout=60)
        assert r.status_code == 200, r.text
        ids += r.json()["item_ids"]
    if feedback:
        def post(k):
            return loop.http.post(loop.base + "/feedback", json={"request_id": ids[k], "actual_fare": trips.fares[k]},
                                  timeout=60).status_code
        with ThreadPoolExecutor(8) as pool:
            codes = Counter(pool.map(post, range(len(ids))))
        assert codes == {202: len(ids)}, codes
    return datetime.now(timezone.utc).isoformat()


def check_after(loop, ts: str, timeout: float = 150):
    """The first scheduled drift check whose window ends after ``ts`` (so it saw that traffic)."""
    def find():
        for c in drift_store.list_checks(loop.history, 10):
            if c["window"]["end"] > ts.replace("+00:00", "Z"):
                return c
        return None
    return wait_for(find, timeout, what=f"a scheduled drift check covering {ts}")


def assert_alarm_fired(name: str, timeout: float = 150) -> None:
    """The alarm went to ALARM by itself: the Lambda's EMF log line became a CloudWatch metric
    (our LocalStack patch does what CloudWatch Logs does on AWS) and LocalStack's alarm evaluation
    (every period, 1 minute here) found it past the threshold. Nobody set the state."""
    cw = boto3.client("cloudwatch")

    def fired():
        items = cw.describe_alarm_history(AlarmName=name, HistoryItemType="StateUpdate")["AlarmHistoryItems"]
        return [i for i in items if json.loads(i["HistoryData"])["newState"]["stateValue"] == "ALARM"]
    [item, *_] = wait_for(fired, timeout, interval=5, what=f"alarm {name} to fire from its metric")
    assert "Threshold Crossed" in json.loads(item["HistoryData"])["newState"]["stateReason"], item


def served_version(loop) -> str | None:
    r = loop.http.get(loop.base + "/health", timeout=30)
    return r.json().get("model_version") if r.status_code == 200 else None


def finished(loop, name: str, timeout: float = 420) -> dict:
    arn = loop.arn.replace(":stateMachine:", ":execution:") + f":{name}"
    return wait_for(lambda: (d := loop.sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d,
                    timeout, interval=3, what=f"execution {name} to finish")


@pytest.fixture(scope="module")
def champion(loop):
    """v1 trained by the real Spark job on generated January trips, published as the champion."""
    proc = subprocess.run(
        [sys.executable, "-m", "spark_jobs.train", "--generate-rows", "5000", "--max-iter", str(GBT["max_iter"]),
         "--max-depth", str(GBT["max_depth"]), "--bucket", loop.bucket, "--models-table",
         loop.outputs["ModelsTableName"], "--set-champion-pointer", "--mlflow-tracking-uri", loop.mlflow_uri,
         "--output-dir", str(loop.state / "champion"), "--latency-runs", "200"],
        cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ptr = registry.read_pointer(loop.models)
    wait_for(lambda: served_version(loop) == ptr.version, 90, what="the champion to be served")
    return ptr


def test_normal_traffic_no_drift_no_execution(loop, champion):
    ts = send(loop, make_trips(400, month="2023-01", seed=101), feedback=False)
    check = check_after(loop, ts)
    assert check["status"] == drift.NO_DRIFT and check["trigger"] is False, check
    assert check["samples"] == 400 and check["champion_version"] == champion.version
    assert executions(loop) == []
    report = loop.s3.get_object(Bucket=loop.bucket, Key=check["report_uri"].split(loop.bucket + "/", 1)[1])
    assert b"<svg" in report["Body"].read()


def test_drift_triggers_one_execution_and_the_better_challenger_is_served(loop, champion):
    drifted = make_trips(1000, month="2023-07", drift="both", seed=202)  # longer trips, new fare rules
    # Pause the schedule while the traffic and its feedback arrive, so the check sees all of it.
    events = boto3.client("events")
    events.disable_rule(Name=loop.outputs["DriftScheduleRuleName"])
    try:
        send(loop, drifted, feedback=True)
    finally:
        events.enable_rule(Name=loop.outputs["DriftScheduleRuleName"])
    started = wait_for(lambda: executions(loop), 150, what="the scheduled check to start an execution")
    assert len(started) == 1, started
    name = started[0]["name"]

    def triggering_check():
        return next((c for c in drift_store.list_checks(loop.history, 20)
                     if (c.get("execution") or {}).get("started") and c["execution"]["name"] == name), None)
    check = wait_for(triggering_check, 60, what="the triggering check's record")
    assert check["status"] == drift.DRIFT and check["trigger"] and check["samples"] >= 100, check

    # The same window again (a redelivered event, a manual re-run): no second execution.
    event_time = check["window"]["end"]
    for _ in range(2):
        resp = loop.lam.invoke(FunctionName=loop.outputs["DriftCheckFunctionName"],
                               Payload=json.dumps({"time": event_time}).encode())
        again = json.loads(resp["Payload"].read())
        assert again["check_id"] == check["check_id"] and again["execution"]["started"] is False, again
    assert [e["name"] for e in executions(loop)] == [name]

    final = finished(loop, name)
    assert final["status"] == "SUCCEEDED", final
    record = decision_store.load_record(loop.s3, loop.bucket, name)
    assert record["outcome"] == D.PROMOTED, record.get("reasons")
    assert_alarm_fired(f"{STACK}-DriftDetected")
    # `driftstack status` traffic figures: the predict function's metrics, real in LocalStack too.
    traffic = operations.traffic(resolve())
    assert traffic["requests"] >= 1400 and traffic["latency_ms_max"] is not None, traffic
    ev = record["evaluation"]
    assert ev["challenger"]["metrics"]["rmse"] <= ev["champion"]["metrics"]["rmse"] - 0.5
    assert record["mlflow_alias"]["status"] == "set"
    new = registry.read_pointer(loop.models)
    assert new.version == ev["challenger"]["version"] != champion.version
    promoted_at = time.monotonic()
    wait_for(lambda: served_version(loop) == new.version, 60, interval=1, what="the API to serve the new champion")
    assert time.monotonic() - promoted_at <= 60
    r = loop.http.post(loop.base + "/predict", json={"features": drifted.features[0]}, timeout=30)
    assert r.status_code == 200 and r.json()["model_version"] == new.version
    assert [d["run_id"] for d in decision_store.list_records(loop.history)][:1] == [name]


def _start(loop, name: str, **extra) -> str:
    """Start a run for the latest drift window against the current champion (what the drift check
    sends), with optional overrides."""
    doc = drift_store.list_checks(loop.history, 20)
    window = next(c["window"] for c in doc if c["status"] == drift.DRIFT)
    ptr = registry.read_pointer(loop.models)
    payload = {"run_id": name, "window": window, "check_id": f"manual-{name}",
               "champion": {"model_name": ptr.model_name, "version": ptr.version, "sha256": ptr.sha256,
                            "prefix": ptr.prefix}, **extra}
    loop.sfn.start_execution(stateMachineArn=loop.arn, name=name, input=json.dumps(payload))
    return name


def test_a_challenger_that_is_not_better_is_rejected(loop, champion):
    before = registry.read_pointer(loop.models)
    name = _start(loop, f"again-{int(time.time())}")   # same data as the promoted champion saw
    final = finished(loop, name)
    assert final["status"] == "SUCCEEDED", final
    record = decision_store.load_record(loop.s3, loop.bucket, name)
    assert record["outcome"] == D.REJECTED
    failed = [c["name"] for c in record["decision"]["checks"] if not c["passed"]]
    assert "rmse" in failed and any("improvement" in r for r in record["reasons"])
    assert registry.read_pointer(loop.models) == before
    assert served_version(loop) == before.version


def test_a_failed_training_run_takes_the_failure_path(loop, champion):
    before = registry.read_pointer(loop.models)
    name = _start(loop, f"broken-{int(time.time())}", training={"max_depth": -1})
    final = finished(loop, name)
    assert final["status"] == "FAILED"
    record = decision_store.load_record(loop.s3, loop.bucket, name)
    assert record["outcome"] == D.FAILED and "maxDepth" in record["error"], record.get("error")
    assert "champion unchanged" in record["reasons"]
    assert registry.read_pointer(loop.models) == before
    listed = {d["run_id"]: d for d in decision_store.list_records(loop.history)}
    assert listed[name]["outcome"] == D.FAILED


def _java_processes(run_id: str) -> list[int]:
    """The run's Spark JVMs (host processes tagged with the run id by the local backend)."""
    def cmd(pid):
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return b""
    return [p for p in TB.run_processes(run_id) if b"java" in cmd(p).split(b"\0")[0]]


def test_a_training_run_over_its_time_limit_is_stopped_and_recorded(loop, champion):
    """Real execution, real Spark job: once its JVM runs, the poll Lambda's limit
    (TRAINING_TIMEOUT_SECONDS, from -c training_timeout_minutes) is set to 1 s — cheaper than a
    redeploy and sure to hit mid-training — so the next poll times the run out: the workflow takes the
    failure path, the record says why, the champion is untouched and no process of the run survives."""
    before = registry.read_pointer(loop.models)
    poll_fn = next(f["FunctionName"] for f in loop.lam.list_functions()["Functions"]
                   if f["FunctionName"].startswith(STACK) and "PollTrainingFn" in f["FunctionName"])
    env = loop.lam.get_function_configuration(FunctionName=poll_fn)["Environment"]["Variables"]
    name = _start(loop, f"timeout-{int(time.time())}")
    try:
        wait_for(lambda: _java_processes(name), 240, interval=1, what="the run's Spark JVM")
        loop.lam.update_function_configuration(FunctionName=poll_fn,
                                               Environment={"Variables": {**env, "TRAINING_TIMEOUT_SECONDS": "1"}})
        final = finished(loop, name)
    finally:
        loop.lam.update_function_configuration(FunctionName=poll_fn, Environment={"Variables": env})
        loop.lam.get_waiter("function_updated_v2").wait(FunctionName=poll_fn)
    assert final["status"] == "FAILED", final
    record = decision_store.load_record(loop.s3, loop.bucket, name)
    assert record["outcome"] == D.FAILED and "training timed out after" in record["error"], record.get("error")
    assert "(limit 1s)" in record["error"] and "champion unchanged" in record["reasons"]
    assert "evaluation" not in record                       # it never got as far as a result
    assert registry.read_pointer(loop.models) == before
    assert TB.run_processes(name) == [], "a process of the timed-out run is still running"
    assert TB.proc_start_time(record["training"]["handle"]["pid"]) is None


def test_a_training_job_that_crashes_mid_fit_is_recorded_and_leaves_nothing_behind(loop, champion):
    """The job's driver process is killed (SIGKILL, as the OOM killer would) while its Spark JVM is
    fitting: it never reports a result. The poll sees the process gone, the workflow takes the
    failure path with the reason and the log's tail, the champion is untouched, and no process of
    the run is left (an orphaned Spark JVM would hold a GB of memory)."""
    before = registry.read_pointer(loop.models)
    name = _start(loop, f"crash-{int(time.time())}")
    wait_for(lambda: _java_processes(name), 240, interval=1, what="the run's Spark JVM")
    driver = decision_store.load_record(loop.s3, loop.bucket, name)["training"]["handle"]["pid"]
    os.kill(driver, signal.SIGKILL)
    final = finished(loop, name)
    assert final["status"] == "FAILED", final
    record = decision_store.load_record(loop.s3, loop.bucket, name)
    assert record["outcome"] == D.FAILED, record
    assert f"training process {driver} exited without reporting a result" in record["error"], record["error"]
    assert "champion unchanged" in record["reasons"] and "evaluation" not in record
    assert registry.read_pointer(loop.models) == before
    assert TB.run_processes(name) == [], "a process of the crashed run is still running"


def test_approval_step_waits_for_a_human_and_a_rejection_completes_it(loop, champion):
    before = registry.read_pointer(loop.models)
    deploy.deploy(loop.endpoint, stack=STACK, context={**loop.context, "approval": "true"})  # redeploy: +step
    # Criteria relaxed for this run so the decision is "promote" and the approval step is reached.
    name = _start(loop, f"approve-{int(time.time())}", criteria={"min_rmse_improvement": -100})
    pending = wait_for(lambda: [p for p in decision_store.pending_approvals(loop.history) if p["run_id"] == name], 300,
                       interval=3, what="the approval request")
    assert pending[0]["reasons"]
    arn = loop.arn.replace(":stateMachine:", ":execution:") + f":{name}"
    assert loop.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
    decision_store.complete_approval(loop.sfn, loop.history, name, False, by="test", reason="change freeze")
    final = finished(loop, name, timeout=120)
    assert final["status"] == "SUCCEEDED", final
    record = decision_store.load_record(loop.s3, loop.bucket, name)
    assert record["outcome"] == D.REJECTED and record["reasons"] == ["rejected by test: change freeze"]
    assert registry.read_pointer(loop.models) == before
