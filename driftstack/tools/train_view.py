"""Training as a person sees it, shared by `driftstack train` and the demo: where Spark's log goes,
the job's progress lines, and a summary of the result (or the log's last lines when it failed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from driftstack.settings.mlflow_store import run_url
from driftstack.tools.spark_runner import JobRun, Progress, new_log_path, run_training


class TrainingFailed(RuntimeError):
    def __init__(self, run: JobRun):
        self.run = run
        error = (run.result or {}).get("error") or f"the job exited with code {run.exit_code}"
        super().__init__(f"training failed: {error} (full log: {run.log_path})")


def train(argv: list[str], console: Console, log_path: Path | None = None) -> dict[str, Any]:
    """Run the training job with its progress on ``console``; returns the result document.
    Raises TrainingFailed after showing the last lines of the log."""
    log_path = log_path or new_log_path("train")
    console.print(f"[dim]Spark and JVM output goes to {log_path}[/]")

    with console.status("starting the training job ...") as status:
        def show(p: Progress) -> None:
            if p.message.endswith(" ..."):  # a stage starts: the spinner says which, its end gets a line
                status.update(f"{escape(p.message)} [dim]({p.seconds:.0f}s)[/]")
            else:
                # One line each, cut to the terminal's width: the log file holds every line whole.
                console.print(f"  [dim]{p.seconds:6.1f}s[/] {escape(p.message)}", highlight=False,
                              no_wrap=True, overflow="ellipsis")

        run = run_training(argv, on_progress=show, log_path=log_path)
    if run.ok and run.result is not None:
        return run.result
    console.print(f"[red]training failed[/] (exit {run.exit_code}); the last lines of {run.log_path}:")
    for line in run.tail():
        console.print(f"  [dim]{escape(line)}[/]", highlight=False)
    raise TrainingFailed(run)


def summary_table(result: dict[str, Any]) -> Table:
    """The result document in a dozen rows: data, holdout metrics, parity, latency, where it went."""
    t = Table(title="Training result", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    rows, m = result.get("rows") or {}, result.get("metrics") or {}
    t.add_row("rows", f"{rows.get('train', 0):,} train / {rows.get('holdout', 0):,} holdout"
                      + _dropped(result.get("validation") or {}))
    t.add_row("holdout", f"RMSE {m.get('rmse', float('nan')):.3f}   MAE {m.get('mae', float('nan')):.3f}   "
                         f"R² {m.get('r2', float('nan')):.3f}   MAPE {m.get('mape', float('nan')):.1f}%")
    par = result.get("parity") or {}
    if par:
        t.add_row("ONNX parity", f"{'passed' if par.get('passed') else 'FAILED'}: max |onnx − spark| "
                                 f"{par.get('max_abs_diff', 0):.2g} on {par.get('rows', 0):,} rows "
                                 f"(tolerance {par.get('tolerance')})")
    lat = result.get("latency") or {}
    if lat:
        t.add_row("latency", f"single row p50 {lat['single_row_p50_ms']:.3f} ms, "
                             f"p99 {lat['single_row_p99_ms']:.3f} ms (onnxruntime)")
    version = f"version {result['version']}" if result.get("version") else "not published"
    t.add_row("model", f"{result.get('model_name')} {version}, sha256 {str(result.get('sha256', ''))[:12]}…")
    t.add_row("artifact", result.get("model_uri") or f"{result.get('local_dir')} (not published)")
    ml = result.get("mlflow")
    if ml:
        t.add_row("MLflow run", f"{run_url(ml.get('experiment_id'), ml['run_id'])}  (`driftstack mlflow` serves "
                                f"it; model version {ml['version']}, store {ml['tracking_uri']})")
    pointer = result.get("champion_pointer")
    if pointer:
        t.add_row("champion", f"now version {pointer['version']}" if pointer.get("written")
                  else f"unchanged: version {pointer.get('current_version')} ({pointer.get('reason')})")
    if result.get("total_seconds") is not None:
        t.add_row("took", f"{result['total_seconds']:.0f}s")
    return t


def _dropped(validation: dict[str, Any]) -> str:
    dropped = validation.get("rows_dropped") or 0
    return f" ({dropped:,} invalid rows dropped)" if dropped else ""
