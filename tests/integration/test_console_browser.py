"""`driftstack console` in a real browser (Debian's chromium driven by Playwright) against a deployed
stack with the approval step: the graph shows every state of the deployed definition; drifted
traffic starts a real retraining run whose current state the page marks running and then succeeded;
the run's approval is given from the page and the execution ends SUCCEEDED with a promotion; the
drift page's trend shows every check that ran. Screenshots are saved (path printed) and kept.

One deployment, one small Spark champion and one small retraining run (~5-6 minutes in all).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from deployed import deployed

from driftstack.adapters import decision_store, drift_store, registry
from driftstack.domain import decision as D
from driftstack.tools.localstack_host import STATE_ROOT
from driftstack.tools.polling import wait_for
from driftstack.tools.traffic import make_trips

pytestmark = [pytest.mark.localstack, pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
STACK = "DriftstackConsoleTest"
GBT = {"max_iter": 10, "max_depth": 4}
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("DRIFTSTACK_TEST_ARTIFACTS") or STATE_ROOT / "test-artifacts") / (
    "console-browser-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S"))


@pytest.fixture(scope="module")
def stack(localstack, tmp_path_factory):
    state = tmp_path_factory.mktemp("console")
    mlflow_uri = f"sqlite:///{state / 'mlflow.db'}"
    context = {"approval": "true", "drift_schedule_minutes": "1", "drift_window_minutes": "30",
               "training_poll_seconds": "3", "model_refresh_seconds": "3", "retrain_cooldown_minutes": "30",
               "decision_min_rmse_improvement": "-100",  # any challenger is promoted: the approval step is reached
               "retrain_training": json.dumps(GBT), "retrain_mlflow": json.dumps({"tracking_uri": mlflow_uri}),
               "retrain_data": json.dumps({"reference_rows": 1000, "min_labelled": 200})}
    with deployed(localstack, STACK, context) as s:
        proc = subprocess.run(
            [sys.executable, "-m", "spark_jobs.train", "--generate-rows", "5000", "--max-iter", str(GBT["max_iter"]),
             "--max-depth", str(GBT["max_depth"]), "--bucket", s.bucket, "--models-table", s.outputs["ModelsTableName"],
             "--set-champion-pointer", "--mlflow-tracking-uri", mlflow_uri, "--output-dir", str(state / "champion"),
             "--latency-runs", "50"], cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=600,
            check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
        champion = registry.read_pointer(s.models)
        wait_for(lambda: s.health().get("model_version") == champion.version, 90, what="the champion to be served")
        s.arn = s.outputs["StateMachineArn"]
        yield s


@pytest.fixture(scope="module")
def console_url(stack):
    """`driftstack console` as a person starts it; its printed URL."""
    proc = subprocess.Popen([sys.executable, "-m", "driftstack.tools.cli", "--endpoint-url", stack.endpoint, "--stack",
                             STACK, "console", "--port", "0", "--no-browser"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()
        assert line.startswith("driftstack console: http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() else "")
        yield line.split()[2]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def page(console_url):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "chromium not installed: apt-get install chromium (scripts/setup.sh does)"
    SHOTS.mkdir(parents=True, exist_ok=True)
    print(f"\nconsole screenshots: {SHOTS}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1500, "height": 1000}, base_url=console_url)
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.errors = errors
        yield pg
        browser.close()
    assert not errors, errors


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def all_states(machine: dict) -> set[str]:
    names = set()
    for name, state in machine["States"].items():
        names.add(name)
        for inner in state.get("Branches") or [state.get("ItemProcessor") or state.get("Iterator") or {"States": {}}]:
            names |= all_states(inner)
    return names


def test_graph_shows_every_state_of_the_deployed_definition(stack, page):
    definition = json.loads(stack.sfn.describe_state_machine(stateMachineArn=stack.arn)["definition"])
    page.goto("/retraining")
    page.wait_for_function("() => window.driftstackGraph && window.driftstackGraph.nodes().length > 2")
    drawn = set(page.evaluate("() => window.driftstackGraph.nodes().map(n => n.id())"))
    states = all_states(definition)
    assert "WaitForApproval" in states and drawn == states | {"__start__", "__end__"}
    rows = page.locator("#states tbody tr")
    assert rows.count() == len(states) and page.locator("#states tr[data-status='not-reached']").count() == len(states)
    shot(page, "1-graph-before-any-run")


def send(stack, trips, feedback: bool) -> None:
    ids = []
    for i in range(0, len(trips.features), 250):
        r = stack.http.post(stack.url("/predict"), json={"instances": trips.features[i:i + 250]}, timeout=60)
        assert r.status_code == 200, r.text
        ids += r.json()["item_ids"]
    if feedback:
        def post(k):
            return stack.http.post(stack.url("/feedback"), json={"request_id": ids[k], "actual_fare": trips.fares[k]},
                                   timeout=60).status_code
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(post, range(len(ids)))) == {202}


def test_a_running_state_is_marked_running_then_succeeded(stack, page):
    events = boto3.client("events")
    events.disable_rule(Name=stack.outputs["DriftScheduleRuleName"])  # the check sees all the drifted traffic
    try:
        send(stack, make_trips(800, month="2023-07", drift="both", seed=12), feedback=True)
    finally:
        events.enable_rule(Name=stack.outputs["DriftScheduleRuleName"])
    started = wait_for(lambda: stack.sfn.list_executions(stateMachineArn=stack.arn)["executions"], 150,
                       what="the scheduled drift check to start a retraining run")
    stack.run = started[0]["name"]
    page.goto(f"/retraining?execution={stack.run}")
    running = page.locator("#states tr[data-status='running']").first
    running.wait_for(timeout=60_000)
    name = running.get_attribute("data-state")
    assert page.evaluate(f"() => window.driftstackGraph.getElementById({json.dumps(name)}).data('status')") == "running"
    assert page.locator("#execution-status").inner_text() == "RUNNING"
    shot(page, "2-running")
    page.locator(f"#states tr[data-state='{name}'][data-status='succeeded']").wait_for(timeout=300_000)
    assert page.evaluate(f"() => window.driftstackGraph.getElementById({json.dumps(name)}).data('status')") == "succeeded"


def test_the_approval_is_given_from_the_page(stack, page):
    page.locator("#approval").wait_for(state="visible", timeout=420_000)  # training, evaluation, decision
    waiting = page.locator("#states tr[data-status='running']").first.get_attribute("data-state")
    assert waiting == "WaitForApproval"
    shot(page, "3-waiting-for-approval")
    page.fill("#approval-reason", "checked in the console")
    page.click("#approve")
    page.locator("#approval-result", has_text="approved by").wait_for(timeout=30_000)
    page.locator("#execution-status", has_text="SUCCEEDED").wait_for(timeout=180_000)
    assert page.locator("#states tr[data-state='WaitForApproval']").get_attribute("data-status") == "succeeded"
    page.click("#states tr[data-state='Decide']")  # a step's input and output, one click away
    detail = page.locator("#step-detail").inner_text()
    assert detail.startswith("Decide — succeeded") and "input" in detail and "output" in detail
    shot(page, "4-approved-and-succeeded")
    record = decision_store.load_record(stack.s3, stack.bucket, stack.run)
    assert record["outcome"] == D.PROMOTED, record.get("reasons")
    assert record["approval"]["approved"] is True and record["approval"]["by"].endswith("(console)")
    assert record["approval"]["reason"] == "checked in the console"


def test_the_drift_trend_shows_the_checks_that_ran(stack, page):
    # The schedule keeps checking every minute and the page refreshes itself: read the history before
    # the page, and compare the page's parts within one evaluation (one refresh draws them all).
    deadline = time.monotonic() + 150  # a trend needs two checks: the 1-minute schedule makes the second
    while len(checks := drift_store.list_checks(stack.history, 50)) < 2 and time.monotonic() < deadline:
        time.sleep(5)
    history = {c["check_id"]: c["status"] for c in checks}
    page.goto("/drift")
    page.wait_for_function("() => Array.isArray(window.driftstackChecks)")
    shown = {c["check_id"] for c in page.evaluate("() => window.driftstackChecks")}
    assert len(history) >= 2 and set(history) <= shown  # a check may have run since the history was read
    for check_id, status in history.items():  # each check's verdict, as the history table has it
        assert page.locator(f"#checks tr[data-check='{check_id}'] .badge").inner_text() == status
    assert "drift" in history.values()
    checks, rows, points = page.evaluate(
        "() => [window.driftstackChecks.length, document.querySelectorAll('#checks tbody tr').length,"
        " Chart.getChart('prediction-psi').data.datasets[0].data.length]")
    assert checks == rows == points, (checks, rows, points)  # a row and a point per check
    shot(page, "5-drift")
    with page.expect_popup() as popup:
        page.locator("#checks a", has_text="report").first.click()
    report = popup.value
    report.wait_for_load_state()
    assert "<svg" in report.content()
    report.close()


def test_models_and_operations_pages_show_the_run(stack, page):
    page.goto("/models")
    row = page.locator(f"#decisions tr[data-run='{stack.run}']")
    row.wait_for(timeout=30_000)
    row.click()
    page.locator("#decision h3", has_text=stack.run).wait_for(timeout=30_000)
    assert "promoted" in page.locator("#decision").inner_text()
    shot(page, "6-models")
    page.goto("/operations")
    alarms = stack.outputs["AlarmNames"].split(",")
    page.locator("#alarms tbody tr[data-alarm]").first.wait_for(timeout=30_000)
    assert page.locator("#alarms tbody tr[data-alarm]").count() == len(alarms)
    # the predictions the test sent, in the request-rate chart (EMF -> CloudWatch, as the dashboard plots it)
    page.wait_for_function("() => (window.driftstackCharts['Request rate (per minute)']?.data.datasets[0]?.data || [])"
                           ".some(p => p.y > 0)", timeout=60_000)
    shot(page, "7-operations")


def test_the_api_docs_are_swagger_ui_served_offline(page):
    """The nav's "API docs": the prediction Lambda's Swagger UI (fetched with the API key), rendered by
    the browser from the scripts the page inlines — nothing from a CDN."""
    remote: list[str] = []
    page.on("request", lambda r: remote.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:")) else None)
    page.goto("/api-docs")
    page.locator(".swagger-ui .opblock", has_text="/v1/predict").first.wait_for(timeout=30_000)
    shot(page, "8-api-docs")
    assert not remote, remote
