"""The driftstack command line: `driftstack --help`; one module per command group.

root.py holds the group, the global AWS options and the one place where failures become a one-line
error (exit codes in errors.py: 1 failed, 2 usage, 3 environment not ready).
"""

from __future__ import annotations

# Importing the command modules registers their commands on `cli`.
from driftstack.tools.cli import (  # noqa: F401
    console,
    decisions,
    drift,
    infra,
    mlflow,
    rollout,
    serving,
    status,
    train,
    watch,
)
from driftstack.tools.cli.errors import EXIT_FAILED, EXIT_NOT_READY, EXIT_USAGE  # noqa: F401
from driftstack.tools.cli.root import cli


def main() -> None:
    cli(prog_name="driftstack")
