#!/usr/bin/env python3
"""Serving benchmark (issues 5, 18): prints tables with ratios, measured side by side in one run.

1. In-process, one trip: the full Lambda handler (the columnar fast path or Powertools routing,
   validation, encoding, onnxruntime, EMF flush; request-log write excluded and measured separately)
   vs encode + ``InferenceSession.run`` vs raw ``InferenceSession.run`` vs Spark
   ``PipelineModel.transform`` of a one-row DataFrame (what an MLflow-pyfunc Spark server does per request).
2. One request with a batch of 1,000 trips: rows/s.
3. Cold start in-process: a fresh interpreter imports functions/predict/app.py (settings, clients,
   the champion's download from a local moto server, its session) and answers one request.
4. Through API Gateway on LocalStack (deployed with cdklocal): p50/p99 and throughput with 1, 8 and
   32 concurrent clients for a bounded time, errors counted; cold start of a fresh container.

The model is a real Spark GBT pipeline trained here on generated trips and exported with
spark_jobs.onnx_export (``--skip-spark`` uses the toy model and skips the Spark row).

    python scripts/bench_serving.py                       # everything (starts nothing: needs LocalStack
                                                          #  at --endpoint for part 4 and the log write)
    python scripts/bench_serving.py --no-api --seconds 5  # in-process only
    python scripts/bench_serving.py --no-api --json       # the figures as JSON (handler_p50_us,
                                                          #  encode_infer_p50_us, raw_p50_us, batch_rows_per_s,
                                                          #  cold_start_ms, ...) to compare commits
Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from driftstack.domain import encoding  # noqa: E402
from driftstack.contract import features as fc  # noqa: E402
from driftstack.tools.toy_model import build_toy_model, publish  # noqa: E402

AWS_VARS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


def pct(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples), q))


class Samples(list):
    """Wall seconds per call; ``.cpu`` holds this thread's CPU seconds per call (what the call
    costs on an idle core: on a shared, loaded machine wall time also counts preemption)."""

    cpu: list[float]


def timed(fn, n: int, warmup: int = 200) -> Samples:
    for _ in range(warmup):
        fn()
    out, cpu = Samples(), []
    wall, thread = time.perf_counter, time.thread_time
    for _ in range(n):
        t, c = wall(), thread()
        fn()
        c2, t2 = thread(), wall()
        out.append(t2 - t)
        cpu.append(c2 - c)
    out.cpu = cpu
    return out


def table(title: str, header: list[str], rows: list[list]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print(f"\n{title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)))


# ------------------------------------------------------------------ model

def spark_model(train_rows: int):
    """Fit the real pipeline on generated trips; returns (spark, PipelineModel, onnx bytes)."""
    import pandas as pd

    from driftstack.tools.traffic import make_trips
    from spark_jobs.onnx_export import export_onnx
    from spark_jobs.pipeline import GBTParams, build_pipeline
    from spark_jobs.session import get_spark

    trips = make_trips(train_rows, seed=11)
    pdf = pd.DataFrame(trips.features)
    for f in fc.FEATURES:
        pdf[f.name] = pdf[f.name].map(fc.category_token) if f.kind == "categorical" else pdf[f.name].astype(float)
    pdf[fc.TARGET.name] = trips.fares
    spark = get_spark("bench-serving", "local[2]")
    spark.sparkContext.setLogLevel("ERROR")
    started = time.perf_counter()
    model = build_pipeline(GBTParams(max_iter=30, max_depth=5)).fit(spark.createDataFrame(pdf))
    print(f"  fitted Spark GBT pipeline (30 trees, depth 5) on {len(pdf)} trips in "
          f"{time.perf_counter() - started:.0f}s", flush=True)
    blob = export_onnx(model, spark, name="bench-fare").SerializeToString()
    return spark, model, blob


def spark_single_row(spark, model, row: dict, n: int) -> list[float]:
    spark_row = {k: (fc.category_token(v) if fc.BY_NAME[k].kind == "categorical" else float(v)) for k, v in row.items()}
    schema = ", ".join(f"`{f.name}` {'double' if f.kind == 'numeric' else 'string'}" for f in fc.FEATURES)

    def once():
        model.transform(spark.createDataFrame([spark_row], schema)).select("prediction").collect()

    return timed(once, n, warmup=3)


# ------------------------------------------------------------------ in-process handler

class NullLog:
    """Stands in for the request log so the handler timing excludes the log write."""

    def write(self, records):
        return None

    def degraded_reason(self):
        return None


class Ctx:
    function_name, function_version, memory_limit_in_mb = "predict", "$LATEST", 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:predict"
    aws_request_id = "bench"


def api_event(body: str) -> dict:
    event = json.loads((ROOT / "events" / "predict_single.json").read_text())
    event["body"] = body
    return event


@contextlib.contextmanager
def moto_app(blob: bytes):
    """functions/predict/app.py imported (= cold start) against moto, stdout to /dev/null.
    The request log's queue (LOG_QUEUE_URL) is a moto queue; the handler's SERVING.log is then
    replaced by NullLog, so handler timings exclude the log write (measured by log_write_cost)."""
    import boto3
    from moto import mock_aws

    saved = {k: os.environ.pop(k, None) for k in (*AWS_VARS, "LOG_QUEUE_URL", "REQUEST_LOG_TABLE")}
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      POWERTOOLS_TRACE_DISABLED="true", MODELS_TABLE="models",
                      ARTIFACT_BUCKET="bench", MODEL_REFRESH_SECONDS="30")
    devnull = open(os.devnull, "w")
    real_stdout = sys.stdout
    try:
        with mock_aws():
            boto3.client("s3").create_bucket(Bucket="bench")
            ddb = boto3.client("dynamodb")
            ddb.create_table(TableName="models", AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                             KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
            os.environ["LOG_QUEUE_URL"] = boto3.client("sqs").create_queue(QueueName="request-log")["QueueUrl"]
            publish(boto3.client("s3"), boto3.resource("dynamodb").Table("models"), "bench", blob, version="bench")
            sys.stdout = devnull  # Powertools' log handlers bind to stdout at import: keep them quiet
            spec = importlib.util.spec_from_file_location(f"predict_{uuid.uuid4().hex}",
                                                          ROOT / "functions" / "predict" / "app.py")
            app = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(app)
            app.SERVING.log = NullLog()
            yield app
    finally:
        sys.stdout = real_stdout
        devnull.close()
        os.environ.pop("LOG_QUEUE_URL", None)
        for k, v in saved.items():
            if v is not None:
                os.environ[k] = v


def log_write_cost(endpoint: str, row: dict, n: int) -> list[float] | None:
    """RequestLog.write of one predict call's record on LocalStack: one SQS SendMessage to the log
    queue (an S3 spill only if the queue fails: then this raises, the number would be wrong), with
    the predict function's client settings (2 s per try, two tries)."""
    import boto3
    from botocore import handlers
    from botocore.config import Config

    from driftstack.adapters.archive import Layout
    from driftstack.adapters.request_log import LogSettings, RequestLog, iso, make_record, new_request_id, utc_now

    kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    fn = Config(connect_timeout=2.0, read_timeout=2.0, retries={"total_max_attempts": 2, "mode": "standard"})
    sqs = boto3.client("sqs", config=fn, **kw)
    s3 = boto3.client("s3", config=fn.merge(Config(s3={"addressing_style": "path"})), **kw)
    s3.meta.events.unregister("before-call.s3", handlers.add_expect_header)   # small_writes, as in the function
    name = f"bench-log-{uuid.uuid4().hex[:8]}"
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    s3.create_bucket(Bucket=name)
    log = RequestLog(LogSettings(queue_url=queue_url, layout=Layout(bucket=name)), sqs=sqs, s3=s3)
    try:
        def once():
            result = log.write([make_record(request_id=new_request_id(), ts=iso(utc_now()), features=row,
                                            prediction=12.5, model_name="m", model_version="1", model_sha="0" * 16,
                                            latency_ms=0.2)])
            if result.spilled or result.messages != 1:
                raise RuntimeError(f"the log write did not go to the queue: {result}")
        return timed(once, n, warmup=10)
    finally:
        sqs.delete_queue(QueueUrl=queue_url)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=name, Key=obj["Key"])
        s3.delete_bucket(Bucket=name)


# ------------------------------------------------------------------ cold start, in-process

_COLD_CHILD = r"""
import importlib.util, json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
spec = importlib.util.spec_from_file_location("predict_app", sys.argv[1])
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)  # imports, settings, clients, the champion's download and session
t1, c1 = time.perf_counter(), time.process_time()
ctx = type("Ctx", (), dict(function_name="predict", function_version="$LATEST", memory_limit_in_mb=1024,
                           aws_request_id="cold", invoked_function_arn="arn:aws:lambda:us-east-1:0:function:predict"))
resp = app.handler(json.loads(sys.argv[2]), ctx())
t2 = time.perf_counter()
assert resp["statusCode"] == 200, resp
sys.stderr.write(json.dumps({"init_ms": (t1 - t0) * 1e3, "init_cpu_ms": (c1 - c0) * 1e3,
                             "first_request_ms": (t2 - t1) * 1e3}) + "\n")
"""


def cold_start_in_process(blob: bytes, body: str, runs: int = 3) -> list[dict]:
    """A fresh interpreter per run (what a new Lambda container does): from process start to the first
    predict's answer, and its parts (module init: imports + settings + clients + model; first request).
    AWS is a moto server on localhost: the model download is a local HTTP call."""
    import socket
    import subprocess

    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the moto server's access log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {k: v for k, v in os.environ.items() if k not in (*AWS_VARS, "LOG_QUEUE_URL")}
    env.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_DEFAULT_REGION="us-east-1", POWERTOOLS_TRACE_DISABLED="true", MODELS_TABLE="models",
               ARTIFACT_BUCKET="bench", PYTHONPATH=str(ROOT), AWS_LAMBDA_FUNCTION_NAME="predict")
    try:
        kw = {"endpoint_url": env["AWS_ENDPOINT_URL"], "region_name": "us-east-1", "aws_access_key_id": "bench",
              "aws_secret_access_key": "bench"}
        s3, ddb = boto3.client("s3", **kw), boto3.client("dynamodb", **kw)
        s3.create_bucket(Bucket="bench")
        ddb.create_table(TableName="models", AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
        env["LOG_QUEUE_URL"] = boto3.client("sqs", **kw).create_queue(QueueName="request-log")["QueueUrl"]
        publish(s3, boto3.resource("dynamodb", **kw).Table("models"), "bench", blob, version="bench")
        event = json.dumps(api_event(body))
        out = []
        for _ in range(runs):
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", _COLD_CHILD, str(ROOT / "functions" / "predict" / "app.py"), event],
                                  env=env, capture_output=True, text=True, timeout=120, check=False)
            total = (time.perf_counter() - t) * 1e3
            if proc.returncode != 0:
                raise RuntimeError(f"cold start child failed: {proc.stderr[-800:]}")
            parts = json.loads(proc.stderr.strip().splitlines()[-1])
            out.append({"total_ms": total, **parts})
        return out
    finally:
        server.stop()


# ------------------------------------------------------------------ through API Gateway

def deployed_api(endpoint: str, stack: str, blob: bytes):
    import boto3
    from botocore.config import Config

    from driftstack.tools import deploy
    from driftstack.adapters.registry import read_pointer

    started = time.perf_counter()
    outputs = deploy.deploy(endpoint, stack=stack)
    print(f"  deployed {stack} in {time.perf_counter() - started:.0f}s", flush=True)
    kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}), **kw)
    models = boto3.resource("dynamodb", **kw).Table(outputs["ModelsTableName"])
    import hashlib
    current = read_pointer(models)
    if current is None or current.sha256 != hashlib.sha256(blob).hexdigest():
        publish(s3, models, outputs["BucketName"], blob, version=f"bench-{int(time.time())}")
    key = boto3.client("apigateway", **kw).get_api_key(apiKey=outputs["ApiKeyId"], includeValue=True)["value"]
    base = f"{endpoint}/_aws/execute-api/{outputs['ApiId']}/{outputs['ApiStage']}/v1"
    return outputs, key, base, boto3.client("lambda", **kw)


def load(base: str, key: str, body: str | None, clients: int, seconds: float, path: str = "/predict") -> dict:
    import requests

    stop = time.monotonic() + seconds
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker():
        s = requests.Session()
        s.headers.update({"x-api-key": key, "content-type": "application/json"})
        mine, bad = [], []
        while time.monotonic() < stop:
            t = time.perf_counter()
            try:
                r = (s.post(f"{base}{path}", data=body, timeout=60) if body is not None
                     else s.get(f"{base}{path}", timeout=60))
                ok = r.status_code == 200
                if not ok:
                    bad.append(f"{r.status_code} {r.text[:120]}")
            except Exception as exc:  # noqa: BLE001 - counted, reported
                ok = False
                bad.append(repr(exc)[:120])
            if ok:
                mine.append(time.perf_counter() - t)
        with lock:
            lat.extend(mine)
            errors.extend(bad)
        s.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    return {"n": len(lat), "errors": len(errors), "first_error": errors[0] if errors else "",
            "p50": pct(lat, 50) * 1e3 if lat else float("nan"), "p99": pct(lat, 99) * 1e3 if lat else float("nan"),
            "rps": len(lat) / wall}


def cold_start(lam, function: str, base: str, key: str, body: str) -> float:
    """Force a fresh container (configuration change) and time the first request."""
    import requests

    env = lam.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    lam.update_function_configuration(FunctionName=function,
                                      Environment={"Variables": {**env, "BENCH_NONCE": uuid.uuid4().hex}})
    lam.get_waiter("function_updated_v2").wait(FunctionName=function)
    t = time.perf_counter()
    r = requests.post(f"{base}/predict", data=body, headers={"x-api-key": key, "content-type": "application/json"},
                      timeout=120)
    took = time.perf_counter() - t
    if r.status_code != 200:
        raise RuntimeError(f"cold request failed: {r.status_code} {r.text[:200]}")
    return took


# ------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL", "http://localhost:4566"))
    p.add_argument("--stack", default="DriftstackBench")
    p.add_argument("--no-api", action="store_true", help="skip the API Gateway part and the log-write row")
    p.add_argument("--skip-spark", action="store_true", help="toy model, no Spark row")
    p.add_argument("--train-rows", type=int, default=20000)
    p.add_argument("-n", type=int, default=5000, help="in-process samples per row")
    p.add_argument("--seconds", type=float, default=30.0, help="per concurrency level")
    p.add_argument("--clients", default="1,8,32")
    p.add_argument("--cold-runs", type=int, default=3, help="fresh interpreters for the in-process cold start")
    p.add_argument("--json", action="store_true",
                   help="print the figures as one JSON object on stdout under stable names (tables go to stderr)")
    args = p.parse_args(argv)
    figures: dict[str, float] = {}
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        code = run(args, figures)
    if args.json:
        print(json.dumps({k: round(v, 3) for k, v in figures.items()}, indent=1))
    return code


def run(args: argparse.Namespace, figures: dict[str, float]) -> int:
    """The benchmark; ``figures`` receives the numbers under the names --json prints."""

    print(f"driftstack serving benchmark — {time.strftime('%Y-%m-%d %H:%M:%S')} — {os.cpu_count()} CPUs, "
          f"load avg {os.getloadavg()[0]:.2f}")
    from driftstack.tools.traffic import make_trips

    if args.skip_spark:
        spark = pipeline = None
        blob = build_toy_model()
        print("  model: toy ONNX model (same input signature)")
    else:
        spark, pipeline, blob = spark_model(args.train_rows)
        print(f"  model: Spark-exported ONNX, {len(blob) / 1e3:.0f} kB")
    row = make_trips(1, seed=3).features[0]
    body = json.dumps({"features": row})
    batch_rows = make_trips(1000, seed=4).features
    batch_body = json.dumps({"instances": batch_rows})

    import onnxruntime as ort
    from pydantic import TypeAdapter

    from driftstack.contract.api import predict_request_type

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])
    feeds = encoding.encode([row])
    raw = timed(lambda: sess.run(["prediction"], feeds), args.n)
    enc_run = timed(lambda: sess.run(["prediction"], encoding.encode([row])), args.n)
    adapter = TypeAdapter(predict_request_type())
    validate = timed(lambda: adapter.validate_json(body), args.n)

    with moto_app(blob) as app:
        ev, ctx = api_event(body), Ctx()
        resp = app.handler(ev, ctx)
        assert resp["statusCode"] == 200, resp
        handler = timed(lambda: app.handler(ev, ctx), args.n)
        app.logger.setLevel(logging.DEBUG)  # what a sampled invocation does: + the "predicted" line
        handler_logged = timed(lambda: app.handler(ev, ctx), args.n)
        app.logger.setLevel(logging.INFO)
        bev = api_event(batch_body)
        assert app.handler(bev, ctx)["statusCode"] == 200
        batch_handler = timed(lambda: app.handler(bev, ctx), 30, warmup=3)
    batch_feeds = encoding.encode(batch_rows)
    batch_raw = timed(lambda: sess.run(["prediction"], batch_feeds), 50, warmup=5)

    spark_t = spark_single_row(spark, pipeline, row, 40) if spark is not None else None
    log_t = None
    if not args.no_api:
        try:
            log_t = log_write_cost(args.endpoint, row, 300)
        except Exception as exc:  # noqa: BLE001
            print(f"  (log write not measured: {exc})")

    us = lambda xs, q: pct(xs, q) * 1e6  # noqa: E731
    cpu = lambda xs: pct(xs.cpu, 50) * 1e6  # noqa: E731
    h50 = us(handler, 50)

    def line(name, xs, ratio=""):
        return [name, f"{us(xs, 50):.0f}", f"{us(xs, 99):.0f}", f"{cpu(xs):.0f}", ratio]

    rows = [
        line("raw InferenceSession.run (pre-encoded)", raw, f"handler is {h50 / us(raw, 50):.1f}x"),
        line("encode + InferenceSession.run", enc_run, f"handler is {h50 / us(enc_run, 50):.1f}x"),
        line("pydantic validate_json (request body)", validate),
        line("HANDLER: Powertools routing+validation+encode+infer+EMF", handler, "1.0x"),
        line("handler on a log-sampled invocation (+ DEBUG 'predicted' line)", handler_logged,
             f"{us(handler_logged, 50) / h50:.2f}x"),
    ]
    if log_t:
        rows.append(line("request-log write (SQS SendMessage on LocalStack, excluded above)", log_t))
    if spark_t:
        rows.append(line("Spark PipelineModel.transform, 1-row DataFrame", spark_t,
                         f"{us(spark_t, 50) / h50:.0f}x slower than handler"))
    table("1. one trip, in-process (µs)", ["path", "p50", "p99", "cpu p50", "ratio"], rows)
    e50 = us(enc_run, 50)
    print(f"   target: handler p50 <= 2x (encode + infer) -> {'MET' if h50 <= 2 * e50 else 'NOT MET'} "
          f"({h50:.0f} µs = {h50 / e50:.1f}x); "
          + (f">= 200x faster than Spark -> {'MET' if spark_t and us(spark_t, 50) / h50 >= 200 else 'NOT MET'}"
             if spark_t else "Spark row skipped"))
    batch_rps, batch_raw_rps = 1000 / pct(batch_handler, 50), 1000 / pct(batch_raw, 50)
    table("2. batch of 1,000 trips in one request", ["path", "p50 ms", "rows/s"], [
        ["handler (validate+encode+infer, no log write)", f"{pct(batch_handler, 50) * 1e3:.1f}", f"{batch_rps:,.0f}"],
        ["raw InferenceSession.run", f"{pct(batch_raw, 50) * 1e3:.2f}", f"{batch_raw_rps:,.0f}"],
    ])
    print(f"   target: >= 400,000 rows/s -> {'MET' if batch_rps >= 400_000 else 'NOT MET'} "
          f"(raw onnxruntime is {batch_raw_rps / batch_rps:.1f}x faster)")

    cold = cold_start_in_process(blob, body, args.cold_runs)
    med = {k: statistics.median(c[k] for c in cold) for k in cold[0]}
    table(f"3. cold start of a fresh interpreter, in-process (ms, median of {len(cold)})", ["part", "ms"], [
        ["process start -> first predict answered", f"{med['total_ms']:.0f}"],
        ["  module init: imports, settings, clients, model download + session", f"{med['init_ms']:.0f}"],
        ["  module init, CPU time (less sensitive to a busy machine)", f"{med['init_cpu_ms']:.0f}"],
        ["  first request", f"{med['first_request_ms']:.0f}"],
        ["  (the rest: interpreter start-up)", f"{med['total_ms'] - med['init_ms'] - med['first_request_ms']:.0f}"],
    ])
    figures.update(
        handler_p50_us=h50, handler_p99_us=us(handler, 99), handler_cpu_p50_us=cpu(handler),
        encode_infer_p50_us=e50, raw_p50_us=us(raw, 50), validate_p50_us=us(validate, 50),
        handler_over_encode_infer=h50 / e50, handler_sampled_p50_us=us(handler_logged, 50),
        batch_rows_per_s=batch_rps, batch_p50_ms=pct(batch_handler, 50) * 1e3, batch_raw_rows_per_s=batch_raw_rps,
        cold_start_ms=med["total_ms"], cold_start_init_ms=med["init_ms"], cold_start_init_cpu_ms=med["init_cpu_ms"],
        cold_start_first_request_ms=med["first_request_ms"])
    if spark_t:
        figures["spark_p50_us"] = us(spark_t, 50)

    if args.no_api:
        return 0
    outputs, key, base, lam = deployed_api(args.endpoint, args.stack, blob)
    import requests
    for _ in range(60):  # wait until the champion is served
        h = requests.get(f"{base}/health", headers={"x-api-key": key}, timeout=60).json()
        if h.get("status") == "ok":
            break
        time.sleep(1)
    cold_api = [cold_start(lam, outputs["PredictFunctionName"], base, key, body) for _ in range(3)]
    r = requests.post(f"{base}/predict", data=batch_body, headers={"x-api-key": key}, timeout=120)
    assert r.status_code == 200, r.text[:300]
    api_batch = []
    for _ in range(5):
        t = time.perf_counter()
        requests.post(f"{base}/predict", data=batch_body, headers={"x-api-key": key}, timeout=120)
        api_batch.append(time.perf_counter() - t)
    results = []
    for c in [int(x) for x in args.clients.split(",")]:
        load(base, key, body, c, min(3.0, args.seconds))  # warm the containers for this level
        res = load(base, key, body, c, args.seconds)
        results.append([c, res["n"], res["errors"], f"{res['p50']:.1f}", f"{res['p99']:.1f}", f"{res['rps']:.0f}",
                        res["first_error"]])
        print(f"  {c} clients: {res}", flush=True)
    # Reference: GET /health writes no request log (no SQS message), so it shows what LocalStack's
    # gateway and Lambda dispatch cost on this host without the request log.
    ref = load(base, key, None, 8, min(10.0, args.seconds), path="/health")
    results.append(["8 (GET /health ref.)", ref["n"], ref["errors"], f"{ref['p50']:.1f}", f"{ref['p99']:.1f}",
                    f"{ref['rps']:.0f}", ref["first_error"]])
    base_p50 = float(results[0][3])
    table(f"4. through API Gateway on LocalStack ({args.seconds:.0f}s per level, single-trip requests)",
          ["clients", "requests", "errors", "p50 ms", "p99 ms", "req/s", "first error"], results)
    print(f"   p50 at 1 client is {base_p50 * 1e3 / h50:.0f}x the in-process handler p50 "
          f"(API Gateway + LocalStack + host runner + request-log write)")
    figures.update(api_cold_start_ms=statistics.median(cold_api) * 1e3, api_batch_p50_ms=pct(api_batch, 50) * 1e3,
                   api_p50_ms_1_client=base_p50, **{f"api_req_per_s_{r[0]}_clients": float(r[5]) for r in results[:-1]})
    table("   cold start and batch through the API", ["what", "value"], [
        ["cold start: first request after a configuration change (3 runs)",
         " / ".join(f"{c:.2f}s" for c in cold_api) + f"  (median {statistics.median(cold_api):.2f}s)"],
        ["batch of 1,000 through the API, p50", f"{pct(api_batch, 50) * 1e3:.0f} ms = "
                                                f"{1000 / pct(api_batch, 50):,.0f} rows/s (incl. 1,000 log records)"],
    ])
    if spark is not None:
        spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
