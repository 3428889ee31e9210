#!/usr/bin/env python3
"""Time the whole loop on LocalStack: drifted traffic → scheduled drift check → retraining execution
(prepare → Spark training on the local backend → evaluate → decide → promote) → served.

    .venv/bin/python scripts/bench_loop.py [--rows 500000] [--max-iter 50] [--max-depth 5]
                                           [--traffic 2000] [--endpoint URL]

Starts its own LocalStack (unless --endpoint), deploys a stack with a 1-minute schedule, trains the
champion on ``--rows`` generated January trips, sends drifted July traffic with feedback, and prints
the stage times of the execution the schedule starts (the retraining set is ``--rows`` reference
rows + the labelled traffic). Prints a table; asserts nothing on time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STACK = "DriftstackBenchLoop"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--max-iter", type=int, default=50)
    ap.add_argument("--max-depth", type=int, default=5)
    ap.add_argument("--traffic", type=int, default=2000)
    ap.add_argument("--endpoint")
    a = ap.parse_args(argv)

    import boto3
    import requests

    from driftstack.adapters import decision_store
    from driftstack.tools import deploy
    from driftstack.adapters import drift_store
    from driftstack.adapters import registry
    from driftstack.tools import localstack_host as lh
    from driftstack.tools.traffic import make_trips
    from driftstack.tools.watch import load_execution

    state = ROOT / ".state" / "bench-loop"
    started_ls = None
    endpoint = a.endpoint
    if not endpoint:
        started_ls = state / "localstack"
        endpoint = lh.start(lh.free_port(), started_ls).url
    os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    times: dict[str, float] = {}
    try:
        mlflow_uri = f"sqlite:///{state / 'mlflow.db'}"
        gbt = {"max_iter": a.max_iter, "max_depth": a.max_depth}
        t0 = time.perf_counter()
        out = deploy.deploy(endpoint, stack=STACK, context={
            "drift_schedule_minutes": "1", "drift_window_minutes": "30", "training_poll_seconds": "5",
            "model_refresh_seconds": "5", "retrain_cooldown_minutes": "0", "retrain_training": json.dumps(gbt),
            "retrain_mlflow": json.dumps({"tracking_uri": mlflow_uri}),
            "retrain_data": json.dumps({"reference_rows": a.rows, "min_labelled": 200})})
        times["deploy"] = time.perf_counter() - t0
        s3, sfn = boto3.client("s3"), boto3.client("stepfunctions")
        models = boto3.resource("dynamodb").Table(out["ModelsTableName"])
        history = boto3.resource("dynamodb").Table(out["HistoryTableName"])
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "spark_jobs.train", "--generate-rows", str(a.rows),
                               "--max-iter", str(a.max_iter), "--max-depth", str(a.max_depth),
                               "--bucket", out["BucketName"], "--models-table", out["ModelsTableName"],
                               "--set-champion-pointer", "--mlflow-tracking-uri", mlflow_uri,
                               "--output-dir", str(state / "champion")], cwd=ROOT, capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        times["champion training (not part of the loop)"] = time.perf_counter() - t0
        champion = registry.read_pointer(models)
        key = boto3.client("apigateway").get_api_key(apiKey=out["ApiKeyId"], includeValue=True)["value"]
        http = requests.Session()
        http.headers.update({"x-api-key": key, "content-type": "application/json"})
        base = f"{endpoint}/_aws/execute-api/{out['ApiId']}/{out['ApiStage']}/v1"

        events = boto3.client("events")
        events.disable_rule(Name=out["DriftScheduleRuleName"])
        t0 = time.perf_counter()
        trips = make_trips(a.traffic, month="2023-07", drift="both", seed=7)
        ids = []
        for i in range(0, len(trips.features), 250):
            r = http.post(base + "/predict", json={"instances": trips.features[i:i + 250]}, timeout=120)
            r.raise_for_status()
            ids += r.json()["item_ids"]
        with ThreadPoolExecutor(8) as pool:
            codes = Counter(pool.map(lambda k: http.post(base + "/feedback", json={
                "request_id": ids[k], "actual_fare": trips.fares[k]}, timeout=60).status_code, range(len(ids))))
        times["traffic + feedback"] = time.perf_counter() - t0
        sent_at = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        events.enable_rule(Name=out["DriftScheduleRuleName"])
        assert codes == {200: len(ids)}, codes

        t0 = time.perf_counter()
        while True:
            ex = sfn.list_executions(stateMachineArn=out["StateMachineArn"])["executions"]
            if ex:
                break
            time.sleep(2)
        times["wait for the scheduled check to trigger"] = time.perf_counter() - t0
        arn = ex[0]["executionArn"]
        while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
            time.sleep(3)
        view = load_execution(sfn, arn)
        loop_s = ((view.stopped or datetime.now(timezone.utc)) - view.started).total_seconds()
        record = decision_store.load_record(s3, out["BucketName"], view.name)
        t0 = time.perf_counter()
        new = registry.read_pointer(models)
        while http.get(base + "/health", timeout=30).json().get("model_version") != new.version:
            time.sleep(1)
        served_s = time.perf_counter() - t0
        check = next((c for c in drift_store.list_checks(history, 20) if (c.get("execution") or {}).get("started")), {})

        print(f"\nwhole loop on LocalStack: {a.rows:,} reference rows + {a.traffic:,} labelled requests, "
              f"GBT {a.max_iter} iterations depth {a.max_depth}")
        print(f"{'stage':45s} {'seconds':>9s}")
        for k, v in times.items():
            print(f"{k:45s} {v:9.1f}")
        for s in view.states:
            print(f"  {s.name + (f' ×{s.visits}' if s.visits > 1 else ''):43s} {s.seconds(view.stopped):9.1f}")
        print(f"{'execution: trigger → ' + record.get('outcome', '?'):45s} {loop_s:9.1f}")
        print(f"{'promotion → served by the API':45s} {served_s:9.1f}")
        ev = record.get("evaluation") or {}
        print(f"drift check {check.get('check_id')} (traffic sent until {sent_at}): {check.get('reasons')}")
        print(f"champion v{champion.version} RMSE {ev.get('champion', {}).get('metrics', {}).get('rmse')} → challenger "
              f"v{ev.get('challenger', {}).get('version')} RMSE {ev.get('challenger', {}).get('metrics', {}).get('rmse')}; "
              f"training job stages: {ev.get('stage_seconds')}")
        return 0
    finally:
        try:
            deploy.destroy(endpoint, stack=STACK)
        except Exception as exc:  # noqa: BLE001
            print(f"destroy failed: {exc}", file=sys.stderr)
        if started_ls is not None:
            lh.stop(started_ls)


if __name__ == "__main__":
    raise SystemExit(main())
