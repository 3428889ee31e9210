#!/usr/bin/env python3
"""Load test of the prediction API through API Gateway on LocalStack (loopback only).

    .venv/bin/python scripts/load_test.py                      # own LocalStack, deploy, search, 2x, account
    .venv/bin/python scripts/load_test.py --url http://localhost:4566 --period 120

Why not locust: locust is not installed in the project (it pulls gevent, ~30 MB of extra
dependencies) and its closed-loop users hide queueing delay: when the server slows down, users
wait and the offered rate drops.  This is an *open-loop* generator (requests are issued on a fixed
schedule whatever the server does; latency is measured from the scheduled start, so queueing
counts), bounded in time (``--period`` per step) and count (rate x period), with a thread pool
(requests releases the GIL on I/O; at these rates one process is far from the limit).

Steps: ramp the offered rate (``--rates``, short ``--probe`` periods) until a step has errors,
falls short of the offered rate by > 5% or its p99 exceeds ``--p99-ms``; the last good rate is
the sustainable one, confirmed over ``--period``; then 2x that rate for ``--period``.  Finally
the log accounting: after the fallback queue drains, request-log items + DLQ messages must equal
the records served (200 responses) — records lost must be 0.  Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import requests  # noqa: E402
from requests.adapters import HTTPAdapter  # noqa: E402

from driftstack import deploy, localstack_host  # noqa: E402
from driftstack.schema import example_features  # noqa: E402
from driftstack.serving.toy_model import build_toy_model, publish  # noqa: E402

STACK = "DriftstackLoad"


@dataclass
class Step:
    name: str
    rate: float
    period: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0               # transport errors (timeouts, resets)
    error_kinds: dict[str, int] = field(default_factory=dict)
    wall: float = 0.0

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + self.errors

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000

    @property
    def achieved(self) -> float:
        return self.ok / self.wall if self.wall else 0.0

    def row(self) -> str:
        s5 = sum(v for k, v in self.statuses.items() if k >= 500)
        return (f"| {self.name:<11} | {self.rate:6.1f} | {self.period:4.0f} | {self.sent:6d} | {self.achieved:7.1f} | "
                f"{self.pct(0.5):7.1f} | {self.pct(0.95):7.1f} | {self.pct(0.99):7.1f} | {self.statuses.get(429, 0):5d} | "
                f"{s5:4d} | {self.errors:4d} |")


HEADER = ("| step        | offered rps | s | requests | ok rps | p50 ms | p95 ms | p99 ms | 429 | 5xx | transport errors |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")


def run_step(session: requests.Session, url: str, step: Step, workers: int) -> Step:
    """Open loop: request i is due at t0 + i/rate; latency counts from that due time."""
    body = json.dumps({"features": example_features()})
    lock = threading.Lock()
    total = int(step.rate * step.period)

    def one(due: float) -> None:
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        try:
            r = session.post(url, data=body, timeout=30)
            code = r.status_code
        except requests.RequestException as exc:
            code, kind = None, type(exc).__name__
        lat = time.perf_counter() - due
        with lock:
            if code is None:
                step.errors += 1
                step.error_kinds[kind] = step.error_kinds.get(kind, 0) + 1
            else:
                step.statuses[code] = step.statuses.get(code, 0) + 1
                if code == 200:
                    step.latencies.append(lat)

    t0 = time.perf_counter() + 0.2
    with ThreadPoolExecutor(workers) as pool:
        for i in range(total):
            due = t0 + i / step.rate
            # Hand work to the pool just in time, so the queue never holds more than ~1 s of work.
            while due - time.perf_counter() > 1.0:
                time.sleep(0.05)
            pool.submit(one, due)
    step.wall = time.perf_counter() - t0
    return step


def good(step: Step, p99_ms: float) -> bool:
    return (step.errors == 0 and step.ok == step.sent and step.achieved >= 0.95 * step.rate
            and step.pct(0.99) <= p99_ms)


def count_items(ddb, table: str) -> int:
    n, kw = 0, {}
    while True:
        resp = ddb.scan(TableName=table, Select="COUNT", **kw)
        n += resp["Count"]
        if "LastEvaluatedKey" not in resp:
            return n
        kw["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def queue_depth(sqs, url: str) -> int:
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                               "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="a running LocalStack (default: start one on a free port, stop it at the end)")
    p.add_argument("--rates", default="10,20,30,45,60,80,100", help="offered rates to try (requests/s)")
    p.add_argument("--probe", type=float, default=15.0, help="seconds per search step")
    p.add_argument("--period", type=float, default=60.0, help="seconds for the sustained and the 2x steps")
    p.add_argument("--p99-ms", type=float, default=500.0, help="p99 bound for a 'sustainable' rate")
    p.add_argument("--workers", type=int, default=64)
    p.add_argument("--keep", action="store_true", help="keep the stack (and LocalStack) afterwards")
    a = p.parse_args(argv)

    state = None
    if a.url:
        url = a.url
    else:
        state = localstack_host.STATE_ROOT / "load-test"
        url = localstack_host.start(localstack_host.free_port(), state).url
    print(f"LocalStack {url}", flush=True)
    creds = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    try:
        t = time.perf_counter()
        out = deploy.deploy(url, stack=STACK, context={"model_refresh_seconds": "30", "log_sample_rate": "0"})
        print(f"deployed in {time.perf_counter() - t:.0f} s", flush=True)
        s3 = boto3.client("s3", config=boto3.session.Config(s3={"addressing_style": "path"}), **creds)
        ddb, sqs = boto3.client("dynamodb", **creds), boto3.client("sqs", **creds)
        models = boto3.resource("dynamodb", **creds).Table(out["ModelsTableName"])
        key = boto3.client("apigateway", **creds).get_api_key(apiKey=out["ApiKeyId"], includeValue=True)["value"]
        publish(s3, models, out["BucketName"], build_toy_model(), version="load-1")
        base = f"{url}/_aws/execute-api/{out['ApiId']}/{out['ApiStage']}/v1"
        session = requests.Session()
        session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=a.workers))
        session.headers.update({"x-api-key": key, "content-type": "application/json"})
        deadline = time.monotonic() + 120
        while session.get(f"{base}/health", timeout=30).json().get("model_version") != "load-1":
            if time.monotonic() > deadline:
                raise SystemExit("the model was not served within 120 s")
            time.sleep(1)
        # Warm up (cold starts of the function's containers are not part of the measurement).
        run_step(session, f"{base}/predict", Step("warm-up", 5, 5), a.workers)
        baseline_items = count_items(ddb, out["RequestLogTableName"])

        steps: list[Step] = []
        sustainable = None
        print(HEADER, flush=True)
        for rate in [float(x) for x in a.rates.split(",")]:
            s = run_step(session, f"{base}/predict", Step(f"probe {rate:g}", rate, a.probe), a.workers)
            steps.append(s)
            print(s.row(), s.statuses, s.error_kinds, flush=True)
            if not good(s, a.p99_ms):
                break
            sustainable = rate
        if sustainable is None:
            print("no offered rate was sustainable; lower --rates")
        for name, rate in (("sustained", sustainable), ("2x", 2 * sustainable)) if sustainable else ():
            s = run_step(session, f"{base}/predict", Step(name, rate, a.period), a.workers)
            steps.append(s)
            print(s.row(), flush=True)

        # Log accounting: every 200 is one record (single predictions); wait for the replay.
        served = sum(s.ok for s in steps)
        deadline = time.monotonic() + 120
        while queue_depth(sqs, out["FallbackQueueUrl"]) and time.monotonic() < deadline:
            time.sleep(2)
        items = count_items(ddb, out["RequestLogTableName"]) - baseline_items
        dlq = queue_depth(sqs, out["FallbackDlqUrl"])
        pending = queue_depth(sqs, out["FallbackQueueUrl"])

        print("\n" + HEADER)
        for s in steps:
            print(s.row())
        print(f"\nsustainable rate: {sustainable or 0:g} req/s (p99 <= {a.p99_ms:g} ms, zero errors, "
              f"{a.probe:g} s probes, confirmed over {a.period:g} s)")
        print(f"log accounting: served {served} records; request-log items {items}, fallback queue {pending}, "
              f"DLQ {dlq}; records lost: {served - items - pending - dlq}")
        print("statuses:", {s.name: s.statuses for s in steps})
        session.close()
        return 0
    finally:
        if not a.keep:
            try:
                deploy.destroy(url, stack=STACK)
            except Exception as exc:  # noqa: BLE001
                print(f"destroy failed: {exc}")
            if state is not None:
                localstack_host.stop(state)


if __name__ == "__main__":
    raise SystemExit(main())
