"""Benchmark the host LocalStack: start time to healthy, memory, Lambda latency through the host runner.

    .venv/bin/python scripts/bench_localstack.py [--invokes 100] [--starts 3]

Starts its own LocalStack instances on free ports (state under .state/bench-localstack) and stops
them. Prints a table; nothing is asserted (timings depend on the machine).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import boto3

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from driftstack.tools import localstack_host  # noqa: E402

HANDLERS = REPO / "tests" / "lambda_fixtures" / "handlers.py"
STATE = localstack_host.STATE_ROOT / "bench-localstack"


def rss_mb(pgid: int) -> tuple[float, float]:
    """(RSS of the LocalStack process, RSS of its whole process group) in MiB."""
    main = total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) != pgid:
                continue
            kb = next(int(l.split()[1]) for l in Path(f"/proc/{entry}/status").read_text().splitlines()
                      if l.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
        total += kb
        if int(entry) == pgid:
            main = kb
    return main / 1024, total / 1024


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invokes", type=int, default=100)
    parser.add_argument("--starts", type=int, default=3)
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    shutil.rmtree(STATE, ignore_errors=True)

    starts = []
    for i in range(args.starts):
        t0 = time.perf_counter()
        localstack_host.start(localstack_host.free_port(), STATE / f"start-{i}")
        starts.append(time.perf_counter() - t0)
        localstack_host.stop(STATE / f"start-{i}")
    rows.append(("start -> healthy (launcher call), median of %d" % args.starts, f"{statistics.median(starts):.2f} s"))

    st = localstack_host.start(localstack_host.free_port(), STATE / "main")
    try:
        time.sleep(1)
        main_rss, _ = rss_mb(st.pid)
        rows.append(("RSS idle (LocalStack process)", f"{main_rss:.0f} MiB"))
        kw = dict(endpoint_url=st.url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
        lam = boto3.client("lambda", **kw)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.write(HANDLERS, "handlers.py")
        lam.create_function(FunctionName="bench", Runtime="python3.12", Handler="handlers.noop",
                            Role="arn:aws:iam::000000000000:role/bench", Code={"ZipFile": buf.getvalue()})
        lam.get_waiter("function_active_v2").wait(FunctionName="bench")

        def invoke() -> float:
            t0 = time.perf_counter()
            resp = lam.invoke(FunctionName="bench", Payload=b'{"x": 1}')
            assert "FunctionError" not in resp and json.loads(resp["Payload"].read()) == {"x": 1}
            return (time.perf_counter() - t0) * 1000

        rows.append(("first invoke (cold: process start + init)", f"{invoke():.0f} ms"))
        for _ in range(5):
            invoke()
        warm = [invoke() for _ in range(args.invokes)]
        rows.append((f"warm invoke, median of {args.invokes}", f"{statistics.median(warm):.1f} ms"))
        rows.append((f"warm invoke, p99 of {args.invokes}", f"{pct(warm, 99):.1f} ms"))
        rows.append(("RSS after the invokes (LocalStack process)", f"{rss_mb(st.pid)[0]:.0f} MiB"))

        apigw = boto3.client("apigateway", **kw)
        lam.create_function(FunctionName="bench-proxy", Runtime="python3.12", Handler="handlers.proxy",
                            Role="arn:aws:iam::000000000000:role/bench", Code={"ZipFile": buf.getvalue()})
        lam.get_waiter("function_active_v2").wait(FunctionName="bench-proxy")
        arn = lam.get_function(FunctionName="bench-proxy")["Configuration"]["FunctionArn"]
        api = apigw.create_rest_api(name="bench")["id"]
        root = apigw.get_resources(restApiId=api)["items"][0]["id"]
        apigw.put_method(restApiId=api, resourceId=root, httpMethod="GET", authorizationType="NONE")
        apigw.put_integration(restApiId=api, resourceId=root, httpMethod="GET", type="AWS_PROXY",
                              integrationHttpMethod="POST",
                              uri=f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{arn}/invocations")
        apigw.create_deployment(restApiId=api, stageName="bench")
        url = f"{st.url}/_aws/execute-api/{api}/bench/"

        def http() -> float:
            t0 = time.perf_counter()
            with urllib.request.urlopen(url) as r:
                assert r.status == 201 and json.loads(r.read())["method"] == "GET"
            return (time.perf_counter() - t0) * 1000

        for _ in range(5):
            http()
        via_api = [http() for _ in range(args.invokes)]
        rows.append((f"HTTP via API Gateway REST -> Lambda, median of {args.invokes}", f"{statistics.median(via_api):.1f} ms"))
        rows.append((f"HTTP via API Gateway REST -> Lambda, p99 of {args.invokes}", f"{pct(via_api, 99):.1f} ms"))
        main_rss, group_rss = rss_mb(st.pid)
        rows.append(("RSS after API Gateway too (LocalStack process)", f"{main_rss:.0f} MiB"))
        rows.append(("RSS after the runs (LocalStack + Lambda runtime processes)", f"{group_rss:.0f} MiB"))
    finally:
        t0 = time.perf_counter()
        localstack_host.stop(STATE / "main")
        rows.append(("stop (whole process group)", f"{time.perf_counter() - t0:.1f} s"))
        shutil.rmtree(STATE, ignore_errors=True)

    width = max(len(k) for k, _ in rows)
    print(f"{'measure'.ljust(width)}  value")
    print(f"{'-' * width}  --------")
    for k, v in rows:
        print(f"{k.ljust(width)}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
