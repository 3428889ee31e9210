"""Run a Spark job (``python -m spark_jobs.<job>``) with a clean terminal.

Spark writes a lot on its way: log4j lines from the JVM (``WARN NativeCodeLoader …``), py4j, Python
warnings from the workers. The job runs as a child process and all of its output goes to a log file
under the state dir (``.state/logs/train-<time>.log``); the caller sees only the job's progress lines
(``[train   12.3s] fit done in 8.1s``) and gets the result document, the job's last JSON line on
stdout. A child process also keeps tools/ from importing spark_jobs, which sits above the package.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

# What spark_jobs' Progress prints: "[train    4.2s] split done in 1.3s".
PROGRESS_LINE = re.compile(r"^\[(?P<job>[\w-]+)\s+(?P<seconds>\d+(?:\.\d+)?)s\] (?P<message>.*)$")
TRAIN_MODULE = "spark_jobs.train"


class Progress(NamedTuple):
    job: str
    seconds: float
    message: str


@dataclass
class JobRun:
    exit_code: int
    result: dict[str, Any] | None  # the job's result document (its last JSON line on stdout)
    log_path: Path

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def tail(self, lines: int = 15) -> list[str]:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text.splitlines()[-lines:]


def default_log_dir() -> Path:
    from driftstack.tools.deploy import STATE_DIR

    return STATE_DIR / "logs"


def new_log_path(name: str, log_dir: Path | None = None) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return (log_dir or default_log_dir()) / f"{name}-{stamp}.log"


def parse_progress(line: str) -> Progress | None:
    m = PROGRESS_LINE.match(line.rstrip("\n"))
    return Progress(m["job"], float(m["seconds"]), m["message"]) if m else None


def _result_document(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def run_job(module: str, argv: list[str], *, log_path: Path,
            on_progress: Callable[[Progress], None] = lambda p: None,
            env: dict[str, str] | None = None, python: str = sys.executable) -> JobRun:
    """Run ``python -m module argv``: every line of its stdout and stderr into ``log_path``, each
    progress line also to ``on_progress``; returns the exit code and the result document."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}  # progress arrives as it happens
    result: list[dict[str, Any]] = []
    lock = threading.Lock()
    with log_path.open("w") as log:
        log.write(f"$ {python} -m {module} {' '.join(argv)}\n")
        log.flush()
        proc = subprocess.Popen([python, "-m", module, *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, errors="replace", bufsize=1, env=child_env)

        def pump(stream: IO[str], is_stdout: bool) -> None:
            for line in stream:
                with lock:
                    log.write(line)
                    log.flush()
                    progress = parse_progress(line)
                    if progress:
                        on_progress(progress)
                    elif is_stdout and (doc := _result_document(line)) is not None:
                        result.append(doc)

        readers = [threading.Thread(target=pump, args=(proc.stdout, True), daemon=True),
                   threading.Thread(target=pump, args=(proc.stderr, False), daemon=True)]
        for r in readers:
            r.start()
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()  # the JVM goes with its Python parent
            proc.wait()
            raise
        finally:
            for r in readers:
                r.join()
        log.write(f"exit code {code}\n")
    return JobRun(code, result[-1] if result else None, log_path)


def run_training(argv: list[str], *, on_progress: Callable[[Progress], None] = lambda p: None,
                 log_path: Path | None = None) -> JobRun:
    """The training job (``spark_jobs.train``); see ``python -m spark_jobs.train --help``."""
    return run_job(TRAIN_MODULE, argv, log_path=log_path or new_log_path("train"), on_progress=on_progress)
