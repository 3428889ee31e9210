"""The host Lambda runner (driftstack-host executor) through a real LocalStack: python3.12 handlers
from a zip plus layers, isolated from host site-packages, with timeouts, errors, logs, concurrency."""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from driftstack.tools import localstack_host
LAMBDA_ROLE = "arn:aws:iam::000000000000:role/driftstack-test-lambda"

pytestmark = pytest.mark.localstack

REPO = Path(__file__).resolve().parents[2]
LAYER_CACHE = localstack_host.STATE_ROOT / "cache" / "test-layers"


def invoke(lam, name: str, event: dict | None = None) -> tuple[dict, str | None, str]:
    """(decoded payload, FunctionError, log tail)."""
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode(), LogType="Tail")
    payload = json.loads(resp["Payload"].read())
    return payload, resp.get("FunctionError"), base64.b64decode(resp.get("LogResult", "")).decode()


def build_numpy_layer() -> Path:
    """numpy for CPython 3.12 manylinux as a layer zip (python/numpy...), cut from the deps layer
    that `make setup` builds (layers/build.py), so the tests download nothing."""
    deps = REPO / "build" / "layers" / "deps" / "python"
    if not (deps / "numpy").is_dir():
        pytest.fail(f"{deps} has no numpy: run `make setup` (it builds the Lambda layers)")
    target = LAYER_CACHE / "numpy-py312.zip"
    if target.exists() and target.stat().st_mtime >= (deps / "numpy").stat().st_mtime:
        return target
    LAYER_CACHE.mkdir(parents=True, exist_ok=True)
    partial = LAYER_CACHE / "numpy-py312.zip.partial"
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for top in sorted(deps.iterdir()):
            if not top.name.startswith("numpy"):
                continue
            for path in sorted(top.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    zf.write(path, "python/" + str(path.relative_to(deps)))
    shutil.move(partial, target)
    return target


@pytest.fixture(scope="module")
def lam(aws_client):
    return aws_client("lambda")


@pytest.fixture(scope="module")
def numpy_layer(lam) -> str:
    zip_path = build_numpy_layer()
    resp = lam.publish_layer_version(LayerName="test-numpy", Content={"ZipFile": zip_path.read_bytes()},
                                     CompatibleRuntimes=["python3.12"])
    yield resp["LayerVersionArn"]
    lam.delete_layer_version(LayerName="test-numpy", VersionNumber=resp["Version"])


def test_handler_runs_on_python312_with_runtime_boto3_env_and_logs(lam, lambda_function, aws_client):
    name = lambda_function("handlers.echo", env={"GREETING": "hi"})
    payload, error, log = invoke(lam, name, {"marker": "m-123"})
    assert error is None, payload
    assert payload["event"] == {"marker": "m-123"}
    assert payload["python"] == "3.12"
    assert payload["greeting"] == "hi"
    assert payload["account"] == "000000000000"  # boto3 reached LocalStack via AWS_ENDPOINT_URL
    assert payload["boto3"].endswith("boto3/__init__.py")  # runtime-provided (host runner: .state/lambda-runtime)
    assert 0 < payload["remaining_ms"] <= 10_000
    assert "echo-marker m-123" in log and f"REPORT RequestId: {payload['request_id']}" in log

    # stdout goes to CloudWatch Logs, group /aws/lambda/<name> (shipped asynchronously)
    logs = aws_client("logs")
    for _ in range(50):
        events = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}").get("events", []) \
            if logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"] else []
        if any("echo-marker m-123" in e["message"] for e in events):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"function output never reached CloudWatch Logs: {events}")


def test_emf_line_becomes_a_metric_and_the_invocation_is_counted(lam, lambda_function, aws_client):
    """What the plugin keeps while it takes LocalStack's internal calls off HTTP (in_memory_clients.py)
    and the fsync off the metrics store (cloudwatch_metrics_db.py): an embedded-metric-format line
    becomes a CloudWatch metric (emf_metrics.py), AWS/Lambda counts the invocation, and the line is
    in CloudWatch Logs."""
    name = lambda_function("handlers.log_lines")
    now = time.time()
    doc = {"_aws": {"Timestamp": int(now * 1000), "CloudWatchMetrics": [
        {"Namespace": f"emf-{name}", "Dimensions": [["service"]], "Metrics": [{"Name": "Hits", "Unit": "Count"}]}]},
        "service": "emf-test", "Hits": 3}
    payload, error, _ = invoke(lam, name, {"lines": [json.dumps(doc)]})
    assert error is None, payload

    cloudwatch, logs = aws_client("cloudwatch"), aws_client("logs")

    def total(namespace: str, metric: str, dimension: tuple[str, str]) -> float:
        stats = cloudwatch.get_metric_statistics(
            Namespace=namespace, MetricName=metric, Dimensions=[{"Name": dimension[0], "Value": dimension[1]}],
            StartTime=now - 300, EndTime=now + 300, Period=60, Statistics=["Sum"])
        return sum(d["Sum"] for d in stats["Datapoints"])

    for _ in range(50):  # logs and metrics are shipped asynchronously
        hits = total(f"emf-{name}", "Hits", ("service", "emf-test"))
        invocations = total("AWS/Lambda", "Invocations", ("FunctionName", name))
        if hits and invocations:
            break
        time.sleep(0.2)
    assert (hits, invocations) == (3, 1)
    events = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
    assert any('"Hits": 3' in e["message"] for e in events), events


def test_numpy_layer_is_used_and_host_packages_are_not_visible(lam, lambda_function, numpy_layer):
    with_layer = lambda_function("numpy_handlers.handler", layers=[numpy_layer])
    payload, error, _ = invoke(lam, with_layer, {"n": 10})
    assert error is None, payload
    assert payload["sum_of_squares"] == 385.0
    # the layer's python/ dir, not an interpreter's site-packages
    assert payload["numpy_file"].endswith("/python/numpy/__init__.py"), payload["numpy_file"]
    assert "site-packages" not in payload["numpy_file"]

    # The host interpreters have numpy installed; the function must not see it without the layer.
    without = lambda_function("numpy_handlers.handler")
    payload, error, log = invoke(lam, without)
    assert error == "Unhandled"
    assert payload["errorType"] == "ModuleNotFoundError"
    assert payload["errorMessage"] == "No module named 'numpy'"

    toplevel = lambda_function("numpy_toplevel.handler")
    payload, error, _ = invoke(lam, toplevel)
    assert error == "Unhandled"
    assert payload["errorType"] == "Runtime.ImportModuleError"
    assert "No module named 'numpy'" in payload["errorMessage"]


def test_s3_from_inside_the_function(lam, lambda_function, aws_client):
    s3 = aws_client("s3")
    s3.create_bucket(Bucket="lambda-reads-here")
    s3.put_object(Bucket="lambda-reads-here", Key="a/b.txt", Body=b"from s3")
    name = lambda_function("handlers.s3_get")
    payload, error, _ = invoke(lam, name, {"bucket": "lambda-reads-here", "key": "a/b.txt"})
    assert error is None, payload
    assert payload == {"body": "from s3"}


def test_raising_handler_is_a_function_error_with_message_and_trace(lam, lambda_function):
    name = lambda_function("handlers.fail")
    payload, error, log = invoke(lam, name, {"why": "negative fare"})
    assert error == "Unhandled"
    assert payload["errorType"] == "ValueError"
    assert payload["errorMessage"] == "bad input: negative fare"
    assert any("handlers.py" in frame and "in fail" in frame for frame in payload["stackTrace"])
    assert "[ERROR] ValueError: bad input: negative fare" in log and "Traceback" in log


def test_timeout_kills_the_process_and_the_function_recovers(lam, lambda_function):
    name = lambda_function("handlers.sleepy", timeout=2)
    payload, error, log = invoke(lam, name, {"seconds": 30})
    assert error == "Unhandled"
    assert payload["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 2.00 seconds" in payload["errorMessage"]
    pid = int(log.split("sleepy-pid=")[1].split()[0])
    assert not Path(f"/proc/{pid}").exists(), "the timed-out runtime process is still alive"

    payload, error, _ = invoke(lam, name, {"seconds": 0})  # a fresh process serves the next call
    assert error is None and payload == {"slept": 0}


def test_eight_concurrent_invocations(lam, lambda_function):
    name = lambda_function("handlers.echo")
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: invoke(lam, name, {"i": i, "sleep": 1}), range(8)))
    assert [error for _, error, _ in results] == [None] * 8
    assert sorted(p["event"]["i"] for p, _, _ in results) == list(range(8))
    assert len({p["pid"] for p, _, _ in results}) > 1  # served by several execution environments


def _wait_state(lam, name: str) -> dict:
    for _ in range(200):
        cfg = lam.get_function_configuration(FunctionName=name)
        if cfg["State"] != "Pending" and cfg.get("LastUpdateStatus") != "InProgress":
            return cfg
        time.sleep(0.1)
    return cfg


def _missing_python_runtime() -> str | None:
    pyenv = Path(os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")) / "versions"
    return next((r for r in ("python3.14", "python3.9", "python3.10", "python3.13")
                 if shutil.which(r) is None and not list(pyenv.glob(r[6:] + ".*"))), None)


@pytest.mark.parametrize("runtime", ["python3.9", "python3.10", "python3.11", "python3.13"])
def test_every_python_runtime_with_an_interpreter_runs(lam, lambda_function, runtime):
    """Setup prepared every python3.x this host has (boto3 of its own per runtime): nothing downloads now."""
    pyenv = Path(os.path.expanduser("~/.pyenv/versions"))
    if shutil.which(runtime) is None and not list(pyenv.glob(runtime[6:] + ".*")):
        pytest.skip(f"no {runtime} interpreter on this host")
    name = lambda_function("handlers.echo", runtime=runtime)
    payload, error, _ = invoke(lam, name, {"marker": runtime})
    assert error is None, payload
    assert payload["python"] == runtime[6:]
    assert f"/lambda-runtime/{runtime}/boto3/" in payload["boto3"], payload["boto3"]
    assert payload["account"] == "000000000000"


def test_nodejs_runtimes_run_on_the_host_node_with_the_runtime_sdk(lam, lambda_function, aws_client):
    name = lambda_function("node_handlers.echo", runtime="nodejs20.x", env={"GREETING": "hej"})
    payload, error, log = invoke(lam, name, {"marker": "n-1"})
    assert error is None, payload
    assert payload["event"] == {"marker": "n-1"} and payload["greeting"] == "hej"
    assert payload["account"] == "000000000000"  # the SDK v3 reached LocalStack via AWS_ENDPOINT_URL
    assert "/lambda-runtime/nodejs/node_modules/@aws-sdk/client-sts/" in payload["sdk"], payload["sdk"]
    assert payload["hostModule"] == "MODULE_NOT_FOUND"  # isolated: host node_modules are not visible
    assert payload["executionEnv"] == "AWS_Lambda_nodejs20.x"
    assert 0 < payload["remainingMs"] <= 10_000
    assert f"\t{payload['requestId']}\tINFO\tnode-echo-marker n-1" in log  # AWS's console format

    for runtime in ("nodejs18.x", "nodejs22.x"):
        other = lambda_function("node_handlers.callback", runtime=runtime)
        payload, error, _ = invoke(lam, other, {"n": 7})
        assert error is None and payload == {"via": "callback", "n": 7}, payload

    failing = lambda_function("node_handlers.fail", runtime="nodejs20.x")
    payload, error, log = invoke(lam, failing, {"why": "negative fare"})
    assert error == "Unhandled"
    assert payload["errorType"] == "TypeError" and payload["errorMessage"] == "bad input: negative fare"
    assert any("node_handlers.js" in line for line in payload["trace"])
    assert "Invoke Error" in log

    missing = lambda_function("node_handlers.nope", runtime="nodejs20.x")
    payload, error, _ = invoke(lam, missing)
    assert error == "Unhandled" and payload["errorType"] == "Runtime.HandlerNotFound", payload


def test_failed_function_can_be_deleted_updated_and_recreated(lam, aws_client, fixture_code_zip):
    """A runtime whose interpreter this host lacks fails at creation with a message that says so; the
    Failed function can then be deleted, recreated, and updated into a working one (LocalStack alone
    answers InternalError "Unable to find version manager" to DeleteFunction and UpdateFunctionCode)."""
    missing = _missing_python_runtime()
    if missing is None:
        pytest.skip("every Lambda Python runtime has an interpreter on this host")
    name = f"t-noruntime-{int(time.time() * 1000) % 10**8}"
    create = dict(FunctionName=name, Runtime=missing, Role=LAMBDA_ROLE, Handler="handlers.echo",
                  Code={"ZipFile": fixture_code_zip}, Timeout=10)
    lam.create_function(**create)
    cfg = _wait_state(lam, name)
    assert cfg["State"] == "Failed"
    assert f"no Python {missing[6:]} interpreter" in cfg["StateReason"]
    assert f"pyenv install {missing[6:]}" in cfg["StateReason"]  # names what to install

    lam.delete_function(FunctionName=name)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=name)

    lam.create_function(**create)  # recreated under the same name
    assert _wait_state(lam, name)["State"] == "Failed"
    lam.update_function_code(FunctionName=name, ZipFile=fixture_code_zip)
    assert _wait_state(lam, name)["State"] == "Failed"  # still no interpreter: fails again, clearly
    lam.update_function_configuration(FunctionName=name, Runtime="python3.12")
    cfg = _wait_state(lam, name)
    assert cfg["State"] == "Active" and cfg["LastUpdateStatus"] == "Successful", cfg
    payload, error, _ = invoke(lam, name, {"marker": "revived"})
    assert error is None and payload["python"] == "3.12", payload
    lam.delete_function(FunctionName=name)
