"""Printing for people (rich tables) and for machines (one JSON document)."""

from __future__ import annotations

import json
from typing import Any

import click


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def console():
    from rich.console import Console

    return Console()


def json_option(func):
    return click.option("--json", "as_json", is_flag=True, help="One machine-readable JSON document.")(func)
