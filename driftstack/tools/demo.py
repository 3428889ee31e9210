"""The whole loop on your machine, in one command: `make demo` (or `python -m driftstack.tools.demo`).

Phases: LocalStack up → deploy the stack → train and publish the champion → normal traffic (no
drift on the next scheduled check) → drifted traffic → the EventBridge schedule detects the drift
and starts the retraining workflow → watch it live → summary (both models' metrics, the decision,
the version now serving, checked by a real prediction, and where the report and record are).

Re-running is safe (every phase is idempotent); `make down` stops everything.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from driftstack.settings.mlflow_store import project_store, ui_url
from driftstack.tools.polling import wait_for

console = Console(stderr=False)
STACK = "Driftstack"


@dataclass
class Timings:
    phases: list[tuple[str, float]] = field(default_factory=list)

    @contextmanager
    def phase(self, title: str):
        console.rule(f"[bold]{title}")
        t0 = time.monotonic()
        yield
        took = time.monotonic() - t0
        self.phases.append((title, took))
        console.print(f"[green]✓[/] {title} [dim]({took:.1f}s)[/]")

    def table(self) -> Table:
        t = Table(title="Time per phase")
        t.add_column("phase")
        t.add_column("seconds", justify="right")
        for name, took in self.phases:
            t.add_row(name, f"{took:.1f}")
        t.add_row("[bold]total", f"[bold]{sum(s for _, s in self.phases):.1f}")
        return t


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m driftstack.tools.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=int(os.environ.get("DRIFTSTACK_LOCALSTACK_PORT", "4566")))
    p.add_argument("--endpoint", help="use this running LocalStack instead of starting one (e.g. in tests)")
    p.add_argument("--stack", default=STACK, help="stack name (default %(default)s)")
    p.add_argument("--rows", type=int, default=200_000, help="training trips for the champion")
    p.add_argument("--data", help="real TLC Parquet for the champion instead of generated trips")
    p.add_argument("--normal-requests", type=int, default=300)
    p.add_argument("--drift-requests", type=int, default=600)
    p.add_argument("--drift", default="both", choices=["covariate", "concept", "both"])
    p.add_argument("--max-iter", type=int, default=30, help="GBT trees (champion and challenger)")
    p.add_argument("--json", action="store_true",
                   help="print the final summary as one JSON line on stdout (the story goes to stderr)")
    return p.parse_args(argv)


# The demo's stack: a check every minute over the last 10 minutes, models re-checked every 5 s,
# and a retraining sized for 2 cores (the defaults are production-like: hourly checks, 24 h window).
DEMO_CONTEXT = {
    "drift_schedule_minutes": "1", "drift_window_minutes": "10", "model_refresh_seconds": "5",
    "training_poll_seconds": "5", "retrain_cooldown_minutes": "0",
    "retrain_data": json.dumps({"reference_rows": 20000, "min_labelled": 200}),
}


def _empty_bucket(s3, bucket: str) -> None:
    """Versioned bucket: delete every version so `cdk destroy` can remove it."""
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket):
        objs = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for i in range(0, len(objs), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": objs[i:i + 1000], "Quiet": True})


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stack = args.stack
        self.t = Timings()
        self.state = Path(os.environ.get("DRIFTSTACK_STATE_DIR", Path.cwd() / ".state")) / "demo"
        self.state.mkdir(parents=True, exist_ok=True)
        self.mlflow_uri = project_store().tracking_uri  # the one store `driftstack mlflow` shows
        # The retraining job (a host process started by the workflow) registers in the same MLflow.
        self.context = {**DEMO_CONTEXT, "retrain_mlflow": json.dumps({"tracking_uri": self.mlflow_uri}),
                        "retrain_training": json.dumps({"max_iter": args.max_iter, "max_depth": 5})}

    # -- phases ---------------------------------------------------------------------------------
    def start_localstack(self) -> None:
        from driftstack.tools import localstack_host

        if self.args.endpoint:
            self.url = self.args.endpoint.rstrip("/")
            if not localstack_host.health(self.url):
                raise RuntimeError(f"no healthy LocalStack at {self.url}")
            console.print(f"using the LocalStack at {self.url}")
        else:
            st = localstack_host.start(port=self.args.port)
            self.url = st.url
            console.print(f"LocalStack healthy at {st.url} (pid {st.pid}); state in {st.state_dir}")
        for k, v in {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                     "AWS_DEFAULT_REGION": "us-east-1"}.items():
            os.environ[k] = v

    def deploy(self) -> None:
        from driftstack.tools import deploy
        from driftstack.tools.api_client import ApiClient

        self._remove_previous()
        self.out = deploy.deploy(self.url, stack=self.stack, context=self.context)

        self.api = ApiClient.from_stack(self.url, self.stack)
        console.print(f"API: {self.api.base_url}/v1  (x-api-key from the stack's usage plan)")

    def _remove_previous(self) -> None:
        """A previous demo deployment (even a half-failed one): empty its bucket, delete the stack,
        so the story starts from the same place every time."""
        import boto3
        from botocore.exceptions import ClientError

        from driftstack.tools import deploy

        cfn = boto3.client("cloudformation")
        try:
            cfn.describe_stacks(StackName=self.stack)
        except ClientError:
            return  # nothing deployed
        console.print(f"removing the previous demo deployment ({self.stack})")
        s3 = boto3.client("s3")
        for res in cfn.list_stack_resources(StackName=self.stack)["StackResourceSummaries"]:
            if res["ResourceType"] == "AWS::S3::Bucket" and res.get("PhysicalResourceId"):
                try:
                    _empty_bucket(s3, res["PhysicalResourceId"])
                except ClientError:
                    pass  # never created
        try:
            deploy.destroy(self.url, stack=self.stack, context=self.context)
        except deploy.DeployError:
            cfn.delete_stack(StackName=self.stack)  # a stack CDK cannot destroy (failed create)
            cfn.get_waiter("stack_delete_complete").wait(StackName=self.stack,
                                                          WaiterConfig={"Delay": 2, "MaxAttempts": 90})

    def train_champion(self) -> None:
        from driftstack.tools import train_view
        from driftstack.tools.spark_runner import new_log_path

        argv = ["--bucket", self.out["BucketName"], "--models-table", self.out["ModelsTableName"],
                "--set-champion-pointer", "--mlflow-tracking-uri", self.mlflow_uri,
                "--output-dir", str(self.state / "champion"), "--max-iter", str(self.args.max_iter)]
        argv += ["--data", self.args.data] if self.args.data else ["--generate-rows", str(self.args.rows)]
        result = train_view.train(argv, console, log_path=new_log_path("train", self.state.parent / "logs"))
        console.print(train_view.summary_table(result))
        from driftstack.adapters import registry

        self.champion = registry.read_pointer(self._table("ModelsTableName"))
        wait_for(lambda: self._served() == self.champion.version, 120, "the API to serve the champion")
        console.print(f"champion {self.champion.model_name} v{self.champion.version} is serving")

    def traffic(self, n: int, drift: str, month: str, seed: int, feedback: bool) -> str:
        from datetime import UTC, datetime

        from rich.progress import Progress

        from driftstack.tools.traffic import make_trips

        trips = make_trips(n, month=month, drift=drift, seed=seed)
        ids: list[str] = []
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(f"predict ({drift})", total=len(trips.features))
            for i in range(0, len(trips.features), 100):
                status, body = self.api.predict_batch(trips.features[i:i + 100])
                if status != 200:
                    raise RuntimeError(f"predict answered {status}: {body}")
                ids += body["item_ids"]
                bar.advance(task, len(body["item_ids"]))
            if feedback:
                task = bar.add_task("feedback (true fares)", total=len(ids))
                for rid, fare in zip(ids, trips.fares):
                    status, body = self.api.feedback(rid, fare)
                    if status != 202:
                        raise RuntimeError(f"feedback answered {status}: {body}")
                    bar.advance(task)
        console.print(f"{len(ids)} predictions logged" + (" with ground truth" if feedback else ""))
        return datetime.now(UTC).isoformat().replace("+00:00", "Z")

    def scheduled_check_after(self, ts: str) -> dict:
        from driftstack.adapters import drift_store
        from driftstack.tools.watch import render_checks

        def find():
            for c in drift_store.list_checks(self._table("HistoryTableName"), 10):
                if c["window"]["end"] > ts:
                    return c
            return None

        check = wait_for(find, 180, "the next scheduled drift check (EventBridge, every minute)", 3)
        console.print(render_checks([check]))
        console.print(f"report: {check.get('report_uri')}")
        return check

    def drifted_traffic(self) -> str:
        import boto3

        events = boto3.client("events")
        rule = self.out["DriftScheduleRuleName"]
        # Hold the schedule while the traffic and its ground truth arrive, so one check sees it all.
        events.disable_rule(Name=rule)
        try:
            ts = self.traffic(self.args.drift_requests, self.args.drift, "2023-07", 202, feedback=True)
            self._hold_until_next_window()
            return ts
        finally:
            events.enable_rule(Name=rule)

    def _hold_until_next_window(self) -> None:
        """A check's window ends at its event time floored to the schedule period. Re-enabled before
        the next boundary, the schedule could fire a check whose window ends before the traffic did:
        it sees the predictions but only part of the ground truth, may start retraining on that, and
        the check the demo waits for would then find a new champion with no traffic of its own (seen
        in CI). So the schedule stays off until the traffic's period is over."""
        period = 60 * float(self.context["drift_schedule_minutes"])
        boundary = (time.time() // period + 1) * period
        console.print(f"holding the schedule {boundary - time.time():.0f}s, until the window that "
                      "holds all of this traffic has closed")
        time.sleep(max(0.0, boundary - time.time()) + 1)

    def watch_retraining(self, check: dict) -> None:
        from driftstack.tools import watch

        ex = check.get("execution") or {}
        if ex.get("started"):
            self.execution = ex["name"]
        elif ex.get("execution_arn"):  # an earlier check of this drift already started the execution
            self.execution = ex["execution_arn"].rsplit(":", 1)[-1]
        else:
            raise RuntimeError(f"the drift check did not start retraining: {ex or check.get('reasons')}")
        res = watch.resources_from(self.out)
        view = watch.watch(res, self.execution, console=console, interval=2.0)
        if view is None or view.status != "SUCCEEDED":
            raise RuntimeError(f"retraining execution ended {view.status if view else 'missing'}")

    def verify_serving(self) -> dict:
        import boto3

        from driftstack.adapters import decision_store, registry
        from driftstack.domain import decision
        from driftstack.tools.traffic import make_trips

        record = decision_store.load_record(boto3.client("s3"), self.out["BucketName"], self.execution)
        ptr = registry.read_pointer(self._table("ModelsTableName"))
        if record.get("outcome") == decision.PROMOTED:
            wait_for(lambda: self._served() == ptr.version, 60, "the API to pick up the new champion", 1)
        status, body = self.api.predict(make_trips(1, month="2023-07", drift=self.args.drift, seed=9).features[0])
        if status != 200:
            raise RuntimeError(f"predict answered {status}: {body}")
        return {"record": record, "pointer": ptr, "prediction": body}

    # -- helpers --------------------------------------------------------------------------------
    def _table(self, output: str):
        import boto3

        return boto3.resource("dynamodb").Table(self.out[output])

    def _served(self) -> str | None:
        status, body = self.api.health()
        return body.get("model_version") if status == 200 and isinstance(body, dict) else None

    # -- the story ------------------------------------------------------------------------------
    def run(self) -> dict:
        a = self.args
        with self.t.phase("1. LocalStack on the host"):
            self.start_localstack()
        with self.t.phase("2. Deploy the stack (cdklocal)"):
            self.deploy()
        with self.t.phase("3. Train, verify and publish the champion (Spark → ONNX)"):
            self.train_champion()
        with self.t.phase("4. Normal traffic → scheduled check: no drift"):
            ts = self.traffic(a.normal_requests, "none", "2023-01", 101, feedback=False)
            self.scheduled_check_after(ts)
        with self.t.phase(f"5. Drifted traffic ({a.drift}) → scheduled check: drift, retraining starts"):
            ts = self.drifted_traffic()
            check = self.scheduled_check_after(ts)
        with self.t.phase("6. Retrain-and-compare (Step Functions, live)"):
            self.watch_retraining(check)
        with self.t.phase("7. The API serves the decision's model"):
            result = self.verify_serving()
        return self.summary(check, result)

    def summary(self, check: dict, result: dict) -> dict:
        from driftstack.tools.watch import render_decision

        record, ptr, pred = result["record"], result["pointer"], result["prediction"]
        console.rule("[bold]Summary")
        console.print(render_decision(record))
        bucket = self.out["BucketName"]
        doc = {
            "outcome": record.get("outcome"), "reasons": record.get("reasons"),
            "champion_before": self.champion.version, "serving_now": ptr.version,
            "prediction_check": {"model_version": pred.get("model_version"),
                                 "predicted_fare": pred.get("predicted_fare")},
            "drift_report": check.get("report_uri"),
            "decision_record": f"s3://{bucket}/{_record_key(self.execution)}",
            "phases_seconds": {name: round(s, 1) for name, s in self.t.phases},
        }
        console.print(_outcome_table(doc))
        console.print(self.t.table())
        from driftstack.tools.console import DEFAULT_PORT

        console.print(f"See it in a browser: `driftstack console` → http://127.0.0.1:{DEFAULT_PORT} (the retraining "
                      "graph, drift over time, models, operations).")
        console.print(f"The MLflow runs (champion and challenger): `driftstack mlflow` → {ui_url()}")
        console.print("Explore: `driftstack status`, `driftstack watch list`, `driftstack predict --help`; "
                      "stop everything with `make down`.")
        return doc


def _outcome_table(doc: dict) -> Table:
    t = Table(title="Where things stand", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    check = doc["prediction_check"]
    t.add_row("champion", f"version {doc['champion_before']} before the drift, "
                          f"version {doc['serving_now']} serving now")
    fare = check.get("predicted_fare")
    t.add_row("prediction check", f"version {check['model_version']} predicted "
              + (f"${fare:.2f}" if fare is not None else "no fare"))
    t.add_row("drift report", str(doc["drift_report"]))
    t.add_row("decision record", doc["decision_record"])
    return t


def _record_key(run_id: str) -> str:
    from driftstack.adapters import decision_store

    return decision_store.record_key(run_id)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console.stderr = args.json  # with --json, stdout holds only the summary document
    demo = Demo(args)
    try:
        doc = demo.run()
    except (RuntimeError, TimeoutError) as exc:
        console.print(f"[red]demo failed:[/] {exc}")
        console.print("LocalStack keeps running for inspection: `driftstack status`, "
                      "`driftstack localstack logs`; `make down` stops it.")
        return 1
    if args.json:
        print(json.dumps(doc, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
