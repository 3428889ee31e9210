#!/usr/bin/env python3
"""Load test of the prediction API through API Gateway on LocalStack (loopback only).

    .venv/bin/python scripts/load_test.py                      # own LocalStack: deploy, search, confirm, 2x, account
    .venv/bin/python scripts/load_test.py --probe 20 --period 20   # a quick run while developing
    .venv/bin/python scripts/load_test.py --rate 8             # skip the search: limit and test at 8 req/s

Why not locust: locust is not installed in the project (it pulls gevent, ~30 MB of extra
dependencies) and its closed-loop users hide queueing delay: when the server slows down, users
wait and the offered rate drops.  This is an *open-loop* generator (requests are issued on a fixed
schedule whatever the server does; latency is measured from the scheduled start, so queueing
counts), bounded in time (``--period`` per step) and count (rate x period), with a thread pool
(requests releases the GIL on I/O; at these rates one process is far from the limit).

Steps:
1. search: deploy with the stack's default API limits (500 req/s, far above anything here) and ramp
   the offered rate (``--rates``, ``--probe`` s each) until a step has an error, falls short of the
   offered rate by > 5% or its p99 exceeds ``--p99-ms``; the last good rate R is the candidate.
2. redeploy the same stack with ``-c api_rate_limit=R -c api_burst_limit=R x --burst-seconds``: the
   usage plan (per API key) and the stage throttle now protect the function at R, as they would on
   AWS (enforced locally by our LocalStack plugin, ``localstack/plugin/.../apigw_throttle.py``).
3. sustained: R for ``--period`` s (default 120) must still be good, else the next lower rate is tried.
4. 2x: 2R for ``--period`` s: graceful means the excess gets 429 from the usage plan, and there are
   zero 5xx and zero transport errors (the p99 of the 200s is reported against ``--p99-ms``).
5. log accounting: the log archiver (output ArchiverFunctionName) is invoked until the log queue
   (LogQueueUrl) is empty and no spilled message is left under log-spill/; then the archive is read
   with ``driftstack.adapters.archive.read_records`` over the test's time range: every request id answered
   200 (warm-up included) must be there once (lost 0, duplicates 0: count in = count out); the
   messages in the log's dead-letter queue (LogDlqUrl) are counted and must be 0 (records there are
   never archived).  Records archived whose answer the client never saw (a client timeout) are
   reported, not counted as lost.
Prints a table; exit status 1 when the 2x step or the accounting is not graceful.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import requests  # noqa: E402
from botocore.config import Config  # noqa: E402
from requests.adapters import HTTPAdapter  # noqa: E402

from driftstack.adapters import archive
from driftstack.tools import deploy
from driftstack.tools import localstack_host  # noqa: E402
from driftstack.contract.api import example_features  # noqa: E402
from driftstack.tools.toy_model import build_toy_model, publish  # noqa: E402

STACK = "DriftstackLoad"


@dataclass
class Step:
    name: str
    rate: float
    period: float
    limit: float | None = None    # the API's rate limit (usage plan and stage) during this step
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0               # transport errors (timeouts, resets)
    error_kinds: dict[str, int] = field(default_factory=dict)
    bodies_5xx: list[str] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    wall: float = 0.0

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + self.errors

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def s5xx(self) -> int:
        return sum(v for k, v in self.statuses.items() if k >= 500)

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000

    @property
    def achieved(self) -> float:
        return self.ok / self.wall if self.wall else 0.0

    def row(self) -> str:
        share = (lambda n: f"{100 * n / self.sent:5.1f}%") if self.sent else (lambda n: "    -")
        limit = f"{self.limit:g}" if self.limit else "500 (default)"
        return (f"| {self.name:<11} | {self.rate:6.1f} | {limit} | {self.period:4.0f} | {self.sent:6d} | "
                f"{self.achieved:6.1f} | {share(self.ok)} | {self.pct(0.5):7.1f} | {self.pct(0.95):7.1f} | "
                f"{self.pct(0.99):7.1f} | {self.statuses.get(429, 0):5d} ({share(self.statuses.get(429, 0))}) | "
                f"{self.s5xx:4d} | {self.errors:4d} |")


HEADER = ("| step | offered req/s | API limit req/s | s | requests | 200/s | 200 share | p50 ms | p95 ms | p99 ms "
          "| 429 (share) | 5xx | transport errors |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def run_step(session: requests.Session, url: str, step: Step, workers: int) -> Step:
    """Open loop: request i is due at t0 + i/rate; latency counts from that due time."""
    body = json.dumps({"features": example_features()})
    lock = threading.Lock()
    total = int(step.rate * step.period)

    def one(due: float) -> None:
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        rid = text = None
        try:
            r = session.post(url, data=body, timeout=30)
            code = r.status_code
            if code == 200:
                rid = r.json()["request_id"]
            elif code >= 500:
                text = r.text[:300]
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
                    step.request_ids.append(rid)
                elif text is not None and len(step.bodies_5xx) < 5:
                    step.bodies_5xx.append(f"{code} {text}")

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


def summary(sustained: Step | None, over: Step | None, lost: int, duplicates: int, dlq: int) -> dict:
    """The run's figures under stable names (``--json``), comparable across commits."""
    def fig(value: float) -> float | None:
        return None if value is None or math.isnan(value) else round(value, 1)

    return {
        "sustained_rps": sustained.rate if sustained else 0,
        "p50_ms": fig(sustained.pct(0.5)) if sustained else None,
        "p95_ms": fig(sustained.pct(0.95)) if sustained else None,
        "p99_ms": fig(sustained.pct(0.99)) if sustained else None,
        "errors": sustained.s5xx + sustained.errors if sustained else None,
        "overload_rps": over.rate if over else None,
        "overload_429_share": round(over.statuses.get(429, 0) / max(1, over.sent), 3) if over else None,
        "overload_errors": over.s5xx + over.errors if over else None,
        "records_lost": lost,
        "records_duplicated": duplicates,
        "log_dlq_messages": dlq,
    }


SUMMARY_HEADER = ("| sustained req/s (0 errors) | p50 ms | p95 ms | p99 ms | errors | 2x req/s | 2x 429 share "
                  "| 2x 5xx + transport | records lost |\n|---|---|---|---|---|---|---|---|---|")


def summary_row(fig: dict) -> str:
    """One line per run: paste the before and after rows under one SUMMARY_HEADER to compare."""
    share = fig["overload_429_share"]
    return (f"| {fig['sustained_rps']:g} | {fig['p50_ms']} | {fig['p95_ms']} | {fig['p99_ms']} | {fig['errors']} "
            f"| {fig['overload_rps']} | {'-' if share is None else f'{share:.1%}'} | {fig['overload_errors']} "
            f"| {fig['records_lost']} |")


def good(step: Step, p99_ms: float) -> bool:
    return (step.errors == 0 and step.ok == step.sent and step.achieved >= 0.95 * step.rate
            and step.pct(0.99) <= p99_ms)


def graceful(step: Step) -> bool:
    """Overload handled: the excess got 429 from the usage plan; no 5xx, no transport errors."""
    return (step.errors == 0 and step.ok + step.statuses.get(429, 0) == step.sent
            and step.statuses.get(429, 0) > 0)


def queue_depth(sqs, url: str) -> int:
    """Messages in the queue, visible or held by a consumer (in flight)."""
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                               "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])


def spilled(s3, layout: archive.Layout) -> int:
    """Log messages the predict function spilled to S3 (the queue refused them), not yet archived."""
    resp = s3.list_objects_v2(Bucket=layout.bucket, Prefix=layout.spill_prefix, MaxKeys=1000)
    return resp.get("KeyCount", len(resp.get("Contents", [])))


@dataclass
class Drained:
    invocations: int = 0
    messages: int = 0
    requests: int = 0
    spilled_objects: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    queue_left: int = 0
    spill_left: int = 0


def drain_log(lam, function: str, sqs, queue_url: str, s3, layout: archive.Layout, timeout: float,
              budget_seconds: float = 120.0) -> Drained:
    """Invoke the log archiver (what its schedule does) until the log queue is empty and nothing
    is left spilled, or ``timeout`` seconds pass. A message the archiver rejects becomes visible
    again at once; after the queue's maxReceiveCount receives it moves to the DLQ, so this ends."""
    out, t0 = Drained(), time.monotonic()
    while True:
        resp = lam.invoke(FunctionName=function, Payload=json.dumps({"budget_seconds": budget_seconds}).encode())
        payload = json.loads(resp["Payload"].read() or b"null")
        out.invocations += 1
        if resp.get("FunctionError"):
            out.errors.append(f"archiver failed: {(payload or {}).get('errorMessage', payload)}"[:300])
        else:
            for k in ("messages", "requests", "spilled_objects", "rejected"):
                setattr(out, k, getattr(out, k) + int(payload.get(k, 0)))
            out.errors += payload.get("errors", [])[:5]
        out.queue_left, out.spill_left = queue_depth(sqs, queue_url), spilled(s3, layout)
        if not (out.queue_left or out.spill_left) or time.monotonic() - t0 > timeout:
            break
        time.sleep(1)   # messages in flight (a scheduled run's) stay NotVisible until it deletes them
    out.seconds = time.monotonic() - t0
    return out


def archived_ids(s3, layout: archive.Layout, start: datetime, end: datetime) -> list[str]:
    """Request ids of the archive's request records whose time lies in [start, end) (a list: a
    duplicate would show as count out > count in)."""
    return [r["request_id"] for r in archive.read_records(s3, layout, archive.REQUESTS, start, end)]


def dlq_contents(sqs, url: str) -> tuple[int, set[str]]:
    """(messages in the log DLQ, request ids of the readable ones among them: peeked, left in place)."""
    count = queue_depth(sqs, url)
    ids: set[str] = set()
    for _ in range(10 if count else 0):
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30).get("Messages", [])
        if not msgs:
            break
        for m in msgs:
            try:
                ids.update(r["request_id"] for r in json.loads(m["Body"]).get("records", []))
            except (ValueError, AttributeError, KeyError, TypeError):
                pass    # not a log message (that is why it is there)
    return count, ids


class Target:
    """The deployed stack: (re)deploys with an API limit, and the HTTP session with its key."""

    def __init__(self, url: str, workers: int, burst_seconds: float) -> None:
        self.url, self.workers, self.burst_seconds = url, workers, burst_seconds
        self.creds = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test")
        self.out: dict[str, str] = {}
        self.limit: float | None = None
        self.session: requests.Session | None = None

    def deploy(self, limit: float | None) -> None:
        """Deploy (or update) the stack; limit None = the stack's defaults (500 req/s, burst 1000)."""
        context = {"model_refresh_seconds": "30", "log_sample_rate": "0"}
        if limit:
            context |= {"api_rate_limit": f"{limit:g}", "api_burst_limit": str(self.burst(limit))}
        t = time.perf_counter()
        first = not self.out
        self.out = deploy.deploy(self.url, stack=STACK, context=context, build=first)
        self.limit = limit
        print(f"{'deployed' if first else 'redeployed'} with API limit "
              f"{self.describe_limits()} in {time.perf_counter() - t:.0f} s", flush=True)
        if first:
            self._prepare()

    def burst(self, limit: float) -> int:
        return max(1, math.ceil(limit * self.burst_seconds))

    def describe_limits(self) -> str:
        """What API Gateway holds now (usage plan of our key, stage method settings)."""
        apigw = boto3.client("apigateway", **self.creds)
        plans = [p for p in apigw.get_usage_plans(keyId=self.out["ApiKeyId"])["items"]
                 if any(s["apiId"] == self.out["ApiId"] for s in p.get("apiStages", []))]
        stage = apigw.get_stage(restApiId=self.out["ApiId"], stageName=self.out["ApiStage"])
        method = stage.get("methodSettings", {}).get("*/*", {})
        plan = plans[0].get("throttle", {}) if plans else {}
        return (f"usage plan {plan.get('rateLimit')}/s burst {plan.get('burstLimit')}, stage "
                f"{method.get('throttlingRateLimit')}/s burst {method.get('throttlingBurstLimit')}")

    def _prepare(self) -> None:
        s3 = boto3.client("s3", config=boto3.session.Config(s3={"addressing_style": "path"}), **self.creds)
        models = boto3.resource("dynamodb", **self.creds).Table(self.out["ModelsTableName"])
        key = boto3.client("apigateway", **self.creds).get_api_key(apiKey=self.out["ApiKeyId"],
                                                                   includeValue=True)["value"]
        publish(s3, models, self.out["BucketName"], build_toy_model(), version="load-1")
        self.base = f"{self.url}/_aws/execute-api/{self.out['ApiId']}/{self.out['ApiStage']}/v1"
        self.session = requests.Session()
        self.session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=self.workers))
        self.session.headers.update({"x-api-key": key, "content-type": "application/json"})
        deadline = time.monotonic() + 120
        while self.session.get(f"{self.base}/health", timeout=30).json().get("model_version") != "load-1":
            if time.monotonic() > deadline:
                raise SystemExit("the model was not served within 120 s")
            time.sleep(1)

    def warm_up(self) -> list[Step]:
        """A short burst starts a few execution environments, so the cold starts of the function's
        containers are not part of the measurement; then a steady trickle."""
        n = min(10, self.burst(self.limit)) if self.limit else 10   # within the API's burst limit
        return [self.step("warm-up", 40, n / 40), self.step("warm-up", 2, 5)]

    def step(self, name: str, rate: float, period: float) -> Step:
        return run_step(self.session, f"{self.base}/predict", Step(name, rate, period, self.limit), self.workers)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--url", help="a running LocalStack (default: start one on a free port, stop it at the end)")
    p.add_argument("--rates", default="5,10,15,20,25,30,35,40,45,50,60", help="offered rates to search (requests/s)")
    p.add_argument("--rate", type=float, help="skip the search: limit the API to this rate and test it and 2x")
    p.add_argument("--probe", type=float, default=30.0, help="seconds per search step")
    p.add_argument("--period", type=float, default=120.0, help="seconds for the sustained and the 2x steps")
    p.add_argument("--p99-ms", type=float, default=500.0, help="p99 bound for a 'sustainable' rate")
    p.add_argument("--burst-seconds", type=float, default=1.0,
                   help="API burst limit = rate x this (the usage plan's token bucket size)")
    p.add_argument("--workers", type=int, default=64)
    p.add_argument("--drain-timeout", type=float, default=600.0,
                   help="seconds to keep invoking the log archiver until the log queue is empty")
    p.add_argument("--keep", action="store_true", help="keep the stack (and LocalStack) afterwards")
    p.add_argument("--json", action="store_true",
                   help="print only the figures as one JSON document on stdout (the tables go to stderr)")
    a = p.parse_args(argv)
    if a.json:
        with contextlib.redirect_stdout(sys.stderr):
            code, figures = run(a)
        print(json.dumps(figures))
        return code
    return run(a)[0]


def run(a: argparse.Namespace) -> tuple[int, dict]:
    rates = sorted(float(x) for x in a.rates.split(","))

    state = None
    if a.url:
        url = a.url
    else:
        state = localstack_host.STATE_ROOT / "load-test"
        url = localstack_host.start(localstack_host.free_port(), state).url
    print(f"LocalStack {url}", flush=True)
    target = Target(url, a.workers, a.burst_seconds)
    steps: list[Step] = []
    try:
        target.deploy(a.rate)
        started = archive.utc_now() - timedelta(seconds=1)   # the test's time range starts here
        steps += target.warm_up()

        candidates = [a.rate] if a.rate else []
        if not a.rate:
            print(HEADER, flush=True)
            for rate in rates:
                s = target.step(f"probe {rate:g}", rate, a.probe)
                steps.append(s)
                print(s.row(), s.error_kinds or "", flush=True)
                if not good(s, a.p99_ms):
                    break
                candidates.insert(0, rate)   # best first; lower ones are the fallbacks
            if not candidates:
                print(f"no offered rate was sustainable; lower --rates (lowest tried: {rates[0]:g})")

        sustainable = sustained = None
        for rate in candidates:
            if target.limit != rate:
                target.deploy(rate)
                steps += target.warm_up()  # the update restarts the function's environments
            s = target.step(f"sustained {rate:g}", rate, a.period)
            steps.append(s)
            print(s.row(), s.error_kinds or "", flush=True)
            if good(s, a.p99_ms):
                sustainable, sustained = rate, s
                break
        over = None
        if sustainable:
            over = target.step(f"2x {sustainable:g}", 2 * sustainable, a.period)
            steps.append(over)
            print(over.row(), over.error_kinds or "", flush=True)

        # Log accounting: every 200 carries a request id that must reach the archive.
        out = target.out
        ended = archive.utc_now() + timedelta(seconds=1)
        sqs = boto3.client("sqs", **target.creds)
        s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}), **target.creds)
        lam = boto3.client("lambda", config=Config(read_timeout=330, retries={"total_max_attempts": 1}),
                           **target.creds)
        layout = archive.Layout(bucket=out["BucketName"], slot_minutes=int(out["ArchiveSlotMinutes"]))
        print(f"draining the log queue with {out['ArchiverFunctionName']} ...", flush=True)
        drained = drain_log(lam, out["ArchiverFunctionName"], sqs, out["LogQueueUrl"], s3, layout,
                            timeout=a.drain_timeout)
        served = [rid for s in steps for rid in s.request_ids]
        stored = archived_ids(s3, layout, started, ended)
        served_set, stored_set = set(served), set(stored)
        dlq_count, dlq_ids = dlq_contents(sqs, out["LogDlqUrl"])
        lost = served_set - stored_set
        unanswered = stored_set - served_set     # logged, but the client saw no 200 (e.g. its timeout)
        duplicates = len(stored) - len(stored_set)
        counts_match = len(served) == len(stored) and not lost and not duplicates

        print("\n" + HEADER)
        for s in steps:
            print(s.row())
        print(f"\nsustainable rate: {sustainable or 0:g} req/s (p99 <= {a.p99_ms:g} ms, zero errors"
              + (f", {a.probe:g} s probes" if not a.rate else "") + f", confirmed over {a.period:g} s with the "
              f"API limited to it: {target.describe_limits()})")
        if over:
            print(f"2x ({2 * sustainable:g} req/s offered): {over.ok} x 200 ({over.ok / max(1, over.sent):.1%}, "
                  f"{over.achieved:.1f}/s), {over.statuses.get(429, 0)} x 429 "
                  f"({over.statuses.get(429, 0) / max(1, over.sent):.1%}), {over.s5xx} x 5xx, "
                  f"{over.errors} transport errors -> {'graceful' if graceful(over) else 'NOT graceful'}; "
                  f"p99 of the 200s {over.pct(0.99):.0f} ms ({'within' if over.pct(0.99) <= a.p99_ms else 'above'} "
                  f"the {a.p99_ms:g} ms bound)")
        print(f"log archiver: {drained.invocations} invocation(s) in {drained.seconds:.0f} s archived "
              f"{drained.messages} message(s) ({drained.requests} request records, {drained.spilled_objects} "
              f"spilled object(s) merged, {drained.rejected} rejected); left: log queue {drained.queue_left} "
              f"message(s), spill {drained.spill_left} object(s)" + (f"; errors {drained.errors[:3]}"
                                                                     if drained.errors else ""))
        print(f"log accounting ({archive.iso(started)} .. {archive.iso(ended)}): {len(served)} request ids "
              f"answered 200 (count in), {len(stored)} request records in the archive (count out) -> "
              f"{'equal' if counts_match else 'NOT equal'}; lost {len(lost)} (of them in the log DLQ "
              f"{len(lost & dlq_ids)}), archived but not answered 200 {len(unanswered)}, duplicates {duplicates}; "
              f"log DLQ holds {dlq_count} message(s)")
        if lost:
            print("  lost ids (first 5):", sorted(lost)[:5])
        if unanswered:
            print("  archived, not answered 200 (first 5; a client timeout or transport error):",
                  sorted(unanswered)[:5])
        print("statuses:", [(s.name, s.statuses) for s in steps])
        for s in steps:
            if s.error_kinds or s.bodies_5xx:
                print(f"  {s.name}: transport errors {s.error_kinds}, 5xx bodies {s.bodies_5xx}")
        figures = summary(sustained, over, len(lost), duplicates, dlq_count)
        print("\n" + SUMMARY_HEADER + "\n" + summary_row(figures))
        ok = bool(over) and graceful(over) and not lost and not duplicates and not dlq_count
        return (0 if ok else 1), figures
    finally:
        if target.session is not None:
            target.session.close()
        if not a.keep:
            try:
                deploy.destroy(url, stack=STACK)
            except Exception as exc:  # noqa: BLE001
                print(f"destroy failed: {exc}")
            if state is not None:
                localstack_host.stop(state)


if __name__ == "__main__":
    raise SystemExit(main())
